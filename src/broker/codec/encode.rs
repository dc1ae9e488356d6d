//! Encoding: [`Packet`] → bytes for a connection's [`Protocol`], and the delivery hot path
//! [`encode_publish`], which writes a PUBLISH from borrowed parts without building a
//! [`Publish`].
//!
//! Invariants:
//! - encoding appends to `out` and allocates nothing else: lengths are counted first by the
//!   same code that writes ([`Sink`]), then the bytes go straight into `out`;
//! - [`publish_len`] is exactly the number of bytes [`encode_publish`] appends;
//! - a 3.x packet drops what 3.x cannot carry: properties, reason codes on PUBACK, PUBREC,
//!   PUBREL, PUBCOMP and UNSUBACK, subscription options other than the QoS; a 3.x SUBACK
//!   writes every failure as 0x80, a CONNACK code is translated into the connection's
//!   numbering ([`reason::connack_v3`], [`reason::connack_v5`]), MQTT 3.1 has no session
//!   present flag; AUTH does not exist before MQTT 5 and writes nothing;
//! - MQTT 5 acknowledgements, DISCONNECT and AUTH use the short forms the specification
//!   allows: success without properties → no reason code, a code without properties → no
//!   property length;
//! - the encoder does not validate: a `Packet` the decoder would refuse (a QoS 1 PUBLISH
//!   without packet identifier, a string over 65,535 bytes…) is a caller's bug, written as
//!   closely as the wire allows (debug builds assert).

use std::num::NonZeroU16;

use super::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, Protocol, Publish, PublishProps, QoS, SubAck,
    Subscribe, UnsubAck, Unsubscribe, UserProperty,
};
use super::props_out::{put_section, PublishSection, Reasons, Section};
use super::reason;
use super::wire::{count, varint_len, Sink};

/// A PUBLISH to write, from borrowed parts: the delivery path encodes one per subscriber
/// without building a [`Publish`].
#[derive(Debug, Clone, Copy)]
pub struct PublishOut<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// `""` when sending only a topic alias (MQTT 5).
    pub topic: &'a str,
    /// `Some` exactly when `qos` is above 0.
    pub packet_id: Option<NonZeroU16>,
    pub topic_alias: Option<NonZeroU16>,
    pub message_expiry_interval: Option<u32>,
    pub subscription_identifiers: &'a [u32],
    /// The stored properties; their `topic_alias`, `message_expiry_interval` and
    /// `subscription_identifiers` are ignored in favour of the fields above.
    pub props: &'a PublishProps,
    pub payload: &'a [u8],
}

impl<'a> PublishOut<'a> {
    /// The parts of a [`Publish`], its own alias, expiry and subscription identifiers included.
    pub fn from_publish(publish: &'a Publish) -> PublishOut<'a> {
        PublishOut {
            dup: publish.dup,
            qos: publish.qos,
            retain: publish.retain,
            topic: &publish.topic,
            packet_id: publish.packet_id,
            topic_alias: publish.props.topic_alias,
            message_expiry_interval: publish.props.message_expiry_interval,
            subscription_identifiers: &publish.props.subscription_identifiers,
            props: &publish.props,
            payload: &publish.payload,
        }
    }

    fn first_byte(&self) -> u8 {
        0x30 | u8::from(self.dup) << 3 | (self.qos as u8) << 1 | u8::from(self.retain)
    }
}

/// A packet body: writes everything after the fixed header into any [`Sink`].
trait Body {
    fn write<S: Sink>(&self, s: &mut S);
}

/// Appends the fixed header (`first` and the remaining length) and `body` to `out`.
#[inline]
fn emit<B: Body>(out: &mut Vec<u8>, first: u8, body: &B) {
    let len = count(|c| body.write(c));
    debug_assert!(
        len <= super::wire::VARINT_MAX as usize,
        "packet body of {len} bytes"
    );
    out.reserve(1 + varint_len(len as u32) + len);
    out.put_u8(first);
    out.put_varint(len as u32);
    body.write(out);
}

struct PublishBody<'p, 'a> {
    publish: &'p PublishOut<'a>,
    v5: bool,
}

impl Body for PublishBody<'_, '_> {
    #[inline]
    fn write<S: Sink>(&self, s: &mut S) {
        let p = self.publish;
        s.put_str(p.topic);
        if p.qos != QoS::AtMostOnce {
            debug_assert!(
                p.packet_id.is_some(),
                "QoS {:?} PUBLISH without packet identifier",
                p.qos
            );
            s.put_u16(p.packet_id.map_or(0, NonZeroU16::get));
        }
        if self.v5 {
            put_section(
                s,
                &PublishSection {
                    props: p.props,
                    topic_alias: p.topic_alias.map(NonZeroU16::get),
                    message_expiry_interval: p.message_expiry_interval,
                    subscription_identifiers: p.subscription_identifiers,
                },
            );
        }
        s.put(p.payload);
    }
}

/// Appends a PUBLISH to `out`.
#[inline]
pub fn encode_publish(out: &mut Vec<u8>, protocol: Protocol, publish: &PublishOut<'_>) {
    let body = PublishBody {
        publish,
        v5: protocol.is_v5(),
    };
    emit(out, publish.first_byte(), &body);
}

/// The bytes [`encode_publish`] would append (fixed header included), to compare with the
/// client's maximum packet size before encoding.
#[inline]
pub fn publish_len(protocol: Protocol, publish: &PublishOut<'_>) -> usize {
    let body = PublishBody {
        publish,
        v5: protocol.is_v5(),
    };
    let len = count(|c| body.write(c));
    1 + varint_len(len as u32) + len
}

/// Appends an MQTT 5 DISCONNECT with `code` and an optional reason string to `out` (in 3.x,
/// where only a client sends DISCONNECT and it carries nothing, the two-byte DISCONNECT).
pub fn encode_disconnect(
    out: &mut Vec<u8>,
    protocol: Protocol,
    code: u8,
    reason_string: Option<&str>,
) {
    let body = DisconnectOut {
        code,
        reasons: Reasons {
            reason_string,
            user_properties: &[],
            subscription_identifier: None,
        },
        v5: protocol.is_v5(),
    };
    emit(out, 0xE0, &body);
}

struct DisconnectOut<'a> {
    code: u8,
    reasons: Reasons<'a>,
    v5: bool,
}

impl Body for DisconnectOut<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        if !self.v5 {
            return;
        }
        if !self.reasons.is_empty() {
            s.put_u8(self.code);
            put_section(s, &self.reasons);
        } else if self.code != reason::NORMAL_DISCONNECTION {
            s.put_u8(self.code);
        }
    }
}

/// Appends `packet` to `out` as `protocol` writes it.
pub fn encode(packet: &Packet, protocol: Protocol, out: &mut Vec<u8>) {
    let v5 = protocol.is_v5();
    match packet {
        Packet::Publish(publish) => {
            encode_publish(out, protocol, &PublishOut::from_publish(publish))
        }
        Packet::Connect(connect) => emit(out, 0x10, &ConnectBody(connect)),
        Packet::ConnAck(connack) => emit(out, 0x20, &ConnAckBody { connack, protocol }),
        Packet::PubAck(ack) => emit(out, 0x40, &AckBody { ack, v5 }),
        Packet::PubRec(ack) => emit(out, 0x50, &AckBody { ack, v5 }),
        Packet::PubRel(ack) => emit(out, 0x62, &AckBody { ack, v5 }),
        Packet::PubComp(ack) => emit(out, 0x70, &AckBody { ack, v5 }),
        Packet::Subscribe(subscribe) => emit(out, 0x82, &SubscribeBody { subscribe, v5 }),
        Packet::SubAck(suback) => emit(out, 0x90, &SubAckBody { suback, v5 }),
        Packet::Unsubscribe(unsubscribe) => emit(out, 0xA2, &UnsubscribeBody { unsubscribe, v5 }),
        Packet::UnsubAck(unsuback) => emit(out, 0xB0, &UnsubAckBody { unsuback, v5 }),
        Packet::PingReq => out.extend_from_slice(&[0xC0, 0x00]),
        Packet::PingResp => out.extend_from_slice(&[0xD0, 0x00]),
        Packet::Disconnect(disconnect) => emit(out, 0xE0, &DisconnectBody { disconnect, v5 }),
        Packet::Auth(auth) if v5 => emit(out, 0xF0, &AuthBody(auth)),
        Packet::Auth(_) => debug_assert!(false, "AUTH does not exist in {protocol}"),
    }
}

struct ConnectBody<'a>(&'a Connect);

impl Body for ConnectBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let c = self.0;
        s.put_str(c.protocol.name());
        s.put_u8(c.protocol.level());
        let mut flags = u8::from(c.clean_start) << 1;
        if let Some(will) = &c.will {
            flags |= 0x04 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
        }
        flags |= u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7;
        s.put_u8(flags);
        s.put_u16(c.keep_alive);
        let v5 = c.protocol.is_v5();
        if v5 {
            put_section(s, &c.props);
        }
        s.put_str(&c.client_id);
        if let Some(will) = &c.will {
            if v5 {
                put_section(s, will);
            }
            s.put_str(&will.topic);
            s.put_binary(&will.payload);
        }
        if let Some(username) = &c.username {
            s.put_str(username);
        }
        if let Some(password) = &c.password {
            s.put_binary(password);
        }
    }
}

struct ConnAckBody<'a> {
    connack: &'a ConnAck,
    protocol: Protocol,
}

impl Body for ConnAckBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let c = self.connack;
        s.put_u8(u8::from(
            c.session_present && self.protocol != Protocol::V31,
        ));
        if self.protocol.is_v5() {
            s.put_u8(reason::connack_v5(c.code));
            put_section(s, &c.props);
        } else {
            s.put_u8(reason::connack_v3(c.code));
        }
    }
}

fn reasons<'a>(
    reason_string: &'a Option<String>,
    user_properties: &'a [UserProperty],
) -> Reasons<'a> {
    Reasons {
        reason_string: reason_string.as_deref(),
        user_properties,
        subscription_identifier: None,
    }
}

struct AckBody<'a> {
    ack: &'a Ack,
    v5: bool,
}

impl Body for AckBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let a = self.ack;
        s.put_u16(a.packet_id.get());
        if self.v5 {
            let props = reasons(&a.reason_string, &a.user_properties);
            if !props.is_empty() {
                s.put_u8(a.code);
                put_section(s, &props);
            } else if a.code != reason::SUCCESS {
                s.put_u8(a.code);
            }
        }
    }
}

struct SubscribeBody<'a> {
    subscribe: &'a Subscribe,
    v5: bool,
}

impl Body for SubscribeBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let sub = self.subscribe;
        s.put_u16(sub.packet_id.get());
        if self.v5 {
            put_section(
                s,
                &Reasons {
                    reason_string: None,
                    user_properties: &sub.user_properties,
                    subscription_identifier: sub.subscription_identifier,
                },
            );
        }
        for (filter, options) in &sub.filters {
            s.put_str(filter);
            let mut byte = options.qos as u8;
            if self.v5 {
                byte |= u8::from(options.no_local) << 2
                    | u8::from(options.retain_as_published) << 3
                    | (options.retain_handling & 0x03) << 4;
            }
            s.put_u8(byte);
        }
    }
}

struct SubAckBody<'a> {
    suback: &'a SubAck,
    v5: bool,
}

impl Body for SubAckBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let a = self.suback;
        s.put_u16(a.packet_id.get());
        if self.v5 {
            put_section(s, &reasons(&a.reason_string, &a.user_properties));
            s.put(&a.codes);
        } else {
            for &code in &a.codes {
                s.put_u8(if code >= 0x80 {
                    reason::V3_SUBACK_FAILURE
                } else {
                    code
                });
            }
        }
    }
}

struct UnsubscribeBody<'a> {
    unsubscribe: &'a Unsubscribe,
    v5: bool,
}

impl Body for UnsubscribeBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let u = self.unsubscribe;
        s.put_u16(u.packet_id.get());
        if self.v5 {
            put_section(s, &reasons(&None, &u.user_properties));
        }
        for filter in &u.filters {
            s.put_str(filter);
        }
    }
}

struct UnsubAckBody<'a> {
    unsuback: &'a UnsubAck,
    v5: bool,
}

impl Body for UnsubAckBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let a = self.unsuback;
        s.put_u16(a.packet_id.get());
        if self.v5 {
            put_section(s, &reasons(&a.reason_string, &a.user_properties));
            s.put(&a.codes);
        }
    }
}

struct DisconnectBody<'a> {
    disconnect: &'a Disconnect,
    v5: bool,
}

impl Body for DisconnectBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let d = self.disconnect;
        if !self.v5 {
            return;
        }
        if !d.is_empty() {
            s.put_u8(d.code);
            put_section(s, d);
        } else if d.code != reason::NORMAL_DISCONNECTION {
            s.put_u8(d.code);
        }
    }
}

struct AuthBody<'a>(&'a Auth);

impl Body for AuthBody<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let a = self.0;
        if a.code == reason::SUCCESS && a.is_empty() {
            return;
        }
        s.put_u8(a.code);
        put_section(s, a);
    }
}
