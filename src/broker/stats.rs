//! The broker's counters: what `$SYS/broker/...` publishes and what a metrics endpoint reads.
//!
//! Every counter is a relaxed atomic updated by the engine and its connections; [`BrokerStats::snapshot`]
//! reads them all at once (not atomically as a set: each value is exact, the set is a moment's
//! view). Counters only grow, except the gauge `clients_connected`, which follows connects and
//! disconnects. Counts the broker can compute (sessions, subscriptions, retained messages) are in
//! [`BrokerStatus`], which [`super::Broker::status`] fills in.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// The broker's counters, shared by the hooks, `$SYS` and (later) the metrics endpoint.
#[derive(Debug)]
pub struct BrokerStats {
    started: Instant,
    /// Clients connected now (gauge).
    pub clients_connected: AtomicI64,
    /// Highest `clients_connected` seen.
    pub clients_maximum: AtomicI64,
    /// Successful connects since start.
    pub connects: AtomicU64,
    /// Connects refused: bad credentials, anonymous not allowed, ACL on the will.
    pub auth_failures: AtomicU64,
    /// Client PUBLISH packets received (accepted or not).
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Approximate size of the PUBLISH packets received (fixed header, topic, properties,
    /// payload; other packets are not counted).
    pub bytes_received: AtomicU64,
    /// Approximate size of the PUBLISH packets sent, as for `bytes_received`.
    pub bytes_sent: AtomicU64,
    /// Publishes refused by the ACL.
    pub publish_denied: AtomicU64,
    /// Subscriptions refused by the ACL.
    pub subscribe_denied: AtomicU64,
    /// Messages dropped because a client's queue was full (`max_queued_messages`).
    pub dropped_queue_full: AtomicU64,
    /// Messages dropped for another reason (expired, client gone, ...).
    pub dropped_other: AtomicU64,
    /// Publishes refused because the uplink tap could not accept them.
    pub tap_refused: AtomicU64,
    /// Messages not sent because they exceed the client's maximum packet size.
    pub dropped_too_large: AtomicU64,
    /// Publishes refused for a payload that does not match its format indicator.
    pub publish_invalid: AtomicU64,
    /// Sessions that expired while their client was away.
    pub sessions_expired: AtomicU64,
    /// Connections that sent something other than a valid CONNECT.
    pub connects_malformed: AtomicU64,
    /// Connections that sent no CONNECT in time.
    pub connect_timeouts: AtomicU64,
    /// Connects refused by `max_connections`.
    pub connects_over_limit: AtomicU64,
    /// MQTT packets of every kind received and sent.
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    /// Bytes read from and written to client connections.
    pub net_bytes_received: AtomicU64,
    pub net_bytes_sent: AtomicU64,
    /// Connections accepted by a listener (before any CONNECT).
    pub sockets: AtomicU64,
    /// Highest anonymous resident memory seen by `$SYS` (bytes).
    pub heap_maximum: AtomicU64,
}

/// The broker's state at a moment: its counters and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerStatus {
    pub counters: StatsSnapshot,
    /// Sessions held: connected clients and persistent sessions of disconnected ones.
    pub sessions: u64,
    /// Subscriptions of all sessions.
    pub subscriptions: u64,
    /// Shared-subscription groups.
    pub shared_subscriptions: u64,
    /// Retained messages.
    pub retained: u64,
    /// Messages queued or in flight in sessions, and their bytes.
    pub stored_messages: u64,
    pub stored_bytes: u64,
    /// The process's anonymous resident memory (bytes).
    pub heap: u64,
}

/// A moment's values of [`BrokerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub uptime_secs: u64,
    pub clients_connected: i64,
    pub clients_maximum: i64,
    pub connects: u64,
    pub auth_failures: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub publish_denied: u64,
    pub subscribe_denied: u64,
    pub dropped_queue_full: u64,
    pub dropped_other: u64,
    pub tap_refused: u64,
    pub dropped_too_large: u64,
    pub publish_invalid: u64,
    pub sessions_expired: u64,
    pub connects_malformed: u64,
    pub connect_timeouts: u64,
    pub connects_over_limit: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub net_bytes_received: u64,
    pub net_bytes_sent: u64,
    pub sockets: u64,
    pub heap_maximum: u64,
}

impl StatsSnapshot {
    /// Messages dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_other + self.dropped_too_large
    }
}

impl Default for BrokerStats {
    fn default() -> Self {
        Self::new()
    }
}

impl BrokerStats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            clients_connected: AtomicI64::new(0),
            clients_maximum: AtomicI64::new(0),
            connects: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            publish_denied: AtomicU64::new(0),
            subscribe_denied: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_other: AtomicU64::new(0),
            tap_refused: AtomicU64::new(0),
            dropped_too_large: AtomicU64::new(0),
            publish_invalid: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            connects_malformed: AtomicU64::new(0),
            connect_timeouts: AtomicU64::new(0),
            connects_over_limit: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            net_bytes_received: AtomicU64::new(0),
            net_bytes_sent: AtomicU64::new(0),
            sockets: AtomicU64::new(0),
            heap_maximum: AtomicU64::new(0),
        }
    }

    /// `$SYS` saw this much heap.
    pub fn heap_seen(&self, bytes: u64) {
        self.heap_maximum.fetch_max(bytes, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A client connected.
    pub fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let now = self.clients_connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.clients_maximum.fetch_max(now, Ordering::Relaxed);
    }

    /// A client disconnected.
    pub fn disconnected(&self) {
        self.clients_connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let u = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let i = |c: &AtomicI64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            uptime_secs: self.started.elapsed().as_secs(),
            clients_connected: i(&self.clients_connected),
            clients_maximum: i(&self.clients_maximum),
            connects: u(&self.connects),
            auth_failures: u(&self.auth_failures),
            messages_received: u(&self.messages_received),
            messages_sent: u(&self.messages_sent),
            bytes_received: u(&self.bytes_received),
            bytes_sent: u(&self.bytes_sent),
            publish_denied: u(&self.publish_denied),
            subscribe_denied: u(&self.subscribe_denied),
            dropped_queue_full: u(&self.dropped_queue_full),
            dropped_other: u(&self.dropped_other),
            tap_refused: u(&self.tap_refused),
            dropped_too_large: u(&self.dropped_too_large),
            publish_invalid: u(&self.publish_invalid),
            sessions_expired: u(&self.sessions_expired),
            connects_malformed: u(&self.connects_malformed),
            connect_timeouts: u(&self.connect_timeouts),
            connects_over_limit: u(&self.connects_over_limit),
            packets_received: u(&self.packets_received),
            packets_sent: u(&self.packets_sent),
            net_bytes_received: u(&self.net_bytes_received),
            net_bytes_sent: u(&self.net_bytes_sent),
            sockets: u(&self.sockets),
            heap_maximum: u(&self.heap_maximum),
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_maximum() {
        let s = BrokerStats::new();
        s.connected();
        s.connected();
        s.disconnected();
        s.connected();
        BrokerStats::bump(&s.messages_received);
        BrokerStats::add(&s.bytes_received, 10);
        let snap = s.snapshot();
        assert_eq!((snap.clients_connected, snap.clients_maximum), (2, 2));
        assert_eq!(
            (snap.connects, snap.messages_received, snap.bytes_received),
            (3, 1, 10)
        );
    }
}
