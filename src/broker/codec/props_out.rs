//! Writing MQTT 5 property sections: each packet's properties as a [`Section`] that writes
//! into any [`Sink`], so its length is counted with the very code that writes it.
//!
//! Invariants:
//! - a section writes only properties that differ from what absence means (a CONNECT's
//!   session expiry 0, request problem information 1, …; a CONNACK's maximum QoS 2), so the
//!   decoder gives back the same struct;
//! - properties are written in one fixed order per section (the byte tables in the tests pin
//!   it), user properties in their given order, subscription identifiers too;
//! - nothing here allocates.

use super::packet::{
    Auth, ConnAckProps, ConnectProps, Disconnect, PublishProps, QoS, UserProperty, Will,
};
use super::props::id;
use super::wire::{count, Sink};

/// A property section: writes its properties (without the property length).
pub(super) trait Section {
    fn write<S: Sink>(&self, s: &mut S);

    /// True when the section has no property (only a zero property length to write).
    fn is_empty(&self) -> bool {
        count(|c| self.write(c)) == 0
    }
}

/// Writes the property length and then the properties of `section`.
#[inline]
pub(super) fn put_section<S: Sink, P: Section>(s: &mut S, section: &P) {
    let len = count(|c| section.write(c));
    s.put_varint(len as u32);
    section.write(s);
}

fn byte<S: Sink>(s: &mut S, prop: u8, value: Option<u8>) {
    if let Some(value) = value {
        s.put_u8(prop);
        s.put_u8(value);
    }
}

fn flag<S: Sink>(s: &mut S, prop: u8, value: Option<bool>) {
    byte(s, prop, value.map(u8::from));
}

fn two<S: Sink>(s: &mut S, prop: u8, value: Option<u16>) {
    if let Some(value) = value {
        s.put_u8(prop);
        s.put_u16(value);
    }
}

fn four<S: Sink>(s: &mut S, prop: u8, value: Option<u32>) {
    if let Some(value) = value {
        s.put_u8(prop);
        s.put_u32(value);
    }
}

fn text<S: Sink>(s: &mut S, prop: u8, value: Option<&str>) {
    if let Some(value) = value {
        s.put_u8(prop);
        s.put_str(value);
    }
}

fn binary<S: Sink>(s: &mut S, prop: u8, value: Option<&[u8]>) {
    if let Some(value) = value {
        s.put_u8(prop);
        s.put_binary(value);
    }
}

fn users<S: Sink>(s: &mut S, user_properties: &[UserProperty]) {
    for (name, value) in user_properties {
        s.put_u8(id::USER_PROPERTY);
        s.put_str(name);
        s.put_str(value);
    }
}

impl Section for ConnectProps {
    fn write<S: Sink>(&self, s: &mut S) {
        four(
            s,
            id::SESSION_EXPIRY_INTERVAL,
            Some(self.session_expiry_interval).filter(|&v| v != 0),
        );
        text(
            s,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        binary(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        byte(
            s,
            id::REQUEST_PROBLEM_INFORMATION,
            (!self.request_problem_information).then_some(0),
        );
        byte(
            s,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information.then_some(1),
        );
        two(s, id::RECEIVE_MAXIMUM, self.receive_maximum);
        two(
            s,
            id::TOPIC_ALIAS_MAXIMUM,
            Some(self.topic_alias_maximum).filter(|&v| v != 0),
        );
        users(s, &self.user_properties);
        four(s, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
    }
}

/// The properties of a PUBLISH as sent: the stored [`PublishProps`] with the topic alias,
/// expiry and subscription identifiers of this delivery.
pub(super) struct PublishSection<'a> {
    pub props: &'a PublishProps,
    pub topic_alias: Option<u16>,
    pub message_expiry_interval: Option<u32>,
    pub subscription_identifiers: &'a [u32],
}

impl Section for PublishSection<'_> {
    #[inline]
    fn write<S: Sink>(&self, s: &mut S) {
        let props = self.props;
        byte(
            s,
            id::PAYLOAD_FORMAT_INDICATOR,
            props.payload_format_indicator,
        );
        four(s, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        text(s, id::CONTENT_TYPE, props.content_type.as_deref());
        text(s, id::RESPONSE_TOPIC, props.response_topic.as_deref());
        binary(s, id::CORRELATION_DATA, props.correlation_data.as_deref());
        for &sub_id in self.subscription_identifiers {
            s.put_u8(id::SUBSCRIPTION_IDENTIFIER);
            s.put_varint(sub_id);
        }
        two(s, id::TOPIC_ALIAS, self.topic_alias);
        users(s, &props.user_properties);
    }
}

impl Section for Will {
    fn write<S: Sink>(&self, s: &mut S) {
        let props = &self.props;
        byte(
            s,
            id::PAYLOAD_FORMAT_INDICATOR,
            props.payload_format_indicator,
        );
        four(
            s,
            id::MESSAGE_EXPIRY_INTERVAL,
            props.message_expiry_interval,
        );
        text(s, id::CONTENT_TYPE, props.content_type.as_deref());
        text(s, id::RESPONSE_TOPIC, props.response_topic.as_deref());
        binary(s, id::CORRELATION_DATA, props.correlation_data.as_deref());
        four(
            s,
            id::WILL_DELAY_INTERVAL,
            Some(self.delay_interval).filter(|&v| v != 0),
        );
        users(s, &props.user_properties);
    }
}

impl Section for ConnAckProps {
    fn write<S: Sink>(&self, s: &mut S) {
        four(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        text(
            s,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_deref(),
        );
        two(s, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        text(
            s,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        binary(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        text(
            s,
            id::RESPONSE_INFORMATION,
            self.response_information.as_deref(),
        );
        text(s, id::SERVER_REFERENCE, self.server_reference.as_deref());
        text(s, id::REASON_STRING, self.reason_string.as_deref());
        two(s, id::RECEIVE_MAXIMUM, self.receive_maximum);
        two(s, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        // Absence means 2: only 0 and 1 are ever written.
        let maximum_qos = match self.maximum_qos {
            Some(QoS::AtMostOnce) => Some(0),
            Some(QoS::AtLeastOnce) => Some(1),
            Some(QoS::ExactlyOnce) | None => None,
        };
        byte(s, id::MAXIMUM_QOS, maximum_qos);
        flag(s, id::RETAIN_AVAILABLE, self.retain_available);
        users(s, &self.user_properties);
        four(s, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        flag(
            s,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        flag(
            s,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        flag(
            s,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }
}

/// Reason string and user properties: the acknowledgements and UNSUBSCRIBE; SUBSCRIBE adds a
/// subscription identifier.
pub(super) struct Reasons<'a> {
    pub reason_string: Option<&'a str>,
    pub user_properties: &'a [UserProperty],
    pub subscription_identifier: Option<u32>,
}

impl Section for Reasons<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        if let Some(sub_id) = self.subscription_identifier {
            s.put_u8(id::SUBSCRIPTION_IDENTIFIER);
            s.put_varint(sub_id);
        }
        text(s, id::REASON_STRING, self.reason_string);
        users(s, self.user_properties);
    }

    fn is_empty(&self) -> bool {
        self.reason_string.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifier.is_none()
    }
}

impl Section for Disconnect {
    fn write<S: Sink>(&self, s: &mut S) {
        four(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        text(s, id::SERVER_REFERENCE, self.server_reference.as_deref());
        text(s, id::REASON_STRING, self.reason_string.as_deref());
        users(s, &self.user_properties);
    }
}

impl Section for Auth {
    fn write<S: Sink>(&self, s: &mut S) {
        text(s, id::AUTHENTICATION_METHOD, self.method.as_deref());
        binary(s, id::AUTHENTICATION_DATA, self.data.as_deref());
        text(s, id::REASON_STRING, self.reason_string.as_deref());
        users(s, &self.user_properties);
    }
}
