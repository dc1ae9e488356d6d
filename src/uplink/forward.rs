//! Forward rules: which messages of the local broker go upstream, under which topic, and the
//! tap that queues them.
//!
//! Invariants:
//! - a message matching at least one rule is committed to the queue before the tap returns, so
//!   the publisher's PUBACK/PUBREC (or the agent's next step) comes only after the commit; when
//!   the queue refuses it (`on_full: reject_new`, or it is larger than `max_bytes`) a LAN
//!   client's publish is refused (MQTT 5 reason code 0x97, MQTT 3.1.1 connection closed), never
//!   acknowledged as accepted (the agent's own messages are delivered locally all the same:
//!   only their trip upstream is lost, and counted);
//! - every matching rule forwards the message, under its upstream topic (`remote` template or
//!   prefix, else the local topic); rules that give the same upstream topic queue it once, with
//!   the highest of their QoS, retained if any of them passes the retain flag through;
//! - the upstream topic is decided when the message is queued (what `ferrule queue peek`
//!   shows is what will be sent);
//! - messages that came down from the upstream broker are never forwarded back up, and neither
//!   is a message whose upstream topic matches a downlink subscription: it would come straight
//!   back down (MQTT 3.1.1 has no "no local" subscription option). No loops.

use async_trait::async_trait;
use tracing::error;

use crate::broker::{Message, Origin, Tap, TapError};
use crate::config::{ForwardRule, Qos};
use crate::errors::Chain;
use crate::store::{Queue, Record, StoreError};
use crate::topics;

/// The records a local message becomes upstream: one per distinct upstream topic.
pub fn route(rules: &[ForwardRule], downlink_filters: &[String], msg: &Message) -> Vec<Record> {
    if msg.origin == Origin::Downlink {
        return Vec::new();
    }
    let mut out: Vec<(Record, Qos)> = Vec::new();
    for rule in rules
        .iter()
        .filter(|r| topics::matches(&r.local, &msg.topic))
    {
        let topic = match &rule.remote {
            Some(template) => template.render(&msg.topic),
            None => msg.topic.clone(),
        };
        if downlink_filters.iter().any(|f| topics::matches(f, &topic)) {
            continue;
        }
        let retain = rule.retain && msg.retain;
        match out.iter_mut().find(|(r, _)| r.topic == topic) {
            Some((r, qos)) => {
                *qos = (*qos).max(rule.qos);
                r.retain |= retain;
            }
            None => out.push((
                Record {
                    topic,
                    payload: msg.payload.clone(),
                    qos: 0,
                    retain,
                },
                rule.qos,
            )),
        }
    }
    out.into_iter()
        .map(|(mut r, qos)| {
            r.qos = qos.level();
            r
        })
        .collect()
}

/// The broker tap that feeds the store-and-forward queue.
pub struct Forwarder {
    rules: Vec<ForwardRule>,
    downlink_filters: Vec<String>,
    queue: Queue,
}

impl Forwarder {
    /// `downlink_filters`: the upstream subscriptions, whose topics are never sent up.
    pub fn new(rules: Vec<ForwardRule>, downlink_filters: Vec<String>, queue: Queue) -> Self {
        Self {
            rules,
            downlink_filters,
            queue,
        }
    }
}

#[async_trait]
impl Tap for Forwarder {
    /// Only topics some rule forwards: the broker skips the tap (no conversion, no await) for
    /// the rest.
    fn wants(&self, topic: &str) -> bool {
        self.rules.iter().any(|r| topics::matches(&r.local, topic))
    }

    async fn on_message(&self, msg: &Message) -> Result<(), TapError> {
        let records = route(&self.rules, &self.downlink_filters, msg);
        if records.is_empty() {
            return Ok(());
        }
        match self.queue.enqueue_many(records).await {
            Ok(_) => Ok(()),
            // The agent's own messages still reach local subscribers; counted and logged
            // (rate-limited) by the queue.
            Err(e) if e.is_refusal() && msg.origin == Origin::Agent => Ok(()),
            // A LAN client's publish is refused: it keeps the message.
            Err(e) if e.is_refusal() => Err(TapError(e.to_string())),
            Err(e) => {
                error!(topic = %msg.topic, error = %Chain(&e), "cannot queue message for the uplink");
                Err(TapError(format!("uplink queue unavailable: {}", Chain(&e))))
            }
        }
    }

    async fn on_batch(&self, msgs: &[Message]) -> Result<(), TapError> {
        let records: Vec<Record> = msgs
            .iter()
            .flat_map(|m| route(&self.rules, &self.downlink_filters, m))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        match self.queue.enqueue_many(records).await {
            Ok(_) => Ok(()),
            // Agent data still reaches local subscribers; the loss upstream is counted and
            // logged by the queue.
            Err(e @ (StoreError::Full { .. } | StoreError::TooLarge { .. })) => {
                tracing::debug!(messages = n, error = %e, "agent messages not queued for the uplink");
                Ok(())
            }
            Err(e) => {
                error!(messages = n, error = %Chain(&e), "cannot queue agent messages for the uplink; they are not forwarded");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Template;

    fn rule(local: &str, remote: Option<&str>, qos: Qos, retain: bool) -> ForwardRule {
        ForwardRule {
            local: local.into(),
            remote: remote.map(|t| Template::parse(t).expect("template")),
            qos,
            retain,
        }
    }

    fn msg(topic: &str, retain: bool) -> Message {
        let mut m = Message::agent(topic.into(), "x", Qos::AtLeastOnce, retain);
        m.origin = Origin::Client {
            client_id: "c".into(),
            username: None,
            addr: None,
        };
        m
    }

    fn routed(rules: &[ForwardRule], m: &Message) -> Vec<(String, u8, bool)> {
        route(rules, &[], m)
            .into_iter()
            .map(|r| (r.topic, r.qos, r.retain))
            .collect()
    }

    #[test]
    fn rules_with_the_same_upstream_topic_merge_with_the_highest_qos() {
        let rules = [
            rule("plant/#", None, Qos::AtMostOnce, true),
            rule("plant/+/temp", None, Qos::ExactlyOnce, false),
        ];
        assert_eq!(
            routed(&rules, &msg("plant/boiler/temp", true)),
            [("plant/boiler/temp".into(), 2, true)]
        );
        assert_eq!(
            routed(&rules, &msg("plant/boiler/pressure", false)),
            [("plant/boiler/pressure".into(), 0, false)]
        );
        assert!(routed(&rules, &msg("other/x", false)).is_empty());
        assert!(routed(&[], &msg("plant/x", false)).is_empty());
    }

    #[test]
    fn each_upstream_topic_gets_its_own_record_and_retain_per_rule() {
        let rules = [
            rule("plant1/#", Some("factory/eu"), Qos::AtLeastOnce, true),
            rule(
                "plant1/+/alarm",
                Some("alarms/{2}"),
                Qos::ExactlyOnce,
                false,
            ),
        ];
        assert_eq!(
            routed(&rules, &msg("plant1/boiler/alarm", true)),
            [
                ("factory/eu/plant1/boiler/alarm".into(), 1, true),
                ("alarms/boiler".into(), 2, false)
            ]
        );
    }

    #[test]
    fn nothing_that_came_down_or_would_come_back_down_goes_up() {
        let rules = [rule("plant1/#", None, Qos::AtLeastOnce, true)];
        let mut down = msg("plant1/boiler/sp/set", false);
        down.origin = Origin::Downlink;
        assert!(route(&rules, &[], &down).is_empty());
        let downlinks = ["plant1/+/+/set".to_owned()];
        let local_command = msg("plant1/boiler/sp/set", false);
        assert!(route(&rules, &downlinks, &local_command).is_empty());
        let result = msg("plant1/boiler/sp/set/result", false);
        assert_eq!(route(&rules, &downlinks, &result).len(), 1);
    }
}

#[cfg(test)]
mod tap_tests {
    use super::*;
    use crate::config::{Durability, OnFull};
    use crate::store::Limits;

    #[tokio::test]
    async fn a_full_queue_refuses_clients_but_not_the_agents_local_delivery(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let limits = Limits {
            max_messages: Some(1),
            on_full: OnFull::RejectNew,
            ..Limits::default()
        };
        let queue = Queue::open_with(&dir.path().join("q.db"), Durability::Normal, limits)?;
        let rules = vec![ForwardRule {
            local: "p/#".into(),
            remote: None,
            qos: Qos::AtLeastOnce,
            retain: true,
        }];
        let tap = Forwarder::new(rules, vec![], queue.clone());
        let mut client = Message::agent("p/a".into(), "1", Qos::AtLeastOnce, false);
        client.origin = Origin::Client {
            client_id: "c".into(),
            username: None,
            addr: None,
        };
        tap.on_message(&client).await?;
        let refused = tap.on_message(&client).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.0.contains("full")),
            "{refused:?}"
        );
        let agent = Message::agent("p/$agent/state".into(), "online", Qos::AtLeastOnce, true);
        tap.on_message(&agent).await?;
        tap.on_batch(std::slice::from_ref(&agent)).await?;
        let counted = queue.counters().messages;
        assert_eq!(counted.get(crate::store::Counter::RejectedFull), 3);
        assert_eq!(queue.stats().await?.depth, 1);
        queue.close().await?;
        Ok(())
    }
}
