//! A write from the page: the same path as any MQTT command. The page's request becomes a
//! message on the point's `.../set` topic (with a fresh `id`, the page's client id and the
//! logged-in user as its origin), so the command worker applies every check, the `confirm`
//! hold, the rate limit, the audit trail and the read-back; the answer is the result message
//! carrying that `id`.
//!
//! Invariant: nothing is published unless the user's ACL allows `write` on that `.../set`
//! topic; a refusal here is an event on the page.

use std::net::SocketAddr;
use std::time::Duration;

use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::{json, Value as Json};

use super::auth::{may_write, Auth, CLIENT_ID};
use super::catalog::NoSuchPoint;
use super::hub::Hub;
use crate::broker::{Message, Origin};
use crate::config::Qos;

/// How long the page waits for a command's result (a held command answers at once with
/// `pending`; a device write is bounded by the device's timeout).
pub const RESULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a write was not sent or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    NotFound(#[from] NoSuchPoint),
    #[error("user `{user}` may not write to `{topic}` (acl_file)")]
    Forbidden { user: String, topic: String },
    #[error("the ACL file cannot be read: {0}")]
    Acl(String),
    #[error("the broker refused the command: {0}")]
    Broker(String),
    #[error("no result for `{topic}` within {RESULT_TIMEOUT:?}")]
    Timeout { topic: String },
}

/// Sends `value` to `device`/`point` for `user` (connected from `addr`) and waits for the
/// result message (returned as published).
pub async fn write(
    hub: &Hub,
    auth: &Auth,
    user: Option<&str>,
    addr: SocketAddr,
    device: &str,
    point: &str,
    value: Json,
) -> Result<Json, WriteError> {
    let source = hub.source();
    if source.catalog.find(device, point).is_none() {
        return Err(NoSuchPoint::new(device, point).into());
    }
    let topic = source.topics.command(device, point);
    let acl = auth.acl().map_err(WriteError::Acl)?;
    if !may_write(acl.as_ref(), user, &topic) {
        let who = user.unwrap_or("anonymous").to_owned();
        hub.event(
            "refused",
            format!("{device}/{point}: write from the page refused for {who} (acl_file)"),
        );
        return Err(WriteError::Forbidden { user: who, topic });
    }
    let mut bytes = [0u8; 6];
    let _ = SystemRandom::new().fill(&mut bytes);
    let id: String = std::iter::once("page-".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    // Subscribed before publishing: the result cannot come first.
    let mut results = source
        .broker
        .subscribe(&source.topics.command_result(device, point), 64);
    let msg = Message {
        topic: topic.clone(),
        payload: json!({"value": value, "id": id}).to_string().into(),
        qos: Qos::AtLeastOnce,
        retain: false,
        origin: Origin::Client {
            client_id: CLIENT_ID.to_owned(),
            username: user.map(str::to_owned),
            addr: Some(addr),
        },
        response_topic: None,
        correlation_data: None,
    };
    source
        .broker
        .publish(msg)
        .await
        .map_err(|e| WriteError::Broker(e.to_string()))?;
    let wait = async {
        while let Some(m) = results.recv().await {
            let Ok(doc) = serde_json::from_slice::<Json>(&m.payload) else {
                continue;
            };
            if doc["id"].as_str() == Some(id.as_str()) {
                return Some(doc);
            }
        }
        None
    };
    match tokio::time::timeout(RESULT_TIMEOUT, wait).await {
        Ok(Some(doc)) => Ok(doc),
        _ => Err(WriteError::Timeout { topic }),
    }
}
