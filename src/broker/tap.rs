//! The tap: what sees every message entering the broker before delivery (the uplink's
//! forwarder), and may refuse it; [`NoTap`] when there is no uplink.

use async_trait::async_trait;

use super::message::Message;

/// Why the tap refused a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TapError(pub String);

/// Sees every message entering the broker before delivery (see the module invariants).
#[async_trait]
pub trait Tap: Send + Sync + 'static {
    /// Whether messages on `topic` concern the tap at all (when not, [`Tap::on_message`] is
    /// not called: no conversion, no await on the publish path).
    fn wants(&self, _topic: &str) -> bool {
        true
    }

    /// Accept (`Ok`) or refuse the message. Awaited before the publisher's acknowledgement.
    async fn on_message(&self, msg: &Message) -> Result<(), TapError>;

    /// Accept or refuse a batch of agent messages at once (e.g. one durable commit).
    async fn on_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        for msg in msgs {
            self.on_message(msg).await?;
        }
        Ok(())
    }
}

/// A tap that accepts everything (no uplink).
#[derive(Debug, Default)]
pub struct NoTap;

#[async_trait]
impl Tap for NoTap {
    fn wants(&self, _topic: &str) -> bool {
        false
    }

    async fn on_message(&self, _msg: &Message) -> Result<(), TapError> {
        Ok(())
    }
}
