//! The MQTT control packets as values: what [`decode`](super::decode()) returns and
//! [`encode`](super::encode()) writes, for MQTT 3.1, 3.1.1 and 5.0 alike.
//!
//! One set of types serves the three protocols: fields that only MQTT 5 carries (properties,
//! reason codes on acknowledgements) keep their defaults when a 3.x packet is decoded, and the
//! encoder drops them when it writes a 3.x packet.
//!
//! Invariants of a decoded packet (the decoder refuses the bytes otherwise):
//! - every `String` is well-formed UTF-8 without U+0000 and at most 65,535 bytes;
//! - [`Publish::packet_id`] is `Some` exactly when [`Publish::qos`] is above 0, and no packet
//!   identifier is 0;
//! - [`Publish::topic`] is empty only in MQTT 5 and only when a topic alias is given;
//! - MQTT 5 property values are in the ranges the specification allows (a receive maximum, a
//!   maximum packet size, a topic alias or a subscription identifier is never 0, a subscription
//!   identifier never above 268,435,455);
//! - a [`Subscribe`] and an [`Unsubscribe`] carry at least one filter, a [`SubAck`] at least one
//!   code.
//!
//! Topic *semantics* (wildcards in a topic name, filter syntax, `$share/`) are not checked
//! here: see [`topic`](super::topic).

use std::fmt;
use std::num::NonZeroU16;
use std::sync::Arc;

use bytes::Bytes;

/// The protocol a connection speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

impl Protocol {
    /// The protocol level byte of the CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            Protocol::V31 => 3,
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }

    /// The protocol name of the CONNECT.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::V31 => "MQIsdp",
            Protocol::V311 | Protocol::V5 => "MQTT",
        }
    }

    /// True for MQTT 5 (properties and reason codes on the wire).
    pub const fn is_v5(self) -> bool {
        matches!(self, Protocol::V5)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::V31 => "MQTT 3.1",
            Protocol::V311 => "MQTT 3.1.1",
            Protocol::V5 => "MQTT 5",
        })
    }
}

/// Quality of service; ordered, so `min` gives the granted QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS of a two-bit field; `None` for 3, which every protocol calls invalid.
    pub const fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// The control packet type, the high nibble of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    /// MQTT 5 only (type 15 is reserved in 3.x).
    Auth = 15,
}

impl PacketType {
    /// The type of a first byte's high nibble; `None` for the reserved type 0.
    pub const fn from_nibble(nibble: u8) -> Option<PacketType> {
        Some(match nibble {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => return None,
        })
    }

    /// The name the specification uses, for logs.
    pub const fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }

    /// True for the packets a client may send to a server (the engine answers any other type
    /// from a client with a protocol error).
    pub const fn sent_by_client(self) -> bool {
        !matches!(
            self,
            PacketType::ConnAck | PacketType::SubAck | PacketType::UnsubAck | PacketType::PingResp
        )
    }

    /// True for the packets a server may send to a client.
    pub const fn sent_by_server(self) -> bool {
        !matches!(
            self,
            PacketType::Connect
                | PacketType::Subscribe
                | PacketType::Unsubscribe
                | PacketType::PingReq
        )
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user property: a name and a value, both UTF-8; names may repeat.
pub type UserProperty = (String, String);

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

/// CONNECT: the first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol the client speaks (from the protocol name and level).
    pub protocol: Protocol,
    /// Clean Session (3.x) / Clean Start (5).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns the keep-alive mechanism off.
    pub keep_alive: u16,
    /// May be empty: 3.1.1 only with `clean_start`, 5 always (the server assigns one); never
    /// in 3.1 (the decoder rejects it).
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    /// Binary data; in MQTT 3.1.1 only present with a username.
    pub password: Option<Bytes>,
    /// MQTT 5 properties; the defaults in 3.x.
    pub props: ConnectProps,
}

/// The properties of a CONNECT (MQTT 5); `Default` gives the values the specification
/// assumes when a property is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectProps {
    /// Seconds; 0 (the default) ends the session with the connection, `u32::MAX` never.
    pub session_expiry_interval: u32,
    /// At most this many unacknowledged QoS 1/2 PUBLISH to the client; never 0. `None` = 65,535.
    pub receive_maximum: Option<u16>,
    /// The largest packet the client accepts, in bytes; never 0. `None` = no limit.
    pub maximum_packet_size: Option<u32>,
    /// The highest topic alias the client accepts from the server; 0 (the default) = none.
    pub topic_alias_maximum: u16,
    /// The client asks for Response Information in the CONNACK (default false).
    pub request_response_information: bool,
    /// The client accepts reason strings and user properties on any packet (default true).
    pub request_problem_information: bool,
    pub user_properties: Vec<UserProperty>,
    /// Extended authentication method; `authentication_data` is only present with it.
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

impl Default for ConnectProps {
    fn default() -> Self {
        ConnectProps {
            session_expiry_interval: 0,
            receive_maximum: None,
            maximum_packet_size: None,
            topic_alias_maximum: 0,
            request_response_information: false,
            request_problem_information: true,
            user_properties: Vec::new(),
            authentication_method: None,
            authentication_data: None,
        }
    }
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Not checked for wildcards by the decoder: the engine calls
    /// [`topic::validate_name`](super::topic::validate_name).
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 Will Delay Interval in seconds (0 in 3.x).
    pub delay_interval: u32,
    /// MQTT 5 will properties; `topic_alias` and `subscription_identifiers` are never set.
    pub props: PublishProps,
}

/// PUBLISH: an application message in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5, when [`PublishProps::topic_alias`] names the topic.
    pub topic: Arc<str>,
    /// `Some` exactly when `qos` is above 0.
    pub packet_id: Option<NonZeroU16>,
    pub payload: Bytes,
    pub props: PublishProps,
}

/// The properties of a PUBLISH or of a will (MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProps {
    /// 0 = unspecified bytes, 1 = UTF-8 (the decoder refuses other values).
    pub payload_format_indicator: Option<u8>,
    /// Seconds the message lives; `None` = forever.
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<NonZeroU16>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    /// Each in 1..=268,435,455. Only a server sends them; a client's PUBLISH must carry none
    /// (a protocol error the engine checks, as the decoder does not know the direction).
    pub subscription_identifiers: Vec<u32>,
    pub content_type: Option<String>,
}

impl PublishProps {
    /// True when no property is set (nothing to write but a zero property length).
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
            && self.content_type.is_none()
    }
}

/// CONNACK: the server's answer to a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Always false when `code` is not success (and in MQTT 3.1, which has no such flag).
    pub session_present: bool,
    /// MQTT 5 reason code or 3.x return code (see [`reason`](super::reason)); the encoder
    /// translates a code of the other numbering into the connection's protocol.
    pub code: u8,
    pub props: ConnAckProps,
}

/// The properties of a CONNACK (MQTT 5); `None` = absent (the client assumes the default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProps {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    /// Only 0 or 1 on the wire; `Some(ExactlyOnce)` is the default and is not written.
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP (the [`Packet`] variant says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: NonZeroU16,
    /// MQTT 5 reason code; 0 = success (always 0 in 3.x).
    pub code: u8,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

impl Ack {
    /// A success acknowledgement without properties.
    pub const fn new(packet_id: NonZeroU16) -> Ack {
        Ack {
            packet_id,
            code: 0,
            reason_string: None,
            user_properties: Vec::new(),
        }
    }
}

/// SUBSCRIBE: one or more topic filters with their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: NonZeroU16,
    /// MQTT 5; in 1..=268,435,455.
    pub subscription_identifier: Option<u32>,
    pub user_properties: Vec<UserProperty>,
    /// At least one. Filter syntax is checked by [`topic::parse_filter`](super::topic::parse_filter).
    pub filters: Vec<(String, SubOptions)>,
}

/// The options byte of one SUBSCRIBE filter (3.x carries only `qos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0 = send retained messages, 1 = only for a new subscription, 2 = never.
    pub retain_handling: u8,
}

/// SUBACK: one code per filter of the SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: NonZeroU16,
    /// Granted QoS (0, 1, 2) or a failure code ≥ 0x80; in 3.x every failure is written 0x80.
    pub codes: Vec<u8>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBSCRIBE: one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: NonZeroU16,
    pub user_properties: Vec<UserProperty>,
    /// At least one.
    pub filters: Vec<String>,
}

/// UNSUBACK: in MQTT 5 one code per filter; 3.x carries only the packet identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: NonZeroU16,
    /// MQTT 5 only on the wire (empty when a 3.x UNSUBACK is decoded).
    pub codes: Vec<u8>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// DISCONNECT; in 3.x only a client sends it and it carries nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5 reason code; 0 = normal disconnection.
    pub code: u8,
    /// Only a client may send it, and only when its CONNECT's interval was not 0 (the engine
    /// checks both).
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<String>,
    pub server_reference: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// AUTH (MQTT 5 only): a step of extended authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub code: u8,
    /// Always present unless the packet is the empty short form (success, no properties).
    pub method: Option<String>,
    pub data: Option<Bytes>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}
