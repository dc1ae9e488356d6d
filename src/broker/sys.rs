//! `$SYS/broker/...`: the broker's statistics as retained messages, under Mosquitto's names, so
//! MQTT Explorer and existing dashboards show them.
//!
//! Published every `sys_interval` (Mosquitto's default is 10 s), each topic only when its value
//! changed (the version once). Values are plain text, as Mosquitto writes them.
//!
//! Differences from Mosquitto, by design of what is measured here: `messages/*` and `bytes/*`
//! count PUBLISH packets (Mosquitto also counts CONNECT, SUBSCRIBE, PINGREQ, ...), and bytes
//! are computed from the packets' fields rather than read off the socket. `load/*` averages,
//! `heap/*` and `store/*` are not published.
//!
//! Invariant: `$SYS` messages come from the broker itself; they never pass the uplink tap, and
//! the MQTT rule that `#` and `+` do not match `$` topics keeps them away from wildcard
//! subscribers (they need `$SYS/#`).

use std::collections::HashMap;

use super::stats::BrokerStatus;

/// The `$SYS` topics and their values for `status`.
pub fn values(status: &BrokerStatus, version: &str) -> Vec<(&'static str, String)> {
    let c = &status.counters;
    let connected = u64::try_from(c.clients_connected.max(0)).unwrap_or(0);
    let disconnected = status.sessions.saturating_sub(connected);
    vec![
        ("$SYS/broker/version", version.to_owned()),
        ("$SYS/broker/uptime", format!("{} seconds", c.uptime_secs)),
        ("$SYS/broker/clients/connected", connected.to_string()),
        ("$SYS/broker/clients/active", connected.to_string()),
        ("$SYS/broker/clients/disconnected", disconnected.to_string()),
        ("$SYS/broker/clients/inactive", disconnected.to_string()),
        (
            "$SYS/broker/clients/total",
            status.sessions.max(connected).to_string(),
        ),
        (
            "$SYS/broker/clients/maximum",
            c.clients_maximum.max(0).to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            c.messages_received.to_string(),
        ),
        ("$SYS/broker/messages/sent", c.messages_sent.to_string()),
        (
            "$SYS/broker/publish/messages/received",
            c.messages_received.to_string(),
        ),
        (
            "$SYS/broker/publish/messages/sent",
            c.messages_sent.to_string(),
        ),
        (
            "$SYS/broker/publish/messages/dropped",
            (c.dropped_queue_full + c.dropped_other).to_string(),
        ),
        ("$SYS/broker/bytes/received", c.bytes_received.to_string()),
        ("$SYS/broker/bytes/sent", c.bytes_sent.to_string()),
        (
            "$SYS/broker/publish/bytes/received",
            c.bytes_received.to_string(),
        ),
        ("$SYS/broker/publish/bytes/sent", c.bytes_sent.to_string()),
        (
            "$SYS/broker/subscriptions/count",
            status.subscriptions.to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            status.retained.to_string(),
        ),
    ]
}

/// Remembers what was last published, so only changes go out.
#[derive(Debug, Default)]
pub struct Changes {
    last: HashMap<&'static str, String>,
}

impl Changes {
    /// The entries of `values` that differ from the last call.
    pub fn changed(&mut self, values: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        values
            .into_iter()
            .filter(|(topic, value)| {
                if self.last.get(topic) == Some(value) {
                    return false;
                }
                self.last.insert(topic, value.clone());
                true
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::stats::StatsSnapshot;

    #[test]
    fn mosquitto_names_and_only_changes() {
        let mut status = BrokerStatus {
            counters: StatsSnapshot {
                uptime_secs: 12,
                clients_connected: 2,
                clients_maximum: 5,
                messages_received: 7,
                ..StatsSnapshot::default()
            },
            sessions: 3,
            subscriptions: 4,
            retained: 9,
        };
        let all = values(&status, "ferrule 1");
        let get = |t: &str| {
            all.iter()
                .find(|(topic, _)| *topic == t)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("$SYS/broker/uptime"), "12 seconds");
        assert_eq!(get("$SYS/broker/clients/connected"), "2");
        assert_eq!(get("$SYS/broker/clients/disconnected"), "1");
        assert_eq!(get("$SYS/broker/clients/total"), "3");
        assert_eq!(get("$SYS/broker/clients/maximum"), "5");
        assert_eq!(get("$SYS/broker/messages/received"), "7");
        assert_eq!(get("$SYS/broker/subscriptions/count"), "4");
        assert_eq!(get("$SYS/broker/retained messages/count"), "9");
        let mut changes = Changes::default();
        assert_eq!(changes.changed(all.clone()).len(), all.len());
        status.counters.uptime_secs = 22;
        let next = changes.changed(values(&status, "ferrule 1"));
        assert_eq!(next, vec![("$SYS/broker/uptime", "22 seconds".to_owned())]);
    }
}
