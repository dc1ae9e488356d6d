//! The durable store-and-forward queue: SQLite in WAL mode, owned by one worker thread, with
//! group commit.
//!
//! Messages bound for the cloud are written here before they count as accepted, and are deleted
//! only after the upstream broker acknowledged them (see DESIGN.md, "Delivery guarantees").
//!
//! Invariants:
//! - **A row exists from the commit of its enqueue until its ack.** [`Queue::enqueue`] resolves
//!   only after the transaction holding the row committed (fsynced with
//!   [`Durability::Full`](crate::config::Durability::Full)); nothing but [`Queue::ack`] deletes a
//!   row. A failed commit is reported to every request of its batch.
//! - **Ids strictly increase.** They are never reused, not even after the queue emptied or the
//!   file was reopened (`AUTOINCREMENT`), so a reader may keep an `after_id` cursor.
//! - **Fetch returns rows in id order**, which is enqueue order; so order is preserved per topic.
//! - A corrupt file is moved aside (`<name>.corrupt-<UTC timestamp>`) and reported, never deleted.
//! - **Bounded**: `max_age`, and `max_bytes` / `max_messages` with an `on_full` policy (see
//!   `bounds`); every message dropped or refused is counted per reason, in memory since open
//!   ([`Queue::counters`]) and in the file since its creation ([`inspect`]), and logged
//!   rate-limited.
//! - Ids start at the creation time in microseconds and are the sequence numbers the cloud
//!   sees (see `schema`).
//!
//! Layout:
//! - [`queue`]    the async handle ([`Queue`]); the record types it re-exports live in `record`
//! - `record`     the records and stats the handle and the worker exchange
//! - `worker`     the thread that owns the connection and commits batches of requests
//! - [`bounds`]   the bounds and the pure decisions of what to drop or refuse
//! - [`counters`] what is counted, and the rate-limited drop log
//! - [`inspect`]  read-only access (and purge) for `ferrule queue`, beside a running agent
//! - `schema`     connection setup, integrity check, versioned schema, the SQL
//! - `recover`    moving a corrupt file aside
//! - [`error`]    [`StoreError`]

pub mod bounds;
pub mod counters;
pub mod error;
pub mod inspect;
pub mod queue;
mod record;
pub(crate) mod recover;
mod schema;
mod worker;

#[cfg(test)]
mod tests;

pub use bounds::{Limits, OnFull};
pub use counters::{Counter, Totals};
pub use error::StoreError;
pub use queue::{Counters, Queue, Record, Row, Stats};
