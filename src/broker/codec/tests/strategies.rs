//! proptest strategies for valid packets of each protocol: every value they generate is one
//! the decoder accepts and the encoder writes without loss (so encode → decode is the identity).

use std::sync::Arc;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

use super::*;

/// Any string the wire allows (no U+0000), short.
fn text() -> impl Strategy<Value = String> {
    r"[^\x00]{0,8}"
}

fn data(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn users() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((text(), text()), 0..3)
}

fn packet_id() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(pid)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn subscription_id() -> impl Strategy<Value = u32> {
    prop_oneof![1..=VARINT_MAX, Just(VARINT_MAX), Just(1), 127..=128u32]
}

/// Properties of a PUBLISH (`will` = false) or a will (no alias, no subscription identifiers).
pub(super) fn publish_props(will: bool) -> impl Strategy<Value = PublishProps> {
    (
        option::of(0u8..=1),
        option::of(any::<u32>()),
        option::of(packet_id()),
        option::of(text()),
        option::of(data(8)),
        users(),
        vec(subscription_id(), 0..3),
        option::of(text()),
    )
        .prop_map(
            move |(pfi, expiry, alias, response, correlation, users, sub_ids, content)| {
                PublishProps {
                    payload_format_indicator: pfi,
                    message_expiry_interval: expiry,
                    topic_alias: alias.filter(|_| !will),
                    response_topic: response,
                    correlation_data: correlation,
                    user_properties: users,
                    subscription_identifiers: if will { Vec::new() } else { sub_ids },
                    content_type: content,
                }
            },
        )
}

fn will(v5: bool) -> impl Strategy<Value = Will> {
    (
        text(),
        data(16),
        qos(),
        any::<bool>(),
        any::<u32>(),
        publish_props(true),
    )
        .prop_map(move |(topic, payload, qos, retain, delay, props)| Will {
            topic,
            payload,
            qos,
            retain,
            delay_interval: if v5 { delay } else { 0 },
            props: if v5 { props } else { PublishProps::default() },
        })
}

fn connect_props() -> impl Strategy<Value = ConnectProps> {
    (
        any::<u32>(),
        option::of(1..=u16::MAX),
        option::of(1..=u32::MAX),
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
        users(),
        option::of((text(), option::of(data(8)))),
    )
        .prop_map(|(expiry, receive, size, aliases, rri, rpi, users, auth)| {
            let (method, data) = match auth {
                Some((method, data)) => (Some(method), data),
                None => (None, None),
            };
            ConnectProps {
                session_expiry_interval: expiry,
                receive_maximum: receive,
                maximum_packet_size: size,
                topic_alias_maximum: aliases,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: users,
                authentication_method: method,
                authentication_data: data,
            }
        })
}

fn connect(protocol: Protocol) -> impl Strategy<Value = Connect> {
    let v5 = protocol.is_v5();
    let client_id = match protocol {
        Protocol::V31 => "[a-zA-Z0-9]{1,23}".boxed(),
        Protocol::V311 => r"[^\x00]{0,23}".boxed(),
        Protocol::V5 => text().boxed(),
    };
    (
        any::<bool>(),
        any::<u16>(),
        client_id,
        option::of(will(v5)),
        option::of(text()),
        option::of(data(8)),
        connect_props(),
    )
        .prop_map(
            move |(clean, keep_alive, client_id, will, username, password, props)| {
                let empty_id_refused = protocol == Protocol::V311 && !clean;
                let password_needs_user = protocol == Protocol::V311 && username.is_none();
                Connect {
                    protocol,
                    clean_start: clean,
                    keep_alive,
                    client_id: match client_id.is_empty() && empty_id_refused {
                        true => "c".into(),
                        false => client_id,
                    },
                    will,
                    username,
                    password: password.filter(|_| !password_needs_user),
                    props: if v5 { props } else { ConnectProps::default() },
                }
            },
        )
}

fn connack_props() -> impl Strategy<Value = ConnAckProps> {
    let numbers = (
        option::of(any::<u32>()),
        option::of(1..=u16::MAX),
        option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        option::of(any::<bool>()),
        option::of(1..=u32::MAX),
        option::of(any::<u16>()),
        option::of(any::<u16>()),
    );
    let flags = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    );
    let texts = (
        option::of(text()),
        option::of(text()),
        option::of(text()),
        option::of(text()),
        users(),
        option::of((text(), option::of(data(8)))),
    );
    (numbers, flags, texts).prop_map(|(n, f, t)| {
        let (method, data) = match t.5 {
            Some((method, data)) => (Some(method), data),
            None => (None, None),
        };
        ConnAckProps {
            session_expiry_interval: n.0,
            receive_maximum: n.1,
            maximum_qos: n.2,
            retain_available: n.3,
            maximum_packet_size: n.4,
            topic_alias_maximum: n.5,
            server_keep_alive: n.6,
            wildcard_subscription_available: f.0,
            subscription_identifiers_available: f.1,
            shared_subscription_available: f.2,
            assigned_client_identifier: t.0,
            reason_string: t.1,
            response_information: t.2,
            server_reference: t.3,
            user_properties: t.4,
            authentication_method: method,
            authentication_data: data,
        }
    })
}

fn connack(protocol: Protocol) -> impl Strategy<Value = ConnAck> {
    let v5 = protocol.is_v5();
    let code = match v5 {
        true => select(reason::CONNACK_CODES).boxed(),
        false => (0u8..=5).boxed(),
    };
    (any::<bool>(), code, connack_props()).prop_map(move |(session, code, props)| ConnAck {
        session_present: session && code == 0 && protocol != Protocol::V31,
        code,
        props: if v5 { props } else { ConnAckProps::default() },
    })
}

pub(super) fn publish(protocol: Protocol) -> impl Strategy<Value = Publish> {
    let v5 = protocol.is_v5();
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        r"[^\x00]{0,12}",
        packet_id(),
        data(40),
        publish_props(false),
    )
        .prop_map(move |(qos, dup, retain, topic, id, payload, props)| {
            let mut props = if v5 { props } else { PublishProps::default() };
            let topic = match (topic.is_empty(), v5) {
                (true, false) => "t".to_string(),
                (true, true) => {
                    props.topic_alias.get_or_insert(pid(1));
                    topic
                }
                (false, _) => topic,
            };
            Publish {
                dup: dup && (qos != QoS::AtMostOnce || !v5),
                qos,
                retain,
                topic: Arc::from(topic),
                packet_id: Some(id).filter(|_| qos != QoS::AtMostOnce),
                payload,
                props,
            }
        })
}

fn ack(v5: bool, codes: &'static [u8]) -> impl Strategy<Value = Ack> {
    (packet_id(), select(codes), option::of(text()), users()).prop_map(
        move |(packet_id, code, reason_string, user_properties)| match v5 {
            true => Ack {
                packet_id,
                code,
                reason_string,
                user_properties,
            },
            false => Ack::new(packet_id),
        },
    )
}

fn sub_options(v5: bool) -> impl Strategy<Value = SubOptions> {
    (qos(), any::<bool>(), any::<bool>(), 0u8..=2).prop_map(move |(qos, nl, rap, rh)| match v5 {
        true => SubOptions {
            qos,
            no_local: nl,
            retain_as_published: rap,
            retain_handling: rh,
        },
        false => SubOptions {
            qos,
            ..SubOptions::default()
        },
    })
}

fn subscribe(v5: bool) -> impl Strategy<Value = Subscribe> {
    (
        packet_id(),
        option::of(subscription_id()),
        users(),
        vec((text(), sub_options(v5)), 1..4),
    )
        .prop_map(move |(packet_id, sub_id, users, filters)| Subscribe {
            packet_id,
            subscription_identifier: sub_id.filter(|_| v5),
            user_properties: if v5 { users } else { Vec::new() },
            filters,
        })
}

fn suback(v5: bool) -> impl Strategy<Value = SubAck> {
    let codes: &'static [u8] = match v5 {
        true => reason::SUBACK_CODES,
        false => &[0x00, 0x01, 0x02, 0x80],
    };
    (
        packet_id(),
        vec(select(codes), 1..5),
        option::of(text()),
        users(),
    )
        .prop_map(move |(packet_id, codes, reason_string, users)| SubAck {
            packet_id,
            codes,
            reason_string: reason_string.filter(|_| v5),
            user_properties: if v5 { users } else { Vec::new() },
        })
}

fn unsubscribe(v5: bool) -> impl Strategy<Value = Unsubscribe> {
    (packet_id(), users(), vec(text(), 1..4)).prop_map(move |(packet_id, users, filters)| {
        Unsubscribe {
            packet_id,
            user_properties: if v5 { users } else { Vec::new() },
            filters,
        }
    })
}

fn unsuback(v5: bool) -> impl Strategy<Value = UnsubAck> {
    (
        packet_id(),
        vec(select(reason::UNSUBACK_CODES), 1..4),
        option::of(text()),
        users(),
    )
        .prop_map(move |(packet_id, codes, reason_string, users)| match v5 {
            true => UnsubAck {
                packet_id,
                codes,
                reason_string,
                user_properties: users,
            },
            false => UnsubAck {
                packet_id,
                codes: Vec::new(),
                reason_string: None,
                user_properties: Vec::new(),
            },
        })
}

fn disconnect(v5: bool) -> impl Strategy<Value = Disconnect> {
    (
        select(reason::DISCONNECT_CODES),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(text()),
        users(),
    )
        .prop_map(move |(code, expiry, reason, reference, users)| match v5 {
            true => Disconnect {
                code,
                session_expiry_interval: expiry,
                reason_string: reason,
                server_reference: reference,
                user_properties: users,
            },
            false => Disconnect::default(),
        })
}

fn auth() -> impl Strategy<Value = Auth> {
    let full = (
        select(reason::AUTH_CODES),
        text(),
        option::of(data(8)),
        option::of(text()),
        users(),
    )
        .prop_map(
            |(code, method, data, reason_string, user_properties)| Auth {
                code,
                method: Some(method),
                data,
                reason_string,
                user_properties,
            },
        );
    prop_oneof![1 => Just(Auth::default()), 4 => full]
}

/// Any valid packet of `protocol`, in either direction.
pub(super) fn packet(protocol: Protocol) -> BoxedStrategy<Packet> {
    let v5 = protocol.is_v5();
    let mut choices = vec![
        connect(protocol)
            .prop_map(|c| Packet::Connect(Box::new(c)))
            .boxed(),
        connack(protocol).prop_map(Packet::ConnAck).boxed(),
        publish(protocol).prop_map(Packet::Publish).boxed(),
        publish(protocol).prop_map(Packet::Publish).boxed(),
        ack(v5, reason::PUBACK_CODES)
            .prop_map(Packet::PubAck)
            .boxed(),
        ack(v5, reason::PUBACK_CODES)
            .prop_map(Packet::PubRec)
            .boxed(),
        ack(v5, reason::PUBREL_CODES)
            .prop_map(Packet::PubRel)
            .boxed(),
        ack(v5, reason::PUBREL_CODES)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe(v5).prop_map(Packet::Subscribe).boxed(),
        suback(v5).prop_map(Packet::SubAck).boxed(),
        unsubscribe(v5).prop_map(Packet::Unsubscribe).boxed(),
        unsuback(v5).prop_map(Packet::UnsubAck).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(v5).prop_map(Packet::Disconnect).boxed(),
    ];
    if v5 {
        choices.push(auth().prop_map(Packet::Auth).boxed());
    }
    Union::new(choices).boxed()
}

pub(super) fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V31),
        Just(Protocol::V311),
        Just(Protocol::V5)
    ]
}

/// A protocol and a valid packet of it.
pub(super) fn any_packet() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|protocol| (Just(protocol), packet(protocol)))
}
