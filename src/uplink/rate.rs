//! `max_rate`: a token bucket that paces the drain, so a recovering uplink does not saturate a
//! slow (cellular) link. Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// Allows `per_sec` messages a second on average, in bursts of at most a tenth of a second's
/// worth (at least one message).
#[derive(Debug, Clone)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Rate {
    pub fn new(per_sec: u32, now: Instant) -> Self {
        let per_sec = f64::from(per_sec.max(1));
        let burst = (per_sec / 10.0).max(1.0);
        Self {
            per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token: `Ok` to send now, or how long to wait for the next token.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_rate_after_a_small_burst() {
        let t0 = Instant::now();
        let mut r = Rate::new(100, t0);
        // A burst of 10 (a tenth of a second's worth), then one every 10 ms.
        for _ in 0..10 {
            assert_eq!(r.take(t0), Ok(()));
        }
        let wait = r.take(t0).expect_err("empty");
        assert!(
            wait <= Duration::from_millis(10) && wait > Duration::from_millis(9),
            "{wait:?}"
        );
        assert_eq!(r.take(t0 + Duration::from_millis(10)), Ok(()));
        assert!(r.take(t0 + Duration::from_millis(10)).is_err());
        // A long pause does not bank more than the burst.
        let later = t0 + Duration::from_secs(60);
        let sent = (0..100).take_while(|_| r.take(later).is_ok()).count();
        assert_eq!(sent, 10);
    }

    #[test]
    fn slow_rates_still_send_one_at_a_time() {
        let t0 = Instant::now();
        let mut r = Rate::new(1, t0);
        assert_eq!(r.take(t0), Ok(()));
        assert!(r.take(t0 + Duration::from_millis(500)).is_err());
        assert_eq!(r.take(t0 + Duration::from_millis(1000)), Ok(()));
    }
}
