//! Modbus field side: the pure read planner ([`plan`]) and value codec ([`codec`]).

pub mod codec;
pub mod plan;
