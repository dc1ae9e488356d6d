//! The whole path with real peers: pymodbus as the device, ferrule (the real binary) in the
//! middle, Mosquitto as the cloud broker, paho-mqtt and mosquitto_pub as clients.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mqtt::{self, SubOptions};
use common::{Ferrule, ModbusDevice, Mosquitto, Table};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A config polling unit 1 of `device`, forwarding everything of site `e2e` to `cloud`.
fn config(dir: &Path, device: &ModbusDevice, cloud: &Mosquitto) -> std::path::PathBuf {
    let yaml = format!(
        r#"
site: e2e
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: boiler
    tcp: "127.0.0.1:{port}"
    unit: 1
    poll: 200ms
    timeout: 1s
    points:
      - {{name: temperature, kind: holding, address: 100, type: f32, order: CDAB, unit: "°C"}}
      - {{name: level, kind: input, address: 7, type: i16, scale: 0.1}}
      - {{name: count, kind: holding, address: 120, type: u32, order: ABCD}}
      - {{name: running, kind: coil, address: 3, type: bool, writable: true}}
      - {{name: setpoint, kind: holding, address: 110, type: i16, scale: 0.1, writable: {{min: 0, max: 90}}}}
uplink:
  url: "mqtt://127.0.0.1:{cloud}"
  client_id: e2e-gateway
  forward: [{{local: "e2e/#", qos: 1}}]
  queue: {{path: queue.db, durability: normal}}
"#,
        port = device.port(),
        cloud = cloud.port(),
    );
    Ferrule::write_config(dir, &yaml)
}

fn value_of(m: &mqtt::Message) -> serde_json::Value {
    m.json()["value"].clone()
}

#[test]
fn device_values_reach_the_cloud_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let cloud = Mosquitto::start();
    let upstream = mqtt::sub(cloud.port(), "e2e/#");

    // f32 21.5 = 0x41AC0000, CDAB puts the low word first.
    device.set_holding(1, 100, &[0x0000, 0x41AC]);
    device.set(1, Table::Input, 7, &[(-123i16) as u16]);
    device.set_holding(1, 120, &[0x0001, 0x0002]);
    device.set_coils(1, 3, &[true]);

    let _agent = Ferrule::run(&config(dir.path(), &device, &cloud));

    let t = upstream.wait_for(WAIT, |m| m.topic == "e2e/boiler/temperature");
    let j = t.json();
    assert_eq!(j["value"], json!(21.5), "{j}");
    assert_eq!(j["quality"], "good");
    assert_eq!(j["unit"], "°C");
    assert!(
        j["ts"]
            .as_str()
            .is_some_and(|ts| ts.ends_with('Z') && ts.len() == 24),
        "{j}"
    );
    let level = upstream.wait_for(WAIT, |m| m.topic == "e2e/boiler/level");
    assert_eq!(value_of(&level), json!(-12.3));
    let count = upstream.wait_for(WAIT, |m| m.topic == "e2e/boiler/count");
    assert_eq!(value_of(&count), json!(65538));
    let running = upstream.wait_for(WAIT, |m| m.topic == "e2e/boiler/running");
    assert_eq!(value_of(&running), json!(true));
    let state = upstream.wait_for(WAIT, |m| m.topic == "e2e/boiler/$state");
    assert_eq!(state.text(), "online");
    upstream.wait_for(WAIT, |m| {
        m.topic == "e2e/$agent/state" && m.text() == "online"
    });
    // Retained upstream too: a late subscriber gets the last state at once.
    let late = mqtt::sub(cloud.port(), "e2e/boiler/temperature");
    let r = late.wait_for(WAIT, |_| true);
    assert!(r.retain, "point state is retained upstream: {r:?}");

    // A change in the device is published again, decoded.
    device.set_holding(1, 100, &[0x0000, 0xC1AC]); // -21.5
    upstream.wait_for(WAIT, |m| {
        m.topic == "e2e/boiler/temperature" && value_of(m) == json!(-21.5)
    });
}

#[test]
fn commands_write_the_device_and_refusals_leave_it_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let cloud = Mosquitto::start();
    let upstream = mqtt::sub(cloud.port(), "e2e/boiler/setpoint/#");
    let agent = Ferrule::run(&config(dir.path(), &device, &cloud));
    let local = agent.listener_addr().port();
    let results = mqtt::sub(local, "e2e/boiler/+/set/result");
    let states = mqtt::sub(local, "e2e/boiler/setpoint");
    states.wait_for(WAIT, |m| m.topic == "e2e/boiler/setpoint");

    // In range: written (scale 0.1 → raw 420), read back, result ok, new state published.
    mqtt::publish(
        local,
        "e2e/boiler/setpoint/set",
        r#"{"value": 42, "id": "c1"}"#,
        1,
    );
    let r = results.wait_for(WAIT, |m| m.json()["id"] == "c1");
    let j = r.json();
    assert_eq!(j["ok"], json!(true), "{j}");
    assert_eq!(j["value"], json!(42.0), "{j}");
    assert!(j["ts"].is_string());
    assert_eq!(device.get_holding(1, 110, 1), vec![420]);
    states.wait_for(WAIT, |m| value_of(m) == json!(42.0));
    // The result and the new state go upstream too.
    upstream.wait_for(WAIT, |m| {
        m.topic == "e2e/boiler/setpoint/set/result" && m.json()["id"] == "c1"
    });
    let writes = device.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        (writes[0].fc, writes[0].addr, writes[0].values.clone()),
        (6, 110, vec![420])
    );

    // Out of range: refused with a reason, never written.
    mqtt::publish(
        local,
        "e2e/boiler/setpoint/set",
        r#"{"value": 500, "id": "c2"}"#,
        1,
    );
    let j = results.wait_for(WAIT, |m| m.json()["id"] == "c2").json();
    assert_eq!(j["ok"], json!(false), "{j}");
    assert_eq!(j["code"], "above_max");
    assert_eq!(j["error"], "500 above max 90");
    // Bad payloads, read-only and unknown points are refused the same way.
    mqtt::publish(local, "e2e/boiler/setpoint/set", "forty-two", 1);
    let j = results
        .wait_for(WAIT, |m| m.json()["code"] == "bad_payload")
        .json();
    assert_eq!(j["ok"], json!(false));
    mqtt::publish(local, "e2e/boiler/level/set", "1", 1);
    results.wait_for(WAIT, |m| {
        m.topic == "e2e/boiler/level/set/result" && m.json()["code"] == "not_writable"
    });
    mqtt::publish(local, "e2e/boiler/nope/set", "1", 1);
    results.wait_for(WAIT, |m| {
        m.topic == "e2e/boiler/nope/set/result" && m.json()["code"] == "unknown_point"
    });
    assert_eq!(
        device.get_holding(1, 110, 1),
        vec![420],
        "refused commands must not touch the register"
    );
    assert_eq!(
        device.writes().len(),
        1,
        "refused commands never reach the device"
    );

    // A coil, with a bare value.
    mqtt::publish(local, "e2e/boiler/running/set", "true", 1);
    let j = results
        .wait_for(WAIT, |m| m.topic == "e2e/boiler/running/set/result")
        .json();
    assert_eq!(
        (j["ok"].clone(), j["value"].clone()),
        (json!(true), json!(true)),
        "{j}"
    );
    assert_eq!(device.get_coils(1, 3, 1), vec![true]);
    assert_eq!(device.writes().last().map(|w| w.fc), Some(5));
}

#[test]
fn mqtt5_callers_get_the_result_on_their_response_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let cloud = Mosquitto::start();
    let agent = Ferrule::run(&config(dir.path(), &device, &cloud));
    let local = agent.listener_addr().port();
    agent.wait_for_line("device state state=\"online\"", WAIT);
    let reply = mqtt::request(local, "e2e/boiler/setpoint/set", "12.5", b"corr-7", WAIT);
    assert_eq!(reply.correlation_data.as_deref(), Some(&b"corr-7"[..]));
    let j = reply.json();
    assert_eq!(j["ok"], json!(true), "{j}");
    assert_eq!(j["value"], json!(12.5));
    assert_eq!(device.get_holding(1, 110, 1), vec![125]);
}

#[test]
fn an_unreachable_device_is_offline_and_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut device = ModbusDevice::start(&[1]);
    let cloud = Mosquitto::start();
    let agent = Ferrule::run(&config(dir.path(), &device, &cloud));
    let local = agent.listener_addr().port();
    let states = mqtt::sub_with(
        local,
        &["e2e/boiler/$state", "e2e/boiler/temperature"],
        &SubOptions::default(),
    );
    states.wait_for(WAIT, |m| {
        m.topic.ends_with("$state") && m.text() == "online"
    });

    device.stop();
    let bad = states.wait_for(WAIT, |m| {
        m.topic.ends_with("temperature") && m.json()["quality"] == "bad"
    });
    assert!(
        bad.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{:?}",
        bad.text()
    );
    assert!(bad.json()["value"].is_null());
    states.wait_for(WAIT, |m| {
        m.topic.ends_with("$state") && m.text() == "offline"
    });
    // A command now fails fast instead of waiting for the device.
    let results = mqtt::sub(local, "e2e/boiler/setpoint/set/result");
    mqtt::publish(local, "e2e/boiler/setpoint/set", "10", 1);
    let j = results.wait_for(WAIT, |_| true).json();
    assert_eq!(
        (j["ok"].clone(), j["code"].clone()),
        (json!(false), json!("device_offline")),
        "{j}"
    );

    device.start_again();
    device.set_holding(1, 100, &[0x0000, 0x41AC]);
    let n = states.count();
    states.wait_for(WAIT, |m| {
        m.topic.ends_with("$state") && m.text() == "online"
    });
    // The restarted device starts from zeros; the value set after it is what ends up published.
    let back = states.wait_for(WAIT, |m| {
        m.topic.ends_with("temperature") && value_of(m) == json!(21.5)
    });
    assert_eq!(back.json()["quality"], "good");
    assert!(states.count() > n);
}
