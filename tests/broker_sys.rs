//! `$SYS/broker/...` statistics and the broker's limits with real clients: Mosquitto's topic
//! names and values, `#` never delivering `$SYS`, `max_connections`, `max_packet_size`,
//! `max_queued_messages` (drops counted in `$SYS` and logged), `max_inflight`, and
//! rate-limited refusal logs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions};
use common::process::Proc;
use common::raw::{self, Raw};
use common::{fixture, python, Ferrule};

const WAIT: Duration = Duration::from_secs(20);

fn agent(dir: &Path, broker: &str) -> (Ferrule, u16) {
    let yaml = format!(
        "site: b\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\n{broker}\ndevices:\n  - {{name: dev, \
         tcp: \"127.0.0.1:9\", timeout: 100ms, points: [{{name: p, kind: holding, address: 0}}]}}\n"
    );
    let agent = Ferrule::run(&Ferrule::write_config(dir, &yaml));
    let port = agent.listener_addr().port();
    (agent, port)
}

fn value(sub: &mqtt::Subscription, topic: &str, check: impl Fn(&str) -> bool) -> String {
    sub.wait_for(WAIT, |m| m.topic == topic && check(&m.text()))
        .text()
}

#[test]
fn sys_topics_use_mosquittos_names_and_hash_does_not_match_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path(), "  sys_interval: 1s");
    let sys = mqtt::sub(port, "$SYS/broker/#");
    let version = value(&sys, "$SYS/broker/version", |_| true);
    assert!(version.starts_with("ferrule "), "{version}");
    value(&sys, "$SYS/broker/uptime", |v| v.ends_with(" seconds"));
    value(&sys, "$SYS/broker/clients/connected", |v| {
        v.parse::<u32>().is_ok_and(|n| n >= 1)
    });
    for i in 0..5 {
        mqtt::publish_retained(port, &format!("r/{i}"), "x", 1);
    }
    value(&sys, "$SYS/broker/messages/received", |v| {
        v.parse::<u64>().is_ok_and(|n| n >= 5)
    });
    value(&sys, "$SYS/broker/retained messages/count", |v| {
        v.parse::<u64>().is_ok_and(|n| n >= 5)
    });
    value(&sys, "$SYS/broker/subscriptions/count", |v| {
        v.parse::<u64>().is_ok_and(|n| n >= 1)
    });
    value(&sys, "$SYS/broker/bytes/received", |v| {
        v.parse::<u64>().is_ok_and(|n| n > 0)
    });
    let m = sys.wait_for(WAIT, |m| m.topic == "$SYS/broker/version");
    assert!(m.retain, "$SYS values are retained");
    // mosquitto_sub reads them like Mosquitto's.
    let mosq = mqtt::sub_mosquitto(port, "$SYS/broker/clients/#");
    mosq.wait_for(WAIT, |m| m.topic == "$SYS/broker/clients/total");
    // `#` (and `+/...`) never deliver `$SYS`, live or retained.
    let everything = mqtt::sub_with(port, &["#", "+/broker/#"], &SubOptions::default());
    mqtt::publish(port, "plain/marker", "m", 1);
    everything.wait_for(WAIT, |m| m.topic == "plain/marker");
    let uptime_now = sys.count();
    sys.wait_for_count(uptime_now + 1, WAIT); // at least one more $SYS period went by
    assert!(
        everything
            .messages()
            .iter()
            .all(|m| !m.topic.starts_with('$')),
        "{:?}",
        everything.messages()
    );
}

#[test]
fn max_connections_max_packet_size_and_max_inflight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(
        dir.path(),
        "  max_connections: 3\n  max_packet_size: 1024\n  max_inflight: 2",
    );
    let port_s = port.to_string();
    let hold = |id: &str| {
        let mut cmd = Command::new(python());
        cmd.arg(fixture("mqtt_tool.py"))
            .args([
                "connect",
                "--port",
                &port_s,
                "--client-id",
                id,
                "--hold",
                "--exit-on-eof",
            ])
            .args(["--timeout", "0"])
            .env("PYTHONUNBUFFERED", "1");
        let p = Proc::spawn(id, &mut cmd);
        p.wait_for_line("CONNACK 0", WAIT);
        p
    };
    let first = hold("one");
    let _second = hold("two");
    // max_inflight 2: a client that never acknowledges gets two QoS 1 messages, no more.
    let stuck = mqtt::sub_with(
        port,
        &["inflight/#"],
        &SubOptions {
            client_id: Some("stuck".into()),
            extra: vec!["--no-ack".into()],
            ..SubOptions::default()
        },
    );
    assert_eq!(
        mqtt::connect(port, &[]).code,
        3,
        "server unavailable: limit reached"
    );
    assert_eq!(
        mqtt::connect(port, &["--protocol", "5"]).code,
        0x97,
        "quota exceeded: an administrative limit"
    );
    // A client taking over its own session is not a new connection.
    assert_eq!(mqtt::connect(port, &["--client-id", "two"]).code, 0);
    drop(first);
    poll_connect(port);

    // max_packet_size 1024: a bigger packet closes that connection; the broker goes on.
    let big = "x".repeat(2000);
    let out = mqtt::mosquitto_pub(port, &["-t", "big", "-m", &big, "-q", "1"]);
    assert!(!out.status.success(), "{}", out.tail());
    mqtt::publish(port, "inflight/1", "a", 1);
    for i in 2..=5 {
        mqtt::publish(port, &format!("inflight/{i}"), "a", 1);
    }
    stuck.wait_for_count(2, WAIT);
    stuck.assert_none_for(Duration::from_millis(500), |m| m.topic == "inflight/3");
    assert_eq!(stuck.count(), 2, "{:?}", stuck.messages());
    drop(agent);
}

/// Connects until a slot is free again (the broker sees the dropped client go).
fn poll_connect(port: u16) {
    common::wait::poll_until("a free connection slot", WAIT, || {
        (mqtt::connect(port, &[]).code == 0).then_some(())
    });
}

#[test]
fn full_queues_drop_messages_counted_and_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path(), "  max_queued_messages: 5\n  sys_interval: 1s");
    let options = SubOptions {
        client_id: Some("slow".into()),
        clean: false,
        protocol: Protocol::V311,
        ..SubOptions::default()
    };
    drop(mqtt::sub_with(port, &["full/#"], &options));
    mqtt::publish_many(port, "full/q", 12, 1);
    agent.wait_for_line("client queue full", WAIT);
    let sys = mqtt::sub(port, "$SYS/broker/publish/messages/dropped");
    sys.wait_for(WAIT, |m| m.text().parse::<u64>().is_ok_and(|n| n >= 7));
    // The session keeps the first five; the messages that did not fit were dropped when they
    // came (Mosquitto's rule).
    let back = mqtt::sub_with(port, &["full/#"], &options);
    let got = back.wait_for_count(5, WAIT);
    let texts: Vec<String> = got.iter().map(|m| m.text()).collect();
    assert_eq!(
        texts,
        (0..5).map(|i| format!("msg-{i}")).collect::<Vec<_>>()
    );
    back.assert_none_for(Duration::from_millis(300), |m| m.text() == "msg-5");
}

#[test]
fn every_refusal_is_logged_with_the_client_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path(), "  allow_anonymous: false");
    // Raw sockets: 40 refusals within well under a second.
    for i in 0..40 {
        let mut raw = Raw::open(port);
        raw.send(&raw::connect(&format!("guess-{i}"), true, 60, false));
        assert_eq!(
            raw.read_packet(WAIT),
            Some(vec![0x20, 0, 5]),
            "CONNACK 0x05"
        );
    }
    assert_eq!(mqtt::connect(port, &[]).code, 5);
    agent.wait_for_line("guess-39", WAIT);
    common::wait::poll_until("41 refusal lines", WAIT, || {
        let lines = agent.lines();
        let refused: Vec<&String> = lines.iter().filter(|l| l.contains("client refused")).collect();
        let named = |i: usize| {
            let id = format!("client_id=guess-{i} ");
            refused.iter().any(|l| l.contains(&id))
        };
        (refused.len() == 41 && (0..40).all(named)).then_some(())
    });
}
