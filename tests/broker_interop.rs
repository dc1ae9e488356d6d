//! The Eclipse Paho interoperability suite (`../shared/peers/`, a client we did not write)
//! against the embedded broker: every MQTT 3.1.1 and MQTT 5 test, each in a process of its own
//! with a timeout, configured as the suite's README asks (anonymous clients, an ACL denying
//! `test/nosubscribe`, `max_keepalive 60`, an empty persistence file). The MQTT 5 suite is
//! split over three brokers run in parallel (its tests wait on keepalives, expiries and will
//! delays: about five minutes in one row); every test still runs, each against a broker
//! configured the same way.

mod common;

use std::process::Command;

use common::{fixture, python, Ferrule};

fn run_suite(version: &str, chunk: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("acl"),
        "topic deny test/nosubscribe\ntopic readwrite #\n",
    )
    .expect("acl");
    let yaml = format!(
        r#"
site: paho
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
  allow_anonymous: true
  acl_file: {acl}
  max_keepalive: 60s
  persistence_file: {state}
devices:
  - {{name: dev, tcp: "127.0.0.1:9", timeout: 100ms, points: [{{name: p, kind: holding, address: 0}}]}}
"#,
        acl = dir.path().join("acl").display(),
        state = dir.path().join("broker.db").display(),
    );
    let agent = Ferrule::run(&Ferrule::write_config(dir.path(), &yaml));
    let port = agent.listener_addr().port().to_string();
    let out = Command::new(python())
        .arg(fixture("paho_each.py"))
        .args([version, "127.0.0.1", &port])
        .args(chunk.map(|c| ["--chunk", c]).into_iter().flatten())
        .output()
        .expect("run the Paho suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Paho {version} suite {chunk:?}:\n{stdout}\n{}\nferrule:\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.tail()
    );
    assert!(stdout.contains("passed"), "{stdout}");
}

#[test]
fn paho_interoperability_mqtt_311() {
    run_suite("311", None);
}

#[test]
fn paho_interoperability_mqtt_5_first_third() {
    run_suite("5", Some("0/3"));
}

#[test]
fn paho_interoperability_mqtt_5_second_third() {
    run_suite("5", Some("1/3"));
}

#[test]
fn paho_interoperability_mqtt_5_last_third() {
    run_suite("5", Some("2/3"));
}
