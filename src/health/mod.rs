//! Running unattended: the systemd notification protocol and watchdog, progress heartbeats of
//! the long-lived tasks, the metrics, and the HTTP endpoint serving them.
//!
//! - `notify`   `sd_notify` by hand (`$NOTIFY_SOCKET`, path or abstract name)
//! - `beat`     progress heartbeats of the field lines and the uplink
//! - `watchdog` `STATUS=` updates and `WATCHDOG=1` pings fed only by progress
//! - `metrics`  counters and their Prometheus text rendering (pure)
//! - `parts`    the supervised parts: running, down and why, restarts
//! - `http`     the `/metrics` and `/health` endpoint
//! - `request`  HTTP request heads and bodies, bounded (pure parsing)
//! - `status_http` the live status page's server (`crate::status` holds its state);
//!   `page_tls` its TLS configuration, from the broker listener's certificate
//!
//! [`Health`] bundles them for `app`: one per process, shared by every component.

pub mod beat;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod page_tls;
pub mod parts;
pub mod request;
pub mod status_http;
pub mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use beat::{Beat, Progress};
pub use metrics::{DeviceMetrics, ErrorKind, Metrics};
pub use notify::Notifier;

/// What `ferrule check` warns about for running as a service: a metrics endpoint reachable
/// from the network, and ports below 1024, which the shipped unit (no capabilities) cannot
/// bind.
pub fn check(config: &crate::config::Config) -> Vec<String> {
    let mut warnings = metrics::check(config);
    if let Some(s) = config.status.filter(|s| s.is_exposed()) {
        if config.broker.password_file.is_none() {
            warnings.push(format!(
                "status.bind `{}` is not a loopback address but broker.password_file is not set: \
                 the page requires a login there and nobody can log in; set a password file \
                 (the page's users are the broker's) or bind the page to 127.0.0.1",
                s.bind
            ));
        }
        if !config.broker.listeners.iter().any(|l| l.tls.is_some()) {
            warnings.push(format!(
                "status.bind `{}` is not a loopback address and no broker listener has TLS: \
                 logins to the page travel in clear text (the page uses the certificate of \
                 the first TLS listener)",
                s.bind
            ));
        }
    }
    let ports = config
        .broker
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("broker.listeners[{i}]"), l.bind))
        .chain(config.metrics.map(|m| ("metrics.bind".to_owned(), m.bind)))
        .chain(config.status.map(|s| ("status.bind".to_owned(), s.bind)));
    for (what, addr) in ports {
        if addr.port() != 0 && addr.port() < 1024 {
            warnings.push(format!(
                "{what} `{addr}` is a port below 1024: binding it needs CAP_NET_BIND_SERVICE, \
                 which systemd/ferrule.service does not grant (see the comment there)"
            ));
        }
    }
    warnings
}

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

#[cfg(test)]
mod tests {
    use crate::config::{parse, Origin};

    const MINIMAL: &str = "site: plant1\ndevices:\n  - {name: boiler, tcp: \"127.0.0.1:502\", points: [{name: t, address: 1}]}\n";

    fn origin() -> Origin {
        Origin {
            name: "test.yaml".into(),
            base_dir: std::env::temp_dir(),
            state_dir: std::env::temp_dir(),
        }
    }

    #[test]
    fn check_warns_about_an_exposed_status_page_without_password_file_or_tls(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let local = parse(&format!("{MINIMAL}status: {{}}\n"), &origin())?;
        assert!(super::check(&local).is_empty());
        let open = parse(
            &format!("{MINIMAL}status: {{bind: \"0.0.0.0:9109\"}}\n"),
            &origin(),
        )?;
        let warnings = super::check(&open).join("\n");
        assert!(
            warnings.contains("status.bind `0.0.0.0:9109`")
                && warnings.contains("password_file is not set")
                && warnings.contains("no broker listener has TLS"),
            "{warnings}"
        );
        Ok(())
    }

    #[test]
    fn metrics_are_off_by_default_and_on_loopback_when_present(
    ) -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(parse(MINIMAL, &origin())?.metrics, None);
        let on = parse(&format!("{MINIMAL}metrics: {{}}\n"), &origin())?;
        assert_eq!(
            on.metrics.map(|m| m.bind.to_string()).as_deref(),
            Some("127.0.0.1:9108")
        );
        assert!(super::metrics::check(&on).is_empty());
        let bare = parse(&format!("{MINIMAL}metrics:\n"), &origin())?;
        assert_eq!(
            bare.metrics, None,
            "an empty section is absent, as for uplink"
        );
        let open = parse(
            &format!("{MINIMAL}metrics: {{bind: \"0.0.0.0:9108\"}}\n"),
            &origin(),
        )?;
        assert!(super::metrics::check(&open)[0].contains("not a loopback address"));
        let bad = parse(
            &format!("{MINIMAL}metrics: {{bind: nowhere, port: 1}}\n"),
            &origin(),
        );
        let text = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("metrics.bind") && text.contains("port"),
            "{text}"
        );
        Ok(())
    }
}
