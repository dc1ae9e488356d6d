//! Indirections that let a reload replace one component under the others: the broker's tap
//! (the uplink's forward rules) and the uplink's local broker.
//!
//! Invariant: a message goes through the tap or the local broker current when it arrives;
//! a replacement takes effect for the next message.

use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use crate::broker::{Broker, BrokerError, Message, Tap, TapError};
use crate::uplink::Local;

/// A [`Tap`] that can be replaced while the broker runs.
pub struct TapSwitch(RwLock<Arc<dyn Tap>>);

impl TapSwitch {
    pub fn new(tap: Arc<dyn Tap>) -> Self {
        Self(RwLock::new(tap))
    }

    pub fn set(&self, tap: Arc<dyn Tap>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = tap;
    }

    fn get(&self) -> Arc<dyn Tap> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Tap for TapSwitch {
    async fn on_message(&self, msg: &Message) -> Result<(), TapError> {
        self.get().on_message(msg).await
    }

    async fn on_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        self.get().on_batch(msgs).await
    }
}

/// The uplink's [`Local`]: the broker current now.
pub struct LocalSwitch(RwLock<Arc<Broker>>);

impl LocalSwitch {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self(RwLock::new(broker))
    }

    pub fn set(&self, broker: Arc<Broker>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = broker;
    }
}

#[async_trait]
impl Local for LocalSwitch {
    async fn publish(&self, msg: Message) -> Result<(), BrokerError> {
        let broker = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        broker.publish(msg).await
    }

    fn follow(&self, filter: &str) -> Option<tokio::sync::mpsc::Receiver<Message>> {
        let broker = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        broker.follow(filter)
    }
}
