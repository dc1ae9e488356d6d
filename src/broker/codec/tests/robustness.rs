//! Never panics, never loops, never over-consumes: arbitrary bytes, bytes behind a plausible
//! fixed header, and mutations and truncations of valid encodings, in every decoder state.

use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::any_packet;
use super::*;

const STATES: [Option<Protocol>; 4] = [
    None,
    Some(Protocol::V31),
    Some(Protocol::V311),
    Some(Protocol::V5),
];

/// Decodes `bytes` as a connection would: packet after packet until more bytes are needed or
/// an error ends it. Checks every answer against the fixed header.
fn drain(bytes: &[u8], mut state: Option<Protocol>, max: u32) -> Result<(), TestCaseError> {
    let mut rest = bytes;
    // Every packet has at least 2 bytes: more rounds than that would be a loop.
    for _ in 0..=bytes.len() / 2 {
        let header = frame(rest, max);
        match decode(rest, state, max) {
            Ok(Some((packet, used))) => {
                let Ok(Some(header)) = header else {
                    return Err(TestCaseError::fail(format!(
                        "decoded without a frame: {header:?}"
                    )));
                };
                prop_assert!(
                    used >= 2 && used <= rest.len(),
                    "consumed {} of {}",
                    used,
                    rest.len()
                );
                prop_assert_eq!(used, header.total_len());
                prop_assert!(used as u64 <= u64::from(max));
                if let Packet::Connect(connect) = &packet {
                    state = Some(connect.protocol);
                }
                rest = &rest[used..];
            }
            Ok(None) => {
                // more bytes needed: either the header or the body is incomplete
                if let Ok(Some(header)) = header {
                    prop_assert!(header.total_len() > rest.len());
                }
                return Ok(());
            }
            Err(error) => {
                prop_assert!(!error.detail().is_empty());
                prop_assert!(error.reason_code() >= 0x80);
                return Ok(());
            }
        }
    }
    prop_assert!(
        rest.is_empty(),
        "still decoding after {} rounds",
        bytes.len() / 2 + 1
    );
    Ok(())
}

fn limit() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(NO_LIMIT), 1 => 0u32..600]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..300), max in limit()) {
        if let Ok(Some(header)) = frame(&bytes, max) {
            prop_assert!((2..=5).contains(&header.header_len));
            prop_assert!(header.total_len() as u64 <= u64::from(max));
        }
        for state in STATES {
            drain(&bytes, state, max)?;
        }
    }

    /// Random bodies behind a fixed header whose remaining length fits them, so the packet
    /// decoders (not just the framing) see the garbage.
    #[test]
    fn arbitrary_bodies(first in any::<u8>(), body in vec(any::<u8>(), 0..200), extra in 0usize..3) {
        let mut bytes = vec![first];
        let mut len = body.len().saturating_sub(extra);
        loop {
            let byte = (len % 128) as u8;
            len /= 128;
            bytes.push(if len > 0 { byte | 0x80 } else { byte });
            if len == 0 {
                break;
            }
        }
        bytes.extend_from_slice(&body);
        for state in STATES {
            drain(&bytes, state, NO_LIMIT)?;
        }
    }

    /// Valid encodings with bytes changed, inserted or removed, then cut anywhere.
    #[test]
    fn mutated_encodings(
        (protocol, packet) in any_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encoded(&packet, protocol);
        for (at, byte, how) in edits {
            let at = at.index(bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.push(byte),
            }
        }
        let cut = cut.index(bytes.len() + 1);
        for state in [None, Some(protocol)] {
            drain(&bytes, state, NO_LIMIT)?;
            drain(&bytes[..cut], state, NO_LIMIT)?;
        }
    }
}

#[test]
fn a_huge_declared_length_with_few_bytes_present() {
    // 268,435,455 bytes declared, 3 present: more needed (nothing reserved for the rest)
    let bytes = [0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, b't'];
    for state in STATES.into_iter().skip(1) {
        assert_eq!(decode(&bytes, state, NO_LIMIT), Ok(None));
        let e = decode(&bytes, state, 1 << 16).expect_err("above a 64 KiB limit");
        assert_eq!(e.reason_code(), reason::PACKET_TOO_LARGE);
    }
    // a CONNECT declaring 2 MB before any CONNECT limit is known still meets the limit
    let connect = [0x10, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(
        decode(&connect, None, 1 << 20).map_err(|e| e.kind()),
        Err(ErrorKind::PacketTooLarge)
    );
}

#[test]
fn a_five_byte_varint_is_refused_in_every_state() {
    for state in STATES {
        // the packet types this state accepts (the state check comes first otherwise)
        let firsts: &[u8] = match state {
            None => &[0x10],
            Some(_) => &[0x30, 0x82, 0xC0],
        };
        for &first in firsts {
            let e = decode(&[first, 0x80, 0x80, 0x80, 0x80, 0x00], state, NO_LIMIT)
                .expect_err("5-byte varint");
            assert_eq!(e.reason_code(), reason::MALFORMED_PACKET);
        }
    }
}

#[test]
fn empty_and_one_byte_buffers_need_more() {
    for state in STATES {
        assert_eq!(decode(&[], state, NO_LIMIT), Ok(None));
    }
    assert_eq!(decode(&[0x10], None, NO_LIMIT), Ok(None));
    assert_eq!(decode(&[0x30], Some(Protocol::V5), NO_LIMIT), Ok(None));
    assert_eq!(frame(&[0x30, 0x80], NO_LIMIT), Ok(None));
}
