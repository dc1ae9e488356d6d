//! `$SYS/broker/...`: the broker's statistics as retained messages, under Mosquitto 2.0's names
//! and formats (every topic it publishes, the `load/...` averages included), so MQTT Explorer
//! and existing dashboards show them.
//!
//! Published every `sys_interval` (Mosquitto's default is 10 s), each topic only when its value
//! changed (the version once; load averages when they move by 0.01 or more, as Mosquitto).
//!
//! Semantics, where Mosquitto's need saying: `messages/*` count every MQTT packet, and
//! `bytes/*` every byte on the wire; `publish/*` count PUBLISH packets only. `load/*/1min` (5min,
//! 15min) are per-minute rates averaged exponentially over that window, as Mosquitto computes
//! them. `heap/*` are the process's anonymous resident memory (ferrule does not count its own
//! allocations); `store/messages/*` are the messages held in session queues.
//!
//! Invariant: `$SYS` messages come from the broker itself; they never pass the uplink tap, and
//! the MQTT rule that `#` and `+` do not match `$` topics keeps them away from wildcard
//! subscribers (they need `$SYS/#`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::codec::{PublishProps, QoS};
use super::engine::Engine;
use super::message::{Publication, Publisher};
use super::stats::{BrokerStatus, StatsSnapshot};

/// The figures behind `$SYS`, at a moment.
pub(super) fn status(engine: &Engine) -> BrokerStatus {
    let f = engine.figures();
    let counters = engine.stats.snapshot();
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    BrokerStatus {
        counters,
        sessions: as_u64(f.sessions),
        subscriptions: as_u64(f.subscriptions),
        shared_subscriptions: as_u64(f.shared_groups),
        retained: as_u64(f.retained),
        stored_messages: as_u64(f.queued),
        stored_bytes: f.queued_bytes,
        heap: anonymous_rss(),
    }
}

/// Anonymous resident memory of this process in bytes (`RssAnon` of /proc/self/status).
fn anonymous_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The `load/...` averages: one exponential average per counter and window.
#[derive(Debug, Default)]
pub(super) struct Loads {
    last: Option<(Instant, [u64; LOADS.len()])>,
    averages: [[f64; 3]; LOADS.len()],
}

/// The counters Mosquitto publishes a load for, under their topic names.
const LOADS: [&str; 9] = [
    "messages/received",
    "messages/sent",
    "bytes/received",
    "bytes/sent",
    "publish/received",
    "publish/sent",
    "publish/dropped",
    "connections",
    "sockets",
];
const WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

fn load_counters(c: &StatsSnapshot) -> [u64; LOADS.len()] {
    [
        c.packets_received,
        c.packets_sent,
        c.net_bytes_received,
        c.net_bytes_sent,
        c.messages_received,
        c.messages_sent,
        c.dropped(),
        c.connects,
        c.sockets,
    ]
}

impl Loads {
    /// Updates the averages with the counters now; returns `(topic, value)` for each.
    fn update(&mut self, now: Instant, c: &StatsSnapshot) -> Vec<(String, f64)> {
        let counters = load_counters(c);
        if let Some((then, before)) = self.last {
            let secs = now.duration_since(then).as_secs_f64().max(0.001);
            for (i, (&n, &b)) in counters.iter().zip(before.iter()).enumerate() {
                let per_minute = (n.saturating_sub(b)) as f64 * 60.0 / secs;
                for (w, (_, window)) in WINDOWS.iter().enumerate() {
                    let exponent = (-secs / window).exp();
                    let avg = &mut self.averages[i][w];
                    *avg = per_minute + exponent * (*avg - per_minute);
                }
            }
        }
        self.last = Some((now, counters));
        let mut out = Vec::with_capacity(LOADS.len() * WINDOWS.len());
        for (i, name) in LOADS.iter().enumerate() {
            for (w, (window, _)) in WINDOWS.iter().enumerate() {
                out.push((
                    format!("$SYS/broker/load/{name}/{window}"),
                    self.averages[i][w],
                ));
            }
        }
        out
    }
}

/// The `$SYS` topics (without the load averages) and their values for `status`.
pub(super) fn values(status: &BrokerStatus, version: &str) -> Vec<(String, String)> {
    let c = &status.counters;
    let connected = u64::try_from(c.clients_connected.max(0)).unwrap_or(0);
    let disconnected = status.sessions.saturating_sub(connected);
    let list: [(&str, String); 26] = [
        ("version", version.to_owned()),
        ("uptime", format!("{} seconds", c.uptime_secs)),
        ("clients/total", status.sessions.max(connected).to_string()),
        ("clients/inactive", disconnected.to_string()),
        ("clients/disconnected", disconnected.to_string()),
        ("clients/active", connected.to_string()),
        ("clients/connected", connected.to_string()),
        ("clients/expired", c.sessions_expired.to_string()),
        ("clients/maximum", c.clients_maximum.max(0).to_string()),
        ("messages/stored", status.stored_messages.to_string()),
        ("messages/received", c.packets_received.to_string()),
        ("messages/sent", c.packets_sent.to_string()),
        ("store/messages/count", status.stored_messages.to_string()),
        ("store/messages/bytes", status.stored_bytes.to_string()),
        ("subscriptions/count", status.subscriptions.to_string()),
        (
            "shared_subscriptions/count",
            status.shared_subscriptions.to_string(),
        ),
        ("retained messages/count", status.retained.to_string()),
        ("heap/current", status.heap.to_string()),
        ("heap/maximum", c.heap_maximum.max(status.heap).to_string()),
        ("publish/messages/dropped", c.dropped().to_string()),
        ("publish/messages/received", c.messages_received.to_string()),
        ("publish/messages/sent", c.messages_sent.to_string()),
        ("publish/bytes/received", c.bytes_received.to_string()),
        ("publish/bytes/sent", c.bytes_sent.to_string()),
        ("bytes/received", c.net_bytes_received.to_string()),
        ("bytes/sent", c.net_bytes_sent.to_string()),
    ];
    list.into_iter()
        .map(|(t, v)| (format!("$SYS/broker/{t}"), v))
        .collect()
}

/// Remembers what was last published, so only changes go out.
#[derive(Debug, Default)]
pub(super) struct Changes {
    last: HashMap<String, String>,
    loads: HashMap<String, f64>,
}

impl Changes {
    /// The entries of `values` that differ from the last call.
    pub fn changed(&mut self, values: Vec<(String, String)>) -> Vec<(String, String)> {
        values
            .into_iter()
            .filter(|(topic, value)| {
                if self.last.get(topic) == Some(value) {
                    return false;
                }
                self.last.insert(topic.clone(), value.clone());
                true
            })
            .collect()
    }

    /// Load averages that moved by 0.01 or more (or are new), formatted as Mosquitto does.
    fn loads(&mut self, loads: Vec<(String, f64)>) -> Vec<(String, String)> {
        loads
            .into_iter()
            .filter(|(topic, value)| match self.loads.get(topic) {
                Some(old) if (old - value).abs() < 0.01 => false,
                _ => {
                    self.loads.insert(topic.clone(), *value);
                    true
                }
            })
            .map(|(topic, value)| (topic, format!("{value:.2}")))
            .collect()
    }
}

/// Publishes `$SYS` every `every` until `stop`.
pub(super) async fn run(engine: Arc<Engine>, every: Duration, stop: CancellationToken) {
    let mut changes = Changes::default();
    let mut loads = Loads::default();
    let mut tick = tokio::time::interval(every);
    let version = version();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = status(&engine);
        engine.stats.heap_seen(now.heap);
        let mut out = changes.changed(values(&now, &version));
        out.extend(changes.loads(loads.update(Instant::now(), &now.counters)));
        for (topic, value) in out {
            let msg = Publication::new(
                topic.into(),
                Bytes::from(value),
                QoS::AtMostOnce,
                true,
                PublishProps::default(),
                Publisher::System,
            );
            engine.publish_tapped(Arc::new(msg)).await;
        }
    }
}

/// The version `$SYS/broker/version` shows.
pub(super) fn version() -> String {
    format!("ferrule {}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ..BrokerStatus::default()
        };
        let all = values(&status, "ferrule 1");
        let get = |t: &str| {
            all.iter()
                .find(|(topic, _)| topic == t)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("$SYS/broker/uptime"), "12 seconds");
        assert_eq!(get("$SYS/broker/clients/connected"), "2");
        assert_eq!(get("$SYS/broker/clients/disconnected"), "1");
        assert_eq!(get("$SYS/broker/clients/total"), "3");
        assert_eq!(get("$SYS/broker/clients/maximum"), "5");
        assert_eq!(get("$SYS/broker/publish/messages/received"), "7");
        assert_eq!(get("$SYS/broker/subscriptions/count"), "4");
        assert_eq!(get("$SYS/broker/retained messages/count"), "9");
        let mut changes = Changes::default();
        assert_eq!(changes.changed(all.clone()).len(), all.len());
        status.counters.uptime_secs = 22;
        let next = changes.changed(values(&status, "ferrule 1"));
        assert_eq!(
            next,
            vec![("$SYS/broker/uptime".to_owned(), "22 seconds".to_owned())]
        );
    }

    #[test]
    fn every_topic_mosquitto_publishes_is_there() {
        let mut loads = Loads::default();
        let c = StatsSnapshot::default();
        let topics =
            values(&BrokerStatus::default(), "v").len() + loads.update(Instant::now(), &c).len();
        assert_eq!(topics, 53, "Mosquitto 2.0 publishes 53 $SYS topics");
    }

    #[test]
    fn load_averages_are_per_minute_rates_smoothed_per_window() {
        let mut loads = Loads::default();
        let t0 = Instant::now();
        let mut c = StatsSnapshot::default();
        loads.update(t0, &c);
        c.connects = 60;
        let out = loads.update(t0 + Duration::from_secs(60), &c);
        let get = |name: &str| out.iter().find(|(t, _)| t.ends_with(name)).map(|(_, v)| *v);
        // 60 connects in a minute: 60/min; the 1 min average moves 1 - e^-1 of the way there.
        let one = get("load/connections/1min").expect("1min");
        assert!((one - 60.0 * (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{one}");
        let fifteen = get("load/connections/15min").expect("15min");
        assert!(fifteen > 0.0 && fifteen < one);
        let mut changes = Changes::default();
        let first = changes.loads(out.clone());
        assert_eq!(first.len(), 27);
        assert!(
            changes.loads(out).is_empty(),
            "unchanged values are not sent again"
        );
    }
}
