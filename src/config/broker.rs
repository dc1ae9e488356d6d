//! The `broker` section: listeners (plain, TLS, WebSockets), anonymous access, the Mosquitto
//! password and ACL files, persistence and limits.
//!
//! Kept apart from `schema.rs` like the `uplink` section; same toolkit and invariants (every
//! problem recorded and located; nothing decoded when a problem was recorded). Paths resolve
//! against the config file's directory, the persistence file defaults to the state directory,
//! and no listener configured means only [`DEFAULT_LISTENER`] (Mosquitto 2's secure default).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{all, list, map, Ctx, Decode};
use super::model::*;
use super::origin::Origin;
use super::scalar::{integer, Limit, PacketSize, Period, Window};
use super::uplink::ByteSize;
use super::validate;

const BROKER: &[&str] = &[
    "listeners",
    "allow_anonymous",
    "password_file",
    "acl_file",
    "persistence",
    "persistence_file",
    "max_connections",
    "max_packet_size",
    "max_queued_messages",
    "max_inflight",
    "sys_interval",
    "tcp_nodelay",
    "max_keepalive",
    "max_queued_bytes",
    "max_topic_alias",
    "persistent_client_expiration",
    "queue_qos0_messages",
    "connection_messages",
];
const LISTENER: &[&str] = &["bind", "tls", "protocol", "allow_anonymous"];
const LISTENER_TLS: &[&str] = &["cert", "key", "ca", "require_certificate"];

/// The listeners of a broker section that names none: IPv4 loopback, and IPv6 loopback where
/// the host has it (Mosquitto's local-only mode).
fn default_listeners() -> Vec<Listener> {
    let v4 = DEFAULT_LISTENER
        .parse()
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 1883)));
    let mut listeners = vec![Listener::plain(v4)];
    if let Ok(v6) = DEFAULT_LISTENER_V6.parse() {
        listeners.push(Listener {
            best_effort: true,
            ..Listener::plain(v6)
        });
    }
    listeners
}

pub(super) fn default_broker(origin: &Origin) -> BrokerConfig {
    BrokerConfig::with_listeners(default_listeners(), &origin.state_dir)
}

/// `max_keepalive`: whole seconds from 1 s to 65535 s (the protocol's 16-bit keepalive).
fn keepalive_limit(cx: &mut Ctx, node: &Value) -> Option<u16> {
    let d = Duration::decode(cx, node)?;
    let secs = u16::try_from(d.as_secs())
        .ok()
        .filter(|&s| s >= 1 && d.subsec_nanos() == 0);
    if secs.is_none() {
        cx.error(format!(
            "`{}` is not a keepalive limit; expected whole seconds from `1s` to `65535s` \
             (MQTT keepalives are 16-bit seconds)",
            super::scalar::show_duration(d)
        ));
    }
    secs
}

pub(super) fn broker(cx: &mut Ctx, node: &Value, origin: &Origin) -> Option<BrokerConfig> {
    let m = map(cx, node, BROKER)?;
    let listeners = m.optional_with(cx, "listeners", |cx, v| {
        let items = list(cx, v, |cx, v| listener(cx, v, origin))?;
        validate::listeners(cx, &items);
        all(items)
    });
    let allow_anonymous = m.optional::<bool>(cx, "allow_anonymous");
    let password_file = m.optional::<PathBuf>(cx, "password_file");
    let acl_file = m.optional::<PathBuf>(cx, "acl_file");
    let persistence = m.or(cx, "persistence", true);
    let persistence_file = m.optional::<PathBuf>(cx, "persistence_file");
    let max_connections = m.optional::<Limit>(cx, "max_connections");
    let max_packet_size = m.or(cx, "max_packet_size", PacketSize(DEFAULT_MAX_PACKET_SIZE));
    let max_queued = m.or(
        cx,
        "max_queued_messages",
        Limit(DEFAULT_MAX_QUEUED_MESSAGES),
    );
    let max_inflight = m.or(cx, "max_inflight", Window(DEFAULT_MAX_INFLIGHT));
    let sys_interval = m.or(cx, "sys_interval", Period(Some(DEFAULT_SYS_INTERVAL)));
    // On by default, unlike Mosquitto: measured, Nagle with delayed acknowledgements puts
    // 30+ ms tails on fan-out and command results, and the broker is faster than Mosquitto
    // either way (docs/benchmarks.md, "Embedded broker").
    let tcp_nodelay = m.or(cx, "tcp_nodelay", true);
    let max_keepalive = m.optional_with(cx, "max_keepalive", keepalive_limit);
    // 0 means "no byte bound", as in Mosquitto.
    let max_queued_bytes = m.optional::<ByteSize>(cx, "max_queued_bytes");
    let max_topic_alias = m.optional_with(cx, "max_topic_alias", |cx, v| {
        integer(cx, v, 0, 65_535).and_then(|n| u16::try_from(n).ok())
    });
    let persistent_client_expiration = m.optional::<Duration>(cx, "persistent_client_expiration");
    let queue_qos0_messages = m.or(cx, "queue_qos0_messages", false);
    let connection_messages = m.or(cx, "connection_messages", true);
    let listeners = match listeners? {
        Some(listeners) if !listeners.is_empty() => listeners,
        _ => default_listeners(),
    };
    let persistence_file = persistence_file?;
    let persistence = persistence?.then(|| match persistence_file {
        Some(path) => origin.base_dir.join(path),
        None => origin.state_dir.join(DEFAULT_BROKER_DB_FILE),
    });
    Some(BrokerConfig {
        listeners,
        allow_anonymous: allow_anonymous?,
        password_file: password_file?.map(|p| origin.base_dir.join(p)),
        acl_file: acl_file?.map(|p| origin.base_dir.join(p)),
        persistence,
        max_connections: max_connections?.map(|c| c.0),
        max_packet_size: max_packet_size?.0,
        max_queued_messages: max_queued?.0,
        max_inflight: max_inflight?.0,
        sys_interval: sys_interval?.0,
        tcp_nodelay: tcp_nodelay?,
        max_keepalive: max_keepalive?.unwrap_or(DEFAULT_MAX_KEEPALIVE),
        max_queued_bytes: max_queued_bytes?.map(|b| b.0).filter(|&b| b > 0),
        max_topic_alias: max_topic_alias?.unwrap_or(DEFAULT_MAX_TOPIC_ALIAS),
        persistent_client_expiration: persistent_client_expiration?,
        queue_qos0_messages: queue_qos0_messages?,
        connection_messages: connection_messages?,
    })
}

fn listener(cx: &mut Ctx, node: &Value, origin: &Origin) -> Option<Listener> {
    let m = map(cx, node, LISTENER)?;
    let bind = m.required(cx, "bind");
    let tls = m.optional_with(cx, "tls", |cx, v| listener_tls(cx, v, origin));
    let protocol = m.or(cx, "protocol", ListenerProtocol::default());
    let allow_anonymous = m.optional::<bool>(cx, "allow_anonymous");
    Some(Listener {
        bind: bind?,
        tls: tls?,
        protocol: protocol?,
        allow_anonymous: allow_anonymous?,
        best_effort: false,
    })
}

fn listener_tls(cx: &mut Ctx, node: &Value, origin: &Origin) -> Option<ListenerTls> {
    let m = map(cx, node, LISTENER_TLS)?;
    let cert = m.required::<PathBuf>(cx, "cert");
    let key = m.required::<PathBuf>(cx, "key");
    let ca = m.optional::<PathBuf>(cx, "ca");
    let require_certificate = m.or(cx, "require_certificate", false);
    let (ca, require_certificate) = (ca?, require_certificate?);
    validate::client_certificates(cx, ca.is_some(), require_certificate);
    Some(ListenerTls {
        cert: origin.base_dir.join(cert?),
        key: origin.base_dir.join(key?),
        ca: ca.map(|ca| origin.base_dir.join(ca)),
        require_certificate,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::parse;
    use crate::config::testing::{origin, MINIMAL};

    #[test]
    fn broker_section_decodes_with_paths_relative_to_the_config() {
        let text = format!(
            "{MINIMAL}broker:
  listeners:
    - {{bind: \"0.0.0.0:8883\", tls: {{cert: tls/s.crt, key: /k/s.key, ca: ca.crt, require_certificate: true}}}}
    - {{bind: \"0.0.0.0:9001\", protocol: websockets, allow_anonymous: true}}
    - {{bind: \"127.0.0.1:1883\"}}
  allow_anonymous: false
  password_file: passwd
  acl_file: /etc/acl
  persistence_file: state/b.db
  max_connections: 50
  max_packet_size: 4096
  max_queued_messages: 10
  max_inflight: 5
  sys_interval: 30s
  tcp_nodelay: false
  max_keepalive: 60s
  max_queued_bytes: 16MiB
  max_topic_alias: 0
  persistent_client_expiration: 2h
  queue_qos0_messages: true
  connection_messages: false
"
        );
        let b = parse(&text, &origin()).expect("valid").broker;
        let tls = b.listeners[0].tls.clone().expect("tls");
        assert_eq!(tls.cert, PathBuf::from("/etc/ferrule/tls/s.crt"));
        assert_eq!(tls.key, PathBuf::from("/k/s.key"));
        assert_eq!(tls.ca, Some(PathBuf::from("/etc/ferrule/ca.crt")));
        assert!(tls.require_certificate);
        assert_eq!(b.listeners[1].protocol, ListenerProtocol::Websockets);
        assert_eq!(b.listeners[1].allow_anonymous, Some(true));
        assert_eq!(b.allow_anonymous, Some(false));
        assert!(b.anonymous_allowed(&b.listeners[1]));
        assert!(
            !b.anonymous_allowed(&b.listeners[2]),
            "the broker-wide setting"
        );
        assert_eq!(b.password_file, Some(PathBuf::from("/etc/ferrule/passwd")));
        assert_eq!(b.acl_file, Some(PathBuf::from("/etc/acl")));
        assert_eq!(
            b.persistence,
            Some(PathBuf::from("/etc/ferrule/state/b.db"))
        );
        assert_eq!(b.max_connections, Some(50));
        assert_eq!(
            (b.max_packet_size, b.max_queued_messages, b.max_inflight),
            (4096, 10, 5)
        );
        assert_eq!(b.sys_interval, Some(Duration::from_secs(30)));
        assert!(!b.tcp_nodelay);
        assert_eq!(b.max_keepalive, 60);
        assert_eq!(b.max_queued_bytes, Some(16 << 20));
        assert_eq!(b.max_topic_alias, 0);
        assert_eq!(
            b.persistent_client_expiration,
            Some(Duration::from_secs(7200))
        );
        assert!(b.queue_qos0_messages && !b.connection_messages);

        let off = format!("{MINIMAL}broker: {{persistence: false, sys_interval: off}}\n");
        let b = parse(&off, &origin()).expect("valid").broker;
        assert_eq!((&b.persistence, b.sys_interval), (&None, None));
        assert!(b.anonymous_allowed(&b.listeners[0]), "loopback default");
        let network = Listener::plain("0.0.0.0:1883".parse().expect("addr"));
        assert!(!b.anonymous_allowed(&network), "non-loopback default");
        assert_eq!(
            (b.max_keepalive, b.max_topic_alias, b.max_queued_bytes),
            (65_535, 10, None),
            "Mosquitto's defaults"
        );
        assert!(!b.queue_qos0_messages && b.connection_messages);
    }

    #[test]
    fn default_listeners_are_both_loopbacks_and_a_password_file_refuses_anonymous_clients() {
        let b = parse(MINIMAL, &origin()).expect("valid").broker;
        let binds: Vec<String> = b.listeners.iter().map(|l| l.bind.to_string()).collect();
        assert_eq!(binds, ["127.0.0.1:1883", "[::1]:1883"]);
        assert!(!b.listeners[0].best_effort && b.listeners[1].best_effort);
        assert!(
            b.tcp_nodelay,
            "TCP_NODELAY on by default (docs/benchmarks.md)"
        );

        let text = format!("{MINIMAL}broker: {{password_file: passwd}}\n");
        let b = parse(&text, &origin()).expect("valid").broker;
        assert!(
            !b.anonymous_allowed(&b.listeners[0]),
            "Mosquitto 2: a password file makes anonymous clients opt-in, loopback too"
        );
        let text = format!("{MINIMAL}broker: {{password_file: passwd, allow_anonymous: true}}\n");
        let b = parse(&text, &origin()).expect("valid").broker;
        assert!(b.anonymous_allowed(&b.listeners[0]));
    }

    #[test]
    fn keepalive_limits_and_sizes_are_checked() {
        for (value, wanted) in [
            ("0s", "expected a duration"),
            ("1.5s", "whole seconds"),
            ("70000s", "whole seconds from `1s` to `65535s`"),
            ("60", "has no unit"),
        ] {
            let text = format!("{MINIMAL}broker: {{max_keepalive: {value}}}\n");
            let err = parse(&text, &origin()).expect_err(value).to_string();
            assert!(err.contains("max_keepalive"), "{value}: {err}");
            assert!(
                err.contains(wanted) || err.contains("must be"),
                "{value}: {err}"
            );
        }
        let text = format!("{MINIMAL}broker: {{max_topic_alias: 70000}}\n");
        let err = parse(&text, &origin()).expect_err("too big").to_string();
        assert!(err.contains("max_topic_alias"), "{err}");
        let text = format!("{MINIMAL}broker: {{max_queued_bytes: 0}}\n");
        let b = parse(&text, &origin()).expect("valid").broker;
        assert_eq!(b.max_queued_bytes, None, "0 is no bound, as in Mosquitto");
    }
}
