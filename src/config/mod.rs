//! Configuration: the typed model, loading with located errors, and validation.
//!
//! - `model`    what a valid config means (the contract other modules code against)
//! - `load`     file → text → YAML tree → [`Config`]: [`load()`], [`parse()`], [`Origin`]
//! - `schema`   the keys of each section, required or defaulted
//! - `address`  a point's `address` (plain, 1-based or Modicon) → table and protocol address
//! - `decode`   the toolkit that decodes a YAML tree collecting every problem
//! - `scalar`   decoding of each scalar type (durations, addresses, enums...)
//! - `validate` the rules across fields and items (names, overlaps, ranges)
//! - `broker`   the `broker` section: listeners, TLS, password and ACL files, persistence, limits
//! - `sparkplug` the `uplink.sparkplug` section
//! - `uplink`   the `uplink` section: keys, defaults, its scalars and its cross-field rules
//! - `write`    what governs commands: `writable` rules, `enum`, the `commands` section
//! - `locate`   line and column of a node, from its path
//! - `error`    [`ConfigError`] and [`Diagnostic`]
//! - `diff`     what a reload changes: lines kept, added, removed, changed; sections changed

mod address;
mod broker;
mod decode;
pub mod diff;
mod error;
mod load;
mod locate;
pub mod model;
mod scalar;
mod schema;
pub mod sparkplug;
mod uplink;
mod validate;
mod write;

pub use error::{ConfigError, Diagnostic};
pub use load::{load, parse, Origin};
pub use model::*;
pub use scalar::{parse_duration, parse_host_port, show_duration};
