//! Report-by-exception for one point: decides when a new observation is published.
//!
//! Rules (pure, time passed in):
//! - the first observation is always published;
//! - a change of quality (good ↔ bad) is published at once;
//! - a good value is published when it differs from the last *published* value by more than
//!   the deadband (a bool or any change when the deadband is 0), so slow drift is never hidden;
//! - a bad observation is republished when its reason changes;
//! - anything is republished when the heartbeat has elapsed since the last publication, so a
//!   silent value is still proven alive.

use std::time::{Duration, Instant};

use super::codec::Value;

/// One read outcome of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The point was read and decoded.
    Good(Value),
    /// The read failed; the reason is published as `error`.
    Bad(String),
}

/// Per-point publication state.
#[derive(Debug, Clone)]
pub struct Reporter {
    deadband: f64,
    heartbeat: Duration,
    last: Option<(Observation, Instant)>,
}

impl Reporter {
    pub fn new(deadband: f64, heartbeat: Duration) -> Self {
        Self {
            deadband,
            heartbeat,
            last: None,
        }
    }

    /// Whether `obs` must be published now; when it returns true, `obs` becomes the last
    /// published observation.
    pub fn observe(&mut self, now: Instant, obs: &Observation) -> bool {
        let publish = match &self.last {
            None => true,
            Some((last, at)) => {
                now.saturating_duration_since(*at) >= self.heartbeat || self.changed(last, obs)
            }
        };
        if publish {
            self.last = Some((obs.clone(), now));
        }
        publish
    }

    /// Forces the next observation to be published (after a write, the read-back is news).
    pub fn invalidate(&mut self) {
        self.last = None;
    }

    /// The last published observation.
    pub fn last(&self) -> Option<&Observation> {
        self.last.as_ref().map(|(o, _)| o)
    }

    fn changed(&self, last: &Observation, new: &Observation) -> bool {
        match (last, new) {
            (Observation::Good(a), Observation::Good(b)) => match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x != y,
                _ => {
                    let delta = (a.as_f64() - b.as_f64()).abs();
                    if self.deadband > 0.0 {
                        delta > self.deadband
                    } else {
                        // Any change, including between values that compare equal as f64
                        // but differ in kind, and NaN appearing or disappearing.
                        a != b
                    }
                }
            },
            (Observation::Bad(a), Observation::Bad(b)) => a != b,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_secs(60);

    fn good(v: f64) -> Observation {
        Observation::Good(Value::Float(v))
    }

    #[test]
    fn first_observation_is_published() {
        let mut r = Reporter::new(0.5, HB);
        assert!(r.observe(Instant::now(), &good(1.0)));
    }

    #[test]
    fn deadband_compares_with_last_published_value() {
        let t0 = Instant::now();
        let mut r = Reporter::new(0.5, HB);
        assert!(r.observe(t0, &good(10.0)));
        assert!(!r.observe(t0, &good(10.3)));
        assert!(
            !r.observe(t0, &good(10.5)),
            "exactly the deadband is not beyond it"
        );
        // Drift: each step is small but the distance to the published value grows.
        assert!(!r.observe(t0, &good(10.4)));
        assert!(r.observe(t0, &good(10.6)));
        assert!(!r.observe(t0, &good(10.2)));
        assert!(r.observe(t0, &good(10.0)));
    }

    #[test]
    fn zero_deadband_publishes_every_change_only() {
        let t0 = Instant::now();
        let mut r = Reporter::new(0.0, HB);
        assert!(r.observe(t0, &Observation::Good(Value::Int(1))));
        assert!(!r.observe(t0, &Observation::Good(Value::Int(1))));
        assert!(r.observe(t0, &Observation::Good(Value::Int(2))));
        assert!(r.observe(t0, &Observation::Good(Value::Bool(true))));
        assert!(!r.observe(t0, &Observation::Good(Value::Bool(true))));
        assert!(r.observe(t0, &Observation::Good(Value::Bool(false))));
    }

    #[test]
    fn heartbeat_republishes_unchanged_values() {
        let t0 = Instant::now();
        let mut r = Reporter::new(0.0, HB);
        assert!(r.observe(t0, &good(1.0)));
        assert!(!r.observe(t0 + HB - Duration::from_millis(1), &good(1.0)));
        assert!(r.observe(t0 + HB, &good(1.0)));
        assert!(!r.observe(t0 + HB + Duration::from_secs(1), &good(1.0)));
    }

    #[test]
    fn quality_changes_and_new_reasons_are_published() {
        let t0 = Instant::now();
        let mut r = Reporter::new(100.0, HB);
        assert!(r.observe(t0, &good(1.0)));
        assert!(r.observe(t0, &Observation::Bad("timeout".into())));
        assert!(!r.observe(t0, &Observation::Bad("timeout".into())));
        assert!(r.observe(t0, &Observation::Bad("connection refused".into())));
        assert!(r.observe(t0, &good(1.0)), "recovery is published at once");
    }

    #[test]
    fn invalidate_forces_next_publication() {
        let t0 = Instant::now();
        let mut r = Reporter::new(0.0, HB);
        assert!(r.observe(t0, &good(1.0)));
        r.invalidate();
        assert!(r.observe(t0, &good(1.0)));
    }
}
