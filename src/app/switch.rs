//! The indirection that lets a reload replace the broker's tap (the uplink's forward rules)
//! under the running broker (the broker itself is never replaced: a reload applies its new
//! section in place).
//!
//! Invariant: a message goes through the tap current when it arrives; a replacement takes
//! effect for the next message.

use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use crate::broker::{Message, Tap, TapError};

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
    fn wants(&self, topic: &str) -> bool {
        self.get().wants(topic)
    }

    async fn on_message(&self, msg: &Message) -> Result<(), TapError> {
        self.get().on_message(msg).await
    }

    async fn on_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        self.get().on_batch(msgs).await
    }
}
