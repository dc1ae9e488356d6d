//! Where the uplink publishes locally ([`Local`]): downlink messages and its own state go to
//! the embedded broker in the agent, nowhere ([`NoLocal`]) in benchmarks and tests.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::broker::{Broker, BrokerError, Message};

/// Messages the Sparkplug edge node's value cache may lag behind the local broker.
const FOLLOW_BACKLOG: usize = 4096;

/// Where the uplink publishes locally: downlink messages and its own state. The embedded
/// broker in the agent; something else in benchmarks and tests.
#[async_trait]
pub trait Local: Send + Sync + 'static {
    async fn publish(&self, msg: Message) -> Result<(), BrokerError>;

    /// The local messages matching `filter`, as they are published (for the Sparkplug edge
    /// node's births); `None` where there is no local broker.
    fn follow(&self, _filter: &str) -> Option<mpsc::Receiver<Message>> {
        None
    }
}

#[async_trait]
impl Local for Broker {
    async fn publish(&self, msg: Message) -> Result<(), BrokerError> {
        Broker::publish(self, msg).await
    }

    fn follow(&self, filter: &str) -> Option<mpsc::Receiver<Message>> {
        Some(self.subscribe(filter, FOLLOW_BACKLOG))
    }
}

/// A [`Local`] that takes everything and keeps nothing (no local broker).
#[derive(Debug, Default)]
pub struct NoLocal;

#[async_trait]
impl Local for NoLocal {
    async fn publish(&self, _msg: Message) -> Result<(), BrokerError> {
        Ok(())
    }
}
