//! The broker's state across ferrule restarts (`broker.persistence`, on by default under the
//! state directory): retained messages, persistent sessions (MQTT 3.1.1 clean session 0 and
//! MQTT 5 session expiry), their subscriptions, queued QoS 1/2 messages and unacknowledged
//! in-flight messages, with real clients on both sides of a SIGTERM restart; and after a
//! `kill -9`, what the persistence file promises to keep (retained messages and sessions).

mod common;

use std::path::Path;
use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions};
use common::raw::{self, Raw};
use common::wait::poll_until;
use common::{free_port, Ferrule};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let yaml = format!(
        r#"
site: b
broker:
  listeners: [{{bind: "127.0.0.1:{port}"}}]
devices:
  - {{name: dev, tcp: "127.0.0.1:9", timeout: 100ms, points: [{{name: p, kind: holding, address: 0}}]}}
"#
    );
    Ferrule::write_config(dir, &yaml)
}

fn session(id: &str, protocol: Protocol, qos: u8, extra: &[&str]) -> SubOptions {
    SubOptions {
        qos,
        protocol,
        client_id: Some(id.into()),
        clean: false,
        session_expiry: if protocol == Protocol::V5 { 3600 } else { 0 },
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        ..SubOptions::default()
    }
}

/// Rows of `table` for `client_id` in the persistence file (another reader, as a crash would
/// leave it).
fn stored(dir: &Path, table: &str, client_id: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("broker.db")).expect("open broker.db");
    db.query_row(
        &format!("SELECT count(*) FROM {table} WHERE client_id = ?1"),
        [client_id],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn retained_messages_and_persistent_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = config(dir.path(), port);
    let mut agent = Ferrule::run(&path);
    assert_eq!(agent.listener_addr().port(), port);

    // Retained messages, one with MQTT 5 properties, one set and cleared again.
    mqtt::publish_retained(port, "keep/a", "1", 1);
    let port_s = port.to_string();
    let out = mqtt::tool(
        &[
            "pub",
            "--port",
            &port_s,
            "--protocol",
            "5",
            "--topic",
            "keep/b",
            "--retain",
            "--qos",
            "1",
            "--user-property",
            "k=v",
            "--content-type",
            "text/plain",
            "--payload-template",
            "2",
        ],
        WAIT,
    );
    assert!(out.status.success(), "{}", out.tail());
    mqtt::publish_retained(port, "keep/c", "3", 1);
    mqtt::publish_retained(port, "keep/c", "", 1);

    // Persistent sessions go offline; messages queue for them; one holds an unacknowledged
    // message; one has nothing queued at all.
    let v311 = session("p311", Protocol::V311, 1, &[]);
    let v5 = session("p5", Protocol::V5, 2, &[]);
    drop(mqtt::sub_with(port, &["persist/#"], &v311));
    drop(mqtt::sub_with(port, &["persist/#", "other/+"], &v5));
    drop(mqtt::sub_with(
        port,
        &["idle/#"],
        &session("idle", Protocol::V311, 1, &[]),
    ));
    let careless = mqtt::sub_with(
        port,
        &["unacked/#"],
        &session("careless", Protocol::V5, 1, &["--no-ack"]),
    );
    mqtt::publish(port, "unacked/1", "owed", 1);
    careless.wait_for(WAIT, |m| m.topic == "unacked/1");
    drop(careless);
    for i in 1..=3 {
        mqtt::publish(port, &format!("persist/{i}"), &format!("q{i}"), 1);
    }
    mqtt::publish(port, "persist/2q", "exactly", 2);

    agent.sigterm();
    assert!(agent.wait_exit(WAIT).success(), "{}", agent.tail());
    assert!(
        agent
            .lines()
            .iter()
            .any(|l| l.contains("broker state saved")),
        "{}",
        agent.tail()
    );

    let agent = Ferrule::run(&path);
    assert_eq!(agent.listener_addr().port(), port);
    let restored = agent.wait_for_line("broker state restored", WAIT);
    // keep/a, keep/b and the agent's own retained states (b/$agent/state, b/dev/$state, b/dev/p);
    // not the `$SYS` values, which are regenerated.
    assert!(
        restored.contains("retained=5") && restored.contains("sessions=4"),
        "{restored}"
    );

    let late = mqtt::sub(port, "keep/#");
    late.wait_for_count(2, WAIT);
    let a = late.wait_for_topic("keep/a", WAIT);
    assert!(a.retain && a.text() == "1", "{a:?}");
    let b5 = mqtt::sub_with(
        port,
        &["keep/b"],
        &SubOptions {
            protocol: Protocol::V5,
            ..SubOptions::default()
        },
    );
    let b = b5.wait_for_topic("keep/b", WAIT);
    assert_eq!(b.user_properties, vec![("k".to_owned(), "v".to_owned())]);
    assert_eq!(b.content_type.as_deref(), Some("text/plain"));
    late.assert_none_for(Duration::from_millis(300), |m| m.topic == "keep/c");

    // The subscriptions came back: a message published now reaches the offline p5 session
    // through its `other/+` subscription from before the restart.
    mqtt::publish(port, "other/x", "routed", 1);
    // Session present, and the queued messages arrive in order.
    let idle = mqtt::connect(port, &["--client-id", "idle", "--no-clean"]);
    assert!(idle.session_present, "session present after a restart");
    for options in [&v311, &v5] {
        let back = mqtt::sub_with(port, &["persist/#"], options);
        back.wait_for(WAIT, |m| m.text() == "exactly");
        let got = back.wait_for_count(4, WAIT);
        let q1: Vec<String> = got
            .iter()
            .filter(|m| m.qos == 1 && m.topic.starts_with("persist/") && m.topic != "persist/2q")
            .map(|m| m.text())
            .collect();
        assert_eq!(q1, vec!["q1", "q2", "q3"], "{got:?}");
        if options.protocol == Protocol::V5 {
            back.wait_for(WAIT, |m| m.topic == "other/x" && m.text() == "routed");
        }
    }
    // The unacknowledged message is sent again, with DUP.
    let back = mqtt::sub_with(
        port,
        &["unacked/#"],
        &session("careless", Protocol::V5, 1, &[]),
    );
    let owed = back.wait_for(WAIT, |m| m.topic == "unacked/1");
    assert!(owed.dup && owed.text() == "owed", "{owed:?}");
}

#[test]
fn after_kill_9_retained_messages_and_sessions_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = config(dir.path(), port);
    let mut agent = Ferrule::run(&path);
    agent.listener_addr();
    mqtt::publish_retained(port, "crash/r", "kept", 1);
    drop(mqtt::sub_with(
        port,
        &["crash/#"],
        &session("crashy", Protocol::V311, 1, &[]),
    ));
    // Written within a second (the writer's flush interval): wait until it is on disk.
    poll_until("the session in broker.db", WAIT, || {
        (stored(dir.path(), "subscriptions", "crashy") == 1).then_some(())
    });
    agent.kill9();

    let agent = Ferrule::run(&path);
    agent.wait_for_line("broker state restored", WAIT);
    let r = mqtt::sub(port, "crash/#");
    assert_eq!(r.wait_for_topic("crash/r", WAIT).text(), "kept");
    mqtt::publish(port, "crash/new", "after", 1);
    let back = mqtt::sub_with(
        port,
        &["crash/#"],
        &session("crashy", Protocol::V311, 1, &[]),
    );
    back.wait_for(WAIT, |m| m.topic == "crash/new" && m.text() == "after");
}

/// The durability promise of QoS 1: every message the broker acknowledged to its publisher
/// for a persistent subscriber that is offline is delivered after a `kill -9` — 1,000 of them,
/// in order, to the real `mosquitto_sub -c` (the case rmqtt lost every message of).
#[test]
fn after_kill_9_every_acknowledged_qos1_message_reaches_a_persistent_subscriber() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = config(dir.path(), port);
    let mut agent = Ferrule::run(&path);
    agent.listener_addr();
    let session = [
        "-c",
        "-i",
        "keep1",
        "-q",
        "1",
        "-t",
        "durable/#",
        "-F",
        "%t %p",
    ];
    // Subscribe once (-E: exit as soon as the subscription is acknowledged), then go away.
    let first = mqtt::mosquitto_sub_once(port, &[&session[..], &["-E"]].concat());
    assert!(first.status.success(), "{}", first.tail());
    // Every message is acknowledged to the publisher (the helper asserts `ACKED 1000`).
    mqtt::publish_many_with(port, "durable/q", 1000, 1, "{i}", &[]);
    agent.kill9();

    let agent = Ferrule::run(&path);
    let restored = agent.wait_for_line("broker state restored", WAIT);
    assert!(restored.contains("queued=1000"), "{restored}");
    let back =
        mqtt::mosquitto_sub_once(port, &[&session[..], &["-C", "1000", "-W", "15"]].concat());
    let got: Vec<&String> = back
        .stdout
        .iter()
        .filter(|l| l.starts_with("durable/q "))
        .collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("durable/q {i}")).collect();
    assert_eq!(got.len(), 1000, "{}", back.tail());
    assert!(
        got.iter().zip(&expected).all(|(a, b)| *a == b),
        "out of order or altered: {:?}",
        &got[..10]
    );
}

/// A persistent session that subscribes to its own topic: for every QoS 1 PUBLISH it sends,
/// the PUBACK (sent only once the persistence file committed the message) comes before the
/// copy routed back to it. Real clients rely on it: the Eclipse Paho MQTT 5 client checks at
/// DISCONNECT that nothing it published is unacknowledged once it has seen its own message.
#[test]
fn a_client_gets_its_puback_before_its_own_message_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let agent = Ferrule::run(&config(dir.path(), port));
    agent.listener_addr();
    let mut c = Raw::open(port);
    c.send(&raw::connect("loopback", false, 60, false));
    let connack = c.read_packet(WAIT).expect("CONNACK");
    assert_eq!(connack[0], 0x20, "{connack:?}");
    let mut sub = 1u16.to_be_bytes().to_vec();
    sub.extend(raw::string("own/t"));
    sub.push(1);
    c.send(&raw::packet(0x82, &sub));
    let suback = c.read_packet(WAIT).expect("SUBACK");
    assert_eq!(suback[0], 0x90, "{suback:?}");
    const N: u16 = 50;
    for i in 1..=N {
        c.send(&raw::publish(
            "own/t",
            i.to_string().as_bytes(),
            1,
            i,
            false,
        ));
    }
    let mut acked = std::collections::HashSet::new();
    let mut received = 0;
    while received < N || acked.len() < usize::from(N) {
        let p = c.read_packet(WAIT).expect("a packet");
        match p[0] >> 4 {
            4 => {
                acked.insert(u16::from_be_bytes([p[1], p[2]]));
            }
            3 => {
                // (after the first byte) topic length, topic, packet id, payload
                let tlen = usize::from(u16::from_be_bytes([p[1], p[2]]));
                let at = 3 + tlen;
                let id = [p[at], p[at + 1]];
                let n: u16 = std::str::from_utf8(&p[at + 2..])
                    .expect("utf8")
                    .parse()
                    .expect("a number");
                assert!(
                    acked.contains(&n),
                    "message {n} came back before the PUBACK of its publish"
                );
                c.send(&raw::packet(0x40, &id));
                received += 1;
            }
            other => panic!("unexpected packet type {other}: {p:?}"),
        }
    }
}
