//! [`Publish`]: the one thing the field pollers and the command path need of the broker, so
//! that they can be tested with an in-memory publisher (`Recorder`, tests only) instead of a
//! running broker.

use async_trait::async_trait;

use super::{Broker, BrokerError, Message};

/// Publishes the agent's own messages (point states, device states, command results).
#[async_trait]
pub trait Publish: Send + Sync + 'static {
    /// Publishes `msgs` in order, passing the ones the uplink forwards to its queue as one
    /// batch (one durable commit); an error means the batch was refused by that queue.
    async fn publish_batch(&self, msgs: Vec<Message>) -> Result<(), BrokerError>;
}

#[async_trait]
impl Publish for Broker {
    async fn publish_batch(&self, msgs: Vec<Message>) -> Result<(), BrokerError> {
        Broker::publish_batch(self, msgs).await
    }
}

/// An in-memory [`Publish`] for unit tests: every message published, in order, on a channel.
#[cfg(test)]
#[derive(Debug)]
pub struct Recorder {
    tx: tokio::sync::mpsc::UnboundedSender<Message>,
}

#[cfg(test)]
impl Recorder {
    /// The recorder and the receiving end of what it records.
    pub fn new() -> (
        std::sync::Arc<Self>,
        tokio::sync::mpsc::UnboundedReceiver<Message>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (std::sync::Arc::new(Self { tx }), rx)
    }
}

#[cfg(test)]
#[async_trait]
impl Publish for Recorder {
    async fn publish_batch(&self, msgs: Vec<Message>) -> Result<(), BrokerError> {
        for m in msgs {
            // The test may have stopped listening; what it did not read does not matter.
            let _ = self.tx.send(m);
        }
        Ok(())
    }
}
