//! What the page knows from the config: devices, their line, their points and which points
//! are writable, and the topics those publish on (built by [`Topics`], never parsed here).
//!
//! Invariant: a topic maps to at most one (device, point) or device state; messages on other
//! topics are not point values.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Device, Transport, Writable};
use crate::field::plan::{requests_per_cycle, Limits};
use crate::topics::Topics;

/// A device or point the running config does not have (asked for by the page).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no point `{device}/{point}` in the running config")]
pub struct NoSuchPoint {
    pub device: String,
    pub point: String,
}

impl NoSuchPoint {
    pub fn new(device: &str, point: &str) -> Self {
        Self {
            device: device.into(),
            point: point.into(),
        }
    }
}

/// One device as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    /// `tcp 10.0.0.5:502` or `bus rs485-1`.
    pub line: String,
    pub unit: u8,
    /// Requests the planner needs for one cycle of every point.
    pub planned_requests: usize,
    pub points: Vec<PointInfo>,
}

/// One point as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PointInfo {
    pub name: String,
    pub unit: Option<String>,
    pub writable: bool,
    /// `holding 100` (0-based protocol address).
    pub register: String,
}

/// What a topic is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    Point { device: usize, point: usize },
    DeviceState { device: usize },
    CommandResult { device: usize, point: usize },
}

/// The configured devices and the topics that concern them.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub devices: Vec<DeviceInfo>,
    topics: HashMap<String, About>,
}

impl Catalog {
    pub fn new(devices: &[Arc<Device>], topics: &Topics) -> Self {
        let mut map = HashMap::new();
        let infos = devices
            .iter()
            .enumerate()
            .map(|(d, device)| {
                map.insert(
                    topics.device_state(&device.name),
                    About::DeviceState { device: d },
                );
                let points = device
                    .points
                    .iter()
                    .enumerate()
                    .map(|(p, point)| {
                        map.insert(
                            topics.point(&device.name, &point.name),
                            About::Point {
                                device: d,
                                point: p,
                            },
                        );
                        map.insert(
                            topics.command_result(&device.name, &point.name),
                            About::CommandResult {
                                device: d,
                                point: p,
                            },
                        );
                        PointInfo {
                            name: point.name.clone(),
                            unit: point.unit.clone(),
                            writable: matches!(point.writable, Writable::Yes { .. }),
                            register: format!("{:?} {}", point.kind, point.address).to_lowercase(),
                        }
                    })
                    .collect();
                DeviceInfo {
                    name: device.name.clone(),
                    line: match &device.transport {
                        Transport::Tcp(hp) => format!("tcp {hp}"),
                        Transport::Rtu(bus) => format!("bus {}", bus.name),
                    },
                    unit: device.unit,
                    planned_requests: requests_per_cycle(
                        &device.points,
                        &Limits::with_gap(device.max_gap),
                    ),
                    points,
                }
            })
            .collect();
        Self {
            devices: infos,
            topics: map,
        }
    }

    pub fn about(&self, topic: &str) -> Option<&About> {
        self.topics.get(topic)
    }

    /// The indexes of `device`/`point`, when both exist.
    pub fn find(&self, device: &str, point: &str) -> Option<(&DeviceInfo, &PointInfo)> {
        let d = self.devices.iter().find(|d| d.name == device)?;
        let p = d.points.iter().find(|p| p.name == point)?;
        Some((d, p))
    }
}
