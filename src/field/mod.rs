//! Modbus field side: the pure value codec ([`codec`]).

pub mod codec;
