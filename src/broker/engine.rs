//! The engine's shared state and the operations every connection and the agent use: routing a
//! message to its subscribers, retained messages, sessions (open, take over, end), wills and
//! the in-process subscribers.
//!
//! Invariants:
//! - a message passes, in this order: the ACL (the caller's check), the uplink [`Tap`] (which
//!   may refuse it), the in-process subscribers, the retained store, the sessions whose
//!   subscriptions match; so nothing the ACL or the tap refused reaches anyone;
//! - each session gets one copy of a message, at the highest QoS of its matching
//!   subscriptions, with every matching subscription identifier (MQTT-3.3.4-2/3/5), and only
//!   messages its user may read (the ACL's `read` rules);
//! - one client id, one session: opening a session for a client id that is connected takes it
//!   over at once under the sessions lock (the old connection is told and changes nothing
//!   after that), so a reconnect never fails however fast it follows;
//! - a will is published exactly once: when its connection ends without a normal DISCONNECT,
//!   after its delay, unless the client reconnected first; at the latest when its session ends
//!   (MQTT-3.1.3-9, 3.1.2-8);
//! - lock order: sessions map → session state; the router and retained locks are never held
//!   while a session's state is locked by the same thread for longer than one call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::access::Access;
use super::codec::{Protocol, QoS};
use super::message::{Delivery, Message, Publication, Publisher, SubIds};
use super::persist::{SessionRow, Store, StoredWill, SubRow};
use super::ratelog::RateLimit;
use super::retain::Retained;
use super::router::{Match, Router, SubOpts};
use super::session::{QueueLimits, Refused, Session, SessionRef, Subscription};
use super::stats::BrokerStats;
use super::tap::{Tap, TapError};
use super::timers::{Timer, Timers};
use crate::topics;

/// The limits in force (the broker section's; replaced on reload).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub max_packet_size: u32,
    pub max_inflight: u16,
    pub max_keepalive: u16,
    pub max_topic_alias: u16,
    pub queue: QueueLimits,
    /// Lifetime of "forever" sessions after their client left.
    pub persistent_client_expiration: Option<Duration>,
    pub connection_messages: bool,
    pub max_connections: Option<u32>,
    pub tcp_nodelay: bool,
}

/// An in-process subscription (see [`super::Broker::subscribe`]).
struct LocalSub {
    filter: String,
    tx: mpsc::Sender<Message>,
}

/// What happens to the will of a connection that ended.
#[derive(Debug)]
pub(super) enum WillAction {
    /// Publish it (after its delay in seconds).
    Publish(Arc<Publication>, u32),
    /// Discard it (normal DISCONNECT, or there was none).
    Drop,
}

/// What routing a message did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Routed {
    /// Sessions that got a copy.
    pub delivered: usize,
    /// Store ticket to wait for before acknowledging the publisher (a persistent session
    /// queued it, or it is a retained message of a client).
    pub ticket: Option<u64>,
}

/// The client of a connection, as the status and logs show it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub addr: Option<SocketAddr>,
    pub username: Option<String>,
    /// `mqttv31`, `mqttv311` or `mqttv5`.
    pub protocol: &'static str,
    pub listener: String,
    pub keepalive: u16,
    pub clean_start: bool,
    pub connected_at: std::time::SystemTime,
    pub subscriptions: Vec<String>,
    pub queued: usize,
    pub inflight: usize,
}

/// What the engine shares between its connections and the agent.
pub(super) struct Engine {
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    router: RwLock<Router<SessionRef>>,
    retained: RwLock<Retained<Arc<Publication>>>,
    settings: RwLock<Arc<Settings>>,
    access: RwLock<Arc<Access>>,
    tap: Arc<dyn Tap>,
    local: RwLock<Vec<LocalSub>>,
    pub stats: Arc<BrokerStats>,
    pub store: Option<Store>,
    pub timers: Timers,
    /// Wills waiting for their delay, by client id.
    wills: Mutex<HashMap<Arc<str>, Arc<Publication>>>,
    /// Connected clients' details, by connection id (for the status page and `$SYS`).
    clients: Mutex<HashMap<u64, ClientInfo>>,
    next_conn: AtomicU64,
    connected: AtomicUsize,
    drop_log: RateLimit,
}

thread_local! {
    /// Reused per thread by [`Engine::route`]: no allocation per message.
    static MATCHES: RefCell<Vec<Match<SessionRef>>> = const { RefCell::new(Vec::new()) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The session lifetime of a "never expires" session, with `persistent_client_expiration`.
fn lifetime(expiry: u32, settings: &Settings) -> Option<Duration> {
    match (expiry, settings.persistent_client_expiration) {
        (u32::MAX, cap) => cap,
        (secs, Some(cap)) => Some(Duration::from_secs(u64::from(secs)).min(cap)),
        (secs, None) => Some(Duration::from_secs(u64::from(secs))),
    }
}

impl Engine {
    pub fn new(
        settings: Settings,
        access: Access,
        tap: Arc<dyn Tap>,
        store: Option<Store>,
        stats: Arc<BrokerStats>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sessions: Mutex::new(HashMap::new()),
            router: RwLock::new(Router::default()),
            retained: RwLock::new(Retained::default()),
            settings: RwLock::new(Arc::new(settings)),
            access: RwLock::new(Arc::new(access)),
            tap,
            local: RwLock::new(Vec::new()),
            stats,
            store,
            timers: Timers::default(),
            wills: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
            drop_log: RateLimit::new(5, Duration::from_secs(10)),
        })
    }

    pub fn settings(&self) -> Arc<Settings> {
        read(&self.settings).clone()
    }

    pub fn set_settings(&self, settings: Settings) {
        *write(&self.settings) = Arc::new(settings);
    }

    pub fn access(&self) -> Arc<Access> {
        read(&self.access).clone()
    }

    pub fn set_access(&self, access: Access) {
        *write(&self.access) = Arc::new(access);
    }

    /// A new connection id (never 0).
    pub fn connection_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    // ---- publishing ----

    /// Passes a message that the ACL allowed through the tap, the in-process subscribers, the
    /// retained store and the sessions.
    pub async fn publish(&self, p: Arc<Publication>) -> Result<Routed, TapError> {
        let tapped = !matches!(p.from, Publisher::System) && self.tap.wants(&p.topic);
        if tapped {
            self.tap.on_message(&p.to_message()).await?;
        }
        let mut routed = self.publish_tapped(p).await;
        routed.delivered += usize::from(tapped);
        Ok(routed)
    }

    /// [`Engine::publish`] without waiting, when nothing on the way can make it wait: the tap
    /// does not want the topic and no in-process subscriber matches it (the usual case for a
    /// LAN client's publish). Otherwise gives the publication back, untouched, for
    /// [`Engine::publish`]. Why: a connection task's future is as large as the deepest await
    /// it can hold; keeping the waiting path behind a box keeps every idle client small.
    pub fn try_publish(&self, p: Arc<Publication>) -> Result<Routed, Arc<Publication>> {
        if !matches!(p.from, Publisher::System) && self.tap.wants(&p.topic) {
            return Err(p);
        }
        {
            let local = read(&self.local);
            if local.iter().any(|s| topics::matches(&s.filter, &p.topic)) {
                return Err(p);
            }
        }
        Ok(self.distribute(&p))
    }

    /// The in-process subscribers and the network: for messages the tap has already seen.
    pub async fn publish_tapped(&self, p: Arc<Publication>) -> Routed {
        let local = self.deliver_local(&p).await;
        let mut routed = self.distribute(&p);
        routed.delivered += local;
        routed
    }

    /// The tap of a batch of agent messages (one durable commit for all).
    pub async fn tap_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        if msgs.iter().any(|m| self.tap.wants(&m.topic)) {
            self.tap.on_batch(msgs).await?;
        }
        Ok(())
    }

    /// Retained store and sessions.
    fn distribute(&self, p: &Arc<Publication>) -> Routed {
        let mut routed = Routed::default();
        if p.retain {
            routed.ticket = self.retain(p);
        }
        let (delivered, ticket) = self.route(p);
        routed.delivered = delivered;
        routed.ticket = routed.ticket.max(ticket);
        routed
    }

    fn retain(&self, p: &Arc<Publication>) -> Option<u64> {
        let cleared = p.payload.is_empty();
        {
            let mut retained = write(&self.retained);
            if cleared {
                retained.clear(&p.topic);
            } else {
                retained.set(&p.topic, p.clone());
            }
        }
        let store = self.store.as_ref()?;
        let lazy = matches!(p.from, Publisher::Agent | Publisher::System);
        if matches!(p.from, Publisher::System) {
            return None;
        }
        let msg = (!cleared).then(|| p.clone());
        let ticket = store.retain(p.topic.clone(), msg, lazy);
        (!lazy).then_some(ticket)
    }

    /// Queues `p` for every session with a matching subscription.
    fn route(&self, p: &Arc<Publication>) -> (usize, Option<u64>) {
        MATCHES.with(|cell| {
            let Ok(mut matches) = cell.try_borrow_mut() else {
                // Re-entered on this thread (cannot happen: routing does not route); be safe.
                return self.route_into(p, &mut Vec::new());
            };
            let result = self.route_into(p, &mut matches);
            matches.clear();
            if matches.capacity() > 1024 {
                matches.shrink_to(64);
            }
            result
        })
    }

    fn route_into(
        &self,
        p: &Arc<Publication>,
        matches: &mut Vec<Match<SessionRef>>,
    ) -> (usize, Option<u64>) {
        read(&self.router).matches(&p.topic, matches);
        if matches.is_empty() {
            return (0, None);
        }
        let publisher = p.from.client_id();
        // No-local: a client's own (non-shared) subscriptions never get its messages back.
        if let Some(me) = publisher {
            matches
                .retain(|m| !(m.opts.no_local && !m.shared && *m.subscriber.0.client_id == **me));
        }
        matches.sort_unstable_by_key(|m| Arc::as_ptr(&m.subscriber.0) as usize);
        let settings = self.settings();
        let access = self.access();
        let mut delivered = 0;
        let mut ticket = None;
        let mut i = 0;
        while i < matches.len() {
            let session = matches[i].subscriber.0.clone();
            let mut qos = 0u8;
            let mut rap = false;
            let mut sub_ids = SubIds::None;
            while i < matches.len() && Arc::ptr_eq(&matches[i].subscriber.0, &session) {
                let o = matches[i].opts;
                qos = qos.max(o.qos);
                rap |= o.retain_as_published;
                sub_ids.add(o.sub_id);
                i += 1;
            }
            if access.has_acl() {
                let user = session.username();
                if !access.may_read(&session.client_id, user.as_deref(), &p.topic) {
                    continue;
                }
            }
            let granted = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
            let d = Delivery {
                msg: p.clone(),
                qos: p.qos.min(granted),
                retain: rap && p.retain,
                sub_ids,
                seq: 0,
            };
            match session.enqueue(d, &settings.queue, self.store.as_ref()) {
                Ok(t) => {
                    delivered += 1;
                    ticket = ticket.max(t);
                }
                Err(refused) => self.dropped(&session, &p.topic, refused),
            }
        }
        (delivered, ticket)
    }

    fn dropped(&self, session: &Session, topic: &str, why: Refused) {
        match why {
            Refused::Offline => BrokerStats::bump(&self.stats.dropped_other),
            Refused::QueueFull => {
                BrokerStats::bump(&self.stats.dropped_queue_full);
                if let Some(suppressed) = self.drop_log.admit() {
                    let dropped = std::mem::take(&mut session.lock().dropped);
                    warn!(client_id = %session.client_id, topic, dropped, suppressed,
                        "client queue full (max_queued_messages / max_queued_bytes): messages dropped");
                }
            }
        }
    }

    // ---- in-process subscribers ----

    pub fn subscribe_local(&self, filter: &str, capacity: usize) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut local = write(&self.local);
        local.retain(|s| !s.tx.is_closed());
        local.push(LocalSub {
            filter: filter.to_owned(),
            tx,
        });
        rx
    }

    /// In-process subscribers get the message, with backpressure (a full channel waits).
    /// Returns how many took it.
    async fn deliver_local(&self, p: &Publication) -> usize {
        let targets: Vec<mpsc::Sender<Message>> = {
            let local = read(&self.local);
            if local.is_empty() {
                return 0;
            }
            local
                .iter()
                .filter(|s| topics::matches(&s.filter, &p.topic))
                .map(|s| s.tx.clone())
                .collect()
        };
        if targets.is_empty() {
            return 0;
        }
        let count = targets.len();
        let msg = p.to_message();
        let mut closed = false;
        for tx in targets {
            closed |= tx.send(msg.clone()).await.is_err();
        }
        if closed {
            write(&self.local).retain(|s| !s.tx.is_closed());
        }
        count
    }

    /// In-process subscriptions alive now.
    pub fn local_subscriptions(&self) -> usize {
        let mut local = write(&self.local);
        local.retain(|s| !s.tx.is_closed());
        local.len()
    }

    // ---- subscriptions ----

    /// Adds a subscription of `session` (the filter as the client sent it, already checked)
    /// and queues the retained messages it asks for. Returns the store ticket to wait for.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        share: Option<(&str, &str)>,
        sub: Subscription,
    ) -> Option<u64> {
        let (group, plain) = match share {
            Some((group, plain)) => (Some(group), plain),
            None => (None, filter),
        };
        let is_new = {
            let mut st = session.lock();
            st.subs.insert(filter.into(), sub.clone()).is_none()
        };
        write(&self.router).subscribe(plain, group, &SessionRef(session.clone()), sub.opts);
        let ticket = self.persist_sub(session, filter, &sub);
        // Retained messages: never for shared subscriptions (MQTT-3.8.4-... §4.8.2).
        let send = match sub.retain_handling {
            0 => true,
            1 => is_new,
            _ => false,
        };
        if send && group.is_none() {
            self.send_retained(session, plain, sub.opts);
        }
        ticket
    }

    fn persist_sub(&self, session: &Arc<Session>, filter: &str, sub: &Subscription) -> Option<u64> {
        let store = self.store.as_ref()?;
        if !session.lock().persistent() {
            return None;
        }
        Some(store.subscribe(
            &session.client_id,
            SubRow {
                filter: filter.to_owned(),
                qos: sub.opts.qos,
                no_local: sub.opts.no_local,
                retain_as_published: sub.opts.retain_as_published,
                retain_handling: sub.retain_handling,
                sub_id: sub.opts.sub_id,
            },
        ))
    }

    fn send_retained(&self, session: &Arc<Session>, filter: &str, opts: SubOpts) {
        let mut found = Vec::new();
        read(&self.retained).matching(filter, &mut found);
        if found.is_empty() {
            return;
        }
        let now = Instant::now();
        let settings = self.settings();
        let access = self.access();
        let user = session.username();
        let granted = QoS::from_u8(opts.qos).unwrap_or(QoS::AtMostOnce);
        // A subscription's retained messages may exceed the normal queue bound by design:
        // they are what the client asked for, once (Mosquitto sends them all too).
        let limits = QueueLimits {
            max_messages: settings.queue.max_messages.max(found.len() + 1),
            max_bytes: None,
            queue_qos0: true,
        };
        found.sort_by(|a, b| a.topic.cmp(&b.topic));
        for msg in found {
            if msg.expired(now) {
                continue;
            }
            if access.has_acl() && !access.may_read(&session.client_id, user.as_deref(), &msg.topic)
            {
                continue;
            }
            let mut sub_ids = SubIds::None;
            sub_ids.add(opts.sub_id);
            let d = Delivery {
                qos: msg.qos.min(granted),
                msg,
                retain: true,
                sub_ids,
                seq: 0,
            };
            if let Err(refused) = session.enqueue(d, &limits, self.store.as_ref()) {
                self.dropped(session, filter, refused);
            }
        }
    }

    /// Removes a subscription; whether it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> (bool, Option<u64>) {
        let existed = session.lock().subs.remove(filter).is_some();
        if !existed {
            return (false, None);
        }
        let (group, plain) = split_share(filter);
        write(&self.router).unsubscribe(plain, group, &SessionRef(session.clone()));
        let ticket = match (&self.store, session.lock().persistent()) {
            (Some(store), true) => Some(store.unsubscribe(&session.client_id, filter)),
            _ => None,
        };
        (true, ticket)
    }

    // ---- sessions ----

    /// Opens the session of `client_id` for connection `conn`: takes over a connected one,
    /// resumes a stored one (`clean_start` false), or starts a new one. Returns the session and
    /// whether one was resumed.
    pub fn open_session(
        &self,
        client_id: &Arc<str>,
        clean_start: bool,
        protocol: Protocol,
        expiry: u32,
        username: Option<Arc<str>>,
        conn: u64,
    ) -> (Arc<Session>, bool) {
        let mut sessions = lock(&self.sessions);
        // A will waiting for its delay is not sent: the client is back (MQTT-3.1.3-9).
        if lock(&self.wills).remove(client_id).is_some() {
            if let Some(store) = &self.store {
                store.will(client_id, None);
            }
        }
        let (session, present) = match sessions.get(client_id).cloned() {
            Some(old) if clean_start => {
                self.take_away(&old);
                self.end_session_locked(&mut sessions, &old);
                (Session::new(client_id.clone(), protocol, expiry), false)
            }
            Some(old) => {
                self.take_away(&old);
                (old, true)
            }
            None => (Session::new(client_id.clone(), protocol, expiry), false),
        };
        sessions.insert(client_id.clone(), session.clone());
        drop(sessions);
        {
            let mut st = session.lock();
            st.protocol = protocol;
            st.expiry = expiry;
            st.username = username.clone();
            session.set_owner(&mut st, conn);
        }
        session.set_username(username.clone());
        if let Some(store) = &self.store {
            if expiry > 0 {
                store.session(SessionRow {
                    client_id: client_id.clone(),
                    username: username.as_deref().map(str::to_owned),
                    protocol: protocol.level(),
                    expiry,
                    disconnected_ms: None,
                });
            } else if present {
                // A stored session continued without persistence: forget the stored one.
                store.delete_session(client_id);
            }
        }
        (session, present)
    }

    /// Tells the connection acting for `session` (if any) that it has been taken over.
    fn take_away(&self, session: &Session) {
        let mut st = session.lock();
        if st.owner != 0 {
            session.set_owner(&mut st, 0);
        }
    }

    /// Connection `conn` of `session` ended; `expiry` is its session expiry at the end (an
    /// MQTT 5 DISCONNECT may change it).
    pub async fn closed(&self, session: &Arc<Session>, conn: u64, will: WillAction, expiry: u32) {
        let owner = {
            let mut st = session.lock();
            let owner = st.owner == conn;
            if owner {
                st.expiry = expiry;
                session.set_owner(&mut st, 0);
            }
            owner
        };
        if !owner {
            // Taken over. The will goes now when it has no delay, or when the new connection
            // started a new session (the old one ended); a delayed will of a session that
            // continues is not sent: the client is back (MQTT 5 §3.1.3.2.2).
            if let WillAction::Publish(msg, delay) = will {
                let continued = lock(&self.sessions)
                    .get(&session.client_id)
                    .is_some_and(|s| Arc::ptr_eq(s, session));
                if delay == 0 || !continued {
                    self.publish_will(msg).await;
                }
            }
            return;
        }
        let settings = self.settings();
        let lifetime = lifetime(expiry, &settings);
        match will {
            WillAction::Publish(msg, 0) => self.publish_will(msg).await,
            WillAction::Publish(msg, delay) => {
                let delay = Duration::from_secs(u64::from(delay));
                lock(&self.wills).insert(session.client_id.clone(), msg);
                // When the session ends first, the will goes with it (below, or at expiry).
                if lifetime.is_none_or(|l| l > delay) {
                    self.timers.schedule(
                        Instant::now() + delay,
                        Timer::Will(session.client_id.clone()),
                    );
                }
            }
            WillAction::Drop => {
                if let Some(store) = &self.store {
                    store.will(&session.client_id, None);
                }
            }
        }
        match lifetime {
            Some(l) if l.is_zero() => self.end_session(session).await,
            Some(l) => {
                self.persist_disconnect(session, expiry);
                self.timers
                    .schedule(Instant::now() + l, Timer::Expire(Arc::downgrade(session)));
            }
            None => self.persist_disconnect(session, expiry),
        }
    }

    fn persist_disconnect(&self, session: &Session, expiry: u32) {
        if let Some(store) = &self.store {
            store.disconnected(&session.client_id, super::message::now_ms(), expiry);
        }
    }

    /// Ends `session`: its subscriptions, queue and stored state go; a will waiting for its
    /// delay is published now.
    pub async fn end_session(&self, session: &Arc<Session>) {
        {
            let mut sessions = lock(&self.sessions);
            self.end_session_locked(&mut sessions, session);
        }
        let will = lock(&self.wills).remove(&session.client_id);
        if let Some(msg) = will {
            self.publish_will(msg).await;
        }
    }

    fn end_session_locked(
        &self,
        sessions: &mut HashMap<Arc<str>, Arc<Session>>,
        session: &Arc<Session>,
    ) {
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
        let filters: Vec<Box<str>> = {
            let mut st = session.lock();
            st.clear_messages();
            st.subs.drain().map(|(f, _)| f).collect()
        };
        if !filters.is_empty() {
            let mut router = write(&self.router);
            let me = SessionRef(session.clone());
            for f in &filters {
                let (group, plain) = split_share(f);
                router.unsubscribe(plain, group, &me);
            }
        }
        if let Some(store) = &self.store {
            store.delete_session(&session.client_id);
        }
    }

    /// A disconnected session whose lifetime ended (the timer's call).
    pub async fn expire(&self, session: &Arc<Session>) {
        let expired = {
            let st = session.lock();
            st.owner == 0
                && st.disconnected_at.is_some_and(|at| {
                    lifetime(st.expiry, &self.settings())
                        .is_some_and(|l| at.elapsed() + Duration::from_millis(5) >= l)
                })
        };
        if expired {
            BrokerStats::bump(&self.stats.sessions_expired);
            info!(client_id = %session.client_id, "session expired");
            self.end_session(session).await;
        }
    }

    /// The will of `client_id` after its delay (the timer's call).
    pub async fn will_due(&self, client_id: &Arc<str>) {
        let will = lock(&self.wills).remove(client_id);
        if let Some(msg) = will {
            self.publish_will(msg).await;
        }
    }

    pub async fn publish_will(&self, msg: Arc<Publication>) {
        let client_id = msg.from.client_id().cloned();
        let topic = msg.topic.clone();
        if let Err(e) = self.publish(msg).await {
            BrokerStats::bump(&self.stats.tap_refused);
            warn!(client_id = ?client_id.as_deref(), topic = %topic, error = %e,
                "will message not accepted by the uplink queue");
        }
        if let (Some(store), Some(id)) = (&self.store, client_id) {
            store.will(&id, None);
        }
    }

    /// Stores the will of a connected client (so a crash still publishes it after restart).
    pub fn keep_will(&self, client_id: &Arc<str>, msg: &Arc<Publication>, delay: u32) {
        if let Some(store) = &self.store {
            store.will(
                client_id,
                Some(StoredWill {
                    msg: msg.clone(),
                    delay,
                }),
            );
        }
    }

    // ---- restore at start ----

    /// Puts a stored session back (disconnected), with its subscriptions and messages.
    pub fn restore_session(&self, stored: super::persist::StoredSession, now_ms: i64) {
        let row = stored.row;
        let protocol = match row.protocol {
            3 => Protocol::V31,
            5 => Protocol::V5,
            _ => Protocol::V311,
        };
        let session = Session::new(row.client_id.clone(), protocol, row.expiry);
        {
            let mut st = session.lock();
            st.username = row.username.as_deref().map(Into::into);
            st.qos2_in = stored.qos2_in;
            st.restore(stored.entries);
        }
        session.set_username(row.username.as_deref().map(Into::into));
        {
            let mut router = write(&self.router);
            let mut st = session.lock();
            for s in stored.subs {
                let opts = SubOpts {
                    qos: s.qos,
                    no_local: s.no_local,
                    retain_as_published: s.retain_as_published,
                    sub_id: s.sub_id,
                };
                let (group, plain) = split_share(&s.filter);
                router.subscribe(plain, group, &SessionRef(session.clone()), opts);
                st.subs.insert(
                    s.filter.as_str().into(),
                    Subscription {
                        opts,
                        retain_handling: s.retain_handling,
                    },
                );
            }
        }
        let away = row.disconnected_ms.map_or(Duration::ZERO, |at| {
            Duration::from_millis(u64::try_from(now_ms - at).unwrap_or(0))
        });
        if let Some(l) = lifetime(row.expiry, &self.settings()) {
            let left = l.saturating_sub(away);
            self.timers.schedule(
                Instant::now() + left,
                Timer::Expire(Arc::downgrade(&session)),
            );
        }
        lock(&self.sessions).insert(row.client_id, session);
    }

    /// A retained message read back from the file.
    pub fn restore_retained(&self, msg: Arc<Publication>) {
        write(&self.retained).set(&msg.topic.clone(), msg);
    }

    /// A will stored for a client that was connected when the broker stopped: it is due after
    /// its delay from now, unless the client comes back first.
    pub fn restore_will(&self, client_id: Arc<str>, msg: Arc<Publication>, delay: u32) {
        lock(&self.wills).insert(client_id.clone(), msg);
        self.timers.schedule(
            Instant::now() + Duration::from_secs(u64::from(delay)),
            Timer::Will(client_id),
        );
    }

    // ---- connections and figures ----

    /// Counts the connection of `client_id` in, unless `max_connections` is reached; a client
    /// taking over its own connected session is always let in (its old connection is leaving).
    pub fn admit_client(&self, client_id: &str) -> bool {
        if self.admit() {
            return true;
        }
        let taking_over = lock(&self.sessions)
            .get(client_id)
            .is_some_and(|s| s.is_online());
        if taking_over {
            self.connected.fetch_add(1, Ordering::Relaxed);
        }
        taking_over
    }

    /// Counts a connection in, unless `max_connections` is reached.
    fn admit(&self) -> bool {
        let max = self
            .settings()
            .max_connections
            .map_or(usize::MAX, |m| m as usize);
        let mut now = self.connected.load(Ordering::Relaxed);
        loop {
            if now >= max {
                return false;
            }
            match self.connected.compare_exchange_weak(
                now,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => now = actual,
            }
        }
    }

    pub fn release(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn client_connected(&self, conn: u64, info: ClientInfo) {
        lock(&self.clients).insert(conn, info);
    }

    pub fn client_gone(&self, conn: u64) {
        lock(&self.clients).remove(&conn);
    }

    /// The connected clients, with their subscriptions and queues now.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut list: Vec<ClientInfo> = lock(&self.clients).values().cloned().collect();
        let sessions = lock(&self.sessions);
        for c in &mut list {
            if let Some(s) = sessions.get(c.client_id.as_str()) {
                let st = s.lock();
                c.subscriptions = st.subs.keys().map(|k| k.to_string()).collect();
                c.subscriptions.sort();
                c.queued = st.queued();
                c.inflight = st.inflight.len();
            }
        }
        list.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        list
    }

    /// Sessions held, subscriptions, retained messages, shared groups, messages stored in
    /// queues (count and bytes).
    pub fn figures(&self) -> Figures {
        let (sessions, queued, queued_bytes) = {
            let sessions = lock(&self.sessions);
            let mut queued = 0;
            let mut bytes = 0;
            for s in sessions.values() {
                let st = s.lock();
                queued += st.queued() + st.inflight.len();
                bytes += st.queued_bytes();
            }
            (sessions.len(), queued, bytes)
        };
        let router = read(&self.router);
        let retained = read(&self.retained);
        Figures {
            sessions,
            subscriptions: router.len(),
            shared_groups: router.shared_groups(),
            retained: retained.len(),
            queued,
            queued_bytes,
        }
    }
}

/// Counts the engine computes on demand.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Figures {
    pub sessions: usize,
    pub subscriptions: usize,
    pub shared_groups: usize,
    pub retained: usize,
    pub queued: usize,
    pub queued_bytes: u64,
}

/// `$share/{group}/{filter}` → (`Some(group)`, `filter`); other filters unchanged.
pub(super) fn split_share(filter: &str) -> (Option<&str>, &str) {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or((None, filter), |(group, plain)| (Some(group), plain))
}

/// Small limits, no files: for unit tests of the broker's parts.
#[cfg(test)]
pub(super) fn test_settings() -> Settings {
    Settings {
        max_packet_size: 1024,
        max_inflight: 20,
        max_keepalive: 60,
        max_topic_alias: 10,
        queue: QueueLimits {
            max_messages: 10,
            max_bytes: None,
            queue_qos0: false,
        },
        persistent_client_expiration: None,
        connection_messages: true,
        max_connections: None,
        tcp_nodelay: false,
    }
}

/// An engine with [`test_settings`], no access files, no tap, no persistence.
#[cfg(test)]
pub(super) fn test_engine() -> Arc<Engine> {
    Engine::new(
        test_settings(),
        Access::new(None, None),
        Arc::new(crate::broker::NoTap),
        None,
        Arc::new(BrokerStats::new()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_split_into_group_and_filter() {
        assert_eq!(split_share("$share/g/a/#"), (Some("g"), "a/#"));
        assert_eq!(split_share("a/b"), (None, "a/b"));
        assert_eq!(split_share("$SYS/x"), (None, "$SYS/x"));
    }

    #[tokio::test]
    async fn dropped_in_process_subscribers_are_pruned_and_the_rest_still_receive() {
        let engine = test_engine();
        let mut kept = engine.subscribe_local("a/#", 4);
        // A command router resubscribing on every reload, 1,000 times.
        for _ in 0..1000 {
            drop(engine.subscribe_local("a/#", 4));
        }
        assert_eq!(engine.local_subscriptions(), 1);
        let mut again = engine.subscribe_local("a/b", 4);
        drop(engine.subscribe_local("a/b", 4));
        let msg = Message::agent("a/b".to_owned(), "1", crate::config::Qos::AtMostOnce, false);
        engine
            .publish(Arc::new(Publication::from_message(msg)))
            .await
            .expect("published");
        assert_eq!(kept.recv().await.map(|m| m.topic), Some("a/b".to_owned()));
        assert_eq!(again.recv().await.map(|m| m.topic), Some("a/b".to_owned()));
        assert_eq!(engine.local_subscriptions(), 2);
    }

    #[test]
    fn session_lifetimes_follow_expiry_and_the_persistent_cap() {
        let mut s = test_settings();
        assert_eq!(lifetime(0, &s), Some(Duration::ZERO));
        assert_eq!(lifetime(u32::MAX, &s), None);
        assert_eq!(lifetime(30, &s), Some(Duration::from_secs(30)));
        s.persistent_client_expiration = Some(Duration::from_secs(10));
        assert_eq!(lifetime(u32::MAX, &s), Some(Duration::from_secs(10)));
        assert_eq!(lifetime(30, &s), Some(Duration::from_secs(10)));
        assert_eq!(lifetime(5, &s), Some(Duration::from_secs(5)));
    }
}
