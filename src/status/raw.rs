//! Raw registers on demand: a technician asks for a point's registers (or bits) as they are on
//! the device, undecoded, to check a scale, a word order or an address.
//!
//! Each ask is a fresh read sent through the device's own handle, so it takes the queue of the
//! line's task like any command: it is serialised with the polls and writes of that line, it
//! uses the device's timeout, and a device that does not answer affects only itself (and this
//! answer). The page never touches a connection itself.
//!
//! Invariants:
//! - at most one raw read per device is in flight (another ask for it is refused at once), at
//!   most [`MAX_IN_FLIGHT`] in all, and a device's next raw read waits until [`MIN_INTERVAL`]
//!   has passed since its last one: a page (or a script) cannot flood a device, fill its
//!   line's queue or crowd out the polls of a shared bus;
//! - the wait is bounded by the device's timeout plus [`GRACE`] (for the requests queued before
//!   it on the line); after that the page gets an error, and a request still queued is dropped
//!   unread by the line task;
//! - a device offline (its line down, or its breaker open) answers at once with why.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::catalog::NoSuchPoint;
use crate::command::Target;
use crate::config::Device;
use crate::field::link::ReadData;
use crate::field::{self, DeviceHandle, RawRead};

/// Time allowed on top of the device's timeout for the requests ahead in its line's queue.
pub const GRACE: Duration = Duration::from_secs(5);
/// Raw reads in flight at once, all devices together.
pub const MAX_IN_FLIGHT: usize = 4;
/// Shortest time between the end of a device's raw read and the start of its next one.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Why a raw read shows no registers.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error(transparent)]
    NotFound(#[from] NoSuchPoint),
    #[error("a raw read of `{device}` is already in flight; wait for its answer")]
    Busy { device: String },
    #[error("{MAX_IN_FLIGHT} raw reads are in flight already (the most at once); try again")]
    TooMany,
    #[error("{device}/{point}: {source}")]
    Device {
        device: String,
        point: String,
        #[source]
        source: field::RawError,
    },
    #[error("{device}/{point}: no answer from the device's task within {after:?}")]
    Timeout {
        device: String,
        point: String,
        after: Duration,
    },
}

impl RawError {
    /// The HTTP status line that tells the page what went wrong.
    pub fn status(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "404 Not Found",
            Self::Busy { .. }
            | Self::TooMany
            | Self::Device {
                source: field::RawError::Busy,
                ..
            } => "429 Too Many Requests",
            Self::Timeout { .. }
            | Self::Device {
                source: field::RawError::NoAnswer(_),
                ..
            } => "504 Gateway Timeout",
            Self::Device {
                source: field::RawError::Refused(_) | field::RawError::Link(_),
                ..
            } => "502 Bad Gateway",
            Self::Device { .. } => "503 Service Unavailable",
        }
    }
}

/// The running devices by name, with their handles.
type Targets = HashMap<String, (Arc<Device>, DeviceHandle)>;

/// The devices the page may read from (replaced at each reload) and the reads in flight.
#[derive(Default)]
pub struct RawReads {
    targets: RwLock<Arc<Targets>>,
    slots: Mutex<Slots>,
}

/// The devices with a raw read in flight, and when the recent ones ended.
#[derive(Default)]
struct Slots {
    busy: HashSet<String>,
    ended: HashMap<String, Instant>,
}

/// Releases a device's in-flight mark when the ask ends (answered, failed or abandoned).
struct InFlight<'a> {
    reads: &'a RawReads,
    device: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut slots = self
            .reads
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slots.busy.remove(&self.device);
        slots.ended.retain(|_, at| at.elapsed() < MIN_INTERVAL);
        slots.ended.insert(self.device.clone(), Instant::now());
    }
}

impl RawReads {
    /// The running devices and their handles.
    pub fn set_targets(&self, targets: &[Target]) {
        let map = targets
            .iter()
            .map(|t| (t.device.name.clone(), (t.device.clone(), t.handle.clone())))
            .collect();
        *self.targets.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
    }

    /// Reads `device`/`point` now; the page's document for it.
    pub async fn read(&self, device: &str, point: &str) -> Result<Json, RawError> {
        let targets = self
            .targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let not_found = || NoSuchPoint::new(device, point);
        let (config, handle) = targets.get(device).ok_or_else(not_found)?;
        let index = config
            .points
            .iter()
            .position(|p| p.name == point)
            .ok_or_else(not_found)?;
        let (_mark, pause) = self.mark(device)?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let after = config.timeout + GRACE;
        match tokio::time::timeout(after, handle.read_raw(index)).await {
            Ok(Ok(raw)) => Ok(render(device, point, &raw)),
            Ok(Err(source)) => Err(RawError::Device {
                device: device.into(),
                point: point.into(),
                source,
            }),
            Err(_) => Err(RawError::Timeout {
                device: device.into(),
                point: point.into(),
                after,
            }),
        }
    }

    /// Marks `device` busy; the mark, and how long to wait before reading (see
    /// [`MIN_INTERVAL`]).
    fn mark(&self, device: &str) -> Result<(InFlight<'_>, Duration), RawError> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.busy.contains(device) {
            return Err(RawError::Busy {
                device: device.into(),
            });
        }
        if slots.busy.len() >= MAX_IN_FLIGHT {
            return Err(RawError::TooMany);
        }
        slots.busy.insert(device.to_owned());
        let pause = pause(slots.ended.get(device).copied(), Instant::now());
        let mark = InFlight {
            reads: self,
            device: device.to_owned(),
        };
        Ok((mark, pause))
    }
}

/// How long a device's next raw read waits at `now` when its last one ended at `ended` (pure).
fn pause(ended: Option<Instant>, now: Instant) -> Duration {
    ended.map_or(Duration::ZERO, |at| {
        MIN_INTERVAL.saturating_sub(now.saturating_duration_since(at))
    })
}

/// The page's document for one raw read (pure): each register with its address, hex and
/// decimal, or each bit with its address.
pub fn render(device: &str, point: &str, raw: &RawRead) -> Json {
    let addresses = raw.address..;
    let (registers, bits): (Vec<Json>, Vec<Json>) = match &raw.data {
        ReadData::Words(words) => (
            addresses
                .zip(words)
                .map(|(a, w)| json!({"address": a, "hex": format!("0x{w:04X}"), "dec": w}))
                .collect(),
            Vec::new(),
        ),
        ReadData::Bits(bits) => (
            Vec::new(),
            addresses
                .zip(bits)
                .map(|(a, b)| json!({"address": a, "bit": u8::from(*b)}))
                .collect(),
        ),
    };
    json!({
        "device": device,
        "point": point,
        "unit": raw.unit,
        "kind": raw.kind.to_string(),
        "address": raw.address,
        "registers": registers,
        "bits": bits,
        "ts": crate::payload::timestamp(raw.at),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use serde_json::json;

    use super::{pause, render, RawError, RawReads, MAX_IN_FLIGHT, MIN_INTERVAL};
    use crate::config::RegisterKind;
    use crate::field::link::ReadData;
    use crate::field::RawRead;

    #[test]
    fn registers_show_address_hex_and_decimal_bits_their_address() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let words = RawRead {
            unit: 3,
            kind: RegisterKind::Holding,
            address: 100,
            data: ReadData::Words(vec![0x00D7, 0xFFFF]),
            at,
        };
        let doc = render("boiler", "temperature", &words);
        assert_eq!(doc["unit"], 3);
        assert_eq!(doc["kind"], "holding");
        assert_eq!(
            doc["registers"],
            json!([
                {"address": 100, "hex": "0x00D7", "dec": 215},
                {"address": 101, "hex": "0xFFFF", "dec": 65535},
            ])
        );
        assert_eq!(doc["bits"], json!([]));
        assert_eq!(doc["ts"], "2027-01-15T08:00:00.000Z");
        let bits = RawRead {
            kind: RegisterKind::Coil,
            address: 7,
            data: ReadData::Bits(vec![true, false]),
            ..words
        };
        let doc = render("boiler", "pump", &bits);
        assert_eq!(doc["kind"], "coil");
        assert_eq!(
            doc["bits"],
            json!([{"address": 7, "bit": 1}, {"address": 8, "bit": 0}])
        );
        assert_eq!(doc["registers"], json!([]));
    }

    #[test]
    fn one_raw_read_per_device_a_few_in_all_and_a_pause_between_reads() {
        let reads = RawReads::default();
        let first = reads.mark("d0").expect("free");
        assert_eq!(first.1, Duration::ZERO);
        assert!(matches!(reads.mark("d0"), Err(RawError::Busy { .. })));
        let others: Vec<_> = (1..MAX_IN_FLIGHT)
            .map(|i| reads.mark(&format!("d{i}")).expect("free"))
            .collect();
        assert!(matches!(reads.mark("one more"), Err(RawError::TooMany)));
        drop(others);
        drop(first);
        // Free again, after a pause of at most the interval.
        let (_again, wait) = reads.mark("d0").expect("free");
        assert!(wait <= MIN_INTERVAL, "{wait:?}");
        assert!(reads.mark("d1").is_ok());
        // The pause: what is left of the interval since the last read ended.
        let t = std::time::Instant::now();
        assert_eq!(pause(None, t), Duration::ZERO);
        assert_eq!(pause(Some(t), t), MIN_INTERVAL);
        assert_eq!(
            pause(Some(t), t + Duration::from_millis(50)),
            MIN_INTERVAL - Duration::from_millis(50)
        );
        assert_eq!(pause(Some(t), t + MIN_INTERVAL * 2), Duration::ZERO);
    }
}
