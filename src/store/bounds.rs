//! The queue's bounds: `max_bytes`, `max_messages`, `max_age`, and what happens when they are
//! reached (`on_full`). Pure decisions; the worker carries them out inside its transaction.
//!
//! Rules:
//! - `max_age` always applies: rows older than it are dropped, oldest first, whatever `on_full`
//!   says. Only a prefix of the queue (in id order) is ever dropped, so a newer message is never
//!   dropped while an older one is kept, even when the wall clock went back.
//! - `max_bytes` / `max_messages` with [`OnFull::DropOldest`]: a new message is always taken;
//!   then the oldest rows are dropped until both bounds hold again.
//! - With [`OnFull::RejectNew`]: a request that would break a bound is refused whole (its
//!   caller is told; a LAN client's publish is refused), and nothing queued is dropped.
//! - A single record larger than `max_bytes` is refused under either policy: it could never fit.
//!
//! Sizes are topic + payload bytes ([`Stats::bytes`](super::Stats::bytes)); the file on disk is
//! larger by SQLite's per-row and per-page overhead (see `docs/benchmarks.md`).

use std::time::Duration;

use super::counters::{Counter, Totals};
pub use crate::config::OnFull;

/// The bounds of a queue; `None` means unbounded in that dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_bytes: Option<u64>,
    pub max_messages: Option<u64>,
    pub max_age: Option<Duration>,
    pub on_full: OnFull,
}

/// What the queue holds, as far as the bounds are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Level {
    pub(crate) depth: u64,
    pub(crate) bytes: u64,
}

/// Why a new request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// One record alone is larger than `max_bytes`.
    TooLarge { size: u64, max_bytes: u64 },
    /// `on_full: reject_new` and the request does not fit.
    Full { bound: &'static str, limit: u64 },
}

impl Refusal {
    /// The counter its records are counted in.
    pub(crate) fn counter(self) -> Counter {
        match self {
            Self::TooLarge { .. } => Counter::RejectedTooLarge,
            Self::Full { .. } => Counter::RejectedFull,
        }
    }
}

impl Limits {
    /// Whether a request of records with these sizes may be inserted into a queue at `level`.
    pub(crate) fn admit(&self, level: Level, sizes: &[u64]) -> Result<(), Refusal> {
        if let (Some(max_bytes), Some(&size)) = (
            self.max_bytes,
            sizes.iter().find(|&&s| Some(s) > self.max_bytes),
        ) {
            return Err(Refusal::TooLarge { size, max_bytes });
        }
        if self.on_full == OnFull::RejectNew {
            let added: u64 = sizes.iter().sum();
            if let Some(limit) = self
                .max_messages
                .filter(|&max| level.depth + sizes.len() as u64 > max)
            {
                return Err(Refusal::Full {
                    bound: "max_messages",
                    limit,
                });
            }
            if let Some(limit) = self.max_bytes.filter(|&max| level.bytes + added > max) {
                return Err(Refusal::Full {
                    bound: "max_bytes",
                    limit,
                });
            }
        }
        Ok(())
    }

    /// The oldest time a row may have been enqueued at `now_ms` to be kept.
    pub(crate) fn cutoff_ms(&self, now_ms: i64) -> Option<i64> {
        self.max_age
            .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Whether `level` breaks a size bound that drops the oldest rows.
    pub(crate) fn over(&self, level: Level) -> bool {
        self.on_full == OnFull::DropOldest
            && (self.max_messages.is_some_and(|m| level.depth > m)
                || self.max_bytes.is_some_and(|m| level.bytes > m))
    }
}

/// Which prefix of the queue to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Drops {
    /// Drop every row with an id up to this one (`None`: drop nothing).
    pub(crate) up_to: Option<i64>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) tally: Totals,
}

/// One row as the bounds see it: `(id, size, enqueued_ms)`, oldest first.
pub(crate) type Oldest = (i64, u64, i64);

/// Plans the drops for a queue at `level`, reading rows oldest first from `oldest` only as far
/// as needed. `cutoff_ms` is [`Limits::cutoff_ms`], when age applies now.
pub(crate) fn plan(
    limits: &Limits,
    level: Level,
    cutoff_ms: Option<i64>,
    oldest: impl IntoIterator<Item = Oldest>,
) -> Drops {
    let mut drops = Drops::default();
    let mut left = level;
    for (id, size, enqueued_ms) in oldest {
        let reason = if cutoff_ms.is_some_and(|cut| enqueued_ms < cut) {
            Counter::DroppedMaxAge
        } else if limits.on_full == OnFull::DropOldest
            && limits.max_messages.is_some_and(|m| left.depth > m)
        {
            Counter::DroppedMaxMessages
        } else if limits.on_full == OnFull::DropOldest
            && limits.max_bytes.is_some_and(|m| left.bytes > m)
        {
            Counter::DroppedMaxBytes
        } else {
            break;
        };
        drops.up_to = Some(id);
        drops.rows += 1;
        drops.bytes += size;
        drops.tally.add(reason, 1);
        left.depth = left.depth.saturating_sub(1);
        left.bytes = left.bytes.saturating_sub(size);
    }
    drops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: Option<u64>, max_messages: Option<u64>, on_full: OnFull) -> Limits {
        Limits {
            max_bytes,
            max_messages,
            max_age: None,
            on_full,
        }
    }

    fn level(depth: u64, bytes: u64) -> Level {
        Level { depth, bytes }
    }

    /// Rows 1..=n of 10 bytes, enqueued at ms 100, 200, ...
    fn rows(n: i64) -> Vec<Oldest> {
        (1..=n).map(|i| (i, 10, i * 100)).collect()
    }

    #[test]
    fn drop_oldest_admits_and_plans_the_smallest_prefix() {
        let l = limits(Some(35), Some(10), OnFull::DropOldest);
        assert_eq!(l.admit(level(5, 50), &[10, 10]), Ok(()));
        // 5 rows of 10 bytes = 50 > 35: drop two.
        let d = plan(&l, level(5, 50), None, rows(5));
        assert_eq!((d.up_to, d.rows, d.bytes), (Some(2), 2, 20));
        assert_eq!(d.tally.get(Counter::DroppedMaxBytes), 2);
        // Within bounds: nothing, and no row needs reading.
        assert_eq!(plan(&l, level(3, 30), None, rows(3)), Drops::default());
    }

    #[test]
    fn the_first_bound_that_applies_names_the_drop() {
        let l = Limits {
            max_age: Some(Duration::from_millis(250)),
            ..limits(Some(25), Some(4), OnFull::DropOldest)
        };
        // now 500: rows at 100 and 200 are older than 250 ms; then 6 - 2 = 4 rows fit the count,
        // 40 bytes do not fit 25: two more for bytes.
        let d = plan(&l, level(6, 60), l.cutoff_ms(500), rows(6));
        assert_eq!(d.up_to, Some(4));
        assert_eq!(d.tally.get(Counter::DroppedMaxAge), 2);
        assert_eq!(d.tally.get(Counter::DroppedMaxMessages), 0);
        assert_eq!(d.tally.get(Counter::DroppedMaxBytes), 2);

        let l = limits(None, Some(4), OnFull::DropOldest);
        let d = plan(&l, level(6, 60), None, rows(6));
        assert_eq!(d.tally.get(Counter::DroppedMaxMessages), 2);
    }

    #[test]
    fn age_drops_only_a_prefix_even_when_the_clock_went_back() {
        let l = Limits {
            max_age: Some(Duration::from_millis(100)),
            ..Limits::default()
        };
        // Row 2 was stamped later than row 3 (clock stepped back): row 3 is old, but row 2 keeps
        // it (and everything after it) in the queue.
        let oldest = [(1, 10, 100), (2, 10, 900), (3, 10, 150)];
        let d = plan(&l, level(3, 30), l.cutoff_ms(1000), oldest);
        assert_eq!((d.up_to, d.rows), (Some(1), 1));
    }

    #[test]
    fn reject_new_refuses_what_does_not_fit_and_never_drops_for_size() {
        let l = limits(Some(100), Some(3), OnFull::RejectNew);
        assert_eq!(l.admit(level(2, 50), &[10]), Ok(()));
        assert_eq!(
            l.admit(level(3, 50), &[10]),
            Err(Refusal::Full {
                bound: "max_messages",
                limit: 3
            })
        );
        assert_eq!(
            l.admit(level(1, 95), &[10]),
            Err(Refusal::Full {
                bound: "max_bytes",
                limit: 100
            })
        );
        // Whole requests: two records that fit alone but not together.
        assert!(l.admit(level(2, 0), &[1, 1]).is_err());
        assert!(!l.over(level(10, 1000)));
        assert_eq!(plan(&l, level(10, 1000), None, rows(10)), Drops::default());
    }

    #[test]
    fn a_record_larger_than_max_bytes_is_refused_under_both_policies() {
        for on_full in [OnFull::DropOldest, OnFull::RejectNew] {
            let l = limits(Some(100), None, on_full);
            assert_eq!(
                l.admit(level(0, 0), &[5, 101]),
                Err(Refusal::TooLarge {
                    size: 101,
                    max_bytes: 100
                })
            );
            assert_eq!(l.admit(level(0, 0), &[100]), Ok(()));
        }
    }

    #[test]
    fn unbounded_never_refuses_or_drops() {
        let l = Limits::default();
        assert_eq!(
            l.admit(level(u64::MAX / 2, u64::MAX / 2), &[1 << 40]),
            Ok(())
        );
        assert!(!l.over(level(u64::MAX, u64::MAX)));
        assert_eq!(l.cutoff_ms(1000), None);
    }
}
