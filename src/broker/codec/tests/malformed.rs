//! One test per malformation or protocol error of the fixed header, the connection state,
//! lengths, strings, CONNECT, packet identifiers and SUBSCRIBE/UNSUBSCRIBE, each asserting the
//! reason code (and, where it matters, the CONNACK) the engine will answer with.

use super::*;

const V31: Protocol = Protocol::V31;
const V311: Protocol = Protocol::V311;
const V5: Protocol = Protocol::V5;

/// A packet with first byte `first` and `body`, the remaining length computed.
pub(super) fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128, "one-byte remaining length in these tests");
    let mut bytes = vec![first, body.len() as u8];
    bytes.extend_from_slice(body);
    bytes
}

/// A CONNECT of `name`/`level` with `flags`, keep alive 60, then `rest`.
pub(super) fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0x00, 0x3C]);
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

/// `bytes` are refused with `code`; the error's message contains `words`.
#[track_caller]
pub(super) fn refused(bytes: &[u8], state: Option<Protocol>, code: u8, words: &str) -> DecodeError {
    let error = reject(bytes, state);
    assert_eq!(error.reason_code(), code, "{error}");
    assert!(
        error.to_string().contains(words),
        "{error:?} should say {words:?}"
    );
    error
}

// ---- fixed header ----

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    let five = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    refused(
        &five,
        Some(V311),
        0x81,
        "remaining length varint longer than 4 bytes",
    );
    // decided on the fourth continuation byte, without waiting for a fifth
    let e = frame(&[0x30, 0x80, 0x80, 0x80, 0x80], NO_LIMIT).expect_err("5th byte announced");
    assert_eq!(e.reason_code(), 0x81);
    // 268,435,456 needs five bytes: never a valid remaining length
    let e = frame(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01], NO_LIMIT).expect_err("2^28");
    assert_eq!(e.reason_code(), 0x81);
}

#[test]
fn largest_remaining_length_waits_for_its_bytes() {
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    let expected = Frame {
        header_len: 5,
        remaining_len: 268_435_455,
        packet_type: PacketType::Publish,
        flags: 0,
    };
    assert_eq!(frame(&header, NO_LIMIT), Ok(Some(expected)));
    // a few bytes of a 256 MB packet: asks for more, allocates nothing for the rest
    let mut some = header.to_vec();
    some.extend_from_slice(&[0x00, 0x01, b't']);
    assert_eq!(decode(&some, Some(V311), NO_LIMIT), Ok(None));
}

#[test]
fn packet_above_the_maximum_size_is_refused_from_its_header() {
    // PUBLISH declaring 1000 bytes, 3 bytes present, limit 100
    let e = frame(&[0x30, 0xE8, 0x07], 100).expect_err("too large");
    assert_eq!(e.reason_code(), 0x95);
    assert_eq!(e.kind(), ErrorKind::PacketTooLarge);
    assert!(e.to_string().contains("1003 bytes"), "{e}");
    let e = decode(&[0x30, 0xE8, 0x07], Some(V5), 100).expect_err("too large");
    assert_eq!(e.reason_code(), 0x95);
    // the limit counts the fixed header: 2 + 98 = 100 passes, 2 + 99 does not
    assert!(frame(&[0x30, 98], 100).is_ok_and(|f| f.is_some()));
    assert!(frame(&[0x30, 99], 100).is_err());
    // a 256 MB declaration under a small limit
    let e = decode(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], Some(V5), 1 << 20).expect_err("256 MB");
    assert_eq!(e.reason_code(), 0x95);
}

#[test]
fn packet_type_0_is_malformed() {
    refused(&[0x00, 0x00], Some(V311), 0x81, "packet type 0 is reserved");
    // decided from the first byte alone
    assert!(frame(&[0x00], NO_LIMIT).is_err());
}

#[test]
fn fixed_header_flags_per_type() {
    refused(
        &packet(0x80, &[0, 1, 0, 1, b't', 0]),
        Some(V311),
        0x81,
        "SUBSCRIBE fixed header flags must be 0010, not 0000",
    );
    refused(
        &packet(0xA0, &[0, 1, 0, 1, b't']),
        Some(V311),
        0x81,
        "UNSUBSCRIBE fixed header flags must be 0010",
    );
    refused(
        &[0x60, 0x02, 0x00, 0x01],
        Some(V5),
        0x81,
        "PUBREL fixed header flags must be 0010",
    );
    refused(
        &[0x42, 0x02, 0x00, 0x01],
        Some(V5),
        0x81,
        "PUBACK fixed header flags must be 0000",
    );
    refused(
        &[0xC1, 0x00],
        Some(V311),
        0x81,
        "PINGREQ fixed header flags",
    );
    refused(
        &[0xE8, 0x00],
        Some(V5),
        0x81,
        "DISCONNECT fixed header flags",
    );
    let mut conn = connect(b"MQTT", 4, 0x02, &[0, 1, b'c']);
    conn[0] = 0x11;
    refused(&conn, None, 0x81, "CONNECT fixed header flags");
}

#[test]
fn publish_qos_3_is_malformed() {
    refused(
        &packet(0x36, &[0, 1, b't', 0, 1]),
        Some(V311),
        0x81,
        "PUBLISH QoS is 3",
    );
    refused(
        &packet(0x36, &[0, 1, b't', 0, 1, 0]),
        Some(V5),
        0x81,
        "PUBLISH QoS is 3",
    );
}

#[test]
fn dup_on_qos_0_is_malformed_in_mqtt5_only() {
    refused(
        &packet(0x38, &[0, 1, b't', 0]),
        Some(V5),
        0x81,
        "DUP set on a QoS 0 PUBLISH",
    );
    // 3.1.1 only tells the sender not to: accepted, as Mosquitto does for 3.x
    let Ok(Packet::Publish(p)) = decode_one(&packet(0x38, &[0, 1, b't']), Some(V311)) else {
        panic!("3.1.1 PUBLISH with DUP on QoS 0");
    };
    assert!(p.dup);
}

// ---- connection state ----

#[test]
fn first_packet_must_be_connect() {
    refused(
        &[0xC0, 0x00],
        None,
        0x82,
        "the first packet must be CONNECT",
    );
    // refused from the first byte, before the body arrives
    refused(
        &[0x30, 0x7F],
        None,
        0x82,
        "the first packet must be CONNECT",
    );
}

#[test]
fn second_connect_is_a_protocol_error() {
    let conn = connect(b"MQTT", 4, 0x02, &[0, 1, b'c']);
    refused(&conn, Some(V311), 0x82, "second CONNECT");
    refused(&conn[..3], Some(V5), 0x82, "second CONNECT");
}

#[test]
fn auth_before_mqtt5_is_malformed() {
    refused(&[0xF0, 0x00], Some(V311), 0x81, "AUTH");
    refused(&[0xF0, 0x00], Some(V31), 0x81, "AUTH");
}

// ---- lengths ----

#[test]
fn trailing_bytes_are_malformed() {
    refused(
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        Some(V311),
        0x81,
        "1 trailing byte(s) after the last field of PUBACK",
    );
    refused(
        &[0xC0, 0x01, 0x00],
        Some(V5),
        0x81,
        "after the last field of PINGREQ",
    );
    refused(
        &[0xE0, 0x01, 0x00],
        Some(V311),
        0x81,
        "after the last field of DISCONNECT",
    );
    refused(
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        Some(V311),
        0x81,
        "trailing byte(s)",
    );
    let conn = connect(b"MQTT", 4, 0x02, &[0, 1, b'c', 0xFF]);
    refused(&conn, None, 0x81, "after the last field of CONNECT");
}

#[test]
fn fields_running_past_the_end_are_malformed() {
    // topic length 10, three bytes there
    refused(
        &packet(0x30, &[0, 10, b'a', b'b', b'c']),
        Some(V311),
        0x81,
        "topic name runs past the end of the packet",
    );
    // QoS 1 without room for the packet identifier
    refused(
        &packet(0x32, &[0, 1, b't', 0]),
        Some(V311),
        0x81,
        "packet identifier runs past the end",
    );
    refused(
        &[0x40, 0x01, 0x00],
        Some(V311),
        0x81,
        "packet identifier runs past the end",
    );
    // CONNECT that stops after the flags
    refused(
        &packet(0x10, &[0, 4, b'M', b'Q', b'T', b'T', 4, 2]),
        None,
        0x81,
        "keep alive runs past the end",
    );
    // SUBSCRIBE filter without its options byte
    refused(
        &packet(0x82, &[0, 1, 0, 1, b't']),
        Some(V311),
        0x81,
        "subscription options runs past the end",
    );
}

// ---- UTF-8 strings ----

#[test]
fn topic_with_nul_is_malformed() {
    refused(
        &packet(0x30, &[0, 3, b'a', 0, b'b']),
        Some(V311),
        0x81,
        "topic name contains U+0000",
    );
}

#[test]
fn invalid_utf8_is_malformed() {
    refused(
        &packet(0x30, &[0, 2, b'a', 0xFF]),
        Some(V311),
        0x81,
        "topic name is not well-formed UTF-8",
    );
    // U+D800, a surrogate, in its would-be UTF-8 form ED A0 80
    refused(
        &packet(0x30, &[0, 3, 0xED, 0xA0, 0x80]),
        Some(V5),
        0x81,
        "not well-formed UTF-8",
    );
    // overlong encoding of '/' (C0 AF)
    refused(
        &packet(0x82, &[0, 1, 0, 2, 0xC0, 0xAF, 0]),
        Some(V311),
        0x81,
        "topic filter is not well-formed UTF-8",
    );
    refused(
        &connect(b"MQTT", 4, 0x82, &[0, 1, b'c', 0, 1, 0xFE]),
        None,
        0x81,
        "user name is not well-formed UTF-8",
    );
}

#[test]
fn client_id_with_nul_is_malformed() {
    let e = refused(
        &connect(b"MQTT", 4, 0x02, &[0, 2, b'c', 0]),
        None,
        0x81,
        "client identifier contains U+0000",
    );
    assert_eq!(
        e.connack(),
        None,
        "3.1.1 closes without CONNACK on a malformed CONNECT"
    );
}

// ---- CONNECT ----

#[test]
fn unsupported_protocol_level_is_answered_with_a_3x_connack_as_mosquitto_does() {
    let cases: [(&[u8], u8, Protocol, u8); 6] = [
        (b"MQTT", 3, V311, 0x01),
        (b"MQTT", 0, V311, 0x01),
        (b"MQTT", 6, V311, 0x01),
        (b"MQTT", 7, V311, 0x01),
        (b"MQIsdp", 4, V31, 0x01),
        (b"MQIsdp", 5, V31, 0x01),
    ];
    for (name, level, answer_in, code) in cases {
        let e = refused(
            &connect(name, level, 0x02, &[0, 1, b'c']),
            None,
            0x84,
            "unsupported protocol version",
        );
        assert_eq!(e.kind(), ErrorKind::UnsupportedProtocolVersion);
        assert_eq!(e.connack_v3(), Some(0x01));
        assert_eq!(e.connect_protocol(), Some(answer_in));
        assert_eq!(
            e.connack(),
            Some((answer_in, code)),
            "{name:?} level {level}"
        );
    }
}

#[test]
fn unknown_protocol_name_closes_without_connack() {
    let e = refused(
        &connect(b"MQTX", 4, 0x02, &[0, 1, b'c']),
        None,
        0x82,
        "unknown protocol name \"MQTX\"",
    );
    assert_eq!(e.connack(), None);
    // the protocol name "MQTT" must be capitalised as shown
    refused(
        &connect(b"mqtt", 4, 0x02, &[0, 1, b'c']),
        None,
        0x82,
        "unknown protocol name",
    );
}

#[test]
fn reserved_connect_flag_is_malformed_in_mqtt311_and_5() {
    refused(
        &connect(b"MQTT", 4, 0x03, &[0, 1, b'c']),
        None,
        0x81,
        "reserved connect flag (bit 0) is set",
    );
    let e = refused(
        &connect(b"MQTT", 5, 0x03, &[0, 0, 1, b'c']),
        None,
        0x81,
        "reserved connect flag",
    );
    assert_eq!(
        e.connack(),
        Some((V5, 0x81)),
        "MQTT 5 may answer a bad CONNECT with a CONNACK"
    );
    // 3.1 did not reserve the bit (Mosquitto accepts it too)
    assert!(decode_one(&connect(b"MQIsdp", 3, 0x03, &[0, 1, b'c']), None).is_ok());
}

#[test]
fn will_qos_and_retain_need_the_will_flag() {
    // will QoS 1 (bit 3) without the will flag
    refused(
        &connect(b"MQTT", 4, 0x0A, &[0, 1, b'c']),
        None,
        0x81,
        "will QoS and will retain must be 0 when the will flag is 0",
    );
    // will retain (bit 5) without the will flag
    refused(
        &connect(b"MQTT", 5, 0x22, &[0, 0, 1, b'c']),
        None,
        0x81,
        "will QoS and will retain must be 0",
    );
}

#[test]
fn will_qos_3_is_malformed() {
    let will = [0, 1, b'c', 0, 1, b'w', 0, 0];
    refused(
        &connect(b"MQTT", 4, 0x1E, &will),
        None,
        0x81,
        "will QoS is 3",
    );
}

#[test]
fn password_without_user_name_only_refused_in_mqtt311() {
    let rest = [0, 1, b'c', 0, 1, b'p'];
    refused(
        &connect(b"MQTT", 4, 0x42, &rest),
        None,
        0x82,
        "password flag set without the user name flag",
    );
    let v5 = [0, 0, 1, b'c', 0, 1, b'p'];
    let Ok(Packet::Connect(c)) = decode_one(&connect(b"MQTT", 5, 0x42, &v5), None) else {
        panic!("MQTT 5 allows a password without user name");
    };
    assert_eq!((c.username, c.password.as_deref()), (None, Some(&b"p"[..])));
}

#[test]
fn mqtt31_client_id_has_1_to_23_bytes() {
    let mut long = vec![0, 24];
    long.extend_from_slice(&[b'x'; 24]);
    let e = refused(
        &connect(b"MQIsdp", 3, 0x02, &long),
        None,
        0x85,
        "1 to 23 bytes, this one 24",
    );
    assert_eq!(e.connack_v3(), Some(0x02));
    assert_eq!(e.connack(), Some((V31, 0x02)));
    let e = refused(
        &connect(b"MQIsdp", 3, 0x02, &[0, 0]),
        None,
        0x85,
        "1 to 23 bytes, this one 0",
    );
    assert_eq!(e.connack(), Some((V31, 0x02)));
    let mut longest = vec![0, 23];
    longest.extend_from_slice(&[b'x'; 23]);
    assert!(decode_one(&connect(b"MQIsdp", 3, 0x02, &longest), None).is_ok());
}

#[test]
fn mqtt311_empty_client_id_needs_clean_session() {
    let e = refused(
        &connect(b"MQTT", 4, 0x00, &[0, 0]),
        None,
        0x85,
        "needs clean session 1",
    );
    assert_eq!(e.connack(), Some((V311, 0x02)));
    assert!(decode_one(&connect(b"MQTT", 4, 0x02, &[0, 0]), None).is_ok());
    // MQTT 5: the server assigns one, clean start or not
    assert!(decode_one(&connect(b"MQTT", 5, 0x00, &[0, 0, 0]), None).is_ok());
}

#[test]
fn a_malformed_connect_is_not_answered_identifier_rejected() {
    // empty 3.1.1 client id without clean session, and a trailing byte: malformed wins
    let e = refused(
        &connect(b"MQTT", 4, 0x00, &[0, 0, 0xAA]),
        None,
        0x81,
        "trailing byte(s)",
    );
    assert_eq!(e.connack(), None);
}

// ---- packet identifiers ----

#[test]
fn packet_identifier_0_is_a_protocol_error() {
    refused(
        &packet(0x32, &[0, 1, b't', 0, 0]),
        Some(V311),
        0x82,
        "packet identifier is 0",
    );
    refused(
        &[0x40, 0x02, 0x00, 0x00],
        Some(V5),
        0x82,
        "PUBACK: packet identifier is 0",
    );
    refused(
        &[0x62, 0x02, 0x00, 0x00],
        Some(V311),
        0x82,
        "packet identifier is 0",
    );
    refused(
        &packet(0x82, &[0, 0, 0, 1, b't', 0]),
        Some(V311),
        0x82,
        "packet identifier is 0",
    );
    refused(
        &packet(0xA2, &[0, 0, 0, 1, b't']),
        Some(V311),
        0x82,
        "packet identifier is 0",
    );
    refused(
        &[0x90, 0x03, 0x00, 0x00, 0x00],
        Some(V311),
        0x82,
        "packet identifier is 0",
    );
}

// ---- SUBSCRIBE / UNSUBSCRIBE ----

#[test]
fn subscribe_without_filters_is_a_protocol_error() {
    refused(
        &[0x82, 0x02, 0x00, 0x01],
        Some(V311),
        0x82,
        "SUBSCRIBE without a topic filter",
    );
    refused(
        &[0x82, 0x03, 0x00, 0x01, 0x00],
        Some(V5),
        0x82,
        "SUBSCRIBE without a topic filter",
    );
}

#[test]
fn unsubscribe_without_filters_is_a_protocol_error() {
    refused(
        &[0xA2, 0x02, 0x00, 0x01],
        Some(V311),
        0x82,
        "UNSUBSCRIBE without a topic filter",
    );
    refused(
        &[0xA2, 0x03, 0x00, 0x01, 0x00],
        Some(V5),
        0x82,
        "UNSUBSCRIBE without a topic filter",
    );
}

#[test]
fn subscription_options_in_mqtt3() {
    let sub = |options| packet(0x82, &[0, 1, 0, 1, b't', options]);
    refused(&sub(0x03), Some(V311), 0x81, "requested QoS is 3");
    // the MQTT 5 option bits are reserved in 3.x
    refused(
        &sub(0x04),
        Some(V311),
        0x81,
        "subscription options bits 7-2 must be 0 before MQTT 5",
    );
    refused(&sub(0x81), Some(V31), 0x81, "bits 7-2 must be 0");
}

#[test]
fn subscription_options_in_mqtt5() {
    let sub = |options| packet(0x82, &[0, 1, 0, 0, 1, b't', options]);
    refused(
        &sub(0x40),
        Some(V5),
        0x81,
        "reserved subscription options bits 7-6 are set",
    );
    refused(&sub(0x80), Some(V5), 0x81, "bits 7-6");
    // MQTT 5 §3.8.3.1 names these two protocol errors
    refused(&sub(0x03), Some(V5), 0x82, "subscription Maximum QoS is 3");
    refused(&sub(0x30), Some(V5), 0x82, "Retain Handling is 3");
}

// ---- SUBACK / UNSUBACK / CONNACK (client side) ----

#[test]
fn acks_without_codes_and_with_unknown_codes() {
    refused(
        &[0x90, 0x02, 0x00, 0x01],
        Some(V311),
        0x82,
        "SUBACK without a return code",
    );
    refused(
        &[0x90, 0x03, 0x00, 0x01, 0x03],
        Some(V311),
        0x82,
        "reason code 0x03 is not one this packet may carry",
    );
    refused(
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        Some(V5),
        0x82,
        "UNSUBACK without a reason code",
    );
    refused(
        &[0x20, 0x02, 0x00, 0x06],
        Some(V311),
        0x82,
        "CONNACK return code 6 is reserved",
    );
}

#[test]
fn connack_flags() {
    refused(
        &[0x20, 0x02, 0x02, 0x00],
        Some(V311),
        0x81,
        "reserved CONNACK flags (bits 7-1) are set",
    );
    refused(
        &[0x20, 0x02, 0x01, 0x05],
        Some(V311),
        0x82,
        "session present set in a CONNACK that refuses",
    );
    refused(
        &[0x20, 0x03, 0x01, 0x87, 0x00],
        Some(V5),
        0x82,
        "session present set",
    );
}

// ---- topic names ----

#[test]
fn empty_topic_name() {
    refused(
        &packet(0x30, &[0, 0, b'x']),
        Some(V311),
        0x90,
        "topic name is empty",
    );
    refused(
        &packet(0x30, &[0, 0, 0, b'x']),
        Some(V5),
        0x82,
        "empty topic name without a Topic Alias",
    );
}
