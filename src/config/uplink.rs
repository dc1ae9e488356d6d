//! The `uplink` section: its keys, defaults, scalar types and the rules across its fields.
//!
//! Kept apart from `schema.rs` because it is one section with many keys of its own; it follows
//! the same toolkit and invariants (every problem recorded, located, nothing decoded when a
//! problem was recorded). The scalar and list rules shared with other sections (durations,
//! topic filters, client ids) stay in `scalar.rs` and `validate.rs`.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{all, expected, list, map, quote, Ctx, Decode, Map};
use super::model::*;
use super::origin::Origin;
use super::scalar::{integer, one_of, text};
use super::validate;
use crate::topics::{self, Template};

const UPLINK: &[&str] = &[
    "url",
    "protocol",
    "client_id",
    "keepalive",
    "username",
    "password_file",
    "password_env",
    "ca",
    "cert",
    "key",
    "window",
    "max_rate",
    "reconnect",
    "sequence",
    "sequence_key",
    "forward",
    "downlink",
    "queue",
    "sparkplug",
];
const RECONNECT: &[&str] = &["initial", "max"];
const FORWARD: &[&str] = &["local", "remote", "qos", "retain"];
const DOWNLINK: &[&str] = &["remote", "local", "qos", "retained"];
const QUEUE: &[&str] = &[
    "path",
    "durability",
    "max_bytes",
    "max_messages",
    "max_age",
    "on_full",
];

/// Smallest `queue.max_bytes` accepted: anything less is surely a unit mistake.
const MIN_QUEUE_BYTES: u64 = 1024;

/// Decodes the `uplink` section; `site` is for the default client id.
pub fn uplink(cx: &mut Ctx, node: &Value, site: Option<&str>, origin: &Origin) -> Option<Uplink> {
    let m = map(cx, node, UPLINK)?;
    let url = m.required::<UplinkUrl>(cx, "url");
    let protocol = m.or(cx, "protocol", MqttVersion::default());
    let client_id = m.optional_with(cx, "client_id", |cx, v| {
        let id = String::decode(cx, v)?;
        validate::client_id(cx, &id);
        Some(id)
    });
    let keepalive = m.or(cx, "keepalive", DEFAULT_UPLINK_KEEPALIVE);
    validate::keepalive(cx, keepalive);
    let username = m.optional::<String>(cx, "username");
    let password_file = m.optional::<PathBuf>(cx, "password_file");
    let password_env = m.optional_with(cx, "password_env", env_name);
    let ca = m.optional::<PathBuf>(cx, "ca");
    let cert = m.optional::<PathBuf>(cx, "cert");
    let key = m.optional::<PathBuf>(cx, "key");
    let window = m.optional_with(cx, "window", |cx, v| {
        integer(cx, v, 1, i64::from(u16::MAX)).and_then(|w| u16::try_from(w).ok())
    });
    let max_rate = m.optional_with(cx, "max_rate", |cx, v| {
        integer(cx, v, 1, i64::from(u32::MAX)).and_then(|r| u32::try_from(r).ok())
    });
    let reconnect = m.optional_with(cx, "reconnect", reconnect);
    let sequence = m.optional::<SequenceMode>(cx, "sequence");
    let sequence_key = m.optional_with(cx, "sequence_key", |cx, v| {
        let key = String::decode(cx, v)?;
        if key.is_empty() {
            cx.error("the sequence key is empty; expected a name such as `seq`");
            return None;
        }
        Some(key)
    });
    let forward = m.optional_with(cx, "forward", |cx, v| all(list(cx, v, forward_rule)?));
    let downlink = m.optional_with(cx, "downlink", |cx, v| all(list(cx, v, downlink_rule)?));
    let queue = m.optional_with(cx, "queue", |cx, v| queue(cx, v, origin));
    let sparkplug = m.optional_with(cx, "sparkplug", super::sparkplug::sparkplug);

    let password_file = password_file.map(|f| f.map(|f| origin.base_dir.join(f)));
    let password = match (password_file, password_env) {
        (Some(file), Some(env)) => secret(cx, file, env),
        _ => None,
    };
    check_credentials(cx, m, username.as_ref(), password.as_ref());
    check_tls(cx, url.as_ref(), [&ca, &cert, &key]);
    let sequence = sequence_setting(cx, protocol, sequence?, sequence_key?);

    // Without `client_id` the default needs the site; when the site failed it is reported there.
    let client_id = match client_id? {
        Some(id) => id,
        None => format!("ferrule-{}", site?),
    };
    let resolve = |p: Option<PathBuf>| p.map(|p| origin.base_dir.join(p));
    Some(Uplink {
        url: url?,
        protocol: protocol?,
        client_id,
        keepalive: keepalive?,
        username: username?,
        password: password?,
        ca: resolve(ca?),
        cert: resolve(cert?),
        key: resolve(key?),
        window: window?.unwrap_or(DEFAULT_UPLINK_WINDOW),
        max_rate: max_rate?,
        reconnect: reconnect?.unwrap_or(Reconnect {
            initial: DEFAULT_RECONNECT_INITIAL,
            max: DEFAULT_RECONNECT_MAX,
        }),
        sequence: sequence?,
        forward: match (forward?, &sparkplug) {
            (Some(rules), _) => rules,
            (None, Some(Some(_))) => super::sparkplug::default_forward(site?),
            (None, _) => Vec::new(),
        },
        downlink: downlink?.unwrap_or_default(),
        queue: queue?.unwrap_or_else(|| default_queue(origin)),
        sparkplug: sparkplug?,
    })
}

fn default_queue(origin: &Origin) -> QueueConfig {
    QueueConfig {
        path: origin.state_dir.join(DEFAULT_QUEUE_FILE),
        durability: Durability::default(),
        max_bytes: DEFAULT_QUEUE_MAX_BYTES,
        max_messages: None,
        max_age: None,
        on_full: OnFull::default(),
    }
}

/// An environment variable name.
fn env_name(cx: &mut Ctx, node: &Value) -> Option<String> {
    let name = String::decode(cx, node)?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        cx.error(format!(
            "{} is not an environment variable name; expected letters, digits and `_`, \
             such as `FERRULE_UPLINK_PASSWORD`",
            quote(&name)
        ));
        return None;
    }
    Some(name)
}

/// `Some(None)` without a password, `None` when both sources are set (reported).
fn secret(cx: &mut Ctx, file: Option<PathBuf>, env: Option<String>) -> Option<Option<Secret>> {
    match (file, env) {
        (Some(_), Some(_)) => {
            cx.at_key("password_env", |cx| {
                cx.error("set only one of `password_file` and `password_env`");
            });
            None
        }
        (Some(f), None) => Some(Some(Secret::File(f))),
        (None, Some(e)) => Some(Some(Secret::Env(e))),
        (None, None) => Some(None),
    }
}

fn check_credentials(
    cx: &mut Ctx,
    m: Map<'_>,
    username: Option<&Option<String>>,
    password: Option<&Option<Secret>>,
) {
    if let (Some(None), Some(Some(_))) = (username, password) {
        let key = if m.get("password_file").is_some() {
            "password_file"
        } else {
            "password_env"
        };
        cx.at_key(key, |cx| {
            cx.error("a password needs a `username` (MQTT sends no password without one)");
        });
    }
}

/// `ca`, `cert` and `key` need a TLS URL; `cert` and `key` go together.
fn check_tls(
    cx: &mut Ctx,
    url: Option<&UplinkUrl>,
    [ca, cert, key]: [&Option<Option<PathBuf>>; 3],
) {
    if let Some(url) = url.filter(|u| !u.tls()) {
        for (name, value) in [("ca", ca), ("cert", cert), ("key", key)] {
            if matches!(value, Some(Some(_))) {
                cx.at_key(name, |cx| {
                    cx.error(format!(
                        "`{name}` is only used with TLS, but the url is {}://; \
                         use mqtts:// or wss://",
                        url.scheme.as_str()
                    ));
                });
            }
        }
    }
    match (cert, key) {
        (Some(Some(_)), Some(None)) => cx.at_key("cert", |cx| {
            cx.error("a client certificate needs its private key: set `key` too");
        }),
        (Some(None), Some(Some(_))) => cx.at_key("key", |cx| {
            cx.error("a private key needs its client certificate: set `cert` too");
        }),
        _ => {}
    }
}

/// The `sequence` mode as written, before its key is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SequenceMode {
    Off,
    Property,
    Json,
}

impl Decode for SequenceMode {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        fn name(m: SequenceMode) -> &'static str {
            match m {
                SequenceMode::Off => "off",
                SequenceMode::Property => "property",
                SequenceMode::Json => "json",
            }
        }
        if node.as_bool() == Some(false) {
            // YAML 1.1 readers turn a bare `off` into false.
            return Some(SequenceMode::Off);
        }
        let all = [
            SequenceMode::Off,
            SequenceMode::Property,
            SequenceMode::Json,
        ];
        one_of(cx, node, "a sequence mode", &all, name, false)
    }
}

fn sequence_setting(
    cx: &mut Ctx,
    protocol: Option<MqttVersion>,
    mode: Option<SequenceMode>,
    key: Option<String>,
) -> Option<Sequence> {
    let key = key.unwrap_or_else(|| DEFAULT_SEQUENCE_KEY.to_owned());
    Some(match mode {
        None | Some(SequenceMode::Off) => Sequence::Off,
        Some(SequenceMode::Json) => Sequence::Json(key),
        Some(SequenceMode::Property) => {
            if protocol == Some(MqttVersion::V311) {
                cx.at_key("sequence", |cx| {
                    cx.error(
                        "`property` needs `protocol: 5` (MQTT 3.1.1 has no user properties); \
                         use `json` to put the sequence number in JSON payloads",
                    );
                });
                return None;
            }
            Sequence::Property(key)
        }
    })
}

impl Decode for MqttVersion {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let version = match node {
            Value::Number(n) if n.as_u64() == Some(5) => Some(MqttVersion::V5),
            Value::Number(n) if n.as_u64() == Some(4) => Some(MqttVersion::V311),
            Value::String(s) if s == "5" || s == "5.0" => Some(MqttVersion::V5),
            Value::String(s) if s == "3.1.1" || s == "4" => Some(MqttVersion::V311),
            _ => None,
        };
        if version.is_none() {
            let shown = match node {
                Value::String(s) => quote(s),
                Value::Number(n) => format!("`{n}`"),
                other => return cx_error(cx, expected("an MQTT version: 3.1.1 or 5", other)),
            };
            cx.error(format!(
                "{shown} is not a supported MQTT version; expected 3.1.1 or 5"
            ));
        }
        version
    }
}

fn cx_error<T>(cx: &mut Ctx, message: String) -> Option<T> {
    cx.error(message);
    None
}

impl Decode for OnFull {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let all = [OnFull::DropOldest, OnFull::RejectNew];
        one_of(cx, node, "an on_full policy", &all, OnFull::as_str, false)
    }
}

impl Decode for Template {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(
            cx,
            node,
            "a topic template such as `telemetry/{2}/{3}` or a prefix such as `factory/eu`",
        )?;
        Template::parse(s)
            .map_err(|why| {
                cx.error(format!(
                    "{} is not a valid topic template: it {why}",
                    quote(s)
                ))
            })
            .ok()
    }
}

/// A size in bytes: an integer, or a number with a unit (`512MiB`, `1GiB`, `100MB`, `64KiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl Decode for ByteSize {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let parsed = match node {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| format!("`{n}` is not a size; expected a whole number of bytes")),
            Value::String(s) => parse_size(s),
            _ => Err(expected("a size such as `512MiB` or `1GiB`", node)),
        };
        parsed.map(ByteSize).map_err(|m| cx.error(m)).ok()
    }
}

/// Parses `123`, `64KiB`, `512MiB`, `1GiB`, `1TiB`, `10kB`, `100MB`, `2GB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{} is not a size; expected a whole number and a unit (B, kB, MB, GB, KiB, MiB, \
             GiB, TiB), e.g. `512MiB`",
            quote(s)
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let multiplier: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("{} is too large", quote(s)))
}

fn reconnect(cx: &mut Ctx, node: &Value) -> Option<Reconnect> {
    let m = map(cx, node, RECONNECT)?;
    let initial = m.or(cx, "initial", DEFAULT_RECONNECT_INITIAL)?;
    let max = m.or(cx, "max", DEFAULT_RECONNECT_MAX)?;
    if max < initial {
        cx.at_key("max", |cx| {
            cx.error(format!(
                "`{max:?}` is shorter than `initial` ({initial:?}); expected max ≥ initial"
            ));
        });
        return None;
    }
    Some(Reconnect { initial, max })
}

fn forward_rule(cx: &mut Ctx, node: &Value) -> Option<ForwardRule> {
    let m = map(cx, node, FORWARD)?;
    let local = m.required_with(cx, "local", filter);
    let remote = m.optional::<Template>(cx, "remote");
    let qos = m.or(cx, "qos", Qos::default());
    let retain = m.or(cx, "retain", true);
    if let (Some(local), Some(Some(remote))) = (&local, &remote) {
        cx.at_key("remote", |cx| levels_exist(cx, remote, local, "local"));
    }
    Some(ForwardRule {
        local: local?,
        remote: remote?,
        qos: qos?,
        retain: retain?,
    })
}

fn downlink_rule(cx: &mut Ctx, node: &Value) -> Option<DownlinkRule> {
    let m = map(cx, node, DOWNLINK)?;
    let remote = m.required_with(cx, "remote", filter);
    let local = m.optional::<Template>(cx, "local");
    let qos = m.or(cx, "qos", Qos::default());
    let retained = m.or(cx, "retained", false);
    if let Some(Some(local)) = &local {
        cx.at_key("local", |cx| {
            if let Some(remote) = &remote {
                levels_exist(cx, local, remote, "remote");
            }
            if local.literal_start().starts_with('$') {
                cx.error(format!(
                    "{} would publish local topics starting with `$`, which are reserved \
                     for the broker",
                    quote(local.as_str())
                ));
            }
        });
    }
    Some(DownlinkRule {
        remote: remote?,
        local: local?,
        qos: qos?,
        retained: retained?,
    })
}

fn filter(cx: &mut Ctx, node: &Value) -> Option<String> {
    let filter = String::decode(cx, node)?;
    validate::filter(cx, &filter);
    Some(filter)
}

/// The context is at a template; every level it names exists in every topic `filter` matches.
fn levels_exist(cx: &mut Ctx, template: &Template, filter: &str, filter_key: &str) {
    let (highest, min) = (template.highest_level(), topics::min_levels(filter));
    if highest > min {
        cx.error(format!(
            "`{{{highest}}}` names level {highest}, but `{filter_key}: {filter}` also matches \
             topics with only {min} level(s)"
        ));
    }
}

fn queue(cx: &mut Ctx, node: &Value, origin: &Origin) -> Option<QueueConfig> {
    let m = map(cx, node, QUEUE)?;
    let path = m.optional::<PathBuf>(cx, "path");
    let durability = m.or(cx, "durability", Durability::default());
    let max_bytes = m.optional_with(cx, "max_bytes", |cx, v| {
        let size = ByteSize::decode(cx, v)?.0;
        if size < MIN_QUEUE_BYTES {
            cx.error(format!(
                "`{size}` bytes is too small; expected at least {MIN_QUEUE_BYTES} (1KiB)"
            ));
            return None;
        }
        Some(size)
    });
    let max_messages = m.optional_with(cx, "max_messages", |cx, v| {
        integer(cx, v, 1, i64::MAX).and_then(|n| u64::try_from(n).ok())
    });
    let max_age = m.optional::<Duration>(cx, "max_age");
    let on_full = m.or(cx, "on_full", OnFull::default());
    Some(QueueConfig {
        path: match path? {
            Some(path) => origin.base_dir.join(path),
            None => origin.state_dir.join(DEFAULT_QUEUE_FILE),
        },
        durability: durability?,
        max_bytes: max_bytes?.unwrap_or(DEFAULT_QUEUE_MAX_BYTES),
        max_messages: max_messages?,
        max_age: max_age?,
        on_full: on_full?,
    })
}

#[cfg(test)]
mod tests;
