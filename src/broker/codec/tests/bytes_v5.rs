//! Byte tables for MQTT 5: every packet type and every property once, the short forms of the
//! acknowledgements, DISCONNECT and AUTH, and the delivery path with its overrides.

use std::sync::Arc;

use bytes::Bytes;

use super::*;

const V5: Protocol = Protocol::V5;

#[test]
fn connect_with_every_connect_and_will_property() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                               // CONNECT
        0x65,                               // remaining length 101
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol level 5
        0b1101_0110,                        // user name, password, will QoS 2, will, clean start
        0x00, 0x1E,                         // keep alive 30 s
        0x28,                               // property length 40
        0x11, 0x00, 0x00, 0x0E, 0x10,       //   session expiry interval 3600 s
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method "SCRAM"
        0x16, 0x00, 0x02, 0x01, 0x02,       //   authentication data 01 02
        0x17, 0x00,                         //   request problem information 0
        0x19, 0x01,                         //   request response information 1
        0x21, 0x00, 0x14,                   //   receive maximum 20
        0x22, 0x00, 0x0A,                   //   topic alias maximum 10
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x27, 0x00, 0x00, 0x40, 0x00,       //   maximum packet size 16384
        0x00, 0x02, b'c', b'5',             // client identifier "c5"
        0x21,                               // will property length 33
        0x01, 0x01,                         //   payload format indicator 1 (UTF-8)
        0x02, 0x00, 0x00, 0x00, 0x3C,       //   message expiry interval 60 s
        0x03, 0x00, 0x03, b't', b'/', b'p', //   content type "t/p"
        0x08, 0x00, 0x01, b'r',             //   response topic "r"
        0x09, 0x00, 0x01, 0xAB,             //   correlation data AB
        0x18, 0x00, 0x00, 0x00, 0x05,       //   will delay interval 5 s
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
        0x00, 0x01, b'w',                   // will topic "w"
        0x00, 0x01, b'x',                   // will payload "x"
        0x00, 0x01, b'u',                   // user name "u"
        0x00, 0x01, b'p',                   // password "p"
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 30,
        client_id: "c5".into(),
        will: Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::ExactlyOnce,
            retain: false,
            delay_interval: 5,
            props: PublishProps {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                content_type: Some("t/p".into()),
                response_topic: Some("r".into()),
                correlation_data: Some(Bytes::from_static(&[0xAB])),
                user_properties: strings(&[("a", "b")]),
                ..PublishProps::default()
            },
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        props: ConnectProps {
            session_expiry_interval: 3600,
            receive_maximum: Some(20),
            maximum_packet_size: Some(16384),
            topic_alias_maximum: 10,
            request_response_information: true,
            request_problem_information: false,
            user_properties: strings(&[("k", "v")]),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(&[1, 2])),
        },
    }));
    table(V5, &bytes, packet);
}

#[test]
fn connect_minimal_with_empty_client_id_and_no_clean_start() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x0D,                         // CONNECT, remaining length 13
        0x00, 0x04, b'M', b'Q', b'T', b'T', // "MQTT"
        0x05,                               // level 5
        0x00,                               // no flags: MQTT 5 allows "" without clean start
        0x00, 0x3C,                         // keep alive 60 s
        0x00,                               // property length 0
        0x00, 0x00,                         // client identifier ""
    ];
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V5,
        clean_start: false,
        keep_alive: 60,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        props: ConnectProps::default(),
    }));
    table(V5, &bytes, packet);
}

#[test]
fn connack_with_every_connack_property() {
    #[rustfmt::skip]
    let bytes = [
        0x20,                               // CONNACK
        0x45,                               // remaining length 69
        0x01,                               // session present
        0x00,                               // reason code success
        0x42,                               // property length 66
        0x11, 0x00, 0x00, 0x00, 0x78,       //   session expiry interval 120 s
        0x12, 0x00, 0x03, b'i', b'd', b'1', //   assigned client identifier "id1"
        0x13, 0x00, 0x1E,                   //   server keep alive 30 s
        0x15, 0x00, 0x01, b'M',             //   authentication method "M"
        0x16, 0x00, 0x01, 0x09,             //   authentication data 09
        0x1A, 0x00, 0x02, b'r', b'i',       //   response information "ri"
        0x1C, 0x00, 0x03, b's', b'r', b'v', //   server reference "srv"
        0x1F, 0x00, 0x02, b'o', b'k',       //   reason string "ok"
        0x21, 0x00, 0x64,                   //   receive maximum 100
        0x22, 0x00, 0x10,                   //   topic alias maximum 16
        0x24, 0x01,                         //   maximum QoS 1
        0x25, 0x00,                         //   retain available 0
        0x26, 0x00, 0x01, b'x', 0x00, 0x01, b'y', // user property x=y
        0x27, 0x00, 0x00, 0x04, 0x00,       //   maximum packet size 1024
        0x28, 0x00,                         //   wildcard subscription available 0
        0x29, 0x00,                         //   subscription identifiers available 0
        0x2A, 0x01,                         //   shared subscription available 1
    ];
    let packet = Packet::ConnAck(ConnAck {
        session_present: true,
        code: reason::SUCCESS,
        props: ConnAckProps {
            session_expiry_interval: Some(120),
            receive_maximum: Some(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(1024),
            assigned_client_identifier: Some("id1".into()),
            topic_alias_maximum: Some(16),
            reason_string: Some("ok".into()),
            user_properties: strings(&[("x", "y")]),
            wildcard_subscription_available: Some(false),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some("ri".into()),
            server_reference: Some("srv".into()),
            authentication_method: Some("M".into()),
            authentication_data: Some(Bytes::from_static(&[9])),
        },
    });
    table(V5, &bytes, packet);
}

#[test]
fn connack_refusal_and_code_translation() {
    let refused = |code| {
        Packet::ConnAck(ConnAck {
            code,
            ..ConnAck::default()
        })
    };
    // flags 0, reason code 0x87 not authorized, property length 0
    table(
        V5,
        &[0x20, 0x03, 0x00, 0x87, 0x00],
        refused(reason::NOT_AUTHORIZED),
    );
    // a 3.x return code is written in MQTT 5 numbering
    encodes_to(
        V5,
        refused(reason::V3_BAD_USERNAME_OR_PASSWORD),
        &[0x20, 0x03, 0x00, 0x86, 0x00],
    );
    // maximum QoS 2 is what absence means: not written
    let qos2 = Packet::ConnAck(ConnAck {
        props: ConnAckProps {
            maximum_qos: Some(QoS::ExactlyOnce),
            ..ConnAckProps::default()
        },
        ..ConnAck::default()
    });
    encodes_to(V5, qos2, &[0x20, 0x03, 0x00, 0x00, 0x00]);
}

#[test]
fn publish_with_every_publish_property() {
    #[rustfmt::skip]
    let bytes = [
        0x32,                               // PUBLISH QoS 1
        0x34,                               // remaining length 52
        0x00, 0x03, b't', b'/', b'1',       // topic "t/1"
        0x00, 0x07,                         // packet identifier 7
        0x2A,                               // property length 42
        0x01, 0x00,                         //   payload format indicator 0 (bytes)
        0x02, 0x00, 0x00, 0x00, 0x0A,       //   message expiry interval 10 s
        0x03, 0x00, 0x04, b'j', b's', b'o', b'n', // content type "json"
        0x08, 0x00, 0x04, b'r', b'e', b'/', b'q', // response topic "re/q"
        0x09, 0x00, 0x03, 0x01, 0x02, 0x03, //   correlation data 01 02 03
        0x0B, 0x01,                         //   subscription identifier 1
        0x0B, 0xC8, 0x01,                   //   subscription identifier 200 (two-byte varint)
        0x23, 0x00, 0x05,                   //   topic alias 5
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        b'{', b'}',                         // payload "{}"
    ];
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: Arc::from("t/1"),
        packet_id: Some(pid(7)),
        payload: Bytes::from_static(b"{}"),
        props: PublishProps {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(10),
            topic_alias: Some(pid(5)),
            response_topic: Some("re/q".into()),
            correlation_data: Some(Bytes::from_static(&[1, 2, 3])),
            user_properties: strings(&[("k", "v")]),
            subscription_identifiers: vec![1, 200],
            content_type: Some("json".into()),
        },
    });
    table(V5, &bytes, packet);
}

#[test]
fn publish_short_forms() {
    #[rustfmt::skip]
    let no_props = [
        0x30, 0x05,         // PUBLISH QoS 0, remaining length 5
        0x00, 0x01, b't',   // topic "t"
        0x00,               // property length 0
        b'x',               // payload "x"
    ];
    let plain = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: Arc::from("t"),
        packet_id: None,
        payload: Bytes::from_static(b"x"),
        props: PublishProps::default(),
    };
    table(V5, &no_props, Packet::Publish(plain.clone()));
    #[rustfmt::skip]
    let alias_only = [
        0x31, 0x07,         // PUBLISH QoS 0 retain, remaining length 7
        0x00, 0x00,         // topic "": the alias names it
        0x03,               // property length 3
        0x23, 0x00, 0x05,   //   topic alias 5
        b'x',               // payload "x"
    ];
    let aliased = Publish {
        retain: true,
        topic: Arc::from(""),
        props: PublishProps {
            topic_alias: Some(pid(5)),
            ..PublishProps::default()
        },
        ..plain
    };
    table(V5, &alias_only, Packet::Publish(aliased));
}

#[test]
fn publish_out_overrides_the_stored_properties() {
    let stored = PublishProps {
        topic_alias: Some(pid(9)),
        message_expiry_interval: Some(1000),
        subscription_identifiers: vec![77],
        content_type: Some("c".into()),
        ..PublishProps::default()
    };
    let out = PublishOut {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "",
        packet_id: Some(pid(3)),
        topic_alias: Some(pid(2)),
        message_expiry_interval: Some(7),
        subscription_identifiers: &[5, 6],
        props: &stored,
        payload: b"",
    };
    #[rustfmt::skip]
    let expected = [
        0x3C, 0x15,                     // PUBLISH DUP QoS 2, remaining length 21
        0x00, 0x00,                     // topic "" (alias only)
        0x00, 0x03,                     // packet identifier 3
        0x10,                           // property length 16
        0x02, 0x00, 0x00, 0x00, 0x07,   //   message expiry interval 7 (not the stored 1000)
        0x03, 0x00, 0x01, b'c',         //   content type "c" (stored)
        0x0B, 0x05,                     //   subscription identifier 5
        0x0B, 0x06,                     //   subscription identifier 6 (not the stored 77)
        0x23, 0x00, 0x02,               //   topic alias 2 (not the stored 9); empty payload
    ];
    let mut bytes = vec![0xEE]; // encode_publish appends
    encode_publish(&mut bytes, V5, &out);
    assert_eq!(bytes[1..], expected);
    assert_eq!(publish_len(V5, &out), expected.len());
}

#[test]
fn acknowledgements_in_their_three_forms() {
    let success = Ack::new(pid(7));
    // remaining length 2: success without properties
    table(
        V5,
        &[0x40, 0x02, 0x00, 0x07],
        Packet::PubAck(success.clone()),
    );
    table(V5, &[0x70, 0x02, 0x00, 0x07], Packet::PubComp(success));
    // remaining length 3: a reason code without properties
    let no_subscribers = Ack {
        code: reason::NO_MATCHING_SUBSCRIBERS,
        ..Ack::new(pid(7))
    };
    table(
        V5,
        &[0x40, 0x03, 0x00, 0x07, 0x10],
        Packet::PubAck(no_subscribers),
    );
    let not_found = Ack {
        code: reason::PACKET_IDENTIFIER_NOT_FOUND,
        ..Ack::new(pid(7))
    };
    table(
        V5,
        &[0x62, 0x03, 0x00, 0x07, 0x92],
        Packet::PubRel(not_found),
    );
    #[rustfmt::skip]
    let full = [
        0x50, 0x11,                         // PUBREC, remaining length 17
        0x00, 0x07,                         // packet identifier 7
        0x87,                               // reason code not authorized
        0x0D,                               // property length 13
        0x1F, 0x00, 0x03, b'b', b'a', b'd', //   reason string "bad"
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
    ];
    let refused = Ack {
        packet_id: pid(7),
        code: reason::NOT_AUTHORIZED,
        reason_string: Some("bad".into()),
        user_properties: strings(&[("a", "b")]),
    };
    table(V5, &full, Packet::PubRec(refused));
    // success with a property needs the code and the property length
    let success_with_reason = Ack {
        reason_string: Some("k".into()),
        ..Ack::new(pid(7))
    };
    #[rustfmt::skip]
    let bytes = [0x40, 0x08, 0x00, 0x07, 0x00, 0x04, 0x1F, 0x00, 0x01, b'k'];
    table(V5, &bytes, Packet::PubAck(success_with_reason));
}

#[test]
fn subscribe_with_identifier_and_options() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x22,                         // SUBSCRIBE, remaining length 34
        0x00, 0x0A,                         // packet identifier 10
        0x0C,                               // property length 12
        0x0B, 0xFF, 0xFF, 0xFF, 0x7F,       //   subscription identifier 268,435,455 (largest)
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
        0x00, 0x03, b'a', b'/', b'#',       // filter "a/#"
        0b0010_1110,                        // retain handling 2, retain as published, no local, QoS 2
        0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b't', // "$share/g/t"
        0b0001_0000,                        // retain handling 1, QoS 0
    ];
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(10),
        subscription_identifier: Some(VARINT_MAX),
        user_properties: strings(&[("k", "v")]),
        filters: vec![
            (
                "a/#".into(),
                SubOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
            ),
            (
                "$share/g/t".into(),
                SubOptions {
                    retain_handling: 1,
                    ..SubOptions::default()
                },
            ),
        ],
    });
    table(V5, &bytes, packet);
}

#[test]
fn suback_with_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x90, 0x13,                         // SUBACK, remaining length 19
        0x00, 0x0A,                         // packet identifier 10
        0x0B,                               // property length 11
        0x1F, 0x00, 0x01, b'r',             //   reason string "r"
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
        0x00, 0x01, 0x02,                   // granted QoS 0, 1, 2
        0x8F, 0xA2,                         // topic filter invalid, wildcards not supported
    ];
    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        codes: vec![0, 1, 2, 0x8F, 0xA2],
        reason_string: Some("r".into()),
        user_properties: strings(&[("a", "b")]),
    });
    table(V5, &bytes, packet);
}

#[test]
fn unsubscribe_and_unsuback() {
    #[rustfmt::skip]
    let unsubscribe = [
        0xA2, 0x12,                         // UNSUBSCRIBE, remaining length 18
        0x00, 0x0B,                         // packet identifier 11
        0x07,                               // property length 7
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
        0x00, 0x01, b'a',                   // filter "a"
        0x00, 0x03, b'b', b'/', b'+',       // filter "b/+"
    ];
    table(
        V5,
        &unsubscribe,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(11),
            user_properties: strings(&[("a", "b")]),
            filters: vec!["a".into(), "b/+".into()],
        }),
    );
    #[rustfmt::skip]
    let unsuback = [
        0xB0, 0x05,     // UNSUBACK, remaining length 5
        0x00, 0x0B,     // packet identifier 11
        0x00,           // property length 0
        0x00, 0x11,     // success, no subscription existed
    ];
    table(
        V5,
        &unsuback,
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(11),
            codes: vec![0x00, 0x11],
            reason_string: None,
            user_properties: Vec::new(),
        }),
    );
}

#[test]
fn disconnect_in_its_three_forms() {
    // remaining length 0: normal disconnection
    table(V5, &[0xE0, 0x00], Packet::Disconnect(Disconnect::default()));
    // remaining length 1: a reason code (session taken over) without properties
    let taken_over = Disconnect {
        code: reason::SESSION_TAKEN_OVER,
        ..Disconnect::default()
    };
    table(V5, &[0xE0, 0x01, 0x8E], Packet::Disconnect(taken_over));
    #[rustfmt::skip]
    let full = [
        0xE0, 0x19,                         // DISCONNECT, remaining length 25
        0x04,                               // disconnect with will message
        0x17,                               // property length 23
        0x11, 0x00, 0x00, 0x00, 0x00,       //   session expiry interval 0
        0x1C, 0x00, 0x02, b's', b'2',       //   server reference "s2"
        0x1F, 0x00, 0x03, b'b', b'y', b'e', //   reason string "bye"
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
    ];
    let packet = Disconnect {
        code: reason::DISCONNECT_WITH_WILL_MESSAGE,
        session_expiry_interval: Some(0),
        reason_string: Some("bye".into()),
        server_reference: Some("s2".into()),
        user_properties: strings(&[("a", "b")]),
    };
    table(V5, &full, Packet::Disconnect(packet));
}

#[test]
fn encode_disconnect_helper() {
    let mut out = Vec::new();
    encode_disconnect(&mut out, V5, reason::KEEP_ALIVE_TIMEOUT, None);
    assert_eq!(out, [0xE0, 0x01, 0x8D]); // code, no properties
    out.clear();
    encode_disconnect(&mut out, V5, reason::PROTOCOL_ERROR, Some("no"));
    #[rustfmt::skip]
    let expected = [
        0xE0, 0x07,             // DISCONNECT, remaining length 7
        0x82,                   // protocol error
        0x05,                   // property length 5
        0x1F, 0x00, 0x02, b'n', b'o', // reason string "no"
    ];
    assert_eq!(out, expected);
}

#[test]
fn auth() {
    // remaining length 0: success without properties
    table(V5, &[0xF0, 0x00], Packet::Auth(Auth::default()));
    #[rustfmt::skip]
    let full = [
        0xF0, 0x1B,                         // AUTH, remaining length 27
        0x18,                               // continue authentication
        0x19,                               // property length 25
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method "SCRAM"
        0x16, 0x00, 0x02, 0xDE, 0xAD,       //   authentication data DE AD
        0x1F, 0x00, 0x02, b'g', b'o',       //   reason string "go"
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a=b
    ];
    let packet = Auth {
        code: reason::CONTINUE_AUTHENTICATION,
        method: Some("SCRAM".into()),
        data: Some(Bytes::from_static(&[0xDE, 0xAD])),
        reason_string: Some("go".into()),
        user_properties: strings(&[("a", "b")]),
    };
    table(V5, &full, Packet::Auth(packet));
}

#[test]
fn ping() {
    table(V5, &[0xC0, 0x00], Packet::PingReq);
    table(V5, &[0xD0, 0x00], Packet::PingResp);
}

#[test]
fn properties_decode_in_any_order() {
    #[rustfmt::skip]
    let bytes = [
        0x50, 0x11, 0x00, 0x07, 0x87, 0x0D,
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property first this time
        0x1F, 0x00, 0x03, b'b', b'a', b'd',       // then the reason string
    ];
    let Ok(Packet::PubRec(ack)) = decode_one(&bytes, Some(V5)) else {
        panic!("not a PUBREC");
    };
    assert_eq!(ack.reason_string.as_deref(), Some("bad"));
    assert_eq!(ack.user_properties, strings(&[("a", "b")]));
}
