//! Message delivery rules of the embedded broker with real clients: overlapping subscriptions,
//! `$` topics and wildcards, unsubscribe, QoS 2 exactly-once, the MQTT 5 properties and
//! subscription options, and malformed packets on a raw socket.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions};
use common::raw::{self, Raw};
use common::Ferrule;

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

fn options(protocol: Protocol, qos: u8, extra: &[&str]) -> SubOptions {
    SubOptions {
        qos,
        protocol,
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        ..SubOptions::default()
    }
}

fn pub5(port: u16, topic: &str, extra: &[&str]) {
    let port = port.to_string();
    let mut args = vec!["pub", "--port", &port, "--protocol", "5", "--topic", topic];
    args.extend_from_slice(extra);
    let out = mqtt::tool(&args, WAIT);
    assert!(out.status.success(), "{}", out.tail());
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    let filters = ["ov/#", "ov/+/x", "ov/a/x"];
    let v311 = mqtt::sub_with(
        port,
        &filters,
        &options(Protocol::V311, 0, &["--qos-each", "0,2,1"]),
    );
    let v5 = mqtt::sub_with(
        port,
        &filters,
        &options(Protocol::V5, 2, &["--sub-id", "7"]),
    );
    let mosq = mqtt::sub_mosquitto(port, "ov/#");
    let mosq_overlap = mqtt::sub_mosquitto(port, "ov/+/x");
    mqtt::publish(port, "ov/a/x", "once", 2);
    mqtt::publish(port, "ov/marker", "end", 1);
    for sub in [&v311, &v5] {
        sub.wait_for(WAIT, |m| m.topic == "ov/marker");
        let copies: Vec<_> = sub
            .messages()
            .into_iter()
            .filter(|m| m.topic == "ov/a/x")
            .collect();
        assert_eq!(copies.len(), 1, "one copy: {copies:?}");
        assert_eq!(copies[0].qos, 2, "at the highest granted QoS: {copies:?}");
    }
    let ids = &v5
        .messages()
        .into_iter()
        .find(|m| m.topic == "ov/a/x")
        .expect("copy")
        .subscription_ids;
    assert!(ids.iter().all(|id| *id == 7) && !ids.is_empty(), "{ids:?}");
    mosq.wait_for(WAIT, |m| m.topic == "ov/marker");
    mosq_overlap.wait_for(WAIT, |m| m.topic == "ov/a/x");
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards_and_unsubscribe_stops_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    let hash = mqtt::sub(port, "#");
    let plus = mqtt::sub_with(port, &["+/x", "+/+"], &options(Protocol::V5, 1, &[]));
    let dollar = mqtt::sub(port, "$private/#");
    mqtt::publish(port, "$private/x", "hidden", 1);
    mqtt::publish(port, "public/x", "seen", 1);
    dollar.wait_for(WAIT, |m| m.topic == "$private/x");
    hash.wait_for(WAIT, |m| m.topic == "public/x");
    plus.wait_for(WAIT, |m| m.topic == "public/x");
    for sub in [&hash, &plus] {
        assert!(
            sub.messages().iter().all(|m| !m.topic.starts_with('$')),
            "{:?}",
            sub.messages()
        );
    }

    let mut sub = mqtt::sub_with(port, &["un/a", "un/b"], &options(Protocol::V311, 1, &[]));
    mqtt::publish(port, "un/a", "1", 1);
    sub.wait_for(WAIT, |m| m.topic == "un/a");
    sub.unsubscribe("un/a");
    mqtt::publish(port, "un/a", "2", 1);
    mqtt::publish(port, "un/b", "still", 1);
    sub.wait_for(WAIT, |m| m.topic == "un/b");
    assert_eq!(
        sub.messages().iter().filter(|m| m.topic == "un/a").count(),
        1,
        "{:?}",
        sub.messages()
    );
}

#[test]
fn qos2_is_delivered_exactly_once_even_when_the_publisher_retransmits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    let sub = mqtt::sub_with(port, &["q2/#"], &options(Protocol::V311, 2, &[]));
    let sub5 = mqtt::sub_with(port, &["q2/#"], &options(Protocol::V5, 2, &[]));
    mqtt::publish_many(port, "q2/bulk", 100, 2);

    // A publisher that resends its QoS 2 PUBLISH (DUP) before PUBREL: delivered once.
    let mut raw = Raw::open(port);
    raw.send(&raw::connect("retransmitter", true, 60, false));
    assert_eq!(raw.read_packet(WAIT), Some(vec![0x20, 0, 0]));
    raw.send(&raw::publish("q2/dup", b"one", 2, 7, false));
    assert_eq!(raw.read_packet(WAIT), Some(vec![0x50, 0, 7]), "PUBREC");
    raw.send(&raw::publish("q2/dup", b"one", 2, 7, true));
    assert_eq!(
        raw.read_packet(WAIT),
        Some(vec![0x50, 0, 7]),
        "PUBREC again"
    );
    raw.send(&raw::packet(0x62, &[0, 7]));
    assert_eq!(raw.read_packet(WAIT), Some(vec![0x70, 0, 7]), "PUBCOMP");
    mqtt::publish(port, "q2/end", "x", 2);
    for s in [&sub, &sub5] {
        s.wait_for(WAIT, |m| m.topic == "q2/end");
        let msgs = s.messages();
        let bulk: Vec<String> = msgs
            .iter()
            .filter(|m| m.topic == "q2/bulk")
            .map(|m| m.text())
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("msg-{i}")).collect();
        assert_eq!(bulk, want, "each once, in order");
        assert_eq!(
            msgs.iter().filter(|m| m.topic == "q2/dup").count(),
            1,
            "{msgs:?}"
        );
        assert!(msgs.iter().all(|m| m.qos == 2));
    }
}

#[test]
fn mqtt5_properties_pass_through_and_no_local_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = agent(dir.path());
    let sub = mqtt::sub_with(port, &["p5/#"], &options(Protocol::V5, 1, &[]));
    pub5(
        port,
        "p5/props",
        &[
            "--qos",
            "1",
            "--user-property",
            "site=plant1",
            "--user-property",
            "line=3",
            "--response-topic",
            "p5/replies/42",
            "--correlation-hex",
            "00ff10",
            "--content-type",
            "application/json",
            "--payload-template",
            "{\"v\":1}",
        ],
    );
    let m = sub.wait_for(WAIT, |m| m.topic == "p5/props");
    assert_eq!(
        m.user_properties,
        vec![
            ("site".to_owned(), "plant1".to_owned()),
            ("line".to_owned(), "3".to_owned())
        ]
    );
    assert_eq!(m.response_topic.as_deref(), Some("p5/replies/42"));
    assert_eq!(m.correlation_data, Some(vec![0x00, 0xff, 0x10]));
    assert_eq!(m.content_type.as_deref(), Some("application/json"));

    // No-local: a client does not get its own messages back; others' it does.
    let other = mqtt::sub_with(port, &["nl/t"], &options(Protocol::V5, 1, &[]));
    let own = mqtt::sub_with(
        port,
        &["nl/t"],
        &options(
            Protocol::V5,
            1,
            &["--no-local", "--then-publish", "nl/t=mine"],
        ),
    );
    other.wait_for(WAIT, |m| m.text() == "mine");
    mqtt::publish(port, "nl/t", "theirs", 1);
    own.wait_for(WAIT, |m| m.text() == "theirs");
    assert!(
        own.messages().iter().all(|m| m.text() != "mine"),
        "{:?}",
        own.messages()
    );
}

#[test]
fn malformed_and_truncated_packets_close_that_connection_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path());
    let watcher = mqtt::sub(port, "alive/#");
    // A fixed seed: the same "random" bytes every run.
    let mut seed: u32 = 0x2545_f491;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 24) as u8
            })
            .collect()
    };
    let connect = raw::connect("ok-then-bad", true, 60, false);
    // (what, bytes, whether a CONNACK comes first); "noise" may look like the start of a long
    // packet, and "truncated" / "cut short" are: those end with our end-of-stream.
    let mut cases: Vec<(String, Vec<u8>, bool)> = vec![
        ("noise".into(), noise(64), false),
        (
            "garbage header".into(),
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            false,
        ),
        (
            "bad protocol name".into(),
            raw::packet(0x10, b"\x00\x04MQTX\x04\x02\x00\x3c\x00\x01a"),
            false,
        ),
        (
            "truncated CONNECT".into(),
            connect[..connect.len() - 3].to_vec(),
            false,
        ),
        (
            "CONNECT then noise".into(),
            [connect.clone(), noise(40)].concat(),
            true,
        ),
        (
            "CONNECT then a PUBLISH cut short".into(),
            [
                connect.clone(),
                raw::publish("alive/x", b"payload", 1, 1, false)[..6].to_vec(),
            ]
            .concat(),
            true,
        ),
        (
            "a second CONNECT".into(),
            [connect.clone(), connect.clone()].concat(),
            true,
        ),
        (
            "reserved packet type".into(),
            [connect.clone(), vec![0xf0, 0x00]].concat(),
            true,
        ),
    ];
    for i in 0..4 {
        cases.push((
            format!("noise {i}"),
            [connect.clone(), noise(16 + i * 30)].concat(),
            true,
        ));
    }
    for (what, bytes, after_connect) in cases {
        let mut raw = Raw::open(port);
        raw.send(&bytes);
        if after_connect {
            assert_eq!(
                raw.read_packet(WAIT),
                Some(vec![0x20, 0, 0]),
                "{what}: CONNACK"
            );
        }
        let incomplete = ["noise", "truncated", "cut short"]
            .iter()
            .any(|w| what.contains(w));
        if incomplete && !raw.closed_within(Duration::from_millis(500)) {
            // The broker cannot tell a truncated packet from a slow one until the stream ends.
            raw.shutdown_write();
        }
        assert!(raw.closed_within(WAIT), "{what}: the connection stays open");
        // The broker keeps serving everyone else.
        mqtt::publish(port, &format!("alive/{}", what.replace(' ', "-")), "yes", 1);
    }
    watcher.wait_for(WAIT, |m| m.topic == "alive/noise-3");
    assert!(
        watcher.messages().iter().all(|m| m.text() == "yes"),
        "{:?}",
        watcher.messages()
    );
    assert!(
        !agent.lines().iter().any(|l| l.contains("panicked")),
        "{}",
        agent.tail()
    );
}
