//! The `uplink` section: the upstream URL, forward and downlink rules, the queue, QoS.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::device::HostPort;

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Qos {
    AtMostOnce,
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

impl Qos {
    /// The numeric level (0, 1, 2).
    pub fn level(self) -> u8 {
        match self {
            Self::AtMostOnce => 0,
            Self::AtLeastOnce => 1,
            Self::ExactlyOnce => 2,
        }
    }

    /// The QoS of a numeric level, if valid.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// The `uplink` section: the store-and-forward link to a cloud broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    /// Upstream broker address.
    pub url: UplinkUrl,
    /// MQTT version spoken upstream.
    pub protocol: MqttVersion,
    /// MQTT client id used upstream (default `ferrule-{site}`).
    pub client_id: String,
    /// MQTT keepalive of the upstream connection.
    pub keepalive: Duration,
    /// User name sent upstream, if any.
    pub username: Option<String>,
    /// Where the upstream password is read from (never the config itself, never logged).
    pub password: Option<Secret>,
    /// PEM file of CA certificates trusted for TLS (default: the system roots).
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; set together with `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Messages sent and not yet acknowledged at most (also the most that a crash or reconnect
    /// can send twice).
    pub window: u16,
    /// Messages per second at most while draining a backlog; `None`: as fast as the link goes.
    pub max_rate: Option<u32>,
    /// Reconnect delays: capped exponential backoff with jitter.
    pub reconnect: Reconnect,
    /// Whether and how each forwarded message carries its sequence number.
    pub sequence: Sequence,
    /// Which local messages are queued and forwarded upstream, and under which topic.
    pub forward: Vec<ForwardRule>,
    /// Upstream subscriptions whose messages are published into the local broker.
    pub downlink: Vec<DownlinkRule>,
    /// The durable queue.
    pub queue: QueueConfig,
    /// Speak Sparkplug B upstream as an edge node (see `config::sparkplug`).
    pub sparkplug: Option<crate::config::sparkplug::Sparkplug>,
}

/// MQTT protocol version of the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    V311,
    /// MQTT 5.
    V5,
}

impl MqttVersion {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V311 => "3.1.1",
            Self::V5 => "5",
        }
    }
}

/// A secret read at start-up, never stored in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// The whole file, without one trailing newline.
    File(PathBuf),
    /// The value of an environment variable.
    Env(String),
}

/// Reconnect backoff of the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    pub initial: Duration,
    pub max: Duration,
}

/// Where the per-gateway sequence number goes (see `uplink::sequence`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Sequence {
    /// Not sent.
    #[default]
    Off,
    /// An MQTT 5 user property with this name.
    Property(String),
    /// A field with this name added to payloads that are JSON objects.
    Json(String),
}

/// `uplink.url`: `mqtt://host[:1883]`, `mqtts://host[:8883]`, `ws://host[:80][/path]` or
/// `wss://host[:443][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// HTTP path of a WebSocket URL (`/mqtt` when not given); empty for `mqtt(s)`.
    pub path: String,
}

/// Transport of the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Mqtts => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the transport is TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    /// Whether the transport is WebSocket.
    pub fn websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => 1883,
            Self::Mqtts => 8883,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }
}

impl UplinkUrl {
    /// Whether the transport is TLS.
    pub fn tls(&self) -> bool {
        self.scheme.tls()
    }
}

impl fmt::Display for UplinkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = HostPort {
            host: self.host.clone(),
            port: self.port,
        };
        write!(f, "{}://{hp}{}", self.scheme.as_str(), self.path)
    }
}

/// One `uplink.forward[]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRule {
    /// MQTT topic filter matched against every message of the local broker.
    pub local: String,
    /// Upstream topic: `None` keeps the local topic.
    pub remote: Option<Template>,
    /// QoS used upstream (default 1).
    pub qos: Qos,
    /// `true` (default): the message's retain flag goes upstream; `false`: never retained.
    pub retain: bool,
}

/// One `uplink.downlink[]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownlinkRule {
    /// MQTT topic filter subscribed to on the upstream broker.
    pub remote: String,
    /// Local topic: `None` keeps the upstream topic.
    pub local: Option<Template>,
    /// QoS of the upstream subscription (default 1).
    pub qos: Qos,
    /// Whether retained messages sent when subscribing are taken (default false: a retained
    /// command would be applied again at every reconnect).
    pub retained: bool,
}

pub use crate::topics::Template;

/// `uplink.queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// SQLite file of the queue; relative paths are resolved against the config file's directory.
    pub path: PathBuf,
    /// What a commit guarantees.
    pub durability: Durability,
    /// Most topic + payload bytes kept (default [`DEFAULT_QUEUE_MAX_BYTES`](super::DEFAULT_QUEUE_MAX_BYTES)).
    pub max_bytes: u64,
    /// Most messages kept, if bounded.
    pub max_messages: Option<u64>,
    /// Messages older than this are dropped, if set.
    pub max_age: Option<Duration>,
    /// What happens when `max_bytes` or `max_messages` is reached.
    pub on_full: OnFull,
}

/// What a full queue does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Take it, and drop the oldest queued messages until the bounds hold.
    #[default]
    DropOldest,
    /// Refuse it (a LAN client's publish is refused: MQTT 5 reason code 0x97, 3.1.1 disconnect).
    RejectNew,
}

impl OnFull {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DropOldest => "drop_oldest",
            Self::RejectNew => "reject_new",
        }
    }
}

/// What a queue commit guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync at every commit that adds messages: a committed message survives power loss
    /// (commits that only delete delivered messages are not fsynced: a power loss may make
    /// them be sent again).
    #[default]
    Full,
    /// Survives a crash of the process; the last commits may be lost on power loss.
    Normal,
}
