//! Configuration: the typed model, loading with located errors, and validation.
//!
//! - `model`    what a valid config means (the contract other modules code against), one file
//!   per section under `model/`
//! - `load`     file → text → YAML tree → [`Config`]: [`load()`], [`parse()`]
//! - `origin`   [`Origin`]: a config text's name, base directory and state directory
//! - `tree`     YAML text → tree, duplicate keys and tags as problems, problems → file:line:column
//! - `schema`   the keys of each section, required or defaulted
//! - `points`   the points of a device or a profile (`points`, `groups`), shared by both
//! - `address`  a point's `address` (plain, 1-based or Modicon) → table and protocol address
//! - `decode`   the toolkit that decodes a YAML tree collecting every problem
//! - `scalar`   decoding of each scalar type (durations, addresses, enums...)
//! - `validate` the rules across fields and items (names, overlaps, ranges)
//! - `broker`   the `broker` section: listeners, TLS, password and ACL files, persistence, limits
//! - `sparkplug` the `uplink.sparkplug` section
//! - `uplink`   the `uplink` section: keys, defaults, its scalars and its cross-field rules
//! - `status`   the `status` section: the live status page
//! - `write`    what governs commands: `writable` rules, `enum`, the `commands` section
//! - `path`     a place in the document (`devices[1].points[3]`) and a problem found there
//! - `locate`   line and column of a node, from its path
//! - `error`    [`ConfigError`] and [`Diagnostic`]
//! - `diff`     what a reload changes: lines kept, added, removed, changed; sections changed
//! - `import`   a register map from a CSV export → a profile file
//! - `quote`    [`yaml_string`]: the one writer of double-quoted YAML strings (import, migrate)
//! - `profile`  device profiles (inline and `profiles_dir`), overrides, resolved point maps
//! - `mosquitto_hint` recognises a mosquitto.conf given as a ferrule config
//!
//! # Adding a key
//!
//! A new key of an existing section is written in three places, all in this module:
//! 1. the model: a documented field of the section's struct under `model/` (and its default, a
//!    `DEFAULT_*` constant of `model/defaults.rs`, when it has one);
//! 2. the section's list of allowed keys (`DEVICE`, `POINT`, `BROKER`, `QUEUE`, ... beside the
//!    section's decoder in `schema.rs`, `points.rs`, `broker.rs`, `uplink.rs`, `write.rs`...);
//! 3. the decoder: the one `m.required` / `m.optional` / `m.or(cx, "key", default)` call that
//!    reads it, and the field in the struct literal it builds.
//!
//! Only for a point key, and only if it should be: `profile::OVERRIDE` (may a device override
//! it) and `import::KEYS` (may a CSV column give it). Nothing else: `diff` compares sections
//! and devices whole (`PartialEq`), `locate` finds any path, `validate` only has rules that
//! span fields.
//!
//! Why not one place. The model derives no `Deserialize`: serde stops at the first error and
//! cannot report duplicate keys or locate every problem, which is the point of `decode`. So
//! the field (1) and the read (3) are two pieces of code, as in any hand-written decoder; a
//! proc-macro generating the decoder from the struct would merge them, at the price of a
//! macro crate and `syn`/`quote` for a dozen structs. The allowed-key list (2) could be derived
//! from the reads (record the keys a section asks for, report the others at its end) only if
//! every decoder read every key before it could return early. Some cannot: a device reads
//! `overrides` and `drop` only once its own points and its profile decoded (they are applied
//! to them, in `profile::resolve`). And the unknown-key message names every allowed key. Derived from the reads, it
//! would then report different errors for the same file: a behaviour change, not a refactor.

mod address;
mod broker;
mod decode;
pub mod diff;
mod error;
pub mod import;
mod load;
mod locate;
pub mod model;
mod mosquitto_hint;
mod origin;
mod path;
mod points;
pub mod profile;
mod quote;
mod scalar;
mod schema;
pub mod sparkplug;
mod status;
#[cfg(test)]
pub(crate) mod testing;
mod tree;
mod uplink;
mod validate;
mod write;

pub use error::{ConfigError, Diagnostic};
pub use load::{load, parse};
pub use model::*;
pub use mosquitto_hint::looks_like_mosquitto;
pub use origin::Origin;
pub use quote::yaml_string;
pub use scalar::{parse_duration, parse_host_port, show_duration};
pub use status::{StatusConfig, DEFAULT_STATUS_BIND};
