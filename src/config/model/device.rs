//! A field device (`devices[]`) and how it is reached (TCP or a bus).

use std::fmt;
use std::time::Duration;

use super::modbus::Bus;
use super::point::Point;

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
