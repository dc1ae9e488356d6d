//! The per-slave circuit breaker: after [`THRESHOLD`] requests in a row get no answer, a slave
//! is isolated — marked offline and polled no more, except for one probe request per back-off
//! interval — until it answers again.
//!
//! Pure (time is passed in). Invariants:
//! - the breaker opens on the `THRESHOLD`-th consecutive unanswered request, never earlier;
//! - any answer (a value or an exception: the slave is alive) closes it and clears the count;
//! - while open, probes are at least `floor / 2` apart ([`Backoff`]'s equal jitter draws each
//!   delay from `[d/2, d]` with `d ≥ floor`), so on a shared bus a dead slave costs at most one
//!   timeout per `floor / 2`. The line chooses `floor` as 40 timeouts there, which bounds the
//!   bus time a dead slave takes from the others to 1/20 = 5%.

use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;

/// Consecutive unanswered requests that open the breaker.
pub const THRESHOLD: u32 = 3;
/// Longest wait between two probes (unless one timeout × 40 is longer).
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// Breaker state of one slave.
#[derive(Debug, Clone)]
pub struct Breaker {
    failures: u32,
    next_probe: Option<Instant>,
    /// The delay that scheduled `next_probe`.
    delay: Duration,
    backoff: Backoff,
}

impl Breaker {
    /// A closed breaker whose probes start `floor` apart (at most; see the module doc) and back
    /// off to 60 s or `floor`, whichever is longer.
    pub fn new(floor: Duration) -> Self {
        Self {
            failures: 0,
            next_probe: None,
            delay: floor,
            backoff: Backoff::new(floor, MAX_PROBE_INTERVAL.max(floor)),
        }
    }

    /// Whether the slave is isolated.
    pub fn is_open(&self) -> bool {
        self.next_probe.is_some()
    }

    /// When the next probe is due (only while open).
    pub fn next_probe(&self) -> Option<Instant> {
        self.next_probe
    }

    /// The back-off interval of the current probe: how long it may wait for room on the bus
    /// before it is forced (see `schedule.rs`).
    pub fn grace(&self) -> Duration {
        self.delay
    }

    /// Unanswered requests in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The slave answered. Returns true when that closed an open breaker.
    pub fn answered(&mut self) -> bool {
        self.failures = 0;
        self.backoff.reset();
        self.next_probe.take().is_some()
    }

    /// A request got no answer at `now`; `unit` is a uniform random number in `[0, 1)` for the
    /// jitter. Returns true when this opened the breaker.
    pub fn unanswered(&mut self, now: Instant, unit: f64) -> bool {
        self.failures = self.failures.saturating_add(1);
        let was_open = self.is_open();
        if was_open || self.failures >= THRESHOLD {
            self.delay = self.backoff.next_with(unit);
            self.next_probe = Some(now + self.delay);
        }
        !was_open && self.is_open()
    }

    /// Forgets everything (the line was re-established: old failures say nothing now).
    pub fn reset(&mut self) {
        self.answered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_secs(4);

    #[test]
    fn opens_on_the_third_failure_in_a_row() {
        let t0 = Instant::now();
        let mut b = Breaker::new(FLOOR);
        assert!(!b.unanswered(t0, 0.5));
        assert!(!b.unanswered(t0, 0.5));
        assert!(!b.is_open());
        assert!(b.unanswered(t0, 0.5), "third failure opens it");
        assert!(b.is_open());
        assert_eq!(b.failures(), 3);
        let probe = b.next_probe().expect("a probe is scheduled");
        assert!(
            probe >= t0 + FLOOR / 2 && probe <= t0 + FLOOR,
            "{:?}",
            probe - t0
        );
    }

    #[test]
    fn an_answer_in_between_restarts_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(FLOOR);
        b.unanswered(t0, 0.0);
        b.unanswered(t0, 0.0);
        assert!(!b.answered(), "was not open");
        b.unanswered(t0, 0.0);
        b.unanswered(t0, 0.0);
        assert!(!b.is_open());
    }

    #[test]
    fn probes_back_off_never_closer_than_half_the_floor_and_close_on_an_answer() {
        let t0 = Instant::now();
        let mut b = Breaker::new(FLOOR);
        for _ in 0..3 {
            b.unanswered(t0, 0.0);
        }
        let mut gaps = Vec::new();
        let mut now = t0;
        for i in 0..12 {
            let due = b.next_probe().expect("open");
            gaps.push(due - now);
            now = due;
            assert!(!b.unanswered(now, f64::from(i % 4) / 4.0), "stays open");
        }
        assert!(gaps.iter().all(|g| *g >= FLOOR / 2), "{gaps:?}");
        assert!(gaps.iter().all(|g| *g <= MAX_PROBE_INTERVAL), "{gaps:?}");
        assert!(gaps[8] >= Duration::from_secs(30), "backs off: {gaps:?}");
        assert!(b.answered(), "an answer closes it");
        assert!(!b.is_open());
        assert_eq!(b.failures(), 0);
        // and the back-off starts again from the floor
        for _ in 0..3 {
            b.unanswered(now, 1.0);
        }
        assert_eq!(b.next_probe(), Some(now + FLOOR));
    }

    #[test]
    fn a_floor_above_the_cap_wins() {
        let t0 = Instant::now();
        let floor = Duration::from_secs(120);
        let mut b = Breaker::new(floor);
        for _ in 0..5 {
            b.unanswered(t0, 1.0);
        }
        assert_eq!(b.next_probe(), Some(t0 + floor));
    }
}
