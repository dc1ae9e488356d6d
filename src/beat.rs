//! Progress heartbeats: each long-lived task that the watchdog vouches for (every field line,
//! the uplink) holds a [`Beat`] and beats it from its own loop, at least every
//! [`Progress::period`], including while it is healthy but idle (nothing to send, a device in
//! back-off): its `select!` has a branch on [`Beat::due`]. A task stuck inside one step (an
//! await that never completes, a blocking call) stops beating.
//!
//! Invariants: the registry holds the live beats and the beats retired since the last
//! [`Progress::register`] or [`Progress::stalled`], no more (each registration forgets the
//! retired ones: without a systemd watchdog nothing else would, and every line restart and
//! every reload that touches a line registers a new beat); a task that ends cleanly calls
//! [`Beat::retire`] and is no longer watched; a
//! `Beat` dropped without retiring (the task panicked or was aborted) stays registered and
//! stale, so the watchdog stops (systemd then restarts the agent) — unless it is
//! [`Beat::supervised`]: a supervisor restarts that task, so its dropped beat retires. A
//! supervised task that hangs (never drops its beat) still stops the watchdog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How often tasks beat when no watchdog asked for a shorter period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    name: String,
    /// Milliseconds since the registry's epoch at the last beat.
    last_ms: AtomicU64,
    retired: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    period: Duration,
    beats: Mutex<Vec<Arc<State>>>,
}

/// The registry of heartbeats. Clones share it.
#[derive(Debug, Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

/// A task that made no progress for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub name: String,
    pub silent: Duration,
}

impl Progress {
    /// Tasks beat at least every `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                period: period.max(Duration::from_millis(10)),
                beats: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How often tasks beat.
    pub fn period(&self) -> Duration {
        self.inner.period
    }

    /// Registers a task (it counts as having just beaten), forgetting the retired ones.
    pub fn register(&self, name: impl Into<String>) -> Beat {
        let state = Arc::new(State {
            name: name.into(),
            last_ms: AtomicU64::new(self.now_ms()),
            retired: AtomicBool::new(false),
        });
        let mut beats = self.lock();
        beats.retain(|b| !b.retired.load(Ordering::Acquire));
        beats.push(state.clone());
        drop(beats);
        Beat {
            state,
            progress: self.clone(),
            supervised: false,
        }
    }

    /// The registered tasks silent for longer than `limit` (retired ones are forgotten).
    pub fn stalled(&self, limit: Duration) -> Vec<Stalled> {
        let now = self.now_ms();
        let mut beats = self.lock();
        beats.retain(|b| !b.retired.load(Ordering::Acquire));
        beats
            .iter()
            .filter_map(|b| {
                let silent =
                    Duration::from_millis(now.saturating_sub(b.last_ms.load(Ordering::Acquire)));
                (silent > limit).then(|| Stalled {
                    name: b.name.clone(),
                    silent,
                })
            })
            .collect()
    }

    /// Number of watched tasks.
    pub fn watched(&self) -> usize {
        let beats = self.lock();
        beats
            .iter()
            .filter(|b| !b.retired.load(Ordering::Acquire))
            .count()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<State>>> {
        self.inner
            .beats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new(DEFAULT_PERIOD)
    }
}

/// One task's heartbeat.
#[derive(Debug)]
pub struct Beat {
    state: Arc<State>,
    progress: Progress,
    /// Retire when dropped (the task is restarted by a supervisor).
    supervised: bool,
}

impl Drop for Beat {
    fn drop(&mut self) {
        if self.supervised {
            self.retire();
        }
    }
}

impl Beat {
    /// The task made progress.
    pub fn beat(&self) {
        self.state
            .last_ms
            .store(self.progress.now_ms(), Ordering::Release);
    }

    /// Resolves when the next beat is due: a `select!` branch that beats keeps an idle loop
    /// beating.
    pub async fn due(&self) {
        let last = Duration::from_millis(self.state.last_ms.load(Ordering::Acquire));
        tokio::time::sleep_until(self.progress.inner.epoch + last + self.progress.period()).await;
    }

    /// The task runs under a supervisor that restarts it when it fails: dropping the beat (the
    /// task panicked) retires it.
    #[must_use]
    pub fn supervised(mut self) -> Self {
        self.supervised = true;
        self
    }

    /// The task ended cleanly: stop watching it.
    pub fn retire(&self) {
        self.state.retired.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silent_tasks_are_stalled_retired_ones_forgotten() {
        let progress = Progress::new(Duration::from_secs(1));
        let a = progress.register("line a");
        let b = progress.register("uplink");
        tokio::time::advance(Duration::from_secs(3)).await;
        a.beat();
        let stalled = progress.stalled(Duration::from_secs(2));
        assert_eq!(stalled.len(), 1);
        assert_eq!(stalled[0].name, "uplink");
        b.retire();
        assert!(progress.stalled(Duration::from_secs(2)).is_empty());
        assert_eq!(progress.watched(), 1);
        // Dropped without retiring (a panic): stays watched, and goes stale.
        drop(a);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(progress.stalled(Duration::from_secs(2)).len(), 1);
        // A supervised beat dropped (its task panicked; the supervisor restarts it) retires.
        let c = progress.register("line c").supervised();
        drop(c);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(progress.stalled(Duration::from_secs(2)).len(), 1);
        assert_eq!(progress.watched(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retired_beats_are_forgotten_without_a_watchdog() {
        // No watchdog: nothing calls `stalled`. Each reload that touches a line, and each
        // restart of a line, registers a new beat and retires the old one.
        let progress = Progress::new(Duration::from_secs(1));
        let uplink = progress.register("uplink");
        for _ in 0..1000 {
            drop(progress.register("line tcp 10.0.0.1:502").supervised());
        }
        let line = progress.register("line tcp 10.0.0.1:502");
        assert_eq!(progress.watched(), 2);
        assert_eq!(progress.lock().len(), 2, "retired beats are kept");
        line.retire();
        uplink.beat();
    }

    #[tokio::test(start_paused = true)]
    async fn due_fires_one_period_after_the_last_beat() {
        let progress = Progress::new(Duration::from_secs(1));
        let a = progress.register("line a");
        let start = Instant::now();
        a.due().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        a.beat();
        a.due().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
