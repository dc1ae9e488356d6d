//! The `DEFAULT_*` constants: every default of the config in one place.

use std::time::Duration;

use super::serial::Parity;

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

/// How long a held command waits for its confirmation when `confirm: true`.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

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
