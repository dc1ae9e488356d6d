//! The hub: one in-process subscription to `{site}/#` feeds the [`Live`] state; a publisher
//! task turns it (with the metrics and the broker's clients) into the page's document at most
//! every [`TICK`] and hands it to every viewer through a `watch` channel.
//!
//! Invariants:
//! - the feed task only updates memory under a short lock, so the broker's in-process delivery
//!   (which waits on a full channel) is never held up by viewers;
//! - the document is built once per change for all viewers, and only while someone watches
//!   (the metrics snapshot, which asks the queue, at most once per second);
//! - viewers see the latest document only (a `watch`), so a slow viewer costs no memory.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::catalog::Catalog;
use super::live::Live;
use super::raw::RawReads;
use super::view::{render, Inputs, Rates};
use crate::broker::{Broker, Message, StatsSnapshot};
use crate::config::Device;
use crate::health::metrics::Snapshot;
use crate::health::{ErrorKind, Metrics};
use crate::store::Counter;
use crate::topics::Topics;

/// Longest time between a change and the document that shows it.
pub const TICK: Duration = Duration::from_millis(500);
/// How often counters are read for rates (and the metrics snapshot taken).
const RATE_PERIOD: Duration = Duration::from_secs(1);
/// The feed's channel: the broker waits when it is full, so it is generous.
const FEED_BACKLOG: usize = 4096;

/// What the hub reads from: replaced by a reload.
pub struct Source {
    pub broker: Arc<Broker>,
    pub topics: Topics,
    pub catalog: Arc<Catalog>,
}

pub(super) struct Inner {
    pub source: RwLock<Arc<Source>>,
    pub live: Mutex<Live>,
    metrics: Metrics,
    tx: watch::Sender<Arc<str>>,
    kick: Notify,
    feed: Mutex<Option<JoinHandle<()>>>,
    raw: RawReads,
}

/// The status page's state, shared by the HTTP side. Clones share it.
#[derive(Clone)]
pub struct Hub {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// Subscribes to the site's messages now (so nothing published after this is missed)
    /// and starts the publisher, until `cancel`.
    pub fn start(
        broker: Arc<Broker>,
        topics: &Topics,
        devices: &[Arc<Device>],
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, _) = watch::channel(Arc::<str>::from("{}"));
        let hub = Hub {
            inner: Arc::new(Inner {
                source: RwLock::new(Arc::new(Source {
                    catalog: Arc::new(Catalog::new(devices, topics)),
                    topics: topics.clone(),
                    broker,
                })),
                live: Mutex::new(Live::default()),
                metrics,
                tx,
                kick: Notify::new(),
                feed: Mutex::new(None),
                raw: RawReads::default(),
            }),
        };
        hub.resubscribe();
        tokio::spawn(publish(hub.inner.clone(), cancel));
        hub
    }

    /// After a reload: the broker, the site or the devices may have changed.
    pub fn update(&self, broker: Arc<Broker>, topics: &Topics, devices: &[Arc<Device>]) {
        *self
            .inner
            .source
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Source {
            catalog: Arc::new(Catalog::new(devices, topics)),
            topics: topics.clone(),
            broker,
        });
        self.resubscribe();
    }

    fn resubscribe(&self) {
        let source = self.source();
        let rx = source
            .broker
            .subscribe(&format!("{}/#", source.topics.site()), FEED_BACKLOG);
        let task = tokio::spawn(feed(self.inner.clone(), rx));
        let old = self
            .inner
            .feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    pub fn source(&self) -> Arc<Source> {
        self.inner
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A viewer: the latest document now, and every new one.
    pub fn watch(&self) -> watch::Receiver<Arc<str>> {
        let rx = self.inner.tx.subscribe();
        self.inner.kick.notify_one();
        rx
    }

    /// Ends the subscription (the publisher ends with its `cancel`).
    pub fn stop(&self) {
        let feed = self
            .inner
            .feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = feed {
            task.abort();
        }
    }

    /// Raw reads of the running devices (their handles are set with the lines).
    pub fn raw(&self) -> &RawReads {
        &self.inner.raw
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    /// Records an event of the page itself (a login refused, a write sent).
    pub fn event(&self, kind: &'static str, text: String) {
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .event(SystemTime::now(), kind, text);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .feed
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn feed(inner: Arc<Inner>, mut rx: mpsc::Receiver<Message>) {
    while let Some(msg) = rx.recv().await {
        let source = inner
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&source.catalog, &source.topics, &msg, SystemTime::now());
    }
}

/// Counters read at the last rate period.
struct Previous {
    at: Instant,
    broker: StatsSnapshot,
    delivered: Option<u64>,
    /// (polls, requests) by device.
    devices: Vec<(String, u64, u64)>,
}

fn requests(d: &crate::health::metrics::DeviceSnapshot) -> u64 {
    let errors = |k: ErrorKind| {
        ErrorKind::ALL
            .iter()
            .position(|x| *x == k)
            .map_or(0, |i| d.errors[i])
    };
    d.latency_count
        + errors(ErrorKind::NoAnswer)
        + errors(ErrorKind::Protocol)
        + errors(ErrorKind::LinkLost)
}

async fn publish(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = u64::MAX;
    let mut prev: Option<Previous> = None;
    let mut rates = Rates::default();
    let mut snapshot: Option<Snapshot> = None;
    let mut kicked = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
            () = inner.kick.notified() => kicked = true,
        }
        let source = inner
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let period_over = prev.as_ref().is_none_or(|p| p.at.elapsed() >= RATE_PERIOD);
        let watched = inner.tx.receiver_count() > 0;
        if period_over {
            let stats = source.broker.stats().snapshot();
            let snap = if watched {
                Some(inner.metrics.snapshot().await)
            } else {
                None
            };
            refusals(&inner, prev.as_ref().map(|p| &p.broker), &stats);
            let delivered = snap
                .as_ref()
                .and_then(|s| s.queue.as_ref())
                .map(|(_, c)| c.messages.get(Counter::Delivered));
            let devices: Vec<(String, u64, u64)> = snap
                .as_ref()
                .map(|s| {
                    s.devices
                        .iter()
                        .map(|d| (d.name.clone(), d.polls, requests(d)))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(p) = &prev {
                let secs = p.at.elapsed().as_secs_f64().max(0.001);
                let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
                rates.messages_in = rate(stats.messages_received, p.broker.messages_received);
                rates.messages_out = rate(stats.messages_sent, p.broker.messages_sent);
                rates.drained = match (delivered, p.delivered) {
                    (Some(n), Some(t)) => rate(n, t),
                    _ => 0.0,
                };
                rates.requests_per_cycle = devices
                    .iter()
                    .filter_map(|(name, polls, reqs)| {
                        let (_, p0, r0) = p.devices.iter().find(|(n, _, _)| n == name)?;
                        let cycles = polls.saturating_sub(*p0);
                        (cycles > 0).then(|| {
                            (
                                name.clone(),
                                reqs.saturating_sub(*r0) as f64 / cycles as f64,
                            )
                        })
                    })
                    .collect();
            }
            prev = Some(Previous {
                at: Instant::now(),
                broker: stats,
                delivered,
                devices,
            });
            if snap.is_some() {
                snapshot = snap;
            }
        }
        if !watched {
            shown = u64::MAX;
            continue;
        }
        let version = inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .version;
        if version == shown && !period_over && !kicked {
            continue;
        }
        kicked = false;
        let clients = source.broker.clients();
        let doc = {
            let live = inner.live.lock().unwrap_or_else(PoisonError::into_inner);
            render(&Inputs {
                site: source.topics.site(),
                catalog: &source.catalog,
                topics: &source.topics,
                live: &live,
                metrics: snapshot.as_ref(),
                clients: &clients,
                rates: &rates,
                now: SystemTime::now(),
            })
        };
        shown = version;
        inner.tx.send_replace(Arc::from(doc));
    }
}

/// Connection refusals since the last period, as events.
fn refusals(inner: &Inner, before: Option<&StatsSnapshot>, now: &StatsSnapshot) {
    let Some(b) = before else { return };
    let mut live = inner.live.lock().unwrap_or_else(PoisonError::into_inner);
    for (n, why) in [
        (
            now.auth_failures.saturating_sub(b.auth_failures),
            "bad credentials or not authorised",
        ),
        (
            now.connects_malformed.saturating_sub(b.connects_malformed),
            "malformed CONNECT",
        ),
        (
            now.connects_over_limit
                .saturating_sub(b.connects_over_limit),
            "over the connection limit",
        ),
        (
            now.connect_timeouts.saturating_sub(b.connect_timeouts),
            "no CONNECT in time",
        ),
    ] {
        if n > 0 {
            live.event(
                SystemTime::now(),
                "connection",
                format!("{n} MQTT connection(s) refused: {why}"),
            );
        }
    }
}
