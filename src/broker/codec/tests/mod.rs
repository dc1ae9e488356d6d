//! Tests of the codec: byte tables (a comment per byte or field) for 3.1, 3.1.1 and 5, one test
//! per malformation asserting its reason code, proptest round trips over valid packets, and
//! never-panics runs over arbitrary and mutated bytes.

mod bytes_v3;
mod bytes_v5;
mod malformed;
mod malformed_v5;
mod robustness;
mod roundtrip;
mod strategies;
mod topic;

use std::num::NonZeroU16;

use super::*;

/// A maximum packet size above anything a 4-byte remaining length can declare.
const NO_LIMIT: u32 = u32::MAX;

fn pid(id: u16) -> NonZeroU16 {
    NonZeroU16::new(id).expect("test packet identifiers are not 0")
}

fn strings(pairs: &[(&str, &str)]) -> Vec<UserProperty> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The decoder state a packet is read in: before CONNECT for a CONNECT, after it otherwise.
fn state_for(packet: &Packet, protocol: Protocol) -> Option<Protocol> {
    match packet {
        Packet::Connect(_) => None,
        _ => Some(protocol),
    }
}

fn encoded(packet: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    encode(packet, protocol, &mut out);
    out
}

/// Decodes `bytes`, which must hold exactly one complete packet.
fn decode_one(bytes: &[u8], state: Option<Protocol>) -> Result<Packet, DecodeError> {
    match decode(bytes, state, NO_LIMIT)? {
        Some((packet, used)) => {
            assert_eq!(used, bytes.len(), "consumed bytes of {packet:?}");
            Ok(packet)
        }
        None => panic!("{bytes:02X?} is incomplete"),
    }
}

/// The error `bytes` (one complete packet) decode to.
fn reject(bytes: &[u8], state: Option<Protocol>) -> DecodeError {
    match decode(bytes, state, NO_LIMIT) {
        Err(e) => e,
        Ok(other) => panic!("{bytes:02X?} decoded to {other:?}"),
    }
}

/// A byte table row: `bytes` decode to `packet`, every shorter prefix asks for more bytes,
/// and `packet` encodes to `bytes`.
#[track_caller]
fn table(protocol: Protocol, bytes: &[u8], packet: Packet) {
    let state = state_for(&packet, protocol);
    assert_eq!(
        decode_one(bytes, state),
        Ok(packet.clone()),
        "decoding {bytes:02X?}"
    );
    for end in 0..bytes.len() {
        assert_eq!(
            decode(&bytes[..end], state, NO_LIMIT),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    assert_eq!(encoded(&packet, protocol), bytes, "encoding {packet:?}");
}

/// `packet` encodes to `bytes` in `protocol` (for what the protocol drops on the way out).
#[track_caller]
fn encodes_to(protocol: Protocol, packet: Packet, bytes: &[u8]) {
    assert_eq!(encoded(&packet, protocol), bytes, "encoding {packet:?}");
}
