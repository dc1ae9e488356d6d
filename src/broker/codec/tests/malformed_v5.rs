//! One test per MQTT 5 property or reason code error, asserting its reason code.

use super::malformed::{connect, packet, refused};
use super::*;

const V5: Protocol = Protocol::V5;

/// A QoS 0 PUBLISH to "t" with the property bytes `props` and payload "x".
fn publish(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', props.len() as u8];
    body.extend_from_slice(props);
    body.push(b'x');
    packet(0x30, &body)
}

/// An MQTT 5 CONNECT (clean start, client "c") with the property bytes `props`.
fn connect_v5(props: &[u8]) -> Vec<u8> {
    let mut rest = vec![props.len() as u8];
    rest.extend_from_slice(props);
    rest.extend_from_slice(&[0, 1, b'c']);
    connect(b"MQTT", 5, 0x02, &rest)
}

/// An MQTT 5 CONNACK (success) with the property bytes `props`.
fn connack(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x00, props.len() as u8];
    body.extend_from_slice(props);
    packet(0x20, &body)
}

/// A SUBSCRIBE of "t" (QoS 0) with the property bytes `props`.
fn subscribe(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, props.len() as u8];
    body.extend_from_slice(props);
    body.extend_from_slice(&[0, 1, b't', 0]);
    packet(0x82, &body)
}

#[test]
fn unknown_property_identifier_is_malformed() {
    refused(
        &publish(&[0x05, 0x00]),
        Some(V5),
        0x81,
        "unknown property identifier 0x05 in PUBLISH properties",
    );
    // identifiers are varints: 0x80 0x01 is 128
    refused(
        &publish(&[0x80, 0x01, 0x00]),
        Some(V5),
        0x81,
        "unknown property identifier 0x80",
    );
    refused(
        &connect_v5(&[0x00]),
        None,
        0x81,
        "unknown property identifier 0x00",
    );
}

#[test]
fn property_not_allowed_in_the_packet_is_malformed() {
    let e = refused(
        &connect_v5(&[0x23, 0x00, 0x01]),
        None,
        0x81,
        "Topic Alias (0x23) is not allowed in CONNECT properties",
    );
    assert_eq!(e.connack(), Some((V5, 0x81)));
    refused(
        &publish(&[0x11, 0, 0, 0, 1]),
        Some(V5),
        0x81,
        "Session Expiry Interval (0x11) is not allowed in PUBLISH",
    );
    refused(
        &publish(&[0x18, 0, 0, 0, 1]),
        Some(V5),
        0x81,
        "Will Delay Interval (0x18) is not allowed in PUBLISH",
    );
    refused(
        &subscribe(&[0x1F, 0, 1, b'r']),
        Some(V5),
        0x81,
        "Reason String (0x1F) is not allowed in SUBSCRIBE",
    );
    refused(
        &[0x40, 0x08, 0, 1, 0, 4, 0x11, 0, 0, 0],
        Some(V5),
        0x81,
        "not allowed in acknowledgement properties",
    );
    refused(
        &[0xE0, 0x04, 0x00, 0x02, 0x23, 0x00],
        Some(V5),
        0x81,
        "Topic Alias (0x23) is not allowed in DISCONNECT",
    );
    // will properties: no subscription identifier
    let will = [0x00, 0, 1, b'c', 0x02, 0x0B, 0x01, 0, 1, b'w', 0, 0];
    refused(
        &connect(b"MQTT", 5, 0x06, &will),
        None,
        0x81,
        "not allowed in will properties",
    );
}

#[test]
fn single_valued_property_twice_is_a_protocol_error() {
    let twice = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    let e = refused(
        &connect_v5(&twice),
        None,
        0x82,
        "Session Expiry Interval given more than once in CONNECT properties",
    );
    assert_eq!(e.connack(), Some((V5, 0x82)));
    refused(
        &publish(&[0x23, 0, 1, 0x23, 0, 2]),
        Some(V5),
        0x82,
        "Topic Alias given more than once",
    );
    refused(
        &subscribe(&[0x0B, 1, 0x0B, 2]),
        Some(V5),
        0x82,
        "Subscription Identifier given more than once in SUBSCRIBE",
    );
    refused(
        &[0x40, 0x0C, 0, 1, 0, 8, 0x1F, 0, 1, b'a', 0x1F, 0, 1, b'b'],
        Some(V5),
        0x82,
        "Reason String given more than once",
    );
}

#[test]
fn repeatable_properties_may_repeat() {
    let users = [0x26, 0, 1, b'a', 0, 0, 0x26, 0, 1, b'a', 0, 1, b'b'];
    let Ok(Packet::Publish(p)) = decode_one(&publish(&users), Some(V5)) else {
        panic!("two user properties");
    };
    assert_eq!(p.props.user_properties, strings(&[("a", ""), ("a", "b")]));
    let Ok(Packet::Publish(p)) = decode_one(&publish(&[0x0B, 3, 0x0B, 4]), Some(V5)) else {
        panic!("two subscription identifiers in a PUBLISH");
    };
    assert_eq!(p.props.subscription_identifiers, [3, 4]);
}

#[test]
fn zero_values_the_specification_forbids() {
    refused(
        &connect_v5(&[0x21, 0, 0]),
        None,
        0x82,
        "Receive Maximum is 0",
    );
    refused(
        &connack(&[0x21, 0, 0]),
        Some(V5),
        0x82,
        "Receive Maximum is 0",
    );
    refused(
        &connect_v5(&[0x27, 0, 0, 0, 0]),
        None,
        0x82,
        "Maximum Packet Size is 0",
    );
    refused(
        &connack(&[0x27, 0, 0, 0, 0]),
        Some(V5),
        0x82,
        "Maximum Packet Size is 0",
    );
    refused(
        &publish(&[0x0B, 0x00]),
        Some(V5),
        0x82,
        "Subscription Identifier is 0",
    );
    refused(
        &subscribe(&[0x0B, 0x00]),
        Some(V5),
        0x82,
        "Subscription Identifier is 0",
    );
}

#[test]
fn topic_alias_0_is_topic_alias_invalid() {
    let e = refused(&publish(&[0x23, 0, 0]), Some(V5), 0x94, "Topic Alias is 0");
    assert_eq!(e.kind(), ErrorKind::TopicAliasInvalid);
}

#[test]
fn subscription_identifier_varint_of_five_bytes_is_malformed() {
    let five = [0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    refused(
        &subscribe(&five),
        Some(V5),
        0x81,
        "Subscription Identifier varint longer than 4 bytes",
    );
}

#[test]
fn byte_flags_must_be_0_or_1() {
    refused(
        &publish(&[0x01, 0x02]),
        Some(V5),
        0x82,
        "Payload Format Indicator must be 0 or 1, not 2",
    );
    refused(
        &connect_v5(&[0x17, 0x02]),
        None,
        0x82,
        "Request Problem Information must be 0 or 1, not 2",
    );
    refused(
        &connect_v5(&[0x19, 0xFF]),
        None,
        0x82,
        "Request Response Information must be 0 or 1, not 255",
    );
    refused(
        &connack(&[0x24, 0x02]),
        Some(V5),
        0x82,
        "Maximum QoS must be 0 or 1, not 2",
    );
    refused(
        &connack(&[0x25, 0x02]),
        Some(V5),
        0x82,
        "Retain Available must be 0 or 1",
    );
    refused(
        &connack(&[0x28, 0x02]),
        Some(V5),
        0x82,
        "Wildcard Subscription Available must be 0 or 1",
    );
    refused(
        &connack(&[0x29, 0x02]),
        Some(V5),
        0x82,
        "Subscription Identifier Available must be 0 or 1",
    );
    refused(
        &connack(&[0x2A, 0x02]),
        Some(V5),
        0x82,
        "Shared Subscription Available must be 0 or 1",
    );
}

#[test]
fn property_length_must_match_the_properties() {
    // property length 9, 3 bytes left in the packet
    refused(
        &packet(0x30, &[0, 1, b't', 9, 0x23, 0, 1]),
        Some(V5),
        0x81,
        "PUBLISH properties runs past the end",
    );
    // property length 2 cuts a Message Expiry Interval (needs 5)
    refused(
        &packet(0x30, &[0, 1, b't', 2, 0x02, 0, 0, 0, 1]),
        Some(V5),
        0x81,
        "Message Expiry Interval runs past the end",
    );
    // property length missing entirely
    refused(
        &packet(0x30, &[0, 1, b't']),
        Some(V5),
        0x81,
        "property length runs past the end",
    );
    // a user property whose value is cut by the property length
    refused(
        &publish(&[0x26, 0, 1, b'a', 0, 2, b'b']),
        Some(V5),
        0x81,
        "User Property value runs past the end",
    );
}

#[test]
fn authentication_data_needs_a_method() {
    let e = refused(
        &connect_v5(&[0x16, 0, 1, 0xAA]),
        None,
        0x82,
        "Authentication Data without Authentication Method",
    );
    assert_eq!(e.connack(), Some((V5, 0x82)));
    refused(
        &connack(&[0x16, 0, 1, 0xAA]),
        Some(V5),
        0x82,
        "Authentication Data without Authentication Method",
    );
}

#[test]
fn auth_needs_a_method_and_a_valid_code() {
    refused(
        &[0xF0, 0x01, 0x18],
        Some(V5),
        0x82,
        "AUTH without Authentication Method",
    );
    refused(
        &[0xF0, 0x02, 0x00, 0x00],
        Some(V5),
        0x82,
        "AUTH without Authentication Method",
    );
    refused(
        &[0xF0, 0x02, 0x01, 0x00],
        Some(V5),
        0x82,
        "reason code 0x01 is not one this packet may carry",
    );
}

#[test]
fn reason_codes_outside_the_packets_list_are_protocol_errors() {
    let not_allowed = "is not one this packet may carry";
    refused(&[0x40, 0x03, 0x00, 0x01, 0x92], Some(V5), 0x82, not_allowed);
    refused(&[0x50, 0x03, 0x00, 0x01, 0x8E], Some(V5), 0x82, not_allowed);
    refused(&[0x62, 0x03, 0x00, 0x01, 0x10], Some(V5), 0x82, not_allowed);
    refused(&[0x70, 0x03, 0x00, 0x01, 0x80], Some(V5), 0x82, not_allowed);
    refused(&[0xE0, 0x01, 0x01], Some(V5), 0x82, not_allowed);
    refused(&[0x20, 0x03, 0x00, 0x01, 0x00], Some(V5), 0x82, not_allowed); // CONNACK 3.x code
    refused(
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x11],
        Some(V5),
        0x82,
        not_allowed,
    );
    refused(
        &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x02],
        Some(V5),
        0x82,
        not_allowed,
    );
}

#[test]
fn payload_format_is_the_engines_check() {
    // the decoder accepts a UTF-8 indicator on a non-UTF-8 payload...
    let mut bytes = publish(&[0x01, 0x01]);
    let last = bytes.len() - 1;
    bytes[last] = 0xFF;
    let Ok(Packet::Publish(p)) = decode_one(&bytes, Some(V5)) else {
        panic!("PUBLISH with a payload format indicator");
    };
    // ...and check_payload_format refuses it with 0x99
    let e = check_payload_format(&p.props, &p.payload).expect_err("not UTF-8");
    assert_eq!(e.reason_code(), 0x99);
    assert_eq!(e.kind(), ErrorKind::PayloadFormatInvalid);
    assert!(
        e.to_string().contains("payload is not well-formed UTF-8"),
        "{e}"
    );
    assert!(check_payload_format(&p.props, "€".as_bytes()).is_ok());
    let unspecified = PublishProps {
        payload_format_indicator: Some(0),
        ..PublishProps::default()
    };
    assert!(check_payload_format(&unspecified, &[0xFF]).is_ok());
}
