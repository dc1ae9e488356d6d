//! ferrule: an industrial edge agent in one process.
//!
//! # Who owns what (one hop)
//!
//! | behaviour | owner |
//! |---|---|
//! | start, drain order, shutdown deadline | `app.rs` |
//! | one task tree (root token, tracker) | `app/tree.rs` |
//! | restart of a failed line, uplink or router; parts down | `app/supervise.rs`, [`health::parts`] |
//! | config reload: load, prepare, swap, report | `app/reload.rs` |
//! | what a reload changes (the diff, line keys) | [`config::diff`] |
//! | config file watch, SIGHUP, debounce | `app/watch.rs` |
//! | YAML → typed config, located errors | [`config`] (`load`, `tree`, `decode`, `locate`, `model/`) |
//! | device profiles, CSV import | `config/profile.rs`, `config/import.rs` |
//! | read planning (which registers in which request) | [`field::plan`] |
//! | register ⇄ value codec | [`field::codec`] |
//! | polling a line, reconnects, request order | [`field::poller`] |
//! | per-device circuit breaker | [`field::breaker`] |
//! | deadband and heartbeat (report by exception) | [`field::report`] |
//! | device `$state`, point quality | `field/slave.rs` |
//! | writes to a device, raw reads | `field/handle.rs` |
//! | topic strings, filters | [`topics`] |
//! | JSON payloads, command result codes | [`payload`] |
//! | `.../set` parse, checks, confirm, rate limit, audit | [`command`] (`router`, `worker`, `validate`, `reply`) |
//! | command router across reloads (relay, handover of held commands) | `app/router.rs` |
//! | MQTT codec, sessions, routing, retained, persistence | [`broker`] (`codec`, `engine`, `session`, `router`, `retain`, `persist`) |
//! | listeners, TLS, WebSocket, auth, ACL | [`broker`] (`listener`, `tls`, `ws`, `access`, `acl`, `passwd`) |
//! | the durable queue, its bounds | [`store`] (`queue`, `worker`, `bounds`) |
//! | forward rules into the queue | `uplink/forward.rs` |
//! | upstream connection, drain, delete after PUBACK | [`uplink`] (`task`, `drain`, `session`) |
//! | Sparkplug B births, deaths, DCMD | [`sparkplug`] |
//! | systemd notify, watchdog | [`health`] (`notify`, `watchdog`) |
//! | progress heartbeats | [`beat`] |
//! | `/metrics`, `/health` | [`health::http`], [`health::metrics`] |
//! | the status page | [`status`] (its server: [`status::http`]), `app/status.rs` |
//! | allocator policy, memory returned | [`memory`] |
//! | Mosquitto config → ferrule config | [`migrate`] |
//! | subcommands and their arguments | [`cli`] (`args.rs`, one file per subcommand) |
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
//! - [`health`]  systemd notify and watchdog, metrics, `/metrics` endpoint
//! - [`beat`]    progress heartbeats of the long-lived tasks (what the watchdog vouches for)
//! - [`status`]  the live status page: its state, its document, logins and writes
//! - [`errors`]  error chains for logs
//! - [`backoff`] capped exponential backoff with jitter for every reconnect
//! - [`memory`]  the allocator policy: two malloc arenas, freed memory trimmed every 10 s
//! - [`app`]     wiring, cancellation, drain order
//! - [`migrate`] a Mosquitto configuration → the equivalent ferrule config
//! - [`cli`]     the subcommands: run, check, simulate, probe, demo, passwd

pub mod app;
pub mod backoff;
pub mod beat;
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
