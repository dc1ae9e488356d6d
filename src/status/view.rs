//! The page's document: everything the page shows, as one JSON object, built from the
//! catalog, the live state, the metrics and the broker's clients (pure: time passed in).
//!
//! Invariants: device and point rows follow the config's order; events are newest first; a
//! value never seen is `null` with quality `unknown`.

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value as Json};

use super::catalog::Catalog;
use super::live::Live;
use crate::broker::ClientInfo;
use crate::field::breaker::THRESHOLD;
use crate::health::metrics::{DeviceSnapshot, Snapshot};
use crate::health::ErrorKind;
use crate::store::Counter;
use crate::topics::Topics;

/// Rates over the last second, computed by the hub.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    pub messages_in: f64,
    pub messages_out: f64,
    pub drained: f64,
    /// Requests per poll cycle seen in the last interval, by device name.
    pub requests_per_cycle: Vec<(String, f64)>,
}

/// Everything [`render`] reads.
pub struct Inputs<'a> {
    pub site: &'a str,
    pub catalog: &'a Catalog,
    pub topics: &'a Topics,
    pub live: &'a Live,
    pub metrics: Option<&'a Snapshot>,
    pub clients: &'a [ClientInfo],
    pub rates: &'a Rates,
    pub now: SystemTime,
}

pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn age_ms(now: SystemTime, then: SystemTime) -> u64 {
    now.duration_since(then)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// The document, serialised.
pub fn render(i: &Inputs<'_>) -> String {
    let devices: Vec<Json> = i
        .catalog
        .devices
        .iter()
        .map(|d| {
            let m: Option<&DeviceSnapshot> = i
                .metrics
                .and_then(|s| s.devices.iter().find(|m| m.name == d.name));
            let (state, since) = i
                .live
                .states
                .get(&d.name)
                .map_or((Json::Null, Json::Null), |(s, t)| (json!(s), json!(ms(*t))));
            let points: Vec<Json> = d
                .points
                .iter()
                .map(|p| {
                    let sample = i.live.samples.get(&i.topics.point(&d.name, &p.name));
                    let payload = sample.map(|s| &s.payload);
                    let field = |k: &str| payload.map_or(Json::Null, |v| v[k].clone());
                    let quality = payload
                        .and_then(|v| v["quality"].as_str())
                        .unwrap_or("unknown");
                    json!({
                        "name": p.name,
                        "unit": p.unit,
                        "value": field("value"),
                        "quality": quality,
                        "error": field("error"),
                        "ts": field("ts"),
                        "age_ms": sample.map(|s| age_ms(i.now, s.at)),
                        "writable": p.writable,
                        "register": p.register,
                    })
                })
                .collect();
            let errors: Map<String, Json> = ErrorKind::ALL
                .iter()
                .enumerate()
                .map(|(k, kind)| (kind.name().to_owned(), json!(m.map_or(0, |m| m.errors[k]))))
                .collect();
            let observed = i
                .rates
                .requests_per_cycle
                .iter()
                .find(|(n, _)| *n == d.name)
                .map(|(_, r)| *r);
            json!({
                "name": d.name,
                "line": d.line,
                "unit": d.unit,
                "state": state,
                "state_since": since,
                "last_answer": m.map(|m| m.last_answer_ms).filter(|t| *t > 0),
                "latency_ms": m.filter(|m| m.latency_count > 0).map(|m| m.last_latency_us as f64 / 1000.0),
                "avg_latency_ms": m.filter(|m| m.latency_count > 0).map(|m| m.latency_sum * 1000.0 / m.latency_count as f64),
                "polls": m.map(|m| m.polls),
                "errors": errors,
                "breaker": match m {
                    Some(m) if m.unanswered >= u64::from(THRESHOLD) => "open",
                    Some(_) => "closed",
                    None => "unknown",
                },
                "planned_requests": d.planned_requests,
                "observed_requests": observed,
                "points": points,
            })
        })
        .collect();
    let clients: Vec<Json> = i
        .clients
        .iter()
        .map(|c| {
            json!({
                "id": c.client_id,
                "addr": c.addr.map(|a| a.to_string()),
                "user": c.username,
                "protocol": c.protocol,
                "listener": c.listener,
                "subscriptions": c.subscriptions,
                "since": ms(c.connected_at),
            })
        })
        .collect();
    let broker = i.metrics.and_then(|m| m.broker.as_ref());
    let uplink = i.live.uplink.as_ref().map(|doc| {
        let counters = i.metrics.and_then(|m| m.queue.as_ref()).map(|(_, c)| c);
        let drops: Map<String, Json> = counters
            .map(|c| {
                c.messages
                    .iter()
                    .filter(|(k, n)| k.is_loss() && *n > 0)
                    .map(|(k, n)| (k.name().to_owned(), json!(n)))
                    .collect()
            })
            .unwrap_or_default();
        let backlog = i.metrics.and_then(|m| m.queue.as_ref()).map(|(s, _)| s);
        json!({
            "state": doc["state"],
            "since": doc["since"],
            "url": doc["url"],
            "last_error": doc["last_error"],
            "backlog": backlog.map_or(doc["backlog"].clone(), |s| json!(s.depth)),
            "backlog_bytes": backlog.map_or(doc["backlog_bytes"].clone(), |s| json!(s.bytes)),
            "oldest_age_s": backlog.map_or(doc["oldest_age_s"].clone(), |s| {
                json!(s.oldest_ms.map(|o| (ms(i.now) as i64 - o).max(0) / 1000))
            }),
            "delivered": counters.map(|c| c.messages.get(Counter::Delivered)),
            "drops": drops,
            "drain_per_s": i.rates.drained,
        })
    });
    let events: Vec<Json> = i
        .live
        .events
        .iter()
        .rev()
        .map(|e| json!({"ts": ms(e.at), "kind": e.kind, "text": e.text}))
        .collect();
    json!({
        "site": i.site,
        "now": ms(i.now),
        "devices": devices,
        "broker": {
            "clients": clients,
            "connected": broker.map(|b| b.clients_connected),
            "messages_in_per_s": i.rates.messages_in,
            "messages_out_per_s": i.rates.messages_out,
            "auth_failures": broker.map(|b| b.auth_failures),
        },
        "uplink": uplink,
        "events": events,
    })
    .to_string()
}
