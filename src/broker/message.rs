//! The messages that cross the broker: [`Message`], the broker-independent type the rest of
//! ferrule publishes and receives, and the engine's own [`Publication`] (one per message that
//! entered the broker, shared by every queue it is in) and [`Delivery`] (one copy on its way to
//! one session).
//!
//! Invariant: a [`Publication`] is immutable once routed; what differs per subscriber (QoS,
//! retain flag, subscription identifiers, packet id, topic alias) lives in the [`Delivery`] or
//! is decided when it is written.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::codec::{PublishProps, QoS};
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

pub(super) fn qos_in(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

pub(super) fn qos_out(qos: QoS) -> Qos {
    match qos {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
        QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

/// Who published a [`Publication`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Publisher {
    /// A network client (its client id, for no-local and logs) with its user and address.
    Client {
        client_id: Arc<str>,
        username: Option<Arc<str>>,
        addr: Option<SocketAddr>,
    },
    /// A client's will.
    Will { client_id: Arc<str> },
    /// The agent, through [`super::Broker::publish`].
    Agent,
    /// The uplink's downlink, through [`super::Broker::publish`].
    Downlink,
    /// The broker itself (`$SYS`).
    System,
}

impl Publisher {
    pub fn client_id(&self) -> Option<&Arc<str>> {
        match self {
            Self::Client { client_id, .. } | Self::Will { client_id } => Some(client_id),
            _ => None,
        }
    }

    pub fn origin(&self) -> Origin {
        match self {
            Self::Client {
                client_id,
                username,
                addr,
            } => Origin::Client {
                client_id: client_id.to_string(),
                username: username.as_deref().map(str::to_owned),
                addr: *addr,
            },
            Self::Will { client_id } => Origin::Will {
                client_id: client_id.to_string(),
            },
            Self::Agent | Self::System => Origin::Agent,
            Self::Downlink => Origin::Downlink,
        }
    }

    fn from_origin(origin: &Origin) -> Self {
        match origin {
            Origin::Agent => Self::Agent,
            Origin::Downlink => Self::Downlink,
            Origin::Client {
                client_id,
                username,
                addr,
            } => Self::Client {
                client_id: client_id.as_str().into(),
                username: username.as_deref().map(Into::into),
                addr: *addr,
            },
            Origin::Will { client_id } => Self::Will {
                client_id: client_id.as_str().into(),
            },
        }
    }
}

/// A message inside the engine.
#[derive(Debug)]
pub(super) struct Publication {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// QoS as published.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
    /// MQTT 5 properties that travel with the message (never topic alias or subscription
    /// identifiers, which are per connection and per subscriber); `None` when empty.
    pub props: Option<Box<PublishProps>>,
    /// When the publisher's message expiry interval ends.
    pub expires_at: Option<Instant>,
    /// When it entered the broker (ms since the epoch): persisted expiry counts from here.
    pub created_ms: i64,
    pub from: Publisher,
    /// Its row in the persistence file, once a persistent session queued it.
    pub stored: OnceLock<u64>,
}

/// Milliseconds since the epoch, now.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Publication {
    /// A message with these parts, entering the broker now.
    pub fn new(
        topic: Arc<str>,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        mut props: PublishProps,
        from: Publisher,
    ) -> Self {
        props.topic_alias = None;
        props.subscription_identifiers.clear();
        let expires_at = props
            .message_expiry_interval
            .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
        Self {
            topic,
            payload,
            qos,
            retain,
            props: (!props.is_empty()).then(|| Box::new(props)),
            expires_at,
            created_ms: now_ms(),
            from,
            stored: OnceLock::new(),
        }
    }

    /// The engine's form of a message published through the narrow interface.
    pub fn from_message(msg: Message) -> Self {
        let props = PublishProps {
            response_topic: msg.response_topic,
            correlation_data: msg.correlation_data,
            ..PublishProps::default()
        };
        Self::new(
            msg.topic.into(),
            msg.payload,
            qos_in(msg.qos),
            msg.retain,
            props,
            Publisher::from_origin(&msg.origin),
        )
    }

    /// The broker-independent form, for the tap and in-process subscribers.
    pub fn to_message(&self) -> Message {
        let props = self.props.as_deref();
        Message {
            topic: self.topic.to_string(),
            payload: self.payload.clone(),
            qos: qos_out(self.qos),
            retain: self.retain,
            origin: self.from.origin(),
            response_topic: props.and_then(|p| p.response_topic.clone()),
            correlation_data: props.and_then(|p| p.correlation_data.clone()),
        }
    }

    /// Expired by its message expiry interval.
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Seconds of message expiry left (rounded up), for the forwarded PUBLISH.
    pub fn expiry_left(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX).max(1)
        })
    }

    /// Bytes this message holds in memory (for queue byte bounds and `$SYS`).
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// The subscription identifiers a delivery carries (MQTT 5): usually none or one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum SubIds {
    #[default]
    None,
    One(u32),
    Many(Box<[u32]>),
}

impl SubIds {
    pub fn add(&mut self, id: u32) {
        if id == 0 {
            return;
        }
        *self = match std::mem::take(self) {
            Self::None => Self::One(id),
            Self::One(a) if a == id => Self::One(a),
            Self::One(a) => Self::Many(vec![a, id].into_boxed_slice()),
            Self::Many(v) if v.contains(&id) => Self::Many(v),
            Self::Many(v) => {
                let mut v = v.into_vec();
                v.push(id);
                Self::Many(v.into_boxed_slice())
            }
        };
    }

    pub fn as_slice(&self) -> &[u32] {
        match self {
            Self::None => &[],
            Self::One(a) => std::slice::from_ref(a),
            Self::Many(v) => v,
        }
    }
}

/// One copy of a message on its way to one session.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub msg: Arc<Publication>,
    /// The QoS it is delivered at: min(published, granted).
    pub qos: QoS,
    /// The RETAIN flag it is sent with.
    pub retain: bool,
    pub sub_ids: SubIds,
    /// Its row in the session's persisted queue (0: not persisted).
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_collect_distinct_non_zero_values() {
        let mut ids = SubIds::default();
        ids.add(0);
        assert_eq!(ids.as_slice(), &[] as &[u32]);
        ids.add(3);
        ids.add(3);
        assert_eq!(ids.as_slice(), &[3]);
        ids.add(7);
        ids.add(3);
        ids.add(9);
        assert_eq!(ids.as_slice(), &[3, 7, 9]);
    }

    #[test]
    fn expiry_counts_down_and_rounds_up() {
        let props = PublishProps {
            message_expiry_interval: Some(10),
            ..PublishProps::default()
        };
        let p = Publication::new(
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce,
            false,
            props,
            Publisher::Agent,
        );
        let now = Instant::now();
        assert!(matches!(p.expiry_left(now), Some(9 | 10)));
        assert!(!p.expired(now));
        assert!(p.expired(now + Duration::from_secs(11)));
        assert_eq!(p.expiry_left(now + Duration::from_secs(11)), Some(1));
    }
}
