//! The broker's persistence file (`broker.persistence`): retained messages, persistent
//! sessions with their subscriptions, queued and in-flight messages and half-finished incoming
//! QoS 2 exchanges, and the wills of connected clients, in SQLite (WAL, `synchronous=FULL`),
//! written by one thread with group commit.
//!
//! Layout: `store` (the [`Store`] handle: tickets, group commit, close), `ops` (what it
//! hands the writer), `schema` (open, check, migrate, move a corrupt file aside), `writer` (the thread and
//! what each operation does to the tables), `load` (what a start reads back), `rows` (the row
//! types and their conversions).
//!
//! Invariants:
//! - operations are applied in the order they were handed over; each call returns a ticket,
//!   and [`Store::committed`] reaches it once that operation (and every one before it) is
//!   committed: the engine acknowledges a publish, subscribe or connect of a persistent session
//!   only then, so what a client was told is stored survives `kill -9` and power loss;
//! - a message queued for several persistent sessions is stored once (`msgs`) and referenced by
//!   each session's queue row; it is deleted with its last reference;
//! - a queue row inserted and deleted before its batch commits is never written (a subscriber
//!   that acknowledges quickly costs no disk write);
//! - retained messages published by the agent itself are written lazily (at most every
//!   `ops::AGENT_RETAIN_FLUSH`, and at close): the agent republishes them after a restart anyway,
//!   and a Pi's flash is not worn by 10,000 point updates a second;
//! - a file that is not a valid database is moved aside under a free name (never deleted or
//!   overwritten) and a new one is created; the caller logs it.

mod load;
mod ops;
mod rows;
mod schema;
mod store;
mod writer;

pub(super) use rows::{SessionRow, StoredEntry, StoredSession, StoredWill, SubRow};
pub use store::PersistError;
pub(super) use store::Store;

#[cfg(test)]
mod tests;
