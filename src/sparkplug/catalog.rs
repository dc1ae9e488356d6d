//! The edge node's metrics, from the config: each device a Sparkplug device, each point a
//! metric with its datatype, engineering unit and writable-ness (pure).
//!
//! Invariants: aliases are unique across the node and all its devices (the spec requires it
//! per edge node): 0 is `bdSeq`'s (never aliased on the wire, reserved), 1 is
//! `Node Control/Rebirth`, device metrics follow in config order from 2. The same config gives
//! the same aliases, so a rebirth after a restart keeps them.

use std::collections::HashMap;

use super::datatype::SpType;
use crate::config::{Device, Writable};
use crate::topics::Topics;

/// The node metric a host writes to ask for births.
pub const REBIRTH: &str = "Node Control/Rebirth";
/// Alias of [`REBIRTH`].
pub const REBIRTH_ALIAS: u64 = 1;

/// One point as a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    /// The point name (the metric name).
    pub name: String,
    pub alias: u64,
    pub datatype: SpType,
    pub unit: Option<String>,
    pub writable: bool,
}

/// One device and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDef {
    pub name: String,
    pub metrics: Vec<MetricDef>,
}

/// Where a local topic belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// `{site}/{device}/{point}`: device index, metric index.
    Point(usize, usize),
    /// `{site}/{device}/$state`: device index.
    State(usize),
}

/// Every device and metric of the node, with lookups both ways.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub devices: Vec<DeviceDef>,
    by_topic: HashMap<String, Local>,
    by_device: HashMap<String, usize>,
}

impl Catalog {
    pub fn new<'d>(devices: impl IntoIterator<Item = &'d Device>, topics: &Topics) -> Catalog {
        let mut alias = REBIRTH_ALIAS;
        let mut c = Catalog::default();
        for (d, dev) in devices.into_iter().enumerate() {
            let metrics = dev
                .points
                .iter()
                .enumerate()
                .map(|(m, p)| {
                    alias += 1;
                    c.by_topic
                        .insert(topics.point(&dev.name, &p.name), Local::Point(d, m));
                    MetricDef {
                        name: p.name.clone(),
                        alias,
                        datatype: SpType::of(p),
                        unit: p.unit.clone(),
                        writable: matches!(p.writable, Writable::Yes { .. }),
                    }
                })
                .collect();
            c.by_topic
                .insert(topics.device_state(&dev.name), Local::State(d));
            c.by_device.insert(dev.name.clone(), d);
            c.devices.push(DeviceDef {
                name: dev.name.clone(),
                metrics,
            });
        }
        c
    }

    /// What a local topic is to the node.
    pub fn local(&self, topic: &str) -> Option<Local> {
        self.by_topic.get(topic).copied()
    }

    /// A device by name.
    pub fn device(&self, name: &str) -> Option<usize> {
        self.by_device.get(name).copied()
    }

    /// A metric of device `d` by name or alias (a command may use either).
    pub fn metric(&self, d: usize, name: Option<&str>, alias: Option<u64>) -> Option<&MetricDef> {
        let metrics = &self.devices.get(d)?.metrics;
        match (name, alias) {
            (Some(n), _) if !n.is_empty() => metrics.iter().find(|m| m.name == n),
            (_, Some(a)) => metrics.iter().find(|m| m.alias == a),
            _ => None,
        }
    }
}
