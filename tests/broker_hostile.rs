//! Hostile and broken clients against the embedded broker, side by side with a real Mosquitto:
//! a corpus of malformed and forbidden packets (each answered as Mosquitto answers it, or,
//! where ferrule deliberately follows the MQTT 5 specification more closely, with the reason
//! code the specification names), and 500 half-open connections that never send CONNECT.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::mqtt;
use common::raw::{self, Raw};
use common::{Ferrule, Mosquitto};

const WAIT: Duration = Duration::from_secs(20);

fn agent(dir: &Path) -> (Ferrule, u16) {
    let yaml = r#"
site: h
broker:
  listeners: [{bind: "127.0.0.1:0"}]
  allow_anonymous: true
devices:
  - {name: dev, tcp: "127.0.0.1:9", timeout: 100ms, points: [{name: p, kind: holding, address: 0}]}
"#;
    let agent = Ferrule::run(&Ferrule::write_config(dir, yaml));
    let port = agent.listener_addr().port();
    (agent, port)
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(s.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(s);
    out
}

/// A CONNECT with the given protocol level, flags, MQTT 5 properties and trailing payload.
fn connect(level: u8, flags: u8, props: &[u8], client_id: &str, extra: &[u8]) -> Vec<u8> {
    let mut body = string(b"MQTT");
    body.extend([level, flags, 0, 60]);
    if level == 5 {
        body.push(u8::try_from(props.len()).expect("short"));
        body.extend_from_slice(props);
    }
    body.extend(string(client_id.as_bytes()));
    body.extend_from_slice(extra);
    raw::packet(0x10, &body)
}

/// What a broker did with some bytes: the packets it answered with (type and code), then
/// whether it closed the connection. A PINGREQ sent after the bytes tells "still open"
/// (its PINGRESP) from "closed" without waiting on a clock.
fn outcome(port: u16, bytes: &[u8]) -> Vec<String> {
    let mut conn = Raw::open(port);
    conn.send(bytes);
    conn.send(&[0xc0, 0x00]);
    let mut seen = Vec::new();
    loop {
        let Some(p) = conn.read_packet(WAIT) else {
            seen.push("closed".to_owned());
            return seen;
        };
        // The fixed header's first byte, then the body (the length is not kept).
        let byte = |i: usize| p.get(i).copied().unwrap_or(0);
        let v5_connack = p.len() > 3;
        let what = match p[0] >> 4 {
            2 if v5_connack => format!("CONNACK 0x{:02x}", byte(2)),
            2 => format!("CONNACK {}", byte(2)),
            9 => format!("SUBACK 0x{:02x}", byte(p.len() - 1)),
            13 => {
                seen.push("PINGRESP".to_owned());
                seen.push("open".to_owned());
                return seen;
            }
            14 => format!("DISCONNECT 0x{:02x}", byte(1)),
            t => format!("type {t}"),
        };
        seen.push(what);
    }
}

/// Where ferrule's answer is the one expected of it.
enum Expect {
    /// Exactly what Mosquitto does.
    Mosquitto,
    /// What the specification names, where Mosquitto 2.0.11 is lenient or answers with a
    /// less precise code; with the clause.
    Spec(&'static [&'static str], &'static str),
}

#[test]
fn malformed_and_forbidden_packets_are_answered_as_mosquitto_does_or_as_the_spec_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path());
    let mosquitto = Mosquitto::start();

    let c4 = connect(4, 0x02, &[], "c", &[]);
    let c5 = connect(5, 0x02, &[], "c", &[]);
    let then = |first: &[u8], next: Vec<u8>| [first.to_vec(), next].concat();
    let p = raw::packet;
    let mut topic_a = string(b"a");
    topic_a.extend([0x00, 0x01]);
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        // MQTT 3.1.1 (each identical to Mosquitto).
        ("reserved CONNECT flag", connect(4, 0x03, &[], "c", &[]), Expect::Mosquitto),
        ("password without user name", connect(4, 0x42, &[], "c", &string(b"pw")), Expect::Mosquitto),
        ("will QoS 3", connect(4, 0x1e, &[], "c", &[string(b"w"), string(b"m")].concat()), Expect::Mosquitto),
        ("unknown protocol level 7", connect(7, 0x02, &[], "c", &[]), Expect::Mosquitto),
        ("protocol level 3 with name MQTT", connect(3, 0x02, &[], "c", &[]), Expect::Mosquitto),
        ("empty client id, clean session 0", connect(4, 0x00, &[], "", &[]), Expect::Mosquitto),
        ("CONNECT with fixed-header flags", [vec![0x11], c4[1..].to_vec()].concat(), Expect::Mosquitto),
        ("PUBLISH QoS 3", then(&c4, p(0x36, &topic_a)), Expect::Mosquitto),
        ("PUBLISH to a wildcard topic", then(&c4, p(0x30, &[string(b"a/+"), b"x".to_vec()].concat())), Expect::Mosquitto),
        ("PUBLISH QoS 1 packet id 0", then(&c4, p(0x32, &[string(b"a"), vec![0, 0]].concat())), Expect::Mosquitto),
        ("SUBSCRIBE with wrong flags", then(&c4, p(0x80, &[vec![0, 1], string(b"a"), vec![0]].concat())), Expect::Mosquitto),
        ("SUBSCRIBE without filters", then(&c4, p(0x82, &[0, 1])), Expect::Mosquitto),
        ("SUBSCRIBE QoS 3", then(&c4, p(0x82, &[vec![0, 1], string(b"a"), vec![3]].concat())), Expect::Mosquitto),
        ("SUBSCRIBE a/#/b", then(&c4, p(0x82, &[vec![0, 1], string(b"a/#/b"), vec![0]].concat())), Expect::Mosquitto),
        ("UNSUBSCRIBE without filters", then(&c4, p(0xa2, &[0, 1])), Expect::Mosquitto),
        ("topic not UTF-8", then(&c4, p(0x30, &[string(b"\xff\xfe"), b"x".to_vec()].concat())), Expect::Mosquitto),
        ("topic with NUL", then(&c4, p(0x30, &[string(b"a\x00b"), b"x".to_vec()].concat())), Expect::Mosquitto),
        ("remaining length of 5 bytes", then(&c4, vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), Expect::Mosquitto),
        ("PUBACK for an unknown id", then(&c4, p(0x40, &[0, 9])), Expect::Mosquitto),
        ("DISCONNECT with a body", then(&c4, p(0xe0, &[0])), Expect::Mosquitto),
        ("second CONNECT", then(&c4, c4.clone()), Expect::Mosquitto),
        (
            "PINGREQ with a body",
            then(&c4, p(0xc0, b"x")),
            Expect::Spec(&["CONNACK 0", "closed"], "3.12.1: PINGREQ has no variable header or payload; [MQTT-4.8.0-1] malformed, close"),
        ),
        // MQTT 5.
        ("v5 Topic Alias too big", then(&c5, p(0x30, &[string(b"a"), vec![3, 0x23, 0, 0x63], b"x".to_vec()].concat())), Expect::Mosquitto),
        ("v5 unknown property", then(&c5, p(0x30, &[string(b"a"), vec![2, 0x7f, 0], b"x".to_vec()].concat())), Expect::Mosquitto),
        ("v5 reserved subscription option bits", then(&c5, p(0x82, &[vec![0, 1, 0], string(b"a"), vec![0xc0]].concat())), Expect::Mosquitto),
        ("v5 unknown alias with an empty topic", then(&c5, p(0x30, &[string(b""), vec![3, 0x23, 0, 1], b"x".to_vec()].concat())), Expect::Mosquitto),
        ("v5 CONNECT with an authentication method", connect(5, 0x02, &[&[0x15][..], &string(b"SCRAM")].concat(), "c", &[]), Expect::Mosquitto),
        (
            "v5 Topic Alias 0",
            then(&c5, p(0x30, &[string(b"a"), vec![3, 0x23, 0, 0], b"x".to_vec()].concat())),
            Expect::Spec(&["CONNACK 0x00", "DISCONNECT 0x94", "closed"], "3.3.2.3.4: a Topic Alias of 0 is a Topic Alias invalid (0x94)"),
        ),
        (
            "v5 property given twice",
            then(&c5, p(0x30, &[string(b"a"), vec![4, 1, 1, 1, 1], b"x".to_vec()].concat())),
            Expect::Spec(&["CONNACK 0x00", "DISCONNECT 0x82", "closed"], "3.3.2.3.2: a property included twice is a Protocol Error (0x82)"),
        ),
        (
            "v5 No Local on a shared subscription",
            then(&c5, p(0x82, &[vec![0, 1, 0], string(b"$share/g/a"), vec![0x04]].concat())),
            Expect::Spec(&["CONNACK 0x00", "DISCONNECT 0x82", "closed"], "[MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error"),
        ),
        (
            "v5 Subscription Identifier 0",
            then(&c5, p(0x82, &[vec![0, 1, 2, 0x0b, 0], string(b"a"), vec![0]].concat())),
            Expect::Spec(&["CONNACK 0x00", "DISCONNECT 0x82", "closed"], "3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error"),
        ),
        (
            "v5 CONNECT with an unknown property",
            connect(5, 0x02, &[0x7f, 0], "c", &[]),
            Expect::Spec(&["CONNACK 0x81", "closed"], "[MQTT-3.1.4-1]/3.2.2.2: CONNACK 0x81 before closing"),
        ),
        (
            "v5 CONNECT with Receive Maximum 0",
            connect(5, 0x02, &[0x21, 0, 0], "c", &[]),
            Expect::Spec(&["CONNACK 0x82", "closed"], "3.1.2.11.3: Receive Maximum 0 is a Protocol Error; CONNACK 0x82"),
        ),
    ];
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (what, bytes, expect) in &cases {
        let ours = outcome(port, bytes);
        let theirs = outcome(mosquitto.port(), bytes);
        let (ok, expected) = match expect {
            Expect::Mosquitto => (ours == theirs, format!("as Mosquitto: {theirs:?}")),
            Expect::Spec(codes, clause) => (
                ours == *codes,
                format!("{codes:?} ({clause}); Mosquitto: {theirs:?}"),
            ),
        };
        report.push(format!("{what}: ferrule {ours:?}, expected {expected}"));
        if !ok {
            wrong.push(report.last().cloned().unwrap_or_default());
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n\nall:\n{}",
        wrong.join("\n"),
        report.join("\n")
    );
    // Every case cost one connection, never the broker.
    let sub = mqtt::sub(port, "still/#");
    mqtt::publish(port, "still/here", "yes", 1);
    sub.wait_for(WAIT, |m| m.topic == "still/here");
    assert!(
        !agent.lines().iter().any(|l| l.contains("panicked")),
        "{}",
        agent.tail()
    );
}

/// 500 sockets that connect and never send CONNECT (a port scanner, a half-dead client, a
/// slow-loris): the broker keeps serving real clients meanwhile, and closes every one of them
/// after its CONNECT timeout (10 s, Mosquitto's default too).
#[test]
fn half_open_connections_are_closed_after_the_connect_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = agent(dir.path());
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // Real clients are served while the 500 wait.
    let sub = mqtt::sub(port, "lively/#");
    mqtt::publish(port, "lively/x", "1", 1);
    sub.wait_for(WAIT, |m| m.topic == "lively/x");
    // Each idle socket is closed by the broker: reading gives end-of-stream.
    let deadline = Duration::from_secs(10) + WAIT;
    for (i, s) in idle.iter_mut().enumerate() {
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 16];
        let n = std::io::Read::read(s, &mut buf);
        assert!(
            matches!(n, Ok(0))
                || matches!(&n, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "idle socket {i} not closed: {n:?}"
        );
    }
    // Not before the timeout: a client gets its 10 seconds.
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    let closed = agent
        .lines()
        .iter()
        .filter(|l| l.contains("no CONNECT in time"))
        .count();
    assert!(closed >= 1, "{}", agent.tail());
    mqtt::publish(port, "lively/y", "2", 1);
    sub.wait_for(WAIT, |m| m.topic == "lively/y");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// A subscriber that stops reading (a stalled HMI, a half-dead link) while 40 MB are published
/// to it: the broker keeps at most `max_queued_messages` for it, drops the rest (logged and
/// counted in `$SYS`), and its memory stays bounded; the publisher is never held up.
#[test]
fn a_stalled_subscriber_cannot_grow_memory_past_its_queue_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = r#"
site: h
broker:
  listeners: [{bind: "127.0.0.1:0"}]
  allow_anonymous: true
  max_queued_messages: 100
  sys_interval: 1s
"#;
    let agent = Ferrule::run(&Ferrule::write_config(dir.path(), yaml));
    let port = agent.listener_addr().port();
    // Subscribes at QoS 1, then never reads again.
    let mut stalled = Raw::open(port);
    stalled.send(&raw::connect("stalled", true, 0, false));
    assert_eq!(stalled.read_packet(WAIT), Some(vec![0x20, 0, 0]));
    stalled.send(&raw::packet(
        0x82,
        &[&[0, 1][..], &string(b"flood/#"), &[1]].concat(),
    ));
    assert_eq!(stalled.read_packet(WAIT), Some(vec![0x90, 0, 1, 1]));
    let before = rss_kib(agent.pid());
    let payload = format!("{}{{i}}", "x".repeat(1000));
    mqtt::publish_many_with(port, "flood/a", 40_000, 1, &payload, &[]);
    let after = rss_kib(agent.pid());
    agent.wait_for_line("client queue full", WAIT);
    let dropped = mqtt::sub(port, "$SYS/broker/publish/messages/dropped");
    let m = dropped.wait_for(WAIT, |m| m.text().parse::<u64>().is_ok_and(|n| n > 0));
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB for a subscriber bounded at 100 messages; {} dropped",
        m.text()
    );
}
