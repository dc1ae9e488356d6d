//! One connection to the upstream broker: connect, birth, downlink subscriptions, then drain the
//! queue through a pipelined window until the connection ends or the agent stops.
//!
//! Per row: fetched (in id order, a batch ahead) → handed to rumqttc while the window has room
//! (and `max_rate` allows) → written → acknowledged → deleted in a batch. The queue reads and
//! deletes run beside the event loop (never blocking it), one of each at a time. Deletes wait
//! for a batch worth a transaction (a quarter of the window, at most `MAX_ACK_BATCH`) unless
//! nothing else is in flight or `ACK_DELAY` passed: with a full window every PUBACK frees
//! one slot, and a commit per few rows would cost more than the sending (page writes and file
//! locks per commit). The window stays at least three quarters open for sending.
//!
//! Invariants: see the module docs of `uplink` and `inflight`. Rows acknowledged upstream but
//! not deleted yet are remembered across connections (`Carry`) so a reconnect does not send
//! them again while their delete is still pending or failed.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::downlink::{Downlinks, Skip};
use super::inflight::{Settled, Slot, Window};
use super::rate::Rate;
use super::sequence::stamp_json;
use super::session::{valid_topic, AckKind, LinkEvent, Session, Subscription, Upstream, Will};
use super::status::LinkStatus;
use crate::broker::Message;
use crate::config::{Qos, Sequence};
use crate::errors::Chain;
use crate::sparkplug::{now_ms, Action, EdgeNode, Publish};
use crate::store::{Queue, Row, StoreError};

/// How long a stopping agent keeps draining before it gives up (the rows stay queued).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(3);
/// Rows read from the queue at once (four windows' worth): at least this many...
const MIN_FETCH: usize = 256;
/// ...and at most this many.
const MAX_FETCH: usize = 4096;
/// Link events handled in a row once one arrived, before the window is refilled: rumqttc
/// decodes every packet of a network read at once, and taking them one per `select!` turn
/// cost more than the events themselves.
const EVENT_BATCH: usize = 64;
/// Most acknowledged rows deleted in one commit.
const MAX_ACK_BATCH: usize = 512;
/// Longest an acknowledged row waits for its delete to start.
const ACK_DELAY: Duration = Duration::from_millis(20);
/// Pause before retrying a failed delete.
const DELETE_RETRY: Duration = Duration::from_secs(1);

type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// What a connection needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) queue: Queue,
    pub(crate) status: std::sync::Arc<LinkStatus>,
    pub(crate) window: usize,
    pub(crate) max_rate: Option<u32>,
    pub(crate) sequence: Sequence,
    pub(crate) will: Will,
    pub(crate) downlinks: Downlinks,
    pub(crate) downlink_tx: mpsc::Sender<Message>,
    /// Progress heartbeat for the systemd watchdog, beaten by every loop of the link.
    pub(crate) beat: Option<crate::beat::Beat>,
}

impl Context {
    /// The uplink made progress (or is idle and alive).
    pub(crate) fn beat(&self) {
        if let Some(b) = &self.beat {
            b.beat();
        }
    }

    /// Resolves when the next beat is due; never without a heartbeat.
    pub(crate) async fn beat_due(&self) {
        match &self.beat {
            Some(b) => b.due().await,
            None => std::future::pending().await,
        }
    }
}

/// State kept across connections.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    /// Rows acknowledged upstream (or refused for good) whose delete has not committed.
    pub(crate) settled: HashSet<i64>,
    /// Of those, the ones to delete (a delete that failed is tried again), and how.
    pub(crate) to_ack: Vec<i64>,
    pub(crate) to_discard: Vec<i64>,
    /// The Sparkplug edge node, when the uplink is one.
    pub(crate) node: Option<EdgeNode>,
}

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The agent is stopping.
    Stopped,
    /// The connection failed or was lost; `connected` says whether it had been up.
    Failed { error: String, connected: bool },
    /// The broker refused a message; the connection was ended on purpose to resend (or move
    /// past) it with a fresh session.
    Reset(String),
}

/// A delete in progress.
struct Deleting {
    future: StoreFuture<()>,
    ids: Vec<i64>,
    discard: bool,
}

pub(crate) struct Drain<'a, S: Upstream = Session> {
    ctx: &'a Context,
    carry: &'a mut Carry,
    session: S,
    window: Window,
    buffer: VecDeque<Row>,
    cursor: i64,
    exhausted: bool,
    fetch_size: usize,
    fetching: Option<StoreFuture<Vec<Row>>>,
    deleting: Option<Deleting>,
    delete_retry: Option<Pin<Box<Sleep>>>,
    /// Set when rows wait to be deleted: starts the delete when it fires.
    ack_due: Option<Pin<Box<Sleep>>>,
    ack_batch: usize,
    rate: Option<Rate>,
    rate_wait: Option<Pin<Box<Sleep>>>,
    /// Counts not yet added to the shared status.
    sent: u64,
    delivered: u64,
    refused: u64,
    downlinked: u64,
    /// A broker refusal that ends the connection.
    reset: Option<String>,
    /// Sparkplug births waiting for room in the window, sent before any row.
    control: VecDeque<Publish>,
    /// Sparkplug: the births of this connection were sent (rows may follow).
    born: bool,
    /// Sparkplug: rows up to this id were queued before the births (historical).
    birth_mark: i64,
}

impl<'a, S: Upstream> Drain<'a, S> {
    pub(crate) fn new(ctx: &'a Context, carry: &'a mut Carry, session: S) -> Self {
        Self {
            ctx,
            carry,
            session,
            window: Window::default(),
            buffer: VecDeque::new(),
            cursor: 0,
            exhausted: false,
            fetch_size: ctx.window.saturating_mul(4).clamp(MIN_FETCH, MAX_FETCH),
            fetching: None,
            deleting: None,
            delete_retry: None,
            ack_due: None,
            ack_batch: (ctx.window / 4).clamp(1, MAX_ACK_BATCH),
            rate: ctx
                .max_rate
                .map(|r| Rate::new(r, std::time::Instant::now())),
            rate_wait: None,
            sent: 0,
            delivered: 0,
            refused: 0,
            downlinked: 0,
            reset: None,
            control: VecDeque::new(),
            born: false,
            birth_mark: 0,
        }
    }

    pub(crate) async fn run(mut self, cancel: &CancellationToken) -> Outcome {
        // Connect.
        loop {
            self.ctx.beat();
            let ev = tokio::select! {
                () = cancel.cancelled() => return Outcome::Stopped,
                ev = self.session.poll() => ev,
                () = self.ctx.beat_due() => continue,
            };
            match ev {
                Ok(LinkEvent::Connected) => break,
                Ok(_) => {}
                Err(error) => {
                    return Outcome::Failed {
                        error,
                        connected: false,
                    }
                }
            }
        }
        self.ctx.status.connected();
        let backlog = self.ctx.queue.stats().await.map(|s| s.depth).unwrap_or(0);
        info!(backlog, "uplink connected");
        let mut subscriptions = self.ctx.downlinks.subscriptions();
        if let Some(node) = &self.carry.node {
            // Sparkplug: the will is the NDEATH, the birth the NBIRTH (now, or once the
            // primary host is online).
            subscriptions.extend(node.subscriptions().into_iter().map(|(filter, retained)| {
                Subscription {
                    filter,
                    qos: Qos::AtLeastOnce,
                    retained,
                }
            }));
            if node.primary_host().is_none() {
                self.birth();
            } else {
                info!(
                    host = node.primary_host(),
                    "Sparkplug: waiting for the primary host to be online"
                );
            }
        } else {
            let will = &self.ctx.will;
            let birth = self.session.try_publish(
                &will.topic,
                Qos::AtLeastOnce,
                true,
                will.online.into(),
                None,
            );
            if birth.is_ok() {
                self.window.handed(Slot::Birth { qos: 1 });
            }
        }
        if self.session.try_subscribe(&subscriptions).is_err() {
            warn!("cannot subscribe to the downlink topics on this connection");
        }
        let outcome = self.drain(cancel).await;
        self.finish().await;
        self.flush_counts();
        outcome
    }

    async fn drain(&mut self, cancel: &CancellationToken) -> Outcome {
        let mut committed = self.ctx.queue.committed();
        let mut stopping: Option<Pin<Box<Sleep>>> = None;
        loop {
            self.ctx.beat();
            self.pump(&mut committed);
            if let Some(why) = self.reset.take() {
                return Outcome::Reset(why);
            }
            if stopping.is_some() && self.idle() {
                self.disconnect();
                return Outcome::Stopped;
            }
            tokio::select! {
                ev = self.session.poll() => match ev {
                    Ok(ev) => {
                        self.on_event(ev);
                        // The events rumqttc already has, without a turn of `select!` each.
                        for _ in 0..EVENT_BATCH {
                            if self.reset.is_some() {
                                break;
                            }
                            match ready(self.session.poll()).await {
                                Some(Ok(ev)) => self.on_event(ev),
                                Some(Err(error)) => return Outcome::Failed { error, connected: true },
                                None => break,
                            }
                        }
                    }
                    Err(error) => return Outcome::Failed { error, connected: true },
                },
                rows = poll_fetch(&mut self.fetching) => {
                    self.fetching = None;
                    self.fetched(rows);
                }
                done = poll_delete(&mut self.deleting) => {
                    let deleting = self.deleting.take();
                    self.deleted(deleting, done);
                }
                () = sleep_opt(&mut self.delete_retry) => self.delete_retry = None,
                () = sleep_opt(&mut self.ack_due) => {
                    self.ack_due = None;
                    self.start_delete();
                }
                () = sleep_opt(&mut self.rate_wait) => self.rate_wait = None,
                r = committed.changed(), if self.exhausted && self.fetching.is_none() => {
                    if r.is_ok() {
                        self.exhausted = false;
                    }
                }
                () = cancel.cancelled(), if stopping.is_none() => {
                    stopping = Some(Box::pin(tokio::time::sleep(DRAIN_DEADLINE)));
                }
                () = self.ctx.beat_due() => {}
                () = sleep_opt(&mut stopping) => {
                    let left = self.window.in_flight() + self.buffer.len();
                    info!(unacknowledged = left, "shutdown: the rest of the backlog stays queued");
                    self.disconnect();
                    return Outcome::Stopped;
                }
            }
        }
    }

    /// A clean DISCONNECT; a Sparkplug edge node publishes its NDEATH first (a clean
    /// disconnect does not publish the will).
    fn disconnect(&mut self) {
        if let Some(node) = &self.carry.node {
            let death = node.death(now_ms());
            let _ = self.session.try_publish(
                &death.topic,
                Qos::AtLeastOnce,
                false,
                death.payload,
                None,
            );
        }
        self.session.try_disconnect();
    }

    /// Sparkplug: queues NBIRTH and the DBIRTHs; rows queued until now become historical.
    fn birth(&mut self) {
        let Some(node) = self.carry.node.as_mut() else {
            return;
        };
        self.control = node.births(now_ms()).into();
        self.birth_mark = *self.ctx.queue.committed().borrow();
        self.born = true;
        info!(
            births = self.control.len(),
            historical_up_to = self.birth_mark,
            "Sparkplug: births queued"
        );
    }

    /// Sparkplug: what the node asks after an upstream message on its topics.
    fn node_action(&mut self, incoming: &super::session::Incoming) {
        let Some(node) = self.carry.node.as_mut() else {
            return;
        };
        match node.inbound(&incoming.topic, &incoming.payload) {
            Action::Rebirth => {
                info!("Sparkplug: rebirth requested");
                self.birth();
            }
            Action::Commands(msgs) => {
                for msg in msgs {
                    let topic = msg.topic.clone();
                    match self.ctx.downlink_tx.try_send(msg) {
                        Ok(()) => self.downlinked += 1,
                        Err(_) => {
                            error!(%topic, "downlink backlog full: Sparkplug command dropped")
                        }
                    }
                }
            }
            Action::Host { online: true } if !self.born => {
                info!("Sparkplug: the primary host is online");
                self.birth();
            }
            Action::Host { online: false } if self.born => {
                // Dropping the connection makes the broker publish the NDEATH (the will).
                self.reset = Some("the Sparkplug primary host went offline".into());
            }
            Action::Host { .. } | Action::Nothing => {}
        }
    }

    /// Whether everything queued so far was sent, acknowledged and deleted.
    fn idle(&self) -> bool {
        self.control.is_empty()
            && self.window.is_idle()
            && self.window.outstanding() == 0
            && self.buffer.is_empty()
            && self.exhausted
            && self.fetching.is_none()
            && self.deleting.is_none()
            && self.carry.to_ack.is_empty()
            && self.carry.to_discard.is_empty()
    }

    /// Starts the reads and deletes that are due, and hands rows over while the window (and
    /// the rate) allow.
    fn pump(&mut self, committed: &mut tokio::sync::watch::Receiver<i64>) {
        self.hand_over();
        if self.deleting.is_none() && self.delete_retry.is_none() {
            let pending = self.carry.to_ack.len() + self.carry.to_discard.len();
            // Nothing in flight (after handing over what could be): no more acks are coming
            // to make the batch bigger.
            let stuck = self.window.in_flight() == 0;
            if pending >= self.ack_batch || (pending > 0 && stuck) {
                self.start_delete();
            } else if pending > 0 && self.ack_due.is_none() {
                self.ack_due = Some(Box::pin(tokio::time::sleep(ACK_DELAY)));
            }
        }
        if self.fetching.is_none() && !self.exhausted && self.buffer.len() < self.fetch_size / 2 {
            // Any commit after this point wakes `changed()`.
            committed.borrow_and_update();
            let queue = self.ctx.queue.clone();
            let (after, limit) = (self.cursor, self.fetch_size);
            self.fetching = Some(Box::pin(async move { queue.fetch(after, limit).await }));
        }
    }

    /// Hands rows to rumqttc while the window (and the rate) allow.
    fn hand_over(&mut self) {
        while self.window.outstanding() < self.ctx.window && self.rate_wait.is_none() {
            if let Some(p) = self.control.pop_front() {
                let payload = p.payload.clone();
                match self.session.try_publish(
                    p.topic.as_str(),
                    Qos::AtLeastOnce,
                    false,
                    payload,
                    None,
                ) {
                    Ok(()) => self.window.handed(Slot::Birth { qos: 1 }),
                    Err(_) => {
                        self.control.push_front(p);
                        break;
                    }
                }
                continue;
            }
            if self.carry.node.is_some() && !self.born {
                break;
            }
            let Some(row) = self.buffer.pop_front() else {
                break;
            };
            if !valid_topic(&row.record.topic) {
                error!(id = row.id, topic = %row.record.topic, "queued message has a topic no broker takes; dropped (refused_upstream)");
                self.settled(row.id, true);
                continue;
            }
            if let Some(rate) = &mut self.rate {
                if let Err(wait) = rate.take(std::time::Instant::now()) {
                    self.rate_wait = Some(Box::pin(tokio::time::sleep(wait)));
                    self.buffer.push_front(row);
                    break;
                }
            }
            let qos = Qos::from_level(row.record.qos).unwrap_or(Qos::AtLeastOnce);
            if let Some(node) = self.carry.node.as_mut() {
                let r = &row.record;
                let historical = row.id <= self.birth_mark;
                let Some(p) = node.translate(&r.topic, &r.payload, historical, now_ms()) else {
                    // Not a metric of a born device: nothing to send for it.
                    debug!(id = row.id, topic = %r.topic, "Sparkplug: nothing to send for this row");
                    self.settled(row.id, false);
                    continue;
                };
                match self
                    .session
                    .try_publish(p.topic, qos, false, p.payload, None)
                {
                    Ok(()) => {
                        self.window.handed(Slot::Row {
                            id: row.id,
                            qos: qos.level(),
                        });
                        self.sent += 1;
                        continue;
                    }
                    Err(_) => {
                        // Cannot happen while the window bounds the requests; the node's seq
                        // moved on, so start over with a fresh session and new births.
                        self.buffer.push_front(row);
                        self.reset = Some("the request channel was full".into());
                        break;
                    }
                }
            }
            let Row { id, record, .. } = row;
            let (payload, property) = match &self.ctx.sequence {
                Sequence::Off => (record.payload, None),
                Sequence::Property(key) => (record.payload, Some((key.as_str(), id))),
                Sequence::Json(key) => (
                    stamp_json(&record.payload, key, id).unwrap_or(record.payload),
                    None,
                ),
            };
            // The topic moves into rumqttc (no copy per message).
            match self
                .session
                .try_publish(record.topic, qos, record.retain, payload, property)
            {
                Ok(()) => {
                    self.window.handed(Slot::Row {
                        id,
                        qos: qos.level(),
                    });
                    self.sent += 1;
                }
                Err(_) => {
                    // Cannot happen while the window bounds the requests. The row is still
                    // queued: a fresh session fetches it again.
                    self.reset = Some("the uplink request channel was full".into());
                    break;
                }
            }
        }
    }

    fn fetched(&mut self, rows: Result<Vec<Row>, StoreError>) {
        match rows {
            Ok(rows) => {
                self.exhausted = rows.len() < self.fetch_size;
                for row in rows {
                    self.cursor = row.id;
                    // Acknowledged on an earlier connection, delete still pending: not again.
                    if !self.carry.settled.contains(&row.id) {
                        self.buffer.push_back(row);
                    }
                }
            }
            Err(e) => {
                warn!(error = %Chain(&e), "cannot read the uplink queue; retrying");
                // Let a commit (or the next one) wake the next attempt.
                self.exhausted = true;
            }
        }
    }

    fn on_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Written { pkid } => {
                if let Settled::Row(id) = self.window.written(pkid) {
                    self.settled(id, false);
                }
            }
            LinkEvent::Ack {
                pkid,
                kind,
                refused: None,
            } => {
                if let Settled::Row(id) = self.window.acked(pkid, kind, false) {
                    self.settled(id, false);
                }
            }
            LinkEvent::Ack {
                pkid,
                kind,
                refused: Some(refused),
            } => {
                let Settled::Row(id) = self.window.acked(pkid, kind, true) else {
                    return;
                };
                if refused.transient {
                    self.reset = Some(format!(
                        "the broker refused message {id} for now ({}); sending it again after a reconnect",
                        refused.reason
                    ));
                    // Not settled: it stays queued and in the window until the reset.
                    return;
                }
                error!(id, reason = %refused.reason, "the broker refused a message for good; dropped and counted as refused_upstream");
                self.settled(id, true);
                // rumqttc leaves its state unsettled after a refusal (a parked publish, the
                // in-flight count of a refused PUBREC): start over with a fresh session.
                if kind != AckKind::PubComp {
                    self.reset = Some(format!(
                        "the broker refused message {id} ({})",
                        refused.reason
                    ));
                }
            }
            LinkEvent::Message(incoming)
                if self
                    .carry
                    .node
                    .as_ref()
                    .and_then(|n| n.handles(&incoming.topic))
                    .is_some() =>
            {
                let retained_ok = self
                    .carry
                    .node
                    .as_ref()
                    .and_then(|n| n.handles(&incoming.topic))
                    == Some(true);
                if incoming.retain && !retained_ok {
                    debug!(topic = %incoming.topic, "retained Sparkplug command skipped");
                } else {
                    self.node_action(&incoming);
                }
            }
            LinkEvent::Message(incoming) => match self.ctx.downlinks.map(&incoming) {
                Ok(msg) => match self.ctx.downlink_tx.try_send(msg) {
                    Ok(()) => self.downlinked += 1,
                    Err(_) => {
                        error!(topic = %incoming.topic, "downlink backlog full: message from upstream dropped")
                    }
                },
                Err(Skip::Retained) => {
                    debug!(topic = %incoming.topic, "retained message from the downlink subscription skipped");
                }
                Err(skip) => {
                    warn!(topic = %incoming.topic, ?skip, "downlink message not published locally")
                }
            },
            LinkEvent::Subscribed { refused } if !refused.is_empty() => {
                error!(refused = ?refused, "the upstream broker refused downlink subscriptions");
            }
            LinkEvent::Connected | LinkEvent::Subscribed { .. } | LinkEvent::Other => {}
        }
    }

    /// A row is done with upstream: delete it (as delivered, or as refused for good).
    fn settled(&mut self, id: i64, discard: bool) {
        self.carry.settled.insert(id);
        if discard {
            self.carry.to_discard.push(id);
            self.refused += 1;
        } else {
            self.carry.to_ack.push(id);
            self.delivered += 1;
        }
    }

    fn start_delete(&mut self) {
        if self.deleting.is_some() || self.delete_retry.is_some() {
            return;
        }
        self.ack_due = None;
        let (ids, discard) = if !self.carry.to_ack.is_empty() {
            (std::mem::take(&mut self.carry.to_ack), false)
        } else if !self.carry.to_discard.is_empty() {
            (std::mem::take(&mut self.carry.to_discard), true)
        } else {
            return;
        };
        let queue = self.ctx.queue.clone();
        let batch = ids.clone();
        let future: StoreFuture<()> = Box::pin(async move {
            if discard {
                queue.discard(batch).await
            } else {
                queue.ack(batch).await
            }
        });
        self.deleting = Some(Deleting {
            future,
            ids,
            discard,
        });
    }

    fn deleted(&mut self, deleting: Option<Deleting>, done: Result<(), StoreError>) {
        let Some(d) = deleting else { return };
        match done {
            Ok(()) => {
                self.window.deleted(d.ids.len());
                for id in &d.ids {
                    self.carry.settled.remove(id);
                }
                self.flush_counts();
            }
            Err(e) => {
                warn!(error = %Chain(&e), rows = d.ids.len(), "cannot delete acknowledged rows; retrying (a crash now would send them again)");
                if d.discard {
                    self.carry.to_discard.extend(d.ids);
                } else {
                    self.carry.to_ack.extend(d.ids);
                }
                self.delete_retry = Some(Box::pin(tokio::time::sleep(DELETE_RETRY)));
            }
        }
    }

    /// Waits for the delete in progress and tries the pending ones once (the connection is
    /// over; what fails stays in [`Carry`] for the next one).
    async fn finish(&mut self) {
        if let Some(d) = self.deleting.take() {
            let mut d = d;
            let done = (&mut d.future).await;
            self.deleted(Some(d), done);
        }
        self.delete_retry = None;
        for _ in 0..2 {
            self.start_delete();
            if let Some(mut d) = self.deleting.take() {
                let done = (&mut d.future).await;
                self.deleted(Some(d), done);
            }
        }
    }

    fn flush_counts(&mut self) {
        if self.sent + self.delivered + self.refused + self.downlinked > 0 {
            self.ctx
                .status
                .count(self.sent, self.delivered, self.refused, self.downlinked);
            (self.sent, self.delivered, self.refused, self.downlinked) = (0, 0, 0, 0);
        }
    }
}

/// `f`'s output if it is ready now, else `None` (`f` is dropped: only for cancel-safe
/// futures, as rumqttc's `EventLoop::poll`, which `select!` drops the same way).
async fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| match f.as_mut().poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// The fetch in progress; pending forever when there is none (for `select!`).
async fn poll_fetch(slot: &mut Option<StoreFuture<Vec<Row>>>) -> Result<Vec<Row>, StoreError> {
    match slot {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The delete in progress; pending forever when there is none.
async fn poll_delete(slot: &mut Option<Deleting>) -> Result<(), StoreError> {
    match slot {
        Some(d) => d.future.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(slot: &mut Option<Pin<Box<Sleep>>>) {
    match slot {
        Some(s) => s.as_mut().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
