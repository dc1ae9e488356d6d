//! The live status page in a real browser: headless Chromium (Debian `chromium` and
//! `chromium-driver`, driven by Selenium through `tests/fixtures/status_browser.py`) against
//! the real ferrule binary and a pymodbus device.
//!
//! Set `FERRULE_STATUS_SCREENSHOT=docs/status.png` to refresh the README's screenshot.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use common::ferrule::parse_addr;
use common::process::{Proc, Stdout};
use common::{fixture, mqtt, python, Ferrule, ModbusDevice, Table};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The browser fixture; quits when dropped (end of stdin, then the kill of `Proc`).
struct Browser {
    proc: Proc,
    replies: Receiver<String>,
}

impl Browser {
    fn start() -> Browser {
        let (tx, replies) = mpsc::channel();
        let mut cmd = Command::new(python());
        cmd.arg(fixture("status_browser.py"))
            .env("PYTHONUNBUFFERED", "1");
        let proc = Proc::spawn_with(
            "status-browser",
            &mut cmd,
            Stdout::Each(Box::new(move |line| {
                if let Some(line) = line {
                    let _ = tx.send(line);
                }
            })),
        );
        let mut b = Browser { proc, replies };
        let ready = b.reply("startup", Duration::from_secs(60));
        assert_eq!(ready, "READY", "the browser fixture printed {ready:?}");
        b
    }

    fn reply(&mut self, what: &str, timeout: Duration) -> String {
        match self.replies.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "the browser did not answer {what} within {timeout:?}; its log:\n{}",
                self.proc.tail()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "the browser exited instead of answering {what}; its log:\n{}",
                self.proc.tail()
            ),
        }
    }

    /// Runs one command; `Ok(value)` or `Err(error)` as the fixture answered.
    fn try_do(&mut self, cmd: Value) -> Result<Value, String> {
        let line = cmd.to_string();
        self.proc.write_line(&line);
        let reply: Value = serde_json::from_str(&self.reply(&line, WAIT + WAIT))
            .unwrap_or_else(|e| panic!("the browser's answer to {line} is not JSON: {e}"));
        if reply["ok"] == true {
            Ok(reply["value"].clone())
        } else {
            Err(reply["error"].as_str().unwrap_or("?").to_owned())
        }
    }

    fn run(&mut self, cmd: Value) -> Value {
        let line = cmd.to_string();
        self.try_do(cmd)
            .unwrap_or_else(|e| panic!("browser command {line} failed: {e}"))
    }

    fn open(&mut self, url: &str) {
        self.run(json!({"cmd": "open", "url": url}));
    }

    /// Waits until the first element matching `css` contains `text`; returns its text.
    fn wait_text(&mut self, css: &str, text: &str) -> String {
        let v = self.run(
            json!({"cmd": "wait_text", "css": css, "contains": text, "timeout": WAIT.as_secs()}),
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    fn wait_visible(&mut self, css: &str) {
        self.run(json!({"cmd": "wait_visible", "css": css, "timeout": WAIT.as_secs()}));
    }

    fn eval(&mut self, js: &str) -> Value {
        self.run(json!({"cmd": "eval", "js": js}))
    }

    fn type_in(&mut self, css: &str, text: &str) {
        self.run(json!({"cmd": "type", "css": css, "text": text}));
    }

    fn click(&mut self, css: &str) {
        self.run(json!({"cmd": "click", "css": css}));
    }
}

/// A config for a boiler on `device` (unit 1) with the status page on `status_bind`, and
/// `broker_extra` added to the broker section.
fn config(dir: &Path, device: &ModbusDevice, status_bind: &str, broker_extra: &str) -> PathBuf {
    let yaml = format!(
        r#"
site: plant1
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
{broker_extra}
status: {{bind: "{status_bind}"}}
devices:
  - name: boiler
    tcp: "127.0.0.1:{port}"
    unit: 1
    poll: 100ms
    timeout: 1s
    points:
      - {{name: temperature, kind: input, address: 0, type: i16, scale: 0.1, unit: "°C"}}
      - {{name: setpoint, kind: holding, address: 10, type: u16, writable: {{min: 0, max: 90}}}}
"#,
        port = device.port(),
    );
    Ferrule::write_config(dir, &yaml)
}

/// Runs ferrule; returns it with the page's address, once the device is online.
fn start(config: &Path) -> (Ferrule, std::net::SocketAddr) {
    let agent = Ferrule::run(config);
    let line = agent.wait_for_line("status page listening", WAIT);
    agent.wait_for_line("device state state=\"online\"", WAIT);
    (agent, parse_addr(&line))
}

fn row(point: &str) -> String {
    format!(".device[data-device=\"boiler\"] tr.point[data-point=\"{point}\"]")
}

#[test]
fn the_page_shows_devices_points_and_clients_and_follows_changes_without_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set(1, Table::Input, 0, &[215]);
    device.set_holding(1, 10, &[30]);
    let (agent, page) = start(&config(dir.path(), &device, "127.0.0.1:0", ""));
    let mqtt_port = agent.listener_addr().port();
    let viewer = mqtt::sub_with(
        mqtt_port,
        &["plant1/#"],
        &mqtt::SubOptions {
            client_id: Some("cabinet-hmi".into()),
            ..mqtt::SubOptions::default()
        },
    );
    viewer.wait_for_topic("plant1/boiler/temperature", WAIT);

    let mut browser = Browser::start();
    browser.open(&format!("http://{page}/"));
    browser.wait_text(".device[data-device=\"boiler\"] .state", "online");
    browser.wait_text(&format!("{} .value", row("temperature")), "21.5 °C");
    browser.wait_text(&format!("{} .quality", row("temperature")), "good");
    browser.wait_text(&format!("{} .value", row("setpoint")), "30");
    browser.wait_text(".device[data-device=\"boiler\"] .meta", "breaker closed");
    browser.wait_text(
        ".device[data-device=\"boiler\"] h3",
        &format!("tcp 127.0.0.1:{} unit 1", device.port()),
    );
    browser.wait_text("#clients", "cabinet-hmi");
    browser.wait_text("#events", "boiler: unknown → online");
    browser.wait_text("#uplink", "off");
    // On loopback there is no login, and the page says so.
    browser.wait_text("#who", "anonymous");

    // A register changed on the device shows up without a reload (the marker survives).
    browser.eval("window.__ferrule_marker = 42");
    device.set(1, Table::Input, 0, &[(-51i16) as u16]);
    browser.wait_text(&format!("{} .value", row("temperature")), "-5.1 °C");
    assert_eq!(
        browser.eval("window.__ferrule_marker"),
        json!(42),
        "the page reloaded"
    );

    // A write from the page (no ACL: allowed) takes the command path and shows its result.
    browser.type_in(&format!("{} .write-value", row("setpoint")), "55");
    browser.click(&format!("{} .write-btn", row("setpoint")));
    let shown = browser.wait_text(&format!("{} .write-result", row("setpoint")), "written");
    assert!(shown.contains("55"), "{shown}");
    assert_eq!(device.get_holding(1, 10, 1), vec![55]);
    browser.wait_text(&format!("{} .value", row("setpoint")), "55");
    browser.wait_text("#events", "boiler/setpoint = 55 written");
    // A value out of range is refused by the command path, and the page says why.
    browser.type_in(&format!("{} .write-value", row("setpoint")), "500");
    browser.click(&format!("{} .write-btn", row("setpoint")));
    browser.wait_text(&format!("{} .write-result", row("setpoint")), "above");
    browser.wait_text("#events", "refused");
    assert_eq!(device.get_holding(1, 10, 1), vec![55]);
    agent.wait_for_line("ferrule-status-page", WAIT);

    if let Some(path) = std::env::var_os("FERRULE_STATUS_SCREENSHOT") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        browser.run(json!({"cmd": "screenshot", "path": path, "width": 1100, "height": 900}));
    }
    drop(viewer);
}

#[test]
fn a_network_bind_requires_a_login_refuses_a_wrong_password_and_writes_follow_the_acl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set(1, Table::Input, 0, &[200]);
    device.set_holding(1, 10, &[7]);
    let iterations = std::num::NonZeroU32::new(1000).expect("non-zero");
    let ann = ferrule::broker::passwd::entry("ann", "s3cret", iterations).expect("hash");
    let bob = ferrule::broker::passwd::entry("bob", "hunter2", iterations).expect("hash");
    std::fs::write(dir.path().join("passwd"), format!("{ann}\n{bob}\n")).expect("passwd");
    std::fs::write(
        dir.path().join("acl"),
        "user ann\ntopic readwrite plant1/#\nuser bob\ntopic read plant1/#\n",
    )
    .expect("acl");
    let extra = "  password_file: passwd\n  acl_file: acl\n";
    let (_agent, page) = start(&config(dir.path(), &device, "0.0.0.0:0", extra));
    let url = format!("http://127.0.0.1:{}/", page.port());

    let mut browser = Browser::start();
    browser.open(&url);
    browser.wait_visible("#login");
    assert_eq!(
        browser.eval("document.querySelector('#main').hidden"),
        json!(true)
    );
    // The stream itself is refused without a session, not only hidden.
    browser.eval("(window.__s = null, fetch('/events').then(r => window.__s = r.status), 0)");
    let refused = common::wait::poll(WAIT, || {
        let s = browser.eval("window.__s");
        s.as_u64()
    });
    assert_eq!(refused, Some(401));

    // A wrong password is refused, and the page stays closed.
    browser.type_in("#user", "ann");
    browser.type_in("#password", "wrong");
    browser.click("#login-btn");
    browser.wait_text("#login-error", "wrong user name or password");
    assert_eq!(
        browser.eval("document.querySelector('#main').hidden"),
        json!(true)
    );

    // bob logs in: he sees the rows, but may not write (read-only ACL).
    browser.type_in("#user", "bob");
    browser.type_in("#password", "hunter2");
    browser.click("#login-btn");
    browser.wait_text(&format!("{} .value", row("temperature")), "20 °C");
    browser.wait_text("#who", "user bob");
    browser.wait_text(&format!("{} .write", row("setpoint")), "read only for you");
    browser.eval(
        "(window.__w = null, fetch('/write', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
         body: JSON.stringify({device: 'boiler', point: 'setpoint', value: 9})}).then(r => window.__w = r.status), 0)",
    );
    let forbidden = common::wait::poll(WAIT, || browser.eval("window.__w").as_u64());
    assert_eq!(forbidden, Some(403));
    assert_eq!(device.get_holding(1, 10, 1), vec![7]);
    browser.wait_text("#events", "refused for bob");

    // ann may write: the value reaches the device and the result shows.
    browser.click("#logout");
    browser.wait_visible("#login");
    browser.type_in("#user", "ann");
    browser.type_in("#password", "s3cret");
    browser.click("#login-btn");
    browser.wait_text("#who", "user ann");
    browser.type_in(&format!("{} .write-value", row("setpoint")), "12");
    browser.click(&format!("{} .write-btn", row("setpoint")));
    browser.wait_text(
        &format!("{} .write-result", row("setpoint")),
        "written, read back 12",
    );
    assert_eq!(device.get_holding(1, 10, 1), vec![12]);
    browser.wait_text(&format!("{} .value", row("setpoint")), "12");
}
