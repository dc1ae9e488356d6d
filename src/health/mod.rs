//! Running unattended: the systemd notification protocol and watchdog, progress heartbeats of
//! the long-lived tasks, the metrics, and the HTTP endpoint serving them.
//!
//! - `notify`   `sd_notify` by hand (`$NOTIFY_SOCKET`, path or abstract name)
//! - heartbeats of the field lines and the uplink are [`crate::beat`]'s (re-exported here)
//! - `watchdog` `STATUS=` updates and `WATCHDOG=1` pings fed only by progress
//! - `metrics`  counters and their Prometheus text rendering (pure)
//! - `parts`    the supervised parts: running, down and why, restarts
//! - `http`     the `/metrics` and `/health` endpoint
//! - `request`  HTTP request heads and bodies, bounded (pure parsing)
//!
//! - `check`    what `ferrule check` warns about for running as a service
//! - `process`  [`Health`]
//!
//! [`Health`] bundles them for `app`: one per process, shared by every component.

mod check;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod parts;
mod process;
pub mod request;
pub mod watchdog;

pub use crate::beat::{Beat, Progress};
pub use check::check;
pub use metrics::{DeviceMetrics, ErrorKind, Metrics};
pub use notify::Notifier;
pub use process::Health;
