//! The field side (Modbus): pure read planning and value codec, the connection with typed
//! outcomes, one task per device connection, report-by-exception, and a simulator.

pub mod codec;
pub mod link;
pub mod plan;
pub mod poller;
pub mod report;
pub mod simulator;
