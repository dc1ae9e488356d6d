//! What the queue counts: messages in and out, and every message it dropped or refused, per
//! reason.
//!
//! The same [`Totals`] shape serves twice: since the queue was opened (in memory, for metrics:
//! [`Queue::counters`](super::Queue::counters)) and since the file was created (the `counters`
//! table, written in the same transaction as the rows they count, so they are exact across
//! crashes and readable by `ferrule queue stats` while the agent runs).
//!
//! Drops are logged rate-limited (`DropLog`): the first at once, then at most one summary per
//! [`DROP_LOG_INTERVAL`], so a queue that stays full does not flood the log.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One count kept by the queue. The names are those of the `counters` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Messages committed to the queue.
    Enqueued,
    /// Messages deleted after the upstream acknowledged them.
    Delivered,
    /// Oldest messages dropped to stay within `max_bytes` (`on_full: drop_oldest`).
    DroppedMaxBytes,
    /// Oldest messages dropped to stay within `max_messages` (`on_full: drop_oldest`).
    DroppedMaxMessages,
    /// Messages dropped because they were older than `max_age`.
    DroppedMaxAge,
    /// New messages refused because the queue was full (`on_full: reject_new`).
    RejectedFull,
    /// New messages refused because one alone is larger than `max_bytes`.
    RejectedTooLarge,
    /// Messages deleted by `ferrule queue purge`.
    Purged,
    /// Messages the upstream broker refused by reason code (MQTT 5), deleted unsent.
    RefusedUpstream,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Self::Enqueued,
        Self::Delivered,
        Self::DroppedMaxBytes,
        Self::DroppedMaxMessages,
        Self::DroppedMaxAge,
        Self::RejectedFull,
        Self::RejectedTooLarge,
        Self::Purged,
        Self::RefusedUpstream,
    ];

    /// The name in the `counters` table, in logs and in `ferrule queue stats`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Enqueued => "enqueued",
            Self::Delivered => "delivered",
            Self::DroppedMaxBytes => "dropped_max_bytes",
            Self::DroppedMaxMessages => "dropped_max_messages",
            Self::DroppedMaxAge => "dropped_max_age",
            Self::RejectedFull => "rejected_full",
            Self::RejectedTooLarge => "rejected_too_large",
            Self::Purged => "purged",
            Self::RefusedUpstream => "refused_upstream",
        }
    }

    /// Whether the counter is a message lost to a bound (dropped, or refused on arrival).
    pub fn is_loss(self) -> bool {
        !matches!(self, Self::Enqueued | Self::Delivered | Self::Purged)
    }

    fn from_name(name: &str) -> Option<Counter> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A value for each [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals([u64; Counter::ALL.len()]);

impl Totals {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter.index()]
    }

    pub(crate) fn add(&mut self, counter: Counter, n: u64) {
        let slot = &mut self.0[counter.index()];
        *slot = slot.saturating_add(n);
    }

    /// Messages lost to the bounds: every drop and refusal.
    pub fn lost(&self) -> u64 {
        Counter::ALL
            .into_iter()
            .filter(|c| c.is_loss())
            .map(|c| self.get(c))
            .sum()
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    /// `(counter, value)` for every counter, in [`Counter::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.into_iter().map(|c| (c, self.get(c)))
    }

    pub(crate) fn merge(&mut self, other: &Totals) {
        for (c, n) in other.iter() {
            self.add(c, n);
        }
    }

    /// Reads the `counters` table; unknown names (from a newer build) are ignored.
    pub(crate) fn read(conn: &rusqlite::Connection) -> rusqlite::Result<Totals> {
        let mut totals = Totals::default();
        let mut stmt = conn.prepare_cached(super::schema::COUNTERS)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let value: i64 = row.get(1)?;
            if let Some(c) = Counter::from_name(&name) {
                totals.add(c, u64::try_from(value).unwrap_or(0));
            }
        }
        Ok(totals)
    }

    /// Adds these values to the `counters` table (inside the caller's transaction).
    pub(crate) fn persist(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(super::schema::ADD_COUNTER)?;
        for (c, n) in self.iter().filter(|(_, n)| *n > 0) {
            stmt.execute(rusqlite::params![
                c.name(),
                i64::try_from(n).unwrap_or(i64::MAX)
            ])?;
        }
        Ok(())
    }
}

/// Counters since open, written by the worker and read by every handle.
#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    pub(crate) commits: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    totals: [AtomicU64; Counter::ALL.len()],
}

impl SharedCounters {
    pub(crate) fn add(&self, tally: &Totals) {
        for (c, n) in tally.iter().filter(|(_, n)| *n > 0) {
            self.totals[c.index()].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in Counter::ALL {
            t.add(c, self.totals[c.index()].load(Ordering::Relaxed));
        }
        t
    }
}

/// At most one drop summary per this interval.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limited logging of drops and refusals.
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    last_log: Option<Instant>,
    /// Losses not logged yet.
    pending: Totals,
}

impl DropLog {
    /// Notes the losses of a committed batch; logs when the interval allows.
    pub(crate) fn note(&mut self, batch: &Totals, path: &Path) {
        for c in Counter::ALL.into_iter().filter(|c| c.is_loss()) {
            self.pending.add(c, batch.get(c));
        }
        self.flush(path, Instant::now());
    }

    /// Logs the pending losses if there are any and the last log is old enough.
    pub(crate) fn flush(&mut self, path: &Path, now: Instant) {
        if self.pending.lost() == 0 {
            return;
        }
        if self
            .last_log
            .is_some_and(|at| now.duration_since(at) < DROP_LOG_INTERVAL)
        {
            return;
        }
        let p = &self.pending;
        tracing::warn!(
            path = %path.display(),
            dropped_max_bytes = p.get(Counter::DroppedMaxBytes),
            dropped_max_messages = p.get(Counter::DroppedMaxMessages),
            dropped_max_age = p.get(Counter::DroppedMaxAge),
            rejected_full = p.get(Counter::RejectedFull),
            rejected_too_large = p.get(Counter::RejectedTooLarge),
            refused_upstream = p.get(Counter::RefusedUpstream),
            "queue: {} message(s) dropped or refused{}",
            p.lost(),
            match self.last_log {
                Some(at) => format!(" in the last {}s", now.duration_since(at).as_secs()),
                None => String::new(),
            }
        );
        self.last_log = Some(now);
        self.pending = Totals::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for c in Counter::ALL {
            assert_eq!(Counter::from_name(c.name()), Some(c));
            assert_eq!(Counter::ALL[c.index()], c);
        }
    }

    #[test]
    fn losses_are_the_drops_and_refusals() {
        let mut t = Totals::default();
        for (i, c) in Counter::ALL.into_iter().enumerate() {
            t.add(c, 1 << i);
        }
        assert_eq!(t.lost(), 4 + 8 + 16 + 32 + 64 + 256);
    }
}
