//! The `metrics` section.

/// The `metrics` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address of the HTTP listener (defaults to [`DEFAULT_METRICS_BIND`](super::DEFAULT_METRICS_BIND)).
    pub bind: std::net::SocketAddr,
}
