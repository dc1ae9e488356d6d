//! The typed configuration model: what a valid `ferrule.yaml` means.
//!
//! Invariants (established by [`super::load()`] and checked by the `validate` module):
//! - every name (`site`, devices, points) is a valid MQTT topic level;
//! - device names are unique, point names are unique within their device;
//! - the registers of two points of one device never overlap;
//! - every point fits in the 16-bit Modbus address space;
//! - `coil`/`discrete` points have type `bool`.
//!
//! Defaults live in one place: the `DEFAULT_*` constants below.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Broker listener used when the `broker` section names none (loopback only, like Mosquitto 2).
pub const DEFAULT_LISTENER: &str = "127.0.0.1:1883";
/// Poll interval of a device that does not set `poll`.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Per-request timeout of a device that does not set `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// A point is republished at least this often even when its value does not change.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
/// Registers (or bits) read but unused that may join two blocks into one request.
pub const DEFAULT_MAX_GAP: u16 = 16;
/// Modbus unit id of a device that does not set `unit`.
pub const DEFAULT_UNIT: u8 = 1;
/// Keepalive of the upstream MQTT connection.
pub const DEFAULT_UPLINK_KEEPALIVE: Duration = Duration::from_secs(30);
/// Queue file used when `uplink.queue.path` is not set (relative to the state directory).
pub const DEFAULT_QUEUE_FILE: &str = "queue.db";
/// State directory when neither the config nor systemd (`STATE_DIRECTORY`) names one.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferrule";

/// The whole configuration of one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Site name: the first level of every topic ferrule publishes (`{site}/{device}/{point}`).
    pub site: String,
    /// The embedded MQTT broker.
    pub broker: BrokerConfig,
    /// Field devices polled by the agent, in file order.
    pub devices: Vec<Device>,
    /// Store-and-forward link to a cloud broker; `None` when the section is absent (uplink off).
    pub uplink: Option<Uplink>,
}

/// The `broker` section.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Listeners, never empty (defaults to [`DEFAULT_LISTENER`]).
    pub listeners: Vec<Listener>,
}

/// One broker listener (`broker.listeners[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Address and port to bind; port 0 picks a free port (logged at start).
    pub bind: SocketAddr,
}

/// One field device (`devices[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Topic level of the device (`{site}/{device}/...`).
    pub name: String,
    /// How the device is reached.
    pub transport: Transport,
    /// Modbus unit (slave) id, 0–247 (0 is the TCP "direct" id some devices want).
    pub unit: u8,
    /// Interval between the starts of two poll cycles.
    pub poll: Duration,
    /// Timeout of each Modbus request (and of connecting).
    pub timeout: Duration,
    /// Default heartbeat of this device's points.
    pub heartbeat: Duration,
    /// Largest number of unused registers (or bits) read to merge two blocks.
    pub max_gap: u16,
    /// The point map, in file order.
    pub points: Vec<Point>,
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP at `host:port` (the host is resolved at every connect).
    Tcp(HostPort),
}

/// A `host:port` pair; the host may be a name or an IP literal (IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One data point of a device (`devices[].points[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Topic level of the point (`{site}/{device}/{point}`).
    pub name: String,
    /// Modbus table the point lives in.
    pub kind: RegisterKind,
    /// 0-based protocol address of the first register or bit.
    pub address: u16,
    /// Data type of the raw value.
    pub data_type: DataType,
    /// Byte/word order of multi-register values (ignored for 16-bit and bit values).
    pub order: WordOrder,
    /// Engineering value = raw × `scale` + `offset`.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Engineering unit, published with the value (e.g. `°C`).
    pub unit: Option<String>,
    /// A new value is published only when it differs from the last published by more than this.
    pub deadband: f64,
    /// Republish at least this often; `None` uses the device's heartbeat.
    pub heartbeat: Option<Duration>,
    /// Whether (and within which range) `.../set` commands may write the point.
    pub writable: Writable,
}

impl Point {
    /// Number of registers (register kinds) or bits (bit kinds) the point occupies.
    pub fn width(&self) -> u16 {
        if self.kind.is_bit() {
            1
        } else {
            self.data_type.registers()
        }
    }

    /// Address one past the last register or bit of the point (65536 at most for a valid point).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.width())
    }
}

/// The four Modbus tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    /// Read/write bits (FC01 read, FC05/FC15 write).
    Coil,
    /// Read-only bits (FC02).
    Discrete,
    /// Read/write 16-bit registers (FC03 read, FC06/FC16 write).
    Holding,
    /// Read-only 16-bit registers (FC04).
    Input,
}

impl RegisterKind {
    /// All kinds, in the order used for planning and display.
    pub const ALL: [RegisterKind; 4] = [Self::Coil, Self::Discrete, Self::Holding, Self::Input];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coil => "coil",
            Self::Discrete => "discrete",
            Self::Holding => "holding",
            Self::Input => "input",
        }
    }

    /// True for the bit tables (coils and discrete inputs).
    pub fn is_bit(self) -> bool {
        matches!(self, Self::Coil | Self::Discrete)
    }

    /// True for the tables a master may write (coils and holding registers).
    pub fn is_writable(self) -> bool {
        matches!(self, Self::Coil | Self::Holding)
    }
}

impl fmt::Display for RegisterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Data type of a point's raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    F32,
}

impl DataType {
    /// All types, as listed in error messages.
    pub const ALL: [DataType; 6] = [
        Self::Bool,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::F32,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::F32 => "f32",
        }
    }

    /// Number of 16-bit registers a value of this type occupies in a register table.
    pub fn registers(self) -> u16 {
        match self {
            Self::Bool | Self::U16 | Self::I16 => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Byte order of a multi-register value, named after where the bytes of the big-endian value
/// `A B C D` (A most significant) appear on the wire, register by register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WordOrder {
    /// Big-endian words, big-endian bytes (the Modbus default).
    #[default]
    Abcd,
    /// Word-swapped: low word first ("little-endian word order"), common on PLCs.
    Cdab,
    /// Byte-swapped within each word.
    Badc,
    /// Fully little-endian.
    Dcba,
}

impl WordOrder {
    /// All orders, as listed in error messages.
    pub const ALL: [WordOrder; 4] = [Self::Abcd, Self::Cdab, Self::Badc, Self::Dcba];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Abcd => "ABCD",
            Self::Cdab => "CDAB",
            Self::Badc => "BADC",
            Self::Dcba => "DCBA",
        }
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a point accepts `.../set` commands.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Writable {
    /// Commands are refused (`writable: false` or absent).
    #[default]
    No,
    /// Commands are accepted within the inclusive engineering-unit range, when given
    /// (`writable: true` or `writable: {min, max}`).
    Yes { min: Option<f64>, max: Option<f64> },
}

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
}

/// In-flight window of the uplink when `uplink.window` is not set.
pub const DEFAULT_UPLINK_WINDOW: u16 = 100;
/// First reconnect delay of the uplink.
pub const DEFAULT_RECONNECT_INITIAL: Duration = Duration::from_millis(500);
/// Longest reconnect delay of the uplink.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(60);
/// Name of the sequence number (user property or JSON field) when `sequence_key` is not set.
pub const DEFAULT_SEQUENCE_KEY: &str = "seq";
/// `uplink.queue.max_bytes` when not set: the queue is always bounded.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1 << 30;

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
    /// Most topic + payload bytes kept (default [`DEFAULT_QUEUE_MAX_BYTES`]).
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
