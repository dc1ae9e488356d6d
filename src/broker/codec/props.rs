//! MQTT 5 properties (§2.2.2): identifiers, which packet may carry which, and reading a
//! property section into the packet structs with every check the bytes alone allow.
//!
//! Invariants of [`read`]:
//! - the property length must fit in the packet and the properties must fill it exactly;
//! - an unknown identifier, or one the packet may not carry, is a malformed packet (§2.2.2.2);
//! - a single-valued property given twice is a protocol error (User Property may repeat, and so
//!   may Subscription Identifier in a PUBLISH);
//! - byte-valued flags outside 0/1, a Receive Maximum, Maximum Packet Size or Subscription
//!   Identifier of 0 are protocol errors; a Topic Alias of 0 is "topic alias invalid" (0x94,
//!   §3.3.2.3.4);
//! - values are handed over as [`Prop`]s borrowing the input; the `apply_*` functions copy them
//!   into owned fields.

use std::num::NonZeroU16;

use bytes::Bytes;

use super::error::{DecodeError, ErrorKind};
use super::packet::{ConnAckProps, ConnectProps, PublishProps, QoS, UserProperty};
use super::wire::Reader;

/// Property identifiers.
pub(super) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// The specification's name of a property, `None` for an unknown identifier.
fn name(id: u32) -> Option<&'static str> {
    let Ok(id) = u8::try_from(id) else {
        return None;
    };
    Some(match id {
        id::PAYLOAD_FORMAT_INDICATOR => "Payload Format Indicator",
        id::MESSAGE_EXPIRY_INTERVAL => "Message Expiry Interval",
        id::CONTENT_TYPE => "Content Type",
        id::RESPONSE_TOPIC => "Response Topic",
        id::CORRELATION_DATA => "Correlation Data",
        id::SUBSCRIPTION_IDENTIFIER => "Subscription Identifier",
        id::SESSION_EXPIRY_INTERVAL => "Session Expiry Interval",
        id::ASSIGNED_CLIENT_IDENTIFIER => "Assigned Client Identifier",
        id::SERVER_KEEP_ALIVE => "Server Keep Alive",
        id::AUTHENTICATION_METHOD => "Authentication Method",
        id::AUTHENTICATION_DATA => "Authentication Data",
        id::REQUEST_PROBLEM_INFORMATION => "Request Problem Information",
        id::WILL_DELAY_INTERVAL => "Will Delay Interval",
        id::REQUEST_RESPONSE_INFORMATION => "Request Response Information",
        id::RESPONSE_INFORMATION => "Response Information",
        id::SERVER_REFERENCE => "Server Reference",
        id::REASON_STRING => "Reason String",
        id::RECEIVE_MAXIMUM => "Receive Maximum",
        id::TOPIC_ALIAS_MAXIMUM => "Topic Alias Maximum",
        id::TOPIC_ALIAS => "Topic Alias",
        id::MAXIMUM_QOS => "Maximum QoS",
        id::RETAIN_AVAILABLE => "Retain Available",
        id::USER_PROPERTY => "User Property",
        id::MAXIMUM_PACKET_SIZE => "Maximum Packet Size",
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => "Wildcard Subscription Available",
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => "Subscription Identifier Available",
        id::SHARED_SUBSCRIPTION_AVAILABLE => "Shared Subscription Available",
        _ => return None,
    })
}

/// The property section being read: which packet (or the will) it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK: reason string and user properties.
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < ids.len() {
        mask |= 1 << ids[i];
        i += 1;
    }
    mask
}

impl Owner {
    /// The identifiers this section may carry, as a bit set.
    const fn allowed(self) -> u64 {
        use id::*;
        match self {
            Owner::Connect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                RECEIVE_MAXIMUM,
                MAXIMUM_PACKET_SIZE,
                TOPIC_ALIAS_MAXIMUM,
                REQUEST_RESPONSE_INFORMATION,
                REQUEST_PROBLEM_INFORMATION,
                USER_PROPERTY,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
            ]),
            Owner::Will => bits(&[
                WILL_DELAY_INTERVAL,
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                USER_PROPERTY,
            ]),
            Owner::ConnAck => bits(&[
                SESSION_EXPIRY_INTERVAL,
                RECEIVE_MAXIMUM,
                MAXIMUM_QOS,
                RETAIN_AVAILABLE,
                MAXIMUM_PACKET_SIZE,
                ASSIGNED_CLIENT_IDENTIFIER,
                TOPIC_ALIAS_MAXIMUM,
                REASON_STRING,
                USER_PROPERTY,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                SHARED_SUBSCRIPTION_AVAILABLE,
                SERVER_KEEP_ALIVE,
                RESPONSE_INFORMATION,
                SERVER_REFERENCE,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
            ]),
            Owner::Publish => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                TOPIC_ALIAS,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                USER_PROPERTY,
                SUBSCRIPTION_IDENTIFIER,
                CONTENT_TYPE,
            ]),
            Owner::Ack => bits(&[REASON_STRING, USER_PROPERTY]),
            Owner::Subscribe => bits(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]),
            Owner::Unsubscribe => bits(&[USER_PROPERTY]),
            Owner::Disconnect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                REASON_STRING,
                USER_PROPERTY,
                SERVER_REFERENCE,
            ]),
            Owner::Auth => bits(&[
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REASON_STRING,
                USER_PROPERTY,
            ]),
        }
    }

    /// True when `id` may appear more than once here.
    const fn repeats(self, property: u8) -> bool {
        property == id::USER_PROPERTY
            || (property == id::SUBSCRIPTION_IDENTIFIER && matches!(self, Owner::Publish))
    }

    const fn what(self) -> &'static str {
        match self {
            Owner::Connect => "CONNECT properties",
            Owner::Will => "will properties",
            Owner::ConnAck => "CONNACK properties",
            Owner::Publish => "PUBLISH properties",
            Owner::Ack => "acknowledgement properties",
            Owner::Subscribe => "SUBSCRIBE properties",
            Owner::Unsubscribe => "UNSUBSCRIBE properties",
            Owner::Disconnect => "DISCONNECT properties",
            Owner::Auth => "AUTH properties",
        }
    }
}

/// One property value, borrowing the packet bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prop<'a> {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(NonZeroU16),
    MaximumQos(QoS),
    RetainAvailable(bool),
    UserProperty(&'a str, &'a str),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

/// Reads the property length and the properties of `owner` from `r`, handing each to `apply`.
pub(super) fn read<'a>(
    r: &mut Reader<'a>,
    owner: Owner,
    mut apply: impl FnMut(Prop<'a>),
) -> Result<(), DecodeError> {
    let len = r.varint("property length")?;
    let mut props = r.take(len as usize, owner.what())?;
    let mut seen = 0u64;
    while !props.is_empty() {
        let raw_id = props.varint("property identifier")?;
        let Some(prop_name) = name(raw_id) else {
            return Err(DecodeError::malformed(format!(
                "unknown property identifier 0x{raw_id:02X} in {}",
                owner.what()
            )));
        };
        // `name` only knows identifiers below 0x2B, so the shifts below stay in range.
        let prop_id = raw_id as u8;
        let bit = 1u64 << prop_id;
        if owner.allowed() & bit == 0 {
            return Err(DecodeError::malformed(format!(
                "{prop_name} (0x{prop_id:02X}) is not allowed in {}",
                owner.what()
            )));
        }
        if seen & bit != 0 && !owner.repeats(prop_id) {
            return Err(DecodeError::protocol(format!(
                "{prop_name} given more than once in {}",
                owner.what()
            )));
        }
        seen |= bit;
        apply(value(&mut props, prop_id, prop_name)?);
    }
    Ok(())
}

/// Reads the value of property `prop_id` and checks its range.
fn value<'a>(r: &mut Reader<'a>, prop_id: u8, what: &'static str) -> Result<Prop<'a>, DecodeError> {
    use id::*;
    Ok(match prop_id {
        PAYLOAD_FORMAT_INDICATOR => Prop::PayloadFormatIndicator(u8::from(flag(r, what)?)),
        MESSAGE_EXPIRY_INTERVAL => Prop::MessageExpiryInterval(r.u32(what)?),
        CONTENT_TYPE => Prop::ContentType(r.str(what)?),
        RESPONSE_TOPIC => Prop::ResponseTopic(r.str(what)?),
        CORRELATION_DATA => Prop::CorrelationData(r.binary(what)?),
        SUBSCRIPTION_IDENTIFIER => {
            let value = r.varint(what)?;
            if value == 0 {
                return Err(DecodeError::protocol("Subscription Identifier is 0"));
            }
            Prop::SubscriptionIdentifier(value)
        }
        SESSION_EXPIRY_INTERVAL => Prop::SessionExpiryInterval(r.u32(what)?),
        ASSIGNED_CLIENT_IDENTIFIER => Prop::AssignedClientIdentifier(r.str(what)?),
        SERVER_KEEP_ALIVE => Prop::ServerKeepAlive(r.u16(what)?),
        AUTHENTICATION_METHOD => Prop::AuthenticationMethod(r.str(what)?),
        AUTHENTICATION_DATA => Prop::AuthenticationData(r.binary(what)?),
        REQUEST_PROBLEM_INFORMATION => Prop::RequestProblemInformation(flag(r, what)?),
        WILL_DELAY_INTERVAL => Prop::WillDelayInterval(r.u32(what)?),
        REQUEST_RESPONSE_INFORMATION => Prop::RequestResponseInformation(flag(r, what)?),
        RESPONSE_INFORMATION => Prop::ResponseInformation(r.str(what)?),
        SERVER_REFERENCE => Prop::ServerReference(r.str(what)?),
        REASON_STRING => Prop::ReasonString(r.str(what)?),
        RECEIVE_MAXIMUM => match r.u16(what)? {
            0 => return Err(DecodeError::protocol("Receive Maximum is 0")),
            value => Prop::ReceiveMaximum(value),
        },
        TOPIC_ALIAS_MAXIMUM => Prop::TopicAliasMaximum(r.u16(what)?),
        TOPIC_ALIAS => match NonZeroU16::new(r.u16(what)?) {
            Some(alias) => Prop::TopicAlias(alias),
            None => {
                return Err(DecodeError::new(
                    ErrorKind::TopicAliasInvalid,
                    "Topic Alias is 0",
                ))
            }
        },
        MAXIMUM_QOS => Prop::MaximumQos(if flag(r, what)? {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        }),
        RETAIN_AVAILABLE => Prop::RetainAvailable(flag(r, what)?),
        USER_PROPERTY => {
            Prop::UserProperty(r.str("User Property name")?, r.str("User Property value")?)
        }
        MAXIMUM_PACKET_SIZE => match r.u32(what)? {
            0 => return Err(DecodeError::protocol("Maximum Packet Size is 0")),
            value => Prop::MaximumPacketSize(value),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => Prop::WildcardSubscriptionAvailable(flag(r, what)?),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => Prop::SubscriptionIdentifierAvailable(flag(r, what)?),
        SHARED_SUBSCRIPTION_AVAILABLE => Prop::SharedSubscriptionAvailable(flag(r, what)?),
        _ => {
            return Err(DecodeError::malformed(format!(
                "unknown property identifier 0x{prop_id:02X}"
            )))
        }
    })
}

/// A byte property that may only be 0 or 1.
fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(DecodeError::protocol(format!(
            "{what} must be 0 or 1, not {other}"
        ))),
    }
}

pub(super) fn user_property(name: &str, value: &str) -> UserProperty {
    (name.to_owned(), value.to_owned())
}

/// Copies a CONNECT property into `props`.
pub(super) fn apply_connect(props: &mut ConnectProps, prop: Prop<'_>) {
    match prop {
        Prop::SessionExpiryInterval(v) => props.session_expiry_interval = v,
        Prop::ReceiveMaximum(v) => props.receive_maximum = Some(v),
        Prop::MaximumPacketSize(v) => props.maximum_packet_size = Some(v),
        Prop::TopicAliasMaximum(v) => props.topic_alias_maximum = v,
        Prop::RequestResponseInformation(v) => props.request_response_information = v,
        Prop::RequestProblemInformation(v) => props.request_problem_information = v,
        Prop::UserProperty(n, v) => props.user_properties.push(user_property(n, v)),
        Prop::AuthenticationMethod(v) => props.authentication_method = Some(v.to_owned()),
        Prop::AuthenticationData(v) => props.authentication_data = Some(Bytes::copy_from_slice(v)),
        _ => debug_assert!(false, "{prop:?} passed the CONNECT property filter"),
    }
}

/// Copies a PUBLISH or will property into `props` (the Will Delay Interval into `delay`).
pub(super) fn apply_publish(props: &mut PublishProps, delay: &mut u32, prop: Prop<'_>) {
    match prop {
        Prop::PayloadFormatIndicator(v) => props.payload_format_indicator = Some(v),
        Prop::MessageExpiryInterval(v) => props.message_expiry_interval = Some(v),
        Prop::TopicAlias(v) => props.topic_alias = Some(v),
        Prop::ResponseTopic(v) => props.response_topic = Some(v.to_owned()),
        Prop::CorrelationData(v) => props.correlation_data = Some(Bytes::copy_from_slice(v)),
        Prop::UserProperty(n, v) => props.user_properties.push(user_property(n, v)),
        Prop::SubscriptionIdentifier(v) => props.subscription_identifiers.push(v),
        Prop::ContentType(v) => props.content_type = Some(v.to_owned()),
        Prop::WillDelayInterval(v) => *delay = v,
        _ => debug_assert!(false, "{prop:?} passed the PUBLISH property filter"),
    }
}

/// Copies a CONNACK property into `props`.
pub(super) fn apply_connack(props: &mut ConnAckProps, prop: Prop<'_>) {
    match prop {
        Prop::SessionExpiryInterval(v) => props.session_expiry_interval = Some(v),
        Prop::ReceiveMaximum(v) => props.receive_maximum = Some(v),
        Prop::MaximumQos(v) => props.maximum_qos = Some(v),
        Prop::RetainAvailable(v) => props.retain_available = Some(v),
        Prop::MaximumPacketSize(v) => props.maximum_packet_size = Some(v),
        Prop::AssignedClientIdentifier(v) => props.assigned_client_identifier = Some(v.to_owned()),
        Prop::TopicAliasMaximum(v) => props.topic_alias_maximum = Some(v),
        Prop::ReasonString(v) => props.reason_string = Some(v.to_owned()),
        Prop::UserProperty(n, v) => props.user_properties.push(user_property(n, v)),
        Prop::WildcardSubscriptionAvailable(v) => props.wildcard_subscription_available = Some(v),
        Prop::SubscriptionIdentifierAvailable(v) => {
            props.subscription_identifiers_available = Some(v)
        }
        Prop::SharedSubscriptionAvailable(v) => props.shared_subscription_available = Some(v),
        Prop::ServerKeepAlive(v) => props.server_keep_alive = Some(v),
        Prop::ResponseInformation(v) => props.response_information = Some(v.to_owned()),
        Prop::ServerReference(v) => props.server_reference = Some(v.to_owned()),
        Prop::AuthenticationMethod(v) => props.authentication_method = Some(v.to_owned()),
        Prop::AuthenticationData(v) => props.authentication_data = Some(Bytes::copy_from_slice(v)),
        _ => debug_assert!(false, "{prop:?} passed the CONNACK property filter"),
    }
}

/// The properties every other packet shares: reason string, user properties and the few
/// others DISCONNECT, SUBSCRIBE and AUTH add.
#[derive(Debug, Default)]
pub(super) struct Common {
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub session_expiry_interval: Option<u32>,
    pub server_reference: Option<String>,
    pub subscription_identifier: Option<u32>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// Reads the property section of an acknowledgement, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT or
/// AUTH (the owner's filter keeps out what it may not carry).
pub(super) fn read_common(r: &mut Reader<'_>, owner: Owner) -> Result<Common, DecodeError> {
    let mut common = Common::default();
    read(r, owner, |prop| match prop {
        Prop::ReasonString(v) => common.reason_string = Some(v.to_owned()),
        Prop::UserProperty(n, v) => common.user_properties.push(user_property(n, v)),
        Prop::SessionExpiryInterval(v) => common.session_expiry_interval = Some(v),
        Prop::ServerReference(v) => common.server_reference = Some(v.to_owned()),
        Prop::SubscriptionIdentifier(v) => common.subscription_identifier = Some(v),
        Prop::AuthenticationMethod(v) => common.authentication_method = Some(v.to_owned()),
        Prop::AuthenticationData(v) => common.authentication_data = Some(Bytes::copy_from_slice(v)),
        _ => debug_assert!(false, "{prop:?} passed the {owner:?} property filter"),
    })?;
    Ok(common)
}
