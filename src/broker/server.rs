//! The embedded broker: rmqtt behind one narrow interface.
//!
//! What the rest of ferrule sees: [`Broker::start`] (read the password and ACL files, open the
//! persistence file, bind every listener, fail with a clear error), [`Broker::publish`] (the
//! agent publishes in-process), [`Broker::subscribe`] (an in-process subscription stream, e.g.
//! for commands), a [`Tap`] that sees every message entering the broker before it is delivered,
//! [`Broker::status`] (counters for `$SYS` and metrics) and [`Broker::shutdown`].
//!
//! Invariants:
//! - every message that enters the broker — from a network client (after the ACL allowed it),
//!   from a client's will, or from the agent — passes the tap exactly once, *before* any
//!   subscriber sees it and before the publisher gets its PUBACK/PUBREC; a tap error refuses the
//!   message (v5: reason code 0x97; v3.1.1: the connection is closed, so the client keeps and
//!   resends it); `$SYS` statistics are the broker's own and do not pass the tap;
//! - in-process subscribers get messages through bounded channels: a slow consumer applies
//!   backpressure to the publisher, it never loses a message silently;
//! - retained messages are kept like Mosquitto does: forever unless the publisher set an MQTT 5
//!   message expiry; queued messages likewise never expire on their own.
//!
//! Where rmqtt 0.24 deviates from the MQTT specification or from Mosquitto, ferrule corrects it
//! (each with an integration test with real clients in `tests/broker_*.rs`):
//! - topics with `$` levels after the first ([`super::escape`]);
//! - keepalive timeout and MQTT 3.1.1 session lifetime ([`super::fitter`]);
//! - one copy per client at the highest QoS for overlapping subscriptions, and read access per
//!   message ([`super::router`]);
//! - retained messages and queued messages expiring after the listener's default expiry
//!   ([`super::retain`], and a message expiry of 0 on every listener);
//! - in-session resending of unacknowledged messages every 20 s (MQTT 5 allows resending only
//!   on reconnect; Mosquitto does not resend in-session): off (a retry interval of 0);
//! - unacknowledged messages of a resumed session resent in reverse order (MQTT-4.4.0-1
//!   wants the original order): `Core::prepare_resume` in [`super::hooks`];
//! - MQTT 5 subscription identifiers dropped on messages from MQTT 3.1.1 publishers: such
//!   messages get empty properties on the way in ([`super::hooks`]);
//! - rmqtt's TLS (aws-lc) is replaced by ferrule's own TLS front ([`super::front`]).
//!
//! What stays rmqtt's, documented rather than corrected:
//! - `max_connections` is enforced as rmqtt's session limit: connected clients plus the
//!   persistent sessions of disconnected clients count, and a refused client gets CONNACK 0x03
//!   (MQTT 5: 0x88, server unavailable);
//! - a full client queue (`max_queued_messages`) drops the new message for QoS 0 and the oldest
//!   queued one for QoS 1/2 (Mosquitto drops the new one); every drop is counted and logged.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::net::{Builder, Listener as RListener};
use rmqtt::server::MqttServer;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, From as RFrom, Id};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::access::{Access, ListenerPolicy};
use super::acl::{Acl, AclError};
use super::fitter::SpecFitterManager;
use super::front::{Front, FrontTable};
use super::hooks::{Core, Hooks, ListenerInfo, LocalSub, Logs};
use super::message::{to_rmqtt, Message};
use super::passwd::{PasswdError, PasswordFile};
use super::persist::{PersistError, Store};
use super::retain::RetainStore;
use super::router::SpecRouter;
use super::stats::{BrokerStats, BrokerStatus};
use super::tls::TlsError;
use super::{sessions, sys};
use crate::config::{BrokerConfig, Listener, ListenerProtocol};

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
    #[error("broker.password_file: {0}")]
    Passwd(#[from] PasswdError),
    #[error("broker.acl_file: {0}")]
    Acl(#[from] AclError),
    #[error("TLS listener {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: TlsError,
    },
    #[error("broker.persistence: {0}")]
    Persist(#[from] PersistError),
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

/// A running embedded broker.
pub struct Broker {
    scx: ServerContext,
    core: Arc<Core>,
    agent_id: Id,
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// The version `$SYS/broker/version` shows.
fn version() -> String {
    format!("ferrule {} (rmqtt 0.24.0)", env!("CARGO_PKG_VERSION"))
}

impl Broker {
    /// Reads the password and ACL files, opens the persistence file (restoring retained messages
    /// and persistent sessions), binds every listener (failing with a clear error when an
    /// address is taken) and starts serving. `tap` sees every message entering the broker.
    pub async fn start(config: &BrokerConfig, tap: Arc<dyn Tap>) -> Result<Broker, BrokerError> {
        let passwords = match &config.password_file {
            Some(path) => Some(PasswordFile::load(path)?),
            None => None,
        };
        let acl = match &config.acl_file {
            Some(path) => Some(Acl::load(path)?),
            None => None,
        };
        if let (Some(p), Some(path)) = (&passwords, &config.password_file) {
            info!(path = %path.display(), users = p.len(), "password file loaded");
        }
        if let (Some(a), Some(path)) = (&acl, &config.acl_file) {
            info!(path = %path.display(), rules = a.rule_count(), "ACL file loaded");
        }
        let (store, loaded) = match &config.persistence {
            Some(path) => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || Store::open(&path))
                    .await
                    .map_err(|e| PersistError::Dir {
                        path: config.persistence.clone().unwrap_or_default(),
                        source: std::io::Error::other(e),
                    })??;
                if let Some(aside) = &opened.1.moved_aside {
                    tracing::error!(moved_to = %aside.display(), "the broker persistence file was unreadable; moved aside, starting empty");
                }
                (Some(opened.0), Some(opened.1))
            }
            None => (None, None),
        };

        let policies = config
            .listeners
            .iter()
            .map(|l| ListenerPolicy {
                anonymous: config.anonymous_allowed(l),
            })
            .collect();
        let access = Arc::new(Access::new(policies, passwords, acl));
        let max_sessions = config.max_connections.map_or(0, |m| m as isize);
        let scx = ServerContext::new()
            .busy_check_enable(false)
            .mqtt_max_sessions(max_sessions)
            .build()
            .await;
        let retain = RetainStore::new(store.clone());
        let node = scx.node.id();
        *scx.extends.fitter_mgr_mut().await = Box::new(SpecFitterManager);
        *scx.extends.router_mut().await = Box::new(SpecRouter::new(scx.clone(), access.clone()));

        let fronts_table = Arc::new(FrontTable::default());
        let mut server = MqttServer::new(scx.clone());
        let mut addrs = Vec::with_capacity(config.listeners.len());
        let mut infos = Vec::with_capacity(config.listeners.len());
        let mut fronts = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            let lid = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let (bound, addr) = match bind(config, l, &fronts_table, &mut fronts) {
                Ok(bound) => bound,
                Err(e) if l.best_effort => {
                    warn!(error = %e, "default listener skipped");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let name = listener_name(l, addr);
            match fronts.last().filter(|_| l.tls.is_some()) {
                Some(front) => {
                    info!(%addr, listener = %name, private = %front.upstream, "broker listening")
                }
                None => info!(%addr, listener = %name, "broker listening"),
            }
            addrs.push(addr);
            infos.push(ListenerInfo {
                name,
                fronted: l.tls.is_some(),
            });
            server = server.listener_by_id(bound, lid);
        }
        let core = Arc::new(Core {
            scx: scx.clone(),
            tap,
            subs: RwLock::new(Vec::new()),
            access,
            stats: Arc::new(BrokerStats::new()),
            fronts: fronts_table,
            listeners: infos,
            store: store.clone(),
            stored: Mutex::new(
                loaded
                    .as_ref()
                    .map(|l| l.sessions.iter().map(|s| s.row.client_id.clone()).collect())
                    .unwrap_or_default(),
            ),
            max_queued: config.max_queued_messages,
            logs: Logs::default(),
        });
        let register = scx.extends.hook_mgr().register();
        for typ in [
            Type::ClientAuthenticate,
            Type::ClientConnected,
            Type::ClientDisconnected,
            Type::SessionTerminated,
            Type::SessionSubscribed,
            Type::SessionUnsubscribed,
            Type::ClientSubscribe,
            Type::ClientUnsubscribe,
            Type::ClientSubscribeCheckAcl,
            Type::MessagePublishCheckAcl,
            Type::MessagePublish,
            Type::MessageDelivered,
            Type::MessageDropped,
        ] {
            register
                .add(typ, Box::new(Hooks { core: core.clone() }))
                .await;
        }
        register.start().await;

        if let Some(loaded) = loaded {
            let count = retain.load(loaded.retained, node).await;
            let listeners = u16::try_from(config.listeners.len()).unwrap_or(u16::MAX);
            // The retain store must be in place before sessions are rebuilt.
            *scx.extends.retain_mut().await = Box::new(retain);
            let (expired, rebuilt) = sessions::restore(&scx, loaded.sessions, listeners).await;
            if let Some(store) = &store {
                let mut stored = core.stored.lock().unwrap_or_else(PoisonError::into_inner);
                for client_id in expired {
                    stored.remove(&client_id);
                    store.delete_session(client_id);
                }
            }
            info!(
                retained = count,
                sessions = rebuilt,
                "broker state restored"
            );
        } else {
            *scx.extends.retain_mut().await = Box::new(retain);
        }

        let server = server.build();
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "broker stopped");
            }
        })];
        tasks.extend(fronts.into_iter().map(Front::spawn));

        let agent_id = Id::new(node, 0, None, None, ClientId::from("ferrule-agent"), None);
        let broker = Broker {
            scx,
            core,
            agent_id,
            addrs,
            tasks,
        };
        if let Some(every) = config.sys_interval {
            let task = broker.sys_task(every);
            let mut broker = broker;
            broker.tasks.push(task);
            return Ok(broker);
        }
        Ok(broker)
    }

    /// The addresses actually bound (useful with port 0), in config order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The broker's counters and what it holds now.
    pub async fn status(&self) -> BrokerStatus {
        status(&self.scx, &self.core.stats).await
    }

    /// The counters, for a metrics endpoint that reads them itself.
    pub fn stats(&self) -> Arc<BrokerStats> {
        self.core.stats.clone()
    }

    fn sys_task(&self, every: Duration) -> JoinHandle<()> {
        let scx = self.scx.clone();
        let stats = self.core.stats.clone();
        let from = RFrom::from_system(self.agent_id.clone());
        tokio::spawn(async move {
            let mut changes = sys::Changes::default();
            let mut tick = tokio::time::interval(every);
            let version = version();
            loop {
                tick.tick().await;
                let now = status(&scx, &stats).await;
                for (topic, value) in changes.changed(sys::values(&now, &version)) {
                    let msg = Message::agent(
                        topic.to_owned(),
                        value,
                        crate::config::Qos::AtMostOnce,
                        true,
                    );
                    let publish = to_rmqtt(msg);
                    if let Err(e) =
                        SessionState::forwards(&scx, from.clone(), publish, false, None).await
                    {
                        warn!(topic, error = %e, "cannot publish $SYS statistics");
                    }
                }
            }
        })
    }

    /// Publishes a message in-process: tap, in-process subscribers, then network subscribers.
    pub async fn publish(&self, msg: Message) -> Result<(), BrokerError> {
        self.core
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
        if let Err(e) = self.core.tap.on_batch(&msgs).await {
            let topic = msgs.first().map(|m| m.topic.clone()).unwrap_or_default();
            return Err(BrokerError::Refused { topic, reason: e.0 });
        }
        for msg in msgs {
            self.core.deliver_local(&msg).await;
            self.route(msg).await?;
        }
        Ok(())
    }

    /// Hands a message that passed the tap to rmqtt for the network subscribers.
    async fn route(&self, msg: Message) -> Result<(), BrokerError> {
        let topic = msg.topic.clone();
        let publish = to_rmqtt(msg);
        SessionState::forwards(
            &self.scx,
            RFrom::from_system(self.agent_id.clone()),
            publish,
            false,
            None,
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
        match self.core.subs.write() {
            Ok(mut subs) => subs.push(sub),
            Err(poisoned) => poisoned.into_inner().push(sub),
        }
        rx
    }

    /// Stops accepting connections, saves the queued messages of persistent sessions and closes
    /// the persistence file. Connected clients are dropped with the process.
    pub async fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        let Some(store) = self.core.store.clone() else {
            return;
        };
        let messages = sessions::take_messages(&self.scx).await;
        let count: usize = messages.iter().map(|(_, m)| m.len()).sum();
        store.save_messages(messages);
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => info!(queued = count, "broker state saved"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save the broker state"),
            Err(e) => tracing::error!(error = %e, "cannot save the broker state"),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn status(scx: &ServerContext, stats: &BrokerStats) -> BrokerStatus {
    let sessions = scx.extends.shared().await.sessions_count();
    let subscriptions = scx.extends.router().await.routes().count();
    let retained = scx.extends.retain().await.count().await;
    BrokerStatus {
        counters: stats.snapshot(),
        sessions: u64::try_from(sessions).unwrap_or(0),
        subscriptions: u64::try_from(subscriptions).unwrap_or(0),
        retained: u64::try_from(retained).unwrap_or(0),
    }
}

/// `mqtt://…`, `mqtts://…`, `ws://…`, `wss://…` with the address clients connect to.
fn listener_name(l: &Listener, addr: SocketAddr) -> String {
    let scheme = match (l.protocol, l.tls.is_some()) {
        (ListenerProtocol::Mqtt, false) => "mqtt",
        (ListenerProtocol::Mqtt, true) => "mqtts",
        (ListenerProtocol::Websockets, false) => "ws",
        (ListenerProtocol::Websockets, true) => "wss",
    };
    format!("{scheme}://{addr}")
}

/// Binds listener `l`: directly as an rmqtt listener, or (TLS) as a front on the configured
/// address and a private rmqtt listener on loopback. Returns the rmqtt listener and the address
/// clients connect to.
fn bind(
    config: &BrokerConfig,
    l: &Listener,
    table: &Arc<FrontTable>,
    fronts: &mut Vec<Front>,
) -> Result<(RListener, SocketAddr), BrokerError> {
    let private = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let laddr = if l.tls.is_some() { private } else { l.bind };
    let builder = Builder::new()
        .name(listener_name(l, l.bind))
        .laddr(laddr)
        .reuseaddr(Some(true))
        .nodelay(config.tcp_nodelay)
        // Every CONNECT goes through ferrule's authentication hook (see hooks.rs).
        .allow_anonymous(false)
        .max_packet_size(config.max_packet_size)
        .max_inflight(NonZeroU16::new(config.max_inflight).unwrap_or(NonZeroU16::MIN))
        .max_mqueue_len(usize::try_from(config.max_queued_messages).unwrap_or(usize::MAX))
        .mqueue_rate_limit(NonZeroU32::MAX, Duration::from_secs(1))
        .message_retry_interval(Duration::ZERO)
        .message_expiry_interval(Duration::ZERO);
    let bound = builder.bind().map_err(|e| bind_error(laddr, e))?;
    let bound = match l.protocol {
        ListenerProtocol::Mqtt => bound.tcp(),
        ListenerProtocol::Websockets => bound.ws(),
    }
    .map_err(|e| bind_error(laddr, e))?;
    let local = bound.local_addr().map_err(|e| bind_error(laddr, e))?;
    let Some(tls) = &l.tls else {
        return Ok((bound, local));
    };
    let tls_config = super::tls::server_config(tls).map_err(|source| BrokerError::Tls {
        addr: l.bind,
        source,
    })?;
    let listener = bind_front(l.bind)?;
    let addr = listener.local_addr().map_err(|source| BrokerError::Bind {
        addr: l.bind,
        source,
    })?;
    fronts.push(Front {
        listener,
        acceptor: tokio_rustls::TlsAcceptor::from(tls_config),
        upstream: local,
        table: table.clone(),
        name: listener_name(l, addr),
        nodelay: config.tcp_nodelay,
    });
    Ok((bound, addr))
}

fn bind_front(addr: SocketAddr) -> Result<tokio::net::TcpListener, BrokerError> {
    let std = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            BrokerError::AddrInUse { addr }
        } else {
            BrokerError::Bind { addr, source }
        }
    })?;
    std.set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(std))
        .map_err(|source| BrokerError::Bind { addr, source })
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
