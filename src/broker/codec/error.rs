//! [`DecodeError`]: why bytes from the network are not an acceptable packet, in words for the
//! log and as the reason code the specification names for the answer.
//!
//! Invariants:
//! - every error has a [`ErrorKind`] (which fixes [`DecodeError::reason_code`]) and a detail
//!   naming the field and what is wrong with it;
//! - an error found in a CONNECT after its protocol name and level were read remembers that
//!   protocol ([`DecodeError::connect_protocol`]), so the engine can answer with a CONNACK the
//!   client understands ([`DecodeError::connack`]) — an unsupported protocol level is answered
//!   with a 3.x CONNACK, return code 0x01 (as Mosquitto does);
//! - errors are built only on the error path (`#[cold]`): the happy path allocates nothing
//!   for them.

use std::borrow::Cow;
use std::fmt;

use super::packet::{PacketType, Protocol};
use super::reason;

/// The class of a decode error; each maps to one MQTT 5 reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The bytes cannot be parsed as the specification describes (0x81).
    Malformed,
    /// Parsable, but the specification forbids it (0x82).
    ProtocolError,
    /// Larger than the maximum packet size (0x95).
    PacketTooLarge,
    /// A CONNECT for a protocol level this server does not speak (0x84; 3.x return code 0x01).
    UnsupportedProtocolVersion,
    /// A client identifier the specification forbids (0x85; 3.x return code 0x02).
    ClientIdentifierNotValid,
    /// A topic name the specification forbids (0x90).
    TopicNameInvalid,
    /// A topic alias of 0 (0x94).
    TopicAliasInvalid,
    /// A payload that does not match its payload format indicator (0x99).
    PayloadFormatInvalid,
}

impl ErrorKind {
    /// The MQTT 5 reason code for this kind of error.
    pub const fn reason_code(self) -> u8 {
        match self {
            ErrorKind::Malformed => reason::MALFORMED_PACKET,
            ErrorKind::ProtocolError => reason::PROTOCOL_ERROR,
            ErrorKind::PacketTooLarge => reason::PACKET_TOO_LARGE,
            ErrorKind::UnsupportedProtocolVersion => reason::UNSUPPORTED_PROTOCOL_VERSION,
            ErrorKind::ClientIdentifierNotValid => reason::CLIENT_IDENTIFIER_NOT_VALID,
            ErrorKind::TopicNameInvalid => reason::TOPIC_NAME_INVALID,
            ErrorKind::TopicAliasInvalid => reason::TOPIC_ALIAS_INVALID,
            ErrorKind::PayloadFormatInvalid => reason::PAYLOAD_FORMAT_INVALID,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Malformed => "malformed packet",
            ErrorKind::ProtocolError => "protocol error",
            ErrorKind::PacketTooLarge => "packet too large",
            ErrorKind::UnsupportedProtocolVersion => "unsupported protocol version",
            ErrorKind::ClientIdentifierNotValid => "client identifier not valid",
            ErrorKind::TopicNameInvalid => "topic name invalid",
            ErrorKind::TopicAliasInvalid => "topic alias invalid",
            ErrorKind::PayloadFormatInvalid => "payload format invalid",
        })
    }
}

/// Why a packet was refused, e.g. "malformed PUBLISH: topic name contains U+0000".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}: {detail}", InPacket(*.packet))]
pub struct DecodeError {
    kind: ErrorKind,
    detail: Cow<'static, str>,
    packet: Option<PacketType>,
    connect: Option<Protocol>,
}

/// " in PUBLISH" or nothing, for the message.
struct InPacket(Option<PacketType>);

impl fmt::Display for InPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(packet) => write!(f, " in {packet}"),
            None => Ok(()),
        }
    }
}

impl DecodeError {
    /// An error of `kind` with the words `detail`.
    #[cold]
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError {
            kind,
            detail: detail.into(),
            packet: None,
            connect: None,
        }
    }

    #[cold]
    pub(super) fn malformed(detail: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError::new(ErrorKind::Malformed, detail)
    }

    #[cold]
    pub(super) fn protocol(detail: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError::new(ErrorKind::ProtocolError, detail)
    }

    /// Names the packet the error was found in (for the message).
    #[cold]
    pub(super) fn in_packet(mut self, packet: PacketType) -> DecodeError {
        self.packet.get_or_insert(packet);
        self
    }

    /// Records the protocol of the CONNECT the error was found in (or, for an unsupported
    /// level, the protocol to answer in).
    #[cold]
    pub(super) fn in_connect(mut self, protocol: Protocol) -> DecodeError {
        self.connect.get_or_insert(protocol);
        self
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What is wrong, in words (without the kind and packet the message adds).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The packet type the error was found in, when the fixed header was readable.
    pub fn packet(&self) -> Option<PacketType> {
        self.packet
    }

    /// The MQTT 5 reason code the specification names for this error (for a DISCONNECT or,
    /// in a CONNECT, a CONNACK).
    pub fn reason_code(&self) -> u8 {
        self.kind.reason_code()
    }

    /// The 3.x CONNACK return code to answer a CONNECT error with, before closing: 0x01 for an
    /// unsupported protocol level, 0x02 for a rejected client identifier; `None` when 3.x
    /// says to close the connection without a CONNACK.
    pub fn connack_v3(&self) -> Option<u8> {
        match self.kind {
            ErrorKind::UnsupportedProtocolVersion => Some(reason::V3_UNACCEPTABLE_PROTOCOL_VERSION),
            ErrorKind::ClientIdentifierNotValid => Some(reason::V3_IDENTIFIER_REJECTED),
            _ => None,
        }
    }

    /// The protocol of the CONNECT the error was found in, once its protocol name and level
    /// were read; for an unsupported level, the protocol family to answer in (3.1.1 for
    /// "MQTT", 3.1 for "MQIsdp").
    pub fn connect_protocol(&self) -> Option<Protocol> {
        self.connect
    }

    /// The CONNACK to send before closing, as the protocol to encode it in and its code:
    /// for an MQTT 5 CONNECT any error ([`reason_code`](Self::reason_code)); for 3.x only
    /// those with a return code ([`connack_v3`](Self::connack_v3)); `None` outside a CONNECT.
    pub fn connack(&self) -> Option<(Protocol, u8)> {
        match self.connect? {
            Protocol::V5 => Some((Protocol::V5, self.reason_code())),
            v3 => self.connack_v3().map(|code| (v3, code)),
        }
    }
}
