//! The MQTT wire codec of the broker engine: MQTT 3.1 ("MQIsdp", level 3), 3.1.1 and 5.0,
//! both directions, server side first.
//!
//! Pure functions over byte slices, no I/O and no dependency on the rest of ferrule:
//! - `packet`    the packets as values ([`Packet`], [`Connect`], [`Publish`], …)
//! - [`reason`]  MQTT 5 reason codes and 3.x CONNACK return codes by name
//! - `decode`    [`frame`] (fixed header only, refuses oversized packets early) and [`decode()`]
//! - `error`     [`DecodeError`]: words for the log, the reason code for the answer
//! - `encode`    [`encode()`] for every packet, [`encode_publish`]/[`publish_len`] for deliveries
//! - [`topic`]   topic name and filter rules, `$share/` (no matching)
//! - `wire`      the data representations (integers, varints, strings) for reading and writing
//! - `props`     MQTT 5 properties: reading and checking; `props_out` writing them
//!
//! The split of work with the engine: the codec refuses whatever the bytes alone make a
//! malformed packet or a protocol error; what needs connection or session state (topic alias
//! maximum, packet identifiers in use, receive maximum, which side may send a packet type,
//! subscription identifiers from a client) and topic semantics (call [`topic`]) is decided by
//! the engine, which also picks the answer.

mod decode;
mod encode;
mod error;
mod packet;
mod props;
mod props_out;
pub mod reason;
pub mod topic;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::{check_payload_format, decode, frame, Frame};
pub use encode::{encode, encode_disconnect, encode_publish, publish_len, PublishOut};
pub use error::{DecodeError, ErrorKind};
pub use packet::{
    Ack, Auth, ConnAck, ConnAckProps, Connect, ConnectProps, Disconnect, Packet, PacketType,
    Protocol, Publish, PublishProps, QoS, SubAck, SubOptions, Subscribe, UnsubAck, Unsubscribe,
    UserProperty, Will,
};
pub use wire::VARINT_MAX;
