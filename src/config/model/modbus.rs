//! The `modbus` section and the serial buses (`buses[]`).

use std::time::Duration;

use super::defaults::DEFAULT_MAX_CONNECTIONS_PER_HOST;
use super::serial::Parity;

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
