//! The value cache the births are made from ([`follow`]), and Sparkplug's clock ([`now_ms`]).

use bytes::Bytes;
use tokio::sync::mpsc;

use super::node::Latest;
use crate::broker::Message;

/// Keeps `latest` up to date with the local messages of `rx` (until the sender goes away).
pub async fn follow(mut rx: mpsc::Receiver<Message>, latest: Latest) {
    while let Some(msg) = rx.recv().await {
        let payload: Bytes = msg.payload;
        latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(msg.topic, payload);
    }
}

/// Now, in milliseconds since the Unix epoch (Sparkplug timestamps).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
