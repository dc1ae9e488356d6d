//! The typed configuration model: what a valid `ferrule.yaml` means.
//!
//! Invariants (established by [`super::load()`] and checked by the `validate` module):
//! - every name (`site`, devices, points) is a valid MQTT topic level;
//! - device names are unique, point names are unique within their device;
//! - the registers of two points of one device never overlap, except that single-bit points
//!   (`bit`) may read different bits of one register, which a one-register point (`u16`,
//!   `bits`...) may read whole as well;
//! - every point fits in the 16-bit Modbus address space and in one read request (125 registers,
//!   2000 bits); addresses are 0-based protocol addresses whatever the file wrote (`address_base:
//!   1`, Modicon `40001`);
//! - `coil`/`discrete` points have type `bool`; `string` points have a `length`, a `bit` point is
//!   a `bool` in a register, arrays (`count` > 1) are of numeric or bool types;
//! - bus names are unique, every device on a bus names a defined bus, two buses never share a
//!   serial port, and a device on a bus has a unit id from 1 to 247;
//! - no host is the target of more distinct `tcp` endpoints than `modbus.max_connections_per_host`.
//!
//! Defaults live in one place: the `DEFAULT_*` constants of `model/defaults.rs`.
//!
//! One file per section under `model/`; this file only wires them, and every item keeps its
//! paths `config::model::X` and `config::X`.

mod broker;
mod commands;
mod defaults;
mod device;
mod metrics;
mod modbus;
mod point;
mod registers;
mod root;
mod serial;
mod uplink;

pub use broker::*;
pub use commands::*;
pub use defaults::*;
pub use device::*;
pub use metrics::*;
pub use modbus::*;
pub use point::*;
pub use registers::*;
pub use root::*;
pub use serial::*;
pub use uplink::*;
