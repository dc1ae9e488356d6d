//! Self-test of the integration-test kit (`tests/common`) against the real peers, without
//! ferrule: Mosquitto with paho and mosquitto_pub/sub clients, and the pymodbus device read and
//! written by a real pymodbus client over TCP and RTU.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::modbus::{Refuse, Write};
use common::mqtt::{self, Protocol, SubOptions};
use common::process::{self, Proc};
use common::{fixture, python, Ferrule, ModbusDevice, Mosquitto, Table, TIMEOUT};

/// A real pymodbus client. Each argument is one request; each prints one line:
/// `OK v1 v2 ...`, `EXC <code>` or `TIMEOUT`. Requests: `rh|ri|rc|rd:unit:addr:count` (read
/// holding, input, coils, discrete), `wr:unit:addr:v` (FC06), `wm:unit:addr:v,v` (FC16),
/// `wc:unit:addr:0|1` (FC05), `wcm:unit:addr:1,0` (FC15).
const CLIENT: &str = r#"
import sys
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusIOException
target, ops = sys.argv[1], sys.argv[2:]
if target.startswith("rtu="):
    path, baud = target[4:].split("@")
    client = ModbusSerialClient(path, baudrate=int(baud), timeout=0.5, retries=0)
else:
    client = ModbusTcpClient("127.0.0.1", port=int(target), timeout=0.5, retries=0)
assert client.connect(), "cannot connect"
for op in ops:
    kind, unit, addr, arg = op.split(":")
    unit, addr = int(unit), int(addr)
    values = [int(v) for v in arg.split(",")]
    call = {
        "rh": lambda: client.read_holding_registers(addr, count=values[0], device_id=unit),
        "ri": lambda: client.read_input_registers(addr, count=values[0], device_id=unit),
        "rc": lambda: client.read_coils(addr, count=values[0], device_id=unit),
        "rd": lambda: client.read_discrete_inputs(addr, count=values[0], device_id=unit),
        "wr": lambda: client.write_register(addr, values[0], device_id=unit),
        "wm": lambda: client.write_registers(addr, values, device_id=unit),
        "wc": lambda: client.write_coil(addr, bool(values[0]), device_id=unit),
        "wcm": lambda: client.write_coils(addr, [bool(v) for v in values], device_id=unit),
    }[kind]
    try:
        r = call()
    except ModbusIOException:
        print("TIMEOUT", flush=True)
        continue
    if r.isError():
        print("EXC", r.exception_code, flush=True)
    elif kind in ("rc", "rd"):
        print("OK", *[int(b) for b in r.bits[: values[0]]], flush=True)
    elif kind in ("rh", "ri"):
        print("OK", *r.registers, flush=True)
    else:
        print("OK", flush=True)
client.close()
"#;

/// Runs [`CLIENT`] against `target` (a TCP port, or `rtu=<path>@<baud>`).
fn modbus_client(target: &str, ops: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(python());
    cmd.args(["-c", CLIENT, target]).args(ops);
    let done = process::run("pymodbus-client", &mut cmd, TIMEOUT);
    assert!(
        done.status.success(),
        "pymodbus client failed ({}):\n{}",
        done.status,
        done.tail()
    );
    done.stdout
}

fn write(fc: u8, unit: u8, table: Table, addr: u16, values: &[u16]) -> Write {
    Write {
        fc,
        unit,
        table,
        addr,
        values: values.to_vec(),
    }
}

#[test]
fn mosquitto_relays_acknowledged_messages_and_restarts_on_the_same_port() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    let subscription = mqtt::sub(port, "kit/#");

    mqtt::publish_many(port, "kit/many", 100, 1);
    let received = subscription.wait_for_count(100, TIMEOUT);
    let payloads: Vec<String> = received.iter().map(|m| m.text()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("msg-{i}")).collect();
    assert_eq!(
        payloads, expected,
        "QoS 1 messages from one publisher arrive complete and in order"
    );
    assert!(received
        .iter()
        .all(|m| m.topic == "kit/many" && m.qos == 1 && !m.retain));

    broker.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped broker still listens"
    );
    broker.start_again();
    assert_eq!(broker.port(), port);
    // paho reconnects and subscribes again by itself.
    subscription.wait_subscribed(2, TIMEOUT);
    mqtt::publish(port, "kit/after-restart", "back", 1);
    let message = subscription.wait_for_topic("kit/after-restart", TIMEOUT);
    assert_eq!(message.text(), "back");
    broker.wait_for_line("Received PUBLISH", TIMEOUT);
}

#[test]
fn retained_binary_and_json_payloads_reach_mosquitto_sub_and_paho() {
    let broker = Mosquitto::start();
    let port = broker.port();
    mqtt::publish_retained(port, "kit/state", r#"{"value":21.5}"#, 1);

    let dir = tempfile::tempdir().expect("temp dir");
    let binary = dir.path().join("payload.bin");
    std::fs::write(&binary, [0xff, 0x00, 0xfe]).expect("write payload");
    let binary = binary.to_str().expect("UTF-8 temp path");
    mqtt::publish_args(port, &["-t", "kit/bin", "-f", binary, "-r", "-q", "1"]);

    let lan = mqtt::sub_mosquitto(port, "kit/state");
    let state = lan.wait_for_topic("kit/state", TIMEOUT);
    assert!(
        state.retain,
        "a retained message is delivered with the retain flag"
    );
    assert_eq!(state.json()["value"], 21.5);

    let paho = mqtt::sub(port, "kit/+");
    let bin = paho.wait_for_topic("kit/bin", TIMEOUT);
    assert_eq!(bin.payload, vec![0xff, 0x00, 0xfe]);
    paho.wait_for_topic("kit/state", TIMEOUT);

    mqtt::publish_retained(port, "kit/state", "", 1);
    let fresh = mqtt::sub(port, "kit/state");
    fresh.assert_none_for(Duration::from_millis(300), |m| m.topic == "kit/state");
}

#[test]
fn mosquitto_checks_passwords_and_keeps_persistent_state_across_restarts() {
    let mut broker = Mosquitto::with_password("edge", "s3cret", &["persistence true"]);
    let port = broker.port();
    let creds = ["--user", "edge", "--password", "s3cret"];
    mqtt::publish_many_with(
        port,
        "kit/kept",
        1,
        1,
        "kept",
        &[&creds[..], &["--retain"]].concat(),
    );

    let mut wrong = Command::new(python());
    wrong
        .arg(fixture("mqtt_tool.py"))
        .args(["pub", "--port", &port.to_string(), "--topic", "x"]);
    wrong.args(["--user", "edge", "--password", "wrong"]);
    let refused = process::run("mqtt_tool", &mut wrong, TIMEOUT);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "bad password is refused:\n{}",
        refused.tail()
    );
    assert!(refused.lines.iter().any(|l| l.contains("CONNACK refused")));

    // SIGTERM makes mosquitto save its state; the retained message survives the restart.
    broker.stop();
    broker.start_again();
    let options = SubOptions {
        user: Some("edge".into()),
        password: Some("s3cret".into()),
        ..SubOptions::default()
    };
    let kept = mqtt::sub_with(port, &["kit/kept"], &options).wait_for_topic("kit/kept", TIMEOUT);
    assert!(kept.retain);
    assert_eq!(kept.text(), "kept");
}

#[test]
fn mqtt5_request_carries_response_topic_and_correlation_data() {
    let broker = Mosquitto::start();
    let port = broker.port();
    let v5 = SubOptions {
        protocol: Protocol::V5,
        ..SubOptions::default()
    };
    let responder = mqtt::sub_with(port, &["kit/req"], &v5);

    let requester =
        std::thread::spawn(move || mqtt::request(port, "kit/req", "42", b"corr-1", TIMEOUT));
    let request = responder.wait_for_topic("kit/req", TIMEOUT);
    assert_eq!(request.correlation_data.as_deref(), Some(&b"corr-1"[..]));
    let reply_to = request
        .response_topic
        .clone()
        .expect("request has a response topic");
    mqtt::publish_args(
        port,
        &[
            "-V",
            "mqttv5",
            "-t",
            &reply_to,
            "-m",
            "done",
            "-D",
            "publish",
            "correlation-data",
            "corr-1",
        ],
    );
    let reply = requester.join().expect("request thread");
    assert_eq!(reply.topic, reply_to);
    assert_eq!(reply.text(), "done");
    assert_eq!(reply.correlation_data.as_deref(), Some(&b"corr-1"[..]));
}

#[test]
fn modbus_device_serves_units_over_tcp_and_logs_writes() {
    let mut device = ModbusDevice::start(&[1, 2]);
    let port = device.port().to_string();

    device.set_holding(1, 100, &[1, 2, 65535]);
    device.set_holding(2, 100, &[7]);
    device.set_input(1, 0, &[300, 301]);
    device.set_coils(2, 5, &[true, false, true]);
    device.set_discrete(1, 9, &[true]);
    assert_eq!(device.get_holding(1, 100, 3), vec![1, 2, 65535]);
    assert_eq!(device.get_coils(2, 5, 3), vec![true, false, true]);

    let replies = modbus_client(
        &port,
        &[
            "rh:1:100:3",
            "rh:2:100:1",
            "ri:1:0:2",
            "rc:2:5:3",
            "rd:1:8:2",
            "rh:1:9999:2",
        ],
    );
    assert_eq!(
        replies,
        [
            "OK 1 2 65535",
            "OK 7",
            "OK 300 301",
            "OK 1 0 1",
            "OK 0 1",
            "EXC 2"
        ]
    );
    let reads = device.reads();
    assert_eq!(
        (reads[0].fc, reads[0].unit, reads[0].addr, reads[0].count),
        (3, 1, 100, 3)
    );
    assert_eq!(reads.len(), 5, "the refused read is not logged: {reads:?}");

    let replies = modbus_client(
        &port,
        &["wr:1:10:42", "wm:1:20:1,2,3", "wc:2:3:1", "wcm:2:0:1,0,1"],
    );
    assert_eq!(replies, ["OK"; 4]);
    assert_eq!(
        device.writes(),
        vec![
            write(6, 1, Table::Holding, 10, &[42]),
            write(16, 1, Table::Holding, 20, &[1, 2, 3]),
            write(5, 2, Table::Coils, 3, &[1]),
            write(15, 2, Table::Coils, 0, &[1, 0, 1]),
        ]
    );
    assert_eq!(device.get_holding(1, 20, 3), vec![1, 2, 3]);
    assert_eq!(device.get_coils(2, 0, 4), vec![true, false, true, true]);

    // The control channel rejects bad input with a reason and keeps serving.
    assert!(device
        .try_command("set 9 hr 0 1")
        .is_err_and(|e| e.contains("unit 9")));
    assert!(device.try_command("frobnicate").is_err());
    assert!(device.try_command("get 1 hr 0 0").is_err());
    assert_eq!(device.get_holding(1, 10, 1), vec![42]);

    // Restart on the same port: registers are back to zero.
    device.stop();
    assert!(TcpStream::connect(("127.0.0.1", device.port())).is_err());
    device.start_again();
    assert_eq!(device.port().to_string(), port);
    assert_eq!(modbus_client(&port, &["rh:1:100:1"]), ["OK 0"]);
}

#[test]
fn modbus_device_injects_faults() {
    let device = ModbusDevice::start(&[1, 2]);
    let port = device.port().to_string();
    device.set_holding(1, 10, &[5]);

    // freeze: the write is answered (FC06 echoes the request) but the value stays.
    device.freeze(1, Table::Holding, 10, 1);
    assert_eq!(
        modbus_client(&port, &["wr:1:10:99", "rh:1:10:1"]),
        ["OK", "OK 5"]
    );
    assert_eq!(device.get_holding(1, 10, 1), vec![5]);
    device.wait_for_write(TIMEOUT, |w| w.fc == 6 && w.values == [99]);

    // exception: reads touching the range are refused with that code, others are not.
    device.exception(1, Table::Holding, 200, 10, 2);
    device.exception_on(1, Table::Holding, 300, 1, 4, Refuse::Writes);
    assert_eq!(
        modbus_client(
            &port,
            &[
                "rh:1:205:1",
                "rh:1:195:10",
                "rh:1:180:10",
                "wr:1:300:1",
                "rh:1:300:1"
            ]
        ),
        ["EXC 2", "EXC 2", "OK 0 0 0 0 0 0 0 0 0 0", "EXC 4", "OK 0"]
    );

    // mute: a dead slave; the other unit on the same connection still answers.
    device.mute(2);
    let before = device.requests(2);
    assert_eq!(
        modbus_client(&port, &["rh:2:0:1", "rh:1:10:1"]),
        ["TIMEOUT", "OK 5"]
    );
    assert_eq!(
        device.requests(2),
        before + 1,
        "the muted unit saw the request"
    );
    device.unmute(2);
    assert_eq!(modbus_client(&port, &["rh:2:0:1"]), ["OK 0"]);

    device.clear_faults(None);
    assert_eq!(
        modbus_client(&port, &["rh:1:205:1", "wr:1:10:6", "rh:1:10:1"]),
        ["OK 0", "OK", "OK 6"]
    );

    // drop: the device closes open connections and keeps listening.
    let idle = device.wait_connections("the clients above to disconnect", TIMEOUT, |c| c.open == 0);
    let mut held = TcpStream::connect(("127.0.0.1", device.port())).expect("connect");
    device.wait_connections("the held connection", TIMEOUT, |c| {
        c.open == 1 && c.accepted == idle.accepted + 1
    });
    assert_eq!(device.drop_connections(), 1);
    held.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let mut buf = [0u8; 8];
    assert_eq!(
        held.read(&mut buf).expect("read after drop"),
        0,
        "the device closed the connection"
    );
    device.wait_connections("no open connections", TIMEOUT, |c| c.open == 0);
    assert_eq!(modbus_client(&port, &["rh:1:10:1"]), ["OK 6"]);
    assert_eq!(device.connections().accepted, idle.accepted + 2);
}

#[test]
fn modbus_device_serves_an_rtu_line_over_a_pty_pair() {
    let device = ModbusDevice::start_rtu(&[1, 3], 19200);
    let target = format!("rtu={}@19200", device.serial_path().display());
    device.set_holding(3, 0, &[11, 22]);
    assert_eq!(
        modbus_client(&target, &["rh:3:0:2", "wr:1:5:9"]),
        ["OK 11 22", "OK"]
    );
    assert_eq!(device.writes(), vec![write(6, 1, Table::Holding, 5, &[9])]);

    device.mute(3);
    assert_eq!(
        modbus_client(&target, &["rh:3:0:2", "rh:1:5:1"]),
        ["TIMEOUT", "OK 9"]
    );
    assert!(device.try_command("drop").is_err(), "drop is TCP only");
}

#[test]
fn ferrule_helper_parses_listener_lines_and_handles_signals() {
    assert!(
        Ferrule::bin().exists(),
        "cargo builds the ferrule binary for integration tests"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Ferrule::write_config(dir.path(), "site: kit\n");
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "site: kit\n"
    );

    // A stand-in that logs like ferrule: the helper does not care which binary it runs.
    let script = r#"
        echo "2026-01-01T00:00:00Z  INFO ferrule::broker: broker listening addr=127.0.0.1:18830" >&2
        echo "2026-01-01T00:00:00Z  INFO ferrule::broker: broker listening addr=127.0.0.1:18831 tls=true" >&2
        printf '\033[2m2026\033[0m INFO simulator listening \033[3maddr\033[0m=127.0.0.1:1502\n'
        echo "log=$RUST_LOG color=$NO_COLOR extra=$EXTRA"
        exec sleep 60
    "#;
    let mut fake = Ferrule::start_with(
        "/bin/sh",
        &["-c", script],
        &[("EXTRA", "yes"), ("RUST_LOG", "debug")],
    );
    assert_eq!(fake.listener_addr().to_string(), "127.0.0.1:18830");
    let addrs: Vec<String> = fake
        .listener_addrs(2)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(addrs, ["127.0.0.1:18830", "127.0.0.1:18831"]);
    assert_eq!(
        fake.simulator_addr().to_string(),
        "127.0.0.1:1502",
        "ANSI styling is stripped"
    );
    fake.wait_for_line("log=debug color=1 extra=yes", TIMEOUT);
    fake.wait_for_line(|l: &str| l.starts_with("log="), TIMEOUT);
    fake.sigterm();
    let status = fake.wait_exit(TIMEOUT);
    assert!(
        !status.success(),
        "SIGTERM ends `sleep` by signal: {status}"
    );

    let done = Ferrule::output_with(
        "/bin/sh",
        &["-c", "echo out; echo err >&2; exit 3"],
        &[],
        TIMEOUT,
    );
    assert_eq!(done.status.code(), Some(3));
    assert_eq!(done.stdout, ["out"]);
    assert!(done.lines.contains(&"err".to_owned()));
}

#[test]
fn dropping_a_child_kills_it() {
    let sleeper = Proc::spawn("sleeper", Command::new("sleep").arg("60"));
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", sleeper.pid()));
    assert!(proc_dir.exists());
    drop(sleeper);
    assert!(!proc_dir.exists(), "the child is killed and reaped on drop");
    assert!(fixture("modbus_device.py").exists());
}
