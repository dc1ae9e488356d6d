//! Store-and-forward with a real Mosquitto as the cloud: nothing accepted is lost across
//! uplink outages and `kill -9`, and duplicates stay within the in-flight window.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::mqtt::{self, SubOptions, Subscription};
use common::{Ferrule, Mosquitto};

const WAIT: Duration = Duration::from_secs(60);
/// The uplink's in-flight window (`ferrule::uplink::WINDOW`).
const WINDOW: usize = 100;

/// A gateway with no devices polled often (one slow dummy device keeps the config valid)
/// that forwards everything under `sf/` upstream.
fn config(dir: &Path, cloud_port: u16, durability: &str) -> PathBuf {
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
    points: [{{name: x, kind: holding, address: 0}}]
uplink:
  url: "mqtt://127.0.0.1:{cloud_port}"
  forward: [{{local: "sf/lan/#", qos: 1}}]
  queue: {{path: queue.db, durability: {durability}}}
"#
    );
    Ferrule::write_config(dir, &yaml)
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
fn cloud_subscriber(cloud: &Mosquitto, name: &str) -> Subscription {
    let options = SubOptions {
        qos: 1,
        client_id: Some(name.into()),
        clean: false,
        ..SubOptions::default()
    };
    mqtt::sub_with(cloud.port(), &["sf/lan/#"], &options)
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

#[test]
fn a_thousand_messages_queued_during_an_outage_all_arrive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud, "sf-outage");
    let agent = Ferrule::run(&config(dir.path(), cloud.port(), "full"));
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

#[test]
fn kill_9_with_a_backlog_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud, "sf-kill");
    cloud.stop();
    let config = config(dir.path(), cloud.port(), "normal");

    // A backlog built while the cloud is down.
    let mut agent = Ferrule::run(&config);
    let local = agent.listener_addr().port();
    let n = 3000;
    mqtt::publish_many_with(local, "sf/lan/k", n, 1, "k-{i}", &[]);

    // kill -9 before anything was sent.
    agent.kill9();

    // Restart: the backlog is still there; kill -9 again in the middle of the drain.
    cloud.start_again();
    upstream.wait_subscribed(2, WAIT);
    let mut agent = Ferrule::run(&config);
    common::wait::poll_until("the drain to start", WAIT, || {
        (upstream.count() >= 200).then_some(())
    });
    agent.kill9();
    let delivered_before_restart = tally(&upstream).len();

    // The last restart delivers the rest.
    let agent = Ferrule::run(&config);
    agent.wait_for_line("uplink connected", WAIT);
    let seen = wait_all(&upstream, n, "the whole backlog upstream");
    for i in 0..n {
        assert!(seen.contains_key(&format!("k-{i}")), "k-{i} lost");
    }
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!("kill -9 mid-drain: {delivered_before_restart} of {n} delivered before the restart, {duplicates} duplicates");
    assert!(
        duplicates <= WINDOW,
        "{duplicates} duplicates after a kill -9 mid-drain ({delivered_before_restart} delivered before it); at most the in-flight window ({WINDOW}) may be resent"
    );
}
