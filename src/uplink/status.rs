//! The state of the uplink, for logs, metrics and `{site}/$agent/uplink`.
//!
//! [`LinkStatus`] is shared: the drain writes it, anyone reads a [`LinkState`] snapshot (a
//! metrics endpoint, the status publisher). The publisher ([`publish_status`]) puts a retained
//! JSON document on `{site}/$agent/uplink` in the local broker at every connect and
//! disconnect, and every [`STATUS_INTERVAL`] while something changed, e.g.
//!
//! ```json
//! {"state":"connected","since":"2026-11-22T10:00:00.123Z","url":"mqtts://cloud:8883",
//!  "last_error":null,"backlog":0,"backlog_bytes":0,"oldest_age_s":null,"sent":1200,
//!  "delivered":1200,"refused":0,"dropped":0,"ts":"2026-11-22T10:05:00.000Z"}
//! ```
//!
//! Like every agent message it passes the forward rules, so the cloud gets it too when a rule
//! matches (e.g. `{site}/#`). Its `ts` is left out of the comparison that decides whether
//! anything changed, so an idle gateway publishes nothing new.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Local;
use crate::broker::Message;
use crate::config::Qos;
use crate::payload::timestamp;
use crate::store::Queue;

/// How often the backlog is looked at (and republished when it changed).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// A snapshot of the link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    pub connected: bool,
    /// When it last connected or disconnected (or started).
    pub since: SystemTime,
    /// Why the last connection attempt or connection failed, if one did.
    pub last_error: Option<String>,
    /// Connections made since start.
    pub connects: u64,
    /// Queued messages handed to the upstream connection since start (resends included).
    pub sent: u64,
    /// Messages the upstream acknowledged since start.
    pub delivered: u64,
    /// Messages the upstream refused by reason code (MQTT 5) and that were dropped.
    pub refused: u64,
    /// Downlink messages published into the local broker since start.
    pub downlink: u64,
}

/// The shared state of the link.
#[derive(Debug)]
pub struct LinkStatus {
    state: Mutex<LinkState>,
    changed: Notify,
}

impl Default for LinkStatus {
    fn default() -> Self {
        Self {
            state: Mutex::new(LinkState {
                connected: false,
                since: SystemTime::now(),
                last_error: None,
                connects: 0,
                sent: 0,
                delivered: 0,
                refused: 0,
                downlink: 0,
            }),
            changed: Notify::new(),
        }
    }
}

impl LinkStatus {
    /// A snapshot.
    pub fn get(&self) -> LinkState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn connected(&self) {
        {
            let mut s = self.lock();
            s.connected = true;
            s.since = SystemTime::now();
            s.connects += 1;
        }
        self.changed.notify_one();
    }

    /// The connection failed or was lost; `error` says why.
    pub(crate) fn disconnected(&self, error: &str) {
        let transition = {
            let mut s = self.lock();
            let transition = s.connected || s.last_error.as_deref() != Some(error);
            if s.connected {
                s.since = SystemTime::now();
            }
            s.connected = false;
            s.last_error = Some(error.to_owned());
            transition
        };
        if transition {
            self.changed.notify_one();
        }
    }

    /// Stopped on purpose.
    pub(crate) fn stopped(&self) {
        let mut s = self.lock();
        s.connected = false;
        s.since = SystemTime::now();
    }

    pub(crate) fn count(&self, sent: u64, delivered: u64, refused: u64, downlink: u64) {
        let mut s = self.lock();
        s.sent += sent;
        s.delivered += delivered;
        s.refused += refused;
        s.downlink += downlink;
    }
}

/// The JSON of `{site}/$agent/uplink` without its `ts`.
fn document(
    state: &LinkState,
    url: &str,
    queue: Option<&crate::store::Stats>,
    dropped: u64,
) -> serde_json::Value {
    let now_ms = chrono::Utc::now().timestamp_millis();
    json!({
        "state": if state.connected { "connected" } else { "disconnected" },
        "since": timestamp(state.since),
        "url": url,
        "last_error": state.last_error,
        "backlog": queue.map(|q| q.depth),
        "backlog_bytes": queue.map(|q| q.bytes),
        "oldest_age_s": queue.and_then(|q| q.oldest_ms).map(|ms| (now_ms - ms).max(0) as f64 / 1000.0),
        "sent": state.sent,
        "delivered": state.delivered,
        "refused": state.refused,
        "dropped": dropped,
    })
}

/// Publishes the link state (retained) on `topic` at every transition and every
/// [`STATUS_INTERVAL`] when it changed, until `cancel`; then once more (disconnected).
pub(crate) async fn publish_status(
    status: Arc<LinkStatus>,
    queue: Queue,
    local: Arc<dyn Local>,
    topic: String,
    url: String,
    cancel: CancellationToken,
) {
    let mut last: Option<serde_json::Value> = None;
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            () = cancel.cancelled() => true,
            () = status.changed.notified() => false,
            _ = tick.tick() => false,
        };
        let stats = queue.stats().await.ok();
        let dropped = queue.counters().messages.lost();
        // The age moves on its own; compare without it, at a second's resolution at most.
        let doc = document(&status.get(), &url, stats.as_ref(), dropped);
        let mut key = doc.clone();
        key["oldest_age_s"] = serde_json::Value::Null;
        if stop || last.as_ref() != Some(&key) {
            let mut doc = doc;
            doc["ts"] = json!(timestamp(SystemTime::now()));
            let msg = Message::agent(topic.clone(), doc.to_string(), Qos::AtLeastOnce, true);
            if let Err(e) = local.publish(msg).await {
                tracing::debug!(error = %e, "cannot publish the uplink state");
            }
            last = Some(key);
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_notify_and_repeated_errors_do_not() {
        let s = LinkStatus::default();
        s.disconnected("refused");
        assert_eq!(s.get().last_error.as_deref(), Some("refused"));
        s.connected();
        let st = s.get();
        assert!(st.connected);
        assert_eq!(st.connects, 1);
        s.count(10, 9, 1, 2);
        s.disconnected("reset");
        let st = s.get();
        assert!(!st.connected);
        assert_eq!(
            (st.sent, st.delivered, st.refused, st.downlink),
            (10, 9, 1, 2)
        );
    }

    #[test]
    fn the_document_says_what_an_operator_needs() {
        let s = LinkStatus::default();
        s.disconnected("connection refused");
        let stats = crate::store::Stats {
            depth: 3,
            bytes: 42,
            oldest_ms: Some(chrono::Utc::now().timestamp_millis() - 1500),
            last_id: 9,
        };
        let doc = document(&s.get(), "mqtt://h:1883", Some(&stats), 4);
        assert_eq!(doc["state"], "disconnected");
        assert_eq!(doc["last_error"], "connection refused");
        assert_eq!(
            (doc["backlog"].as_u64(), doc["backlog_bytes"].as_u64()),
            (Some(3), Some(42))
        );
        assert!(doc["oldest_age_s"].as_f64().is_some_and(|a| a >= 1.5));
        assert_eq!(doc["dropped"], 4);
        assert!(doc["since"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
