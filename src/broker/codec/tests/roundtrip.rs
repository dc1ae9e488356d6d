//! proptest round trips: every valid packet of each protocol encodes, decodes back equal,
//! consumes exactly its bytes, asks for more on every prefix, and [`publish_len`] is the
//! encoded length.

use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::{any_packet, packet, protocol, publish, publish_props};
use super::*;

fn round_trip(protocol: Protocol, packet: &Packet) -> Result<(), TestCaseError> {
    let bytes = encoded(packet, protocol);
    let state = state_for(packet, protocol);
    let len = bytes.len();
    prop_assert_eq!(
        decode(&bytes, state, NO_LIMIT),
        Ok(Some((packet.clone(), len)))
    );
    for end in 0..len {
        prop_assert_eq!(
            decode(&bytes[..end], state, NO_LIMIT),
            Ok(None),
            "prefix {}",
            end
        );
    }
    // followed by the next packet: consumes only its own bytes
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xC0, 0x00]);
    let consumed = decode(&longer, state, NO_LIMIT).map(|d| d.map(|(_, n)| n));
    prop_assert_eq!(consumed, Ok(Some(len)));
    // the fixed header alone tells the size, and the size limit is inclusive
    let header = frame(&bytes, NO_LIMIT);
    prop_assert_eq!(header.map(|f| f.map(|f| f.total_len())), Ok(Some(len)));
    prop_assert!(decode(&bytes, state, len as u32).is_ok());
    let too_large = decode(&bytes, state, len as u32 - 1).map_err(|e| e.kind());
    prop_assert_eq!(too_large, Err(ErrorKind::PacketTooLarge));
    if let Packet::Publish(publish) = packet {
        prop_assert_eq!(
            publish_len(protocol, &PublishOut::from_publish(publish)),
            len
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn mqtt31_packets_round_trip(packet in packet(Protocol::V31)) {
        round_trip(Protocol::V31, &packet)?;
    }

    #[test]
    fn mqtt311_packets_round_trip(packet in packet(Protocol::V311)) {
        round_trip(Protocol::V311, &packet)?;
    }

    #[test]
    fn mqtt5_packets_round_trip(packet in packet(Protocol::V5)) {
        round_trip(Protocol::V5, &packet)?;
    }

    /// A connection's byte stream: a CONNECT, then packets back to back, read in order.
    #[test]
    fn a_stream_of_packets_decodes_in_order(
        (protocol, packets) in protocol().prop_flat_map(|p| (Just(p), vec(packet(p), 1..8)))
    ) {
        let packets: Vec<Packet> = packets
            .into_iter()
            .filter(|p| !matches!(p, Packet::Connect(_)))
            .collect();
        let mut stream = Vec::new();
        for packet in &packets {
            encode(packet, protocol, &mut stream);
        }
        let mut rest = &stream[..];
        let mut decoded = Vec::new();
        while let Some((packet, used)) = decode(rest, Some(protocol), NO_LIMIT)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
        {
            decoded.push(packet);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decoded, packets);
    }

    /// The delivery path: the overrides replace the stored alias, expiry and subscription
    /// identifiers, and `publish_len` is what `encode_publish` appends.
    #[test]
    fn publish_out_round_trips_with_its_overrides(
        protocol in protocol(),
        stored in publish(Protocol::V5),
        overrides in publish_props(false),
        prefix in vec(any::<u8>(), 0..4),
    ) {
        let v5 = protocol.is_v5();
        let topic_alias = overrides.topic_alias.filter(|_| v5);
        let topic = match (v5 && topic_alias.is_some(), stored.topic.is_empty()) {
            (true, _) => "",
            (false, true) => "t",
            (false, false) => &stored.topic,
        };
        let out = PublishOut {
            dup: stored.dup,
            qos: stored.qos,
            retain: stored.retain,
            topic,
            packet_id: stored.packet_id,
            topic_alias,
            message_expiry_interval: overrides.message_expiry_interval,
            subscription_identifiers: &overrides.subscription_identifiers,
            props: &stored.props,
            payload: &stored.payload,
        };
        let mut bytes = prefix.clone();
        encode_publish(&mut bytes, protocol, &out);
        prop_assert_eq!(&bytes[..prefix.len()], &prefix[..]);
        let bytes = &bytes[prefix.len()..];
        prop_assert_eq!(publish_len(protocol, &out), bytes.len());
        let expected_props = match v5 {
            true => PublishProps {
                topic_alias,
                message_expiry_interval: overrides.message_expiry_interval,
                subscription_identifiers: overrides.subscription_identifiers.clone(),
                ..stored.props.clone()
            },
            false => PublishProps::default(),
        };
        let expected = Publish {
            topic: topic.into(),
            props: expected_props,
            ..stored.clone()
        };
        prop_assert_eq!(decode_one(bytes, Some(protocol)), Ok(Packet::Publish(expected)));
    }

    /// Encoding appends: what `out` held before is untouched.
    #[test]
    fn encode_appends((protocol, packet) in any_packet(), prefix in vec(any::<u8>(), 1..8)) {
        let mut out = prefix.clone();
        encode(&packet, protocol, &mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &encoded(&packet, protocol)[..]);
    }
}
