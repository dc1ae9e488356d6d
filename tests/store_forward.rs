//! Store-and-forward with a real Mosquitto as the cloud: nothing accepted is lost across
//! uplink outages, upstream restarts and `kill -9`; a publisher's PUBACK/PUBREC means the
//! message is committed; duplicates stay within the in-flight window; sequence numbers, topic
//! mapping and the downlink work end to end.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions, Subscription};
use common::{Ferrule, Mosquitto};

const WAIT: Duration = Duration::from_secs(60);
/// The uplink's in-flight window (`uplink.window`, default 100).
const WINDOW: usize = 100;

/// A gateway with no devices polled often (one slow dummy device keeps the config valid)
/// that forwards everything under `sf/lan/` upstream; `extra` is appended to the uplink
/// section (two-space indented keys).
fn config_with(dir: &Path, cloud_port: u16, durability: &str, extra: &str) -> PathBuf {
    let forward = if extra.contains("  forward:") {
        ""
    } else {
        "  forward: [{local: \"sf/lan/#\", qos: 1}]\n"
    };
    let yaml = format!(
        r#"
site: sf
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: dummy
    tcp: "127.0.0.1:9"
    poll: 1h
    timeout: 100ms
    points: [{{name: x, kind: holding, address: 0, writable: true}}]
uplink:
  url: "mqtt://127.0.0.1:{cloud_port}"
  reconnect: {{initial: 50ms, max: 500ms}}
{forward}  queue: {{path: queue.db, durability: {durability}}}
{extra}"#
    );
    Ferrule::write_config(dir, &yaml)
}

fn config(dir: &Path, cloud_port: u16, durability: &str) -> PathBuf {
    config_with(dir, cloud_port, durability, "")
}

/// Mosquitto that keeps the sessions and queued messages of offline subscribers across a
/// restart, with no limit on queued messages.
fn cloud() -> Mosquitto {
    Mosquitto::start_with(&[
        "persistence true",
        "max_queued_messages 0",
        "max_inflight_messages 0",
    ])
}

/// A persistent QoS 1 subscriber on the cloud broker: it receives what is published while it
/// is disconnected (e.g. while the broker restarts).
fn cloud_subscriber(cloud: &Mosquitto, name: &str, filter: &str) -> Subscription {
    let options = SubOptions {
        qos: 1,
        client_id: Some(name.into()),
        clean: false,
        ..SubOptions::default()
    };
    mqtt::sub_with(cloud.port(), &[filter], &options)
}

/// Per payload, how many times it arrived.
fn tally(sub: &Subscription) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in sub.messages() {
        *seen.entry(m.text()).or_insert(0) += 1;
    }
    seen
}

fn wait_all(sub: &Subscription, n: usize, what: &str) -> HashMap<String, usize> {
    common::wait::poll_until(what, WAIT, || (tally(sub).len() >= n).then_some(()));
    tally(sub)
}

/// `ferrule queue stats --json` of a config (while the agent runs or not).
fn queue_stats(config: &Path) -> serde_json::Value {
    let config = config.to_str().expect("UTF-8 path");
    let out = Ferrule::output(
        &[
            "queue",
            "stats",
            "--config",
            config,
            "--json",
            "--interval",
            "0",
        ],
        WAIT,
    );
    assert!(out.status.success(), "queue stats failed:\n{}", out.tail());
    serde_json::from_str(&out.stdout.join("\n")).expect("queue stats prints JSON")
}

#[test]
fn a_thousand_messages_queued_during_an_outage_all_arrive_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud, "sf-outage", "sf/lan/#");
    // Paced catch-up (max_rate) still delivers everything, in order.
    let paced = "  max_rate: 5000\n";
    let agent = Ferrule::run(&config_with(dir.path(), cloud.port(), "full", paced));
    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();

    cloud.stop();
    agent.wait_for_line("uplink disconnected", WAIT);
    // Every PUBACK from ferrule means the message is committed to the queue.
    mqtt::publish_many_with(local, "sf/lan/m", 1000, 1, "msg-{i}", &[]);
    cloud.start_again();
    upstream.wait_subscribed(2, WAIT);

    let seen = wait_all(&upstream, 1000, "all 1000 messages upstream");
    for i in 0..1000 {
        assert!(seen.contains_key(&format!("msg-{i}")), "msg-{i} lost");
    }
    // Order per topic: the first copy of each message arrives in publish order.
    let mut first = Vec::new();
    for m in upstream.messages() {
        let text = m.text();
        if !first.contains(&text) {
            first.push(text);
        }
    }
    let expected: Vec<String> = (0..1000).map(|i| format!("msg-{i}")).collect();
    assert_eq!(first, expected, "order per topic is preserved");
}

/// PUBACK (3.1.1, QoS 1) and PUBREC (MQTT 5, QoS 2) come after the commit: ten thousand
/// messages acknowledged while the uplink is down survive a `kill -9` right after the last
/// acknowledgement, and a second `kill -9` in the middle of the drain. Every one arrives;
/// duplicates only from the drain that was killed, within the window.
#[test]
fn kill_9_with_ten_thousand_queued_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud, "sf-kill", "sf/lan/#");
    cloud.stop();
    let config = config(dir.path(), cloud.port(), "normal");

    let mut agent = Ferrule::run(&config);
    let local = agent.listener_addr().port();
    let fast = ["--max-inflight", "100"];
    mqtt::publish_many_with(local, "sf/lan/k", 5000, 1, "v3-{i}", &fast);
    // The embedded broker allows 16 QoS 2 publishes in flight per client.
    let v5 = ["--max-inflight", "16", "--protocol", "5"];
    mqtt::publish_many_with(local, "sf/lan/k5", 5000, 2, "v5-{i}", &v5);
    let n = 10_000;
    assert_eq!(
        queue_stats(&config)["depth"],
        n,
        "all acknowledged messages are queued"
    );
    // kill -9 the moment the publishers saw their last acknowledgement.
    agent.kill9();

    cloud.start_again();
    upstream.wait_subscribed(2, WAIT);
    let mut agent = Ferrule::run(&config);
    common::wait::poll_until("the drain to start", WAIT, || {
        (upstream.count() >= 2000).then_some(())
    });
    agent.kill9();
    let delivered_before_restart = tally(&upstream).len();

    let agent = Ferrule::run(&config);
    agent.wait_for_line("uplink connected", WAIT);
    let seen = wait_all(&upstream, n, "all ten thousand messages upstream");
    for i in 0..5000 {
        assert!(seen.contains_key(&format!("v3-{i}")), "v3-{i} lost");
        assert!(seen.contains_key(&format!("v5-{i}")), "v5-{i} lost");
    }
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!("kill -9 mid-drain: {delivered_before_restart} of {n} delivered before it, {duplicates} duplicates");
    assert!(
        duplicates <= WINDOW,
        "{duplicates} duplicates after a kill -9 mid-drain; at most the in-flight window ({WINDOW}) may be resent"
    );
    common::wait::poll_until("the queue to empty", WAIT, || {
        (queue_stats(&config)["depth"] == 0).then_some(())
    });
}

#[test]
fn ten_upstream_restarts_during_a_steady_stream_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud, "sf-restarts", "sf/lan/#");
    let agent = Ferrule::run(&config(dir.path(), cloud.port(), "normal"));
    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();

    // A steady stream: batches of 50 until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut batches = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let template = format!("b{batches}-{{i}}");
                mqtt::publish_many_with(local, "sf/lan/s", 50, 1, &template, &[]);
                batches += 1;
            }
            batches
        })
    };
    for restart in 0..10 {
        let from = agent.line_count();
        cloud.stop();
        agent.wait_for_line_after(from, "uplink disconnected", WAIT);
        cloud.start_again();
        agent.wait_for_line_after(from, "uplink connected", WAIT);
        eprintln!(
            "restart {restart}: {} messages upstream so far",
            upstream.count()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let batches = publisher.join().expect("the publisher thread");
    assert!(
        batches >= 2,
        "the stream ran during the restarts ({batches} batches)"
    );

    let n = batches * 50;
    let seen = wait_all(&upstream, n, "every message of the stream upstream");
    for b in 0..batches {
        for i in 0..50 {
            assert!(seen.contains_key(&format!("b{b}-{i}")), "b{b}-{i} lost");
        }
    }
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!("{n} messages through 10 upstream restarts, {duplicates} duplicates");
}

/// MQTT 5 upstream: the sequence number as a user property, topic mapping and retain per rule.
#[test]
fn mqtt5_uplink_maps_topics_and_numbers_every_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Mosquitto::start();
    let options = SubOptions {
        protocol: Protocol::V5,
        qos: 2,
        ..SubOptions::default()
    };
    let upstream = mqtt::sub_with(cloud.port(), &["factory/#", "alarms/#"], &options);
    let extra = r#"  protocol: 5
  sequence: property
  forward:
    - {local: "sf/lan/#", remote: "factory/eu", qos: 1}
    - {local: "sf/lan/+/alarm", remote: "alarms/{3}", qos: 2, retain: false}
"#;
    let config = config_with(dir.path(), cloud.port(), "normal", extra);
    let agent = Ferrule::run(&config);
    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();

    mqtt::publish_many_with(local, "sf/lan/m", 20, 1, "m-{i}", &[]);
    mqtt::publish_many_with(local, "sf/lan/boiler/alarm", 1, 1, "hot", &["--retain"]);
    let got = upstream.wait_for_count(22, WAIT);

    let seq = |m: &mqtt::Message| -> i64 {
        m.user_properties
            .iter()
            .find(|(k, _)| k == "seq")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no seq property on {m:?}"))
    };
    let stream: Vec<&mqtt::Message> = got
        .iter()
        .filter(|m| m.topic == "factory/eu/sf/lan/m")
        .collect();
    assert_eq!(stream.len(), 20);
    for pair in stream.windows(2) {
        assert_eq!(
            seq(pair[1]),
            seq(pair[0]) + 1,
            "consecutive, gap-free numbers"
        );
    }
    let texts: Vec<String> = stream.iter().map(|m| m.text()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("m-{i}")).collect();
    assert_eq!(texts, expected);
    // One local message, two rules, two upstream topics: retained where the rule passes it.
    let prefixed = upstream.wait_for_topic("factory/eu/sf/lan/boiler/alarm", WAIT);
    let mapped = upstream.wait_for_topic("alarms/boiler", WAIT);
    assert_eq!(
        (prefixed.text(), mapped.text()),
        ("hot".into(), "hot".into())
    );
    assert_eq!((prefixed.qos, mapped.qos), (1, 2));
    assert!(seq(&mapped) > seq(stream[19]));
    // Retain is checked on a fresh subscriber, which gets retained messages only.
    let late = mqtt::sub_with(cloud.port(), &["factory/#", "alarms/#"], &options);
    let retained = late.wait_for_topic("factory/eu/sf/lan/boiler/alarm", WAIT);
    assert!(retained.retain);
    late.assert_none_for(Duration::from_millis(300), |m| m.topic == "alarms/boiler");
}

/// MQTT 3.1.1 upstream: the sequence number as a field of JSON payloads.
#[test]
fn json_payloads_carry_the_sequence_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Mosquitto::start();
    let upstream = mqtt::sub(cloud.port(), "sf/lan/#");
    let extra = "  sequence: json\n  sequence_key: n\n";
    let agent = Ferrule::run(&config_with(dir.path(), cloud.port(), "normal", extra));
    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();
    mqtt::publish_many_with(local, "sf/lan/j", 3, 1, r#"{"value":{i}}"#, &[]);
    mqtt::publish(local, "sf/lan/t", "plain text", 1);
    let got = upstream.wait_for_count(4, WAIT);
    let numbers: Vec<i64> = got[..3]
        .iter()
        .map(|m| m.json()["n"].as_i64().expect("a sequence field"))
        .collect();
    assert_eq!(numbers[1], numbers[0] + 1);
    assert_eq!(numbers[2], numbers[0] + 2);
    assert_eq!(got[1].json()["value"], 1);
    assert_eq!(
        got[3].text(),
        "plain text",
        "non-JSON payloads are sent unchanged"
    );
}

/// The cloud sends a command down; it reaches the local broker (and the command router, whose
/// result goes back up through the queue), and the command itself never goes back up.
#[test]
fn downlink_commands_reach_the_gateway_and_their_results_come_back_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Mosquitto::start();
    // A stale retained command on the cloud must not be applied at connect.
    mqtt::publish_retained(cloud.port(), "cloud/cmd/dummy/x", "7", 1);
    let upstream = mqtt::sub(cloud.port(), "#");
    let extra = r#"  forward: [{local: "sf/#", qos: 1}]
  downlink:
    - {remote: "cloud/cmd/+/+", local: "sf/{3}/{4}/set"}
"#;
    let agent = Ferrule::run(&config_with(dir.path(), cloud.port(), "normal", extra));
    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();
    let lan = mqtt::sub(local, "sf/#");
    // The downlink subscription is in place upstream.
    cloud.wait_for_line("cloud/cmd/+/+", WAIT);

    mqtt::publish(
        cloud.port(),
        "cloud/cmd/dummy/x",
        r#"{"value":42,"id":"c1"}"#,
        1,
    );
    let command = lan.wait_for_topic("sf/dummy/x/set", WAIT);
    assert_eq!(command.json()["id"], "c1");
    // The device is unreachable: the router answers, and the answer goes up.
    let result = upstream.wait_for_topic("sf/dummy/x/set/result", WAIT);
    assert_eq!(result.json()["id"], "c1");
    assert_eq!(result.json()["ok"], false);
    // Neither the command nor the stale retained one went back up or was applied.
    upstream.assert_none_for(Duration::from_millis(300), |m| m.topic == "sf/dummy/x/set");
    let results = lan
        .messages()
        .iter()
        .filter(|m| m.topic == "sf/dummy/x/set/result")
        .count();
    assert_eq!(results, 1, "only the live command was applied");
    // The link state is published (and forwarded, as an agent message under sf/#).
    let state = upstream.wait_for(WAIT, |m| {
        m.topic == "sf/$agent/uplink" && m.json()["state"] == "connected"
    });
    assert_eq!(state.json()["last_error"], serde_json::Value::Null);
}
