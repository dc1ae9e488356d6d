//! Byte tables for MQTT 3.1.1 (level 4) and 3.1 (MQIsdp, level 3): every packet type, both
//! directions, and what 3.x drops when an MQTT 5 value is encoded for it.

use std::sync::Arc;

use bytes::Bytes;

use super::*;

const V311: Protocol = Protocol::V311;
const V31: Protocol = Protocol::V31;

#[test]
fn connect_v311_with_will_username_and_password() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                         // CONNECT
        0x1C,                         // remaining length 28
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                         // protocol level 4
        0b1110_1110,                  // user name, password, will retain, will QoS 1, will, clean session
        0x00, 0x3C,                   // keep alive 60 s
        0x00, 0x02, b'c', b'1',       // client identifier "c1"
        0x00, 0x01, b'w',             // will topic "w"
        0x00, 0x03, b'b', b'y', b'e', // will payload "bye"
        0x00, 0x01, b'u',             // user name "u"
        0x00, 0x01, b'p',             // password "p"
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "c1".into(),
        will: Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            delay_interval: 0,
            props: PublishProps::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        props: ConnectProps::default(),
    }));
    table(V311, &bytes, packet);
}

#[test]
fn connect_v311_minimal_with_empty_client_id() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x0C,                         // CONNECT, remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T', // "MQTT"
        0x04,                               // level 4
        0b0000_0010,                        // clean session only
        0x00, 0x00,                         // keep alive off
        0x00, 0x00,                         // client identifier "" (allowed with clean session)
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 0,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        props: ConnectProps::default(),
    }));
    table(V311, &bytes, packet);
}

#[test]
fn connect_v31() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x13,                                     // CONNECT, remaining length 19
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
        0x03,                                           // protocol level 3
        0b0100_0000,                                    // password without user name (3.1 allows it)
        0x00, 0x0A,                                     // keep alive 10 s
        0x00, 0x03, b'a', b'b', b'c',                   // client identifier "abc"
        0x00, 0x00,                                     // password: empty
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V31,
        clean_start: false,
        keep_alive: 10,
        client_id: "abc".into(),
        will: None,
        username: None,
        password: Some(Bytes::new()),
        props: ConnectProps::default(),
    }));
    table(V31, &bytes, packet);
}

#[test]
fn connack() {
    let accepted = |session_present| {
        Packet::ConnAck(ConnAck {
            session_present,
            code: 0,
            props: ConnAckProps::default(),
        })
    };
    // flags: session present; return code 0 accepted
    table(V311, &[0x20, 0x02, 0x01, 0x00], accepted(true));
    // 3.1 has no session present flag: the byte is reserved
    table(V31, &[0x20, 0x02, 0x00, 0x00], accepted(false));
    encodes_to(V31, accepted(true), &[0x20, 0x02, 0x00, 0x00]);
    // return code 5: not authorized
    let refused = Packet::ConnAck(ConnAck {
        code: reason::V3_NOT_AUTHORIZED,
        ..ConnAck::default()
    });
    table(V311, &[0x20, 0x02, 0x00, 0x05], refused);
}

#[test]
fn connack_translates_mqtt5_codes() {
    let code = |code| {
        Packet::ConnAck(ConnAck {
            code,
            ..ConnAck::default()
        })
    };
    let rows = [
        (reason::UNSUPPORTED_PROTOCOL_VERSION, 0x01),
        (reason::CLIENT_IDENTIFIER_NOT_VALID, 0x02),
        (reason::SERVER_UNAVAILABLE, 0x03),
        (reason::SERVER_BUSY, 0x03),
        (reason::BAD_USERNAME_OR_PASSWORD, 0x04),
        (reason::NOT_AUTHORIZED, 0x05),
        (reason::BANNED, 0x05),
    ];
    for (v5, v3) in rows {
        encodes_to(V311, code(v5), &[0x20, 0x02, 0x00, v3]);
    }
}

#[test]
fn publish() {
    #[rustfmt::skip]
    let qos0 = [
        0x30,                         // PUBLISH, QoS 0, no DUP, no retain
        0x07,                         // remaining length 7
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        b'h', b'i',                   // payload "hi"
    ];
    table(
        V311,
        &qos0,
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Arc::from("a/b"),
            packet_id: None,
            payload: Bytes::from_static(b"hi"),
            props: PublishProps::default(),
        }),
    );
    #[rustfmt::skip]
    let qos1 = [
        0b0011_1011,        // PUBLISH, DUP, QoS 1, retain
        0x07,               // remaining length 7
        0x00, 0x01, b't',   // topic "t"
        0x12, 0x34,         // packet identifier 0x1234
        0x00, 0xFF,         // payload: two bytes, not UTF-8
    ];
    table(
        V31,
        &qos1,
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: Arc::from("t"),
            packet_id: Some(pid(0x1234)),
            payload: Bytes::from_static(&[0x00, 0xFF]),
            props: PublishProps::default(),
        }),
    );
    #[rustfmt::skip]
    let qos2_empty = [
        0b0011_0100,        // PUBLISH, QoS 2
        0x05,               // remaining length 5
        0x00, 0x01, b't',   // topic "t"
        0x00, 0x01,         // packet identifier 1; empty payload
    ];
    table(
        V311,
        &qos2_empty,
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: Arc::from("t"),
            packet_id: Some(pid(1)),
            payload: Bytes::new(),
            props: PublishProps::default(),
        }),
    );
}

#[test]
fn publish_drops_mqtt5_properties() {
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: Arc::from("t"),
        packet_id: None,
        payload: Bytes::from_static(b"x"),
        props: PublishProps {
            message_expiry_interval: Some(5),
            user_properties: strings(&[("k", "v")]),
            ..PublishProps::default()
        },
    });
    // PUBLISH, remaining 4, topic "t", payload "x": no property length
    encodes_to(V311, publish, &[0x30, 0x04, 0x00, 0x01, b't', b'x']);
}

#[test]
fn acknowledgements() {
    let ack = Ack::new(pid(7));
    // type nibble, remaining length 2, packet identifier 7
    table(V311, &[0x40, 0x02, 0x00, 0x07], Packet::PubAck(ack.clone()));
    table(V311, &[0x50, 0x02, 0x00, 0x07], Packet::PubRec(ack.clone()));
    // PUBREL carries the fixed flags 0010
    table(V311, &[0x62, 0x02, 0x00, 0x07], Packet::PubRel(ack.clone()));
    table(V31, &[0x70, 0x02, 0x00, 0x07], Packet::PubComp(ack));
}

#[test]
fn acknowledgements_drop_reason_codes() {
    let ack = Ack {
        packet_id: pid(7),
        code: reason::NO_MATCHING_SUBSCRIBERS,
        reason_string: Some("none".into()),
        user_properties: strings(&[("a", "b")]),
    };
    encodes_to(V311, Packet::PubAck(ack.clone()), &[0x40, 0x02, 0x00, 0x07]);
    encodes_to(V31, Packet::PubRec(ack), &[0x50, 0x02, 0x00, 0x07]);
}

#[test]
fn subscribe() {
    #[rustfmt::skip]
    let bytes = [
        0x82,                               // SUBSCRIBE, flags 0010
        0x0C,                               // remaining length 12
        0x00, 0x0A,                         // packet identifier 10
        0x00, 0x03, b'a', b'/', b'+',       // filter "a/+"
        0x01,                               // requested QoS 1
        0x00, 0x01, b'#',                   // filter "#"
        0x02,                               // requested QoS 2
    ];
    let qos = |qos| SubOptions {
        qos,
        ..SubOptions::default()
    };
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(10),
        subscription_identifier: None,
        user_properties: Vec::new(),
        filters: vec![
            ("a/+".into(), qos(QoS::AtLeastOnce)),
            ("#".into(), qos(QoS::ExactlyOnce)),
        ],
    });
    table(V311, &bytes, packet.clone());
    table(V31, &bytes, packet);
}

#[test]
fn subscribe_drops_mqtt5_options() {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        subscription_identifier: Some(3),
        user_properties: strings(&[("a", "b")]),
        filters: vec![(
            "t".into(),
            SubOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            },
        )],
    });
    // SUBSCRIBE, remaining 6, packet id 1, filter "t", options: QoS 1 only
    encodes_to(
        V311,
        packet,
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x01],
    );
}

#[test]
fn suback() {
    #[rustfmt::skip]
    let bytes = [
        0x90, 0x05,       // SUBACK, remaining length 5
        0x00, 0x0A,       // packet identifier 10
        0x01, 0x02, 0x80, // granted QoS 1, granted QoS 2, failure
    ];
    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        codes: vec![1, 2, 0x80],
        reason_string: None,
        user_properties: Vec::new(),
    });
    table(V311, &bytes, packet);
    // every MQTT 5 failure is 0x80 in 3.x
    let v5_codes = Packet::SubAck(SubAck {
        packet_id: pid(10),
        codes: vec![0, reason::NOT_AUTHORIZED, reason::TOPIC_FILTER_INVALID],
        reason_string: Some("no".into()),
        user_properties: Vec::new(),
    });
    encodes_to(V311, v5_codes, &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x80, 0x80]);
}

#[test]
fn unsubscribe_and_unsuback() {
    #[rustfmt::skip]
    let unsubscribe = [
        0xA2, 0x0A,                     // UNSUBSCRIBE (flags 0010), remaining length 10
        0x00, 0x0B,                     // packet identifier 11
        0x00, 0x03, b'a', b'/', b'+',   // filter "a/+"
        0x00, 0x01, b'#',               // filter "#"
    ];
    table(
        V311,
        &unsubscribe,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(11),
            user_properties: Vec::new(),
            filters: vec!["a/+".into(), "#".into()],
        }),
    );
    // UNSUBACK, remaining length 2, packet identifier 11: 3.x has no codes
    let unsuback = UnsubAck {
        packet_id: pid(11),
        codes: Vec::new(),
        reason_string: None,
        user_properties: Vec::new(),
    };
    table(
        V311,
        &[0xB0, 0x02, 0x00, 0x0B],
        Packet::UnsubAck(unsuback.clone()),
    );
    let with_codes = UnsubAck {
        codes: vec![0x00, reason::NO_SUBSCRIPTION_EXISTED],
        ..unsuback
    };
    encodes_to(V31, Packet::UnsubAck(with_codes), &[0xB0, 0x02, 0x00, 0x0B]);
}

#[test]
fn ping_and_disconnect() {
    table(V311, &[0xC0, 0x00], Packet::PingReq); // PINGREQ, remaining length 0
    table(V311, &[0xD0, 0x00], Packet::PingResp); // PINGRESP
    table(
        V31,
        &[0xE0, 0x00],
        Packet::Disconnect(Disconnect::default()),
    ); // DISCONNECT
    let with_code = Disconnect {
        code: reason::SERVER_SHUTTING_DOWN,
        reason_string: Some("bye".into()),
        ..Disconnect::default()
    };
    encodes_to(V311, Packet::Disconnect(with_code), &[0xE0, 0x00]);
    let mut out = Vec::new();
    encode_disconnect(&mut out, V311, reason::PROTOCOL_ERROR, Some("why"));
    assert_eq!(out, [0xE0, 0x00]);
}

#[test]
fn publish_out_matches_encode_and_publish_len() {
    let props = PublishProps::default();
    let out = PublishOut {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "a/b",
        packet_id: Some(pid(2)),
        topic_alias: None,
        message_expiry_interval: Some(9),
        subscription_identifiers: &[4],
        props: &props,
        payload: b"on",
    };
    let mut bytes = Vec::new();
    encode_publish(&mut bytes, V311, &out);
    #[rustfmt::skip]
    let expected = [
        0x33, 0x09,                   // PUBLISH QoS 1 retain, remaining length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x02,                   // packet identifier 2
        b'o', b'n',                   // payload; no properties in 3.1.1
    ];
    assert_eq!(bytes, expected);
    assert_eq!(publish_len(V311, &out), expected.len());
}
