//! What a line does next: which slave's poll cycle, or which isolated slave's probe.
//!
//! Pure: the candidates (each with its due time) and the time now in, one choice out.
//! Rules:
//! - poll cycles run earliest due first (ties: the slave listed first), so every slave of a
//!   line is served in turn and none waits for another's whole schedule;
//! - a probe of an isolated slave runs only when it fits: when it can finish (its timeout) before
//!   the next poll cycle is due. A probe that found no room within one back-off interval of its
//!   due time runs anyway (it is *forced*), so a saturated bus still notices a slave coming
//!   back. On a bus with slack, probes thus take no time from the healthy slaves at all; on a
//!   saturated one, at most one timeout per back-off interval (see `breaker.rs`).

use std::time::Duration;

use tokio::time::Instant;

/// What a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Poll cycle of one poll class (interval) of a slave.
    Cycle { class: usize },
    /// One request to an isolated slave, to see whether it is back.
    Probe,
}

/// Something a line could do, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the slave on the line.
    pub slave: usize,
    pub job: Job,
    /// When it is due.
    pub due: Instant,
    /// Probes: how long it may take (the slave's timeout).
    pub cost: Duration,
    /// Probes: from when it runs even without room.
    pub forced: Instant,
}

impl Candidate {
    pub fn cycle(slave: usize, class: usize, due: Instant) -> Self {
        Self {
            slave,
            job: Job::Cycle { class },
            due,
            cost: Duration::ZERO,
            forced: due,
        }
    }

    pub fn probe(slave: usize, due: Instant, cost: Duration, forced: Instant) -> Self {
        Self {
            slave,
            job: Job::Probe,
            due,
            cost,
            forced,
        }
    }
}

/// The candidate to wait for and run next (`None` when there are none). Its `due` may be in the
/// past: run it at once.
pub fn pick(now: Instant, candidates: &[Candidate]) -> Option<Candidate> {
    let first = |probe: bool| {
        candidates
            .iter()
            .filter(|c| (c.job == Job::Probe) == probe)
            .min_by_key(|c| (c.due, c.slave))
            .copied()
    };
    match (first(false), first(true)) {
        (cycle, None) => cycle,
        (None, probe) => probe,
        (Some(cycle), Some(probe)) => {
            let start = probe.due.max(now);
            let fits = start + probe.cost <= cycle.due.max(now);
            let forced = probe.due <= now && now >= probe.forced;
            if forced || (probe.due <= cycle.due && fits) {
                Some(probe)
            } else {
                Some(cycle)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn cycles_run_earliest_first_ties_by_slave() {
        let t0 = Instant::now();
        let c = [
            Candidate::cycle(2, 0, t0 + ms(10)),
            Candidate::cycle(1, 0, t0 + ms(10)),
            Candidate::cycle(0, 1, t0 + ms(20)),
        ];
        assert_eq!(pick(t0, &c), Some(c[1]));
        assert_eq!(pick(t0, &[]), None);
    }

    #[test]
    fn a_probe_runs_when_it_fits_before_the_next_cycle() {
        let t0 = Instant::now();
        let probe = Candidate::probe(3, t0, ms(100), t0 + ms(5000));
        // the next cycle is 150 ms away: a 100 ms probe fits
        let roomy = [Candidate::cycle(0, 0, t0 + ms(150)), probe];
        assert_eq!(pick(t0, &roomy), Some(probe));
        // 50 ms away: it does not; the cycle goes first
        let tight = [Candidate::cycle(0, 0, t0 + ms(50)), probe];
        assert_eq!(pick(t0, &tight), Some(tight[0]));
        // a lone probe runs when due
        assert_eq!(pick(t0, &[probe]), Some(probe));
    }

    #[test]
    fn a_probe_without_room_is_forced_after_its_grace() {
        let t0 = Instant::now();
        let probe = Candidate::probe(3, t0, ms(100), t0 + ms(5000));
        // a saturated bus: some cycle is always overdue
        let saturated = [Candidate::cycle(0, 0, t0), probe];
        assert_eq!(pick(t0 + ms(4999), &saturated), Some(saturated[0]));
        assert_eq!(pick(t0 + ms(5000), &saturated), Some(probe));
    }

    #[test]
    fn a_probe_not_yet_due_never_goes_first() {
        let t0 = Instant::now();
        let probe = Candidate::probe(3, t0 + ms(500), ms(100), t0 + ms(5000));
        let c = [Candidate::cycle(0, 0, t0 + ms(200)), probe];
        assert_eq!(pick(t0, &c), Some(c[0]));
    }
}
