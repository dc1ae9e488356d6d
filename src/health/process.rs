//! [`Health`]: the health side of one agent process (metrics, progress, systemd notifier and
//! watchdog), shared by every component.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::notify::{self, Notifier};
use super::watchdog;
use crate::beat::Progress;

/// The health side of one agent process.
#[derive(Debug, Clone)]
pub struct Health {
    pub metrics: Metrics,
    pub progress: Progress,
    notifier: Option<Arc<Notifier>>,
    watchdog: Option<Duration>,
}

impl Default for Health {
    /// No systemd: metrics and heartbeats only.
    fn default() -> Self {
        Self {
            metrics: Metrics::default(),
            progress: Progress::default(),
            notifier: None,
            watchdog: None,
        }
    }
}

impl Health {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`.
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env().map(Arc::new);
        let watchdog = notifier.as_ref().and(notify::watchdog_interval());
        if let Some(w) = watchdog {
            tracing::info!(interval = ?w, "systemd watchdog on: pinged while every line task and the uplink make progress");
        }
        Self {
            metrics: Metrics::default(),
            progress: Progress::new(watchdog::beat_period(watchdog)),
            notifier,
            watchdog,
        }
    }

    /// Sends `state` to systemd, if it listens.
    pub fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            n.notify(state);
        }
    }

    /// Start-up is complete: listeners bound, queue open, devices started.
    pub fn ready(&self) {
        self.metrics.set_ready(true);
        self.notify("READY=1\nSTATUS=running");
    }

    /// Draining for shutdown.
    pub fn stopping(&self) {
        self.metrics.set_ready(false);
        self.notify("STOPPING=1\nSTATUS=stopping: draining");
    }

    /// The status and watchdog task, to be spawned by the caller (nothing without
    /// `$NOTIFY_SOCKET`).
    pub fn watchdog(
        &self,
        cancel: CancellationToken,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let notifier = self.notifier.clone()?;
        Some(watchdog::run(
            notifier,
            self.watchdog,
            self.progress.clone(),
            self.metrics.clone(),
            cancel,
        ))
    }
}
