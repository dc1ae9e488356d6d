//! Downlink: upstream subscriptions whose messages are published into the local broker, so the
//! cloud can send commands (their results go back up through the queue like any agent message).
//!
//! Invariants:
//! - a downlink message enters the local broker with [`Origin::Downlink`], which the forward
//!   tap never queues: nothing that came down goes back up (no loops);
//! - the first rule whose `remote` filter matches names the local topic (its `local` template,
//!   or the same topic);
//! - retained messages that the upstream broker sends because a subscription was made (retain
//!   flag set on delivery) are skipped unless the rule says `retained: true`: a retained
//!   command would otherwise be applied again at every reconnect. MQTT 5 subscriptions ask the
//!   broker not to send them at all;
//! - the session is clean: commands sent while the gateway is offline are not applied late.

use crate::broker::{Message, Origin};
use crate::config::DownlinkRule;
use crate::topics;

use super::session::{Incoming, Subscription};

/// The downlink rules of an uplink.
#[derive(Debug, Clone, Default)]
pub(crate) struct Downlinks {
    rules: Vec<DownlinkRule>,
}

/// Why an upstream message is not published locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Skip {
    /// No rule matches its topic (the broker sent something not subscribed to).
    NoRule,
    /// A retained message sent at subscription time, and the rule does not want those.
    Retained,
    /// The local topic would not be a valid one.
    BadLocalTopic(String),
}

impl Downlinks {
    pub(crate) fn new(rules: Vec<DownlinkRule>) -> Self {
        Self { rules }
    }

    /// The SUBSCRIBE to send at every connect.
    pub(crate) fn subscriptions(&self) -> Vec<Subscription> {
        self.rules
            .iter()
            .map(|r| Subscription {
                filter: r.remote.clone(),
                qos: r.qos,
                retained: r.retained,
            })
            .collect()
    }

    /// The local message for an upstream one.
    pub(crate) fn map(&self, incoming: &Incoming) -> Result<Message, Skip> {
        let rule = self
            .rules
            .iter()
            .find(|r| topics::matches(&r.remote, &incoming.topic))
            .ok_or(Skip::NoRule)?;
        if incoming.retain && !rule.retained {
            return Err(Skip::Retained);
        }
        let topic = match &rule.local {
            Some(template) => template.render(&incoming.topic),
            None => incoming.topic.clone(),
        };
        if topic.is_empty() || topic.starts_with('$') || topic.contains(['+', '#', '\0']) {
            return Err(Skip::BadLocalTopic(topic));
        }
        Ok(Message {
            topic,
            payload: incoming.payload.clone(),
            qos: incoming.qos,
            retain: incoming.retain,
            origin: Origin::Downlink,
            response_topic: incoming.response_topic.clone(),
            correlation_data: incoming.correlation_data.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::{Qos, Template};

    fn rule(remote: &str, local: Option<&str>, retained: bool) -> DownlinkRule {
        DownlinkRule {
            remote: remote.into(),
            local: local.map(|t| Template::parse(t).expect("template")),
            qos: Qos::AtLeastOnce,
            retained,
        }
    }

    fn incoming(topic: &str, retain: bool) -> Incoming {
        Incoming {
            topic: topic.into(),
            payload: Bytes::from_static(b"42"),
            qos: Qos::AtLeastOnce,
            retain,
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"c1")),
        }
    }

    #[test]
    fn maps_by_the_first_matching_rule_and_marks_the_origin() {
        let d = Downlinks::new(vec![
            rule("cmd/gw1/+/+", Some("plant1/{3}/{4}/set"), false),
            rule("plant1/+/+/set", None, false),
        ]);
        let m = d
            .map(&incoming("cmd/gw1/boiler/sp", false))
            .expect("mapped");
        assert_eq!(m.topic, "plant1/boiler/sp/set");
        assert_eq!(m.origin, Origin::Downlink);
        assert_eq!(m.response_topic.as_deref(), Some("reply/here"));
        assert_eq!(m.correlation_data.as_deref(), Some(&b"c1"[..]));
        let same = d
            .map(&incoming("plant1/boiler/sp/set", false))
            .expect("mapped");
        assert_eq!(same.topic, "plant1/boiler/sp/set");
        assert_eq!(d.map(&incoming("other/x", false)), Err(Skip::NoRule));
        let subs = d.subscriptions();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].filter, "cmd/gw1/+/+");
    }

    #[test]
    fn retained_messages_need_the_rule_to_want_them() {
        let no = Downlinks::new(vec![rule("a/#", None, false)]);
        assert_eq!(no.map(&incoming("a/b", true)), Err(Skip::Retained));
        let yes = Downlinks::new(vec![rule("a/#", None, true)]);
        assert!(yes.map(&incoming("a/b", true)).is_ok_and(|m| m.retain));
    }

    #[test]
    fn local_topics_must_be_valid() {
        let d = Downlinks::new(vec![rule("+/x", Some("{1}/y"), false)]);
        assert_eq!(
            d.map(&incoming("/x", false)),
            Ok(Message {
                topic: "/y".into(),
                ..d.map(&incoming("/x", false)).expect("valid")
            })
        );
        let d = Downlinks::new(vec![rule("a/#", Some("{topic}"), false)]);
        assert!(d.map(&incoming("a/b", false)).is_ok());
        let d = Downlinks::new(vec![rule("$aws/#", Some("{topic}"), false)]);
        assert!(matches!(
            d.map(&incoming("$aws/x", false)),
            Err(Skip::BadLocalTopic(_))
        ));
    }
}
