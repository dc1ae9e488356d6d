//! The edge node: births, deaths, data by exception and commands, as Sparkplug B 3.0 wants
//! them (pure apart from the bdSeq file; the uplink's drain sends what it returns).
//!
//! Invariants:
//! - `bdSeq` goes up by one (mod 256) for every MQTT CONNECT; the NDEATH registered as the will
//!   of a connection and the NBIRTH sent on it carry the same value; the last one used is kept
//!   in a file beside the queue so a restart (or a `kill -9`) continues from it;
//! - `seq` is 0 in every NBIRTH and goes up by one (mod 256) with every DBIRTH, DDATA and
//!   DDEATH after it; NDEATH has none;
//! - a device is born (DBIRTH, every metric with name, alias, datatype, properties and its
//!   current value) when the node is born and its `$state` is not `offline`, or later when its
//!   `$state` leaves `offline`; `offline` dies it (DDEATH); its data goes out only while it is
//!   born, as DDATA with aliases only;
//! - data queued before the births of a connection goes out after them flagged
//!   `is_historical`, in queue order; `$state` changes replay in order too (a DBIRTH or DDEATH
//!   only when the state differs from what was sent); a birth carries, per metric, the newer
//!   of the cache's value and the last one the queue gave;
//! - a point's quality travels as the `Quality` property (OPC: 192 good, 64 uncertain/stale,
//!   0 bad) and a missing or unreadable value as `is_null`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::Value as Json;
use tracing::{debug, warn};

use super::catalog::{Catalog, Local, MetricDef, REBIRTH, REBIRTH_ALIAS};
use super::datatype::SpType;
use super::proto::{Metric, Payload, Property, Wire};
use crate::broker::{Message, Origin};
use crate::config::sparkplug::Sparkplug;
use crate::config::{Device, Qos};
use crate::topics::sparkplug::{Inbound, Kind, SparkplugTopics};
use crate::topics::Topics;

/// Name of the birth/death sequence metric.
pub const BDSEQ: &str = "bdSeq";
/// OPC quality codes carried in the `Quality` property.
const QUALITY_GOOD: u32 = 192;
const QUALITY_UNCERTAIN: u32 = 64;
const QUALITY_BAD: u32 = 0;

/// The last payload of each local point and device-state topic (shared with the task that
/// follows the local broker).
pub type Latest = Arc<Mutex<HashMap<String, Bytes>>>;

/// A message for the upstream broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub topic: String,
    pub payload: Bytes,
}

/// What an incoming message asks of the node.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Send NBIRTH and the DBIRTHs again.
    Rebirth,
    /// Local `.../set` commands, for the command router.
    Commands(Vec<Message>),
    /// The primary host's state changed.
    Host { online: bool },
    /// Nothing to do (logged).
    Nothing,
}

/// The edge node's state across connections.
#[derive(Debug)]
pub struct EdgeNode {
    topics: SparkplugTopics,
    site: Topics,
    catalog: Catalog,
    primary_host: Option<String>,
    bdseq_file: PathBuf,
    /// The bdSeq of the current (or last) connection; `None` before the first.
    bd_seq: Option<u8>,
    /// The seq of the next message.
    seq: u8,
    born: Vec<bool>,
    latest: Latest,
    /// The last payload of each point as the queue gave it (the cache may lag behind it).
    seen: HashMap<String, Bytes>,
    commands: u64,
}

impl EdgeNode {
    /// `bdseq_file` keeps the last bdSeq used (read now, written at every connect).
    pub fn new<'d>(
        cfg: &Sparkplug,
        devices: impl IntoIterator<Item = &'d Device>,
        site: &Topics,
        bdseq_file: PathBuf,
    ) -> Self {
        let catalog = Catalog::new(devices, site);
        let bd_seq = std::fs::read_to_string(&bdseq_file)
            .ok()
            .and_then(|t| t.trim().parse::<u8>().ok());
        Self {
            topics: SparkplugTopics::new(&cfg.group_id, &cfg.edge_node_id),
            site: site.clone(),
            born: vec![false; catalog.devices.len()],
            catalog,
            primary_host: cfg.primary_host_id.clone(),
            bdseq_file,
            bd_seq,
            seq: 0,
            latest: Latest::default(),
            seen: HashMap::new(),
            commands: 0,
        }
    }

    /// The cache of current values the births read (fed by the caller).
    pub fn latest(&self) -> Latest {
        Arc::clone(&self.latest)
    }

    /// The local topics to follow for [`EdgeNode::latest`].
    pub fn follow_filter(&self) -> String {
        format!("{}/+/+", self.site.site())
    }

    /// The primary host, if the node waits for one.
    pub fn primary_host(&self) -> Option<&str> {
        self.primary_host.as_deref()
    }

    /// The upstream subscriptions, each with whether its retained messages are wanted: NCMD
    /// and DCMD (no: a retained command would be applied again at every connect) and the
    /// primary host's STATE (yes: it is retained on purpose).
    pub fn subscriptions(&self) -> Vec<(String, bool)> {
        let mut subs: Vec<(String, bool)> = self
            .topics
            .command_filters()
            .into_iter()
            .map(|f| (f, false))
            .collect();
        if let Some(host) = &self.primary_host {
            subs.push((SparkplugTopics::state(host), true));
        }
        subs
    }

    /// Whether an upstream topic is for the node (rather than a downlink rule), and whether a
    /// retained message on it is taken.
    pub fn handles(&self, topic: &str) -> Option<bool> {
        match self.topics.parse(topic)? {
            Inbound::HostState(_) => Some(true),
            Inbound::NodeCommand | Inbound::DeviceCommand(_) => Some(false),
        }
    }

    /// A new connection: the next bdSeq (saved) and the NDEATH to register as its will.
    pub fn connecting(&mut self, now_ms: u64) -> Publish {
        let next = self.bd_seq.map_or(0, |b| b.wrapping_add(1));
        self.bd_seq = Some(next);
        if let Err(e) = std::fs::write(&self.bdseq_file, format!("{next}\n")) {
            warn!(file = %self.bdseq_file.display(), error = %e, "cannot save the Sparkplug bdSeq; a restart may repeat it");
        }
        self.death(now_ms)
    }

    /// The NDEATH of the current connection.
    pub fn death(&self, now_ms: u64) -> Publish {
        let payload = Payload {
            timestamp: now_ms,
            seq: None,
            metrics: vec![self.bdseq_metric(now_ms)],
        };
        self.publish(self.topics.node(Kind::NDeath), &payload)
    }

    fn bdseq_metric(&self, now_ms: u64) -> Metric {
        Metric {
            name: Some(BDSEQ.into()),
            timestamp: Some(now_ms),
            datatype: Some(SpType::Int64.code()),
            value: Some(Wire::Long(u64::from(self.bd_seq.unwrap_or(0)))),
            ..Metric::default()
        }
    }

    /// NBIRTH (seq 0) and a DBIRTH for every device not known to be offline.
    pub fn births(&mut self, now_ms: u64) -> Vec<Publish> {
        self.seq = 0;
        let nbirth = Payload {
            timestamp: now_ms,
            seq: Some(self.next_seq()),
            metrics: vec![
                self.bdseq_metric(now_ms),
                Metric {
                    name: Some(REBIRTH.into()),
                    alias: Some(REBIRTH_ALIAS),
                    timestamp: Some(now_ms),
                    datatype: Some(SpType::Boolean.code()),
                    value: Some(Wire::Bool(false)),
                    ..Metric::default()
                },
            ],
        };
        let mut out = vec![self.publish(self.topics.node(Kind::NBirth), &nbirth)];
        for d in 0..self.catalog.devices.len() {
            let state = self.cached(&self.site.device_state(&self.catalog.devices[d].name));
            self.born[d] = false;
            if state.as_deref().is_some_and(|s| s != b"offline".as_slice()) {
                out.push(self.dbirth(d, now_ms));
            }
        }
        out
    }

    fn cached(&self, topic: &str) -> Option<Bytes> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .cloned()
    }

    /// A point's current payload for a birth: the newer (by its `ts`) of the cache's and the
    /// queue's.
    fn current(&self, topic: &str) -> Option<Bytes> {
        let cached = self.cached(topic);
        let seen = self.seen.get(topic).cloned();
        match (cached, seen) {
            (Some(c), Some(s)) => Some(if ts(&s) > ts(&c) { s } else { c }),
            (c, s) => c.or(s),
        }
    }

    fn dbirth(&mut self, d: usize, now_ms: u64) -> Publish {
        self.born[d] = true;
        let dev = &self.catalog.devices[d];
        let metrics = dev
            .metrics
            .iter()
            .map(|m| {
                let payload = self.current(&self.site.point(&dev.name, &m.name));
                point_metric(m, payload.as_deref(), true, false, now_ms)
            })
            .collect();
        let topic = self.topics.device(Kind::DBirth, &dev.name);
        let payload = Payload {
            timestamp: now_ms,
            seq: Some(self.next_seq()),
            metrics,
        };
        self.publish(topic, &payload)
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        u64::from(s)
    }

    fn publish(&self, topic: String, payload: &Payload) -> Publish {
        Publish {
            topic,
            payload: Bytes::from(payload.encode()),
        }
    }

    /// What a queued local message becomes upstream, if anything (see the module rules).
    pub fn translate(
        &mut self,
        topic: &str,
        payload: &[u8],
        historical: bool,
        now_ms: u64,
    ) -> Option<Publish> {
        match self.catalog.local(topic)? {
            Local::State(d) => {
                let offline = payload == b"offline";
                match (offline, self.born[d]) {
                    (true, true) => {
                        self.born[d] = false;
                        let p = Payload {
                            timestamp: now_ms,
                            seq: Some(self.next_seq()),
                            metrics: Vec::new(),
                        };
                        let topic = self
                            .topics
                            .device(Kind::DDeath, &self.catalog.devices[d].name);
                        Some(self.publish(topic, &p))
                    }
                    (false, false) => Some(self.dbirth(d, now_ms)),
                    _ => None,
                }
            }
            Local::Point(d, m) => {
                self.seen
                    .insert(topic.to_owned(), Bytes::copy_from_slice(payload));
                if !self.born[d] {
                    debug!(%topic, "point of a device not born upstream; not sent");
                    return None;
                }
                let dev = &self.catalog.devices[d];
                let metric =
                    point_metric(&dev.metrics[m], Some(payload), false, historical, now_ms);
                let topic = self.topics.device(Kind::DData, &dev.name);
                let p = Payload {
                    timestamp: now_ms,
                    seq: Some(self.next_seq()),
                    metrics: vec![metric],
                };
                Some(self.publish(topic, &p))
            }
        }
    }

    /// An upstream message on one of [`EdgeNode::subscriptions`].
    pub fn inbound(&mut self, topic: &str, payload: &[u8]) -> Action {
        match self.topics.parse(topic) {
            Some(Inbound::HostState(host)) if Some(host) == self.primary_host.as_deref() => {
                match serde_json::from_slice::<Json>(payload) {
                    Ok(v) => match v.get("online").and_then(Json::as_bool) {
                        Some(online) => Action::Host { online },
                        None => {
                            warn!(%topic, "STATE without a boolean `online`; ignored");
                            Action::Nothing
                        }
                    },
                    Err(e) => {
                        warn!(%topic, error = %e, "STATE is not JSON; ignored");
                        Action::Nothing
                    }
                }
            }
            Some(Inbound::NodeCommand) => match Payload::decode(payload) {
                Ok(p) => {
                    let rebirth = p.metrics.iter().any(|m| {
                        (m.name.as_deref() == Some(REBIRTH) || m.alias == Some(REBIRTH_ALIAS))
                            && m.value == Some(Wire::Bool(true))
                    });
                    if rebirth {
                        Action::Rebirth
                    } else {
                        warn!(%topic, "NCMD without `Node Control/Rebirth` = true; ignored");
                        Action::Nothing
                    }
                }
                Err(e) => {
                    warn!(%topic, error = %e, "NCMD payload is not Sparkplug B; ignored");
                    Action::Nothing
                }
            },
            Some(Inbound::DeviceCommand(device)) => self.device_command(topic, device, payload),
            _ => Action::Nothing,
        }
    }

    /// Each metric of a DCMD becomes a local `.../set`, so it takes the same checks, confirm,
    /// rate limit, audit and read-back as any other command.
    fn device_command(&mut self, topic: &str, device: &str, payload: &[u8]) -> Action {
        let Some(d) = self.catalog.device(device) else {
            warn!(%topic, "DCMD for a device this node does not have; ignored");
            return Action::Nothing;
        };
        let p = match Payload::decode(payload) {
            Ok(p) => p,
            Err(e) => {
                warn!(%topic, error = %e, "DCMD payload is not Sparkplug B; ignored");
                return Action::Nothing;
            }
        };
        let mut out = Vec::new();
        for m in &p.metrics {
            let Some(def) = self.catalog.metric(d, m.name.as_deref(), m.alias) else {
                warn!(%topic, name = ?m.name, alias = ?m.alias, "DCMD metric unknown; ignored");
                continue;
            };
            let Some(value) = m.value.as_ref().and_then(|w| def.datatype.decode(w)) else {
                warn!(%topic, metric = %def.name, datatype = ?def.datatype, "DCMD value missing or not of the metric's datatype; ignored");
                continue;
            };
            self.commands += 1;
            let body = serde_json::json!({"value": value, "id": format!("spb-{}", self.commands)});
            out.push(Message {
                topic: self.site.command(device, &def.name),
                payload: Bytes::from(body.to_string()),
                qos: Qos::AtLeastOnce,
                retain: false,
                origin: Origin::Downlink,
                response_topic: None,
                correlation_data: None,
            });
        }
        if out.is_empty() {
            Action::Nothing
        } else {
            Action::Commands(out)
        }
    }
}

/// The `ts` of a point payload (RFC 3339 with milliseconds: ordered as text).
fn ts(payload: &[u8]) -> Option<String> {
    let j: Json = serde_json::from_slice(payload).ok()?;
    j.get("ts")?.as_str().map(str::to_owned)
}

/// A point's metric from its JSON payload (`None`: no value yet). Births carry the name,
/// datatype and properties; data only the alias.
fn point_metric(
    def: &MetricDef,
    payload: Option<&[u8]>,
    birth: bool,
    historical: bool,
    now_ms: u64,
) -> Metric {
    let json: Option<Json> = payload.and_then(|p| serde_json::from_slice(p).ok());
    let value = json
        .as_ref()
        .and_then(|j| j.get("value"))
        .filter(|v| !v.is_null())
        .and_then(|v| def.datatype.encode(v));
    let quality = match json
        .as_ref()
        .and_then(|j| j.get("quality"))
        .and_then(Json::as_str)
    {
        Some("good") if value.is_some() => QUALITY_GOOD,
        Some("stale") => QUALITY_UNCERTAIN,
        _ => QUALITY_BAD,
    };
    let timestamp = json
        .as_ref()
        .and_then(|j| j.get("ts"))
        .and_then(Json::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .unwrap_or(now_ms);
    let mut properties = vec![Property {
        key: "Quality".into(),
        datatype: SpType::Int32.code(),
        value: Wire::Int(quality),
    }];
    if birth {
        if let Some(unit) = &def.unit {
            properties.push(Property {
                key: "engUnit".into(),
                datatype: SpType::String.code(),
                value: Wire::String(unit.clone()),
            });
        }
        properties.push(Property {
            key: "readOnly".into(),
            datatype: SpType::Boolean.code(),
            value: Wire::Bool(!def.writable),
        });
    }
    Metric {
        name: birth.then(|| def.name.clone()),
        alias: Some(def.alias),
        timestamp: Some(timestamp),
        datatype: birth.then(|| def.datatype.code()),
        is_historical: historical,
        is_null: value.is_none(),
        properties,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &std::path::Path) -> EdgeNode {
        let yaml = r#"
site: s
devices:
  - name: dev
    tcp: "127.0.0.1:502"
    points:
      - {name: temp, kind: holding, address: 0, type: i16, scale: 0.1, unit: "°C"}
      - {name: sp, kind: holding, address: 1, writable: true}
uplink:
  url: mqtt://127.0.0.1
  sparkplug: {group_id: g, edge_node_id: n}
"#;
        let origin = crate::config::Origin {
            name: "test.yaml".into(),
            base_dir: dir.to_path_buf(),
            state_dir: dir.to_path_buf(),
        };
        let cfg = crate::config::parse(yaml, &origin).expect("test config is valid");
        let sp = cfg
            .uplink
            .as_ref()
            .and_then(|u| u.sparkplug.clone())
            .expect("sparkplug");
        EdgeNode::new(&sp, &cfg.devices, &Topics::new("s"), dir.join("bdseq"))
    }

    fn decode(p: &Publish) -> Payload {
        Payload::decode(&p.payload).expect("our own payload decodes")
    }

    #[test]
    fn births_seq_bdseq_and_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = node(dir.path());
        let death = n.connecting(1);
        assert_eq!(death.topic, "spBv1.0/g/NDEATH/n");
        assert_eq!(decode(&death).metrics[0].value, Some(Wire::Long(0)));
        let births = n.births(2);
        assert_eq!(births.len(), 1, "device state unknown: not born yet");
        assert_eq!(decode(&births[0]).seq, Some(0));
        // Data of an unborn device: nothing.
        assert!(n
            .translate("s/dev/temp", br#"{"value":21.5}"#, false, 3)
            .is_none());
        let dbirth = n
            .translate("s/dev/$state", b"online", true, 3)
            .expect("DBIRTH");
        assert_eq!(dbirth.topic, "spBv1.0/g/DBIRTH/n/dev");
        let p = decode(&dbirth);
        assert_eq!(p.seq, Some(1));
        let data = n
            .translate(
                "s/dev/temp",
                br#"{"value":21.5,"ts":"2026-01-01T00:00:00.001Z","quality":"good"}"#,
                true,
                4,
            )
            .expect("DDATA");
        let p = decode(&data);
        assert_eq!(p.seq, Some(2));
        let m = &p.metrics[0];
        assert_eq!((m.name.as_deref(), m.alias), (None, Some(2)));
        assert!(m.is_historical);
        assert_eq!(m.value, Some(Wire::Double(21.5)));
        assert_eq!(m.timestamp, Some(1_767_225_600_001));
        let bad = n
            .translate("s/dev/sp", br#"{"value":null,"quality":"bad"}"#, false, 5)
            .expect("DDATA");
        assert!(decode(&bad).metrics[0].is_null);
        let ddeath = n
            .translate("s/dev/$state", b"offline", false, 6)
            .expect("DDEATH");
        assert_eq!(ddeath.topic, "spBv1.0/g/DDEATH/n/dev");
        assert_eq!(decode(&ddeath).seq, Some(4));
        // Next connection: the bdSeq goes up and survives a restart.
        n.connecting(7);
        let again = node(dir.path()).connecting(8);
        assert_eq!(decode(&again).metrics[0].value, Some(Wire::Long(2)));
    }
}
