//! Connection and session behaviour of the embedded broker, each with a real client (paho,
//! mosquitto_pub/sub) or, where real clients will not misbehave, a raw socket: client id
//! takeover and assignment, keepalive, wills, persistent sessions (offline queueing, redelivery
//! of unacknowledged messages, MQTT 5 session expiry) and MQTT 5 message expiry.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mqtt::{self, Protocol, SubOptions};
use common::process::Proc;
use common::raw::{self, Raw};
use common::{fixture, python, Ferrule};

const WAIT: Duration = Duration::from_secs(20);

fn agent(dir: &Path) -> (Ferrule, u16) {
    let yaml = r#"
site: b
broker:
  listeners: [{bind: "127.0.0.1:0"}]
devices:
  - {name: dev, tcp: "127.0.0.1:9", timeout: 100ms, points: [{name: p, kind: holding, address: 0}]}
"#;
    let agent = Ferrule::run(&Ferrule::write_config(dir, yaml));
    let port = agent.listener_addr().port();
    (agent, port)
}

/// `mqtt_tool.py <args>` running in the background (killed when dropped).
fn tool_process(name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(python());
    cmd.arg(fixture("mqtt_tool.py"))
        .args(args)
        .env("PYTHONUNBUFFERED", "1");
    Proc::spawn(name, &mut cmd)
}

fn persistent(client_id: &str, protocol: Protocol, qos: u8, extra: &[&str]) -> SubOptions {
    SubOptions {
        qos,
        protocol,
        client_id: Some(client_id.into()),
        clean: false,
        session_expiry: if protocol == Protocol::V5 { 3600 } else { 0 },
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        ..SubOptions::default()
    }
}

#[test]
fn a_second_connection_with_the_same_client_id_takes_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path());
    let port_s = port.to_string();
    for protocol in ["311", "5"] {
        let id = format!("twin-{protocol}");
        let first = tool_process(
            "first",
            &[
                "connect",
                "--port",
                &port_s,
                "--protocol",
                protocol,
                "--client-id",
                &id,
                "--hold",
                "--exit-on-eof",
                "--timeout",
                "0",
            ],
        );
        first.wait_for_line("CONNACK 0", WAIT);
        let second = mqtt::connect(port, &["--protocol", protocol, "--client-id", &id]);
        assert_eq!(second.code, 0);
        // The first connection is closed by the broker.
        first.wait_for_line("disconnected", WAIT);
    }
    agent.wait_for_line(
        "already connected, closing old connection",
        WAIT,
    );
}

#[test]
fn empty_client_ids_are_assigned_with_clean_session_and_refused_without() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    assert_eq!(
        mqtt::connect(port, &[]).code,
        0,
        "3.1.1, clean session, empty id"
    );
    let port_s = port.to_string();
    let out = mqtt::tool(&["connect", "--port", &port_s, "--protocol", "5"], WAIT);
    assert!(
        out.stdout.iter().any(|l| l.starts_with("ASSIGNED ")),
        "MQTT 5 gets an assigned client id:\n{}",
        out.tail()
    );
    // MQTT 3.1.1 with clean session 0 and an empty id: CONNACK 0x02 (identifier rejected).
    // (paho and mosquitto_pub refuse to send this, hence the raw socket.)
    let mut raw = Raw::open(port);
    raw.send(&raw::connect("", false, 60, false));
    let connack = raw.read_packet(WAIT).expect("CONNACK");
    assert_eq!(connack, vec![0x20, 0x00, 0x02]);
    assert!(raw.closed_within(WAIT));
}

#[test]
fn keepalive_zero_is_accepted_and_silent_clients_are_closed_after_one_and_a_half_times_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path());
    assert_eq!(mqtt::connect(port, &["--keepalive", "0"]).code, 0);
    let mut quiet = Raw::open(port);
    quiet.send(&raw::connect("quiet", true, 0, false));
    assert_eq!(quiet.read_packet(WAIT), Some(vec![0x20, 0x00, 0x00]));

    // Keepalive 2 s: a client that pings every second stays connected ...
    let mut pinger = Raw::open(port);
    pinger.send(&raw::connect("pinger", true, 2, false));
    assert_eq!(pinger.read_packet(WAIT), Some(vec![0x20, 0x00, 0x00]));
    for _ in 0..5 {
        // The client's own ping schedule (this is the behaviour under test, not a wait).
        std::thread::sleep(Duration::from_secs(1));
        pinger.send(&[0xC0, 0x00]);
        assert_eq!(pinger.read_packet(WAIT), Some(vec![0xD0]), "PINGRESP");
    }
    // ... and once silent, it is closed (after 3 s: 1.5 × 2 s).
    let silent_since = Instant::now();
    assert!(
        pinger.closed_within(WAIT),
        "the broker closes a silent client"
    );
    assert!(
        silent_since.elapsed() >= Duration::from_secs(2),
        "closed after {:?}, before the keepalive ran out",
        silent_since.elapsed()
    );
    agent.wait_for_line("has exceeded timeout", WAIT);
    // The keepalive-0 client was silent all along and is still connected.
    quiet.send(&[0xC0, 0x00]);
    assert_eq!(quiet.read_packet(WAIT), Some(vec![0xD0]));
}

#[test]
fn the_will_is_sent_on_an_abrupt_drop_and_not_on_a_clean_disconnect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    let wills = mqtt::sub(port, "will/#");
    for protocol in ["311", "5"] {
        let dropped = format!("will/dropped/{protocol}");
        let clean = format!("will/clean/{protocol}");
        let drop_args = [
            "--protocol",
            protocol,
            "--will-topic",
            &dropped,
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
            "--drop",
        ];
        assert_eq!(mqtt::connect(port, &drop_args).code, 0);
        let w = wills.wait_for(WAIT, |m| m.topic == dropped);
        assert_eq!(w.text(), "gone");
        let clean_args = [
            "--protocol",
            protocol,
            "--will-topic",
            &clean,
            "--will-payload",
            "no",
        ];
        assert_eq!(mqtt::connect(port, &clean_args).code, 0);
    }
    // mosquitto_sub killed with SIGKILL: its will goes out.
    // (stdbuf: mosquitto_sub's stdout is block-buffered on a pipe.)
    let mut sub = Proc::spawn(
        "mosquitto_sub",
        Command::new("stdbuf")
            .arg("-oL")
            .arg(common::program("mosquitto_sub", "FERRULE_MOSQUITTO_SUB"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "x",
                "-d",
                "--will-topic",
                "will/killed",
                "--will-payload",
                "k",
            ]),
    );
    sub.wait_for_line("SUBACK", WAIT);
    sub.kill();
    wills.wait_for(WAIT, |m| m.topic == "will/killed" && m.text() == "k");
    mqtt::publish(port, "will/marker", "m", 1);
    wills.wait_for(WAIT, |m| m.topic == "will/marker");
    wills.assert_none_for(Duration::from_millis(300), |m| {
        m.topic.starts_with("will/clean")
    });
}

#[test]
fn persistent_sessions_queue_while_offline_and_redeliver_unacknowledged_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    for protocol in [Protocol::V311, Protocol::V5] {
        let id = format!("durable-{protocol:?}");
        let topic = format!("q/{protocol:?}");
        let options = persistent(&id, protocol, 2, &[]);
        let first = mqtt::sub_with(port, &[&format!("{topic}/#")], &options);
        drop(first); // killed: offline, session kept
        for (i, qos) in [(1, "1"), (2, "1"), (3, "1"), (4, "2")] {
            let t = format!("{topic}/{i}");
            mqtt::publish_args(port, &["-t", &t, "-m", &format!("m{i}"), "-q", qos]);
        }
        // Reconnecting resumes the session: the queued messages arrive, in order (paho hands
        // a QoS 2 message over at PUBREL, so only the QoS 1 ones are compared for order).
        let again = mqtt::sub_with(port, &[&format!("{topic}/#")], &options);
        let got = again.wait_for_count(4, WAIT);
        let texts: Vec<String> = got
            .iter()
            .filter(|m| m.qos == 1)
            .map(|m| m.text())
            .collect();
        assert_eq!(texts, vec!["m1", "m2", "m3"], "{protocol:?}");
        assert!(
            got.iter().any(|m| m.text() == "m4" && m.qos == 2),
            "{got:?}"
        );
        drop(again);
        let resumed = if protocol == Protocol::V5 {
            mqtt::connect(
                port,
                &[
                    "--protocol",
                    "5",
                    "--client-id",
                    &id,
                    "--no-clean",
                    "--session-expiry",
                    "3600",
                ],
            )
        } else {
            mqtt::connect(port, &["--client-id", &id, "--no-clean"])
        };
        assert!(
            resumed.session_present,
            "{protocol:?}: session present on resume"
        );
    }

    // QoS 1 messages received but never acknowledged are sent again, with DUP, in their
    // original order, on reconnect (MQTT-4.4.0-1, 3.1.1 §4.6).
    for protocol in [Protocol::V311, Protocol::V5] {
        let id = format!("forgetful-{protocol:?}");
        let topic = format!("redo/{protocol:?}");
        let options = persistent(&id, protocol, 1, &["--no-ack"]);
        let careless = mqtt::sub_with(port, &[&format!("{topic}/#")], &options);
        for i in 1..=3 {
            mqtt::publish(port, &format!("{topic}/{i}"), &format!("again{i}"), 1);
        }
        let first = careless.wait_for_count(3, WAIT);
        assert!(first.iter().all(|m| !m.dup), "{first:?}");
        drop(careless);
        let options = persistent(&id, protocol, 1, &[]);
        let back = mqtt::sub_with(port, &[&format!("{topic}/#")], &options);
        let again = back.wait_for_count(3, WAIT);
        let texts: Vec<String> = again.iter().map(|m| m.text()).collect();
        assert_eq!(texts, vec!["again1", "again2", "again3"], "{protocol:?}");
        assert!(again.iter().all(|m| m.dup), "{again:?}");
    }
}

#[test]
fn mqtt5_session_expiry_and_message_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    // A session with a 1 s expiry is gone 1 s after its client left.
    let short = SubOptions {
        session_expiry: 1,
        ..persistent("brief", Protocol::V5, 1, &[])
    };
    drop(mqtt::sub_with(port, &["exp/#"], &short));
    // A session with a long expiry keeps messages; the one with a 1 s message expiry expires.
    let long = persistent("patient", Protocol::V5, 1, &[]);
    drop(mqtt::sub_with(port, &["exp/#"], &long));
    let publish = |topic: &str, expiry: &str| {
        let port = port.to_string();
        let out = mqtt::tool(
            &[
                "pub",
                "--port",
                &port,
                "--protocol",
                "5",
                "--topic",
                topic,
                "--qos",
                "1",
                "--message-expiry",
                expiry,
            ],
            WAIT,
        );
        assert!(out.status.success(), "{}", out.tail());
    };
    publish("exp/short", "1");
    publish("exp/long", "3600");
    // Session and message expiry are timers: let 1 s run out (with margin).
    std::thread::sleep(Duration::from_millis(2500));
    let gone = mqtt::connect(
        port,
        &[
            "--protocol",
            "5",
            "--client-id",
            "brief",
            "--no-clean",
            "--session-expiry",
            "1",
        ],
    );
    assert!(!gone.session_present, "the 1 s session expired");
    let back = mqtt::sub_with(port, &["exp/#"], &long);
    let m = back.wait_for(WAIT, |m| m.topic == "exp/long");
    let left = m.message_expiry.expect("the remaining expiry is sent");
    assert!((1..3600).contains(&left), "expiry counts down: {left}");
    mqtt::publish(port, "exp/marker", "x", 1);
    back.wait_for(WAIT, |m| m.topic == "exp/marker");
    assert!(
        back.messages().iter().all(|m| m.topic != "exp/short"),
        "the expired message is not delivered: {:?}",
        back.messages()
    );
}
