//! The `uplink` section: every key decoded, defaults, and a table of bad configs with their
//! located messages.

use std::path::PathBuf;
use std::time::Duration;

use super::parse_size;
use crate::config::model::*;
use crate::config::{parse, ConfigError, Origin};

fn origin() -> Origin {
    Origin {
        name: "x.yaml".into(),
        base_dir: PathBuf::from("/etc/ferrule"),
        state_dir: PathBuf::from("/var/lib/ferrule"),
    }
}

/// Lines 1–5: a valid config without an uplink; the uplink section starts on line 6.
const HEAD: &str = "\
site: plant1
devices:
  - name: boiler
    tcp: \"10.0.0.1:502\"
    points: [{name: t, kind: holding, address: 1}]
";

fn uplink(section: &str) -> Uplink {
    let text = format!("{HEAD}uplink:\n{section}");
    match parse(&text, &origin()) {
        Ok(config) => config.uplink.expect("an uplink section"),
        Err(e) => panic!("{text}\n{e}"),
    }
}

/// `line:column: path: message` of every problem.
fn problems(section: &str) -> Vec<String> {
    let text = format!("{HEAD}uplink:\n{section}");
    match parse(&text, &origin()) {
        Err(ConfigError::Invalid(d)) => d
            .iter()
            .map(|d| format!("{}:{}: {}: {}", d.line, d.column, d.path, d.message))
            .collect(),
        other => panic!("expected problems for\n{text}\ngot {other:?}"),
    }
}

#[test]
fn every_key_decodes() {
    let u = uplink(
        "  url: wss://cloud.example.com:8443/mqtt
  protocol: 5
  client_id: gw-7
  keepalive: 45s
  username: gw7
  password_file: secrets/pass
  ca: certs/ca.pem
  cert: certs/gw.pem
  key: /etc/ferrule/gw.key
  window: 500
  max_rate: 200
  reconnect: {initial: 100ms, max: 5s}
  sequence: property
  sequence_key: n
  forward:
    - {local: \"plant1/#\"}
    - {local: \"plant1/+/alarm\", remote: \"alarms/{2}\", qos: 2, retain: false}
    - {local: \"plant1/#\", remote: \"factory/eu\", qos: 0}
  downlink:
    - {remote: \"plant1/+/+/set\"}
    - {remote: \"cmd/gw7/+/+\", local: \"plant1/{3}/{4}/set\", qos: 0, retained: true}
  queue:
    path: q.db
    durability: normal
    max_bytes: 512MiB
    max_messages: 1000000
    max_age: 168h
    on_full: reject_new
",
    );
    assert_eq!(u.url.to_string(), "wss://cloud.example.com:8443/mqtt");
    assert_eq!(u.protocol, MqttVersion::V5);
    assert_eq!(
        (u.client_id.as_str(), u.keepalive),
        ("gw-7", Duration::from_secs(45))
    );
    assert_eq!(u.username.as_deref(), Some("gw7"));
    assert_eq!(
        u.password,
        Some(Secret::File(PathBuf::from("/etc/ferrule/secrets/pass")))
    );
    assert_eq!(u.ca, Some(PathBuf::from("/etc/ferrule/certs/ca.pem")));
    assert_eq!(u.cert, Some(PathBuf::from("/etc/ferrule/certs/gw.pem")));
    assert_eq!(u.key, Some(PathBuf::from("/etc/ferrule/gw.key")));
    assert_eq!((u.window, u.max_rate), (500, Some(200)));
    assert_eq!(
        u.reconnect,
        Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5)
        }
    );
    assert_eq!(u.sequence, Sequence::Property("n".into()));
    let alarm = &u.forward[1];
    assert_eq!(alarm.local, "plant1/+/alarm");
    assert_eq!(
        alarm
            .remote
            .as_ref()
            .map(|t| t.render("plant1/boiler/alarm")),
        Some("alarms/boiler".into())
    );
    assert_eq!((alarm.qos, alarm.retain), (Qos::ExactlyOnce, false));
    assert_eq!(
        (u.forward[0].remote.clone(), u.forward[0].retain),
        (None, true)
    );
    assert_eq!(
        u.forward[2].remote.as_ref().map(|t| t.render("plant1/x")),
        Some("factory/eu/plant1/x".into())
    );
    assert_eq!(u.downlink[0].remote, "plant1/+/+/set");
    assert_eq!(
        (u.downlink[0].local.clone(), u.downlink[0].qos),
        (None, Qos::AtLeastOnce)
    );
    assert_eq!(
        (u.downlink[0].retained, u.downlink[1].retained),
        (false, true)
    );
    assert_eq!(
        u.downlink[1]
            .local
            .as_ref()
            .map(|t| t.render("cmd/gw7/boiler/sp")),
        Some("plant1/boiler/sp/set".into())
    );
    assert_eq!(
        u.queue,
        QueueConfig {
            path: PathBuf::from("/etc/ferrule/q.db"),
            durability: Durability::Normal,
            max_bytes: 512 << 20,
            max_messages: Some(1_000_000),
            max_age: Some(Duration::from_secs(168 * 3600)),
            on_full: OnFull::RejectNew,
        }
    );
}

#[test]
fn defaults() {
    let u = uplink("  url: mqtt://h\n  password_env: PASS\n  username: u\n");
    assert_eq!(u.protocol, MqttVersion::V311);
    assert_eq!(u.password, Some(Secret::Env("PASS".into())));
    assert_eq!((u.window, u.max_rate), (DEFAULT_UPLINK_WINDOW, None));
    assert_eq!(u.reconnect.initial, DEFAULT_RECONNECT_INITIAL);
    assert_eq!(u.reconnect.max, DEFAULT_RECONNECT_MAX);
    assert_eq!(u.sequence, Sequence::Off);
    assert!(u.forward.is_empty() && u.downlink.is_empty());
    assert_eq!(u.queue.path, PathBuf::from("/var/lib/ferrule/queue.db"));
    assert_eq!(u.queue.max_bytes, DEFAULT_QUEUE_MAX_BYTES);
    assert_eq!((u.queue.max_messages, u.queue.max_age), (None, None));
    assert_eq!(u.queue.on_full, OnFull::DropOldest);
    let u = uplink("  url: mqtt://h\n  sequence: json\n  protocol: \"3.1.1\"\n");
    assert_eq!(u.sequence, Sequence::Json("seq".into()));
    assert_eq!(
        uplink("  url: mqtt://h\n  sequence: off\n").sequence,
        Sequence::Off
    );
}

#[test]
fn sizes() {
    for (text, want) in [
        ("0", 0),
        ("4096", 4096),
        ("10kB", 10_000),
        ("64KiB", 65_536),
        ("100MB", 100_000_000),
        ("512MiB", 512 << 20),
        ("1GiB", 1 << 30),
        ("2TiB", 2 << 40),
        ("5 MiB", 5 << 20),
    ] {
        assert_eq!(parse_size(text), Ok(want), "{text}");
    }
    for bad in ["", "MiB", "1.5GiB", "1gb", "1 G", "-1", "99999999999TiB"] {
        assert!(parse_size(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
#[rustfmt::skip] // a table: one case per two lines
fn bad_uplinks_are_located_and_explained() {
    let cases: &[(&str, &str)] = &[
        ("  url: mqtt://h\n  protocol: 3\n",
            "8:13: uplink.protocol: `3` is not a supported MQTT version; expected 3.1.1 or 5"),
        ("  url: mqtt://h\n  window: 0\n",
            "8:11: uplink.window: `0` is out of range; expected an integer from 1 to 65535"),
        ("  url: mqtt://h\n  max_rate: -5\n",
            "8:13: uplink.max_rate: `-5` is out of range; expected an integer from 1 to"),
        ("  url: mqtt://h\n  username: u\n  password_file: p\n  password_env: P\n",
            "10:17: uplink.password_env: set only one of `password_file` and `password_env`"),
        ("  url: mqtt://h\n  password_env: P\n",
            "8:17: uplink.password_env: a password needs a `username`"),
        ("  url: mqtt://h\n  password_env: 1PASS\n  username: u\n",
            "8:17: uplink.password_env: `1PASS` is not an environment variable name"),
        ("  url: mqtt://h\n  ca: ca.pem\n",
            "8:7: uplink.ca: `ca` is only used with TLS, but the url is mqtt://; use mqtts:// or wss://"),
        ("  url: mqtts://h\n  cert: c.pem\n",
            "8:9: uplink.cert: a client certificate needs its private key: set `key` too"),
        ("  url: mqtts://h\n  key: k.pem\n",
            "8:8: uplink.key: a private key needs its client certificate: set `cert` too"),
        ("  url: mqtt://h\n  sequence: property\n",
            "8:13: uplink.sequence: `property` needs `protocol: 5`"),
        ("  url: mqtt://h\n  sequence: header\n",
            "8:13: uplink.sequence: `header` is not a sequence mode; expected one of off, property, json"),
        ("  url: mqtt://h\n  reconnect: {initial: 10s, max: 1s}\n",
            "8:34: uplink.reconnect.max: `1s` is shorter than `initial` (10s)"),
        ("  url: mqtt://h\n  forward: [{local: \"a/+/c\", remote: \"x/{4}\"}]\n",
            "8:38: uplink.forward[0].remote: `{4}` names level 4, but `local: a/+/c` also matches topics with only 3 level(s)"),
        ("  url: mqtt://h\n  forward: [{local: \"a/#\", remote: \"x/{2}\"}]\n",
            "8:36: uplink.forward[0].remote: `{2}` names level 2, but `local: a/#` also matches topics with only 1 level(s)"),
        ("  url: mqtt://h\n  forward: [{local: \"a/#\", remote: \"x/+\"}]\n",
            "8:36: uplink.forward[0].remote: `x/+` is not a valid topic template: it must not contain the wildcards"),
        ("  url: mqtt://h\n  forward: [{local: \"a/#\", remote: \"x/{site}\"}]\n",
            "8:36: uplink.forward[0].remote: `x/{site}` is not a valid topic template: it has an unknown placeholder `{site}`"),
        ("  url: mqtt://h\n  forward: [{local: \"a/#\", retain: maybe}]\n",
            "8:36: uplink.forward[0].retain: expected `true` or `false`"),
        ("  url: mqtt://h\n  downlink: [{remote: \"a/#/b\"}]\n",
            "8:23: uplink.downlink[0].remote: `a/#/b` is not a valid topic filter"),
        ("  url: mqtt://h\n  downlink: [{remote: \"a/+\", local: \"$SYS/{2}\"}]\n",
            "8:37: uplink.downlink[0].local: `$SYS/{2}` would publish local topics starting with `$`"),
        ("  url: mqtt://h\n  downlink: [{local: \"x\"}]\n",
            "8:14: uplink.downlink[0]: missing required key `remote`"),
        ("  url: mqtt://h\n  queue: {max_bytes: 100}\n",
            "8:22: uplink.queue.max_bytes: `100` bytes is too small; expected at least 1024"),
        ("  url: mqtt://h\n  queue: {max_bytes: 1gb}\n",
            "8:22: uplink.queue.max_bytes: `1gb` is not a size; expected a whole number and a unit"),
        ("  url: mqtt://h\n  queue: {max_messages: 0}\n",
            "8:25: uplink.queue.max_messages: `0` is out of range; expected an integer from 1"),
        ("  url: mqtt://h\n  queue: {on_full: block}\n",
            "8:20: uplink.queue.on_full: `block` is not an on_full policy; expected one of drop_oldest, reject_new"),
        ("  url: mqtt://h\n  queue: {max_age: 7d}\n",
            "8:20: uplink.queue.max_age: `7d` is not a duration"),
        ("  url: mqtt://h\n  forwrd: []\n",
            "8:3: uplink.forwrd: unknown key `forwrd`; did you mean `forward`?"),
    ];
    let mut failures = Vec::new();
    for (section, want) in cases {
        let got = problems(section);
        if got.len() != 1 || !got[0].starts_with(want) {
            failures.push(format!("{section}\n  want {want}\n  got  {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn problems_in_several_keys_are_all_reported() {
    let got = problems(
        "  url: mqtt://h\n  window: 0\n  sequence: property\n  queue: {on_full: x, max_bytes: 1}\n",
    );
    assert_eq!(got.len(), 4, "{got:#?}");
}
