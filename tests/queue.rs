//! The queue as an operator meets it, with real Mosquitto as the cloud and paho as the LAN
//! publisher: its bounds with each `on_full` policy (the right messages dropped or refused, and
//! counted), `ferrule queue stats|peek|purge` beside a running agent, and a corrupt file.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mqtt::{self, SubOptions};
use common::process::Finished;
use common::{Ferrule, Mosquitto};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A gateway forwarding `q/lan/#` to `cloud_port` with this `queue:` section.
fn config(dir: &Path, cloud_port: u16, queue: &str) -> PathBuf {
    let yaml = format!(
        r#"
site: q
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: dummy
    tcp: "127.0.0.1:9"
    poll: 1h
    points: [{{name: x, kind: holding, address: 0}}]
uplink:
  url: "mqtt://127.0.0.1:{cloud_port}"
  protocol: 5
  sequence: property
  reconnect: {{initial: 50ms, max: 500ms}}
  forward: [{{local: "q/lan/#", qos: 1}}]
  queue: {queue}
"#
    );
    Ferrule::write_config(dir, &yaml)
}

fn queue_cmd(config: &Path, args: &[&str]) -> Finished {
    let config = config.to_str().expect("UTF-8 path");
    let mut all = vec!["queue"];
    all.extend_from_slice(&args[..1]);
    all.extend(["--config", config]);
    all.extend_from_slice(&args[1..]);
    Ferrule::output(&all, WAIT)
}

fn stats(config: &Path) -> Value {
    let out = queue_cmd(config, &["stats", "--json", "--interval", "0"]);
    assert!(out.status.success(), "queue stats failed:\n{}", out.tail());
    serde_json::from_str(&out.stdout.join("\n")).expect("queue stats prints JSON")
}

/// 100-byte messages (topic `q/lan/b` is 7 bytes): `p-0000` padded with dots.
const TEMPLATE: &str =
    "p-{i}.........................................................................................";

fn payload(i: usize) -> String {
    TEMPLATE.replace("{i}", &i.to_string())
}

/// Mosquitto that keeps offline sessions across a restart.
fn cloud() -> Mosquitto {
    Mosquitto::start_with(&["persistence true", "max_queued_messages 0"])
}

/// A persistent MQTT 5 subscriber: it gets what arrives while the cloud restarts.
fn cloud_subscriber(cloud: &Mosquitto) -> mqtt::Subscription {
    mqtt::sub_with(
        cloud.port(),
        &["q/lan/#"],
        &SubOptions {
            protocol: mqtt::Protocol::V5,
            client_id: Some("q-cloud".into()),
            clean: false,
            session_expiry: 600,
            ..SubOptions::default()
        },
    )
}

#[test]
fn drop_oldest_keeps_the_newest_and_counts_what_it_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud);
    cloud.stop();
    // 4000 bytes hold 40 messages of 100 bytes (each is 7 + 93 bytes at most).
    let config = config(
        dir.path(),
        cloud.port(),
        "{path: queue.db, durability: normal, max_bytes: 4000}",
    );
    let agent = Ferrule::run(&config);
    let local = agent.listener_addr().port();

    // Every publish is taken (PUBACK), the oldest make room.
    mqtt::publish_many_with(local, "q/lan/b", 100, 1, TEMPLATE, &[]);
    let s = stats(&config);
    assert!(s["bytes"].as_u64().is_some_and(|b| b <= 4000), "{s}");
    let kept = s["depth"].as_u64().expect("depth") as usize;
    let dropped = s["since_created"]["dropped_max_bytes"]
        .as_u64()
        .expect("count") as usize;
    assert_eq!(kept + dropped, 100, "{s}");
    assert!((39..=43).contains(&kept), "{s}");
    agent.wait_for_line("dropped or refused", WAIT);

    cloud.start_again();
    let got = upstream.wait_for_count(kept, WAIT);
    let texts: Vec<String> = got.iter().map(|m| m.text()).collect();
    let newest: Vec<String> = (100 - kept..100).map(payload).collect();
    assert_eq!(
        texts, newest,
        "exactly the newest messages went up, in order"
    );
    // The cloud can see the gap: the first sequence number is the dropped count above the
    // first one the queue ever gave (the sequence starts at the file's creation).
    let seq = |m: &mqtt::Message| -> i64 {
        m.user_properties
            .iter()
            .find(|(k, _)| k == "seq")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a seq property")
    };
    let first = seq(&got[0]);
    assert_eq!(
        seq(&got[kept - 1]) - first,
        kept as i64 - 1,
        "gap-free after the drop"
    );
    assert_eq!(
        stats(&config)["last_id"].as_i64(),
        Some(seq(&got[kept - 1]))
    );
}

#[test]
fn reject_new_refuses_publishers_and_keeps_what_it_has() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud);
    cloud.stop();
    let config = config(
        dir.path(),
        cloud.port(),
        "{path: queue.db, durability: normal, max_messages: 30, on_full: reject_new}",
    );
    let agent = Ferrule::run(&config);
    let local = agent.listener_addr().port();

    mqtt::publish_many_with(local, "q/lan/b", 30, 1, TEMPLATE, &[]);
    // MQTT 5: each publish is refused with a reason code (0x97 quota exceeded).
    let v5 = mqtt::try_publish_many(
        local,
        "q/lan/late5",
        5,
        1,
        "late-{i}",
        &["--protocol", "5"],
        Duration::from_secs(10),
    );
    assert_eq!(v5.status.code(), Some(2), "refused:\n{}", v5.tail());
    assert!(
        v5.tail().contains("5 of 5 messages refused"),
        "{}",
        v5.tail()
    );
    // MQTT 3.1.1 has no negative PUBACK: the broker closes the connection, so the publisher
    // never gets an acknowledgement (and keeps the message to send again).
    let v3 = mqtt::try_publish_many(
        local,
        "q/lan/late3",
        1,
        1,
        "late-{i}",
        &[],
        Duration::from_secs(3),
    );
    assert_eq!(
        v3.status.code(),
        Some(1),
        "never acknowledged:\n{}",
        v3.tail()
    );
    assert!(v3.tail().contains("0 of 1 acknowledged"), "{}", v3.tail());

    let s = stats(&config);
    assert_eq!(s["depth"], 30, "{s}");
    let refused = s["since_created"]["rejected_full"].as_u64().expect("count");
    assert!(
        refused >= 6,
        "5 refused to MQTT 5, the 3.1.1 one at least once: {s}"
    );
    assert_eq!(s["since_created"]["dropped_max_messages"], 0);

    cloud.start_again();
    let got = upstream.wait_for_count(30, WAIT);
    let texts: Vec<String> = got.iter().map(|m| m.text()).collect();
    assert_eq!(texts, (0..30).map(payload).collect::<Vec<_>>());
    upstream.assert_none_for(Duration::from_millis(300), |m| m.topic != "q/lan/b");
}

#[test]
fn stats_peek_and_purge_work_beside_a_running_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cloud = cloud();
    let upstream = cloud_subscriber(&cloud);
    cloud.stop();
    let config = config(
        dir.path(),
        cloud.port(),
        "{path: queue.db, durability: normal}",
    );
    let agent = Ferrule::run(&config);
    let local = agent.listener_addr().port();
    mqtt::publish_many_with(local, "q/lan/p", 5, 1, "p-{i}", &[]);

    let text = queue_cmd(&config, &["stats", "--interval", "200ms"]);
    assert!(text.status.success(), "{}", text.tail());
    let text = text.stdout.join("\n");
    assert!(text.contains("messages   5 ("), "{text}");
    assert!(text.contains("rates      in "), "{text}");
    assert!(text.contains("on_full drop_oldest"), "{text}");

    let peek = queue_cmd(&config, &["peek", "-n", "2"]);
    assert!(peek.status.success(), "{}", peek.tail());
    assert_eq!(peek.stdout.len(), 2, "{:?}", peek.stdout);
    assert!(
        peek.stdout[0].ends_with("qos1  q/lan/p  p-0"),
        "{:?}",
        peek.stdout
    );
    assert!(
        peek.stdout[1].ends_with("q/lan/p  p-1"),
        "{:?}",
        peek.stdout
    );

    // Asked, and answered no: nothing changes.
    let no = purge_answering(&config, "no\n");
    assert_eq!(no.status.code(), Some(1), "{}", no.tail());
    assert!(no
        .stdout
        .join("\n")
        .contains("This deletes all 5 queued message(s)"));
    assert_eq!(stats(&config)["depth"], 5);
    let yes = purge_answering(&config, "yes\n");
    assert!(yes.status.success(), "{}", yes.tail());
    assert!(yes.stdout.join("\n").contains("purged 5 message(s)"));

    // The agent goes on: what it queues next is delivered, the purged ones never are.
    mqtt::publish(local, "q/lan/p", "after", 1);
    let s = stats(&config);
    assert_eq!(
        (s["depth"].as_u64(), s["since_created"]["purged"].as_u64()),
        (Some(1), Some(5))
    );
    cloud.start_again();
    let after = upstream.wait_for_topic("q/lan/p", WAIT);
    assert_eq!(after.text(), "after");
    upstream.assert_none_for(Duration::from_millis(300), |m| m.text().starts_with("p-"));
    let purged_again = queue_cmd(&config, &["purge", "--yes"]);
    assert!(purged_again.status.success(), "{}", purged_again.tail());
}

/// `ferrule queue purge` with `answer` on its stdin.
fn purge_answering(config: &Path, answer: &str) -> Finished {
    let mut child = Command::new(Ferrule::bin())
        .args(["queue", "purge", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferrule queue purge");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("answer");
    let out = child.wait_with_output().expect("purge finishes");
    let text = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let stdout = text(&out.stdout);
    let mut lines = stdout.clone();
    lines.extend(text(&out.stderr));
    Finished {
        status: out.status,
        lines,
        stdout,
    }
}

#[test]
fn a_corrupt_queue_is_moved_aside_reported_and_the_agent_keeps_forwarding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = cloud();
    let upstream = cloud_subscriber(&cloud);
    let config = config(
        dir.path(),
        cloud.port(),
        "{path: queue.db, durability: normal}",
    );
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 31 + 7) as u8).collect();
    std::fs::write(dir.path().join("queue.db"), &garbage).expect("write garbage");

    // The inspection tools say what is wrong and touch nothing.
    let out = queue_cmd(&config, &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.tail().contains("is corrupt"), "{}", out.tail());

    let agent = Ferrule::run(&config);
    let line = agent.wait_for_line("queue database is corrupt", WAIT);
    assert!(
        line.contains("ERROR") && line.contains("moved_to="),
        "{line}"
    );
    let moved: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains("queue.db.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(&moved[0]).expect("read"),
        garbage,
        "kept as it was"
    );

    agent.wait_for_line("uplink connected", WAIT);
    let local = agent.listener_addr().port();
    mqtt::publish(local, "q/lan/c", "still forwarding", 1);
    assert_eq!(
        upstream.wait_for_topic("q/lan/c", WAIT).text(),
        "still forwarding"
    );
    assert_eq!(stats(&config)["depth"], 0);
}
