//! One client's session: its subscriptions, the messages queued for it, its in-flight window
//! and its half-finished incoming QoS 2 exchanges. It outlives connections when the client
//! asked for a persistent session.
//!
//! Who touches it: the router pushes deliveries ([`Session::enqueue`]) from any publisher's
//! task; the connection that owns the session takes them out ([`State::next_to_send`]) and
//! settles acknowledgements. Everything is under one mutex, held for a few pointer moves.
//!
//! Invariants:
//! - `owner` names the connection that may act for the session; a connection whose id is not
//!   the owner (it was taken over) changes nothing, so a takeover never races with the old
//!   connection's last packets;
//! - the queue is bounded by `max_queued_messages` and `max_queued_bytes`: a delivery that does
//!   not fit is refused (the caller counts and logs it), never silently lost;
//! - messages leave the queue in the order they entered it (per session, so per topic), and
//!   in-flight messages are resent in their original order (MQTT-4.6.0-1);
//! - every QoS 1/2 delivery to a persistent session is written to the persistence file when it
//!   is queued and deleted when it is acknowledged (see `persist`).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::Notify;

use super::codec::{Protocol, QoS};
use super::message::Delivery;
use super::persist::{Store, StoredEntry};
use super::router::{SubOpts, Subscriber};

/// A subscription as the session keeps it (the router has the same, indexed by filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subscription {
    pub opts: SubOpts,
    /// MQTT 5 retain handling (0: send retained, 1: only for a new subscription, 2: never).
    pub retain_handling: u8,
}

/// Where an in-flight message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// QoS 1 PUBLISH sent, waiting for PUBACK; or QoS 2 PUBLISH sent, waiting for PUBREC.
    Published,
    /// QoS 2 PUBREL sent, waiting for PUBCOMP.
    Released,
}

/// A message sent and not yet acknowledged.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    pub packet_id: NonZeroU16,
    pub delivery: Delivery,
    pub stage: Stage,
}

/// Why a delivery was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `max_queued_messages` or `max_queued_bytes` reached.
    QueueFull,
    /// QoS 0 for a disconnected client (kept only with `queue_qos0_messages`).
    Offline,
}

/// The queue bounds in force (from the broker section; replaced on reload).
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: Option<u64>,
    pub queue_qos0: bool,
}

/// A session's state, under [`Session::lock`].
#[derive(Debug)]
pub(super) struct State {
    /// The connection acting for the session (0: none, the client is away).
    pub owner: u64,
    pub username: Option<Arc<str>>,
    pub protocol: Protocol,
    /// Session expiry interval in seconds (MQTT 5 semantics: 0 ends with the connection,
    /// `u32::MAX` never).
    pub expiry: u32,
    /// Subscriptions by the filter the client sent (with any `$share/{group}/`).
    pub subs: HashMap<Box<str>, Subscription>,
    pub queue: VecDeque<Delivery>,
    queued_bytes: u64,
    pub inflight: VecDeque<InFlight>,
    /// Packet ids of incoming QoS 2 messages waiting for PUBREL.
    pub qos2_in: Vec<u16>,
    next_packet_id: u16,
    /// Next row number of the persisted queue.
    next_seq: u64,
    /// When the client went away (for expiry and `$SYS` counts).
    pub disconnected_at: Option<Instant>,
    /// Deliveries refused since the last drop log line.
    pub dropped: u64,
}

impl State {
    /// Persisted: outlives its connection and is written to the persistence file.
    pub fn persistent(&self) -> bool {
        self.expiry > 0
    }

    /// A free packet id for an outgoing QoS 1/2 message.
    fn packet_id(&mut self) -> NonZeroU16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            let Some(id) = NonZeroU16::new(self.next_packet_id) else {
                continue;
            };
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// Takes the next message to send, if the in-flight `window` allows: QoS 0 messages always
    /// go; QoS 1/2 ones get a packet id and enter the in-flight window. Expired messages are
    /// dropped on the way (and deleted from the persisted queue).
    pub fn next_to_send(
        &mut self,
        window: usize,
        now: Instant,
        store: Option<(&Store, &str)>,
    ) -> Option<(Delivery, Option<NonZeroU16>)> {
        loop {
            let head = self.queue.front()?;
            if head.qos != QoS::AtMostOnce && self.inflight.len() >= window {
                return None;
            }
            let d = self.queue.pop_front()?;
            self.queued_bytes = self.queued_bytes.saturating_sub(d.msg.size() as u64);
            if d.msg.expired(now) {
                if let (Some((store, id)), true) = (store, d.seq != 0) {
                    store.dequeue(id, d.seq);
                }
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                return Some((d, None));
            }
            let packet_id = self.packet_id();
            if let (Some((store, id)), true) = (store, d.seq != 0) {
                store.sent(id, d.seq, packet_id.get(), false);
            }
            self.inflight.push_back(InFlight {
                packet_id,
                delivery: d.clone(),
                stage: Stage::Published,
            });
            return Some((d, Some(packet_id)));
        }
    }

    /// Removes the in-flight message `packet_id` at `stage` (PUBACK, PUBCOMP; PUBREC for a
    /// refused QoS 2 message). `None` when there is none such.
    pub fn settle(&mut self, packet_id: u16, stage: Stage) -> Option<InFlight> {
        let at = self
            .inflight
            .iter()
            .position(|f| f.packet_id.get() == packet_id && f.stage == stage)?;
        self.inflight.remove(at)
    }

    /// PUBREC: the QoS 2 message `packet_id` is released (PUBREL follows). Whether it was in
    /// flight.
    pub fn release(&mut self, packet_id: u16) -> Option<&InFlight> {
        let f = self
            .inflight
            .iter_mut()
            .find(|f| f.packet_id.get() == packet_id)?;
        f.stage = Stage::Released;
        Some(f)
    }

    /// Puts back deliveries (and the in-flight window) read from the persistence file.
    pub fn restore(&mut self, entries: Vec<StoredEntry>) {
        for e in entries {
            self.next_seq = self.next_seq.max(e.delivery.seq);
            match e.sent {
                Some((packet_id, released)) => {
                    self.next_packet_id = self.next_packet_id.max(packet_id.get());
                    self.inflight.push_back(InFlight {
                        packet_id,
                        delivery: e.delivery,
                        stage: if released {
                            Stage::Released
                        } else {
                            Stage::Published
                        },
                    });
                }
                None => {
                    self.queued_bytes += e.delivery.msg.size() as u64;
                    self.queue.push_back(e.delivery);
                }
            }
        }
    }

    /// Messages queued (not in flight).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Bytes of the queued messages (topic and payload).
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Drops every queued and in-flight message (clean start, session end); returns how many.
    pub fn clear_messages(&mut self) -> usize {
        let n = self.queue.len() + self.inflight.len();
        self.queue.clear();
        self.inflight.clear();
        self.qos2_in.clear();
        self.queued_bytes = 0;
        n
    }
}

/// One client's session.
#[derive(Debug)]
pub(super) struct Session {
    pub client_id: Arc<str>,
    state: Mutex<State>,
    /// Woken when a delivery is queued or the session is taken over. Always
    /// `notify_waiters` (a takeover has two connections waiting for a moment): a connection
    /// creates its `notified()` future *before* it looks at the state, so nothing is missed.
    pub wake: Notify,
    online: AtomicBool,
    /// The user of the connection acting for it, for ACL read checks while routing.
    user: RwLock<Option<Arc<str>>>,
}

impl Session {
    pub fn new(client_id: Arc<str>, protocol: Protocol, expiry: u32) -> Arc<Self> {
        Arc::new(Self {
            client_id,
            state: Mutex::new(State {
                owner: 0,
                username: None,
                protocol,
                expiry,
                subs: HashMap::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                inflight: VecDeque::new(),
                qos2_in: Vec::new(),
                next_packet_id: 0,
                next_seq: 0,
                disconnected_at: Some(Instant::now()),
                dropped: 0,
            }),
            wake: Notify::new(),
            online: AtomicBool::new(false),
            user: RwLock::new(None),
        })
    }

    pub fn username(&self) -> Option<Arc<str>> {
        self.user
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_username(&self, user: Option<Arc<str>>) {
        *self.user.write().unwrap_or_else(PoisonError::into_inner) = user;
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Connection `owner` acts for the session from now on (0: nobody).
    pub fn set_owner(&self, state: &mut State, owner: u64) {
        state.owner = owner;
        state.disconnected_at = (owner == 0).then(Instant::now);
        self.online.store(owner != 0, Ordering::Relaxed);
        // Wakes a previous owner so that it notices it was taken over.
        self.wake.notify_waiters();
    }

    /// Queues a delivery (the router's call). Persistent sessions write QoS 1/2 deliveries to
    /// `store`; the returned ticket is the store sequence to wait for before acknowledging the
    /// publisher.
    pub fn enqueue(
        &self,
        mut d: Delivery,
        limits: &QueueLimits,
        store: Option<&Store>,
    ) -> Result<Option<u64>, Refused> {
        let mut st = self.lock();
        if st.owner == 0 && d.qos == QoS::AtMostOnce && !limits.queue_qos0 {
            return Err(Refused::Offline);
        }
        let size = d.msg.size() as u64;
        let over_bytes = limits
            .max_bytes
            .is_some_and(|max| st.queued_bytes + size > max);
        if st.queue.len() >= limits.max_messages || over_bytes {
            st.dropped += 1;
            return Err(Refused::QueueFull);
        }
        let mut ticket = None;
        if let (Some(store), true) = (store, st.persistent() && d.qos != QoS::AtMostOnce) {
            st.next_seq += 1;
            d.seq = st.next_seq;
            ticket = Some(store.enqueue(&self.client_id, &d));
        }
        st.queued_bytes += size;
        st.queue.push_back(d);
        let online = st.owner != 0;
        drop(st);
        if online {
            self.wake.notify_waiters();
        }
        Ok(ticket)
    }
}

/// The router's handle on a session: compared by identity.
#[derive(Debug, Clone)]
pub(super) struct SessionRef(pub Arc<Session>);

impl Subscriber for SessionRef {
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    fn available(&self) -> bool {
        self.0.is_online()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::codec::PublishProps;
    use crate::broker::message::{Publication, Publisher, SubIds};

    fn delivery(qos: QoS, payload: &'static [u8]) -> Delivery {
        Delivery {
            msg: Arc::new(Publication::new(
                "t".into(),
                Bytes::from_static(payload),
                qos,
                false,
                PublishProps::default(),
                Publisher::Agent,
            )),
            qos,
            retain: false,
            sub_ids: SubIds::None,
            seq: 0,
        }
    }

    fn limits(max_messages: usize, max_bytes: Option<u64>) -> QueueLimits {
        QueueLimits {
            max_messages,
            max_bytes,
            queue_qos0: false,
        }
    }

    #[test]
    fn the_window_holds_qos1_and_lets_qos0_pass_in_order() {
        let s = Session::new("c".into(), Protocol::V5, 0);
        s.set_owner(&mut s.lock(), 7);
        let l = limits(10, None);
        for (q, p) in [
            (QoS::AtLeastOnce, b"1" as &[u8]),
            (QoS::AtLeastOnce, b"2"),
            (QoS::AtMostOnce, b"3"),
        ] {
            s.enqueue(delivery(q, p), &l, None).expect("queued");
        }
        let mut st = s.lock();
        let now = Instant::now();
        let (d, id1) = st.next_to_send(1, now, None).expect("first");
        assert_eq!(&d.msg.payload[..], b"1");
        assert!(id1.is_some());
        assert!(
            st.next_to_send(1, now, None).is_none(),
            "window of 1 is full, and the QoS 0 message waits its turn behind the second"
        );
        let id = id1.expect("id").get();
        assert!(st.settle(id, Stage::Published).is_some());
        assert!(st.settle(id, Stage::Published).is_none(), "settled once");
        let (d, _) = st.next_to_send(1, now, None).expect("second");
        assert_eq!(&d.msg.payload[..], b"2");
        let (d, id) = st.next_to_send(1, now, None).expect("QoS 0 needs no room in the window");
        assert_eq!((&d.msg.payload[..], id), (&b"3"[..], None));
    }

    #[test]
    fn queues_are_bounded_by_count_and_bytes_and_offline_qos0_is_refused() {
        let s = Session::new("c".into(), Protocol::V311, u32::MAX);
        let l = limits(2, Some(5));
        assert_eq!(
            s.enqueue(delivery(QoS::AtMostOnce, b"x"), &l, None),
            Err(Refused::Offline)
        );
        s.enqueue(delivery(QoS::AtLeastOnce, b"abc"), &l, None)
            .expect("fits");
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce, b"abc"), &l, None),
            Err(Refused::QueueFull),
            "over max_queued_bytes (topic + payload)"
        );
        let l = limits(1, None);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce, b""), &l, None),
            Err(Refused::QueueFull)
        );
        assert_eq!(s.lock().dropped, 2);
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let s = Session::new("c".into(), Protocol::V5, 0);
        let mut st = s.lock();
        st.next_packet_id = u16::MAX - 1;
        let a = st.packet_id();
        assert_eq!(a.get(), u16::MAX);
        st.inflight.push_back(InFlight {
            packet_id: NonZeroU16::MIN,
            delivery: delivery(QoS::AtLeastOnce, b""),
            stage: Stage::Published,
        });
        assert_eq!(st.packet_id().get(), 2, "wraps past 0 and the id in flight");
    }
}
