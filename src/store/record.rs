//! The records of the queue and what it reports about itself: what the handle (`queue.rs`) and
//! the worker thread (`worker.rs`) exchange, so that neither depends on the other for them.

use bytes::Bytes;

use super::counters::Totals;

/// One message to forward upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub payload: Bytes,
    /// MQTT QoS level, 0–2 (anything else is refused by the database).
    pub qos: u8,
    pub retain: bool,
}

/// A queued record.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Unique, strictly increasing, never reused.
    pub id: i64,
    /// When the record was committed, in Unix milliseconds (wall clock: may go backwards).
    pub enqueued_ms: i64,
    pub record: Record,
}

/// What the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Number of rows.
    pub depth: u64,
    /// Sum of the topic and payload lengths of the rows, in bytes.
    pub bytes: u64,
    /// `enqueued_ms` of the first row (the next one to send), if any.
    pub oldest_ms: Option<i64>,
    /// The last id committed (0 when none ever was); kept when the queue empties.
    pub last_id: i64,
}

/// Counters of the queue since open, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Write transactions committed (one per group commit).
    pub commits: u64,
    /// Write transactions that failed; each failure was reported to every request of its batch.
    pub failed_commits: u64,
    /// Messages in, out, dropped and refused (per reason) since open.
    pub messages: Totals,
}

/// Where the worker's time comes from (`enqueued_ms`, `max_age`).
#[derive(Debug, Clone, Default)]
pub(crate) enum Clock {
    /// The wall clock.
    #[default]
    System,
    /// A test's clock, in Unix milliseconds.
    #[cfg(test)]
    Fake(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    pub(crate) fn now_ms(&self) -> i64 {
        match self {
            Self::System => chrono::Utc::now().timestamp_millis(),
            #[cfg(test)]
            Self::Fake(ms) => ms.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}
