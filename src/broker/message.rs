//! The broker-independent message type that crosses the broker's narrow interface.
//!
//! Nothing outside `src/broker/` sees an rmqtt type: conversions live here.

use std::net::SocketAddr;

use bytes::Bytes;
use rmqtt::types::{CodecPublish, Publish, QoS};

use super::escape::{escape, unescape};
use crate::config::Qos;

/// Who put a message into the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The agent itself (point state, device state, command results).
    Agent,
    /// A network client of the embedded broker.
    Client {
        client_id: String,
        username: Option<String>,
        addr: Option<SocketAddr>,
    },
    /// The will message of a client that went away without DISCONNECT.
    Will { client_id: String },
    /// A message received from the upstream broker (never forwarded back up).
    Downlink,
}

impl Origin {
    /// The client id of a client or will, for logs and audit.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Client { client_id, .. } | Self::Will { client_id } => Some(client_id),
            Self::Agent | Self::Downlink => None,
        }
    }
}

/// One MQTT application message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: Qos,
    pub retain: bool,
    pub origin: Origin,
    /// MQTT 5 response topic, if the publisher set one.
    pub response_topic: Option<String>,
    /// MQTT 5 correlation data, if the publisher set it.
    pub correlation_data: Option<Bytes>,
}

impl Message {
    /// A message published by the agent itself.
    pub fn agent(topic: String, payload: impl Into<Bytes>, qos: Qos, retain: bool) -> Self {
        Self {
            topic,
            payload: payload.into(),
            qos,
            retain,
            origin: Origin::Agent,
            response_topic: None,
            correlation_data: None,
        }
    }
}

fn qos_to_rmqtt(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos_from_rmqtt(qos: QoS) -> Qos {
    match qos {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
        QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

/// The rmqtt form of a message (topic escaped for rmqtt, created now).
pub(super) fn to_rmqtt(msg: Message) -> Publish {
    let properties = rmqtt::codec::v5::PublishProperties {
        response_topic: msg.response_topic.map(Into::into),
        correlation_data: msg.correlation_data,
        ..Default::default()
    };
    let p = CodecPublish {
        dup: false,
        retain: msg.retain,
        qos: qos_to_rmqtt(msg.qos),
        topic: escape(&msg.topic).into_owned().into(),
        packet_id: None,
        payload: msg.payload,
        properties: Some(properties),
    };
    Publish::from(p).create_time(rmqtt::utils::timestamp_millis())
}

/// The message an rmqtt publish carries (topic unescaped).
pub(super) fn from_rmqtt(p: &Publish, origin: Origin) -> Message {
    let props = p.properties.as_ref();
    Message {
        topic: unescape(&p.topic).into_owned(),
        payload: p.payload.clone(),
        qos: qos_from_rmqtt(p.qos),
        retain: p.retain,
        origin,
        response_topic: props
            .and_then(|p| p.response_topic.as_ref())
            .map(|t| t.to_string()),
        correlation_data: props.and_then(|p| p.correlation_data.clone()),
    }
}
