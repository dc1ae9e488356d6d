//! Modbus RTU on shared serial buses, with real peers: pymodbus serving one end of a socat pty
//! pair, ferrule (the real binary) on the other, several unit ids on one line.
//!
//! The fault-isolation promise: a slave that never answers must not lower the poll rate of the
//! healthy slaves on its bus by more than 10%. The test compares two buses polled side by side
//! by one ferrule, under the same machine load and over the same window: bus A with two healthy
//! slaves, bus B with the same two plus a dead one. The window is counted in requests (no
//! durations are asserted), so a slow machine slows both buses alike.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::mqtt::{self, Subscription};
use common::{Ferrule, ModbusDevice, Table};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
/// Requests of bus A's first slave that make up the measuring window (≈ 10 s at 100 ms).
const WINDOW: u64 = 100;

fn bus(name: &str, device: &ModbusDevice) -> String {
    format!(
        "  - {{name: {name}, port: \"{}\", baud: 19200, parity: none}}\n",
        device.serial_path().display()
    )
}

/// A device on `bus` polling holding 0..1 (u16 `a`, i16 `b`) of `unit`.
fn device(name: &str, bus: &str, unit: u8, poll: &str, timeout: &str) -> String {
    format!(
        "  - name: {name}\n    bus: {bus}\n    unit: {unit}\n    poll: {poll}\n    timeout: {timeout}\n    points:\n      - {{name: a, kind: holding, address: 0}}\n      - {{name: b, kind: holding, address: 1, type: i16, writable: true}}\n"
    )
}

fn write_config(dir: &Path, buses: &[String], devices: &[String]) -> PathBuf {
    let yaml = format!(
        "site: rtu\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\nbuses:\n{}devices:\n{}",
        buses.concat(),
        devices.concat()
    );
    Ferrule::write_config(dir, &yaml)
}

fn wait_state(states: &Subscription, device: &str, state: &str) {
    let topic = format!("rtu/{device}/$state");
    states.wait_for(WAIT, |m| m.topic == topic && m.text() == state);
}

/// Request counts of each unit of `device`, read one after the other.
fn counts(device: &ModbusDevice, units: &[u8]) -> Vec<u64> {
    units.iter().map(|&u| device.requests(u)).collect()
}

/// Bus A: two healthy slaves. Bus B: the same two and a third that `fault` breaks. Both are
/// polled side by side by one ferrule; over the same window, B's healthy slaves must get at
/// least 90% of A's polls.
fn neighbours_keep_their_poll_rate(fault: impl Fn(&ModbusDevice)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let line_a = ModbusDevice::start_rtu(&[1, 2], 19200);
    let line_b = ModbusDevice::start_rtu(&[1, 2, 3], 19200);
    fault(&line_b);
    for line in [&line_a, &line_b] {
        line.set_holding(1, 0, &[11, 12]);
        line.set_holding(2, 0, &[21, 22]);
    }
    // Every request of the faulty slave costs its 200 ms timeout: twice the poll interval, so
    // without isolation bus B's healthy slaves would lose well over half of their polls.
    let config = write_config(
        dir.path(),
        &[bus("a", &line_a), bus("b", &line_b)],
        &[
            device("a1", "a", 1, "100ms", "200ms"),
            device("a2", "a", 2, "100ms", "200ms"),
            device("b1", "b", 1, "100ms", "200ms"),
            device("b2", "b", 2, "100ms", "200ms"),
            device("b3", "b", 3, "100ms", "200ms"),
        ],
    );
    let agent = Ferrule::run(&config);
    let port = agent.listener_addr().port();
    let states = mqtt::sub(port, "rtu/#");
    for d in ["a1", "a2", "b1", "b2"] {
        wait_state(&states, d, "online");
    }
    // b3 is isolated after three unanswered requests; its points say why.
    wait_state(&states, "b3", "offline");
    let bad = states.wait_for(WAIT, |m| {
        m.topic == "rtu/b3/a" && m.json()["quality"] == "bad"
    });
    let error = bad.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("no answer from unit 3"), "{error}");
    let good = states.wait_for(WAIT, |m| {
        m.topic == "rtu/b1/b" && m.json()["value"] == json!(12)
    });
    assert_eq!(good.json()["quality"], "good");

    // The window: from now until bus A's unit 1 has made WINDOW more requests.
    let a0 = counts(&line_a, &[1, 2]);
    let b0 = counts(&line_b, &[1, 2, 3]);
    common::wait::poll_until(
        format!("{WINDOW} more requests on bus A"),
        Duration::from_secs(120),
        || (line_a.requests(1) >= a0[0] + WINDOW).then_some(()),
    );
    let a1 = counts(&line_a, &[1, 2]);
    let b1 = counts(&line_b, &[1, 2, 3]);
    let healthy_a = (a1[0] - a0[0]) + (a1[1] - a0[1]);
    let healthy_b = (b1[0] - b0[0]) + (b1[1] - b0[1]);
    let faulty = b1[2] - b0[2];
    let counts = format!(
        "bus A healthy requests {healthy_a}, bus B healthy {healthy_b}, faulty slave {faulty}"
    );
    eprintln!("{counts}");
    let report = format!("{counts}\n{}", agent.tail());
    assert!(
        healthy_b * 10 >= healthy_a * 9,
        "the faulty slave lowered its neighbours' poll rate by more than 10%: {report}"
    );
    // Isolated: at most one probe per back-off interval (≥ 4 s here) within the ≈10 s window.
    assert!(
        faulty <= 4,
        "the faulty slave was polled too often: {report}"
    );
    // Healthy slaves on both buses kept polling at about their interval.
    assert!(healthy_a >= 2 * WINDOW - 4, "{report}");
    // The healthy slaves of bus B were never confused by the faulty slave's frames.
    let b1_values: Vec<serde_json::Value> = states
        .messages()
        .iter()
        .filter(|m| m.topic == "rtu/b1/a")
        .map(|m| m.json()["value"].clone())
        .collect();
    assert!(
        b1_values.iter().all(|v| *v == json!(11)),
        "{b1_values:?}\n{report}"
    );
}

#[test]
fn a_dead_slave_does_not_slow_the_healthy_slaves_of_its_bus() {
    neighbours_keep_their_poll_rate(|line| line.mute(3));
}

/// A slave that answers after the timeout: its late answers reach the bus while ferrule talks
/// to the next slave, and must neither be taken for that slave's answer nor slow it down.
#[test]
fn a_slave_answering_too_late_does_not_slow_or_confuse_its_bus() {
    neighbours_keep_their_poll_rate(|line| line.delay(3, Duration::from_millis(300)));
}

#[test]
fn a_slave_that_comes_back_is_restored_and_writes_go_over_the_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = ModbusDevice::start_rtu(&[1, 2], 19200);
    line.mute(2);
    line.set_holding(1, 0, &[7, 8]);
    line.set_holding(2, 0, &[9, 10]);
    // A short timeout keeps the probe interval (40 timeouts) short for the test.
    let config = write_config(
        dir.path(),
        &[bus("b", &line)],
        &[
            device("one", "b", 1, "100ms", "500ms"),
            device("two", "b", 2, "100ms", "50ms"),
        ],
    );
    let agent = Ferrule::run(&config);
    let port = agent.listener_addr().port();
    let states = mqtt::sub(port, "rtu/#");
    wait_state(&states, "one", "online");
    wait_state(&states, "two", "offline");

    // A command to the isolated slave fails at once; one to its neighbour is written over the
    // bus and read back.
    let results = mqtt::sub(port, "rtu/+/+/set/result");
    mqtt::publish(port, "rtu/two/b/set", r#"{"value": 5, "id": "w2"}"#, 1);
    let j = results.wait_for(WAIT, |m| m.json()["id"] == "w2").json();
    assert_eq!(
        (j["ok"].clone(), j["code"].clone()),
        (json!(false), json!("device_offline")),
        "{j}"
    );
    mqtt::publish(port, "rtu/one/b/set", r#"{"value": -3, "id": "w1"}"#, 1);
    let j = results.wait_for(WAIT, |m| m.json()["id"] == "w1").json();
    assert_eq!(
        (j["ok"].clone(), j["value"].clone()),
        (json!(true), json!(-3)),
        "{j}"
    );
    assert_eq!(line.get_holding(1, 1, 1), vec![(-3i16) as u16]);
    let write = line.wait_for_write(WAIT, |w| w.unit == 1 && w.addr == 1);
    assert_eq!((write.fc, write.table), (6, Table::Holding));
    assert!(
        line.writes().iter().all(|w| w.unit == 1),
        "nothing reached unit 2"
    );

    // The slave answers again: its next probe restores it, and its values are published.
    let n = states.count();
    line.unmute(2);
    states.wait_for(Duration::from_secs(60), |m| {
        m.topic == "rtu/two/$state" && m.text() == "online"
    });
    let back = states.wait_for(WAIT, |m| {
        m.topic == "rtu/two/a" && m.json()["quality"] == "good"
    });
    assert_eq!(back.json()["value"], json!(9));
    assert!(states.count() > n);
    agent.wait_for_line("device answers again", WAIT);
}

#[test]
fn an_unplugged_serial_adapter_is_reopened_when_it_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut line = ModbusDevice::start_rtu(&[1], 19200);
    line.set_holding(1, 0, &[31, 32]);
    let config = write_config(
        dir.path(),
        &[bus("usb", &line)],
        &[device("meter", "usb", 1, "100ms", "200ms")],
    );
    let agent = Ferrule::run(&config);
    let port = agent.listener_addr().port();
    let states = mqtt::sub(port, "rtu/#");
    wait_state(&states, "meter", "online");
    states.wait_for(WAIT, |m| {
        m.topic == "rtu/meter/a" && m.json()["value"] == json!(31)
    });

    line.unplug();
    wait_state(&states, "meter", "offline");
    let bad = states.wait_for(WAIT, |m| {
        m.topic == "rtu/meter/a" && m.json()["quality"] == "bad"
    });
    assert!(
        bad.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("device offline")),
        "{}",
        bad.text()
    );
    // While it is away, the path cannot be opened: ferrule says so and keeps trying.
    agent.wait_for_line("cannot open serial port", WAIT);

    let n = states.count();
    line.plug_in();
    line.set_holding(1, 0, &[41, 42]);
    states.wait_for(WAIT, |m| {
        m.topic == "rtu/meter/$state" && m.text() == "online"
    });
    states.wait_for(WAIT, |m| {
        m.topic == "rtu/meter/a" && m.json()["value"] == json!(41)
    });
    assert!(states.count() > n);
}
