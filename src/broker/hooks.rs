//! The rmqtt hooks: where every client event passes through ferrule's rules.
//!
//! - CONNECT: [`Access::authenticate`] (anonymous policy per listener, password file, will
//!   topic ACL) and, on private TLS listeners, the check that the connection came from a TLS
//!   front ([`super::front`]). Refusals get a CONNACK with a reason code, never a silent close:
//!   MQTT 3.1.1 0x05 (not authorized) for every refusal, as Mosquitto sends; MQTT 5 0x86 (bad
//!   username or password) or 0x87 (not authorized).
//! - SUBSCRIBE: the ACL ([`super::acl`]); a refused filter gets SUBACK 0x80 / 0x87.
//! - PUBLISH: the ACL, then the uplink [`Tap`], then the in-process subscribers; a refused
//!   publish is dropped (3.1.1: still acknowledged, as Mosquitto does) or answered with reason
//!   0x87 (MQTT 5). So the in-process command subscription only ever sees what the ACL allowed.
//! - topic escaping in and out of rmqtt ([`super::escape`]), statistics, persistence of
//!   sessions, and Mosquitto-like connect/disconnect/refusal logs, rate-limited.
//!
//! Invariant: the ACL decision comes before the tap, and the tap before any subscriber, so a
//! message the ACL refuses is neither queued upstream nor delivered.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::codec::v5::{PublishAckReason, SubscribeAckReason};
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::session::Session;
use rmqtt::types::{
    AuthResult, ConnectInfo, FromType, Id, LastWill, Publish, PublishAclResult, Reason,
    SubscribeAclResult,
};
use rmqtt::utils::timestamp_millis;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::access::{Access, Credentials, Refusal};
use super::escape::{escape, unescape};
use super::front::FrontTable;
use super::message::{from_rmqtt, Message, Origin};
use super::persist::Store;
use super::ratelog::RateLimit;
use super::server::{Tap, TapError};
use super::sessions::{session_row, stored_subscription};
use super::stats::{publish_size, BrokerStats};
use crate::config::Qos;
use crate::topics;

/// How a listener reaches rmqtt.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    /// For logs: `mqtt://0.0.0.0:1883`, `mqtts://...`.
    pub name: String,
    /// Behind a TLS front (its rmqtt listener is private).
    pub fronted: bool,
}

/// An in-process subscription.
pub struct LocalSub {
    pub filter: String,
    pub tx: mpsc::Sender<Message>,
}

/// Rate limits of the per-client log lines.
pub struct Logs {
    connects: RateLimit,
    disconnects: RateLimit,
    refusals: RateLimit,
    denials: RateLimit,
    drops: RateLimit,
}

impl Default for Logs {
    fn default() -> Self {
        let window = Duration::from_secs(10);
        Self {
            connects: RateLimit::new(20, window),
            disconnects: RateLimit::new(20, window),
            refusals: RateLimit::new(10, window),
            denials: RateLimit::new(10, window),
            drops: RateLimit::new(5, window),
        }
    }
}

/// The broker state the hooks and the [`super::Broker`] share.
pub struct Core {
    pub scx: ServerContext,
    pub tap: Arc<dyn Tap>,
    pub subs: RwLock<Vec<LocalSub>>,
    pub access: Arc<Access>,
    pub stats: Arc<BrokerStats>,
    pub fronts: Arc<FrontTable>,
    pub listeners: Vec<ListenerInfo>,
    pub store: Option<Store>,
    /// Client ids with a session in the persistence file (so a clean connect deletes nothing
    /// when there is nothing stored).
    pub stored: Mutex<HashSet<String>>,
    pub max_queued: u32,
    pub logs: Logs,
}

impl Core {
    /// Tap, then in-process subscribers. Network subscribers are served by rmqtt afterwards.
    pub async fn accept(&self, msg: &Message) -> Result<(), TapError> {
        self.tap.on_message(msg).await?;
        self.deliver_local(msg).await;
        Ok(())
    }

    pub async fn deliver_local(&self, msg: &Message) {
        let targets: Vec<mpsc::Sender<Message>> = {
            let subs = match self.subs.read() {
                Ok(subs) => subs,
                Err(poisoned) => poisoned.into_inner(),
            };
            subs.iter()
                .filter(|s| topics::matches(&s.filter, &msg.topic))
                .map(|s| s.tx.clone())
                .collect()
        };
        for tx in targets {
            // A closed receiver means its task ended (shutdown); nothing to deliver to.
            let _ = tx.send(msg.clone()).await;
        }
    }

    /// Listener index (0-based) of an rmqtt listener id.
    fn index(id: &Id) -> usize {
        usize::from(id.lid).saturating_sub(1)
    }

    /// The client's real address: behind a TLS front, the front knows it.
    pub fn peer(&self, id: &Id) -> Option<SocketAddr> {
        let fronted = self
            .listeners
            .get(Self::index(id))
            .is_some_and(|l| l.fronted);
        match (fronted, id.remote_addr) {
            (true, Some(addr)) => self.fronts.peer(addr.port()),
            (_, addr) => addr,
        }
    }

    fn listener_name(&self, id: &Id) -> &str {
        self.listeners
            .get(Self::index(id))
            .map_or("?", |l| l.name.as_str())
    }

    fn origin(&self, id: &Id) -> Origin {
        Origin::Client {
            client_id: id.client_id.to_string(),
            username: id.username.as_ref().map(|u| u.to_string()),
            addr: self.peer(id),
        }
    }

    async fn authenticate(&self, c: &ConnectInfo) -> HookResult {
        let id = c.id();
        let index = Self::index(id);
        let v5 = matches!(c, ConnectInfo::V5(..));
        let fronted = self.listeners.get(index).is_some_and(|l| l.fronted);
        if fronted && self.peer(id).is_none() {
            // A direct connection to a private listener: it skipped TLS.
            self.refused(id, "not through the TLS listener", None);
            return HookResult::AuthResult(AuthResult::NotAuthorized);
        }
        let will = c.last_will().map(|w| match w {
            LastWill::V3(lw) => lw.topic.clone(),
            LastWill::V5(lw) => lw.topic.clone(),
        });
        let credentials = Credentials {
            client_id: &id.client_id,
            username: c.username().map(|u| &**u),
            password: c.password().map(|p| &**p),
            will_topic: will.as_deref(),
        };
        match self.access.authenticate(index, credentials) {
            Ok(()) => {
                if !c.clean_start() {
                    self.prepare_resume(id).await;
                }
                HookResult::AuthResult(AuthResult::Allow(false, None))
            }
            Err(refusal) => {
                self.refused(id, refusal.as_str(), Some(refusal));
                // MQTT 3.1.1: 0x05 for all, like Mosquitto; MQTT 5: 0x86 or 0x87.
                let result = if v5 && refusal.is_bad_credentials() {
                    AuthResult::BadUsernameOrPassword
                } else {
                    AuthResult::NotAuthorized
                };
                HookResult::AuthResult(result)
            }
        }
    }

    /// Works around rmqtt resending a resumed session's unacknowledged messages in reverse
    /// order (it pops them off the end of its list): reversing the stored session's in-flight
    /// window once, just before rmqtt takes it over, makes the resend follow the original
    /// order, as MQTT-4.4.0-1 and 3.1.1 §4.6 require. Runs when a client that resumes its
    /// session (clean session 0 / clean start 0) has been authenticated, the last step before
    /// rmqtt kicks the old session; a flag on the old session keeps a retried connect from
    /// reversing it twice.
    async fn prepare_resume(&self, id: &Id) {
        const REVERSED: &str = "ferrule.inflight_reversed";
        let Some(old) = self.scx.extends.shared().await.entry(id.clone()).session() else {
            return;
        };
        let mut attrs = old.extra_attrs.write().await;
        if attrs.get::<bool>(REVERSED).copied().unwrap_or(false) {
            return;
        }
        attrs.insert(REVERSED.into(), true);
        let mut inflight = old.out_inflight().write().await;
        let mut messages = Vec::with_capacity(inflight.len());
        while let Some(m) = inflight.pop_front() {
            messages.push(m);
        }
        for m in messages.into_iter().rev() {
            inflight.push_back(m);
        }
    }

    fn refused(&self, id: &Id, why: &str, refusal: Option<Refusal>) {
        BrokerStats::bump(&self.stats.auth_failures);
        if let Some(suppressed) = self.logs.refusals.admit() {
            warn!(
                client_id = %id.client_id,
                addr = %show_addr(self.peer(id)),
                user = show_user(id.username.as_deref()),
                listener = self.listener_name(id),
                suppressed,
                reason = why,
                "client refused: {}",
                if refusal.is_some_and(Refusal::is_bad_credentials) {
                    "bad username or password"
                } else {
                    "not authorised"
                }
            );
        }
    }

    async fn connected(&self, s: &Session) {
        self.stats.connected();
        let connect = s.connect_info().await.ok();
        if let Some(suppressed) = self.logs.connects.admit() {
            let (protocol, clean, keepalive) = match connect.as_deref() {
                Some(c @ ConnectInfo::V3(_, v3)) => (
                    protocol_name(c.proto_ver()),
                    v3.clean_session,
                    v3.keep_alive,
                ),
                Some(ConnectInfo::V5(_, v5)) => ("mqttv5", v5.clean_start, v5.keep_alive),
                None => ("?", true, 0),
            };
            info!(
                client_id = %s.id.client_id,
                addr = %show_addr(self.peer(&s.id)),
                user = show_user(s.id.username.as_deref()),
                protocol,
                clean,
                keepalive,
                listener = self.listener_name(&s.id),
                suppressed,
                "client connected"
            );
        }
        let (Some(store), Some(connect)) = (&self.store, connect) else {
            return;
        };
        let client_id = s.id.client_id.to_string();
        let index = u16::try_from(Self::index(&s.id)).unwrap_or(0);
        let created = s.created_at().await.unwrap_or_else(|_| timestamp_millis());
        let row = session_row(&connect, index, created);
        let was_stored = {
            let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
            match row {
                Some(_) => !stored.insert(client_id.clone()),
                None => stored.remove(&client_id),
            }
        };
        if was_stored && !s.session_present().await.unwrap_or(false) {
            // Whatever was stored under this client id is gone.
            store.delete_session(client_id);
        }
        if let Some(row) = row {
            store.session(row);
        }
    }

    fn forget(&self, client_id: String) {
        if let Some(store) = &self.store {
            self.stored
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&client_id);
            store.delete_session(client_id);
        }
    }

    async fn disconnected(&self, s: &Session, reason: &Reason) {
        self.stats.disconnected();
        if let Some(suppressed) = self.logs.disconnects.admit() {
            info!(
                client_id = %s.id.client_id,
                addr = %show_addr(self.peer(&s.id)),
                suppressed,
                reason = %describe(reason),
                "client disconnected"
            );
        }
        if let Some(store) = &self.store {
            // A connection taken over by a new one of the same client id: the session lives on.
            let replaced = kicked(reason)
                || s.scx.extends.shared().await.entry(s.id.clone()).id_same() == Some(false);
            if !replaced && persistent(s).await {
                let disconnect = s.disconnect().await.ok().flatten();
                let expiry = s.fitter.session_expiry_interval(disconnect.as_ref());
                let secs = u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX);
                store.disconnected(s.id.client_id.to_string(), timestamp_millis(), secs);
            }
        }
    }

    async fn terminated(&self, s: &Session) {
        if self.store.is_none() || !persistent(s).await {
            return;
        }
        // A newer session with the same client id keeps its stored state.
        let current = s.scx.extends.shared().await.entry(s.id.clone()).id_same();
        if current != Some(false) {
            self.forget(s.id.client_id.to_string());
        }
    }

    fn received(&self, publish: &Publish) {
        BrokerStats::bump(&self.stats.messages_received);
        BrokerStats::add(&self.stats.bytes_received, packet_size(publish));
    }

    fn dropped(&self, to: Option<&Id>, publish: &Publish, reason: &Reason) {
        match reason {
            // Counted where the ACL refused it.
            Reason::PublishResult(_) => {}
            Reason::MessageQueueFull => {
                BrokerStats::bump(&self.stats.dropped_queue_full);
                if let Some(suppressed) = self.logs.drops.admit() {
                    warn!(
                        client_id = to.map_or("?", |id| &*id.client_id),
                        topic = %unescape(&publish.topic),
                        qos = publish.qos.value(),
                        max_queued_messages = self.max_queued,
                        suppressed,
                        "client queue full: message dropped (QoS 0: the new one; QoS 1/2: the oldest queued)"
                    );
                }
            }
            other => {
                BrokerStats::bump(&self.stats.dropped_other);
                debug!(client_id = to.map_or("?", |id| &*id.client_id), reason = %other, "message dropped");
            }
        }
    }
}

/// `addr=127.0.0.1:5000` (or `?`) and `user=alice` (or `-`) in log lines.
fn show_addr(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_owned(), |a| a.to_string())
}

fn show_user(user: Option<&str>) -> &str {
    user.unwrap_or("-")
}

/// Whether the connection ended because a new one with the same client id took over.
fn kicked(reason: &Reason) -> bool {
    match reason {
        Reason::ConnectKicked(_) => true,
        Reason::Reasons(all) => all.iter().any(kicked),
        _ => false,
    }
}

fn protocol_name(level: u8) -> &'static str {
    match level {
        3 => "mqttv31",
        4 => "mqttv311",
        5 => "mqttv5",
        _ => "mqtt",
    }
}

async fn persistent(s: &Session) -> bool {
    match s.connect_info().await {
        Ok(c) => session_row(&c, 0, 0).is_some(),
        Err(_) => false,
    }
}

/// A disconnect reason as a log line says it.
fn describe(reason: &Reason) -> Cow<'static, str> {
    match reason {
        Reason::ConnectDisconnect(_) => "client sent DISCONNECT".into(),
        Reason::ConnectRemoteClose => "connection closed by the client".into(),
        Reason::ConnectKeepaliveTimeout => {
            "keepalive timeout: nothing received for 1.5 times the keepalive".into()
        }
        Reason::ConnectKicked(false) => {
            "taken over by a new connection with the same client id".into()
        }
        Reason::ConnectReadWriteTimeout => "network timeout".into(),
        Reason::ConnectReadWriteError => "network error".into(),
        Reason::ProtocolError(why) => format!("protocol error: {why}").into(),
        Reason::Reasons(all) => match all.first() {
            Some(first) => describe(first),
            None => "connection closed".into(),
        },
        other => other.to_string().into(),
    }
}

/// The size of a PUBLISH packet on the wire, as counted in `$SYS/broker/bytes/*`.
fn packet_size(p: &Publish) -> u64 {
    let props = usize::from(p.properties.is_some());
    publish_size(p.topic.len(), p.payload.len(), p.qos.value() > 0, props)
}

/// A copy of `p` with `topic`, when the topic changed.
fn with_topic(p: &Publish, topic: Cow<'_, str>) -> Option<Publish> {
    match topic {
        Cow::Borrowed(_) => None,
        Cow::Owned(t) => {
            let mut p = p.clone();
            p.inner.topic = t.into();
            Some(p)
        }
    }
}

/// The refusal sent when the tap cannot accept a client's message.
fn refuse_tap(v5: bool, qos: Qos, e: &TapError) -> PublishAclResult {
    let reason = Some(e.0.clone().into());
    let mut result = PublishAclResult::rejected(false, reason);
    if v5 {
        result.0.reason_code = PublishAckReason::QuotaExceeded;
    } else if qos != Qos::AtMostOnce {
        // MQTT 3.1.1 has no negative PUBACK: closing the connection is the only way to keep the
        // client from treating the message as delivered.
        result.0.disconnect = true;
    }
    result
}

/// The rmqtt hook handler.
pub struct Hooks {
    pub core: Arc<Core>,
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let core = &self.core;
        match param {
            Parameter::ClientAuthenticate(c) => (false, Some(core.authenticate(c).await)),
            Parameter::ClientConnected(s) => {
                core.connected(s).await;
                (true, acc)
            }
            Parameter::ClientDisconnected(s, reason) => {
                core.disconnected(s, reason).await;
                (true, acc)
            }
            Parameter::SessionTerminated(s, _) => {
                core.terminated(s).await;
                (true, acc)
            }
            Parameter::SessionSubscribed(s, sub) => {
                if let Some(store) = &core.store {
                    if persistent(s).await {
                        let stored = stored_subscription(&sub.topic_filter, &sub.opts);
                        store.subscribe(s.id.client_id.to_string(), stored);
                    }
                }
                (true, acc)
            }
            Parameter::SessionUnsubscribed(s, unsub) => {
                if let Some(store) = &core.store {
                    let filter = unescape(&unsub.topic_filter).into_owned();
                    store.unsubscribe(s.id.client_id.to_string(), filter);
                }
                (true, acc)
            }
            Parameter::ClientSubscribe(_, sub) => match escape(&sub.topic_filter) {
                Cow::Owned(f) => (true, Some(HookResult::TopicFilter(Some(f.into())))),
                Cow::Borrowed(_) => (true, acc),
            },
            Parameter::ClientUnsubscribe(_, unsub) => match escape(&unsub.topic_filter) {
                Cow::Owned(f) => (true, Some(HookResult::TopicFilter(Some(f.into())))),
                Cow::Borrowed(_) => (true, acc),
            },
            Parameter::ClientSubscribeCheckAcl(s, sub) => {
                let filter = unescape(&sub.topic_filter);
                let user = s.id.username.as_deref();
                if core.access.may_subscribe(&s.id.client_id, user, &filter) {
                    return (true, acc);
                }
                BrokerStats::bump(&core.stats.subscribe_denied);
                if let Some(suppressed) = core.logs.denials.admit() {
                    info!(client_id = %s.id.client_id, user = show_user(user), filter = %filter, suppressed, "subscription refused by the ACL");
                }
                let refused = SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized);
                (false, Some(HookResult::SubscribeAclResult(refused)))
            }
            Parameter::MessagePublishCheckAcl(s, publish) => {
                let msg = from_rmqtt(publish, core.origin(&s.id));
                let user = s.id.username.as_deref();
                if !core.access.may_write(&s.id.client_id, user, &msg.topic) {
                    BrokerStats::bump(&core.stats.publish_denied);
                    if let Some(suppressed) = core.logs.denials.admit() {
                        info!(client_id = %s.id.client_id, user = show_user(user), topic = %msg.topic, suppressed, "publish refused by the ACL");
                    }
                    let refused = PublishAclResult::rejected(false, Some("not authorized".into()));
                    return (false, Some(HookResult::PublishAclResult(refused)));
                }
                match core.accept(&msg).await {
                    Ok(()) => (true, acc),
                    Err(e) => {
                        BrokerStats::bump(&core.stats.tap_refused);
                        warn!(client_id = %s.id.client_id, topic = %msg.topic, error = %e, "publish refused");
                        let v5 = s.protocol().await.unwrap_or(0) == 5;
                        let result = refuse_tap(v5, msg.qos, &e);
                        (false, Some(HookResult::PublishAclResult(result)))
                    }
                }
            }
            Parameter::MessagePublish(_, from, publish) => {
                if matches!(from.typ(), FromType::Custom) {
                    core.received(publish);
                }
                // Client publishes and wills enter here first: escape their topic for rmqtt,
                // and give MQTT 3.1.1 messages (empty) properties: rmqtt only adds MQTT 5
                // subscription identifiers to a message that has properties.
                let escaped = with_topic(publish, escape(&publish.topic));
                let escaped = match (escaped, publish.properties.is_none()) {
                    (Some(mut p), true) => {
                        p.inner.properties = Some(Default::default());
                        Some(p)
                    }
                    (None, true) => {
                        let mut p: Publish = (*publish).clone();
                        p.inner.properties = Some(Default::default());
                        Some(p)
                    }
                    (escaped, false) => escaped,
                };
                if matches!(from.typ(), FromType::LastWill) {
                    let origin = Origin::Will {
                        client_id: from.id.client_id.to_string(),
                    };
                    let msg = from_rmqtt(escaped.as_ref().unwrap_or(publish), origin);
                    if let Err(e) = core.accept(&msg).await {
                        BrokerStats::bump(&core.stats.tap_refused);
                        warn!(client_id = %from.id.client_id, topic = %msg.topic, error = %e, "will message not accepted by the uplink queue");
                    }
                }
                match escaped {
                    Some(p) => (true, Some(HookResult::Publish(p))),
                    None => (true, acc),
                }
            }
            Parameter::MessageDelivered(_, _, publish) => {
                BrokerStats::bump(&core.stats.messages_sent);
                BrokerStats::add(&core.stats.bytes_sent, packet_size(publish));
                match with_topic(publish, unescape(&publish.topic)) {
                    Some(p) => (true, Some(HookResult::Publish(p))),
                    None => (true, acc),
                }
            }
            Parameter::MessageDropped(to, _, publish, reason) => {
                core.dropped(to.as_ref(), publish, reason);
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}
