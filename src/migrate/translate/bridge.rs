//! The bridge (`connection`) section → the `uplink` section: address, topic lines (direction,
//! QoS, prefixes as topic templates), credentials, TLS files, reconnect and keepalive.
//!
//! Invariant: like the rest of the translation, each bridge option is mapped, noted as not
//! needed, or listed as not honoured; only the first `connection` is migrated (one uplink).

use std::path::Path;

use super::super::emit::{q, Entry};
use super::super::read::Directive;
use super::{boolean, from, Options, State, Unhonoured, PASSWORD_ENV, PASSWORD_FILE};

#[derive(Debug, Default)]
pub(super) struct Bridge {
    pub(super) name: String,
    pub(super) address: Option<(String, u16)>,
    pub(super) topics: Vec<(Directive, TopicRule)>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) clientid: Option<String>,
    pub(super) ca: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) protocol: Option<&'static str>,
    pub(super) keepalive: Option<u64>,
    pub(super) restart: Option<(u64, u64)>,
    pub(super) comments: Vec<String>,
    /// `file:line` of the `connection` line.
    pub(super) at: String,
    /// `file:line` of `remote_password`.
    pub(super) password_at: String,
}

#[derive(Debug, Clone)]
pub(super) enum TopicRule {
    Forward {
        local: String,
        remote: Option<String>,
        qos: u8,
    },
    Downlink {
        remote: String,
        local: Option<String>,
        qos: u8,
    },
}

/// Handles a bridge option when inside a `connection`; `false` for any other option.
pub(super) fn bridge_option(s: &mut State<'_>, d: &Directive) -> bool {
    const BRIDGE: &[&str] = &[
        "address",
        "addresses",
        "topic",
        "remote_username",
        "remote_password",
        "remote_clientid",
        "bridge_cafile",
        "bridge_certfile",
        "bridge_keyfile",
        "bridge_capath",
        "bridge_insecure",
        "bridge_protocol_version",
        "cleansession",
        "notifications",
        "notification_topic",
        "notifications_local_only",
        "keepalive_interval",
        "restart_timeout",
        "try_private",
        "start_type",
        "local_clientid",
        "local_username",
        "local_password",
        "local_cleansession",
        "round_robin",
        "idle_timeout",
        "threshold",
        "bridge_attempt_unsubscribe",
        "bridge_outgoing_retain",
        "bridge_bind_address",
        "bridge_identity",
        "bridge_psk",
        "bridge_tls_version",
        "bridge_alpn",
        "bridge_require_ocsp",
        "bridge_max_packet_size",
    ];
    if !BRIDGE.contains(&d.option.as_str()) {
        return false;
    }
    let first_bridge = s.bridges.len() == 1;
    let conf_dir = s.conf_dir.clone();
    let Some(b) = s.bridge() else {
        s.refuse(d, "a bridge option outside a `connection` section");
        return true;
    };
    if !first_bridge {
        // Already reported at the `connection` line; each option is listed too.
        s.refuse(d, "belongs to a second bridge; ferrule has one uplink");
        return true;
    }
    let path = |w: &str| {
        if Path::new(w).is_absolute() {
            w.to_owned()
        } else {
            conf_dir.join(w).display().to_string()
        }
    };
    let c = from(d);
    let mut mapped = true;
    let mut refusal: Option<String> = None;
    let mut none_needed: Option<&str> = None;
    match d.option.as_str() {
        "address" | "addresses" => {
            let first = d.args.first().map(String::as_str).unwrap_or_default();
            let (host, port) = match first.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
                    h.trim_matches(['[', ']']).to_owned(),
                    p.parse().unwrap_or(1883),
                ),
                _ => (first.to_owned(), 1883),
            };
            b.address = Some((host, port));
            b.comments.push(c);
            if d.args.len() > 1 {
                refusal = Some(
                    "ferrule's uplink has one address: the first is used, the others \
                     (failover addresses) are not"
                        .into(),
                );
            }
        }
        "topic" => match topic_rule(d) {
            Ok(rules) => {
                for r in rules {
                    b.topics.push((d.clone(), r));
                }
            }
            Err(why) => {
                mapped = false;
                refusal = Some(why);
            }
        },
        "remote_username" => {
            b.username = Some(d.rest.clone());
            b.comments.push(c);
        }
        "remote_password" => {
            b.password = Some(d.rest.clone());
            b.password_at = d.at();
            // The password itself never goes into the config, not even in a comment.
            b.comments.push(format!("{} `remote_password …`", d.at()));
        }
        "remote_clientid" => {
            b.clientid = Some(d.rest.clone());
            b.comments.push(c);
        }
        "bridge_cafile" => {
            b.ca = Some(path(&d.rest));
            b.comments.push(c);
        }
        "bridge_certfile" => {
            b.cert = Some(path(&d.rest));
            b.comments.push(c);
        }
        "bridge_keyfile" => {
            b.key = Some(path(&d.rest));
            b.comments.push(c);
        }
        "bridge_protocol_version" => match d.rest.as_str() {
            "mqttv311" => {
                b.protocol = Some("\"3.1.1\"");
                b.comments.push(c);
            }
            "mqttv50" => {
                b.protocol = Some("\"5\"");
                b.comments.push(c);
            }
            _ => {
                mapped = false;
                refusal = Some("ferrule's uplink speaks MQTT 3.1.1 or 5, not 3.1".into());
            }
        },
        "keepalive_interval" => match d.rest.parse::<u64>() {
            Ok(n) if n > 0 => {
                b.keepalive = Some(n);
                b.comments.push(c);
            }
            _ => {
                mapped = false;
                refusal = Some("ferrule's uplink needs a keepalive of at least 1 s".into());
            }
        },
        "restart_timeout" => {
            let parts: Vec<u64> = d
                .rest
                .split([',', ' '])
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.parse().ok())
                .collect();
            match parts.as_slice() {
                [one] if *one > 0 => b.restart = Some((*one, *one)),
                [lo, hi] if *lo > 0 && lo <= hi => b.restart = Some((*lo, *hi)),
                _ => {
                    mapped = false;
                    refusal = Some("expected `restart_timeout SECONDS` or `BASE,CAP`".into());
                }
            }
            if mapped {
                b.comments.push(c);
            }
        }
        "cleansession" => {
            none_needed = Some(
                "ferrule's uplink connects with a clean session and keeps what is not yet \
                 acknowledged in its own durable queue (nothing is lost either way)",
            );
        }
        "notifications" => {
            if boolean(d) == Some(false) {
                mapped = false;
                refusal = Some(
                    "ferrule always publishes its state on `{site}/$agent/state` \
                     (online/offline, retained); it cannot be switched off"
                        .into(),
                );
            } else {
                none_needed = Some(
                    "ferrule publishes its state as `{site}/$agent/state` online/offline \
                     (retained) instead of `$SYS/broker/connection/NAME/state`",
                );
            }
        }
        "notification_topic" | "notifications_local_only" => {
            mapped = false;
            refusal = Some(
                "ferrule's state topic is always `{site}/$agent/state` on the local broker".into(),
            );
        }
        "try_private"
        | "local_clientid"
        | "local_username"
        | "local_password"
        | "local_cleansession"
        | "bridge_attempt_unsubscribe" => {
            none_needed = Some("ferrule's uplink is inside the broker: no local connection");
        }
        "start_type" => {
            if d.rest == "automatic" {
                none_needed = Some("ferrule's uplink always starts with the broker");
            } else {
                mapped = false;
                refusal =
                    Some("ferrule's uplink always starts with the broker (`automatic`)".into());
            }
        }
        "bridge_insecure" => {
            if boolean(d) == Some(true) {
                mapped = false;
                refusal = Some(
                    "ferrule always checks the upstream broker's certificate name; use a \
                     certificate that matches the address"
                        .into(),
                );
            } else {
                none_needed = Some("ferrule always checks the certificate name");
            }
        }
        _ => {
            mapped = false;
            refusal = Some("not supported by ferrule's uplink".into());
        }
    }
    if let Some(why) = none_needed {
        s.not_needed(d, why);
        return true;
    }
    if mapped {
        s.mapped += 1;
    }
    if let Some(why) = refusal {
        s.refuse(d, why);
    }
    true
}

/// `topic PATTERN [[[out|in|both] QOS] LOCAL_PREFIX REMOTE_PREFIX]` as forward and downlink
/// rules.
pub(super) fn topic_rule(d: &Directive) -> Result<Vec<TopicRule>, String> {
    let a: Vec<&str> = d.args.iter().map(|s| s.trim_matches('"')).collect();
    let pattern = *a.first().ok_or("a `topic` line needs a pattern")?;
    let direction = a.get(1).copied().unwrap_or("out");
    let qos: u8 = match a.get(2) {
        Some(q) => q
            .parse()
            .ok()
            .filter(|q| *q <= 2)
            .ok_or("QoS must be 0, 1 or 2")?,
        None => 0,
    };
    let local_prefix = a.get(3).copied().unwrap_or("");
    let remote_prefix = a.get(4).copied().unwrap_or("");
    if pattern.is_empty() {
        return Err(
            "a topic remapped with an empty pattern (prefixes only) is not supported".into(),
        );
    }
    let to_template = |from_prefix: &str, to_prefix: &str| -> Result<Option<String>, String> {
        if from_prefix == to_prefix {
            return Ok(None);
        }
        let to = to_prefix.trim_end_matches('/');
        if from_prefix.is_empty() {
            // A prefix template joins with `/`.
            return Ok(Some(to.to_owned()));
        }
        if pattern.contains('#') {
            return Err(format!(
                "ferrule's topic templates cannot strip the prefix `{from_prefix}` before a \
                 multi-level wildcard; forward `{from_prefix}{pattern}` under its own name, or \
                 list the levels (e.g. `{pattern}` → `a/+/b`)"
            ));
        }
        let skip = from_prefix.trim_end_matches('/').split('/').count();
        let levels = pattern.split('/').count();
        let placeholders: Vec<String> = (skip + 1..=skip + levels)
            .map(|i| format!("{{{i}}}"))
            .collect();
        let joined = placeholders.join("/");
        Ok(Some(if to.is_empty() {
            joined
        } else {
            format!("{to}/{joined}")
        }))
    };
    let mut rules = Vec::new();
    if matches!(direction, "out" | "both") {
        rules.push(TopicRule::Forward {
            local: format!("{local_prefix}{pattern}"),
            remote: to_template(local_prefix, remote_prefix)?,
            qos,
        });
    }
    if matches!(direction, "in" | "both") {
        rules.push(TopicRule::Downlink {
            remote: format!("{remote_prefix}{pattern}"),
            local: to_template(remote_prefix, local_prefix)?,
            qos,
        });
    }
    if rules.is_empty() {
        return Err(format!("direction `{direction}` is not out, in or both"));
    }
    Ok(rules)
}

pub(super) fn uplink_entry(
    b: &Bridge,
    options: &Options,
    secrets: &mut Vec<(String, String)>,
    notes: &mut Vec<String>,
    unhonoured: &mut Vec<Unhonoured>,
) -> Entry {
    let mut children = Vec::new();
    let tls = b.ca.is_some() || b.cert.is_some();
    let (host, port) = b
        .address
        .clone()
        .unwrap_or_else(|| ("localhost".into(), 1883));
    if b.address.is_none() {
        unhonoured.push(Unhonoured {
            at: b.at.clone(),
            text: format!("connection {}", b.name),
            why: "the bridge has no `address`; the uplink points at localhost:1883".into(),
        });
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("{}://{host}:{port}", if tls { "mqtts" } else { "mqtt" });
    children.push(Entry {
        key: "url".into(),
        value: q(&url),
        comments: b.comments.clone(),
        ..Entry::default()
    });
    if let Some(p) = b.protocol {
        children.push(Entry::scalar("protocol", p, None));
    }
    let client_id = b.clientid.clone().unwrap_or_else(|| {
        // Mosquitto's default remote client id: hostname.connection_name; ferrule's default
        // is ferrule-{site}. Keep the bridge's name visible.
        format!("ferrule-{}", b.name)
    });
    children.push(Entry::scalar("client_id", q(&client_id), None));
    if let Some(k) = b.keepalive {
        children.push(Entry::scalar("keepalive", q(&format!("{k}s")), None));
    }
    if let Some(u) = &b.username {
        children.push(Entry::scalar("username", q(u), None));
    }
    if let (Some(_), None) = (&b.password, &b.username) {
        unhonoured.push(Unhonoured {
            at: b.password_at.clone(),
            text: "remote_password …".into(),
            why: "MQTT sends no password without a username: set `remote_username` too; \
                  the password is not migrated"
                .into(),
        });
    }
    if let (Some(p), Some(_)) = (&b.password, &b.username) {
        match &options.output_dir {
            Some(_) => {
                secrets.push((PASSWORD_FILE.into(), p.clone()));
                children.push(Entry::scalar(
                    "password_file",
                    q(PASSWORD_FILE),
                    Some(
                        "remote_password, moved out of the config into this file (mode 0600)"
                            .into(),
                    ),
                ));
            }
            None => {
                children.push(Entry::scalar(
                    "password_env",
                    q(PASSWORD_ENV),
                    Some("remote_password: set this variable to the bridge password".into()),
                ));
                notes.push(format!(
                    "set {PASSWORD_ENV} to the bridge's remote_password before `ferrule run` \
                     (or use -o FILE to have it written to a file beside the config)"
                ));
            }
        }
    }
    for (k, v) in [("ca", &b.ca), ("cert", &b.cert), ("key", &b.key)] {
        if let Some(v) = v {
            children.push(Entry::scalar(k, q(v), None));
        }
    }
    if let Some((lo, hi)) = b.restart {
        children.push(Entry::scalar(
            "reconnect",
            format!("{{initial: \"{lo}s\", max: \"{hi}s\"}}"),
            None,
        ));
    }
    let mut forward = Vec::new();
    let mut downlink = Vec::new();
    for (d, rule) in &b.topics {
        match rule {
            TopicRule::Forward { local, remote, qos } => {
                let mut item = vec![Entry::scalar("local", q(local), Some(from(d)))];
                if let Some(r) = remote {
                    item.push(Entry::scalar("remote", q(r), None));
                }
                item.push(Entry::scalar("qos", qos.to_string(), None));
                forward.push(item);
            }
            TopicRule::Downlink { remote, local, qos } => {
                let mut item = vec![Entry::scalar("remote", q(remote), Some(from(d)))];
                if let Some(l) = local {
                    item.push(Entry::scalar("local", q(l), None));
                }
                item.push(Entry::scalar("qos", qos.to_string(), None));
                // Mosquitto bridges pass retained messages in; so does this rule.
                item.push(Entry::scalar("retained", "true", None));
                downlink.push(item);
            }
        }
    }
    if !forward.is_empty() {
        children.push(Entry {
            key: "forward".into(),
            items: forward,
            ..Entry::default()
        });
    }
    if !downlink.is_empty() {
        children.push(Entry {
            key: "downlink".into(),
            items: downlink,
            ..Entry::default()
        });
    }
    children.push(Entry::scalar(
        "queue",
        "{path: \"uplink-queue.db\"}",
        Some(
            "what is forwarded is queued on disk until the upstream broker acknowledges it".into(),
        ),
    ));
    Entry {
        key: "uplink".into(),
        children,
        ..Entry::default()
    }
}
