//! Retained-message storage for the embedded broker (rmqtt's default store is a stub).
//!
//! Invariants: a retained message lives until it is replaced or cleared by an empty retained
//! publish, like Mosquitto; only an explicit MQTT 5 message expiry set by the publisher ends it
//! earlier (counted from when it was published, across restarts). rmqtt would otherwise apply
//! the listener's default expiry to retained messages. With persistence, every change (except
//! the broker's own `$SYS` values) is also handed to the persistence writer, and
//! [`RetainStore::load`] puts the stored ones back.

use std::time::Duration;

use async_trait::async_trait;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::types::{ClientId, From as RFrom, Id, Retain, TopicFilter, TopicName};
use rmqtt::utils::timestamp_millis;

use super::escape::unescape;
use super::persist::{Store, StoredMessage};
use super::sessions::{rmqtt_publish, stored_message};

/// In-memory retained messages, indexed by a topic tree, written through to the store.
pub struct RetainStore {
    inner: DefaultRetainStorage,
    store: Option<Store>,
}

impl RetainStore {
    pub fn new(store: Option<Store>) -> Self {
        Self {
            inner: DefaultRetainStorage::new(),
            store,
        }
    }

    /// Puts back retained messages read from the store (expired ones are skipped).
    pub async fn load(&self, messages: Vec<StoredMessage>, node: u64) -> usize {
        let now = timestamp_millis();
        let from = RFrom::from_system(Id::new(
            node,
            0,
            None,
            None,
            ClientId::from("$retained"),
            None,
        ));
        let mut loaded = 0;
        for m in messages {
            let expiry = match m.props.expiry_secs {
                Some(secs) => {
                    let left = i64::from(secs) * 1000 - (now - m.created_ms);
                    if left <= 0 {
                        if let Some(store) = &self.store {
                            store.retain(m.topic.clone(), None);
                        }
                        continue;
                    }
                    Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
                }
                None => None,
            };
            let publish = rmqtt_publish(&m);
            let topic = publish.topic.clone();
            let retain = Retain {
                msg_id: None,
                from: from.clone(),
                publish,
            };
            match self.inner.set_with_timeout(&topic, retain, expiry).await {
                Ok(()) => loaded += 1,
                Err(e) => {
                    tracing::warn!(topic = %m.topic, error = %e, "stored retained message not restored")
                }
            }
        }
        loaded
    }
}

fn explicit_expiry(retain: &Retain) -> Option<Duration> {
    retain
        .publish
        .properties
        .as_ref()
        .and_then(|p| p.message_expiry_interval)
        .map(|s| Duration::from_secs(u64::from(s.get())))
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
        // `$SYS` values are regenerated after a restart; writing them would only wear the disk.
        if let Some(store) = self.store.as_ref().filter(|_| !topic.starts_with("$SYS/")) {
            let plain = unescape(topic).into_owned();
            let stored = (!retain.publish.payload.is_empty()).then(|| {
                let mut m = stored_message(&retain.publish, &retain.from);
                m.retain = true;
                m.dup = false;
                m.packet_id = None;
                m.from_client = None;
                m
            });
            store.retain(plain, stored);
        }
        let expiry = explicit_expiry(&retain);
        self.inner.set_with_timeout(topic, retain, expiry).await
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
