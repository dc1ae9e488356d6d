//! The mapping of Mosquitto options to ferrule keys (pure: directives in, YAML text and the
//! list of what cannot be honoured out).
//!
//! Mosquitto semantics kept:
//! - listener options (`protocol`, `certfile`, `socket_domain`...) apply to the last
//!   `listener` (or to the default listener of `port`/`bind_address` when before any);
//! - `allow_anonymous`, `password_file`, `acl_file` are broker-wide unless
//!   `per_listener_settings true`, then they belong to the listener they follow;
//! - with listeners configured and no `allow_anonymous`, anonymous clients are refused
//!   (Mosquitto 2's default), written out explicitly;
//! - bridge options apply to the last `connection`; ferrule has one uplink, so a second
//!   connection is not honoured.
//!
//! Invariant: each directive ends up in exactly one place: a key of the output (with its
//! `file:line` in a comment), the "not needed" comments, or [`Migration::unhonoured`].

use std::path::{Path, PathBuf};

use super::emit::{q, write, Entry};
use super::read::Directive;

mod bridge;

use bridge::{bridge_option, uplink_entry, Bridge};

/// What the caller decides.
#[derive(Debug, Clone)]
pub struct Options {
    /// `site:` of the output (the first topic level of what ferrule itself publishes).
    pub site: String,
    /// Where the written config will live: the bridge password goes to a file beside it
    /// (`None`: the password is read from `$FERRULE_UPLINK_PASSWORD` instead).
    pub output_dir: Option<PathBuf>,
}

/// An option ferrule cannot honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhonoured {
    /// `file:line`.
    pub at: String,
    /// The line as written.
    pub text: String,
    pub why: String,
}

/// The result of a translation.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The ferrule config.
    pub yaml: String,
    /// Options mapped to ferrule keys.
    pub mapped: usize,
    /// Options that need nothing in ferrule (listed as comments in the output).
    pub not_needed: usize,
    pub unhonoured: Vec<Unhonoured>,
    /// Files to write beside the config (name, contents): the uplink password.
    pub secrets: Vec<(String, String)>,
    /// What the user must do besides (e.g. set an environment variable).
    pub notes: Vec<String>,
}

/// Name of the uplink password file written beside the config.
pub const PASSWORD_FILE: &str = "uplink-password";
/// Variable the uplink password is read from when no output directory is known.
pub const PASSWORD_ENV: &str = "FERRULE_UPLINK_PASSWORD";

#[derive(Debug, Default)]
struct ListenerOut {
    at: String,
    port: u16,
    address: Option<String>,
    ipv6: Option<bool>,
    websockets: bool,
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    require_certificate: bool,
    allow_anonymous: Option<bool>,
    comments: Vec<String>,
    tls_comments: Vec<String>,
}

struct State<'a> {
    dirs: &'a [Directive],
    per_listener: bool,
    broker: Vec<Entry>,
    listeners: Vec<ListenerOut>,
    /// Listener options met before any `listener`: the default listener.
    default_listener: Option<ListenerOut>,
    password_files: Vec<(String, String)>,
    acl_files: Vec<(String, String)>,
    allow_anonymous: Option<(bool, String)>,
    persistence: Option<(bool, String)>,
    persistence_location: Option<(String, String)>,
    persistence_file: Option<(String, String)>,
    max_connections: Vec<(Directive, i64)>,
    bridges: Vec<Bridge>,
    in_bridge: bool,
    mapped: usize,
    not_needed: Vec<String>,
    unhonoured: Vec<Unhonoured>,
    conf_dir: PathBuf,
}

/// Translates the directives of one Mosquitto configuration (`conf` names the main file, for
/// relative paths).
pub fn translate(dirs: &[Directive], conf: &Path, options: &Options) -> Migration {
    let per_listener = dirs.iter().any(|d| {
        d.option == "per_listener_settings" && d.args.first().is_some_and(|a| a == "true")
    });
    let mut s = State {
        dirs,
        per_listener,
        broker: Vec::new(),
        listeners: Vec::new(),
        default_listener: None,
        password_files: Vec::new(),
        acl_files: Vec::new(),
        allow_anonymous: None,
        persistence: None,
        persistence_location: None,
        persistence_file: None,
        max_connections: Vec::new(),
        bridges: Vec::new(),
        in_bridge: false,
        mapped: 0,
        not_needed: Vec::new(),
        unhonoured: Vec::new(),
        conf_dir: conf.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    for d in s.dirs {
        one(&mut s, d);
    }
    finish(s, options)
}

fn from(d: &Directive) -> String {
    format!("{} `{}`", d.at(), d.text())
}

impl State<'_> {
    fn refuse(&mut self, d: &Directive, why: impl Into<String>) {
        self.unhonoured.push(Unhonoured {
            at: d.at(),
            text: d.text(),
            why: why.into(),
        });
    }

    fn not_needed(&mut self, d: &Directive, why: &str) {
        self.not_needed.push(format!("{}: {why}", from(d)));
    }

    fn set(&mut self, d: &Directive, key: &str, value: String) {
        self.mapped += 1;
        self.broker.retain(|e| e.key != key);
        self.broker.push(Entry::scalar(key, value, Some(from(d))));
    }

    /// The listener that listener options apply to.
    fn listener(&mut self) -> &mut ListenerOut {
        if self.listeners.is_empty() {
            return self.default_listener.get_or_insert_with(|| ListenerOut {
                port: 1883,
                ..ListenerOut::default()
            });
        }
        let last = self.listeners.len() - 1;
        &mut self.listeners[last]
    }

    fn path(&self, written: &str) -> String {
        let p = Path::new(written);
        if p.is_absolute() {
            written.to_owned()
        } else {
            self.conf_dir.join(p).display().to_string()
        }
    }

    fn bridge(&mut self) -> Option<&mut Bridge> {
        if self.in_bridge {
            self.bridges.last_mut()
        } else {
            None
        }
    }
}

fn number(d: &Directive) -> Option<i64> {
    d.args.first().and_then(|a| a.parse().ok())
}

fn boolean(d: &Directive) -> Option<bool> {
    match d.args.first().map(String::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// Mosquitto's `persistent_client_expiration` (`<n><h|d|w|m|y>`) in seconds.
fn expiration(s: &str) -> Option<u64> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let per = match unit {
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "m" => 2_592_000,
        "y" => 31_536_000,
        _ => return None,
    };
    n.checked_mul(per)
}

fn one(s: &mut State<'_>, d: &Directive) {
    let bad_value = |s: &mut State<'_>, d: &Directive| {
        s.refuse(
            d,
            "the value is not valid for this option in Mosquitto either",
        );
    };
    // Bridge options first: they apply to the current `connection`.
    if bridge_option(s, d) {
        return;
    }
    match d.option.as_str() {
        "listener" => {
            let Some(port) = d.args.first().and_then(|p| p.parse::<u16>().ok()) else {
                return bad_value(s, d);
            };
            s.in_bridge = false;
            s.mapped += 1;
            let mut l = ListenerOut {
                at: d.at(),
                port,
                comments: vec![from(d)],
                ..ListenerOut::default()
            };
            if let Some(addr) = d.args.get(1) {
                if addr.starts_with('/') || port == 0 {
                    s.mapped -= 1;
                    return s.refuse(d, "unix socket listeners are not supported; listen on a loopback address instead");
                }
                l.address = Some(addr.clone());
            }
            s.listeners.push(l);
        }
        "port" => {
            let Some(port) = number(d).and_then(|p| u16::try_from(p).ok()) else {
                return bad_value(s, d);
            };
            s.mapped += 1;
            let l = s.default_listener.get_or_insert_with(ListenerOut::default);
            l.port = port;
            l.at = d.at();
            l.comments.push(from(d));
        }
        "bind_address" => {
            s.mapped += 1;
            let l = s.default_listener.get_or_insert_with(|| ListenerOut {
                port: 1883,
                ..ListenerOut::default()
            });
            l.address = d.args.first().cloned();
            l.comments.push(from(d));
        }
        "socket_domain" => {
            let v6 = match d.args.first().map(String::as_str) {
                Some("ipv4") => false,
                Some("ipv6") => true,
                _ => return bad_value(s, d),
            };
            s.mapped += 1;
            let l = s.listener();
            l.ipv6 = Some(v6);
            l.comments.push(from(d));
        }
        "bind_interface" => s.refuse(
            d,
            "ferrule binds addresses, not interfaces: give the listener the interface's \
             address (`listener PORT ADDRESS`, i.e. `bind: \"ADDRESS:PORT\"`)",
        ),
        "protocol" => match d.args.first().map(String::as_str) {
            Some("mqtt") => {
                s.mapped += 1;
                let l = s.listener();
                l.comments.push(from(d));
            }
            Some("websockets") => {
                s.mapped += 1;
                let l = s.listener();
                l.websockets = true;
                l.comments.push(from(d));
            }
            _ => bad_value(s, d),
        },
        "certfile" | "keyfile" | "cafile" => {
            let path = s.path(&d.rest);
            s.mapped += 1;
            let l = s.listener();
            match d.option.as_str() {
                "certfile" => l.cert = Some(path),
                "keyfile" => l.key = Some(path),
                _ => l.ca = Some(path),
            }
            l.tls_comments.push(from(d));
        }
        "require_certificate" => {
            let Some(b) = boolean(d) else {
                return bad_value(s, d);
            };
            s.mapped += 1;
            let l = s.listener();
            l.require_certificate = b;
            l.tls_comments.push(from(d));
        }
        "capath" => s.refuse(
            d,
            "ferrule reads client CA certificates from one PEM file: concatenate the \
             directory's certificates into the file of `cafile`",
        ),
        "tls_version" | "ciphers" | "ciphers_tls1.3" | "dhparamfile" | "tls_engine"
        | "tls_keyform" | "crlfile" | "psk_hint" | "psk_file" => s.refuse(
            d,
            "ferrule's TLS (rustls) negotiates TLS 1.2/1.3 with its own safe cipher suites and \
             has no PSK or CRL setting",
        ),
        "use_identity_as_username" | "use_subject_as_username" => s.refuse(
            d,
            "ferrule does not take the username from the client certificate; clients log in \
             with a username and password",
        ),
        "use_username_as_clientid" | "mount_point" | "http_dir" | "max_qos"
        | "max_topic_alias_broker" | "auth_plugin" | "plugin" | "psk_identity" => {
            s.refuse(d, "not supported by ferrule's broker")
        }
        "per_listener_settings" => s.not_needed(
            d,
            "ferrule applies allow_anonymous per listener as written below; one password file \
             and one ACL file serve every listener",
        ),
        "allow_anonymous" => {
            let Some(b) = boolean(d) else {
                return bad_value(s, d);
            };
            s.mapped += 1;
            if s.per_listener {
                let l = s.listener();
                l.allow_anonymous = Some(b);
                l.comments.push(from(d));
            } else {
                s.allow_anonymous = Some((b, from(d)));
            }
        }
        "password_file" => {
            let p = s.path(&d.rest);
            s.password_files.push((p, from(d)));
        }
        "acl_file" => {
            let p = s.path(&d.rest);
            s.acl_files.push((p, from(d)));
        }
        "persistence" => {
            let Some(b) = boolean(d) else {
                return bad_value(s, d);
            };
            s.mapped += 1;
            s.persistence = Some((b, from(d)));
        }
        "persistence_location" => {
            s.mapped += 1;
            s.persistence_location = Some((s.path(&d.rest), from(d)));
        }
        "persistence_file" => {
            s.mapped += 1;
            s.persistence_file = Some((d.rest.clone(), from(d)));
        }
        "autosave_interval" | "autosave_on_changes" => s.not_needed(
            d,
            "ferrule writes every persistence change to its SQLite file as it happens",
        ),
        "max_queued_messages" => match number(d) {
            Some(0) => s.refuse(d, "ferrule always bounds client queues; 0 (unlimited) becomes the default 1000 unless you set `max_queued_messages` and `max_queued_bytes`"),
            Some(n) if (1..=10_000_000).contains(&n) => s.set(d, "max_queued_messages", n.to_string()),
            _ => bad_value(s, d),
        },
        "max_queued_bytes" => match number(d) {
            Some(n) if n >= 0 => s.set(d, "max_queued_bytes", n.to_string()),
            _ => bad_value(s, d),
        },
        "max_inflight_messages" => match number(d) {
            Some(0) => s.set(d, "max_inflight", "65535".into()),
            Some(n) if (1..=65_535).contains(&n) => s.set(d, "max_inflight", n.to_string()),
            _ => bad_value(s, d),
        },
        "max_packet_size" => match number(d) {
            Some(0) => s.set(d, "max_packet_size", "268435455".into()),
            Some(n) if (64..=268_435_455).contains(&n) => s.set(d, "max_packet_size", n.to_string()),
            Some(_) => s.refuse(d, "ferrule accepts max_packet_size from 64 bytes to 268435455"),
            None => bad_value(s, d),
        },
        "max_keepalive" => match number(d) {
            Some(0) => s.refuse(d, "ferrule needs a keepalive limit of at least 1 s; the default (65535 s) is kept"),
            Some(n) if (1..=65_535).contains(&n) => s.set(d, "max_keepalive", q(&format!("{n}s"))),
            _ => bad_value(s, d),
        },
        "max_connections" => match number(d) {
            Some(n) => s.max_connections.push((d.clone(), n)),
            None => bad_value(s, d),
        },
        "max_topic_alias" => match number(d) {
            Some(n) if (0..=65_535).contains(&n) => s.set(d, "max_topic_alias", n.to_string()),
            _ => bad_value(s, d),
        },
        "sys_interval" => match number(d) {
            Some(0) => s.set(d, "sys_interval", "off".into()),
            Some(n) if n > 0 => s.set(d, "sys_interval", q(&format!("{n}s"))),
            _ => bad_value(s, d),
        },
        "set_tcp_nodelay" => match boolean(d) {
            Some(b) => s.set(d, "tcp_nodelay", b.to_string()),
            None => bad_value(s, d),
        },
        "persistent_client_expiration" => match expiration(&d.rest) {
            Some(secs) => s.set(d, "persistent_client_expiration", q(&format!("{secs}s"))),
            None => bad_value(s, d),
        },
        "queue_qos0_messages" => match boolean(d) {
            Some(b) => s.set(d, "queue_qos0_messages", b.to_string()),
            None => bad_value(s, d),
        },
        "connection_messages" => match boolean(d) {
            Some(b) => s.set(d, "connection_messages", b.to_string()),
            None => bad_value(s, d),
        },
        "log_dest" => match d.args.first().map(String::as_str) {
            Some("stderr") | Some("syslog") | Some("stdout") => s.not_needed(
                d,
                "ferrule logs to stderr, which systemd sends to the journal (and syslog)",
            ),
            Some("file") => s.refuse(
                d,
                "ferrule logs to stderr only (the journal under systemd: `journalctl -u \
                 ferrule`); redirect stderr to keep a file",
            ),
            Some("topic") => s.refuse(d, "ferrule does not publish its log on `$SYS/broker/log/#`"),
            Some("none") => s.refuse(d, "ferrule always logs; filter with RUST_LOG (e.g. RUST_LOG=error)"),
            _ => bad_value(s, d),
        },
        "log_type" => match d.args.first().map(String::as_str) {
            Some("error" | "warning" | "notice" | "information") => s.not_needed(
                d,
                "ferrule logs errors, warnings and information by default (RUST_LOG=info)",
            ),
            _ => s.refuse(
                d,
                "ferrule's log levels are set with RUST_LOG (RUST_LOG=debug for debug, \
                 subscribe and websockets messages; RUST_LOG=warn for fewer)",
            ),
        },
        "log_timestamp" | "log_timestamp_format" | "log_facility" | "websockets_log_level" => s
            .refuse(d, "ferrule's log format is fixed (timestamps in UTC; levels via RUST_LOG)"),
        "pid_file" => s.refuse(
            d,
            "ferrule writes no pid file: systemd tracks the process (Type=notify in \
             systemd/ferrule.service)",
        ),
        "user" => s.not_needed(d, "ferrule's systemd unit runs it as its own user"),
        "include_dir" => s.not_needed(d, "its files were read in place of this line"),
        "retain_available" | "allow_zero_length_clientid" | "auto_id_prefix"
        | "allow_duplicate_messages" | "check_retain_source" | "memory_limit"
        | "message_size_limit" | "upgrade_outgoing_qos" | "max_inflight_bytes"
        | "websockets_headers_size" | "clientid_prefixes" | "enable_control_api" => {
            s.refuse(d, "not supported by ferrule's broker (its behaviour is Mosquitto's default)")
        }
        "connection" => {
            s.in_bridge = true;
            if s.bridges.is_empty() {
                s.mapped += 1;
                s.bridges.push(Bridge {
                    name: d.rest.clone(),
                    at: d.at(),
                    comments: vec![from(d)],
                    ..Bridge::default()
                });
            } else {
                s.refuse(d, "ferrule has one uplink: only the first `connection` is migrated; the options of this one are not honoured");
                s.bridges.push(Bridge {
                    name: d.rest.clone(),
                    ..Bridge::default()
                });
            }
        }
        _ => s.refuse(d, "not a Mosquitto 2.0 option ferrule knows"),
    }
}

fn listener_entry(l: &ListenerOut, per_listener: bool) -> Vec<Entry> {
    let host = match (&l.address, l.ipv6) {
        (Some(a), _) if a == "localhost" => "127.0.0.1".to_owned(),
        (Some(a), _) if a.contains(':') => format!("[{a}]"),
        (Some(a), _) => a.clone(),
        (None, Some(true)) => "[::]".to_owned(),
        (None, _) => "0.0.0.0".to_owned(),
    };
    let mut comments = l.comments.clone();
    if l.address.is_none() && l.ipv6.is_none() {
        comments.push(format!(
            "Mosquitto listens on IPv4 and IPv6 here; add a listener `[::]:{}` for IPv6 clients",
            l.port
        ));
    }
    let mut out = vec![Entry {
        key: "bind".into(),
        value: q(&format!("{host}:{}", l.port)),
        comments,
        ..Entry::default()
    }];
    if l.websockets {
        out.push(Entry::scalar("protocol", "websockets", None));
    }
    if l.cert.is_some() || l.key.is_some() || l.ca.is_some() {
        let mut tls = Vec::new();
        for (k, v) in [("cert", &l.cert), ("key", &l.key), ("ca", &l.ca)] {
            if let Some(v) = v {
                tls.push(Entry::scalar(k, q(v), None));
            }
        }
        if l.require_certificate {
            tls.push(Entry::scalar("require_certificate", "true", None));
        }
        out.push(Entry {
            key: "tls".into(),
            comments: l.tls_comments.clone(),
            children: tls,
            ..Entry::default()
        });
    }
    if per_listener {
        // Mosquitto 2 refuses anonymous clients on a listener that does not allow them.
        let b = l.allow_anonymous.unwrap_or(false);
        out.push(Entry::scalar("allow_anonymous", b.to_string(), None));
    }
    out
}

fn finish(mut s: State<'_>, options: &Options) -> Migration {
    let mut broker: Vec<Entry> = Vec::new();
    let mut listeners: Vec<ListenerOut> = Vec::new();
    if let Some(l) = s.default_listener.take() {
        listeners.push(l);
    }
    listeners.append(&mut s.listeners);
    if !listeners.is_empty() {
        let items: Vec<Vec<Entry>> = listeners
            .iter()
            .map(|l| listener_entry(l, s.per_listener))
            .collect();
        broker.push(Entry {
            key: "listeners".into(),
            items,
            ..Entry::default()
        });
    }
    match (&s.allow_anonymous, listeners.is_empty()) {
        (Some((b, c)), _) => broker.push(Entry::scalar(
            "allow_anonymous",
            b.to_string(),
            Some(c.clone()),
        )),
        (None, false) if !s.per_listener => broker.push(Entry::scalar(
            "allow_anonymous",
            "false",
            Some("Mosquitto 2 refuses anonymous clients once listeners are configured".into()),
        )),
        _ => {}
    }
    let auth_files = [
        ("password_file", s.password_files.clone()),
        ("acl_file", s.acl_files.clone()),
    ];
    for (key, files) in &auth_files {
        let Some((first, c)) = files.first() else {
            continue;
        };
        s.mapped += 1;
        broker.push(Entry::scalar(key, q(first), Some(c.clone())));
        for (other, oc) in &files[1..] {
            if other == first {
                s.mapped += 1;
                continue;
            }
            let d = s.dirs.iter().find(|d| from(d) == *oc).cloned();
            if let Some(d) = d {
                s.refuse(
                    &d,
                    format!("ferrule has one {key} for every listener; {first} is used"),
                );
            }
        }
    }
    let max_connections = s.max_connections.clone();
    match max_connections.as_slice() {
        [] => {}
        [(d, n)] if listeners.len() <= 1 => {
            s.mapped += 1;
            if *n >= 1 {
                broker.push(Entry::scalar(
                    "max_connections",
                    n.to_string(),
                    Some(from(d)),
                ));
            } else {
                s.not_needed(d, "unlimited is ferrule's default");
            }
        }
        all => {
            for (d, _) in all {
                s.refuse(
                    d,
                    "ferrule's max_connections is broker-wide, not per listener; set \
                     `broker.max_connections` to the total you want",
                );
            }
        }
    }
    match &s.persistence {
        Some((false, c)) => broker.push(Entry::scalar("persistence", "false", Some(c.clone()))),
        Some((true, c)) => {
            broker.push(Entry::scalar("persistence", "true", Some(c.clone())));
            let name = s
                .persistence_file
                .as_ref()
                .map(|(f, _)| format!("{f}.ferrule"))
                .unwrap_or_else(|| "ferrule-broker.db".into());
            if let Some((dir, lc)) = &s.persistence_location {
                let mut comments = vec![lc.clone()];
                if let Some((_, fc)) = &s.persistence_file {
                    comments.push(fc.clone());
                }
                comments.push(
                    "ferrule keeps sessions and retained messages in SQLite: Mosquitto's \
                     mosquitto.db is not read, so a file of ferrule's own is used"
                        .into(),
                );
                let path = Path::new(dir).join(&name).display().to_string();
                broker.push(Entry {
                    key: "persistence_file".into(),
                    value: q(&path),
                    comments,
                    ..Entry::default()
                });
            } else if let Some((_, fc)) = &s.persistence_file {
                broker.push(Entry::scalar(
                    "persistence_file",
                    q(&name),
                    Some(fc.clone()),
                ));
            }
        }
        None => {
            broker.push(Entry::scalar(
                "persistence",
                "false",
                Some("Mosquitto keeps nothing across restarts unless `persistence true`".into()),
            ));
        }
    }
    broker.append(&mut s.broker);

    let mut top = vec![Entry::scalar(
        "site",
        q(&options.site),
        Some("the first topic level of what ferrule itself publishes ($agent/state)".into()),
    )];
    top.push(Entry {
        key: "broker".into(),
        children: broker,
        ..Entry::default()
    });
    let mut secrets = Vec::new();
    let mut notes = Vec::new();
    if let Some(b) = s.bridges.first() {
        if b.password.is_some() && b.username.is_none() {
            // Counted when read; not migrated after all (listed as not honoured).
            s.mapped = s.mapped.saturating_sub(1);
        }
        top.push(uplink_entry(
            b,
            options,
            &mut secrets,
            &mut notes,
            &mut s.unhonoured,
        ));
    }
    let mut yaml = String::from(
        "# Written by `ferrule migrate` from a Mosquitto configuration. Each key names the\n\
         # Mosquitto line it comes from; `ferrule check` on this file shows the result.\n",
    );
    if !s.not_needed.is_empty() {
        yaml.push_str("#\n# Not needed in ferrule:\n");
        for n in &s.not_needed {
            yaml.push_str(&format!("#   {n}\n"));
        }
    }
    if !s.unhonoured.is_empty() {
        yaml.push_str("#\n# Not honoured (see `ferrule migrate`'s report):\n");
        for u in &s.unhonoured {
            yaml.push_str(&format!("#   {} `{}`: {}\n", u.at, u.text, u.why));
        }
    }
    yaml.push('\n');
    write(&mut yaml, &top, 0);
    Migration {
        yaml,
        mapped: s.mapped,
        not_needed: s.not_needed.len(),
        unhonoured: s.unhonoured,
        secrets,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::read::parse;

    fn run(text: &str) -> Migration {
        let dirs = parse("m.conf", text);
        translate(
            &dirs,
            Path::new("/etc/mosquitto/mosquitto.conf"),
            &Options {
                site: "gw".into(),
                output_dir: Some(PathBuf::from("/tmp")),
            },
        )
    }

    #[test]
    fn topic_lines_become_rules_with_templates() {
        let d = |t: &str| parse("m.conf", t).remove(0);
        let rules = bridge::topic_rule(&d("topic sensors/# out 1 \"\" cloud/site1/")).expect("ok");
        assert!(
            matches!(&rules[0], bridge::TopicRule::Forward { local, remote: Some(r), qos: 1 }
            if local == "sensors/#" && r == "cloud/site1")
        );
        let rules = bridge::topic_rule(&d("topic +/temp both 2 plant/ cloud/")).expect("ok");
        assert!(
            matches!(&rules[0], bridge::TopicRule::Forward { local, remote: Some(r), .. }
            if local == "plant/+/temp" && r == "cloud/{2}/{3}")
        );
        assert!(
            matches!(&rules[1], bridge::TopicRule::Downlink { remote, local: Some(l), .. }
            if remote == "cloud/+/temp" && l == "plant/{2}/{3}")
        );
        assert!(bridge::topic_rule(&d("topic # out 0 a/ b/")).is_err());
        let rules = bridge::topic_rule(&d("topic cmd/# in")).expect("ok");
        assert!(
            matches!(&rules[0], bridge::TopicRule::Downlink { remote, local: None, qos: 0 } if remote == "cmd/#")
        );
    }

    #[test]
    fn every_line_is_mapped_not_needed_or_unhonoured() {
        let m = run(
            "pid_file /run/m.pid\npersistence true\npersistence_location /var/lib/mosquitto/\n\
                     log_dest file /var/log/m.log\nlistener 1883\nsys_interval 0\nfoo bar\n",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&m.yaml).expect(&m.yaml);
        assert_eq!(v["broker"]["listeners"][0]["bind"], "0.0.0.0:1883");
        assert_eq!(v["broker"]["allow_anonymous"], false);
        assert_eq!(v["broker"]["sys_interval"], "off");
        assert_eq!(
            v["broker"]["persistence_file"],
            "/var/lib/mosquitto/ferrule-broker.db"
        );
        let at: Vec<&str> = m.unhonoured.iter().map(|u| u.at.as_str()).collect();
        assert_eq!(at, ["m.conf:1", "m.conf:4", "m.conf:7"]);
        assert_eq!(m.mapped, 4);
    }

    #[test]
    fn per_listener_settings_socket_domain_limits_and_a_tls_bridge() {
        let m = run(
            "per_listener_settings true\nlistener 1883 127.0.0.1\nallow_anonymous true\n\
                     listener 8883\nsocket_domain ipv6\ncertfile c.pem\nkeyfile k.pem\n\
                     password_file /etc/mosquitto/passwd\nmax_connections 100\n\
                     persistent_client_expiration 2w\nmax_inflight_messages 0\n\
                     connection up\naddress cloud.example.com:8883\nbridge_cafile ca.pem\n\
                     bridge_protocol_version mqttv50\nremote_username gw\nremote_password pw\n\
                     topic t/# both 2\nrestart_timeout 10\n",
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&m.yaml).expect(&m.yaml);
        let b = &v["broker"];
        assert_eq!(b["listeners"][0]["allow_anonymous"], true);
        assert_eq!(b["listeners"][1]["bind"], "[::]:8883");
        assert_eq!(b["listeners"][1]["allow_anonymous"], false);
        assert_eq!(b["listeners"][1]["tls"]["cert"], "/etc/mosquitto/c.pem");
        assert_eq!(b["password_file"], "/etc/mosquitto/passwd");
        // max_connections is per listener in Mosquitto: not honoured with two listeners.
        assert!(b.get("max_connections").is_none());
        assert_eq!(m.unhonoured.len(), 1, "{:?}", m.unhonoured);
        assert_eq!(b["persistent_client_expiration"], "1209600s");
        assert_eq!(b["max_inflight"], 65535);
        let u = &v["uplink"];
        assert_eq!(u["url"], "mqtts://cloud.example.com:8883");
        assert_eq!(u["protocol"], "5");
        assert_eq!(u["ca"], "/etc/mosquitto/ca.pem");
        assert_eq!(u["password_file"], "uplink-password");
        assert_eq!(
            m.secrets,
            vec![("uplink-password".to_owned(), "pw".to_owned())]
        );
        assert_eq!(u["forward"][0]["local"], "t/#");
        assert_eq!(u["forward"][0]["qos"], 2);
        assert_eq!(u["downlink"][0]["remote"], "t/#");
        assert_eq!(u["reconnect"]["initial"], "10s");
        assert!(!m.yaml.contains("pw\""), "{}", m.yaml);
    }
}
