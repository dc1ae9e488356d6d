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

fn raw_row(point: &str) -> String {
    format!(".device[data-device=\"boiler\"] tr.raw-row[data-point=\"{point}\"]")
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

    // The raw registers on demand: read from the device now, with address, hex, decimal,
    // kind, unit and time.
    let raw_view = raw_row("temperature") + " .raw-view";
    browser.click(&format!("{} .raw-btn", row("temperature")));
    let shown = browser.wait_text(&raw_view, "0xFFCD");
    for part in ["input 0", "unit 1", "65485", "read 20"] {
        assert!(shown.contains(part), "{part:?} missing in {shown:?}");
    }
    // Hidden, then read again: a fresh read shows a value set on the device since.
    device.set(1, Table::Input, 0, &[0x00D7]);
    browser.click(&format!("{} .raw-btn", row("temperature")));
    browser.click(&format!("{} .raw-btn", row("temperature")));
    let shown = browser.wait_text(&raw_view, "0x00D7");
    assert!(shown.contains("215"), "{shown}");

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
    // A device that stops answering: the raw view says so instead of hanging.
    device.mute(1);
    browser.click(&format!("{} .raw-btn", row("temperature")));
    browser.click(&format!("{} .raw-btn", row("temperature")));
    let failed = browser.wait_text(&raw_view, "raw read failed");
    assert!(
        failed.contains("no answer") || failed.contains("offline"),
        "{failed}"
    );
    device.unmute(1);
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
    // So are raw reads.
    browser.eval(
        "(window.__r = null, fetch('/raw', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
         body: JSON.stringify({device: 'boiler', point: 'temperature'})}).then(r => window.__r = r.status), 0)",
    );
    let refused = common::wait::poll(WAIT, || browser.eval("window.__r").as_u64());
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

#[test]
fn an_exposed_page_is_served_over_tls_with_the_listener_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = common::certs::Pki::new();
    let device = ModbusDevice::start(&[1]);
    device.set(1, Table::Input, 0, &[123]);
    let line =
        ferrule::broker::passwd::entry("ann", "s3cret", std::num::NonZeroU32::MIN).expect("hash");
    std::fs::write(dir.path().join("passwd"), format!("{line}\n")).expect("passwd");
    let yaml = format!(
        r#"
site: plant1
broker:
  listeners:
    - {{bind: "127.0.0.1:0"}}
    - {{bind: "127.0.0.1:0", tls: {{cert: "{cert}", key: "{key}"}}}}
  password_file: passwd
status: {{bind: "0.0.0.0:0"}}
devices:
  - name: boiler
    tcp: "127.0.0.1:{port}"
    poll: 100ms
    points:
      - {{name: temperature, kind: input, address: 0, type: i16, scale: 0.1, unit: "°C"}}
"#,
        cert = pki.path("server.pem").display(),
        key = pki.path("server.key").display(),
        port = device.port(),
    );
    let (agent, page) = start(&Ferrule::write_config(dir.path(), &yaml));
    assert!(
        agent
            .lines()
            .iter()
            .any(|l| l.contains("status page listening") && l.contains("https")),
        "{}",
        agent.tail()
    );
    // Plain HTTP gets no page.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", page.port())).expect("connect");
    plain.set_read_timeout(Some(WAIT)).expect("timeout");
    std::io::Write::write_all(&mut plain, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut plain, &mut answer);
    assert!(!answer.contains("ferrule"), "{answer}");

    let mut browser = Browser::start();
    browser.open(&format!("https://127.0.0.1:{}/", page.port()));
    browser.wait_visible("#login");
    browser.type_in("#user", "ann");
    browser.type_in("#password", "s3cret");
    browser.click("#login-btn");
    browser.wait_text(&format!("{} .value", row("temperature")), "12.3 °C");
    assert_eq!(browser.eval("location.protocol"), json!("https:"));
}

/// Sends `request` on a fresh connection and returns the status line of the answer.
fn status_line(page: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{BufRead as _, Write as _};
    let mut s = std::net::TcpStream::connect(page).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    // The server may close before reading all of an oversized request: a failed write is fine.
    let _ = s.write_all(request);
    let mut line = String::new();
    let _ = std::io::BufReader::new(s).read_line(&mut line);
    line.trim_end().to_owned()
}

/// An event stream, read up to its first document.
fn open_stream(page: std::net::SocketAddr) -> std::io::BufReader<std::net::TcpStream> {
    use std::io::{BufRead as _, Write as _};
    let mut s = std::net::TcpStream::connect(page).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("data: {\"site\"") {
        line.clear();
        let n = r.read_line(&mut line).expect("the stream answers");
        assert!(n > 0, "the stream ended before its first document");
    }
    r
}

#[test]
fn bad_requests_slow_clients_and_a_hundred_streams_leave_polling_and_the_broker_alone() {
    use std::io::{BufRead as _, Write as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set(1, Table::Input, 0, &[10]);
    let (agent, page) = start(&config(dir.path(), &device, "127.0.0.1:0", ""));
    let port = agent.listener_addr().port();
    let values = mqtt::sub(port, "plant1/boiler/temperature");
    values.wait_for(WAIT, |m| m.json()["value"] == json!(1.0));

    // Slow clients: a head that never ends, one byte sent.
    let mut slow: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(page).expect("connect");
            s.write_all(b"G").expect("one byte");
            s.set_read_timeout(Some(WAIT)).expect("timeout");
            s
        })
        .collect();
    // A hundred viewers, each with its first document, then left unread.
    let streams: Vec<_> = (0..100).map(|_| open_stream(page)).collect();

    // Malformed and oversized requests get their answers.
    assert_eq!(
        status_line(page, b"BLAH\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status_line(page, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    assert_eq!(
        status_line(page, big.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let body = format!(
        "POST /login HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    assert_eq!(
        status_line(page, body.as_bytes()),
        "HTTP/1.1 413 Content Too Large"
    );
    assert_eq!(
        status_line(page, b"POST /login HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 411 Length Required"
    );
    assert_eq!(
        status_line(page, b"GET /nothing HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status_line(page, b"DELETE / HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );

    // Meanwhile polling goes on and the broker delivers: a change on the device arrives.
    device.set(1, Table::Input, 0, &[77]);
    values.wait_for(WAIT, |m| m.json()["value"] == json!(7.7));
    // And the page still serves: a new viewer sees the new value.
    let mut fresh = open_stream(page);
    let mut line = String::new();
    let shown = common::wait::poll(WAIT, || {
        line.clear();
        fresh.read_line(&mut line).ok()?;
        line.contains("\"value\":7.7").then_some(())
    });
    assert!(shown.is_some(), "a new viewer never saw 7.7");

    // The slow clients are answered 408 and closed, whatever the others do.
    for s in &mut slow {
        let mut line = String::new();
        let _ = std::io::BufReader::new(&*s).read_line(&mut line);
        assert_eq!(line.trim_end(), "HTTP/1.1 408 Request Timeout");
    }
    drop(streams);
}

/// POSTs `body` to `path` with `content_type`; the status line and the JSON answer.
fn post(page: std::net::SocketAddr, path: &str, content_type: &str, body: &str) -> (String, Value) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    request(page, &head)
}

/// Sends `text` on a fresh connection; the status line and the JSON answer (null if none).
fn request(page: std::net::SocketAddr, text: &str) -> (String, Value) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(page).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(text.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("the page answers");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Asserts an answer's status and that its `error` contains `error`.
fn expect(answer: (String, Value), status: &str, error: &str) {
    let (line, doc) = answer;
    assert_eq!(line, format!("HTTP/1.1 {status}"), "{doc}");
    let said = doc["error"].as_str().unwrap_or_default();
    assert!(said.contains(error), "{error:?} not in {doc}");
}

fn post_raw(page: std::net::SocketAddr, device: &str, point: &str) -> (String, Value) {
    let body = json!({"device": device, "point": point}).to_string();
    post(page, "/raw", "application/json", &body)
}

#[test]
fn raw_reads_answer_what_was_wrong_and_one_per_device_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set(1, Table::Input, 0, &[0x1234]);
    device.set_coils(1, 5, &[true, false, true]);
    // Polled once (at start): the raw reads are the only requests after that.
    let yaml = format!(
        r#"
site: plant1
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
status: {{bind: "127.0.0.1:0"}}
devices:
  - name: boiler
    tcp: "127.0.0.1:{port}"
    unit: 1
    poll: 1h
    timeout: 5s
    points:
      - {{name: temperature, kind: input, address: 0, type: i16}}
      - {{name: pumps, kind: coil, address: 5, count: 3}}
      - {{name: setpoint, kind: holding, address: 10, type: u16}}
"#,
        port = device.port(),
    );
    let (_agent, page) = start(&Ferrule::write_config(dir.path(), &yaml));

    // Good reads: words in hex and decimal, bits.
    let (status, doc) = post_raw(page, "boiler", "temperature");
    assert_eq!(status, "HTTP/1.1 200 OK", "{doc}");
    assert_eq!(doc["kind"], "input");
    assert_eq!(doc["unit"], 1);
    assert_eq!(
        doc["registers"],
        json!([{"address": 0, "hex": "0x1234", "dec": 4660}])
    );
    assert!(
        doc["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{doc}"
    );
    let (status, doc) = post_raw(page, "boiler", "pumps");
    assert_eq!(status, "HTTP/1.1 200 OK", "{doc}");
    assert_eq!(doc["kind"], "coil");
    assert_eq!(
        doc["bits"],
        json!([{"address": 5, "bit": 1}, {"address": 6, "bit": 0}, {"address": 7, "bit": 1}])
    );

    // Malformed asks: each answer says what was wrong.
    expect(
        post_raw(page, "kettle", "temperature"),
        "404 Not Found",
        "no point `kettle/temperature` in the running config",
    );
    expect(
        post_raw(page, "boiler", "pressure"),
        "404 Not Found",
        "no point `boiler/pressure`",
    );
    let json = "application/json";
    expect(
        post(page, "/raw", json, "{\"device\": \"boiler\""),
        "400 Bad Request",
        "the body is not a JSON object",
    );
    expect(
        post(page, "/raw", json, "{\"device\": \"boiler\"}"),
        "400 Bad Request",
        "expected {\"device\", \"point\"}",
    );
    expect(
        request(page, "GET /raw HTTP/1.1\r\nHost: x\r\n\r\n"),
        "405 Method Not Allowed",
        "/raw takes POST",
    );
    expect(
        post(page, "/raw", "text/plain", "{}"),
        "415 Unsupported Media Type",
        "send JSON",
    );

    // The device refuses the read: its exception, not a hang.
    device.exception(1, Table::Holding, 10, 1, 2);
    expect(
        post_raw(page, "boiler", "setpoint"),
        "502 Bad Gateway",
        "illegal data address",
    );

    // A device that does not answer: two asks at once, one waits for the device's timeout
    // and says so, the other is refused at once (one raw read per device at a time).
    device.mute(1);
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let asks: Vec<_> = ["temperature", "setpoint"]
        .into_iter()
        .map(|point| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                post_raw(page, "boiler", point)
            })
        })
        .collect();
    let mut answers: Vec<(String, Value)> = asks
        .into_iter()
        .map(|t| t.join().expect("the ask"))
        .collect();
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    let (refused, waited) = (answers.remove(0), answers.remove(0));
    expect(refused, "429 Too Many Requests", "already in flight");
    expect(waited, "504 Gateway Timeout", "no answer");
}

/// A gateway without devices whose config file is `yaml` with `status` as its status section.
fn broker_only(status: &str) -> String {
    format!("site: plant1\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\n{status}")
}

/// The status line of `GET /` on `page`, or the connection error.
fn get_page(page: std::net::SocketAddr) -> Result<String, std::io::ErrorKind> {
    use std::io::{BufRead as _, Write as _};
    let mut s = std::net::TcpStream::connect(page).map_err(|e| e.kind())?;
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .map_err(|e| e.kind())?;
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| e.kind())?;
    Ok(line.trim_end().to_owned())
}

/// Rewrites the config and waits for the reload report that `check` accepts (on the retained
/// `plant1/$agent/config`, seen by a fresh subscriber); returns it and the log position
/// from before the change.
fn reload_to(
    agent: &Ferrule,
    path: &Path,
    yaml: &str,
    check: impl Fn(&Value) -> bool,
) -> (Value, usize) {
    let from = agent.line_count();
    std::fs::write(path, yaml).expect("rewrite the config");
    agent.wait_for_line_after(from, "config reloaded", WAIT);
    let reports = mqtt::sub(agent.listener_addr().port(), "plant1/$agent/config");
    let report = reports.wait_for(WAIT, |m| check(&m.json())).json();
    (report, from)
}

fn changes(report: &Value) -> String {
    report["changes"].to_string()
}

const OK: Result<&str, std::io::ErrorKind> = Ok("HTTP/1.1 200 OK");

/// A gateway watching its config file, its page on loopback: the file and the page.
fn reloadable() -> (tempfile::TempDir, PathBuf, Ferrule, std::net::SocketAddr) {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = "status: {bind: \"127.0.0.1:0\"}\n";
    let path = Ferrule::write_config(dir.path(), &broker_only(status));
    let agent = Ferrule::run(&path);
    agent.wait_for_line("watching the config file", WAIT);
    let page = parse_addr(&agent.wait_for_line("status page listening", WAIT));
    (dir, path, agent, page)
}

#[test]
fn a_reload_moves_the_page_turns_it_off_and_on_and_exposes_it_on_the_same_port() {
    let (_dir, path, agent, old) = reloadable();
    assert_eq!(get_page(old).as_deref(), OK.as_deref());

    // A new address: the new listener serves, the old port is closed.
    let (new, _) = reload_page(&agent, &path, "127.0.0.2:0", "status page moved");
    assert_eq!(new.ip().to_string(), "127.0.0.2");
    assert_eq!(get_page(new).as_deref(), OK.as_deref());
    assert_eq!(
        get_page(old),
        Err(std::io::ErrorKind::ConnectionRefused),
        "the old port still answers"
    );

    // Off: nothing listens any more.
    let (report, _) = reload_to(&agent, &path, &broker_only(""), |r| {
        changes(r).contains("status page off")
    });
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(get_page(new), Err(std::io::ErrorKind::ConnectionRefused));

    // On again.
    let (local, _) = reload_page(&agent, &path, "127.0.0.1:0", "status page on at");
    assert_eq!(get_page(local).as_deref(), OK.as_deref());
    assert_eq!(session(local)["login_required"], false);

    // Exposed on the same port (the old listener holds it: it makes way): a login is now
    // required.
    let exposed = format!("0.0.0.0:{}", local.port());
    let (_, line) = reload_page(&agent, &path, &exposed, "status page moved");
    assert!(line.contains("login=true"), "{line}");
    assert_eq!(session(local)["login_required"], true);
}

/// Reloads with the status page on `bind`, expecting `note` in the report; the page's new
/// address and its `status page listening` line.
fn reload_page(
    agent: &Ferrule,
    path: &Path,
    bind: &str,
    note: &str,
) -> (std::net::SocketAddr, String) {
    let yaml = broker_only(&format!("status: {{bind: \"{bind}\"}}\n"));
    let (report, from) = reload_to(agent, path, &yaml, |r| changes(r).contains(note));
    assert_eq!(report["ok"], true, "{report}");
    let (_, line) = agent.wait_for_line_after(from, "status page listening", WAIT);
    (parse_addr(&line), line)
}

/// `GET /session` on `page`.
fn session(page: std::net::SocketAddr) -> Value {
    request(page, "GET /session HTTP/1.1\r\nHost: x\r\n\r\n").1
}

#[test]
fn a_reload_to_a_taken_address_keeps_the_old_page_and_says_why() {
    let (_dir, path, mut agent, old) = reloadable();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let wanted = broker_only(&format!("status: {{bind: \"127.0.0.1:{port}\"}}\n"));
    let (report, _) = reload_to(&agent, &path, &wanted, |r| {
        changes(r).contains("status page not changed")
    });
    let why = changes(&report);
    assert!(
        why.contains(&format!(
            "cannot listen for the status page on 127.0.0.1:{port}"
        )),
        "{report}"
    );
    assert!(why.contains("in use"), "{report}");
    // The old page stays in force.
    assert_eq!(get_page(old).as_deref(), OK.as_deref());

    // The old section stays the one in force: once the port is free, a SIGHUP applies the
    // same file.
    drop(taken);
    let from = agent.line_count();
    agent.sighup();
    agent.wait_for_line_after(from, "config reloaded", WAIT);
    let (_, line) = agent.wait_for_line_after(from, "status page listening", WAIT);
    assert_eq!(parse_addr(&line).port(), port);
    assert_eq!(
        get_page(std::net::SocketAddr::from(([127, 0, 0, 1], port))).as_deref(),
        OK.as_deref()
    );
    assert_eq!(get_page(old), Err(std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn a_reload_that_adds_a_tls_listener_keeps_the_page_listener_and_serves_it_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = common::certs::Pki::new();
    let line =
        ferrule::broker::passwd::entry("ann", "s3cret", std::num::NonZeroU32::MIN).expect("hash");
    std::fs::write(dir.path().join("passwd"), format!("{line}\n")).expect("passwd");
    let yaml = |tls: &str| {
        format!(
            "site: plant1\nbroker:\n  listeners:\n    - {{bind: \"127.0.0.1:0\"}}\n{tls}  password_file: passwd\nstatus: {{bind: \"0.0.0.0:0\"}}\n"
        )
    };
    let path = Ferrule::write_config(dir.path(), &yaml(""));
    let agent = Ferrule::run(&path);
    agent.wait_for_line("watching the config file", WAIT);
    let page = parse_addr(&agent.wait_for_line("status page listening", WAIT));
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], page.port()));
    assert_eq!(session(local)["login_required"], true);

    let tls = format!(
        "    - {{bind: \"127.0.0.1:0\", tls: {{cert: \"{}\", key: \"{}\"}}}}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    );
    // (The broker now wants a login too: the report is read from the log, where it is the same.)
    let from = agent.line_count();
    std::fs::write(&path, yaml(&tls)).expect("rewrite the config");
    let (_, reloaded) = agent.wait_for_line_after(from, "config reloaded", WAIT);
    assert!(
        reloaded.contains("status page settings changed") && reloaded.contains("listener kept"),
        "{reloaded}"
    );

    // The same port now speaks HTTPS with the listener's certificate, and no plain HTTP.
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "30", "--cacert"])
        .arg(pki.path("ca.pem"))
        .arg(format!("https://127.0.0.1:{}/session", page.port()))
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(body["login_required"], true, "{out:?}");
    assert_ne!(
        get_page(local).as_deref(),
        OK.as_deref(),
        "plain HTTP still served"
    );
}
