//! Decoding: bytes from the network → [`Frame`] (fixed header only) → [`Packet`].
//!
//! Invariants:
//! - [`frame`] needs at most 5 bytes to decide: it refuses a remaining-length varint longer
//!   than 4 bytes and a packet larger than the maximum packet size as soon as the header is
//!   readable, so a connection never buffers an oversized packet;
//! - [`decode`] refuses a packet the connection state forbids (anything but CONNECT first, a
//!   second CONNECT, AUTH before MQTT 5) from its first byte, before the body arrives;
//! - `Ok(None)` means "more bytes needed"; `Ok(Some((packet, n)))` has consumed exactly the
//!   packet's `n` bytes, `n <= buf.len()`; nothing panics, whatever the bytes;
//! - the decoder copies what it keeps (topic into one `Arc<str>`, payload into one `Bytes`,
//!   other strings into `String`s): a packet never borrows the input buffer;
//! - everything the specification calls a malformed packet or a protocol error that the
//!   bytes alone decide is refused here (flags, lengths, UTF-8, CONNECT flags and client
//!   identifier rules, zero packet identifiers, empty SUBSCRIBE/UNSUBSCRIBE, subscription
//!   options, MQTT 5 properties and reason codes); what needs session state (topic aliases
//!   above the maximum, packet identifiers in use, the direction of a packet) or topic
//!   semantics ([`topic`](super::topic)) is the engine's, and so is the optional payload
//!   format check ([`check_payload_format`]).

use std::num::NonZeroU16;
use std::sync::Arc;

use bytes::Bytes;

use super::error::{DecodeError, ErrorKind};
use super::packet::{
    Ack, Auth, ConnAck, ConnAckProps, Connect, ConnectProps, Disconnect, Packet, PacketType,
    Protocol, Publish, PublishProps, QoS, SubAck, SubOptions, Subscribe, UnsubAck, Unsubscribe,
    Will,
};
use super::props::{self, Owner};
use super::reason;
use super::wire::{utf8, varint_prefix, Reader};

/// The fixed header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes of the fixed header: 2 to 5.
    pub header_len: usize,
    /// Bytes after the fixed header (the remaining length).
    pub remaining_len: usize,
    pub packet_type: PacketType,
    /// The low nibble of the first byte.
    pub flags: u8,
}

impl Frame {
    /// Bytes of the whole packet.
    pub const fn total_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Reads the fixed header at the start of `buf`: `Ok(None)` until it is complete.
///
/// Refuses packet type 0, a remaining length of more than 4 bytes and a packet (header
/// included) larger than `max_packet_size` bytes.
pub fn frame(buf: &[u8], max_packet_size: u32) -> Result<Option<Frame>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some(packet_type) = PacketType::from_nibble(first >> 4) else {
        return Err(DecodeError::malformed("packet type 0 is reserved"));
    };
    let Some((remaining, varint_len)) =
        varint_prefix(&buf[1..], "remaining length").map_err(|e| e.in_packet(packet_type))?
    else {
        return Ok(None);
    };
    let header_len = 1 + varint_len;
    let remaining_len = remaining as usize;
    let total = header_len + remaining_len;
    if total as u64 > u64::from(max_packet_size) {
        return Err(DecodeError::new(
            ErrorKind::PacketTooLarge,
            format!("{total} bytes, the maximum packet size is {max_packet_size} bytes"),
        )
        .in_packet(packet_type));
    }
    Ok(Some(Frame {
        header_len,
        remaining_len,
        packet_type,
        flags: first & 0x0F,
    }))
}

/// Decodes the packet at the start of `buf`: `Ok(None)` until all its bytes are there.
///
/// `protocol` is `None` before the CONNECT (then only a CONNECT is acceptable) and the
/// protocol the CONNECT set afterwards (then a CONNECT is a protocol error).
pub fn decode(
    buf: &[u8],
    protocol: Option<Protocol>,
    max_packet_size: u32,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    // The state check needs only the first byte: refuse before waiting for more.
    if let Some(packet_type) = buf.first().and_then(|&b| PacketType::from_nibble(b >> 4)) {
        check_state(packet_type, protocol).map_err(|e| e.in_packet(packet_type))?;
    }
    let Some(frame) = frame(buf, max_packet_size)? else {
        return Ok(None);
    };
    let packet_type = frame.packet_type;
    let total = frame.total_len();
    let Some(body) = buf.get(frame.header_len..total) else {
        return Ok(None);
    };
    let packet =
        body_of(packet_type, frame.flags, body, protocol).map_err(|e| e.in_packet(packet_type))?;
    Ok(Some((packet, total)))
}

/// Checks the payload of a PUBLISH or will against its Payload Format Indicator (UTF-8 when
/// it is 1, no U+0000 allowed). The specification lets a receiver choose whether to check
/// (§3.3.2.3.2): the decoder does not, so the engine can answer PUBACK/PUBREC 0x99 or CONNACK
/// 0x99 instead of closing the connection.
pub fn check_payload_format(props: &PublishProps, payload: &[u8]) -> Result<(), DecodeError> {
    if props.payload_format_indicator == Some(1) {
        utf8(payload, "payload").map_err(|e| {
            DecodeError::new(ErrorKind::PayloadFormatInvalid, e.detail().to_owned())
        })?;
    }
    Ok(())
}

fn check_state(packet_type: PacketType, protocol: Option<Protocol>) -> Result<(), DecodeError> {
    match (protocol, packet_type) {
        (None, PacketType::Connect) => Ok(()),
        (None, _) => Err(DecodeError::protocol("the first packet must be CONNECT")),
        (Some(_), PacketType::Connect) => {
            Err(DecodeError::protocol("second CONNECT on one connection"))
        }
        (Some(p), PacketType::Auth) if !p.is_v5() => Err(DecodeError::malformed(
            "packet type 15 (AUTH) is reserved before MQTT 5",
        )),
        _ => Ok(()),
    }
}

/// The fixed-header flags every type but PUBLISH must carry (§2.1.3).
fn check_flags(packet_type: PacketType, flags: u8) -> Result<(), DecodeError> {
    let expected = match packet_type {
        PacketType::Publish => return Ok(()),
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
        _ => 0b0000,
    };
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::malformed(format!(
            "{packet_type} fixed header flags must be {expected:04b}, not {flags:04b}"
        )))
    }
}

fn body_of(
    packet_type: PacketType,
    flags: u8,
    body: &[u8],
    protocol: Option<Protocol>,
) -> Result<Packet, DecodeError> {
    check_flags(packet_type, flags)?;
    let r = &mut Reader::new(body);
    let Some(protocol) = protocol else {
        // `check_state` let only a CONNECT through.
        return Ok(Packet::Connect(Box::new(connect(r)?)));
    };
    let v5 = protocol.is_v5();
    let packet = match packet_type {
        PacketType::Publish => Packet::Publish(publish(flags, r, protocol)?),
        PacketType::PubAck => Packet::PubAck(ack(r, v5, reason::PUBACK_CODES)?),
        PacketType::PubRec => Packet::PubRec(ack(r, v5, reason::PUBACK_CODES)?),
        PacketType::PubRel => Packet::PubRel(ack(r, v5, reason::PUBREL_CODES)?),
        PacketType::PubComp => Packet::PubComp(ack(r, v5, reason::PUBREL_CODES)?),
        PacketType::Subscribe => Packet::Subscribe(subscribe(r, v5)?),
        PacketType::SubAck => Packet::SubAck(suback(r, v5)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(unsubscribe(r, v5)?),
        PacketType::UnsubAck => Packet::UnsubAck(unsuback(r, v5)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(disconnect(r, v5)?),
        PacketType::Auth => Packet::Auth(auth(r)?),
        PacketType::ConnAck => Packet::ConnAck(connack(r, protocol)?),
        PacketType::Connect => {
            return Err(DecodeError::protocol("second CONNECT on one connection"))
        }
    };
    r.finish(packet_type.name())?;
    Ok(packet)
}

fn packet_id(r: &mut Reader<'_>) -> Result<NonZeroU16, DecodeError> {
    NonZeroU16::new(r.u16("packet identifier")?)
        .ok_or_else(|| DecodeError::protocol("packet identifier is 0"))
}

fn check_code(code: u8, allowed: &[u8]) -> Result<u8, DecodeError> {
    if allowed.contains(&code) {
        Ok(code)
    } else {
        Err(DecodeError::protocol(format!(
            "reason code 0x{code:02X} is not one this packet may carry"
        )))
    }
}

fn connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    let protocol = match (name, level) {
        (b"MQIsdp", 3) => Protocol::V31,
        (b"MQTT", 4) => Protocol::V311,
        (b"MQTT", 5) => Protocol::V5,
        (b"MQTT" | b"MQIsdp", _) => {
            // A 3.x CONNACK (return code 0x01) whatever the level, as Mosquitto answers: every
            // client parses a four-byte CONNACK, while one speaking a level we do not know
            // cannot be assumed to parse MQTT 5 properties.
            let answer_in = match name {
                b"MQIsdp" => Protocol::V31,
                _ => Protocol::V311,
            };
            let name = String::from_utf8_lossy(name);
            return Err(DecodeError::new(
                ErrorKind::UnsupportedProtocolVersion,
                format!("protocol {name:?} level {level} (supported: MQIsdp 3, MQTT 4 and 5)"),
            )
            .in_connect(answer_in));
        }
        _ => {
            return Err(DecodeError::protocol(format!(
                "unknown protocol name {:?} (expected \"MQTT\" or \"MQIsdp\")",
                String::from_utf8_lossy(name)
            )))
        }
    };
    connect_after_level(r, protocol).map_err(|e| e.in_connect(protocol))
}

fn connect_after_level(r: &mut Reader<'_>, protocol: Protocol) -> Result<Connect, DecodeError> {
    let v5 = protocol.is_v5();
    let flags = r.u8("connect flags")?;
    // 3.1 did not reserve the bit; Mosquitto checks it only for 3.1.1 and 5 too.
    if flags & 0x01 != 0 && protocol != Protocol::V31 {
        return Err(DecodeError::malformed(
            "reserved connect flag (bit 0) is set",
        ));
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos =
        QoS::from_u8((flags >> 3) & 0x03).ok_or_else(|| DecodeError::malformed("will QoS is 3"))?;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::malformed(
            "will QoS and will retain must be 0 when the will flag is 0",
        ));
    }
    if protocol == Protocol::V311 && password_flag && !username_flag {
        return Err(DecodeError::protocol(
            "password flag set without the user name flag (MQTT 3.1.1 §3.1.2.9)",
        ));
    }
    let keep_alive = r.u16("keep alive")?;
    let mut props = ConnectProps::default();
    if v5 {
        props::read(r, Owner::Connect, |p| props::apply_connect(&mut props, p))?;
        if props.authentication_data.is_some() && props.authentication_method.is_none() {
            return Err(DecodeError::protocol(
                "Authentication Data without Authentication Method",
            ));
        }
    }
    let client_id = r.str("client identifier")?;
    let will = if will_flag {
        let mut will_props = PublishProps::default();
        let mut delay_interval = 0;
        if v5 {
            props::read(r, Owner::Will, |p| {
                props::apply_publish(&mut will_props, &mut delay_interval, p)
            })?;
        }
        let topic = r.str("will topic")?.to_owned();
        let payload = Bytes::copy_from_slice(r.binary("will payload")?);
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            delay_interval,
            props: will_props,
        })
    } else {
        None
    };
    let username = match username_flag {
        true => Some(r.str("user name")?.to_owned()),
        false => None,
    };
    let password = match password_flag {
        true => Some(Bytes::copy_from_slice(r.binary("password")?)),
        false => None,
    };
    r.finish("CONNECT")?;
    // Checked last: a CONNACK "identifier rejected" answers only a well-formed CONNECT.
    let clean_start = flags & 0x02 != 0;
    match protocol {
        Protocol::V31 if client_id.is_empty() || client_id.len() > 23 => {
            return Err(DecodeError::new(
                ErrorKind::ClientIdentifierNotValid,
                format!(
                    "an MQTT 3.1 client identifier has 1 to 23 bytes, this one {}",
                    client_id.len()
                ),
            ))
        }
        Protocol::V311 if client_id.is_empty() && !clean_start => {
            return Err(DecodeError::new(
                ErrorKind::ClientIdentifierNotValid,
                "an empty client identifier needs clean session 1 (MQTT 3.1.1 §3.1.3.1)",
            ))
        }
        _ => {}
    }
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id: client_id.to_owned(),
        will,
        username,
        password,
        props,
    })
}

fn connack(r: &mut Reader<'_>, protocol: Protocol) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("acknowledge flags")?;
    // MQTT 3.1 has no session present flag: the byte is unused there.
    let session_present = match protocol {
        Protocol::V31 => false,
        _ if flags & 0xFE != 0 => {
            return Err(DecodeError::malformed(
                "reserved CONNACK flags (bits 7-1) are set",
            ))
        }
        _ => flags & 0x01 != 0,
    };
    let code = r.u8("connect reason code")?;
    let mut props = ConnAckProps::default();
    if protocol.is_v5() {
        check_code(code, reason::CONNACK_CODES)?;
        props::read(r, Owner::ConnAck, |p| props::apply_connack(&mut props, p))?;
        if props.authentication_data.is_some() && props.authentication_method.is_none() {
            return Err(DecodeError::protocol(
                "Authentication Data without Authentication Method",
            ));
        }
    } else if code > reason::V3_NOT_AUTHORIZED {
        return Err(DecodeError::protocol(format!(
            "CONNACK return code {code} is reserved"
        )));
    }
    if session_present && code != reason::SUCCESS {
        return Err(DecodeError::protocol(
            "session present set in a CONNACK that refuses the connection",
        ));
    }
    Ok(ConnAck {
        session_present,
        code,
        props,
    })
}

fn publish(flags: u8, r: &mut Reader<'_>, protocol: Protocol) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0x03)
        .ok_or_else(|| DecodeError::malformed("PUBLISH QoS is 3"))?;
    let dup = flags & 0x08 != 0;
    if dup && qos == QoS::AtMostOnce && protocol.is_v5() {
        return Err(DecodeError::malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = r.str("topic name")?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(packet_id(r)?),
    };
    let mut props = PublishProps::default();
    if protocol.is_v5() {
        let mut no_delay = 0;
        props::read(r, Owner::Publish, |p| {
            props::apply_publish(&mut props, &mut no_delay, p)
        })?;
    }
    if topic.is_empty() {
        if !protocol.is_v5() {
            return Err(DecodeError::new(
                ErrorKind::TopicNameInvalid,
                "topic name is empty",
            ));
        }
        if props.topic_alias.is_none() {
            return Err(DecodeError::protocol(
                "empty topic name without a Topic Alias",
            ));
        }
    }
    let payload = r.rest();
    Ok(Publish {
        dup,
        qos,
        retain: flags & 0x01 != 0,
        topic: Arc::from(topic),
        packet_id,
        payload: Bytes::copy_from_slice(payload),
        props,
    })
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP; `codes` are the MQTT 5 reason codes it may carry.
fn ack(r: &mut Reader<'_>, v5: bool, codes: &[u8]) -> Result<Ack, DecodeError> {
    let mut ack = Ack::new(packet_id(r)?);
    // MQTT 5 short forms: 2 bytes = success without properties, 3 = a code without properties.
    if v5 && !r.is_empty() {
        ack.code = check_code(r.u8("reason code")?, codes)?;
        if !r.is_empty() {
            let common = props::read_common(r, Owner::Ack)?;
            ack.reason_string = common.reason_string;
            ack.user_properties = common.user_properties;
        }
    }
    Ok(ack)
}

fn subscribe(r: &mut Reader<'_>, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut subscribe = Subscribe {
        packet_id,
        subscription_identifier: None,
        user_properties: Vec::new(),
        filters: Vec::new(),
    };
    if v5 {
        let common = props::read_common(r, Owner::Subscribe)?;
        subscribe.subscription_identifier = common.subscription_identifier;
        subscribe.user_properties = common.user_properties;
    }
    while !r.is_empty() {
        let filter = r.str("topic filter")?;
        let options = sub_options(r.u8("subscription options")?, v5)?;
        subscribe.filters.push((filter.to_owned(), options));
    }
    if subscribe.filters.is_empty() {
        return Err(DecodeError::protocol("SUBSCRIBE without a topic filter"));
    }
    Ok(subscribe)
}

fn sub_options(byte: u8, v5: bool) -> Result<SubOptions, DecodeError> {
    if !v5 {
        if byte & 0xFC != 0 {
            return Err(DecodeError::malformed(
                "subscription options bits 7-2 must be 0 before MQTT 5",
            ));
        }
        let qos = QoS::from_u8(byte).ok_or_else(|| DecodeError::malformed("requested QoS is 3"))?;
        return Ok(SubOptions {
            qos,
            ..SubOptions::default()
        });
    }
    if byte & 0xC0 != 0 {
        return Err(DecodeError::malformed(
            "reserved subscription options bits 7-6 are set",
        ));
    }
    // MQTT 5 §3.8.3.1 calls these two protocol errors (3.1.1 called QoS 3 malformed).
    let qos = QoS::from_u8(byte & 0x03)
        .ok_or_else(|| DecodeError::protocol("subscription Maximum QoS is 3"))?;
    let retain_handling = (byte >> 4) & 0x03;
    if retain_handling == 3 {
        return Err(DecodeError::protocol("Retain Handling is 3"));
    }
    Ok(SubOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn suback(r: &mut Reader<'_>, v5: bool) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut suback = SubAck {
        packet_id,
        codes: Vec::new(),
        reason_string: None,
        user_properties: Vec::new(),
    };
    let allowed: &[u8] = if v5 {
        let common = props::read_common(r, Owner::Ack)?;
        suback.reason_string = common.reason_string;
        suback.user_properties = common.user_properties;
        reason::SUBACK_CODES
    } else {
        &[0x00, 0x01, 0x02, reason::V3_SUBACK_FAILURE]
    };
    for &code in r.rest() {
        suback.codes.push(check_code(code, allowed)?);
    }
    if suback.codes.is_empty() {
        return Err(DecodeError::protocol("SUBACK without a return code"));
    }
    Ok(suback)
}

fn unsubscribe(r: &mut Reader<'_>, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let user_properties = match v5 {
        true => props::read_common(r, Owner::Unsubscribe)?.user_properties,
        false => Vec::new(),
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.str("topic filter")?.to_owned());
    }
    if filters.is_empty() {
        return Err(DecodeError::protocol("UNSUBSCRIBE without a topic filter"));
    }
    Ok(Unsubscribe {
        packet_id,
        user_properties,
        filters,
    })
}

fn unsuback(r: &mut Reader<'_>, v5: bool) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut unsuback = UnsubAck {
        packet_id,
        codes: Vec::new(),
        reason_string: None,
        user_properties: Vec::new(),
    };
    if v5 {
        let common = props::read_common(r, Owner::Ack)?;
        unsuback.reason_string = common.reason_string;
        unsuback.user_properties = common.user_properties;
        for &code in r.rest() {
            unsuback
                .codes
                .push(check_code(code, reason::UNSUBACK_CODES)?);
        }
        if unsuback.codes.is_empty() {
            return Err(DecodeError::protocol("UNSUBACK without a reason code"));
        }
    }
    Ok(unsuback)
}

fn disconnect(r: &mut Reader<'_>, v5: bool) -> Result<Disconnect, DecodeError> {
    let mut disconnect = Disconnect::default();
    // MQTT 5: remaining length 0 = normal disconnection, 1 = a code without properties.
    if v5 && !r.is_empty() {
        disconnect.code = check_code(r.u8("reason code")?, reason::DISCONNECT_CODES)?;
        if !r.is_empty() {
            let common = props::read_common(r, Owner::Disconnect)?;
            disconnect.session_expiry_interval = common.session_expiry_interval;
            disconnect.reason_string = common.reason_string;
            disconnect.server_reference = common.server_reference;
            disconnect.user_properties = common.user_properties;
        }
    }
    Ok(disconnect)
}

fn auth(r: &mut Reader<'_>) -> Result<Auth, DecodeError> {
    let mut auth = Auth::default();
    // Remaining length 0 = success without properties (§3.15.2.1).
    if r.is_empty() {
        return Ok(auth);
    }
    auth.code = check_code(r.u8("reason code")?, reason::AUTH_CODES)?;
    if !r.is_empty() {
        let common = props::read_common(r, Owner::Auth)?;
        auth.method = common.authentication_method;
        auth.data = common.authentication_data;
        auth.reason_string = common.reason_string;
        auth.user_properties = common.user_properties;
    }
    if auth.method.is_none() {
        return Err(DecodeError::protocol("AUTH without Authentication Method"));
    }
    Ok(auth)
}
