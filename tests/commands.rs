//! Write-back with real peers: pymodbus as the device, ferrule (the real binary), and
//! mosquitto_pub / paho-mqtt as the callers. Every rule of a command has a case here, and each
//! refused command is shown to leave the device untouched.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::modbus::Write;
use common::mqtt::{self, SubOptions};
use common::{Ferrule, ModbusDevice, Mosquitto, Table};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A sentinel no command of these tests writes.
const UNTOUCHED: u16 = 7777;

/// A config for unit 1 of `device` with `points` (YAML list items) and `extra` top-level YAML.
fn config(dir: &Path, device: &ModbusDevice, points: &str, extra: &str) -> PathBuf {
    let yaml = format!(
        r#"
site: w
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: dev
    tcp: "127.0.0.1:{port}"
    unit: 1
    poll: 100ms
    timeout: 1s
    points:
{points}
{extra}
"#,
        port = device.port(),
    );
    Ferrule::write_config(dir, &yaml)
}

/// Runs ferrule and waits until the device is online; returns it with its MQTT port.
fn start(config: &Path) -> (Ferrule, u16) {
    let agent = Ferrule::run(config);
    let port = agent.listener_addr().port();
    agent.wait_for_line("device state state=\"online\"", WAIT);
    (agent, port)
}

/// Publishes `payload` to `w/dev/{point}/set` with mosquitto_pub and returns its result (found
/// by `id`, which the payload must carry).
fn command(results: &mqtt::Subscription, port: u16, point: &str, payload: &str, id: &str) -> Value {
    mqtt::publish(port, &format!("w/dev/{point}/set"), payload, 1);
    results
        .wait_for(WAIT, |m| {
            m.topic == format!("w/dev/{point}/set/result") && m.json()["id"] == id
        })
        .json()
}

fn results(port: u16) -> mqtt::Subscription {
    mqtt::sub(port, "w/+/+/set/result")
}

#[test]
fn each_rule_refuses_its_command_and_the_registers_stay_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    for addr in [10, 11, 12, 13, 20, 21, 30, 31, 32] {
        device.set_holding(1, addr, &[UNTOUCHED]);
    }
    device.set(1, Table::Input, 0, &[UNTOUCHED]);
    let points = r#"
      - {name: sp, kind: holding, address: 10, type: u16, scale: 0.1, writable: {min: 0, max: 90, step: 0.5}}
      - {name: mode, kind: holding, address: 11, enum: {off: 0, auto: 1, manual: 2}, writable: true}
      - {name: ro, kind: holding, address: 12}
      - {name: offs, kind: holding, address: 13, offset: -40, writable: true}
      - {name: label, kind: holding, address: 20, type: string, length: 2, writable: true}
      - {name: arr, kind: holding, address: 30, type: i16, count: 3, writable: {min: -100, max: 100}}
      - {name: level, kind: input, address: 0}"#;
    let (_agent, port) = start(&config(dir.path(), &device, points, ""));
    let results = results(port);
    device.forget_logs();

    let refusals: &[(&str, &str, &str)] = &[
        ("sp", "95", "above_max"),
        ("sp", "-1", "below_min"),
        ("sp", "10.25", "not_on_step"),
        ("sp", "true", "wrong_type"),
        ("sp", r#""high""#, "wrong_type"),
        ("mode", r#""fast""#, "not_in_enum"),
        ("mode", "5", "not_in_enum"),
        ("ro", "1", "not_writable"),
        ("level", "1", "not_writable"),
        ("offs", "-41", "out_of_range"),
        ("offs", "65496", "out_of_range"),
        ("label", r#""ABCDE""#, "too_long"),
        ("label", "12", "wrong_type"),
        ("arr", "[1, 2]", "wrong_length"),
        ("arr", "[1, 2, 300]", "above_max"),
        ("arr", "7", "wrong_type"),
        ("nope", "1", "unknown_point"),
    ];
    for (i, (point, value, code)) in refusals.iter().enumerate() {
        let id = format!("r{i}");
        let payload = format!(r#"{{"value": {value}, "id": "{id}"}}"#);
        let j = command(&results, port, point, &payload, &id);
        assert_eq!(j["ok"], json!(false), "{point} {value}: {j}");
        assert_eq!(j["code"], json!(code), "{point} {value}: {j}");
        assert!(
            j["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{point} {value}: {j}"
        );
        assert!(j["ts"].is_string(), "{j}");
    }
    // A bad payload has no id to echo; an unknown device is answered on its own result topic.
    mqtt::publish(port, "w/dev/sp/set", "{", 1);
    let j = results
        .wait_for(WAIT, |m| m.json()["code"] == "bad_payload")
        .json();
    assert_eq!(j["ok"], json!(false));
    mqtt::publish(port, "w/ghost/x/set", r#"{"value": 1, "id": "g"}"#, 1);
    let j = results
        .wait_for(WAIT, |m| m.topic == "w/ghost/x/set/result")
        .json();
    assert_eq!(
        (j["code"].clone(), j["id"].clone()),
        (json!("unknown_device"), json!("g"))
    );

    for addr in [10, 11, 12, 13, 20, 21, 30, 31, 32] {
        assert_eq!(
            device.get_holding(1, addr, 1),
            vec![UNTOUCHED],
            "register {addr} was written by a refused command"
        );
    }
    assert_eq!(device.get(1, Table::Input, 0, 1), vec![UNTOUCHED]);
    assert_eq!(
        device.writes(),
        vec![],
        "refused commands never reach the device"
    );

    // The same points accept what their rules allow.
    let j = command(
        &results,
        port,
        "mode",
        r#"{"value": "manual", "id": "e"}"#,
        "e",
    );
    assert_eq!(
        (j["ok"].clone(), j["value"].clone()),
        (json!(true), json!(2)),
        "{j}"
    );
    assert_eq!(device.get_holding(1, 11, 1), vec![2]);
    let j = command(&results, port, "sp", r#"{"value": 12.5, "id": "s"}"#, "s");
    assert_eq!(j["value"], json!(12.5), "{j}");
    assert_eq!(device.get_holding(1, 10, 1), vec![125]);
    let j = command(
        &results,
        port,
        "label",
        r#"{"value": "AB", "id": "t"}"#,
        "t",
    );
    assert_eq!(j["value"], json!("AB"), "{j}");
    assert_eq!(device.get_holding(1, 20, 2), vec![0x4142, 0]);
    let j = command(
        &results,
        port,
        "arr",
        r#"{"value": [1, -2, 3], "id": "a"}"#,
        "a",
    );
    assert_eq!(j["value"], json!([1, -2, 3]), "{j}");
    assert_eq!(device.get_holding(1, 30, 3), vec![1, 0xFFFE, 3]);
    let j = command(&results, port, "offs", r#"{"value": -40, "id": "o"}"#, "o");
    assert_eq!(j["value"], json!(-40.0), "{j}");
    assert_eq!(device.get_holding(1, 13, 1), vec![0]);
    let fcs: Vec<(u8, u16)> = device.writes().iter().map(|w| (w.fc, w.addr)).collect();
    assert_eq!(fcs, vec![(6, 11), (6, 10), (16, 20), (16, 30), (6, 13)]);
}

#[test]
fn writes_disabled_refuses_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set_holding(1, 10, &[UNTOUCHED]);
    let points = "      - {name: sp, kind: holding, address: 10, writable: true}";
    let (_agent, port) = start(&config(
        dir.path(),
        &device,
        points,
        "commands: {writes: disabled}",
    ));
    let results = results(port);
    let j = command(&results, port, "sp", r#"{"value": 1, "id": "d"}"#, "d");
    assert_eq!(j["code"], json!("writes_disabled"), "{j}");
    assert_eq!(device.get_holding(1, 10, 1), vec![UNTOUCHED]);
    assert_eq!(device.writes(), vec![]);
}

#[test]
fn coils_forced_fc16_and_register_bits_use_the_right_function_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set_holding(1, 40, &[0xF0F0]);
    let yaml = format!(
        r#"
site: w
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: dev
    tcp: "127.0.0.1:{port}"
    poll: 100ms
    points:
      - {{name: run, kind: coil, address: 3, writable: true}}
      - {{name: valves, kind: coil, address: 8, count: 3, writable: true}}
      - {{name: f, kind: holding, address: 50, type: f32, order: CDAB, writable: true}}
      - {{name: flag0, kind: holding, address: 40, bit: 0, writable: true}}
  - name: quirk
    tcp: "127.0.0.1:{port}"
    force_fc16: true
    poll: 100ms
    points:
      - {{name: sp, kind: holding, address: 60, writable: true}}
"#,
        port = device.port()
    );
    let (_agent, port) = start(&Ferrule::write_config(dir.path(), &yaml));
    let results = mqtt::sub(port, "w/+/+/set/result");
    device.forget_logs();

    let j = command(&results, port, "run", r#"{"value": true, "id": "c"}"#, "c");
    assert_eq!(j["value"], json!(true), "{j}");
    let j = command(
        &results,
        port,
        "valves",
        r#"{"value": [true, false, true], "id": "v"}"#,
        "v",
    );
    assert_eq!(j["value"], json!([true, false, true]), "{j}");
    assert_eq!(device.get_coils(1, 8, 3), vec![true, false, true]);
    let j = command(&results, port, "f", r#"{"value": 21.5, "id": "f"}"#, "f");
    assert_eq!(j["value"], json!(21.5), "{j}");
    assert_eq!(
        device.get_holding(1, 50, 2),
        vec![0x0000, 0x41AC],
        "CDAB: low word first"
    );
    let j = command(
        &results,
        port,
        "flag0",
        r#"{"value": true, "id": "b"}"#,
        "b",
    );
    assert_eq!(j["value"], json!(true), "{j}");
    assert_eq!(
        device.get_holding(1, 40, 1),
        vec![0xF0F1],
        "the other bits are kept"
    );
    mqtt::publish(port, "w/quirk/sp/set", r#"{"value": 5, "id": "q"}"#, 1);
    let j = results
        .wait_for(WAIT, |m| m.topic == "w/quirk/sp/set/result")
        .json();
    assert_eq!(j["value"], json!(5), "{j}");

    let fcs: Vec<(u8, u16, Vec<u16>)> = device
        .writes()
        .into_iter()
        .map(|w: Write| (w.fc, w.addr, w.values))
        .collect();
    assert_eq!(
        fcs,
        vec![
            (5, 3, vec![1]),
            (15, 8, vec![1, 0, 1]),
            (16, 50, vec![0x0000, 0x41AC]),
            (6, 40, vec![0xF0F1]),
            (16, 60, vec![5]),
        ]
    );
}

#[test]
fn bit_writes_racing_with_fast_polls_lose_no_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    // The high byte belongs to someone else: it must survive every read-modify-write.
    device.set_holding(1, 40, &[0xA500]);
    let mut points = String::from("      - {name: word, kind: holding, address: 40, poll: 10ms}\n");
    for bit in 0..8 {
        points.push_str(&format!(
            "      - {{name: b{bit}, kind: holding, address: 40, bit: {bit}, poll: 10ms, writable: true}}\n"
        ));
    }
    let (_agent, port) = start(&config(dir.path(), &device, &points, ""));
    let results = results(port);
    let states = mqtt::sub(port, "w/dev/word");
    device.forget_logs();
    // Round 1: one client sets bits 0..7 back to back (paho, one connection), while the
    // register is polled every 10 ms.
    mqtt::publish_many_with(
        port,
        "w/dev/b{i}/set",
        8,
        1,
        r#"{"value": true, "id": "on{i}"}"#,
        &[],
    );
    let round1 = results.wait_for_count(8, WAIT);
    assert!(
        round1.iter().all(|m| m.json()["ok"] == json!(true)),
        "{round1:?}"
    );
    assert_eq!(device.get_holding(1, 40, 1), vec![0xA5FF]);
    // The device changes the high byte by itself: the next read-modify-writes must start from
    // the register as it is now, not from an earlier poll.
    device.set_holding(1, 40, &[0x5AFF]);
    // Round 2: clear bits 0..3.
    mqtt::publish_many_with(
        port,
        "w/dev/b{i}/set",
        4,
        1,
        r#"{"value": false, "id": "off{i}"}"#,
        &[],
    );
    let all = results.wait_for_count(12, WAIT);
    assert!(all.iter().all(|m| m.json()["ok"] == json!(true)), "{all:?}");
    assert_eq!(device.get_holding(1, 40, 1), vec![0x5AF0]);
    states.wait_for(WAIT, |m| m.json()["value"] == json!(0x5AF0));
    // Each write carried every earlier change: none was lost to a stale read.
    let values: Vec<u16> = device
        .writes()
        .iter()
        .map(|w| {
            assert_eq!((w.fc, w.addr), (6, 40), "{w:?}");
            w.values[0]
        })
        .collect();
    let mut expected = Vec::new();
    let mut word = 0xA500u16;
    for bit in 0..8 {
        word |= 1 << bit;
        expected.push(word);
    }
    word = 0x5AFF;
    for bit in 0..4 {
        word &= !(1 << bit);
        expected.push(word);
    }
    assert_eq!(values, expected);
}

#[test]
fn a_device_that_ignores_the_write_gives_readback_mismatch_and_offline_fails_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set_holding(1, 10, &[3]);
    let points = "      - {name: sp, kind: holding, address: 10, writable: true}";
    let (agent, port) = start(&config(dir.path(), &device, points, ""));
    let results = results(port);
    // pymodbus acknowledges writes to the frozen register and keeps its value.
    device.freeze(1, Table::Holding, 10, 1);
    let j = command(&results, port, "sp", r#"{"value": 42, "id": "m"}"#, "m");
    assert_eq!(j["ok"], json!(false), "{j}");
    assert_eq!(j["code"], json!("readback_mismatch"), "{j}");
    assert_eq!(j["value"], json!(3), "the value read back: {j}");
    assert_eq!(j["error"], json!("wrote 42 but the device reads back 3"));
    assert_eq!(
        device.writes().len(),
        1,
        "the write was sent once, never repeated"
    );
    assert_eq!(device.get_holding(1, 10, 1), vec![3]);

    // A dead device: commands fail at once with device_offline, and are not executed later.
    device.clear_faults(Some(1));
    device.mute(1);
    agent.wait_for_line("device state state=\"offline\"", WAIT);
    let j = command(&results, port, "sp", r#"{"value": 9, "id": "off"}"#, "off");
    assert_eq!(j["code"], json!("device_offline"), "{j}");
    device.unmute(1);
    let n = agent.line_count();
    agent.wait_for_line_after(n, "device answers again", WAIT);
    let j = command(
        &results,
        port,
        "sp",
        r#"{"value": 8, "id": "back"}"#,
        "back",
    );
    assert_eq!(j["ok"], json!(true), "{j}");
    let values: Vec<Vec<u16>> = device.writes().into_iter().map(|w| w.values).collect();
    assert_eq!(
        values,
        vec![vec![42], vec![8]],
        "the offline command was never written"
    );
}

#[test]
fn rate_limit_and_the_confirm_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let points = r#"
      - {name: slow, kind: holding, address: 10, writable: {rate_limit: 1h}}
      - {name: valve, kind: holding, address: 11, writable: {confirm: 1h}}
      - {name: quick, kind: holding, address: 12, writable: {confirm: 200ms}}"#;
    let (agent, port) = start(&config(dir.path(), &device, points, ""));
    let results = results(port);

    // At most one write per hour: the second is refused, the register keeps the first.
    let j = command(&results, port, "slow", r#"{"value": 1, "id": "r1"}"#, "r1");
    assert_eq!(j["ok"], json!(true), "{j}");
    let j = command(&results, port, "slow", r#"{"value": 2, "id": "r2"}"#, "r2");
    assert_eq!(j["code"], json!("rate_limited"), "{j}");
    assert_eq!(device.get_holding(1, 10, 1), vec![1]);

    // A set on a confirm point is held: an interim answer, nothing written.
    let pending = command(&results, port, "valve", r#"{"value": 5, "id": "v1"}"#, "v1");
    assert_eq!(pending["pending"], json!(true), "{pending}");
    assert_eq!(pending["code"], json!("awaiting_confirm"));
    assert_eq!(pending["confirm_topic"], json!("w/dev/valve/confirm"));
    assert_eq!(device.get_holding(1, 11, 1), vec![0]);
    // A confirmation with another id is refused; the command keeps waiting.
    mqtt::publish(port, "w/dev/valve/confirm", r#"{"id": "v0"}"#, 1);
    let j = results
        .wait_for(WAIT, |m| m.json()["code"] == "confirm_mismatch")
        .json();
    assert_eq!(j["ok"], json!(false), "{j}");
    assert_eq!(device.get_holding(1, 11, 1), vec![0]);
    // The matching confirmation, from another client (paho), executes it.
    mqtt::publish_many_with(
        port,
        "w/dev/valve/confirm",
        1,
        1,
        r#"{"id": "v1"}"#,
        &["--client-id", "supervisor"],
    );
    let done = results.wait_for(WAIT, |m| {
        m.json()["id"] == "v1" && m.json()["ok"] == json!(true)
    });
    assert_eq!(done.json()["value"], json!(5));
    assert_eq!(device.get_holding(1, 11, 1), vec![5]);
    let audit = agent.wait_for_line(
        |l: &str| {
            l.contains("ferrule::audit") && l.contains("id=\"v1\"") && l.contains("result=\"ok\"")
        },
        WAIT,
    );
    assert!(audit.contains("confirmed_by=\"supervisor\""), "{audit}");
    // Nothing is waiting any more.
    mqtt::publish(port, "w/dev/valve/confirm", r#"{"id": "v1"}"#, 1);
    results.wait_for(WAIT, |m| m.json()["code"] == "nothing_to_confirm");

    // A newer set replaces a held one; an unconfirmed one expires.
    command(&results, port, "valve", r#"{"value": 6, "id": "v2"}"#, "v2");
    mqtt::publish(port, "w/dev/valve/set", r#"{"value": 7, "id": "v3"}"#, 1);
    let j = results
        .wait_for(WAIT, |m| {
            m.json()["id"] == "v2" && m.json()["ok"] == json!(false)
        })
        .json();
    assert_eq!(j["code"], json!("superseded"), "{j}");
    command(&results, port, "quick", r#"{"value": 9, "id": "q"}"#, "q");
    let j = results
        .wait_for(WAIT, |m| {
            m.json()["id"] == "q" && m.json()["ok"] == json!(false)
        })
        .json();
    assert_eq!(j["code"], json!("confirm_timeout"), "{j}");
    assert_eq!(
        device.get_holding(1, 11, 2),
        vec![5, 0],
        "nothing else was written"
    );
}

#[test]
fn mqtt5_correlation_data_comes_back_with_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let points =
        "      - {name: sp, kind: holding, address: 10, type: i16, writable: {min: -5, max: 5}}";
    let (_agent, port) = start(&config(dir.path(), &device, points, ""));
    let ok = mqtt::request(
        port,
        "w/dev/sp/set",
        r#"{"value": -3, "id": "x1"}"#,
        &[0, 1, 0xfe],
        WAIT,
    );
    assert_eq!(ok.correlation_data.as_deref(), Some(&[0, 1, 0xfe][..]));
    let j = ok.json();
    assert_eq!(
        (j["id"].clone(), j["ok"].clone(), j["value"].clone()),
        (json!("x1"), json!(true), json!(-3))
    );
    let refused = mqtt::request(port, "w/dev/sp/set", "6", b"corr-2", WAIT);
    assert_eq!(refused.correlation_data.as_deref(), Some(&b"corr-2"[..]));
    assert_eq!(refused.json()["code"], json!("above_max"));
    assert_eq!(device.get_holding(1, 10, 1), vec![0xFFFD]);
}

#[test]
fn a_burst_of_1000_writes_keeps_its_order_and_every_one_gets_a_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let points = "      - {name: sp, kind: holding, address: 10, writable: true}";
    let (_agent, port) = start(&config(dir.path(), &device, points, ""));
    let results = mqtt::sub(port, "w/dev/sp/set/result");
    device.forget_logs();
    mqtt::publish_many_with(
        port,
        "w/dev/sp/set",
        1000,
        1,
        r#"{"value": {i}, "id": "{i}"}"#,
        &[],
    );
    let all = results.wait_for_count(1000, WAIT + Duration::from_secs(60));
    let ids: Vec<String> = all
        .iter()
        .map(|m| {
            let j = m.json();
            assert_eq!(j["ok"], json!(true), "{j}");
            j["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected, "results in publish order");
    let written: Vec<u16> = device.writes().iter().map(|w| w.values[0]).collect();
    assert_eq!(
        written,
        (0..1000).collect::<Vec<u16>>(),
        "writes in publish order"
    );
    assert_eq!(device.get_holding(1, 10, 1), vec![999]);
}

/// `mosquitto_passwd -b [-c] FILE USER PASSWORD`.
fn mosquitto_passwd(file: &Path, create: bool, user: &str, password: &str) {
    let mut cmd = std::process::Command::new(common::program(
        "mosquitto_passwd",
        "FERRULE_MOSQUITTO_PASSWD",
    ));
    if create {
        cmd.arg("-c");
    }
    cmd.arg("-b").arg(file).args([user, password]);
    let done = common::process::run("mosquitto_passwd", &mut cmd, WAIT);
    assert!(
        done.status.success(),
        "mosquitto_passwd failed:\n{}",
        done.tail()
    );
}

/// The example ACL of `configs/example.acl` (the one the README shows), as shipped.
fn example_acl() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/example.acl");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_broker_acl_decides_who_may_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set_holding(1, 10, &[UNTOUCHED]);
    let passwd = dir.path().join("passwd");
    mosquitto_passwd(&passwd, true, "operator", "op");
    mosquitto_passwd(&passwd, false, "viewer", "vw");
    mosquitto_passwd(&passwd, false, "supervisor", "sv");
    std::fs::write(dir.path().join("acl"), example_acl()).expect("acl");
    let yaml = format!(
        r#"
site: plant1
broker:
  listeners: [{{bind: "127.0.0.1:0", allow_anonymous: false}}]
  password_file: passwd
  acl_file: acl
devices:
  - name: boiler
    tcp: "127.0.0.1:{port}"
    poll: 100ms
    points:
      - {{name: sp, kind: holding, address: 10, writable: true}}
"#,
        port = device.port()
    );
    let (agent, port) = start(&Ferrule::write_config(dir.path(), &yaml));
    let results = mqtt::sub_with(
        port,
        &["plant1/boiler/sp/set/result"],
        &SubOptions {
            user: Some("viewer".into()),
            password: Some("vw".into()),
            ..SubOptions::default()
        },
    );
    let set = |user: &str, password: &str, version: &str, id: &str| {
        let payload = format!(r#"{{"value": 1, "id": "{id}"}}"#);
        mqtt::mosquitto_pub(
            port,
            &[
                "-V",
                version,
                "-u",
                user,
                "-P",
                password,
                "-t",
                "plant1/boiler/sp/set",
                "-m",
                &payload,
                "-q",
                "1",
            ],
        )
    };
    // The viewer and the supervisor may not set: MQTT 5 says so (0x87), 3.1.1 drops it.
    let refused = set("viewer", "vw", "mqttv5", "viewer5");
    assert!(
        refused.tail().contains("Not authorized"),
        "{}",
        refused.tail()
    );
    let refused = set("supervisor", "sv", "mqttv5", "sup5");
    assert!(
        refused.tail().contains("Not authorized"),
        "{}",
        refused.tail()
    );
    let dropped = set("viewer", "vw", "mqttv311", "viewer311");
    assert!(dropped.status.success(), "{}", dropped.tail());
    // The operator's command goes through, and the audit line names them.
    mqtt::publish_args(
        port,
        &[
            "-u",
            "operator",
            "-P",
            "op",
            "-i",
            "hmi-7",
            "-t",
            "plant1/boiler/sp/set",
            "-m",
            r#"{"value": 3, "id": "op"}"#,
            "-q",
            "1",
        ],
    );
    let j = results.wait_for(WAIT, |m| m.json()["id"] == "op").json();
    assert_eq!(j["ok"], json!(true), "{j}");
    let ids: Vec<Value> = results
        .messages()
        .iter()
        .map(|m| m.json()["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("op")],
        "only the operator's command was executed"
    );
    let values: Vec<Vec<u16>> = device.writes().into_iter().map(|w| w.values).collect();
    assert_eq!(values, vec![vec![3]]);
    let audit = agent.wait_for_line(
        |l: &str| l.contains("ferrule::audit") && l.contains("id=\"op\""),
        WAIT,
    );
    for field in [
        "client_id=hmi-7",
        "user=\"operator\"",
        "old=7777",
        "new=3",
        "result=\"ok\"",
    ] {
        assert!(audit.contains(field), "{field} missing from {audit}");
    }
}

#[test]
fn the_audit_trail_reaches_the_cloud_through_the_queue_after_an_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    device.set_holding(1, 10, &[4]);
    let mut cloud = Mosquitto::start_with(&["persistence true"]);
    let auditor = mqtt::sub_with(
        cloud.port(),
        &["w/$agent/audit"],
        &SubOptions {
            client_id: Some("auditor".into()),
            clean: false,
            ..SubOptions::default()
        },
    );
    let points = "      - {name: sp, kind: holding, address: 10, writable: {max: 10}}";
    let extra = format!(
        r#"commands: {{audit: publish}}
uplink:
  url: "mqtt://127.0.0.1:{cloud}"
  forward: [{{local: "w/$agent/audit", qos: 1}}]
  queue: {{path: queue.db, durability: normal}}
"#,
        cloud = cloud.port()
    );
    let (agent, port) = start(&config(dir.path(), &device, points, &extra));
    agent.wait_for_line("uplink connected", WAIT);
    let local_audit = mqtt::sub(port, "w/$agent/audit");
    cloud.stop();
    agent.wait_for_line("uplink disconnected", WAIT);

    let results = results(port);
    mqtt::publish_args(
        port,
        &[
            "-i",
            "hmi-9",
            "-t",
            "w/dev/sp/set",
            "-m",
            r#"{"value": 6, "id": "a1"}"#,
            "-q",
            "1",
        ],
    );
    command(&results, port, "sp", r#"{"value": 60, "id": "a2"}"#, "a2");
    local_audit.wait_for_count(2, WAIT);
    cloud.start_again();
    auditor.wait_subscribed(2, WAIT);
    let first = auditor.wait_for(WAIT, |m| m.json()["id"] == "a1").json();
    assert_eq!(first["client_id"], json!("hmi-9"));
    assert_eq!(first["source"], json!("lan"));
    assert_eq!(
        (
            first["old"].clone(),
            first["new"].clone(),
            first["ok"].clone()
        ),
        (json!(4), json!(6), json!(true))
    );
    assert_eq!(first["request"], json!(6.0));
    assert_eq!(first["device"], json!("dev"));
    assert_eq!(first["point"], json!("sp"));
    let second = auditor.wait_for(WAIT, |m| m.json()["id"] == "a2").json();
    assert_eq!(
        (second["ok"].clone(), second["code"].clone()),
        (json!(false), json!("above_max"))
    );
}

/// A command held for confirmation survives a reload that leaves its point as it was (the
/// device's line restarts, the command router is replaced): the confirmation after the reload
/// writes it. A reload that changes the held point ends the command with `point_changed`.
#[test]
fn a_held_command_survives_a_reload_that_does_not_touch_its_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let valve = "\n      - {name: valve, kind: holding, address: 11, writable: {confirm: 1h}}";
    let path = config(dir.path(), &device, valve, "");
    let (agent, port) = start(&path);
    agent.wait_for_line(|l: &str| l.contains("watching the config file"), WAIT);
    let results = results(port);
    let reload = |points: &str| {
        let from = agent.line_count();
        let text = std::fs::read_to_string(config(dir.path(), &device, points, "")).expect("read");
        std::fs::write(&path, text).expect("write");
        agent.wait_for_line_after(from, |l: &str| l.contains("config reloaded"), WAIT);
    };

    let held = command(&results, port, "valve", r#"{"value": 5, "id": "v1"}"#, "v1");
    assert_eq!(held["code"], json!("awaiting_confirm"), "{held}");
    // Another point is added to the device: its line restarts, the router is replaced.
    reload(&format!(
        "{valve}\n      - {{name: other, kind: holding, address: 12, writable: true}}"
    ));
    assert!(
        !results
            .messages()
            .iter()
            .any(|m| m.json()["id"] == "v1" && m.json()["pending"] != json!(true)),
        "the held command was ended by the reload: {:?}",
        results.messages()
    );
    mqtt::publish(port, "w/dev/valve/confirm", r#"{"id": "v1"}"#, 1);
    let done = results.wait_for(WAIT, |m| {
        m.json()["id"] == "v1" && m.json()["pending"] != json!(true)
    });
    assert_eq!(done.json()["ok"], json!(true), "{:?}", done.json());
    assert_eq!(device.get_holding(1, 11, 1), vec![5]);

    // Held again; then the reload changes the point itself.
    let held = command(&results, port, "valve", r#"{"value": 6, "id": "v2"}"#, "v2");
    assert_eq!(held["code"], json!("awaiting_confirm"), "{held}");
    reload("\n      - {name: valve, kind: holding, address: 11, writable: {confirm: 2h}}");
    let ended = results.wait_for(WAIT, |m| {
        m.json()["id"] == "v2" && m.json()["pending"] != json!(true)
    });
    assert_eq!(
        ended.json()["code"],
        json!("point_changed"),
        "{:?}",
        ended.json()
    );
    assert_eq!(device.get_holding(1, 11, 1), vec![5], "nothing written");
}
