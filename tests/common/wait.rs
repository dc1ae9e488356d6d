//! Waiting with a deadline. Every wait in the kit ends, and a wait that fails says what it
//! waited for. Two kinds: [`Watch`] for state that background threads update (woken by a
//! condition variable, no polling), and [`poll_until`] for conditions with no event to wait on
//! (a TCP port opening, a fixture counter), re-checked every [`POLL_INTERVAL`].

use std::fmt::Display;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The default for waits that should be quick on a healthy machine (a process starting, a
/// message crossing a broker). Generous, because a slow CI machine is not a failure.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// How often [`poll_until`] re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A value updated by background threads that tests wait on.
///
/// A panic in a holder does not poison it for the others: the test that panicked reports its
/// own failure, and the drop code still gets to read the state.
pub struct Watch<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watch<T> {
    pub fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the value and wakes every waiter.
    pub fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let result = change(&mut self.lock());
        self.changed.notify_all();
        result
    }

    /// Looks at the value now.
    pub fn read<R>(&self, look: impl FnOnce(&T) -> R) -> R {
        look(&self.lock())
    }

    /// Waits until `check` returns `Some`, re-checking after every update; `None` when
    /// `timeout` passes first.
    pub fn wait_for<R>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&T) -> Option<R>,
    ) -> Option<R> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            if let Some(found) = check(&guard) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Re-checks `check` every [`POLL_INTERVAL`] until it returns `Some`; `None` after `timeout`.
/// `check` always runs at least once, and once more at the deadline.
pub fn poll<R>(timeout: Duration, mut check: impl FnMut() -> Option<R>) -> Option<R> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        thread::sleep(left.min(POLL_INTERVAL));
    }
}

/// [`poll`], panicking with `what` when `timeout` passes first.
pub fn poll_until<R>(what: impl Display, timeout: Duration, check: impl FnMut() -> Option<R>) -> R {
    poll(timeout, check).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}
