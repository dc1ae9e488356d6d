//! The field side (Modbus): pure read planning and value codec, the links (TCP, RTU over a
//! serial port), one task per line (connection or bus) serving every device behind it, fault
//! isolation, report-by-exception, `probe`, and a simulator.
//!
//! - `codec`     registers ⇄ values (pure)            - `plan`      the read planner (pure)
//! - `link`      one Modbus connection, typed outcomes - `serial`    serial ports for RTU
//! - `poller`    the task of one line                  - `slave`     one device on a line
//! - `breaker`   per-device circuit breaker (pure)     - `schedule`  what a line does next (pure)
//! - `handle`    [`DeviceHandle`]: writes from commands - `report`    deadband and heartbeat
//! - `busload`   bus time estimates for `check` (pure) - `probe`     `ferrule probe`
//! - `slots`     connections per host address           - `simulator` a Modbus TCP slave
//! - `runner`    [`LineRunner`]: a line, ready to run again after a failure
//!
//! [`prepare`] builds a [`LineRunner`] per line; `app` runs each under its supervisor, which
//! restarts a line task that panics (the runner publishes its devices `offline` meanwhile).
//!
//! Devices share a line when they have the same `tcp` host:port or the same `bus`; every
//! request to a line goes through its one task, in order.

pub mod breaker;
pub mod busload;
pub mod codec;
mod handle;
pub mod link;
pub mod plan;
pub mod poller;
pub mod probe;
pub mod report;
mod runner;
pub mod schedule;
mod serial;
pub mod simulator;
mod slave;
mod slots;

pub use handle::{DeviceHandle, RawError, RawRead, WriteError, WriteReport};
pub use runner::{prepare, LineRunner};
pub use slots::HostSlots;
