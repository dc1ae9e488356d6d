//! The agent's supervised parts (each field line, the uplink, the command router): which are
//! running, which are down and why, and how often each was restarted. The supervisor
//! (`app::supervise`) writes it; `/health`, systemd's `STATUS=` and the metrics read it.
//!
//! Invariants: a part is listed from its first start until it is stopped for good (a reload
//! that removes it, shutdown); `restarts` only grows while it is listed; a part is `down`
//! from its failure until its next start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// Why and since when a part is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub cause: String,
    pub since: SystemTime,
}

/// One part, at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Part {
    /// Restarts after a failure since the part was first started.
    pub restarts: u64,
    /// `Some` while the part is down (failed, waiting for its restart).
    pub down: Option<Down>,
}

/// The registry of parts. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    inner: Arc<Mutex<BTreeMap<String, Part>>>,
}

impl Parts {
    /// `name` runs (first start, or a restart after [`Parts::failed`]).
    pub fn running(&self, name: &str) {
        let mut parts = self.lock();
        let part = parts.entry(name.to_owned()).or_default();
        if part.down.take().is_some() {
            part.restarts += 1;
        }
    }

    /// `name` failed with `cause`; it is down until [`Parts::running`].
    pub fn failed(&self, name: &str, cause: &str) {
        let mut parts = self.lock();
        parts.entry(name.to_owned()).or_default().down = Some(Down {
            cause: cause.to_owned(),
            since: SystemTime::now(),
        });
    }

    /// `name` was stopped for good (shutdown, or a reload that removed it).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Every part, by name.
    pub fn snapshot(&self) -> Vec<(String, Part)> {
        self.lock()
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }

    /// The parts that are down, as `name (cause)` joined by `; `; `None` when all run.
    pub fn describe_down(&self) -> Option<String> {
        let parts = self.lock();
        let down: Vec<String> = parts
            .iter()
            .filter_map(|(n, p)| p.down.as_ref().map(|d| format!("{n} ({})", d.cause)))
            .collect();
        (!down.is_empty()).then(|| down.join("; "))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Part>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_part_is_down_until_it_runs_again_and_counts_the_restart() {
        let parts = Parts::default();
        parts.running("line tcp 10.0.0.5:502");
        parts.running("uplink");
        assert_eq!(parts.describe_down(), None);
        parts.failed("line tcp 10.0.0.5:502", "panicked: boom");
        assert_eq!(
            parts.describe_down().as_deref(),
            Some("line tcp 10.0.0.5:502 (panicked: boom)")
        );
        parts.running("line tcp 10.0.0.5:502");
        assert_eq!(parts.describe_down(), None);
        let snapshot = parts.snapshot();
        assert_eq!(snapshot[0].0, "line tcp 10.0.0.5:502");
        assert_eq!(snapshot[0].1.restarts, 1);
        assert_eq!(snapshot[1].1.restarts, 0);
        parts.remove("uplink");
        assert_eq!(parts.snapshot().len(), 1);
    }
}
