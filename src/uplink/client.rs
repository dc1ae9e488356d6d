//! The upstream MQTT client: drains the queue to the cloud broker, deleting a row only after
//! the broker acknowledged it.
//!
//! Invariants:
//! - a row is deleted only after its PUBACK (QoS 1) / PUBCOMP (QoS 2), or, for QoS 0, after it
//!   was written to the socket;
//! - every connection starts from a fresh rumqttc event loop with a clean session, and resends
//!   every row not yet acknowledged, in id order: rumqttc's own retransmission state is never
//!   trusted across connections (it drops pending messages when the broker has no session), the
//!   queue is the only source of truth;
//! - at most [`WINDOW`] rows are outstanding at once — handed over, unacknowledged, or
//!   acknowledged but not yet deleted — so a crash or reconnect resends at most that many
//!   (the only duplicates), while the drain stays pipelined;
//! - packet ids are assigned by rumqttc inside its event loop: requests are handed over in
//!   order and matched to the `Outgoing::Publish(pkid)` events in that same order; a pkid can be
//!   reused while an earlier message with it is still unacknowledged (rumqttc "collision"), so
//!   each pkid keeps a FIFO of rows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::tls;
use crate::backoff::Backoff;
use crate::config::Uplink;
use crate::errors::Chain;
use crate::store::{Queue, Row, StoreError};
use crate::topics::Topics;

/// Unacknowledged messages at once.
pub const WINDOW: usize = 100;
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a shutdown waits for the backlog to drain before giving up (the rows stay queued).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// Errors that stop the uplink from starting.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

type AckFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A prepared uplink: options built and TLS material loaded.
pub struct UplinkTask {
    options: MqttOptions,
    agent_state: String,
    queue: Queue,
}

impl UplinkTask {
    /// Checks the TLS material and prepares the connection options.
    pub fn new(cfg: &Uplink, topics: &Topics, queue: Queue) -> Result<Self, UplinkError> {
        let mut options =
            MqttOptions::new(cfg.client_id.clone(), cfg.url.host.clone(), cfg.url.port);
        options.set_keep_alive(cfg.keepalive);
        options.set_clean_session(true);
        options.set_inflight(u16::try_from(WINDOW).unwrap_or(u16::MAX));
        options.set_request_channel_capacity(WINDOW + 8);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let agent_state = topics.agent_state();
        options.set_last_will(LastWill::new(
            agent_state.clone(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if cfg.url.tls {
            let config = tls::client_config(cfg.ca.as_deref())?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        Ok(Self {
            options,
            agent_state,
            queue,
        })
    }

    /// Runs until `cancel`, then tries to drain the backlog for up to [`DRAIN_DEADLINE`].
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
        let mut last_error: Option<String> = None;
        let mut acked: HashSet<i64> = HashSet::new();
        loop {
            let (client, eventloop) = AsyncClient::new(self.options.clone(), WINDOW + 8);
            let mut conn = Connection::new(client, eventloop, &self.queue, &self.agent_state);
            let outcome = conn.run(&cancel, &mut acked, &mut backoff).await;
            match outcome {
                Outcome::Stopped => break,
                Outcome::Failed(e) => {
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) || backoff.attempts() % 20 == 0
                    {
                        warn!(error = %text, attempts = backoff.attempts(), "uplink disconnected");
                    }
                    last_error = Some(text);
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        info!("uplink stopped");
    }
}

enum Outcome {
    Stopped,
    Failed(ConnectionError),
}

struct Connection<'a> {
    client: AsyncClient,
    eventloop: EventLoop,
    queue: &'a Queue,
    agent_state: &'a str,
    /// Rows handed to rumqttc whose `Outgoing::Publish` has not been seen (None = birth).
    unsent: VecDeque<Option<(i64, u8)>>,
    /// Rows written and awaiting their ack, per packet id.
    inflight: HashMap<u16, VecDeque<i64>>,
    inflight_len: usize,
    /// Rows fetched, not yet handed over.
    buffer: VecDeque<Row>,
    cursor: i64,
    exhausted: bool,
    to_ack: Vec<i64>,
    acking: Option<AckFuture>,
    acking_ids: Vec<i64>,
}

impl<'a> Connection<'a> {
    fn new(
        client: AsyncClient,
        eventloop: EventLoop,
        queue: &'a Queue,
        agent_state: &'a str,
    ) -> Self {
        Self {
            client,
            eventloop,
            queue,
            agent_state,
            unsent: VecDeque::new(),
            inflight: HashMap::new(),
            inflight_len: 0,
            buffer: VecDeque::new(),
            cursor: 0,
            exhausted: false,
            to_ack: Vec::new(),
            acking: None,
            acking_ids: Vec::new(),
        }
    }

    async fn run(
        &mut self,
        cancel: &CancellationToken,
        acked: &mut HashSet<i64>,
        backoff: &mut Backoff,
    ) -> Outcome {
        // Connect.
        loop {
            let ev = tokio::select! {
                () = cancel.cancelled() => return Outcome::Stopped,
                ev = self.eventloop.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => continue,
                Err(e) => return Outcome::Failed(e),
            }
        }
        backoff.reset();
        let depth = self.queue.stats().await.map(|s| s.depth).unwrap_or(0);
        info!(backlog = depth, "uplink connected");
        // Birth: the will says offline, this says online. Not a queue row.
        if self
            .client
            .try_publish(self.agent_state, QoS::AtLeastOnce, true, "online")
            .is_ok()
        {
            self.unsent.push_back(None);
        }
        let mut committed = self.queue.committed();
        let mut draining_since: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = self.fill(acked).await {
                warn!(error = %Chain(&e), "cannot read the uplink queue");
            }
            if cancel.is_cancelled() {
                let since = *draining_since.get_or_insert_with(tokio::time::Instant::now);
                let idle = self.unsent.is_empty()
                    && self.inflight_len == 0
                    && self.buffer.is_empty()
                    && self.exhausted;
                if idle || since.elapsed() >= DRAIN_DEADLINE {
                    self.finish_acks(acked).await;
                    let _ = self.client.try_disconnect();
                    if !idle {
                        info!(
                            unacknowledged = self.inflight_len + self.unsent.len(),
                            "shutdown: unacknowledged rows stay queued"
                        );
                    }
                    return Outcome::Stopped;
                }
            }
            let acking = self.acking.is_some();
            let drain_tick = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                ev = self.eventloop.poll() => match ev {
                    Ok(ev) => self.on_event(ev, acked),
                    Err(e) => {
                        self.finish_acks(acked).await;
                        return Outcome::Failed(e);
                    }
                },
                res = async { match self.acking.as_mut() { Some(f) => f.await, None => Ok(()) } }, if acking => {
                    self.acking = None;
                    let ids = std::mem::take(&mut self.acking_ids);
                    match res {
                        // Deleted: these ids can never be fetched again.
                        Ok(()) => for id in ids { acked.remove(&id); },
                        Err(e) => warn!(error = %Chain(&e), rows = ids.len(), "cannot delete acknowledged rows; they may be sent again"),
                    }
                },
                r = committed.changed(), if self.exhausted && self.buffer.is_empty() => {
                    if r.is_ok() { self.exhausted = false; }
                },
                () = cancel.cancelled(), if draining_since.is_none() => {},
                () = drain_tick, if draining_since.is_some() => {},
            }
            self.start_ack(acked);
        }
    }

    /// Rows that could be sent again after a crash: handed over, in flight, or acknowledged
    /// but not yet deleted. Bounded by [`WINDOW`], which bounds the duplicates.
    fn outstanding(&self) -> usize {
        self.unsent.len() + self.inflight_len + self.to_ack.len() + self.acking_ids.len()
    }

    /// Hands rows to rumqttc while the window has room.
    async fn fill(&mut self, acked: &HashSet<i64>) -> Result<(), StoreError> {
        while self.outstanding() < WINDOW {
            if self.buffer.is_empty() {
                if self.exhausted {
                    return Ok(());
                }
                let rows = self.queue.fetch(self.cursor, WINDOW).await?;
                self.exhausted = rows.len() < WINDOW;
                for row in rows {
                    self.cursor = row.id;
                    // Acknowledged upstream, deletion still in progress: don't send again.
                    if !acked.contains(&row.id) {
                        self.buffer.push_back(row);
                    }
                }
                if self.buffer.is_empty() {
                    continue;
                }
            }
            let Some(row) = self.buffer.pop_front() else {
                continue;
            };
            let qos = match row.record.qos {
                0 => QoS::AtMostOnce,
                2 => QoS::ExactlyOnce,
                _ => QoS::AtLeastOnce,
            };
            let r = &row.record;
            if self
                .client
                .try_publish(r.topic.clone(), qos, r.retain, r.payload.clone())
                .is_err()
            {
                // The request channel is sized for the window; put it back and try later.
                self.buffer.push_front(row);
                return Ok(());
            }
            self.unsent.push_back(Some((row.id, row.record.qos)));
        }
        Ok(())
    }

    fn on_event(&mut self, ev: Event, acked: &mut HashSet<i64>) {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => match self.unsent.pop_front() {
                Some(Some((id, 0))) => self.ack(id, acked),
                Some(Some((id, _))) => {
                    self.inflight.entry(pkid).or_default().push_back(id);
                    self.inflight_len += 1;
                }
                Some(None) => {}
                None => debug!(pkid, "outgoing publish without a pending request"),
            },
            Event::Incoming(Packet::PubAck(ack)) => self.acknowledged(ack.pkid, acked),
            Event::Incoming(Packet::PubComp(comp)) => self.acknowledged(comp.pkid, acked),
            _ => {}
        }
    }

    fn acknowledged(&mut self, pkid: u16, acked: &mut HashSet<i64>) {
        let Some(fifo) = self.inflight.get_mut(&pkid) else {
            return;
        };
        let id = fifo.pop_front();
        if fifo.is_empty() {
            self.inflight.remove(&pkid);
        }
        if let Some(id) = id {
            self.inflight_len -= 1;
            self.ack(id, acked);
        }
    }

    fn ack(&mut self, id: i64, acked: &mut HashSet<i64>) {
        acked.insert(id);
        self.to_ack.push(id);
    }

    /// Starts deleting acknowledged rows if no deletion is running.
    fn start_ack(&mut self, _acked: &HashSet<i64>) {
        if self.acking.is_some() || self.to_ack.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.to_ack);
        self.acking_ids = ids.clone();
        let queue = self.queue.clone();
        self.acking = Some(Box::pin(async move { queue.ack(ids).await }));
    }

    /// Waits for running and pending deletions (used when the connection ends).
    async fn finish_acks(&mut self, acked: &mut HashSet<i64>) {
        if let Some(f) = self.acking.take() {
            let ids = std::mem::take(&mut self.acking_ids);
            if f.await.is_ok() {
                for id in ids {
                    acked.remove(&id);
                }
            }
        }
        if !self.to_ack.is_empty() {
            let ids = std::mem::take(&mut self.to_ack);
            if self.queue.ack(ids.clone()).await.is_ok() {
                for id in ids {
                    acked.remove(&id);
                }
            }
        }
    }
}
