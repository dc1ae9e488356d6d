//! The embedded MQTT broker (3.1, 3.1.1 and 5): an engine of ferrule's own.
//!
//! The rest of ferrule uses [`Broker`], [`Message`], [`Tap`] and [`ClientInfo`] (and
//! [`passwd`] for `ferrule passwd`, [`acl`], [`passwd`] and [`check`] for `ferrule check`, [`tls`]
//! for the status page, which shows the broker's certificate).
//!
//! Layout, one concept per file:
//! - `server`   the [`Broker`]: start (files, persistence, listeners), publish, subscribe,
//!   reload, status, shutdown; `error` its [`BrokerError`]; `tap` the [`Tap`] trait
//! - `engine`   the shared state and operations: routing, retained messages, sessions
//!   (open, take over, end), wills, in-process subscribers
//! - `conn`     one task per client connection: CONNECT, packets in, deliveries out
//! - [`codec`]  the MQTT wire format (own codec: byte-table tests, property tests, a decoder
//!   that never panics), and the topic rules
//! - `router`   the subscription trie; `retain` the retained-message trie
//! - `session`  one client's session: subscriptions, queue, in-flight window
//! - `thread`   the broker's own single-threaded runtime (why: see there)
//! - `timers`   will delays and session expiry (`expiry` the task serving them); `listener`
//!   TCP/TLS/WebSocket listeners;
//!   `ws` the WebSocket upgrade; `tls` rustls server configuration
//! - `persist`  sessions, queued messages, retained messages and wills in SQLite
//! - `access`   connect decisions (pure); [`passwd`] Mosquitto password files; [`acl`]
//!   Mosquitto ACL files; [`check`] what `ferrule check` reports
//! - `sys`      `$SYS/broker/...`; `stats` the counters behind it; `ratelog` log rate limits
//! - `message`  the broker-independent [`Message`] and the engine's own message types
//!
//! Why a codec of our own rather than a crate: the broker must refuse every malformed input
//! with the reason code the specification names (a general-purpose codec decides for itself
//! what to accept), must never panic or allocate for a declared length it has not received,
//! and must encode deliveries without building a packet per subscriber. The codec is pure and
//! about 2,000 lines with its tests; the crates that would do it bring a client's worth of
//! dependencies.

mod access;
pub mod acl;
pub mod check;
pub mod codec;
mod conn;
mod engine;
mod error;
mod expiry;
mod listener;
mod message;
pub mod passwd;
mod persist;
mod publish;
mod ratelog;
mod retain;
mod router;
mod server;
mod session;
mod stats;
mod sys;
mod tap;
mod thread;
mod timers;
pub mod tls;
mod ws;

pub use engine::ClientInfo;
pub use error::BrokerError;
pub use message::{Message, Origin};
pub use publish::Publish;
#[cfg(test)]
pub use publish::Recorder;
pub use server::Broker;
pub use stats::{BrokerStats, BrokerStatus, StatsSnapshot};
pub use tap::{NoTap, Tap, TapError};
