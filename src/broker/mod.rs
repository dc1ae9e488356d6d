//! The embedded MQTT broker (3.1.1 and 5), built on the pinned `rmqtt` crate.
//!
//! Only this module touches rmqtt: the rest of ferrule uses [`Broker`], [`Message`] and [`Tap`]
//! (and [`passwd`] for `ferrule passwd`, [`acl`] and [`passwd`] for `ferrule check`).
//!
//! Layout, one concept per file:
//! - `server`   the [`Broker`]: start (files, persistence, listeners), publish, subscribe, stop
//! - `hooks`    rmqtt's hooks: authentication, ACL, tap, statistics, logs, session bookkeeping
//! - `access`   connect decisions: anonymous policy, passwords, ACL (pure)
//! - [`passwd`] Mosquitto password files (read, verify, write)
//! - [`acl`]    Mosquitto ACL files (parse, decide)
//! - [`check`]  what `ferrule check` reports about the broker's files and listeners
//! - `router`   routing corrections: one copy per client at the highest QoS, read access
//! - `fitter`   protocol parameter corrections: keepalive × 1.5, MQTT 3.1.1 session lifetime
//! - `front`    TLS termination in front of rmqtt; `tls` its rustls configuration
//! - `persist`  the persistence file (SQLite); `sessions` rebuilding sessions from it;
//!   `retain` retained messages
//! - `sys`      `$SYS/broker/...`; `stats` the counters behind it; `ratelog` log rate limits
//! - `escape`   `$` levels inside rmqtt; `message` the broker-independent message type

mod access;
pub mod acl;
pub mod check;
mod escape;
mod fitter;
mod front;
mod hooks;
mod message;
pub mod passwd;
mod persist;
mod ratelog;
mod retain;
mod router;
mod server;
mod sessions;
mod stats;
mod sys;
mod tls;

pub use message::{Message, Origin};
pub use server::{Broker, BrokerError, NoTap, Tap, TapError};
pub use stats::{BrokerStats, BrokerStatus, StatsSnapshot};
