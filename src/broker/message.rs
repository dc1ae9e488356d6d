//! The broker-independent message type that crosses the broker's narrow interface.
//!
//! Nothing outside `src/broker/` sees an rmqtt type: conversions live here.

use std::net::SocketAddr;

use bytes::Bytes;

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
