//! One task per line — a Modbus TCP connection (`host:port`) or a serial bus — serving every
//! device (unit id) behind it. The task owns the link and serialises every request on it: the
//! planned reads of each device's poll cycles and the writes of commands (which go first, like
//! the status page's raw reads: one read of a point's registers, not counted as a poll).
//!
//! Invariants:
//! - the task never ends on a device error; only cancellation ends it;
//! - the line going down (connect/open failure, I/O error) marks every point of every device
//!   `bad` and every device `offline`; the line is rebuilt after a capped, jittered exponential
//!   backoff (a USB adapter unplugged and plugged back is re-opened the same way);
//! - a device that does not answer (timeout, garbled frame, gateway exception 0x0A/0x0B) affects
//!   only itself: its points go `bad`, it turns `degraded`, and after three unanswered requests
//!   in a row its circuit breaker isolates it (`offline`, polled only by rare probes, see
//!   `breaker.rs` and `schedule.rs`) until it answers again. On TCP, the connection is rebuilt
//!   at once after a timeout (a late answer could otherwise be taken for the next one); on a
//!   serial bus, stale bytes are discarded before each request instead (see `serial.rs`);
//! - an exception code is a refusal: only the points of that request go `bad` (device
//!   `degraded`). A merged read refused with 0x02/0x03 is split in two and retried until the
//!   reads that work are found; the learned split is kept, so later cycles do not repeat it;
//! - while a device is offline, writes to it fail at once with `device offline`;
//! - a write is sent once, never repeated, and always followed by a read-back of the point; a
//!   single-bit write reads its register and writes it back with the bit changed, both inside
//!   this task, so no poll or other write of the line comes in between (no lost update).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedMutexGuard, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::codec::Value;
use super::handle::{RawError, RawRead, Request, WriteError, WriteReport};
use super::link::{Exception, Link, LinkError, ReadData, WriteData};
use super::plan::{self, Read};
use super::schedule::{self, Candidate, Job};
use super::slave::{self, Slave};
use super::slots::HostSlots;
use crate::backoff::Backoff;
use crate::broker::{Message, Publish};
use crate::config::{Bus, HostPort};
use crate::field::report::Observation;
use crate::health::{Beat, ErrorKind};
use crate::payload::DeviceState;

pub use super::handle::DeviceHandle;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Bound on closing a link politely.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Repeated identical connection errors are logged at warn only every this many attempts.
const LOG_EVERY: u32 = 20;

/// Where a line goes.
#[derive(Clone)]
pub(super) enum Endpoint {
    /// Modbus TCP; `slots` caps the connections to one host address.
    Tcp {
        addr: HostPort,
        slots: Arc<HostSlots>,
    },
    /// A serial bus with RTU framing.
    Rtu(Bus),
}

/// Why `serve` returned.
enum Exit {
    Cancelled,
    /// The line is down: every device offline, reconnect after backoff.
    Down(LinkError),
    /// The TCP stream may be out of step (a timeout, a garbled answer): reconnect at once,
    /// keeping the devices' state.
    Resync(LinkError),
}

/// The task of one line.
pub(super) struct Line {
    label: String,
    endpoint: Endpoint,
    slaves: Vec<Slave>,
    /// The line's request queue, held for as long as this instance of the line's task runs
    /// (a restarted task takes it over with the requests still queued).
    rx: OwnedMutexGuard<mpsc::Receiver<Request>>,
    rx_open: bool,
    broker: Arc<dyn Publish>,
    cancel: CancellationToken,
    backoff: Backoff,
    last_error: Option<String>,
    /// Progress heartbeat for the systemd watchdog (see `health::beat`).
    beat: Beat,
}

impl Line {
    pub fn new(
        label: String,
        endpoint: Endpoint,
        slaves: Vec<Slave>,
        rx: OwnedMutexGuard<mpsc::Receiver<Request>>,
        broker: Arc<dyn Publish>,
        cancel: CancellationToken,
        beat: Beat,
    ) -> Self {
        Self {
            label,
            endpoint,
            slaves,
            rx,
            rx_open: true,
            broker,
            cancel,
            backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
            last_error: None,
            beat,
        }
    }

    pub async fn run(mut self) {
        let points: usize = self.slaves.iter().map(|s| s.device.points.len()).sum();
        let requests: usize = self
            .slaves
            .iter()
            .flat_map(|s| &s.classes)
            .map(|c| c.reads.len())
            .sum();
        info!(
            devices = self.slaves.len(),
            points, requests, "line task started"
        );
        // `fresh`: the devices' state starts over (not after a quick TCP resync).
        let mut fresh = true;
        loop {
            let Some(connected) = self.connect().await else {
                break;
            };
            match connected {
                // A TCP connection holds a slot of its host until it is closed (the end of
                // this arm).
                Ok((mut link, _slot)) => {
                    if fresh {
                        info!(line = %self.label, "connected");
                    }
                    self.last_error = None;
                    for s in &mut self.slaves {
                        s.line_up(fresh);
                    }
                    let exit = self.serve(&mut link).await;
                    for s in &mut self.slaves {
                        s.set_online(false);
                    }
                    link.close(CLOSE_TIMEOUT).await;
                    match exit {
                        Exit::Cancelled => break,
                        Exit::Resync(e) => {
                            debug!(error = %e, "rebuilding the connection");
                            fresh = false;
                            continue;
                        }
                        Exit::Down(e) => {
                            warn!(error = %e, "link lost, reconnecting");
                            self.all_offline(&e.to_string()).await;
                        }
                    }
                }
                Err(e) => {
                    for s in &self.slaves {
                        s.metrics.error(ErrorKind::Connect);
                    }
                    let text = e.to_string();
                    let attempts = self.backoff.attempts();
                    if self.last_error.as_deref() != Some(text.as_str())
                        || attempts.is_multiple_of(LOG_EVERY)
                    {
                        warn!(error = %text, attempts, "cannot connect");
                    } else {
                        debug!(error = %text, attempts, "cannot connect");
                    }
                    self.all_offline(&text).await;
                    self.last_error = Some(text);
                }
            }
            fresh = true;
            let delay = self.backoff.next_delay();
            if !self.wait_offline(delay).await {
                break;
            }
        }
        let mut batch = Vec::new();
        for s in &mut self.slaves {
            s.set_online(false);
            s.set_state(DeviceState::Offline, &mut batch);
        }
        self.flush(batch).await;
        self.beat.retire();
        info!("line task stopped");
    }

    /// Opens the line: the serial port, or (TCP) a connection once a slot of the host's
    /// address is free, waiting while refusing writes. `None` when cancelled.
    async fn connect(&mut self) -> Option<Result<(Link, Option<OwnedSemaphorePermit>), LinkError>> {
        let timeout = self
            .slaves
            .iter()
            .map(|s| s.device.timeout)
            .max()
            .unwrap_or(Duration::from_secs(1));
        let (addr, slots) = match &self.endpoint {
            Endpoint::Rtu(bus) => return Some(Link::open_serial(bus).map(|link| (link, None))),
            Endpoint::Tcp { addr, slots } => (addr.clone(), slots.clone()),
        };
        let resolved = tokio::select! {
            () = self.cancel.cancelled() => return None,
            r = Link::resolve(&addr, timeout) => r,
        };
        let addrs = match resolved {
            Ok(addrs) => addrs,
            Err(e) => return Some(Err(e)),
        };
        let pool = slots.of(addrs[0].ip());
        let permit = match pool.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                warn!(host = %addrs[0].ip(), cap = slots.cap(), "every connection slot to the host is taken (modbus.max_connections_per_host); waiting for one");
                let acquire = pool.acquire_owned();
                tokio::pin!(acquire);
                loop {
                    tokio::select! {
                        () = self.cancel.cancelled() => return None,
                        permit = &mut acquire => match permit {
                            Ok(permit) => break permit,
                            Err(_) => return None,
                        },
                        req = self.rx.recv(), if self.rx_open => self.refuse(req),
                        () = self.beat.due() => self.beat.beat(),
                    }
                }
            }
        };
        let connected = tokio::select! {
            () = self.cancel.cancelled() => return None,
            r = Link::connect_resolved(&addr, &addrs, timeout) => r,
        };
        Some(connected.map(|link| (link, Some(permit))))
    }

    /// Polls and serves writes until the link must be rebuilt or the task is cancelled.
    async fn serve(&mut self, link: &mut Link) -> Exit {
        let mut candidates = Vec::with_capacity(self.slaves.len() * 2);
        loop {
            self.beat.beat();
            candidates.clear();
            for (i, s) in self.slaves.iter().enumerate() {
                s.candidates(i, &mut candidates);
            }
            let next = schedule::pick(Instant::now(), &candidates);
            let due = next.map_or_else(|| Instant::now() + Duration::from_secs(3600), |c| c.due);
            let outcome = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Exit::Cancelled,
                req = self.rx.recv(), if self.rx_open => match req {
                    Some(req) => self.handle(link, req).await,
                    None => {
                        self.rx_open = false;
                        Ok(())
                    }
                },
                () = tokio::time::sleep_until(due) => match next {
                    Some(Candidate { slave, job: Job::Cycle { class }, .. }) => {
                        self.cycle(link, slave, class).await
                    }
                    Some(Candidate { slave, job: Job::Probe, .. }) => self.probe(link, slave).await,
                    None => Ok(()),
                },
                // Idle (nothing due for a while): still alive.
                () = self.beat.due() => Ok(()),
            };
            if let Err(exit) = outcome {
                return exit;
            }
        }
    }

    /// Serves the writes waiting now (they go before the next read).
    async fn writes_first(&mut self, link: &mut Link) -> Result<(), Exit> {
        while self.rx_open {
            match self.rx.try_recv() {
                Ok(req) => self.handle(link, req).await?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.rx_open = false,
            }
        }
        Ok(())
    }

    /// One poll cycle of class `c` of slave `s`: its reads in order, then one batch of
    /// publications.
    async fn cycle(&mut self, link: &mut Link, s: usize, c: usize) -> Result<(), Exit> {
        let mut batch = Vec::new();
        let mut troubled = false;
        let mut result = Ok(());
        let mut i = 0;
        let metrics = self.slaves[s].metrics.clone();
        while i < self.slaves[s].classes[c].reads.len() {
            if let Err(exit) = self.writes_first(link).await {
                result = Err(exit);
                break;
            }
            if self.slaves[s].breaker.is_open() {
                // A write just found the device dead.
                break;
            }
            let slave = &mut self.slaves[s];
            let read = slave.classes[c].reads[i].clone();
            let (unit, timeout) = (slave.device.unit, slave.device.timeout);
            let started = Instant::now();
            let answer = link
                .read(unit, read.kind, read.address, read.count, timeout)
                .await;
            count(&metrics, &answer, started.elapsed());
            self.beat.beat();
            let slave = &mut self.slaves[s];
            match answer {
                Ok(Ok(data)) => {
                    self.answered(s);
                    self.slaves[s].observe_read(&read, &data, &mut batch);
                    i += 1;
                }
                Ok(Err(exc)) if exc.is_no_answer() => {
                    troubled = true;
                    let rest = rest_of(&slave.classes[c].reads[i..]);
                    self.unanswered(s, &exc.to_string(), rest, &mut batch);
                    break;
                }
                Ok(Err(exc)) => {
                    self.answered(s);
                    let slave = &mut self.slaves[s];
                    let reason = refusal(&read, exc);
                    let halves = splittable(exc)
                        .then(|| plan::split(&read, &slave.device.points))
                        .flatten();
                    match halves {
                        Some((a, b)) => {
                            slave.log_split(&read, (&a, &b), &reason);
                            let reads = &mut slave.classes[c].reads;
                            reads[i] = a;
                            reads.insert(i + 1, b);
                        }
                        None => {
                            troubled = true;
                            slave.refused(&read.points, &reason, &mut batch);
                            i += 1;
                        }
                    }
                }
                Err(e) => {
                    troubled = true;
                    let rest = rest_of(&slave.classes[c].reads[i..]);
                    match self.fault(link, s, e, rest, &mut batch) {
                        Ok(()) => break,
                        Err(exit) => {
                            result = Err(exit);
                            break;
                        }
                    }
                }
            }
        }
        metrics.polled();
        let slave = &mut self.slaves[s];
        let class = &mut slave.classes[c];
        class.troubled = troubled;
        class.reschedule(Instant::now());
        if !slave.breaker.is_open() && !matches!(result, Err(Exit::Down(_))) {
            let health = slave.health();
            slave.set_state(health, &mut batch);
        }
        self.flush(batch).await;
        if result.is_ok() {
            self.backoff.reset();
        }
        result
    }

    /// One request to an isolated slave: any answer brings it back (every class due at once).
    async fn probe(&mut self, link: &mut Link, s: usize) -> Result<(), Exit> {
        let slave = &self.slaves[s];
        let Some(read) = slave.classes.first().and_then(|c| c.reads.first()).cloned() else {
            return Ok(());
        };
        let (unit, timeout) = (slave.device.unit, slave.device.timeout);
        let answer = link
            .read(unit, read.kind, read.address, read.count, timeout)
            .await;
        let mut batch = Vec::new();
        let result = match answer {
            Ok(Ok(_)) => {
                self.answered(s);
                Ok(())
            }
            Ok(Err(exc)) if !exc.is_no_answer() => {
                self.answered(s);
                Ok(())
            }
            Ok(Err(exc)) => {
                self.unanswered(s, &exc.to_string(), Vec::new(), &mut batch);
                Ok(())
            }
            Err(e) => self.fault(link, s, e, Vec::new(), &mut batch),
        };
        self.flush(batch).await;
        result
    }

    /// The slave answered: a closed breaker stays closed, an open one closes (and every class
    /// is polled at once, so the recovery is published at once).
    fn answered(&mut self, s: usize) {
        let slave = &mut self.slaves[s];
        if slave.breaker.answered() {
            {
                let _g = slave.span.enter();
                info!("device answers again");
            }
            slave.set_online(true);
            slave.all_due();
        }
    }

    /// A request to slave `s` got no answer (`reason`); `points` of the cycle go bad.
    fn unanswered(&mut self, s: usize, reason: &str, points: Vec<usize>, batch: &mut Vec<Message>) {
        let slave = &mut self.slaves[s];
        let was_open = slave.breaker.is_open();
        let opened = slave
            .breaker
            .unanswered(Instant::now(), rand::random::<f64>());
        let why = format!("no answer from unit {}: {reason}", slave.device.unit);
        if opened {
            let retry = slave.breaker.grace();
            {
                let _g = slave.span.enter();
                warn!(failures = slave.breaker.failures(), retry = ?retry, reason, "device not answering; isolated: polled only by a probe every back-off interval");
            }
            slave.go_offline(
                &format!("{why} ({} times in a row)", slave.breaker.failures()),
                batch,
            );
        } else if was_open {
            let _g = slave.span.enter();
            debug!(reason, retry = ?slave.breaker.grace(), "probe unanswered");
        } else {
            {
                let _g = slave.span.enter();
                debug!(reason, failures = slave.breaker.failures(), "no answer");
            }
            slave.mark_bad(points, &why, batch);
        }
    }

    /// A link error during a request to slave `s`: on a serial bus a timeout or garbled frame
    /// is the slave's fault only; on TCP it also needs a resync; anything else is the line.
    fn fault(
        &mut self,
        link: &Link,
        s: usize,
        e: LinkError,
        points: Vec<usize>,
        batch: &mut Vec<Message>,
    ) -> Result<(), Exit> {
        if e.is_line_down() {
            return Err(Exit::Down(e));
        }
        self.unanswered(s, &e.to_string(), points, batch);
        if link.is_rtu() {
            Ok(())
        } else {
            Err(Exit::Resync(e))
        }
    }

    async fn handle(&mut self, link: &mut Link, req: Request) -> Result<(), Exit> {
        match req {
            Request::Write {
                slave,
                point,
                data,
                reply,
            } => self.handle_write(link, slave, point, data, reply).await,
            Request::ReadRaw {
                slave,
                point,
                reply,
            } => {
                if reply.is_closed() {
                    // The asker gave up while the request waited: nobody wants this read any more.
                    return Ok(());
                }
                let (result, outcome) = self.read_raw(link, slave, point).await;
                let _ = reply.send(result);
                outcome
            }
        }
    }

    async fn handle_write(
        &mut self,
        link: &mut Link,
        s: usize,
        point: usize,
        data: WriteData,
        reply: oneshot::Sender<WriteReport>,
    ) -> Result<(), Exit> {
        let Some(slave) = self.slaves.get(s) else {
            let _ = reply.send(WriteReport::failed(None, WriteError::Stopped));
            return Ok(());
        };
        let old = slave.last_value(point);
        if slave.breaker.is_open() {
            let reason = slave
                .offline_reason
                .clone()
                .unwrap_or_else(|| "not answering".into());
            let _ = reply.send(WriteReport::failed(old, WriteError::Offline(reason)));
            return Ok(());
        }
        let Some(p) = slave.device.points.get(point).cloned() else {
            let _ = reply.send(WriteReport::failed(
                old,
                WriteError::Decode(format!("no point #{point}")),
            ));
            return Ok(());
        };
        let (unit, timeout) = (slave.device.unit, slave.device.timeout);
        let force_fc16 = slave.device.force_fc16;
        {
            let _g = slave.span.enter();
            debug!(point = %p.name, ?data, "write");
        }
        let mut batch = Vec::new();
        let target = Target {
            s,
            unit,
            timeout,
            point,
            p: &p,
        };
        let (result, outcome, old) = self
            .write_and_read_back(link, &target, data, force_fc16, old, &mut batch)
            .await;
        self.flush(batch).await;
        let _ = reply.send(WriteReport { old, result });
        outcome
    }

    /// One read of point `point`'s registers for the status page: an ordinary request of the
    /// line (the device's timeout; a timeout or a broken link has the usual consequences),
    /// not counted as a poll.
    async fn read_raw(
        &mut self,
        link: &mut Link,
        s: usize,
        point: usize,
    ) -> (Result<RawRead, RawError>, Result<(), Exit>) {
        let Some(slave) = self.slaves.get(s) else {
            return (Err(RawError::Stopped), Ok(()));
        };
        if slave.breaker.is_open() {
            let reason = slave
                .offline_reason
                .clone()
                .unwrap_or_else(|| "not answering".into());
            return (Err(RawError::Offline(reason)), Ok(()));
        }
        let Some(p) = slave.device.points.get(point) else {
            return (Err(RawError::NoPoint(point)), Ok(()));
        };
        let (unit, timeout, kind, address) =
            (slave.device.unit, slave.device.timeout, p.kind, p.address);
        let answer = link.read(unit, kind, address, p.width(), timeout).await;
        self.beat.beat();
        let mut batch = Vec::new();
        let done = match answer {
            Ok(Ok(data)) => {
                self.answered(s);
                let at = std::time::SystemTime::now();
                (
                    Ok(RawRead {
                        unit,
                        kind,
                        address,
                        data,
                        at,
                    }),
                    Ok(()),
                )
            }
            Ok(Err(exc)) if exc.is_no_answer() => {
                self.unanswered(s, &exc.to_string(), Vec::new(), &mut batch);
                (Err(RawError::NoAnswer(exc.to_string())), Ok(()))
            }
            Ok(Err(exc)) => {
                self.answered(s);
                (Err(RawError::Refused(exc)), Ok(()))
            }
            Err(e) => {
                let error = match &e {
                    LinkError::Timeout(_) => RawError::NoAnswer(e.to_string()),
                    _ => RawError::Link(e.to_string()),
                };
                let outcome = self.fault(link, s, e, Vec::new(), &mut batch);
                (Err(error), outcome)
            }
        };
        self.flush(batch).await;
        done
    }

    /// The write (a read-modify-write for a single bit of a register), then the read-back;
    /// the reply for the caller, the outcome for the line, and the old value.
    async fn write_and_read_back(
        &mut self,
        link: &mut Link,
        t: &Target<'_>,
        data: WriteData,
        force_fc16: bool,
        mut old: Option<Value>,
        batch: &mut Vec<Message>,
    ) -> (Result<Value, WriteError>, Result<(), Exit>, Option<Value>) {
        let (s, unit, timeout, p) = (t.s, t.unit, t.timeout, t.p);
        // The wire request; `data` stays what the read-back must show.
        let wire = match &data {
            WriteData::Bit { bit, on } => {
                // Under this task no poll can come between the read and the write.
                match link.read(unit, p.kind, p.address, 1, timeout).await {
                    Err(e) => {
                        let text = format!("reading the register to change bit {bit}: {e}");
                        let outcome = self.fault(link, s, e, Vec::new(), batch);
                        return (Err(WriteError::Link(text)), outcome, old);
                    }
                    Ok(Err(exc)) => {
                        self.answered(s);
                        return (Err(WriteError::Refused(exc)), Ok(()), old);
                    }
                    Ok(Ok(ReadData::Words(words))) if !words.is_empty() => {
                        self.answered(s);
                        let word = words[0];
                        old = Some(Value::Bool(word >> bit & 1 == 1));
                        let mask = 1u16 << bit;
                        let new = if *on { word | mask } else { word & !mask };
                        WriteData::Registers(vec![new])
                    }
                    Ok(Ok(_)) => {
                        let e =
                            WriteError::Decode(format!("no register {} in the answer", p.address));
                        return (Err(e), Ok(()), old);
                    }
                }
            }
            other => other.clone(),
        };
        let wire = match wire {
            WriteData::Registers(words) if force_fc16 => WriteData::MultipleRegisters(words),
            other => other,
        };
        match link.write(unit, p.address, &wire, timeout).await {
            Err(e) => {
                let text = e.to_string();
                let outcome = self.fault(link, s, e, Vec::new(), batch);
                return (Err(WriteError::Link(text)), outcome, old);
            }
            Ok(Err(exc)) => {
                if exc.is_no_answer() {
                    self.unanswered(s, &exc.to_string(), Vec::new(), batch);
                } else {
                    self.answered(s);
                }
                return (Err(WriteError::Refused(exc)), Ok(()), old);
            }
            Ok(Ok(())) => self.answered(s),
        }
        match link.read(unit, p.kind, p.address, p.width(), timeout).await {
            Err(e) => {
                let text = format!("write sent, read-back failed: {e}");
                let outcome = self.fault(link, s, e, Vec::new(), batch);
                (Err(WriteError::Link(text)), outcome, old)
            }
            Ok(Err(exc)) => (Err(WriteError::ReadBackRefused(exc)), Ok(()), old),
            Ok(Ok(read)) => match slave::decode(p, p.address, &read) {
                Observation::Good(v) => {
                    self.slaves[s].publish_read_back(t.point, v.clone(), batch);
                    if data.read_back_matches(&read) {
                        (Ok(v), Ok(()), old)
                    } else {
                        (Err(WriteError::Mismatch(v)), Ok(()), old)
                    }
                }
                Observation::Bad(e) => (Err(WriteError::Decode(e)), Ok(()), old),
            },
        }
    }

    /// Waits `delay` while refusing writes; false when cancelled.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                () = &mut sleep => return true,
                req = self.rx.recv(), if self.rx_open => self.refuse(req),
                () = self.beat.due() => self.beat.beat(),
            }
        }
    }

    fn down_reason(&self) -> String {
        self.last_error
            .clone()
            .unwrap_or_else(|| "not connected".into())
    }

    /// Refuses a request while the line is down.
    fn refuse(&mut self, req: Option<Request>) {
        match req {
            Some(Request::Write { reply, .. }) => {
                let _ = reply.send(WriteReport::failed(
                    None,
                    WriteError::Offline(self.down_reason()),
                ));
            }
            Some(Request::ReadRaw { reply, .. }) => {
                let _ = reply.send(Err(RawError::Offline(self.down_reason())));
            }
            None => self.rx_open = false,
        }
    }

    /// Marks every device offline (the line is down).
    async fn all_offline(&mut self, reason: &str) {
        let mut batch = Vec::new();
        for s in &mut self.slaves {
            s.go_offline(reason, &mut batch);
        }
        self.flush(batch).await;
    }

    async fn flush(&self, batch: Vec<Message>) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.broker.publish_batch(batch).await {
            warn!(error = %e, "publishing device data failed");
        }
    }
}

/// The point a write goes to.
struct Target<'a> {
    s: usize,
    unit: u8,
    timeout: Duration,
    point: usize,
    p: &'a crate::config::Point,
}

/// Counts one read's outcome for the metrics: its latency when the device answered (data or
/// exception), its error kind otherwise.
fn count<T>(
    metrics: &crate::health::DeviceMetrics,
    answer: &Result<Result<T, Exception>, LinkError>,
    took: Duration,
) {
    match answer {
        Ok(Ok(_)) => metrics.latency(took),
        Ok(Err(exc)) if exc.is_no_answer() => metrics.error(ErrorKind::NoAnswer),
        Ok(Err(_)) => {
            metrics.latency(took);
            metrics.error(ErrorKind::Exception);
        }
        Err(LinkError::Timeout(_)) => metrics.error(ErrorKind::NoAnswer),
        Err(e) if e.is_line_down() => metrics.error(ErrorKind::LinkLost),
        Err(_) => metrics.error(ErrorKind::Protocol),
    }
}

/// The points of the reads not done in a cycle.
fn rest_of(reads: &[Read]) -> Vec<usize> {
    reads
        .iter()
        .flat_map(|r| r.points.iter().copied())
        .collect()
}

/// Exceptions that may mean "part of this block does not exist": worth splitting a merged read.
fn splittable(exc: Exception) -> bool {
    exc == Exception::ILLEGAL_ADDRESS || exc.0 == 0x03
}

fn refusal(read: &Read, exc: Exception) -> String {
    let last = read.end() - 1;
    if u32::from(read.address) == last {
        format!(
            "device refused the read of {} {}: {exc}",
            read.kind, read.address
        )
    } else {
        format!(
            "device refused the read of {} {}..{last}: {exc}",
            read.kind, read.address
        )
    }
}

#[cfg(test)]
mod tests;
