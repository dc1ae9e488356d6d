//! Forward rules: which messages of the local broker go upstream, and the tap that queues them.
//!
//! Invariants:
//! - a message matching at least one rule is committed to the queue before the tap returns, so
//!   the publisher's PUBACK (or the agent's next step) comes only after the commit;
//! - when several rules match, the message is queued once, with the highest of their QoS;
//! - messages that came down from the upstream broker are never forwarded back up (no loops).

use async_trait::async_trait;
use tracing::error;

use crate::broker::{Message, Origin, Tap, TapError};
use crate::config::{ForwardRule, Qos};
use crate::errors::Chain;
use crate::store::{Queue, Record};
use crate::topics;

/// The upstream QoS for `topic`, if any rule forwards it.
pub fn route(rules: &[ForwardRule], topic: &str) -> Option<Qos> {
    rules
        .iter()
        .filter(|r| topics::matches(&r.local, topic))
        .map(|r| r.qos)
        .max()
}

/// The broker tap that feeds the store-and-forward queue.
pub struct Forwarder {
    rules: Vec<ForwardRule>,
    queue: Queue,
}

impl Forwarder {
    pub fn new(rules: Vec<ForwardRule>, queue: Queue) -> Self {
        Self { rules, queue }
    }

    fn record(&self, msg: &Message) -> Option<Record> {
        if msg.origin == Origin::Downlink {
            return None;
        }
        let qos = route(&self.rules, &msg.topic)?;
        Some(Record {
            topic: msg.topic.clone(),
            payload: msg.payload.clone(),
            qos: qos.level(),
            retain: msg.retain,
        })
    }
}

#[async_trait]
impl Tap for Forwarder {
    async fn on_message(&self, msg: &Message) -> Result<(), TapError> {
        let Some(record) = self.record(msg) else {
            return Ok(());
        };
        match self.queue.enqueue(record).await {
            Ok(_) => Ok(()),
            Err(e) => {
                error!(topic = %msg.topic, error = %Chain(&e), "cannot queue message for the uplink");
                Err(TapError(format!("uplink queue unavailable: {}", Chain(&e))))
            }
        }
    }

    async fn on_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        let records: Vec<Record> = msgs.iter().filter_map(|m| self.record(m)).collect();
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        match self.queue.enqueue_many(records).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Agent data still reaches local subscribers; the loss upstream is reported.
                error!(messages = n, error = %Chain(&e), "cannot queue agent messages for the uplink; they are not forwarded");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(local: &str, qos: Qos) -> ForwardRule {
        ForwardRule {
            local: local.into(),
            qos,
        }
    }

    #[test]
    fn highest_qos_of_matching_rules() {
        let rules = [
            rule("plant/#", Qos::AtMostOnce),
            rule("plant/+/temp", Qos::ExactlyOnce),
        ];
        assert_eq!(route(&rules, "plant/boiler/temp"), Some(Qos::ExactlyOnce));
        assert_eq!(
            route(&rules, "plant/boiler/pressure"),
            Some(Qos::AtMostOnce)
        );
        assert_eq!(route(&rules, "other/x"), None);
        assert_eq!(route(&[], "plant/x"), None);
    }
}
