//! Report-by-exception for one point: decides when a new observation is published.
//!
//! Rules (pure, time passed in):
//! - the first observation is always published;
//! - a change of quality (good ↔ bad) is published at once;
//! - a good value is published when it differs from the last *published* value by more than
//!   the deadband (absolute, or a percentage of the last published value's magnitude; any
//!   change of a bool, a text, or when the deadband is 0), so slow drift is never hidden; an
//!   array is published when any element moved beyond the deadband or its length changed;
//!   NaN appearing or disappearing is a change, NaN staying NaN is not;
//! - a bad observation is republished when its reason changes;
//! - anything is republished when the heartbeat has elapsed since the last publication, so a
//!   silent value is still proven alive.

use std::time::{Duration, Instant};

use super::codec::Value;
use crate::config::Deadband;

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
    deadband: Deadband,
    heartbeat: Duration,
    last: Option<(Observation, Instant)>,
}

impl Reporter {
    pub fn new(deadband: Deadband, heartbeat: Duration) -> Self {
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
            (Observation::Good(a), Observation::Good(b)) => self.moved(a, b),
            (Observation::Bad(a), Observation::Bad(b)) => a != b,
            _ => true,
        }
    }

    /// Whether `new` is news compared with the last published `last`.
    fn moved(&self, last: &Value, new: &Value) -> bool {
        match (last, new) {
            (Value::Bool(x), Value::Bool(y)) => x != y,
            (Value::Text(x), Value::Text(y)) => x != y,
            (Value::Array(x), Value::Array(y)) => {
                x.len() != y.len() || x.iter().zip(y).any(|(a, b)| self.moved(a, b))
            }
            (
                Value::Int(_) | Value::UInt(_) | Value::Float(_),
                Value::Int(_) | Value::UInt(_) | Value::Float(_),
            ) => {
                let (a, b) = (last.as_f64(), new.as_f64());
                if a.is_nan() || b.is_nan() {
                    return a.is_nan() != b.is_nan();
                }
                let band = match self.deadband {
                    Deadband::Absolute(d) => d,
                    Deadband::Percent(p) => a.abs() * p / 100.0,
                };
                if band > 0.0 {
                    (b - a).abs() > band
                } else {
                    // Any change, including between values that compare equal as f64 but
                    // differ in kind.
                    last != new
                }
            }
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

    fn abs(d: f64) -> Deadband {
        Deadband::Absolute(d)
    }

    #[test]
    fn first_observation_is_published() {
        let mut r = Reporter::new(abs(0.5), HB);
        assert!(r.observe(Instant::now(), &good(1.0)));
    }

    #[test]
    fn deadband_compares_with_last_published_value() {
        let t0 = Instant::now();
        let mut r = Reporter::new(abs(0.5), HB);
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
        let mut r = Reporter::new(abs(0.0), HB);
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
        let mut r = Reporter::new(abs(0.0), HB);
        assert!(r.observe(t0, &good(1.0)));
        assert!(!r.observe(t0 + HB - Duration::from_millis(1), &good(1.0)));
        assert!(r.observe(t0 + HB, &good(1.0)));
        assert!(!r.observe(t0 + HB + Duration::from_secs(1), &good(1.0)));
    }

    #[test]
    fn quality_changes_and_new_reasons_are_published() {
        let t0 = Instant::now();
        let mut r = Reporter::new(abs(100.0), HB);
        assert!(r.observe(t0, &good(1.0)));
        assert!(r.observe(t0, &Observation::Bad("timeout".into())));
        assert!(!r.observe(t0, &Observation::Bad("timeout".into())));
        assert!(r.observe(t0, &Observation::Bad("connection refused".into())));
        assert!(r.observe(t0, &good(1.0)), "recovery is published at once");
    }

    #[test]
    fn invalidate_forces_next_publication() {
        let t0 = Instant::now();
        let mut r = Reporter::new(abs(0.0), HB);
        assert!(r.observe(t0, &good(1.0)));
        r.invalidate();
        assert!(r.observe(t0, &good(1.0)));
    }

    #[test]
    fn percent_deadband_is_relative_to_the_last_published_value() {
        let t0 = Instant::now();
        let mut r = Reporter::new(Deadband::Percent(10.0), HB);
        assert!(r.observe(t0, &good(200.0)));
        assert!(!r.observe(t0, &good(219.0)), "9.5% of 200");
        assert!(!r.observe(t0, &good(180.0)), "exactly 10% is not beyond it");
        assert!(r.observe(t0, &good(221.0)));
        assert!(!r.observe(t0, &good(200.0)), "10% of 221 is 22.1");
        assert!(r.observe(t0, &good(-1.0)));
        assert!(r.observe(t0, &good(0.0)));
        assert!(
            r.observe(t0, &good(0.001)),
            "after a published 0 any change counts"
        );
    }

    #[test]
    fn arrays_text_and_nan() {
        let t0 = Instant::now();
        let arr = |v: &[f64]| {
            Observation::Good(Value::Array(v.iter().map(|x| Value::Float(*x)).collect()))
        };
        let mut r = Reporter::new(abs(0.5), HB);
        assert!(r.observe(t0, &arr(&[1.0, 2.0])));
        assert!(!r.observe(t0, &arr(&[1.4, 2.4])));
        assert!(
            r.observe(t0, &arr(&[1.0, 2.6])),
            "one element beyond the deadband"
        );
        assert!(r.observe(t0, &arr(&[1.0, 2.6, 3.0])), "length changed");
        let text = |t: &str| Observation::Good(Value::Text(t.into()));
        assert!(r.observe(t0, &text("run")));
        assert!(!r.observe(t0, &text("run")));
        assert!(r.observe(t0, &text("stop")));
        assert!(r.observe(t0, &good(f64::NAN)));
        assert!(
            !r.observe(t0, &good(f64::NAN)),
            "NaN staying NaN is not news"
        );
        assert!(r.observe(t0, &good(1.0)));
    }
}
