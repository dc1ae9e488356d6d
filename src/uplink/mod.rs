//! The store-and-forward uplink: forward rules feeding the durable queue, and the upstream
//! client that drains it (deleting rows only after the upstream acknowledgement).

mod client;
mod forward;
mod tls;

pub use client::{UplinkError, UplinkTask, DRAIN_DEADLINE, WINDOW};
pub use forward::{route, Forwarder};
pub use tls::{client_config, TlsError};
