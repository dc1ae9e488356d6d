//! [`Client`]: one connection's task state and its loop ([`serve`]); the module docs of
//! `conn` state the invariants.

use super::{connect, inbound};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::end::End;
use super::io::{Event, Io};
use super::outbound::Aliases;
use crate::broker::codec::{self, Packet, Protocol};
use crate::broker::engine::{Engine, Settings};
use crate::broker::message::Publication;
use crate::broker::session::Session;
use crate::broker::stats::BrokerStats;

/// What a connection knows of its listener.
#[derive(Debug)]
pub(in crate::broker) struct ListenerCtx {
    /// For logs: `mqtt://0.0.0.0:1883`, `wss://…`.
    pub name: String,
    /// Clients without checked credentials may connect (updated on reload).
    pub anonymous: AtomicBool,
}

impl ListenerCtx {
    pub fn anonymous(&self) -> bool {
        self.anonymous.load(Ordering::Relaxed)
    }
}

/// An acknowledgement waiting for the persistence file (or behind one that is).
#[derive(Debug)]
pub(super) struct PendingAck {
    pub(super) ticket: u64,
    pub(super) packet: Packet,
}

/// A connected client: everything its task owns.
pub(super) struct Client<T> {
    pub(super) io: Io<T>,
    pub(super) engine: Arc<Engine>,
    pub(super) settings: Arc<Settings>,
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) session: Arc<Session>,
    pub(super) client_id: Arc<str>,
    pub(super) username: Option<Arc<str>>,
    pub(super) protocol: Protocol,
    /// Keepalive in force (the client's, or the server keep alive we told it), seconds.
    pub(super) keepalive: u16,
    pub(super) last_input: Instant,
    /// Most QoS 1/2 messages in flight to the client.
    pub(super) window: usize,
    /// Largest packet the client accepts.
    pub(super) max_out: u32,
    /// Topic aliases the client set (index = alias - 1), allocated on first use.
    pub(super) aliases_in: Vec<Option<Arc<str>>>,
    /// Topic aliases the broker uses towards the client (MQTT 5, when it allows some).
    pub(super) aliases_out: Option<Box<Aliases>>,
    /// Whether reason strings and user properties may be sent (MQTT 5 request problem
    /// information).
    pub(super) problem_info: bool,
    pub(super) acks: VecDeque<PendingAck>,
    pub(super) will: Option<(Arc<Publication>, u32)>,
    /// Session expiry interval in force (MQTT 5 DISCONNECT may change it).
    pub(super) expiry: u32,
    /// The session had more to send than the output buffer took.
    pub(super) more: bool,
    /// Packets read and written since the counters were last added to the statistics.
    pub(super) packets_in: u64,
    pub(super) packets_out: u64,
}

/// Serves one accepted connection until it ends.
pub(in crate::broker) async fn serve<T>(
    engine: Arc<Engine>,
    listener: Arc<ListenerCtx>,
    stream: T,
    peer: SocketAddr,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("client", addr = %peer, client_id = tracing::field::Empty);
    async move {
        let io = Io::new(stream);
        // The handshake and the goodbye are boxed: they run once, and inline they would set
        // the size of every connection's future for its whole life (see `Accept::connection`).
        let handshake = connect::handshake(io, &engine, &listener, peer, &shutdown);
        let Some(mut client) = Box::pin(handshake).await else {
            return;
        };
        tracing::Span::current().record("client_id", &*client.client_id);
        let end = client.run(&shutdown).await;
        Box::pin(client.finish(end)).await;
    }
    .instrument(span)
    .await;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Client<T> {
    /// The main loop: send what the session has, then wait for input, a wake-up, output room,
    /// a commit, the keepalive deadline or shutdown.
    pub(super) async fn run(&mut self, shutdown: &CancellationToken) -> End {
        let session = self.session.clone();
        let store = self.engine.store.clone();
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        // One timer for the connection's life, moved only when it fires early.
        let timer = tokio::time::sleep_until(self.deadline().into());
        tokio::pin!(timer);
        // Packets that came in the same read as the CONNECT.
        if !self.io.input().is_empty() {
            if let Err(end) = self.on_input().await {
                return end;
            }
        }
        loop {
            // Created before the state is looked at, so no wake-up between the two is lost.
            let woken = session.wake.notified();
            tokio::pin!(woken);
            let mut committed = std::pin::pin!(store
                .as_ref()
                .filter(|_| !self.acks.is_empty())
                .map(|s| s.commits().notified()));
            self.release_acks();
            // Deliveries to this client wait behind its acknowledgements that wait for the
            // persistence file: a client never sees a message routed from its own publish
            // before that publish's PUBACK (Paho's client tests rely on it).
            let waiting_acks = !self.acks.is_empty();
            if !waiting_acks {
                if let Err(end) = self.refill() {
                    return end;
                }
            }
            let keepalive = self.keepalive > 0;
            let event = std::future::poll_fn(|cx| {
                self.io.poll_event(
                    cx,
                    stopping.as_mut(),
                    woken.as_mut(),
                    committed.as_mut().as_pin_mut().filter(|_| waiting_acks),
                    keepalive.then_some(timer.as_mut()),
                    self.more && !waiting_acks,
                )
            })
            .await;
            self.count();
            let step = match event {
                Event::Input => self.on_input().await,
                Event::Wake | Event::Drained | Event::Committed => Ok(()),
                Event::Timer if self.last_input.elapsed() >= self.keepalive_limit() => {
                    Err(End::KeepAlive)
                }
                Event::Timer => {
                    timer.as_mut().reset(self.deadline().into());
                    Ok(())
                }
                Event::Eof => Err(End::Closed),
                Event::Failed(e) => Err(End::Io(e)),
                Event::Shutdown => Err(End::Shutdown),
            };
            if let Err(end) = step {
                self.count();
                return end;
            }
        }
    }

    /// Adds what this connection read and wrote to the broker's statistics (in batches: the
    /// counters are shared by every connection).
    pub(super) fn count(&mut self) {
        let (read, written) = self.io.take_counts();
        let stats = &self.engine.stats;
        for (counter, n) in [
            (&stats.net_bytes_received, read),
            (&stats.net_bytes_sent, written),
            (
                &stats.packets_received,
                std::mem::take(&mut self.packets_in),
            ),
            (&stats.packets_sent, std::mem::take(&mut self.packets_out)),
        ] {
            if n > 0 {
                BrokerStats::add(counter, n);
            }
        }
    }

    pub(super) fn keepalive_limit(&self) -> Duration {
        // One and a half times the keepalive (MQTT-3.1.2-24).
        Duration::from_millis(u64::from(self.keepalive) * 1500)
    }

    /// When the client must have sent something (far away with keepalive 0: never looked at).
    pub(super) fn deadline(&self) -> Instant {
        let limit = if self.keepalive > 0 {
            self.keepalive_limit()
        } else {
            Duration::from_secs(86_400)
        };
        self.last_input + limit
    }

    /// Decodes and handles every complete packet read so far.
    pub(super) async fn on_input(&mut self) -> Result<(), End> {
        self.last_input = Instant::now();
        loop {
            let decoded = codec::decode(
                self.io.input(),
                Some(self.protocol),
                self.settings.max_packet_size,
            );
            match decoded {
                Ok(Some((packet, used))) => {
                    self.io.consume(used);
                    self.packets_in += 1;
                    if let Some(waiting) = self.handle(packet)? {
                        // Boxed: see `on_publish`.
                        Box::pin(self.publish_waiting(waiting)).await?;
                    }
                }
                Ok(None) => {
                    self.io.input_done();
                    return Ok(());
                }
                Err(e) => return Err(End::Malformed(e)),
            }
        }
    }

    /// Handles one packet; a publish may come back to be awaited (see `on_publish`).
    pub(super) fn handle(&mut self, packet: Packet) -> Result<Option<inbound::Waiting>, End> {
        let done = match packet {
            Packet::Publish(p) => return self.on_publish(p),
            Packet::PubAck(a) => self.on_puback(&a),
            Packet::PubRec(a) => self.on_pubrec(&a),
            Packet::PubRel(a) => self.on_pubrel(&a),
            Packet::PubComp(a) => self.on_pubcomp(&a),
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(&d),
            Packet::Auth(_) => Err(End::protocol(
                "AUTH without an authentication method in the CONNECT",
            )),
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(End::protocol("a packet only a server may send")),
        };
        done.map(|()| None)
    }

    /// Writes a packet (after any acknowledgement still waiting, to keep their order).
    pub(super) fn send(&mut self, packet: &Packet) {
        codec::encode(packet, self.protocol, self.io.output());
        self.packets_out += 1;
    }

    /// Sends an acknowledgement now, or after the store commits `ticket` (and after every
    /// acknowledgement already waiting).
    pub(super) fn ack(&mut self, packet: Packet, ticket: Option<u64>) {
        match (ticket, self.acks.back()) {
            (None, None) => self.send(&packet),
            (t, back) => {
                let ticket = t.unwrap_or(0).max(back.map_or(0, |b| b.ticket));
                self.acks.push_back(PendingAck { ticket, packet });
            }
        }
    }

    /// Sends the acknowledgements whose tickets are committed.
    pub(super) fn release_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let committed = self
            .engine
            .store
            .as_ref()
            .map_or(u64::MAX, |s| s.committed());
        while self.acks.front().is_some_and(|a| a.ticket <= committed) {
            if let Some(a) = self.acks.pop_front() {
                self.send(&a.packet);
            }
        }
        if self.acks.is_empty() && self.acks.capacity() > 16 {
            self.acks = VecDeque::new();
        }
    }
}
