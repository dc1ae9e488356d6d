//! One task per device connection: it owns the link and serialises every request on it —
//! the planned reads of each poll cycle and the writes of commands, in arrival order.
//!
//! Invariants:
//! - the task never ends on a device error: a failed connect or a broken link (timeout, I/O
//!   error, garbage answer) marks every point `bad` and the device `offline`, then the link is
//!   rebuilt after a capped, jittered exponential backoff; only cancellation ends the task;
//! - an exception code from the device marks only the points of that request `bad` (device
//!   `degraded`); the link stays up;
//! - while the device is not connected, writes fail at once with `device offline`: a command is
//!   never held to be executed minutes later;
//! - every point publication goes through its [`Reporter`] (deadband, heartbeat); a read-back
//!   after a write is always published.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::codec::{self, Value};
use super::link::{Exception, Link, LinkError, ReadData, WriteData};
use super::plan::{self, Limits, Read};
use super::report::{Observation, Reporter};
use crate::backoff::Backoff;
use crate::broker::{Broker, Message};
use crate::config::{Device, Point, Qos, Transport};
use crate::payload::{self, DeviceState, Quality};
use crate::topics::Topics;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Requests (commands) waiting for one device.
const REQUEST_QUEUE: usize = 16;

/// Why a write did not happen (or its result is unknown).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("device is offline: {0}")]
    Offline(String),
    #[error("device refused the write: {0}")]
    Refused(Exception),
    #[error("write sent but the read-back was refused: {0}")]
    ReadBackRefused(Exception),
    #[error("link failed during the write: {0}")]
    Link(String),
    #[error("read-back could not be decoded: {0}")]
    Decode(String),
    #[error("the device task has stopped")]
    Stopped,
}

impl WriteError {
    /// Machine-readable code for command results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Offline(_) => "device_offline",
            Self::Refused(_) => "device_exception",
            Self::ReadBackRefused(_) => "readback_failed",
            Self::Link(_) => "link_error",
            Self::Decode(_) => "readback_failed",
            Self::Stopped => "shutting_down",
        }
    }
}

enum Request {
    Write {
        point: usize,
        data: WriteData,
        reply: oneshot::Sender<Result<Value, WriteError>>,
    },
}

/// The way to reach a device's task.
#[derive(Clone, Debug)]
pub struct DeviceHandle {
    tx: mpsc::Sender<Request>,
    online: Arc<AtomicBool>,
}

impl DeviceHandle {
    /// Writes `data` to point `point` (index in the device's point list), reads it back and
    /// returns the value read back (already published on the state topic).
    pub async fn write(&self, point: usize, data: WriteData) -> Result<Value, WriteError> {
        if !self.online.load(Ordering::Acquire) {
            return Err(WriteError::Offline("not connected".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Write { point, data, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Whether the device is connected right now.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }
}

/// Starts the task of one device on the current runtime; it runs until `cancel`.
pub fn spawn(
    device: Arc<Device>,
    topics: &Topics,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> DeviceHandle {
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    let online = Arc::new(AtomicBool::new(false));
    let span = tracing::info_span!("device", name = %device.name);
    let poller = Poller::new(device, topics, broker, rx, online.clone(), cancel);
    tracker.spawn(poller.run().instrument(span));
    DeviceHandle { tx, online }
}

struct PointOut {
    topic: String,
    reporter: Reporter,
}

struct Poller {
    device: Arc<Device>,
    plan: Vec<Read>,
    points: Vec<PointOut>,
    state_topic: String,
    state: Option<DeviceState>,
    broker: Arc<Broker>,
    rx: mpsc::Receiver<Request>,
    rx_open: bool,
    online: Arc<AtomicBool>,
    cancel: CancellationToken,
    backoff: Backoff,
    last_error: Option<String>,
}

impl Poller {
    fn new(
        device: Arc<Device>,
        topics: &Topics,
        broker: Arc<Broker>,
        rx: mpsc::Receiver<Request>,
        online: Arc<AtomicBool>,
        cancel: CancellationToken,
    ) -> Self {
        let plan = plan::plan(&device.points, &Limits::with_gap(device.max_gap));
        let points = device
            .points
            .iter()
            .map(|p| PointOut {
                topic: topics.point(&device.name, &p.name),
                reporter: Reporter::new(p.deadband, p.heartbeat.unwrap_or(device.heartbeat)),
            })
            .collect();
        Self {
            state_topic: topics.device_state(&device.name),
            plan,
            points,
            state: None,
            broker,
            rx,
            rx_open: true,
            online,
            cancel,
            backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
            last_error: None,
            device,
        }
    }

    async fn run(mut self) {
        info!(points = self.device.points.len(), requests = self.plan.len(), poll = ?self.device.poll, "device task started");
        loop {
            let Transport::Tcp(addr) = &self.device.transport;
            let connected = tokio::select! {
                () = self.cancel.cancelled() => break,
                r = Link::connect_tcp(addr, self.device.unit, self.device.timeout) => r,
            };
            match connected {
                Ok(mut link) => {
                    info!(%addr, "connected");
                    self.last_error = None;
                    self.online.store(true, Ordering::Release);
                    let outcome = self.serve(&mut link).await;
                    self.online.store(false, Ordering::Release);
                    match outcome {
                        None => {
                            link.close().await;
                            break;
                        }
                        Some(e) => {
                            warn!(error = %e, "link lost, reconnecting");
                            self.mark_offline(&e.to_string()).await;
                        }
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    let attempts = self.backoff.attempts();
                    if self.last_error.as_deref() != Some(text.as_str()) || attempts % 20 == 0 {
                        warn!(error = %text, attempts, "cannot connect");
                    } else {
                        debug!(error = %text, attempts, "cannot connect");
                    }
                    self.mark_offline(&text).await;
                    self.last_error = Some(text);
                }
            }
            let delay = self.backoff.next_delay();
            if !self.wait_offline(delay).await {
                break;
            }
        }
        self.set_state(DeviceState::Offline).await;
        info!("device task stopped");
    }

    /// Polls and serves writes until the link fails (`Some`) or the task is cancelled (`None`).
    async fn serve(&mut self, link: &mut Link) -> Option<LinkError> {
        let mut ticker = tokio::time::interval(self.device.poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return None,
                req = self.rx.recv(), if self.rx_open => match req {
                    Some(req) => {
                        if let Err(e) = self.handle(link, req).await {
                            return Some(e);
                        }
                    }
                    None => self.rx_open = false,
                },
                _ = ticker.tick() => {
                    if let Err(e) = self.cycle(link).await {
                        return Some(e);
                    }
                }
            }
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
                req = self.rx.recv(), if self.rx_open => match req {
                    Some(Request::Write { reply, .. }) => {
                        let reason = self.last_error.clone().unwrap_or_else(|| "not connected".into());
                        let _ = reply.send(Err(WriteError::Offline(reason)));
                    }
                    None => self.rx_open = false,
                },
            }
        }
    }

    /// One poll cycle: every planned read, then one batch of publications.
    async fn cycle(&mut self, link: &mut Link) -> Result<(), LinkError> {
        let mut batch = Vec::new();
        let mut refused = false;
        for r in 0..self.plan.len() {
            let (kind, address, count) =
                (self.plan[r].kind, self.plan[r].address, self.plan[r].count);
            let answer = link.read(kind, address, count).await;
            let (now, at) = (Instant::now(), SystemTime::now());
            match answer {
                Err(e) => {
                    self.flush(batch).await;
                    return Err(e);
                }
                Ok(Err(exc)) => {
                    refused = true;
                    let reason = format!(
                        "device refused the read of {kind} {address}..{}: {exc}",
                        u32::from(address) + u32::from(count) - 1
                    );
                    for i in self.plan[r].points.clone() {
                        self.observe(i, Observation::Bad(reason.clone()), now, at, &mut batch);
                    }
                }
                Ok(Ok(data)) => {
                    for i in self.plan[r].points.clone() {
                        let obs = decode(&self.device.points[i], address, &data);
                        self.observe(i, obs, now, at, &mut batch);
                    }
                }
            }
        }
        self.backoff.reset();
        let state = if refused {
            DeviceState::Degraded
        } else {
            DeviceState::Online
        };
        self.flush(batch).await;
        self.set_state(state).await;
        Ok(())
    }

    async fn handle(&mut self, link: &mut Link, req: Request) -> Result<(), LinkError> {
        let Request::Write { point, data, reply } = req;
        let Some(p) = self.device.points.get(point).cloned() else {
            let _ = reply.send(Err(WriteError::Decode(format!("no point #{point}"))));
            return Ok(());
        };
        debug!(point = %p.name, ?data, "write");
        match link.write(p.address, &data).await {
            Err(e) => {
                let _ = reply.send(Err(WriteError::Link(e.to_string())));
                return Err(e);
            }
            Ok(Err(exc)) => {
                let _ = reply.send(Err(WriteError::Refused(exc)));
                return Ok(());
            }
            Ok(Ok(())) => {}
        }
        let answer = link.read(p.kind, p.address, p.width()).await;
        let (now, at) = (Instant::now(), SystemTime::now());
        let result = match answer {
            Err(e) => {
                let _ = reply.send(Err(WriteError::Link(format!(
                    "write sent, read-back failed: {e}"
                ))));
                return Err(e);
            }
            Ok(Err(exc)) => Err(WriteError::ReadBackRefused(exc)),
            Ok(Ok(data)) => match decode(&p, p.address, &data) {
                Observation::Good(v) => {
                    let mut batch = Vec::with_capacity(1);
                    self.points[point].reporter.invalidate();
                    self.observe(point, Observation::Good(v), now, at, &mut batch);
                    self.flush(batch).await;
                    Ok(v)
                }
                Observation::Bad(e) => Err(WriteError::Decode(e)),
            },
        };
        let _ = reply.send(result);
        Ok(())
    }

    fn observe(
        &mut self,
        i: usize,
        obs: Observation,
        now: Instant,
        at: SystemTime,
        batch: &mut Vec<Message>,
    ) {
        let out = &mut self.points[i];
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
    }

    /// Marks every point bad and the device offline.
    async fn mark_offline(&mut self, reason: &str) {
        let (now, at) = (Instant::now(), SystemTime::now());
        let mut batch = Vec::new();
        let obs = Observation::Bad(format!("device offline: {reason}"));
        for i in 0..self.points.len() {
            self.observe(i, obs.clone(), now, at, &mut batch);
        }
        self.flush(batch).await;
        self.set_state(DeviceState::Offline).await;
    }

    async fn set_state(&mut self, state: DeviceState) {
        if self.state == Some(state) {
            return;
        }
        info!(state = state.as_str(), "device state");
        self.state = Some(state);
        let msg = Message::agent(
            self.state_topic.clone(),
            state.as_str(),
            Qos::AtLeastOnce,
            true,
        );
        self.flush(vec![msg]).await;
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

/// Decodes one point out of the data of the read that covers it.
fn decode(point: &Point, read_address: u16, data: &ReadData) -> Observation {
    let offset = usize::from(point.address.saturating_sub(read_address));
    match data {
        ReadData::Bits(bits) => match bits.get(offset) {
            Some(bit) => Observation::Good(codec::decode_bit(*bit)),
            None => Observation::Bad(format!("bit {} missing from the answer", point.address)),
        },
        ReadData::Words(words) => {
            let width = usize::from(point.width());
            match words.get(offset..offset + width) {
                Some(slice) => match codec::decode_point(point, slice) {
                    Ok(v) => Observation::Good(v),
                    Err(e) => Observation::Bad(format!("cannot decode: {e}")),
                },
                None => Observation::Bad(format!(
                    "registers of {} missing from the answer",
                    point.address
                )),
            }
        }
    }
}
