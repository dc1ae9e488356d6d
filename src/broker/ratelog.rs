//! Rate limiting for the broker's per-client log lines (connects, disconnects, refusals), so a
//! reconnect storm or a password-guessing client cannot flood the journal.
//!
//! Each [`RateLimit`] lets `burst` lines through per `window`; the lines over that are counted,
//! and the next line that gets through reports how many were suppressed (`suppressed=N`). The
//! events themselves are always counted in [`super::stats::BrokerStats`]; only logging is
//! limited.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A window-based limit for one kind of log line.
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new(State {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be logged now, `None` when it
    /// must be dropped (and is counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now.duration_since(s.started) >= self.window {
            s.started = now;
            s.logged = 0;
        }
        if s.logged < self.burst {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_burst_through_then_counts_what_it_drops() {
        let limit = RateLimit::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.admit_at(t0), Some(0));
        assert_eq!(limit.admit_at(t0), Some(0));
        assert_eq!(limit.admit_at(t0), None);
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(1)), None);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            limit.admit_at(later),
            Some(2),
            "reports the suppressed lines"
        );
        assert_eq!(limit.admit_at(later), Some(0));
    }
}
