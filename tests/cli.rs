//! The command line as a user meets it: `check`, `run`, `simulate` and `demo`, with exit codes,
//! one-line errors and clean shutdown on SIGTERM.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::mqtt;
use common::process::Finished;
use common::{python, Ferrule};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check(path: &Path) -> Finished {
    let path = path.to_str().expect("UTF-8 path");
    Ferrule::output(&["check", "--config", path], WAIT)
}

#[test]
fn check_accepts_the_shipped_configs_with_a_summary() {
    for name in [
        "configs/demo.yaml",
        "configs/example.yaml",
        "configs/gateway.yaml",
    ] {
        let out = check(&repo(name));
        assert_eq!(out.status.code(), Some(0), "{name}:\n{}", out.tail());
        let text = out.stdout.join("\n");
        assert!(text.contains("valid"), "{text}");
        assert!(text.contains("Modbus request(s) per poll cycle"), "{text}");
    }
    let out = check(&repo("configs/demo.yaml"));
    let text = out.stdout.join("\n");
    assert!(
        text.contains("2 device(s), 9 point(s), 5 Modbus request(s) per poll cycle"),
        "{text}"
    );
    // The positional form works as well.
    let demo = repo("configs/demo.yaml");
    let out = Ferrule::output(&["check", demo.to_str().expect("UTF-8")], WAIT);
    assert_eq!(out.status.code(), Some(0), "{}", out.tail());
}

#[test]
fn check_reports_every_error_with_its_location_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = r#"site: plant1
devices:
  - name: boiler
    tcp: "10.0.0.5:502"
    poll: 2
    points:
      - {name: temp, kind: holding, address: 100, type: f32}
      - {name: temp2, kind: holdng, address: 300}
      - {name: sp, kind: holding, address: 101, type: i16}
  - name: "bad/name"
    tcp: "10.0.0.6:502"
    points:
      - {name: x, kind: coil, address: 1, adress: 2}
uplink:
  url: "http://cloud.example.com"
"#;
    let path = Ferrule::write_config(dir.path(), bad);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", out.tail());
    let errors: Vec<&String> = out
        .lines
        .iter()
        .filter(|l| l.contains("config.yaml:") || l.contains(".yaml:"))
        .collect();
    let text = out.lines.join("\n");
    for (line_col, fragment) in [
        (":5:11:", "devices[0].poll"),
        (":8:29:", "devices[0].points[1].kind"),
        (":9:", "devices[0].points[2]"),
        (":10:", "devices[1].name"),
        (":13:", "adress"),
        (":15:", "uplink.url"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(line_col) && e.contains(fragment)),
            "no error at {line_col} about {fragment} in:\n{text}"
        );
    }
    assert!(text.contains("did you mean `address`"), "{text}");
    assert!(text.contains("overlaps point `temp`"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn unreadable_config_files_get_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "# nothing here\n").expect("write");
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"site: a\n\xff\xfe\n").expect("write");
    let cases = [
        (dir.path().join("missing.yaml"), "cannot read"),
        (dir.path().to_path_buf(), "is a directory"),
        (empty, "is empty"),
        (binary, "not valid UTF-8"),
    ];
    for (path, expected) in cases {
        let out = check(&path);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            path.display(),
            out.tail()
        );
        let lines: Vec<&String> = out.lines.iter().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {}: {lines:?}", path.display());
        assert!(
            lines[0].contains(expected),
            "{}: {}",
            path.display(),
            lines[0]
        );
        assert!(!lines[0].contains("panicked"));
    }
    let out = Ferrule::output(&["check"], WAIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.tail());
}

#[test]
fn run_drains_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = r#"
site: t
broker: {listeners: [{bind: "127.0.0.1:0"}]}
devices:
  - {name: d, tcp: "127.0.0.1:9", timeout: 100ms, points: [{name: p, kind: holding, address: 0}]}
"#;
    let mut agent = Ferrule::run(&Ferrule::write_config(dir.path(), yaml));
    agent.listener_addr();
    agent.wait_for_line("ferrule running", WAIT);
    agent.sigterm();
    let status = agent.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", agent.tail());
    agent.wait_for_line("stopped", WAIT);
}

#[test]
fn demo_shows_live_values_and_applies_commands() {
    let mut demo = Ferrule::start(&["demo", "--listen", "127.0.0.1:0"]);
    let port = demo.listener_addr().port();
    let sub = mqtt::sub_mosquitto(port, "demo/#");
    // Live values: the simulated temperature moves between two polls.
    let first = sub
        .wait_for(WAIT, |m| m.topic == "demo/boiler/temperature")
        .json()["value"]
        .clone();
    sub.wait_for(WAIT, |m| {
        m.topic == "demo/boiler/temperature" && m.json()["value"] != first
    });
    sub.wait_for(WAIT, |m| {
        m.topic == "demo/boiler/$state" && m.text() == "online"
    });

    mqtt::publish(port, "demo/boiler/setpoint/set", "42", 1);
    sub.wait_for(WAIT, |m| {
        m.topic == "demo/boiler/setpoint" && m.json()["value"] == json!(42.0)
    });
    let result = sub
        .wait_for(WAIT, |m| m.topic == "demo/boiler/setpoint/set/result")
        .json();
    assert_eq!(result["ok"], json!(true), "{result}");

    demo.sigterm();
    assert_eq!(demo.wait_exit(WAIT).code(), Some(0), "{}", demo.tail());
}

#[test]
fn demo_on_a_port_in_use_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Ferrule::output(&["demo", "--listen", &addr], WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", out.tail());
    let errors: Vec<&String> = out
        .lines
        .iter()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.tail());
    assert!(
        errors[0].contains(&addr) && errors[0].contains("already in use"),
        "{}",
        errors[0]
    );
}

/// `simulate` serves the config's register layout to a real Modbus client (pymodbus).
#[test]
fn simulate_serves_the_point_map_to_a_real_client() {
    let demo = repo("configs/demo.yaml");
    let sim = Ferrule::start(&[
        "simulate",
        "--config",
        demo.to_str().expect("UTF-8"),
        "--bind",
        "127.0.0.1:0",
    ]);
    let port = sim.simulator_addr().port();
    // Unit 2 `limit` (holding 110) starts mid-range (250); a write sticks; unit 9 is unknown.
    let script = r#"
import sys
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=2, retries=0)
assert c.connect()
r = c.read_holding_registers(110, count=1, device_id=2); print("limit", r.registers[0])
c.write_register(110, 321, device_id=2)
r = c.read_holding_registers(110, count=1, device_id=2); print("after", r.registers[0])
r = c.read_input_registers(0, count=3, device_id=1); print("inputs", len(r.registers))
r = c.read_holding_registers(0, count=1, device_id=9); print("unknown", r.exception_code if r.isError() else "ok")
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("limit 250"), "{text}");
    assert!(text.contains("after 321"), "{text}");
    assert!(text.contains("inputs 3"), "{text}");
    assert!(
        text.contains("unknown 11"),
        "gateway target exception for an unknown unit: {text}"
    );
}
