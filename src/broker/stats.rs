//! The broker's counters: what `$SYS/broker/...` publishes and what a metrics endpoint reads.
//!
//! Every counter is a relaxed atomic updated by the broker hooks; [`BrokerStats::snapshot`]
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
}

/// The broker's state at a moment: its counters and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerStatus {
    pub counters: StatsSnapshot,
    /// Sessions held: connected clients and persistent sessions of disconnected ones.
    pub sessions: u64,
    /// Subscriptions of all sessions.
    pub subscriptions: u64,
    /// Retained messages.
    pub retained: u64,
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
        }
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
        }
    }
}

/// Size of a PUBLISH packet with this topic, payload and properties length: fixed header
/// (1 byte + remaining-length varint), topic (2 + len), packet id (QoS > 0), properties,
/// payload.
pub fn publish_size(
    topic_len: usize,
    payload_len: usize,
    qos_above_0: bool,
    props_len: usize,
) -> u64 {
    let remaining = 2 + topic_len + if qos_above_0 { 2 } else { 0 } + props_len + payload_len;
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    (1 + varint + remaining) as u64
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

    #[test]
    fn publish_sizes_follow_the_wire_format() {
        // "a/b", "hi", QoS 0: 0x30, len 7, 00 03 'a/b', 'hi'.
        assert_eq!(publish_size(3, 2, false, 0), 9);
        assert_eq!(publish_size(3, 2, true, 0), 11);
        assert_eq!(publish_size(1, 200, false, 0), 1 + 2 + 203);
    }
}
