//! Capped exponential backoff with jitter, for reconnecting devices and the uplink.
//!
//! The n-th delay is drawn uniformly from `[d/2, d]` where `d = min(initial × 2ⁿ, max)`
//! ("equal jitter"): it never waits longer than the cap, never retries in a tight loop, and
//! spreads the reconnects of many gateways or devices that failed at the same moment.

use std::time::Duration;

/// Backoff state of one reconnecting thing.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; `unit` is a uniform random number in `[0, 1)`.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay before the next attempt, with thread-local randomness.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// Call after a success: the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Number of consecutive failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let upper: Vec<_> = (0..6).map(|_| b.next_with(1.0)).collect();
        assert_eq!(
            upper,
            [100, 200, 400, 800, 1000, 1000]
                .map(Duration::from_millis)
                .to_vec()
        );
        b.reset();
        assert_eq!(
            b.next_with(0.0),
            Duration::from_millis(50),
            "lower half after reset"
        );
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        for i in 0..40 {
            let u = f64::from(i) / 40.0;
            let d = b.next_with(u);
            let ceiling = Duration::from_millis(200)
                .saturating_mul(2u32.saturating_pow(i.min(31) as u32))
                .min(Duration::from_secs(30));
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {i}: {d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
