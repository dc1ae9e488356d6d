//! The `broker` section: listeners, TLS, password and ACL files, persistence, limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::defaults::{
    DEFAULT_BROKER_DB_FILE, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_KEEPALIVE, DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_MAX_QUEUED_MESSAGES, DEFAULT_MAX_TOPIC_ALIAS, DEFAULT_SYS_INTERVAL,
};

/// The `broker` section.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Listeners, never empty (defaults to [`DEFAULT_LISTENER`](super::DEFAULT_LISTENER)).
    pub listeners: Vec<Listener>,
    /// Whether clients without a username may connect, for every listener that does not say
    /// itself; `None`: only on loopback listeners (Mosquitto 2's secure default).
    pub allow_anonymous: Option<bool>,
    /// Mosquitto password file (`user:$7$...` lines); relative to the config file.
    pub password_file: Option<PathBuf>,
    /// Mosquitto ACL file; relative to the config file. `None`: every client may publish and
    /// subscribe to everything.
    pub acl_file: Option<PathBuf>,
    /// Where retained messages and persistent sessions are kept across restarts; `None` when
    /// `persistence: false`.
    pub persistence: Option<PathBuf>,
    /// Most clients connected at once; `None`: no limit.
    pub max_connections: Option<u32>,
    /// Largest packet accepted from a client, in bytes.
    pub max_packet_size: u32,
    /// Messages queued per client (offline, or beyond its in-flight window); when full, a
    /// message is dropped, counted and logged.
    pub max_queued_messages: u32,
    /// Unacknowledged QoS 1/2 messages in flight to one client.
    pub max_inflight: u16,
    /// Period of the `$SYS/broker/...` statistics; `None` when `sys_interval: off`.
    pub sys_interval: Option<Duration>,
    /// Send each packet at once (TCP_NODELAY) instead of letting the kernel coalesce small
    /// packets (Nagle); Mosquitto's `set_tcp_nodelay`. Default on (Mosquitto: off), see
    /// `docs/benchmarks.md`.
    pub tcp_nodelay: bool,
    /// Longest keepalive a client may use, in seconds (Mosquitto's `max_keepalive`): an MQTT 5
    /// client asking for more (or for 0) is told this value (Server Keep Alive); an MQTT 3.1.1
    /// client asking for more is refused, as Mosquitto does.
    pub max_keepalive: u16,
    /// Bytes of payload queued per client beyond its in-flight window; `None`: only
    /// `max_queued_messages` bounds the queue (Mosquitto's `max_queued_bytes` 0).
    pub max_queued_bytes: Option<u64>,
    /// Topic aliases a client may set towards the broker (MQTT 5; Mosquitto's
    /// `max_topic_alias`); 0 turns client topic aliases off.
    pub max_topic_alias: u16,
    /// How long the session of a disconnected MQTT 3.1.1 client with clean session 0 (or an
    /// MQTT 5 client with an infinite session expiry) is kept; `None`: forever (Mosquitto's
    /// `persistent_client_expiration`).
    pub persistent_client_expiration: Option<Duration>,
    /// Queue QoS 0 messages for disconnected persistent sessions too (Mosquitto's
    /// `queue_qos0_messages`, default off: they are dropped while the client is away).
    pub queue_qos0_messages: bool,
    /// Log every client connect and disconnect (Mosquitto's `connection_messages`).
    pub connection_messages: bool,
}

impl BrokerConfig {
    /// The defaults: loopback listener, no files, persistence under `state_dir`.
    pub fn with_listeners(listeners: Vec<Listener>, state_dir: &std::path::Path) -> Self {
        Self {
            listeners,
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
            persistence: Some(state_dir.join(DEFAULT_BROKER_DB_FILE)),
            max_connections: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            sys_interval: Some(DEFAULT_SYS_INTERVAL),
            tcp_nodelay: true,
            max_keepalive: DEFAULT_MAX_KEEPALIVE,
            max_queued_bytes: None,
            max_topic_alias: DEFAULT_MAX_TOPIC_ALIAS,
            persistent_client_expiration: None,
            queue_qos0_messages: false,
            connection_messages: true,
        }
    }

    /// Whether `listener` accepts clients without checked credentials: its own setting, else
    /// the broker's, else (Mosquitto 2's rule) only on a loopback listener of a broker without
    /// a password file.
    pub fn anonymous_allowed(&self, listener: &Listener) -> bool {
        listener
            .allow_anonymous
            .or(self.allow_anonymous)
            .unwrap_or_else(|| self.password_file.is_none() && listener.bind.ip().is_loopback())
    }
}

/// One broker listener (`broker.listeners[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Address and port to bind; port 0 picks a free port (logged at start).
    pub bind: SocketAddr,
    /// TLS on this listener (`None`: plain text).
    pub tls: Option<ListenerTls>,
    /// MQTT directly over TCP, or over WebSockets.
    pub protocol: ListenerProtocol,
    /// Overrides `broker.allow_anonymous` for this listener.
    pub allow_anonymous: Option<bool>,
    /// Not configurable: a default listener that is skipped with a warning when its address
    /// cannot be bound (the IPv6 loopback on a host without IPv6).
    pub best_effort: bool,
}

impl Listener {
    /// A plain MQTT listener on `bind` with the broker-wide settings.
    pub fn plain(bind: SocketAddr) -> Self {
        Self {
            bind,
            tls: None,
            protocol: ListenerProtocol::Mqtt,
            allow_anonymous: None,
            best_effort: false,
        }
    }
}

/// `broker.listeners[].tls`: PEM files, relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Private key of the certificate.
    pub key: PathBuf,
    /// CA certificates that client certificates are checked against.
    pub ca: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `ca` (mutual TLS).
    pub require_certificate: bool,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerProtocol {
    /// MQTT over TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT over WebSockets (or secure WebSockets with `tls`), subprotocol `mqtt`.
    Websockets,
}

impl ListenerProtocol {
    /// All protocols, as listed in error messages.
    pub const ALL: [ListenerProtocol; 2] = [Self::Mqtt, Self::Websockets];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Websockets => "websockets",
        }
    }
}
