//! How much of a serial bus the configured polling takes: wire time per request, per poll
//! cycle, and the share of the bus all devices on it need (pure; shown by `check`).
//!
//! The estimate counts what is certain: every character of the request and of the answer at the
//! bus's baud rate and framing, plus the inter-frame silence after each frame. It does not count
//! the devices' response latency (often a few milliseconds, sometimes tens), so a bus estimated
//! near 100% will not keep up in practice.

use std::time::Duration;

use super::plan::{self, Read};
use crate::config::{Bus, Device, RegisterKind};

/// Characters of a read request: unit, function, address (2), count (2), CRC (2).
const REQUEST_CHARS: u32 = 8;
/// Characters of a read answer besides its data: unit, function, byte count, CRC (2).
const ANSWER_OVERHEAD: u32 = 5;

/// Wire time of one read of `count` registers or bits of `kind` on `bus`, both frames and the
/// silence after each.
pub fn read_time(bus: &Bus, kind: RegisterKind, count: u16) -> Duration {
    let data = if kind.is_bit() {
        u32::from(count).div_ceil(8)
    } else {
        2 * u32::from(count)
    };
    let chars = REQUEST_CHARS + ANSWER_OVERHEAD + data;
    bus.char_time() * chars + bus.frame_delay() * 2
}

/// Wire time of the reads of one poll cycle.
pub fn cycle_time(bus: &Bus, reads: &[Read]) -> Duration {
    reads.iter().map(|r| read_time(bus, r.kind, r.count)).sum()
}

/// One poll class of one device on a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassLoad {
    pub device: String,
    pub interval: Duration,
    pub requests: usize,
    /// Wire time of one cycle of the class.
    pub time: Duration,
}

/// The load of every device polled on `bus`.
#[derive(Debug, Clone, PartialEq)]
pub struct BusLoad {
    pub classes: Vec<ClassLoad>,
}

impl BusLoad {
    /// Share of the bus's time the polling needs (1.0 = all of it): Σ cycle time / interval.
    pub fn utilisation(&self) -> f64 {
        self.classes
            .iter()
            .map(|c| c.time.as_secs_f64() / c.interval.as_secs_f64())
            .sum()
    }

    /// Whether the polling cannot fit: the bus would need more than all of its time.
    pub fn overloaded(&self) -> bool {
        self.utilisation() > 1.0
    }
}

/// The load of `devices` (those on `bus`) at their poll intervals.
pub fn bus_load<'a>(bus: &Bus, devices: impl IntoIterator<Item = &'a Device>) -> BusLoad {
    let classes = devices
        .into_iter()
        .flat_map(|d| {
            plan::classes(d).into_iter().map(|c| ClassLoad {
                device: d.name.clone(),
                interval: c.interval,
                requests: c.reads.len(),
                time: cycle_time(bus, &c.reads),
            })
        })
        .collect();
    BusLoad { classes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Parity;

    fn bus(baud: u32, parity: Parity) -> Bus {
        Bus {
            name: "b".into(),
            port: "/dev/null".into(),
            baud,
            parity,
            data_bits: 8,
            stop_bits: 1,
            inter_frame_delay: None,
        }
    }

    #[test]
    fn wire_time_of_reads() {
        // 9600 8E1: 11 bits a character; 3.5 characters of silence ≈ 4.01 ms
        let b = bus(9600, Parity::Even);
        assert_eq!(b.bits_per_char(), 11);
        let char_ns = 11.0 / 9600.0 * 1e9;
        let t = read_time(&b, RegisterKind::Holding, 10);
        // 8 + 5 + 20 characters, and two silences
        let want = 33.0 * char_ns + 2.0 * 3.5 * char_ns;
        assert!((t.as_nanos() as f64 - want).abs() < 1000.0, "{t:?}");
        // bits are packed 8 to a byte: 10 coils take 2 bytes
        let t = read_time(&b, RegisterKind::Coil, 10);
        let want = 15.0 * char_ns + 7.0 * char_ns;
        assert!((t.as_nanos() as f64 - want).abs() < 1000.0, "{t:?}");
        // above 19200 baud the silence is 1.75 ms at least
        let fast = bus(115_200, Parity::None);
        assert_eq!(fast.frame_delay(), Duration::from_micros(1750));
    }

    #[test]
    fn utilisation_adds_up_the_classes() {
        let load = BusLoad {
            classes: vec![
                ClassLoad {
                    device: "a".into(),
                    interval: Duration::from_secs(1),
                    requests: 2,
                    time: Duration::from_millis(600),
                },
                ClassLoad {
                    device: "b".into(),
                    interval: Duration::from_millis(500),
                    requests: 1,
                    time: Duration::from_millis(250),
                },
            ],
        };
        assert!((load.utilisation() - 1.1).abs() < 1e-9);
        assert!(load.overloaded());
    }
}
