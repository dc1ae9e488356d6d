//! The [`Broker`]: the engine behind the narrow interface the rest of ferrule uses.
//!
//! What the rest of ferrule sees: [`Broker::start`] (read the password and ACL files, open the
//! persistence file and restore what it holds, bind every listener, fail with a clear error),
//! [`Broker::publish`] / [`Broker::publish_batch`] (the agent publishes in-process),
//! [`Broker::subscribe`] (an in-process subscription stream, e.g. for commands), a [`Tap`]
//! that sees every message entering the broker before it is delivered, [`Broker::status`],
//! [`Broker::clients`], [`Broker::reload`] (a new broker section applied to the running
//! engine) and [`Broker::shutdown`].
//!
//! Invariants:
//! - every message that enters the broker — from a network client (after the ACL allowed it),
//!   from a client's will, or from the agent — passes the tap exactly once, *before* any
//!   subscriber sees it and before the publisher gets its PUBACK/PUBREC; a tap error refuses the
//!   message (v5: reason code 0x97; v3.1.1: the connection is closed, so the client keeps and
//!   resends it); `$SYS` statistics are the broker's own and do not pass the tap;
//! - in-process subscribers get messages through bounded channels: a slow consumer applies
//!   backpressure to the publisher, it never loses a message silently; a subscription ends when
//!   its receiver is dropped;
//! - a reload never drops a client: listeners that stay keep their socket, new ones are bound
//!   before anything changes (a listener that cannot bind leaves the old section in force),
//!   password file, ACL and limits are swapped in place;
//! - every task the broker starts is tracked and stops with [`Broker::shutdown`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::access::Access;
use super::acl::Acl;
use super::engine::{ClientInfo, Engine, Settings};
use super::error::BrokerError;
use super::listener::{self, Running};
use super::message::{Message, Publication};
use super::passwd::PasswordFile;
use super::persist::{PersistError, Store};
use super::session::QueueLimits;
use super::stats::{BrokerStats, BrokerStatus};
use super::tap::Tap;
use super::thread::BrokerThread;
use super::{expiry, sys};
use crate::config::BrokerConfig;

/// How long connections get to say goodbye at shutdown.
const DRAIN: Duration = Duration::from_secs(3);

fn settings(config: &BrokerConfig) -> Settings {
    Settings {
        max_packet_size: config.max_packet_size,
        max_inflight: config.max_inflight,
        max_keepalive: config.max_keepalive,
        max_topic_alias: config.max_topic_alias,
        queue: QueueLimits {
            max_messages: usize::try_from(config.max_queued_messages).unwrap_or(usize::MAX),
            max_bytes: config.max_queued_bytes,
            queue_qos0: config.queue_qos0_messages,
        },
        persistent_client_expiration: config.persistent_client_expiration,
        connection_messages: config.connection_messages,
        max_connections: config.max_connections,
        tcp_nodelay: config.tcp_nodelay,
    }
}

/// The password file and ACL of `config`, read now.
fn load_access(config: &BrokerConfig) -> Result<Access, BrokerError> {
    let passwords = match &config.password_file {
        Some(path) => {
            let p = PasswordFile::load(path)?;
            info!(path = %path.display(), users = p.len(), "password file loaded");
            Some(p)
        }
        None => None,
    };
    let acl = match &config.acl_file {
        Some(path) => {
            let a = Acl::load(path)?;
            info!(path = %path.display(), rules = a.rule_count(), "ACL file loaded");
            Some(a)
        }
        None => None,
    };
    Ok(Access::new(passwords, acl))
}

/// The listeners and `$SYS` task of the section in force.
struct Serving {
    config: BrokerConfig,
    listeners: Vec<Running>,
    sys: Option<CancellationToken>,
}

/// A running embedded broker.
pub struct Broker {
    engine: Arc<Engine>,
    serving: Mutex<Serving>,
    /// Stops every connection and task of the broker.
    root: CancellationToken,
    tracker: TaskTracker,
    /// The thread every broker task runs on (taken at shutdown).
    thread: Mutex<Option<BrokerThread>>,
    handle: tokio::runtime::Handle,
}

impl Broker {
    /// Reads the password and ACL files, opens the persistence file (restoring retained
    /// messages, persistent sessions and pending wills), binds every listener (failing with a
    /// clear error when an address is taken) and starts serving. `tap` sees every message
    /// entering the broker.
    pub async fn start(config: &BrokerConfig, tap: Arc<dyn Tap>) -> Result<Broker, BrokerError> {
        let access = load_access(config)?;
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
                    error!(moved_to = %aside.display(), "the broker persistence file was unreadable; moved aside, starting empty");
                }
                (Some(opened.0), Some(opened.1))
            }
            None => (None, None),
        };
        let stats = Arc::new(BrokerStats::new());
        let engine = Engine::new(settings(config), access, tap, store.clone(), stats);
        if let Some(loaded) = loaded {
            let now = super::message::now_ms();
            let (retained, sessions, wills) = (
                loaded.retained.len(),
                loaded.sessions.len(),
                loaded.wills.len(),
            );
            let queued: usize = loaded.sessions.iter().map(|s| s.entries.len()).sum();
            for msg in loaded.retained {
                engine.restore_retained(msg);
            }
            for s in loaded.sessions {
                engine.restore_session(s, now);
            }
            for w in loaded.wills {
                engine.restore_will(w.client_id, w.will.msg, w.will.delay);
            }
            info!(retained, sessions, queued, wills, "broker state restored");
        }

        let thread = BrokerThread::start().map_err(BrokerError::Thread)?;
        let handle = thread.handle().clone();
        let mut bound = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            // Registered with the broker thread's reactor.
            let b = {
                let _in = handle.enter();
                listener::bind(l)
            };
            match b {
                Ok(b) => bound.push(b),
                Err(e) if l.best_effort => warn!(error = %e, "default listener skipped"),
                Err(e) => {
                    if let Some(store) = store {
                        let _ = tokio::task::spawn_blocking(move || store.close()).await;
                    }
                    return Err(e);
                }
            }
        }
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let listeners = bound
            .into_iter()
            .map(|b| listener::serve(b, config, &engine, &root, &tracker, &handle))
            .collect();
        tracker.spawn_on(expiry::run(engine.clone(), root.child_token()), &handle);
        let broker = Broker {
            engine,
            serving: Mutex::new(Serving {
                config: config.clone(),
                listeners,
                sys: None,
            }),
            root,
            tracker,
            thread: Mutex::new(Some(thread)),
            handle,
        };
        broker.start_sys(&mut broker.serving());
        Ok(broker)
    }

    fn serving(&self) -> MutexGuard<'_, Serving> {
        self.serving.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start_sys(&self, serving: &mut Serving) {
        if let Some(old) = serving.sys.take() {
            old.cancel();
        }
        if let Some(every) = serving.config.sys_interval {
            let stop = self.root.child_token();
            self.tracker.spawn_on(
                sys::run(self.engine.clone(), every, stop.clone()),
                &self.handle,
            );
            serving.sys = Some(stop);
        }
    }

    /// The addresses actually bound (useful with port 0), in config order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.serving().listeners.iter().map(|l| l.addr).collect()
    }

    /// The broker's counters and what it holds now.
    pub async fn status(&self) -> BrokerStatus {
        sys::status(&self.engine)
    }

    /// The counters, for a metrics endpoint that reads them itself.
    pub fn stats(&self) -> Arc<BrokerStats> {
        self.engine.stats.clone()
    }

    /// The connected clients.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.engine.clients()
    }

    /// Publishes a message in-process: tap, in-process subscribers, then network subscribers.
    pub async fn publish(&self, msg: Message) -> Result<(), BrokerError> {
        let topic = msg.topic.clone();
        self.engine
            .publish(Arc::new(Publication::from_message(msg)))
            .await
            .map(|_| ())
            .map_err(|e| BrokerError::Refused { topic, reason: e.0 })
    }

    /// Publishes agent messages in order, passing them to the tap as one batch.
    pub async fn publish_batch(&self, msgs: Vec<Message>) -> Result<(), BrokerError> {
        if let Err(e) = self.engine.tap_batch(&msgs).await {
            let topic = msgs.first().map(|m| m.topic.clone()).unwrap_or_default();
            return Err(BrokerError::Refused { topic, reason: e.0 });
        }
        for msg in msgs {
            self.engine
                .publish_tapped(Arc::new(Publication::from_message(msg)))
                .await;
        }
        Ok(())
    }

    /// An in-process subscription: every message whose topic matches `filter` (a valid filter),
    /// through a channel of `capacity` messages. Dropping the receiver ends it.
    pub fn subscribe(&self, filter: &str, capacity: usize) -> mpsc::Receiver<Message> {
        self.engine.subscribe_local(filter, capacity)
    }

    /// In-process subscriptions alive now (a leak shows here).
    pub fn local_subscriptions(&self) -> usize {
        self.engine.local_subscriptions()
    }

    /// Applies a new broker section to the running engine, without dropping any client.
    /// Nothing changes when it fails (a file unreadable, an address taken). Returns what
    /// changed, for the reload report.
    pub async fn reload(&self, config: &BrokerConfig) -> Result<Vec<String>, BrokerError> {
        let access = load_access(config)?;
        let mut serving = self.serving();
        let old = serving.config.clone();
        // Bind or re-use every listener of the new section before anything changes.
        let mut bound = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let existing = serving.listeners.iter().find(|r| r.config.bind == l.bind);
            let b = match existing {
                Some(r) => listener::rebind(l, r.socket.clone(), r.addr),
                None => {
                    let _in = self.handle.enter();
                    listener::bind(l)
                }
            };
            match b {
                Ok(b) => bound.push(b),
                Err(e) if l.best_effort => warn!(error = %e, "default listener skipped"),
                Err(e) => return Err(e),
            }
        }
        let mut notes = Vec::new();
        if old.listeners != config.listeners {
            notes.push("broker.listeners: applied (clients stay connected)".to_owned());
        }
        if old.password_file != config.password_file || old.acl_file != config.acl_file {
            notes.push("broker.password_file/acl_file: reloaded".to_owned());
        } else if config.password_file.is_some() || config.acl_file.is_some() {
            notes.push("broker: password and ACL files read again".to_owned());
        }
        if old.persistence != config.persistence {
            warn!("broker.persistence changed: takes effect at the next restart");
            notes.push("broker.persistence: takes effect at the next restart".to_owned());
        }
        self.engine.set_access(access);
        self.engine.set_settings(settings(config));
        for r in serving.listeners.drain(..) {
            r.stop.cancel();
        }
        let mut effective = config.clone();
        effective.persistence = old.persistence.clone();
        serving.listeners = bound
            .into_iter()
            .map(|b| {
                listener::serve(
                    b,
                    &effective,
                    &self.engine,
                    &self.root,
                    &self.tracker,
                    &self.handle,
                )
            })
            .collect();
        let sys_changed = old.sys_interval != config.sys_interval;
        serving.config = effective;
        if sys_changed {
            self.start_sys(&mut serving);
        }
        Ok(notes)
    }

    /// Stops accepting, tells every connected client (MQTT 5: DISCONNECT 0x8B), and closes the
    /// persistence file after everything is written.
    pub async fn shutdown(&self) {
        self.root.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                left = self.tracker.len(),
                "broker connections still closing after the drain deadline"
            );
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.stop()).await;
        }
        let Some(store) = self.engine.store.clone() else {
            return;
        };
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => info!("broker state saved"),
            Ok(Err(e)) => error!(error = %e, "cannot save the broker state"),
            Err(e) => error!(error = %e, "cannot save the broker state"),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.root.cancel();
    }
}
