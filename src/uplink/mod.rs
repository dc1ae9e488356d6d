//! The store-and-forward uplink: forward rules feeding the durable queue, and the upstream
//! client that drains it, deleting rows only after the upstream acknowledgement.
//!
//! Guarantees (DESIGN.md, "Delivery guarantees"):
//! - a row is deleted only after its PUBACK (QoS 1) / PUBCOMP (QoS 2), or, for QoS 0, after it
//!   was written to the connection; a row the broker refuses by MQTT 5 reason code is either
//!   kept and sent again after a reconnect (quota exceeded, packet id in use) or dropped and
//!   counted as `refused_upstream` (not authorized, topic or payload invalid: it never would
//!   be taken);
//! - every connection is a fresh clean session and resends every row not yet acknowledged, in
//!   id order, so order is kept per topic (and overall);
//! - at most `window` rows are outstanding at once, which bounds the duplicates after a crash or
//!   reconnect;
//! - nothing that came down from the upstream goes back up.
//!
//! Layout:
//! - `forward`   forward rules → records, and the broker [`Tap`](crate::broker::Tap) that queues
//! - `task`      [`UplinkTask`]: set-up, the reconnect loop, the status and downlink tasks
//! - `drain`     one connection: fill the window from the queue, settle acks, delete rows
//! - `local`     [`Local`]: where the uplink publishes locally (the broker, or nothing)
//! - `inflight`  pure bookkeeping of packet ids → rows
//! - `session`   rumqttc 3.1.1 / 5 behind one interface, errors in plain words
//! - `downlink`  upstream messages → local messages
//! - `sequence`  the per-gateway sequence number
//! - `rate`      `max_rate` pacing
//! - `status`    the link state for logs, metrics and `{site}/$agent/uplink`
//! - `tls`       rustls with ring: roots, CA file, client certificate

mod downlink;
pub mod drain;
mod forward;
mod inflight;
mod local;
mod rate;
mod sequence;
mod session;
mod status;
mod task;
mod tls;

pub use forward::{route, Forwarder};
pub use local::{Local, NoLocal};
pub use sequence::stamp_json;
pub use status::{LinkState, LinkStatus, STATUS_INTERVAL};
pub use task::{UplinkError, UplinkTask, DRAIN_DEADLINE};
pub use tls::{client_config, TlsError};
