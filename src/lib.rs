//! ferrule: an industrial edge agent in one process.
//!
//! Layout, one concept per module:
//! - [`config`]  typed YAML model, loading with file:line:column errors, whole-file validation
//! - [`topics`]  the only place that builds or parses topic strings; topic-filter rules
//! - [`payload`] the JSON payload contract (point state, command results, timestamps)
//! - [`field`]   Modbus TCP and RTU: pure read planner and codec, one task per connection or bus
//! - [`broker`]  the embedded MQTT broker behind one narrow interface
//! - [`sparkplug`] Sparkplug B edge node through the uplink: payload codec, births, commands
//! - [`store`]   the durable store-and-forward queue (SQLite, WAL, group commit)
//! - [`uplink`]  forward rules and the upstream MQTT client (delete only after PUBACK)
//! - [`command`] `.../set` commands: parse, validate, write through the device task, result
//! - [`health`]  systemd notify and watchdog, progress heartbeats, metrics, `/metrics` endpoint
//! - [`status`]  the live status page: its state, its document, logins and writes
//! - [`errors`]  error chains for logs
//! - [`backoff`] capped exponential backoff with jitter for every reconnect
//! - [`memory`]  the allocator policy: two malloc arenas, freed memory trimmed every 10 s
//! - [`app`]     wiring, cancellation, drain order
//! - [`migrate`] a Mosquitto configuration → the equivalent ferrule config
//! - [`cli`]     the subcommands: run, check, simulate, probe, demo, passwd

pub mod app;
pub mod backoff;
pub mod broker;
pub mod cli;
pub mod command;
pub mod config;
pub mod errors;
pub mod field;
pub mod health;
pub mod memory;
pub mod migrate;
pub mod payload;
pub mod sparkplug;
pub mod status;
pub mod store;
pub mod topics;
pub mod uplink;
