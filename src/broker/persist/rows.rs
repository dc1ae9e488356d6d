//! The rows of the persistence file and their conversion to and from the engine's types.
//!
//! MQTT 5 properties are stored as JSON text (`props`), with the absolute expiry time in its
//! own column (`expires_ms`), so a message's expiry keeps counting across restarts.

use std::num::NonZeroU16;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::broker::codec::{PublishProps, QoS};
use crate::broker::message::{now_ms, Delivery, Publication, Publisher, SubIds};

/// A persistent session's identity and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub client_id: Arc<str>,
    pub username: Option<String>,
    /// Protocol level: 3, 4 or 5.
    pub protocol: u8,
    /// Session expiry in seconds (`u32::MAX`: never).
    pub expiry: u32,
    /// `None` while the client is connected.
    pub disconnected_ms: Option<i64>,
}

/// A stored subscription (the filter as the client sent it, `$share/` prefix included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRow {
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub sub_id: u32,
}

/// A queued or in-flight message of a session, as read back.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub delivery: Delivery,
    /// Sent with this packet id; `true` once its PUBREL was sent.
    pub sent: Option<(NonZeroU16, bool)>,
}

/// A session as read back.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub row: SessionRow,
    pub subs: Vec<SubRow>,
    /// In queue order.
    pub entries: Vec<StoredEntry>,
    pub qos2_in: Vec<u16>,
}

/// The will of a client that was connected.
#[derive(Debug, Clone)]
pub struct StoredWill {
    pub msg: Arc<Publication>,
    pub delay: u32,
}

/// A will read back, with its client.
#[derive(Debug, Clone)]
pub struct LoadedWill {
    pub client_id: Arc<str>,
    pub will: StoredWill,
}

/// What the file held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub retained: Vec<Arc<Publication>>,
    pub sessions: Vec<StoredSession>,
    pub wills: Vec<LoadedWill>,
    /// Where an unreadable file was moved, if one was.
    pub moved_aside: Option<PathBuf>,
}

/// MQTT 5 properties of a stored message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format_utf8: Option<bool>,
    /// Seconds, as the publisher set it (schema 1 used it to compute expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_data: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
}

impl StoredProps {
    pub fn from_props(p: &PublishProps) -> Self {
        Self {
            payload_format_utf8: p.payload_format_indicator.map(|f| f == 1),
            expiry_secs: p.message_expiry_interval,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.as_ref().map(|d| d.to_vec()),
            user_properties: p.user_properties.clone(),
        }
    }

    fn into_props(self) -> PublishProps {
        PublishProps {
            payload_format_indicator: self.payload_format_utf8.map(u8::from),
            message_expiry_interval: self.expiry_secs,
            content_type: self.content_type,
            response_topic: self.response_topic,
            correlation_data: self.correlation_data.map(Bytes::from),
            user_properties: self.user_properties,
            ..PublishProps::default()
        }
    }
}

/// The `props` column of a message.
pub fn props_text(msg: &Publication) -> Option<String> {
    msg.props
        .as_deref()
        .map(|p| serde_json::to_string(&StoredProps::from_props(p)).unwrap_or_default())
}

/// The `expires_ms` column of a message.
pub fn expires_ms(msg: &Publication) -> Option<i64> {
    msg.expires_at.map(|at| {
        let left = at.saturating_duration_since(Instant::now());
        now_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX))
    })
}

pub fn qos_from(n: i64) -> QoS {
    match n {
        2 => QoS::ExactlyOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    }
}

/// The columns a stored message is rebuilt from.
#[derive(Debug)]
pub struct MessageColumns {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: i64,
    pub retain: bool,
    pub props: Option<String>,
    pub from_client: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
}

impl MessageColumns {
    /// The message, or `None` when it has expired.
    pub fn into_publication(self, now: i64) -> Option<Publication> {
        let stored: StoredProps = self
            .props
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        // Schema 1 kept only the interval: it counts from when the message was published.
        let expires_ms = self.expires_ms.or_else(|| {
            stored
                .expiry_secs
                .map(|s| self.created_ms.saturating_add(i64::from(s) * 1000))
        });
        let left = match expires_ms {
            Some(at) if at <= now => return None,
            Some(at) => Some(Duration::from_millis(u64::try_from(at - now).unwrap_or(0))),
            None => None,
        };
        let from = match self.from_client {
            Some(id) => Publisher::Client {
                client_id: id.into(),
                username: None,
                addr: None,
            },
            None => Publisher::Agent,
        };
        let mut p = Publication::new(
            self.topic.into(),
            Bytes::from(self.payload),
            qos_from(self.qos),
            self.retain,
            stored.into_props(),
            from,
        );
        p.created_ms = self.created_ms;
        p.expires_at = left.map(|l| Instant::now() + l);
        Some(p)
    }
}

/// Subscription identifiers as text (`"1,7"`), `None` when there are none.
pub fn sub_ids_text(ids: &SubIds) -> Option<String> {
    let ids = ids.as_slice();
    (!ids.is_empty()).then(|| {
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    })
}

pub fn sub_ids_from(text: Option<&str>) -> SubIds {
    let mut ids = SubIds::None;
    for id in text
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.parse::<u32>().ok())
    {
        ids.add(id);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_round_trip() {
        let mut ids = SubIds::None;
        assert_eq!(sub_ids_text(&ids), None);
        ids.add(1);
        ids.add(70000);
        let text = sub_ids_text(&ids);
        assert_eq!(text.as_deref(), Some("1,70000"));
        assert_eq!(sub_ids_from(text.as_deref()), ids);
    }

    #[test]
    fn expired_messages_are_not_rebuilt_and_schema_1_intervals_count_from_creation() {
        let cols = |expires_ms, props: Option<&str>| MessageColumns {
            topic: "t".into(),
            payload: b"p".to_vec(),
            qos: 1,
            retain: true,
            props: props.map(str::to_owned),
            from_client: Some("c".into()),
            created_ms: 1_000,
            expires_ms,
        };
        assert!(cols(Some(5_000), None).into_publication(6_000).is_none());
        let p = cols(Some(9_000), None)
            .into_publication(6_000)
            .expect("alive");
        assert!(p.expires_at.is_some() && p.retain);
        assert_eq!(p.from.client_id().map(|c| &**c), Some("c"));
        assert!(cols(None, Some(r#"{"expiry_secs":4}"#))
            .into_publication(6_000)
            .is_none());
        let kept = cols(None, Some(r#"{"expiry_secs":60,"user_properties":[["k","v"]]}"#))
            .into_publication(6_000)
            .expect("alive");
        let props = kept.props.as_deref().expect("props");
        assert_eq!(props.user_properties, vec![("k".into(), "v".into())]);
    }
}
