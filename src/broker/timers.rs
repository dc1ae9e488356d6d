//! The engine's timers: wills waiting for their delay and sessions waiting to expire, in one
//! ordered map served by one task (no task per client).
//!
//! Invariant: a timer only says "look again at this moment"; what it finds then decides (a
//! client that came back, a session that was renewed): stale timers are harmless.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use tokio::sync::Notify;

use super::session::Session;

/// What is due.
#[derive(Debug)]
pub(super) enum Timer {
    /// The will of this client id, after its delay.
    Will(Arc<str>),
    /// This session, if its client is still away and its lifetime is over.
    Expire(Weak<Session>),
}

/// The pending timers.
#[derive(Debug, Default)]
pub(super) struct Timers {
    pending: Mutex<BTreeMap<(Instant, u64), Timer>>,
    seq: AtomicU64,
    pub(super) changed: Notify,
}

impl Timers {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(Instant, u64), Timer>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn schedule(&self, at: Instant, timer: Timer) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let earliest = {
            let mut pending = self.lock();
            pending.insert((at, seq), timer);
            pending.keys().next() == Some(&(at, seq))
        };
        if earliest {
            self.changed.notify_one();
        }
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.lock().keys().next().map(|(at, _)| *at)
    }

    pub(super) fn due(&self, now: Instant) -> Vec<Timer> {
        let mut pending = self.lock();
        let later = pending.split_off(&(now, u64::MAX));
        std::mem::replace(&mut *pending, later)
            .into_values()
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_timers_come_out_in_order_and_later_ones_stay() {
        let t = Timers::default();
        let now = Instant::now();
        t.schedule(now + Duration::from_secs(5), Timer::Will("late".into()));
        t.schedule(now, Timer::Will("b".into()));
        t.schedule(now - Duration::from_secs(1), Timer::Will("a".into()));
        assert_eq!(t.next(), Some(now - Duration::from_secs(1)));
        let due: Vec<String> = t
            .due(now)
            .into_iter()
            .map(|t| match t {
                Timer::Will(id) => id.to_string(),
                Timer::Expire(_) => String::new(),
            })
            .collect();
        assert_eq!(due, ["a", "b"]);
        assert_eq!(t.len(), 1);
    }
}
