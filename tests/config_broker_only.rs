//! Devices are optional: a config with `site`, `broker` and `uplink` but no device is a
//! broker-only gateway. Through the real binary: `check` says so, LAN clients (paho and
//! `mosquitto_pub`) publish to the embedded broker, and the uplink forwards their messages to a
//! real Mosquitto through an outage of it, with no device configured and no Modbus activity.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::mqtt::{self, SubOptions};
use common::{Ferrule, Mosquitto};

const WAIT: Duration = Duration::from_secs(60);

fn gateway(dir: &Path, cloud_port: u16, devices: &str) -> PathBuf {
    let yaml = format!(
        r#"site: farm
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
{devices}uplink:
  url: "mqtt://127.0.0.1:{cloud_port}"
  reconnect: {{initial: 50ms, max: 500ms}}
  forward: [{{local: "farm/#", qos: 1}}]
  queue: {{path: queue.db, durability: normal}}
"#
    );
    Ferrule::write_config(dir, &yaml)
}

#[test]
fn check_summarises_a_broker_only_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    for devices in ["", "devices: []\n"] {
        let config = gateway(dir.path(), 1883, devices);
        let out = Ferrule::output(&["check", config.to_str().expect("utf-8")], WAIT);
        assert!(out.status.success(), "{devices:?}: {}", out.tail());
        let text = out.stdout.join("\n");
        assert!(
            text.contains("no devices: a broker-only gateway (the embedded broker and the store-and-forward uplink for LAN publishers)"),
            "{text}"
        );
        assert!(text.contains("commands: off (no devices)"), "{text}");
    }
    let plain = Ferrule::write_config(dir.path(), "site: lab\n");
    let out = Ferrule::output(&["check", plain.to_str().expect("utf-8")], WAIT);
    assert!(out.status.success(), "{}", out.tail());
    assert!(
        out.stdout.join("\n").contains("(the embedded broker only)"),
        "{}",
        out.tail()
    );
}

#[test]
fn lan_publishers_reach_the_cloud_through_an_outage_with_no_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = Mosquitto::start_with(&["persistence true", "max_queued_messages 0"]);
    let options = SubOptions {
        qos: 1,
        client_id: Some("farm-cloud".into()),
        clean: false,
        ..SubOptions::default()
    };
    let upstream = mqtt::sub_with(cloud.port(), &["farm/#"], &options);
    let config = gateway(dir.path(), cloud.port(), "");
    let agent = Ferrule::run(&config);
    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();

    // A LAN subscriber sees what LAN publishers send (the broker works on its own).
    let lan = mqtt::sub(local, "farm/#");
    mqtt::publish(local, "farm/sensor1/temp", "before-1", 1);
    let out = mqtt::mosquitto_pub(
        local,
        &["-t", "farm/sensor2/temp", "-m", "before-2", "-q", "1"],
    );
    assert!(out.status.success(), "mosquitto_pub: {}", out.tail());
    lan.wait_for_topic("farm/sensor2/temp", WAIT);
    // Commands are off: a LAN client's own `.../set` topic is just a topic, never answered.
    agent.wait_for_line("no devices: commands off", WAIT);
    mqtt::publish(local, "farm/sensor1/relay/set", "1", 1);
    lan.wait_for_topic("farm/sensor1/relay/set", WAIT);
    mqtt::publish(local, "farm/sensor1/marker", "m", 1);
    lan.wait_for_topic("farm/sensor1/marker", WAIT);
    lan.assert_none_for(Duration::from_millis(200), |m| {
        m.topic.ends_with("/set/result")
    });
    let before: Vec<&str> = vec!["before-1", "before-2"];
    wait_payloads(
        &upstream,
        &before,
        "the messages published while the cloud is up",
    );

    cloud.stop();
    agent.wait_for_line("uplink disconnected", WAIT);
    mqtt::publish_many_with(local, "farm/sensor3/level", 200, 1, "outage-{i}", &[]);
    cloud.start_again();
    let during: Vec<String> = (0..200).map(|i| format!("outage-{i}")).collect();
    let during: Vec<&str> = during.iter().map(String::as_str).collect();
    wait_payloads(
        &upstream,
        &during,
        "the 200 messages queued during the outage",
    );

    // No device: nothing was polled, no device state was published.
    let lines = agent.lines().join("\n");
    assert!(lines.contains("devices=0"), "{lines}");
    assert!(
        !lines.to_lowercase().contains("modbus"),
        "no Modbus activity expected:\n{lines}"
    );
    assert!(
        upstream
            .messages()
            .iter()
            .all(|m| !m.topic.ends_with("/$state")),
        "no device state was published"
    );
}

fn wait_payloads(sub: &mqtt::Subscription, want: &[&str], what: &str) {
    common::wait::poll_until(what, WAIT, || {
        let seen: HashSet<String> = sub.messages().iter().map(|m| m.text()).collect();
        want.iter().all(|w| seen.contains(*w)).then_some(())
    });
}
