//! The embedded broker: rmqtt behind one narrow interface.
//!
//! What the rest of ferrule sees: [`Broker::start`] (bind listeners, fail with a clear error),
//! [`Broker::publish`] (the agent publishes in-process), [`Broker::subscribe`] (an in-process
//! subscription stream, e.g. for commands) and a [`Tap`] that sees every message entering the
//! broker before it is delivered.
//!
//! Invariants:
//! - every message that enters the broker — from a network client (after authorization), from a
//!   client's will, or from the agent — passes the tap exactly once, *before* any subscriber sees
//!   it and before the publisher gets its PUBACK/PUBREC; a tap error refuses the message (v5:
//!   reason code 0x97; v3.1.1: the connection is closed, so the client keeps and resends it);
//! - in-process subscribers get messages through bounded channels: a slow consumer applies
//!   backpressure to the publisher, it never loses a message silently;
//! - retained messages are kept like Mosquitto does: forever unless the publisher set an MQTT 5
//!   message expiry.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, CodecPublish, From as RFrom, Id, Publish, PublishAclResult, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::escape::{escape, unescape};
use super::message::{Message, Origin};
use super::retain::RetainStore;
use crate::config::{Listener, Qos};
use crate::topics;

/// How long messages queued for offline persistent sessions are kept.
const OFFLINE_MESSAGE_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Errors of the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: address already in use (is another MQTT broker such as mosquitto running? change broker.listeners[].bind)")]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("message refused on {topic}: {reason}")]
    Refused { topic: String, reason: String },
    #[error("broker could not route the message on {topic}: {reason}")]
    Route { topic: String, reason: String },
}

/// Why the tap refused a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TapError(pub String);

/// Sees every message entering the broker before delivery (see the module invariants).
#[async_trait]
pub trait Tap: Send + Sync + 'static {
    /// Accept (`Ok`) or refuse the message. Awaited before the publisher's acknowledgement.
    async fn on_message(&self, msg: &Message) -> Result<(), TapError>;

    /// Accept or refuse a batch of agent messages at once (e.g. one durable commit).
    async fn on_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        for msg in msgs {
            self.on_message(msg).await?;
        }
        Ok(())
    }
}

/// A tap that accepts everything (no uplink).
#[derive(Debug, Default)]
pub struct NoTap;

#[async_trait]
impl Tap for NoTap {
    async fn on_message(&self, _msg: &Message) -> Result<(), TapError> {
        Ok(())
    }
}

struct LocalSub {
    filter: String,
    tx: mpsc::Sender<Message>,
}

struct Shared {
    tap: Arc<dyn Tap>,
    subs: RwLock<Vec<LocalSub>>,
}

impl Shared {
    /// Tap, then in-process subscribers. Network subscribers are served by rmqtt afterwards.
    async fn accept(&self, msg: &Message) -> Result<(), TapError> {
        self.tap.on_message(msg).await?;
        self.deliver_local(msg).await;
        Ok(())
    }

    async fn deliver_local(&self, msg: &Message) {
        let targets: Vec<mpsc::Sender<Message>> = match self.subs.read() {
            Ok(subs) => subs
                .iter()
                .filter(|s| topics::matches(&s.filter, &msg.topic))
                .map(|s| s.tx.clone())
                .collect(),
            Err(poisoned) => poisoned
                .get_ref()
                .iter()
                .filter(|s| topics::matches(&s.filter, &msg.topic))
                .map(|s| s.tx.clone())
                .collect(),
        };
        for tx in targets {
            // A closed receiver means its task ended (shutdown); nothing to deliver to.
            let _ = tx.send(msg.clone()).await;
        }
    }
}

/// A running embedded broker.
pub struct Broker {
    scx: ServerContext,
    shared: Arc<Shared>,
    agent_id: Id,
    addrs: Vec<SocketAddr>,
    server: JoinHandle<()>,
}

impl Broker {
    /// Binds every listener (failing with a clear error when an address is taken) and starts
    /// serving. `tap` sees every message entering the broker.
    pub async fn start(listeners: &[Listener], tap: Arc<dyn Tap>) -> Result<Broker, BrokerError> {
        let scx = ServerContext::new()
            .busy_check_enable(false)
            .task_exec_workers(64)
            .build()
            .await;
        *scx.extends.retain_mut().await = Box::new(RetainStore::new());

        let shared = Arc::new(Shared {
            tap,
            subs: RwLock::new(Vec::new()),
        });
        let register = scx.extends.hook_mgr().register();
        for typ in [
            Type::ClientConnected,
            Type::ClientDisconnected,
            Type::ClientSubscribe,
            Type::ClientUnsubscribe,
            Type::MessagePublish,
            Type::MessagePublishCheckAcl,
            Type::MessageDelivered,
        ] {
            register
                .add(
                    typ,
                    Box::new(Hooks {
                        shared: shared.clone(),
                    }),
                )
                .await;
        }
        register.start().await;

        let mut server = MqttServer::new(scx.clone());
        let mut addrs = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.iter().enumerate() {
            let bound = Builder::new()
                .name(format!("tcp/{}", l.bind))
                .laddr(l.bind)
                .reuseaddr(Some(true))
                .nodelay(true)
                .allow_anonymous(true)
                .message_expiry_interval(OFFLINE_MESSAGE_EXPIRY)
                .bind()
                .and_then(|b| b.tcp())
                .map_err(|e| bind_error(l.bind, e))?;
            let addr = bound.local_addr().map_err(|e| bind_error(l.bind, e))?;
            info!(%addr, "broker listening");
            addrs.push(addr);
            let id = u16::try_from(i + 1).unwrap_or(u16::MAX);
            server = server.listener_by_id(bound, id);
        }
        let server = server.build();
        let server = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "broker stopped");
            }
        });

        let agent_id = Id::new(
            scx.node.id(),
            0,
            None,
            None,
            ClientId::from("ferrule-agent"),
            None,
        );
        Ok(Broker {
            scx,
            shared,
            agent_id,
            addrs,
            server,
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Publishes a message in-process: tap, in-process subscribers, then network subscribers.
    pub async fn publish(&self, msg: Message) -> Result<(), BrokerError> {
        self.shared
            .accept(&msg)
            .await
            .map_err(|e| BrokerError::Refused {
                topic: msg.topic.clone(),
                reason: e.0,
            })?;
        self.route(msg).await
    }

    /// Publishes agent messages in order, passing them to the tap as one batch.
    pub async fn publish_batch(&self, msgs: Vec<Message>) -> Result<(), BrokerError> {
        if let Err(e) = self.shared.tap.on_batch(&msgs).await {
            let topic = msgs.first().map(|m| m.topic.clone()).unwrap_or_default();
            return Err(BrokerError::Refused { topic, reason: e.0 });
        }
        for msg in msgs {
            self.shared.deliver_local(&msg).await;
            self.route(msg).await?;
        }
        Ok(())
    }

    /// Hands a message that passed the tap to rmqtt for the network subscribers.
    async fn route(&self, msg: Message) -> Result<(), BrokerError> {
        let topic = msg.topic.clone();
        let publish = to_rmqtt(msg);
        let expiry = retained_expiry(&publish);
        SessionState::forwards(
            &self.scx,
            RFrom::from_system(self.agent_id.clone()),
            publish,
            false,
            expiry,
        )
        .await
        .map_err(|e| BrokerError::Route {
            topic,
            reason: e.to_string(),
        })
    }

    /// An in-process subscription: every message whose topic matches `filter` (a valid filter),
    /// through a channel of `capacity` messages.
    pub fn subscribe(&self, filter: &str, capacity: usize) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sub = LocalSub {
            filter: filter.to_owned(),
            tx,
        };
        match self.shared.subs.write() {
            Ok(mut subs) => subs.push(sub),
            Err(poisoned) => poisoned.into_inner().push(sub),
        }
        rx
    }

    /// Stops accepting connections. Connected clients are dropped with the process.
    pub fn shutdown(&self) {
        self.server.abort();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn bind_error(addr: SocketAddr, e: rmqtt::Error) -> BrokerError {
    match e.downcast::<std::io::Error>() {
        Ok(io) if io.kind() == std::io::ErrorKind::AddrInUse => BrokerError::AddrInUse { addr },
        Ok(io) => BrokerError::Bind { addr, source: io },
        Err(other) => BrokerError::Bind {
            addr,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// Retained messages keep no implicit expiry; only an explicit MQTT 5 expiry applies.
fn retained_expiry(p: &Publish) -> Option<Duration> {
    let explicit = p
        .properties
        .as_ref()
        .and_then(|props| props.message_expiry_interval)
        .map(|s| Duration::from_secs(u64::from(s.get())));
    Some(explicit.unwrap_or(OFFLINE_MESSAGE_EXPIRY))
}

fn to_rmqtt(msg: Message) -> Publish {
    let properties = rmqtt::codec::v5::PublishProperties {
        response_topic: msg.response_topic.map(Into::into),
        correlation_data: msg.correlation_data,
        ..Default::default()
    };
    let p = CodecPublish {
        dup: false,
        retain: msg.retain,
        qos: match msg.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        },
        topic: escape(&msg.topic).into_owned().into(),
        packet_id: None,
        payload: msg.payload,
        properties: Some(properties),
    };
    Publish::from(p).create_time(rmqtt::utils::timestamp_millis())
}

fn from_rmqtt(p: &Publish, origin: Origin) -> Message {
    let props = p.properties.as_ref();
    Message {
        topic: unescape(&p.topic).into_owned(),
        payload: p.payload.clone(),
        qos: match p.qos {
            QoS::AtMostOnce => Qos::AtMostOnce,
            QoS::AtLeastOnce => Qos::AtLeastOnce,
            QoS::ExactlyOnce => Qos::ExactlyOnce,
        },
        retain: p.retain,
        origin,
        response_topic: props
            .and_then(|p| p.response_topic.as_ref())
            .map(|t| t.to_string()),
        correlation_data: props.and_then(|p| p.correlation_data.clone()),
    }
}

fn client_origin(id: &Id) -> Origin {
    Origin::Client {
        client_id: id.client_id.to_string(),
        username: id.username.as_ref().map(|u| u.to_string()),
        addr: id.remote_addr,
    }
}

/// The rmqtt hook handler: logs connections and feeds client publishes and wills to the tap.
struct Hooks {
    shared: Arc<Shared>,
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientConnected(s) => {
                info!(
                    client_id = %s.id.client_id,
                    addr = ?s.id.remote_addr,
                    user = ?s.id.username.as_deref(),
                    "client connected"
                );
                (true, acc)
            }
            Parameter::ClientDisconnected(s, reason) => {
                info!(client_id = %s.id.client_id, addr = ?s.id.remote_addr, %reason, "client disconnected");
                (true, acc)
            }
            Parameter::MessagePublishCheckAcl(s, publish) => {
                let msg = from_rmqtt(publish, client_origin(&s.id));
                match self.shared.accept(&msg).await {
                    Ok(()) => (true, acc),
                    Err(e) => {
                        warn!(client_id = %s.id.client_id, topic = %msg.topic, error = %e, "publish refused");
                        let v5 = publish.properties.is_some();
                        let result = refuse(v5, msg.qos, &e);
                        (false, Some(HookResult::PublishAclResult(result)))
                    }
                }
            }
            Parameter::MessagePublish(_, from, publish) => {
                // Client publishes and wills enter here first: escape their topic for rmqtt.
                let escaped = with_topic(publish, escape(&publish.topic));
                if matches!(from.typ(), rmqtt::types::FromType::LastWill) {
                    let origin = Origin::Will {
                        client_id: from.id.client_id.to_string(),
                    };
                    let msg = from_rmqtt(escaped.as_ref().unwrap_or(publish), origin);
                    if let Err(e) = self.shared.accept(&msg).await {
                        warn!(client_id = %from.id.client_id, topic = %msg.topic, error = %e, "will message not accepted by the uplink queue");
                    }
                }
                match escaped {
                    Some(p) => (true, Some(HookResult::Publish(p))),
                    None => (true, acc),
                }
            }
            Parameter::MessageDelivered(_, _, publish) => {
                match with_topic(publish, unescape(&publish.topic)) {
                    Some(p) => (true, Some(HookResult::Publish(p))),
                    None => (true, acc),
                }
            }
            Parameter::ClientSubscribe(_, sub) => match escape(&sub.topic_filter) {
                Cow::Owned(f) => (true, Some(HookResult::TopicFilter(Some(f.into())))),
                Cow::Borrowed(_) => (true, acc),
            },
            Parameter::ClientUnsubscribe(_, unsub) => match escape(&unsub.topic_filter) {
                Cow::Owned(f) => (true, Some(HookResult::TopicFilter(Some(f.into())))),
                Cow::Borrowed(_) => (true, acc),
            },
            _ => {
                debug!(?param, "unhandled broker hook");
                (true, acc)
            }
        }
    }
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
fn refuse(v5: bool, qos: Qos, e: &TapError) -> PublishAclResult {
    use rmqtt::codec::v5::PublishAckReason;
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
