//! The embedded broker with real clients (paho-mqtt v3.1.1 and v5, mosquitto_pub/sub):
//! routing, retained messages, topics with `$` levels, several listeners.

mod common;

use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions};
use common::Ferrule;

const WAIT: Duration = Duration::from_secs(20);

/// A gateway with two listeners and an unreachable device (so its `$state` is `offline`).
fn agent(dir: &std::path::Path) -> Ferrule {
    let yaml = r#"
site: b
broker:
  listeners:
    - bind: "127.0.0.1:0"
    - bind: "127.0.0.1:0"
devices:
  - {name: dev, tcp: "127.0.0.1:9", timeout: 100ms, points: [{name: p, kind: holding, address: 0}]}
"#;
    Ferrule::run(&Ferrule::write_config(dir, yaml))
}

#[test]
fn v311_and_v5_clients_exchange_messages_on_both_listeners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = agent(dir.path());
    let ports: Vec<u16> = agent.listener_addrs(2).iter().map(|a| a.port()).collect();
    let v5 = SubOptions {
        protocol: Protocol::V5,
        ..SubOptions::default()
    };
    let sub5 = mqtt::sub_with(ports[0], &["lan/#"], &v5);
    let sub3 = mqtt::sub(ports[1], "lan/+/temp");
    mqtt::publish(ports[1], "lan/room1/temp", "21.5", 1);
    mqtt::publish_args(
        ports[0],
        &[
            "-V",
            "mqttv5",
            "-t",
            "lan/room2/temp",
            "-m",
            "19",
            "-q",
            "2",
        ],
    );
    for sub in [&sub5, &sub3] {
        sub.wait_for(WAIT, |m| m.topic == "lan/room1/temp" && m.text() == "21.5");
        sub.wait_for(WAIT, |m| m.topic == "lan/room2/temp" && m.text() == "19");
    }
    mqtt::publish_many(ports[0], "lan/bulk", 200, 1);
    sub5.wait_for_count(202, WAIT);
}

#[test]
fn retained_messages_reach_late_subscribers_and_are_cleared_by_an_empty_publish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = agent(dir.path());
    let port = agent.listener_addr().port();
    mqtt::publish_retained(port, "lan/config/mode", "auto", 1);
    let late = mqtt::sub(port, "lan/config/#");
    let m = late.wait_for(WAIT, |m| m.topic == "lan/config/mode");
    assert!(m.retain && m.text() == "auto", "{m:?}");
    mqtt::publish_retained(port, "lan/config/mode", "", 1);
    let later = mqtt::sub(port, "lan/config/#");
    later.assert_none_for(Duration::from_millis(500), |m| m.topic == "lan/config/mode");
}

#[test]
fn topics_with_dollar_levels_after_the_first_work_like_in_mosquitto() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = agent(dir.path());
    let port = agent.listener_addr().port();
    // The agent's own retained `$state` topics.
    let states = mqtt::sub(port, "b/+/$state");
    let s = states.wait_for(WAIT, |m| m.topic == "b/dev/$state");
    assert_eq!(s.text(), "offline");
    let agent_state = mqtt::sub(port, "b/$agent/#");
    let a = agent_state.wait_for(WAIT, |m| m.topic == "b/$agent/state");
    assert!(a.retain && a.text() == "online", "{a:?}");

    // A client's `$` levels are ordinary levels: matched by `#` and `+`, delivered unchanged.
    let all = mqtt::sub(port, "lan/#");
    let plus = mqtt::sub_mosquitto(port, "lan/+/x");
    mqtt::publish(port, "lan/$meta/x", "m", 1);
    mqtt::publish(port, "lan/\u{FF04}odd/x", "o", 1);
    for sub in [&all, &plus] {
        sub.wait_for(WAIT, |m| m.topic == "lan/$meta/x" && m.text() == "m");
        sub.wait_for(WAIT, |m| m.topic == "lan/\u{FF04}odd/x" && m.text() == "o");
    }
    // Topics starting with `$` are not matched by a leading wildcard.
    let everything = mqtt::sub(port, "#");
    mqtt::publish(port, "$private/x", "hidden", 1);
    mqtt::publish(port, "lan/visible", "v", 1);
    everything.wait_for(WAIT, |m| m.topic == "lan/visible");
    assert!(
        everything
            .messages()
            .iter()
            .all(|m| !m.topic.starts_with('$')),
        "{:?}",
        everything.messages()
    );
}
