//! `ferrule migrate`: a Mosquitto 2.0 configuration → the equivalent ferrule YAML.
//!
//! - `read`      the files: `mosquitto.conf` and what its `include_dir` lines name, as
//!   [`Directive`]s (option, arguments, file and line)
//! - `translate` the pure mapping of directives to a ferrule config text, a comment on each
//!   mapped option, and the list of options ferrule cannot honour with why
//! - `emit`      the YAML writer of the translated sections
//!
//! Invariants: nothing is silently dropped — every directive is either mapped (and commented
//! in the output with its file:line) or listed as not honoured with its file:line and a reason;
//! the YAML produced is checked with ferrule's own config loader before it is handed out.

mod emit;
mod read;
mod translate;

pub use read::{read, Directive, ReadError};
pub use translate::{translate, Migration, Options, Unhonoured};
