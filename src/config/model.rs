//! The typed configuration model: what a valid `ferrule.yaml` means.
//!
//! Invariants (established by [`super::load()`] and checked by the `validate` module):
//! - every name (`site`, devices, points) is a valid MQTT topic level;
//! - device names are unique, point names are unique within their device;
//! - the registers of two points of one device never overlap, except that single-bit points
//!   (`bit`) may read different bits of one register, which a one-register point (`u16`,
//!   `bits`...) may read whole as well;
//! - every point fits in the 16-bit Modbus address space and in one read request (125 registers,
//!   2000 bits); addresses are 0-based protocol addresses whatever the file wrote (`address_base:
//!   1`, Modicon `40001`);
//! - `coil`/`discrete` points have type `bool`; `string` points have a `length`, a `bit` point is
//!   a `bool` in a register, arrays (`count` > 1) are of numeric or bool types;
//! - bus names are unique, every device on a bus names a defined bus, two buses never share a
//!   serial port, and a device on a bus has a unit id from 1 to 247;
//! - no host is the target of more distinct `tcp` endpoints than `modbus.max_connections_per_host`.
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
/// Serial line settings of a bus that does not set them: 19200 baud, even parity, 8 data bits,
/// 1 stop bit, the defaults of the Modbus serial line specification (§2.5.1).
pub const DEFAULT_BAUD: u32 = 19_200;
pub const DEFAULT_PARITY: Parity = Parity::Even;
pub const DEFAULT_DATA_BITS: u8 = 8;
pub const DEFAULT_STOP_BITS: u8 = 1;
/// Most TCP connections ferrule opens to one host (devices sharing a `host:port` share one).
pub const DEFAULT_MAX_CONNECTIONS_PER_HOST: u16 = 4;
/// Where the metrics endpoint listens when the `metrics` section is present without `bind`:
/// loopback only.
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9108";
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
/// Longest keepalive a client may ask for, in seconds (Mosquitto's `max_keepalive` default).
pub const DEFAULT_MAX_KEEPALIVE: u16 = 65_535;
/// Topic aliases a client may set towards the broker (Mosquitto's `max_topic_alias` default).
pub const DEFAULT_MAX_TOPIC_ALIAS: u16 = 10;
/// The second default listener: IPv6 loopback, like Mosquitto's local-only mode (skipped with a
/// warning where the host has no IPv6 loopback).
pub const DEFAULT_LISTENER_V6: &str = "[::1]:1883";

/// The whole configuration of one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Site name: the first level of every topic ferrule publishes (`{site}/{device}/{point}`).
    pub site: String,
    /// The embedded MQTT broker.
    pub broker: BrokerConfig,
    /// Serial (RS-485) buses that devices name with `bus`, in file order.
    pub buses: Vec<Bus>,
    /// Field devices polled by the agent, in file order.
    pub devices: Vec<Device>,
    /// Settings of the Modbus client as a whole (the `modbus` section).
    pub modbus: ModbusSettings,
    /// Store-and-forward link to a cloud broker; `None` when the section is absent (uplink off).
    pub uplink: Option<Uplink>,
    /// The `commands` section: the global write switch and the audit trail.
    pub commands: CommandSettings,
    /// The HTTP endpoint for `/metrics` and `/health`; `None` (off) when the section is absent.
    pub metrics: Option<MetricsConfig>,
    /// The device profiles (inline and from `profiles_dir`) and the devices using each; the
    /// devices above already carry their resolved point maps.
    pub profiles: Vec<ProfileInfo>,
    /// `profiles_dir`, resolved against the config file's directory (watched for reloads).
    pub profiles_dir: Option<PathBuf>,
    /// The live status page; `None` (off) when the section is absent.
    pub status: Option<super::StatusConfig>,
}

/// A device profile as `check` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    pub name: String,
    /// `file:line` where it is defined.
    pub at: String,
    /// Points of the profile itself.
    pub points: usize,
    /// The devices using it, with what each changes.
    pub devices: Vec<ProfileUse>,
}

/// How one device uses its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUse {
    pub profile: String,
    pub device: String,
    /// Points the device adds.
    pub added: usize,
    /// Profile points whose keys the device changes, in file order.
    pub overridden: Vec<String>,
    /// Profile points the device leaves out.
    pub dropped: Vec<String>,
}

impl Config {
    /// The profile use of device `name`, if it has a profile.
    pub fn profile_of(&self, name: &str) -> Option<&ProfileUse> {
        self.profiles
            .iter()
            .flat_map(|p| &p.devices)
            .find(|u| u.device == name)
    }
}

/// The `commands` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSettings {
    /// `writes: enabled` (default) or `disabled`: when disabled, every `.../set` is refused
    /// with `writes_disabled` and nothing is written to any device.
    pub writes: bool,
    /// `audit: publish` (default `log`): besides the audit log line, every command's audit
    /// record is published on `{site}/$agent/audit` (forwarded through the queue when an
    /// uplink forward rule matches it).
    pub audit_publish: bool,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            writes: true,
            audit_publish: false,
        }
    }
}

/// The `metrics` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address of the HTTP listener (defaults to [`DEFAULT_METRICS_BIND`]).
    pub bind: std::net::SocketAddr,
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

/// The `modbus` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModbusSettings {
    /// Most concurrent TCP connections to one host (by its name or address as written).
    pub max_connections_per_host: u16,
}

impl Default for ModbusSettings {
    fn default() -> Self {
        Self {
            max_connections_per_host: DEFAULT_MAX_CONNECTIONS_PER_HOST,
        }
    }
}

/// One serial line (`buses[]`): RS-485 (or RS-232) with Modbus RTU framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bus {
    /// Name that devices use in `bus:`.
    pub name: String,
    /// Serial device, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub port: String,
    /// Bits per second.
    pub baud: u32,
    pub parity: Parity,
    /// 7 or 8 (Modbus RTU uses 8).
    pub data_bits: u8,
    /// 1 or 2.
    pub stop_bits: u8,
    /// Silence kept between two frames; `None` is 3.5 character times (at least 1.75 ms).
    pub inter_frame_delay: Option<Duration>,
}

impl Bus {
    /// Bits on the wire per character: start, data, parity, stop.
    pub fn bits_per_char(&self) -> u32 {
        1 + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits)
    }

    /// Time one character takes on the wire.
    pub fn char_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.bits_per_char()) / f64::from(self.baud.max(1)))
    }

    /// The silence between frames: the configured one, or 3.5 character times, and at least
    /// 1.75 ms (the fixed value the Modbus serial line specification sets above 19200 baud).
    pub fn frame_delay(&self) -> Duration {
        self.inter_frame_delay.unwrap_or_else(|| {
            self.char_time()
                .mul_f64(3.5)
                .max(Duration::from_micros(1750))
        })
    }
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    None,
    Even,
    Odd,
}

impl Parity {
    pub const ALL: [Parity; 3] = [Self::None, Self::Even, Self::Odd];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Even => "even",
            Self::Odd => "odd",
        }
    }
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// 0 or 1: whether the point addresses of the file count from 0 (protocol addresses) or
    /// from 1. Informational: [`Point::address`] is always the 0-based protocol address.
    pub address_base: u8,
    /// The point map: the `points` list in file order, then the points of each of `groups`.
    pub points: Vec<Point>,
    /// Write single registers with FC16 (write multiple registers) instead of FC06, for
    /// devices that implement only FC16 (`force_fc16: true`).
    pub force_fc16: bool,
}

impl Device {
    /// The interval at which `point` is polled: its own (or its group's), else the device's.
    pub fn poll_of(&self, point: &Point) -> Duration {
        point.poll.unwrap_or(self.poll)
    }

    /// The unit id and line as shown in logs and `check`: `tcp 10.0.0.5:502 unit 1`.
    pub fn endpoint(&self) -> String {
        match &self.transport {
            Transport::Tcp(addr) => format!("tcp {addr} unit {}", self.unit),
            Transport::Rtu(bus) => format!("bus {} unit {}", bus.name, self.unit),
        }
    }
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP at `host:port` (the host is resolved at every connect). Devices with the same
    /// `host:port` share one connection.
    Tcp(HostPort),
    /// Modbus RTU on a serial bus (a copy of the bus named by the device's `bus`).
    Rtu(Bus),
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
    /// The address as written in the file when it is not the protocol address (a Modicon
    /// address such as `40101`, or a 1-based one), for `check` to show both.
    pub written_address: Option<String>,
    /// Data type of the raw value (of each element, for an array).
    pub data_type: DataType,
    /// Byte/word order of multi-register values (ignored for 16-bit and bit values); for a
    /// `string`, `ABCD` puts the first character in the high byte, `BADC` in the low byte.
    pub order: WordOrder,
    /// Number of values: 1 for a scalar, more for an array (`count`), published as a JSON
    /// array. For `bits`, the number of registers (16 values each).
    pub count: u16,
    /// Length in registers of a `string` (two characters each); 0 for other types.
    pub length: u16,
    /// The bit (0 = least significant) of the register that a single-bit point reads.
    pub bit: Option<u8>,
    /// Engineering value = raw × `scale` + `offset`.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Engineering unit, published with the value (e.g. `°C`).
    pub unit: Option<String>,
    /// A new value is published only when it differs from the last published by more than this.
    pub deadband: Deadband,
    /// Republish at least this often; `None` uses the device's heartbeat.
    pub heartbeat: Option<Duration>,
    /// Poll interval of this point (its own `poll`, or its group's); `None` uses the device's.
    pub poll: Option<Duration>,
    /// Whether (and within which range) `.../set` commands may write the point.
    pub writable: Writable,
    /// The other rules of commands to the point (`writable: {step, rate_limit, confirm}`).
    pub write: WriteRules,
    /// Named values (`enum: {off: 0, auto: 1, manual: 2}`), in file order: a command may give
    /// a name instead of the number, and only these values may be written.
    pub names: Vec<(String, f64)>,
}

/// Rules of commands to a writable point besides its range (`writable: {...}`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WriteRules {
    /// Values must be `min` (or `offset` when there is no `min`) plus a whole number of steps.
    pub step: Option<f64>,
    /// At most one write per this period; commands sooner are refused (`rate_limited`).
    pub rate_limit: Option<Duration>,
    /// A `.../set` is held until a matching `.../confirm` arrives within this period.
    pub confirm: Option<Duration>,
}

/// How long a held command waits for its confirmation when `confirm: true`.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

impl Point {
    /// A scalar point with every optional setting at its default (tests, the simulator, probe).
    pub fn new(name: &str, kind: RegisterKind, address: u16, data_type: DataType) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            address,
            written_address: None,
            data_type,
            order: WordOrder::Abcd,
            count: 1,
            length: 0,
            bit: None,
            scale: 1.0,
            offset: 0.0,
            unit: None,
            deadband: Deadband::default(),
            heartbeat: None,
            poll: None,
            writable: Writable::No,
            write: WriteRules::default(),
            names: Vec::new(),
        }
    }

    /// Number of registers (register kinds) or bits (bit kinds) the point occupies.
    pub fn width(&self) -> u16 {
        let count = self.count.max(1);
        if self.kind.is_bit() {
            count
        } else if self.data_type == DataType::String {
            self.length
        } else if self.bit.is_some() {
            1
        } else {
            count.saturating_mul(self.data_type.registers())
        }
    }

    /// Width before clamping to `u16`, for validation of absurd `count`s and `length`s.
    pub fn width_u32(&self) -> u32 {
        let count = u32::from(self.count.max(1));
        if self.kind.is_bit() {
            count
        } else if self.data_type == DataType::String {
            u32::from(self.length)
        } else if self.bit.is_some() {
            1
        } else {
            count * u32::from(self.data_type.registers())
        }
    }

    /// Whether the value is published as a JSON array (`count` > 1, or `bits`).
    pub fn is_array(&self) -> bool {
        self.count > 1 || self.data_type == DataType::Bits
    }

    /// Address one past the last register or bit of the point (65536 at most for a valid point).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + self.width_u32()
    }
}

/// How far a value must move from the last published one to be published again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    /// In engineering units (`deadband: 0.5`); 0 publishes every change.
    Absolute(f64),
    /// In percent of the magnitude of the last published value (`deadband: 2%`): a change of
    /// more than `|last| × p / 100`. After a published 0, any change is published.
    Percent(f64),
}

impl Default for Deadband {
    fn default() -> Self {
        Self::Absolute(0.0)
    }
}

impl fmt::Display for Deadband {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute(a) => write!(f, "{a}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
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
    U64,
    I64,
    F32,
    F64,
    /// Text, two 8-bit characters per register (`length` registers); published up to the
    /// first NUL, trailing spaces removed.
    String,
    /// A register as 16 booleans, bit 0 (least significant) first.
    Bits,
}

impl DataType {
    /// All types, as listed in error messages.
    pub const ALL: [DataType; 11] = [
        Self::Bool,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::U64,
        Self::I64,
        Self::F32,
        Self::F64,
        Self::String,
        Self::Bits,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::String => "string",
            Self::Bits => "bits",
        }
    }

    /// Number of 16-bit registers one value of this type occupies in a register table (a
    /// `string` takes its `length`: this is 1, per register of text).
    pub fn registers(self) -> u16 {
        match self {
            Self::Bool | Self::U16 | Self::I16 | Self::String | Self::Bits => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
            Self::U64 | Self::I64 | Self::F64 => 4,
        }
    }

    /// True for the numeric types (integers and floats).
    pub fn is_numeric(self) -> bool {
        !matches!(self, Self::Bool | Self::String | Self::Bits)
    }

    /// True for `f32` and `f64`.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Byte order of a multi-register value, named after where the bytes of the big-endian value
/// `A B C D` (A most significant) appear on the wire, register by register.
///
/// The same four orders apply to 8-byte values `A B C D E F G H`, as the two independent
/// swaps they are made of: word order reversed or not, bytes swapped within each register or
/// not. `ABCD` = `ABCDEFGH` (big-endian), `CDAB` = `GHEFCDAB` (registers in reverse order),
/// `BADC` = `BADCFEHG` (bytes swapped in each register), `DCBA` = `HGFEDCBA` (little-endian).
/// The config accepts both spellings.
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

    /// The 8-byte spelling of the same order.
    pub fn as_str8(self) -> &'static str {
        match self {
            Self::Abcd => "ABCDEFGH",
            Self::Cdab => "GHEFCDAB",
            Self::Badc => "BADCFEHG",
            Self::Dcba => "HGFEDCBA",
        }
    }

    /// Whether the registers come least significant first (`CDAB`, `DCBA`).
    pub fn words_reversed(self) -> bool {
        matches!(self, Self::Cdab | Self::Dcba)
    }

    /// Whether the two bytes of each register are swapped (`BADC`, `DCBA`).
    pub fn bytes_swapped(self) -> bool {
        matches!(self, Self::Badc | Self::Dcba)
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
    /// Speak Sparkplug B upstream as an edge node (see `config::sparkplug`).
    pub sparkplug: Option<super::sparkplug::Sparkplug>,
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
