//! `.../set` commands: topic → device and point → parse → check → write through the device's
//! task → read back → result, with the safety rules of the point (`rate_limit`, `confirm`) and
//! of the gateway (`commands: {writes, audit}`).
//!
//! - `router`   command and confirm messages → the worker of their device (or a refusal)
//! - `parse`    payloads of `.../set` and `.../confirm` (pure)
//! - `validate` a value against its point, encoded for the wire (pure)
//! - `worker`   one device's commands, in order: hold, rate limit, write, result
//! - `reply`    results, interim answers of held commands, and the audit trail
//! - `describe` a point's write rules in one line, for `ferrule check`
//!
//! Invariants:
//! - every command gets exactly one result on `.../set/result` (and on the MQTT 5 response
//!   topic when the caller gave one), whether it was refused, failed or succeeded, and one
//!   audit line;
//! - a refused command never reaches the device;
//! - commands for one device are executed one at a time, in arrival order, by that device's
//!   worker; a slow or offline device never delays commands for the others.

mod describe;
pub mod parse;
mod reply;
mod router;
pub mod validate;
mod worker;

pub use describe::describe;
pub use router::{run, Handover, Target};
pub use worker::Handed;
