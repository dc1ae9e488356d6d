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
/// Broker persistence file when `broker.persistence_file` is not set (relative to the state
/// directory).
pub const DEFAULT_BROKER_DB_FILE: &str = "broker.db";
/// Largest MQTT packet the broker accepts (and, MQTT 5, advertises), in bytes.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;
/// Messages queued per client beyond its in-flight window (Mosquitto's default).
pub const DEFAULT_MAX_QUEUED_MESSAGES: u32 = 1000;
/// Unacknowledged QoS 1/2 messages in flight to one client (Mosquitto's default).
pub const DEFAULT_MAX_INFLIGHT: u16 = 20;
/// How often `$SYS/broker/...` statistics are published (Mosquitto's default).
pub const DEFAULT_SYS_INTERVAL: Duration = Duration::from_secs(10);

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
    /// packets (Nagle), like Mosquitto's `set_tcp_nodelay` (default off).
    pub tcp_nodelay: bool,
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
            tcp_nodelay: false,
        }
    }

    /// Whether `listener` accepts clients without a username: its own setting, else the
    /// broker's, else only when it is bound to a loopback address.
    pub fn anonymous_allowed(&self, listener: &Listener) -> bool {
        listener
            .allow_anonymous
            .or(self.allow_anonymous)
            .unwrap_or_else(|| listener.bind.ip().is_loopback())
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
}

impl Listener {
    /// A plain MQTT listener on `bind` with the broker-wide settings.
    pub fn plain(bind: SocketAddr) -> Self {
        Self {
            bind,
            tls: None,
            protocol: ListenerProtocol::Mqtt,
            allow_anonymous: None,
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
    /// MQTT client id used upstream (default `ferrule-{site}`).
    pub client_id: String,
    /// MQTT keepalive of the upstream connection.
    pub keepalive: Duration,
    /// PEM file of CA certificates trusted for `mqtts://` (default: the system roots).
    pub ca: Option<PathBuf>,
    /// Which local messages are queued and forwarded upstream.
    pub forward: Vec<ForwardRule>,
    /// The durable queue.
    pub queue: QueueConfig,
}

/// `uplink.url`: `mqtt://host[:1883]` or `mqtts://host[:8883]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for UplinkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        let hp = HostPort {
            host: self.host.clone(),
            port: self.port,
        };
        write!(f, "{scheme}://{hp}")
    }
}

/// One `uplink.forward[]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRule {
    /// MQTT topic filter matched against every message of the local broker.
    pub local: String,
    /// QoS used upstream (default 1).
    pub qos: Qos,
}

/// `uplink.queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// SQLite file of the queue; relative paths are resolved against the config file's directory.
    pub path: PathBuf,
    /// What a commit guarantees.
    pub durability: Durability,
}

/// What a queue commit guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync at every commit: a committed message survives power loss.
    #[default]
    Full,
    /// Survives a crash of the process; the last commits may be lost on power loss.
    Normal,
}
