//! One device as its line task sees it: its poll classes and their (learned) reads, its
//! circuit breaker, the publication state of its points, and its `$state`.
//!
//! No I/O here: the line task performs the requests and hands the outcomes in; this module
//! turns them into observations, publications (as messages for the line to send) and state.
//! Invariants:
//! - every point publication goes through its [`Reporter`] (deadband, heartbeat);
//! - `$state` is published only when it changes, and is `offline` exactly while the line is
//!   down or the breaker is open; `degraded` while the last run of some poll class had
//!   refusals or unanswered requests; `online` otherwise;
//! - the `online` flag shared with the device's [`super::DeviceHandle`] is true exactly while
//!   the line is up and the breaker closed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant, SystemTime};

use tokio::time::Instant;
use tracing::{info, warn};

use super::breaker::Breaker;
use super::codec;
use super::link::ReadData;
use super::plan::{self, Read};
use super::report::{Observation, Reporter};
use super::schedule::Candidate;
use crate::broker::Message;
use crate::config::{Device, Point, Qos};
use crate::payload::{self, DeviceState, Quality};
use crate::topics::Topics;

/// On a line shared by several devices, probes of an isolated device are at least this many of
/// its timeouts apart (half of it after jitter; see `breaker.rs`): a dead device takes at most
/// 1/20 of the bus time.
const SHARED_PROBE_FACTOR: u32 = 40;
/// On a line of its own, a device is probed sooner: it delays nobody.
const ALONE_PROBE_FACTOR: u32 = 4;
/// Shortest probe interval in any case.
const MIN_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// One poll class: the points polled at one interval, and when they are next due.
#[derive(Debug)]
pub(super) struct Class {
    pub interval: Duration,
    /// The reads, as planned and then split where the device refused a merged read.
    pub reads: Vec<Read>,
    pub next_due: Instant,
    /// The last run had refusals or unanswered requests.
    pub troubled: bool,
}

impl Class {
    /// Moves `next_due` one interval on, skipping the ticks already missed (no catch-up burst).
    pub fn reschedule(&mut self, now: Instant) {
        self.next_due += self.interval;
        if self.next_due < now {
            let behind = (now - self.next_due).as_nanos();
            let step = self.interval.as_nanos().max(1);
            let skip = u32::try_from(behind / step + 1).unwrap_or(u32::MAX);
            self.next_due += self.interval.saturating_mul(skip);
        }
    }
}

struct PointOut {
    topic: String,
    reporter: Reporter,
    /// The last value read successfully (published or not), the "old value" of a write.
    last: Option<codec::Value>,
}

/// A device served by a line.
pub(super) struct Slave {
    pub device: Arc<Device>,
    pub span: tracing::Span,
    pub classes: Vec<Class>,
    pub breaker: Breaker,
    pub online: Arc<AtomicBool>,
    /// Why the device is offline, for write refusals.
    pub offline_reason: Option<String>,
    /// Counters for the metrics endpoint (kept by name across reloads).
    pub metrics: Arc<crate::health::DeviceMetrics>,
    outs: Vec<PointOut>,
    state_topic: String,
    state: Option<DeviceState>,
    /// Points whose refusal has been logged (once per point).
    refusal_logged: HashSet<usize>,
    split_logged: bool,
}

impl Slave {
    /// `shared`: the line serves other devices too (the probe interval then protects them).
    pub fn new(device: Arc<Device>, topics: &Topics, shared: bool, line: &str) -> Self {
        let factor = if shared {
            SHARED_PROBE_FACTOR
        } else {
            ALONE_PROBE_FACTOR
        };
        let floor = device
            .timeout
            .saturating_mul(factor)
            .max(MIN_PROBE_INTERVAL);
        let now = Instant::now();
        let classes = plan::classes(&device)
            .into_iter()
            .map(|c| Class {
                interval: c.interval,
                reads: c.reads,
                next_due: now,
                troubled: false,
            })
            .collect();
        let outs = device
            .points
            .iter()
            .map(|p| PointOut {
                topic: topics.point(&device.name, &p.name),
                reporter: Reporter::new(p.deadband, p.heartbeat.unwrap_or(device.heartbeat)),
                last: None,
            })
            .collect();
        Self {
            span: tracing::info_span!("device", name = %device.name, unit = device.unit, %line),
            state_topic: topics.device_state(&device.name),
            classes,
            breaker: Breaker::new(floor),
            online: Arc::new(AtomicBool::new(false)),
            offline_reason: Some("not connected yet".into()),
            metrics: Arc::default(),
            outs,
            state: None,
            refusal_logged: HashSet::new(),
            split_logged: false,
            device,
        }
    }

    /// What this slave could do next: each class's cycle, or (isolated) its probe.
    pub fn candidates(&self, index: usize, out: &mut Vec<Candidate>) {
        match self.breaker.next_probe() {
            Some(due) => {
                // A probe with no room runs anyway one back-off interval after it was due.
                let forced = due + self.breaker.grace();
                out.push(Candidate::probe(index, due, self.device.timeout, forced));
            }
            None => out.extend(
                self.classes
                    .iter()
                    .enumerate()
                    .map(|(c, class)| Candidate::cycle(index, c, class.next_due)),
            ),
        }
    }

    /// The line came up: the device may be polled; with `fresh`, old failures are forgotten and
    /// every class is due now.
    pub fn line_up(&mut self, fresh: bool) {
        if fresh {
            self.breaker.reset();
            let now = Instant::now();
            for class in &mut self.classes {
                class.next_due = now;
                class.troubled = false;
            }
        }
        self.set_online(!self.breaker.is_open());
    }

    pub fn set_online(&mut self, online: bool) {
        if online {
            self.offline_reason = None;
        }
        self.online.store(online, Ordering::Release);
        self.metrics.set_online(online);
    }

    /// Every class due now (the device answered again).
    pub fn all_due(&mut self) {
        let now = Instant::now();
        for class in &mut self.classes {
            class.next_due = now;
        }
    }

    /// Publishes the points of `read` from its answer.
    pub fn observe_read(&mut self, read: &Read, data: &ReadData, batch: &mut Vec<Message>) {
        let (now, at) = (StdInstant::now(), SystemTime::now());
        for &i in &read.points {
            let obs = decode(&self.device.points[i], read.address, data);
            self.observe(i, obs, now, at, batch);
        }
    }

    /// Marks `points` bad with `reason`.
    pub fn mark_bad(
        &mut self,
        points: impl IntoIterator<Item = usize>,
        reason: &str,
        batch: &mut Vec<Message>,
    ) {
        let (now, at) = (StdInstant::now(), SystemTime::now());
        for i in points {
            self.observe(i, Observation::Bad(reason.to_owned()), now, at, batch);
        }
    }

    /// Marks every point bad and the device offline.
    pub fn go_offline(&mut self, reason: &str, batch: &mut Vec<Message>) {
        self.set_online(false);
        self.offline_reason = Some(reason.to_owned());
        let bad = format!("device offline: {reason}");
        self.mark_bad(0..self.outs.len(), &bad, batch);
        self.set_state(DeviceState::Offline, batch);
    }

    /// A device refused the read of `points`: logged once per point.
    pub fn refused(&mut self, points: &[usize], reason: &str, batch: &mut Vec<Message>) {
        for &i in points {
            if self.refusal_logged.insert(i) {
                let _g = self.span.enter();
                warn!(point = %self.device.points[i].name, reason, "device refuses a point");
            }
        }
        self.mark_bad(points.iter().copied(), reason, batch);
    }

    /// Logs a split of a refused merged read (the first one at warn, the rest at debug).
    pub fn log_split(&mut self, read: &Read, halves: (&Read, &Read), reason: &str) {
        let _g = self.span.enter();
        let span = |r: &Read| format!("{} {}..{}", r.kind, r.address, r.end() - 1);
        if self.split_logged {
            tracing::debug!(read = %span(read), first = %span(halves.0), second = %span(halves.1), reason, "splitting a refused read");
        } else {
            self.split_logged = true;
            warn!(read = %span(read), first = %span(halves.0), second = %span(halves.1), reason, "device refused a merged read; splitting it to find what it refuses (further splits are logged at debug)");
        }
    }

    /// The state the device is in while its line is up.
    pub fn health(&self) -> DeviceState {
        if self.breaker.is_open() {
            DeviceState::Offline
        } else if self.breaker.failures() > 0 || self.classes.iter().any(|c| c.troubled) {
            DeviceState::Degraded
        } else {
            DeviceState::Online
        }
    }

    /// Queues `$state` when it changed.
    pub fn set_state(&mut self, state: DeviceState, batch: &mut Vec<Message>) {
        if self.state == Some(state) {
            return;
        }
        {
            let _g = self.span.enter();
            info!(state = state.as_str(), "device state");
        }
        self.state = Some(state);
        batch.push(Message::agent(
            self.state_topic.clone(),
            state.as_str(),
            Qos::AtLeastOnce,
            true,
        ));
    }

    /// After a write, the read-back is news: it is published whatever the deadband says.
    pub fn publish_read_back(
        &mut self,
        point: usize,
        value: codec::Value,
        batch: &mut Vec<Message>,
    ) {
        self.outs[point].reporter.invalidate();
        self.observe(
            point,
            Observation::Good(value),
            StdInstant::now(),
            SystemTime::now(),
            batch,
        );
    }

    /// The last value read from `point`, if any.
    pub fn last_value(&self, point: usize) -> Option<codec::Value> {
        self.outs.get(point).and_then(|o| o.last.clone())
    }

    fn observe(
        &mut self,
        i: usize,
        obs: Observation,
        now: StdInstant,
        at: SystemTime,
        batch: &mut Vec<Message>,
    ) {
        let out = &mut self.outs[i];
        if let Observation::Good(v) = &obs {
            out.last = Some(v.clone());
        }
        if !out.reporter.observe(now, &obs) {
            return;
        }
        let unit = self.device.points[i].unit.as_deref();
        let body = match obs {
            Observation::Good(v) => payload::point_state(Some(v), Quality::Good, None, unit, at),
            Observation::Bad(e) => payload::point_state(None, Quality::Bad, Some(&e), unit, at),
        };
        batch.push(Message::agent(
            out.topic.clone(),
            body,
            Qos::AtLeastOnce,
            true,
        ));
        self.metrics.published(1);
    }
}

/// Decodes one point out of the data of the read that covers it.
pub(super) fn decode(point: &Point, read_address: u16, data: &ReadData) -> Observation {
    let offset = usize::from(point.address.saturating_sub(read_address));
    let width = usize::from(point.width());
    match data {
        ReadData::Bits(bits) => match bits.get(offset..offset + width) {
            Some(slice) => Observation::Good(codec::decode_bits(point, slice)),
            None => Observation::Bad(format!("bit {} missing from the answer", point.address)),
        },
        ReadData::Words(words) => match words.get(offset..offset + width) {
            Some(slice) => match codec::decode_point(point, slice) {
                Ok(v) => Observation::Good(v),
                Err(e) => Observation::Bad(format!("cannot decode: {e}")),
            },
            None => Observation::Bad(format!(
                "registers of {} missing from the answer",
                point.address
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_skips_missed_ticks_and_keeps_the_phase() {
        let t0 = Instant::now();
        let interval = Duration::from_millis(100);
        let mut c = Class {
            interval,
            reads: Vec::new(),
            next_due: t0,
            troubled: false,
        };
        c.reschedule(t0 + Duration::from_millis(30));
        assert_eq!(c.next_due, t0 + interval);
        // a 250 ms stall: the next tick is the first one still ahead, on the same grid
        c.reschedule(t0 + Duration::from_millis(350));
        assert_eq!(c.next_due, t0 + Duration::from_millis(400));
        c.reschedule(t0 + Duration::from_millis(400));
        assert_eq!(c.next_due, t0 + Duration::from_millis(500));
    }
}
