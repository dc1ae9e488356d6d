//! Retained-message storage for the embedded broker (rmqtt's default store is a stub).
//!
//! Invariant: a retained message lives until it is replaced or cleared by an empty retained
//! publish, like Mosquitto; only an explicit MQTT 5 message expiry set by the publisher ends it
//! earlier. (rmqtt would otherwise apply the listener's default expiry to retained messages.)

use std::time::Duration;

use async_trait::async_trait;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::types::{Retain, TopicFilter, TopicName};

/// In-memory retained messages, indexed by a topic tree.
pub struct RetainStore {
    inner: DefaultRetainStorage,
}

impl RetainStore {
    pub fn new() -> Self {
        Self {
            inner: DefaultRetainStorage::new(),
        }
    }
}

#[async_trait]
impl RetainStorage for RetainStore {
    fn enable(&self) -> bool {
        true
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        _listener_expiry: Option<Duration>,
    ) -> rmqtt::Result<()> {
        let explicit = retain
            .publish
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval)
            .map(|s| Duration::from_secs(u64::from(s.get())));
        self.inner.set_with_timeout(topic, retain, explicit).await
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        self.inner.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        self.inner.count().await
    }

    async fn max(&self) -> isize {
        self.inner.max().await
    }
}
