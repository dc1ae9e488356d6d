//! The field side (Modbus): pure read planning and value codec, the links (TCP, RTU over a
//! serial port), one task per line (connection or bus) serving every device behind it, fault
//! isolation, report-by-exception, `probe`, and a simulator.
//!
//! - `codec`     registers ⇄ values (pure)            - `plan`      the read planner (pure)
//! - `link`      one Modbus connection, typed outcomes - `serial`    serial ports for RTU
//! - `poller`    the task of one line                  - `slave`     one device on a line
//! - `breaker`   per-device circuit breaker (pure)     - `schedule`  what a line does next (pure)
//! - `handle`    [`DeviceHandle`]: writes from commands - `report`    deadband and heartbeat
//! - `busload`   bus time estimates for `check` (pure) - `probe`     `ferrule probe`
//! - `slots`     connections per host address           - `simulator` a Modbus TCP slave
//!
//! Devices share a line when they have the same `tcp` host:port or the same `bus`; every
//! request to a line goes through its one task, in order.

pub mod breaker;
pub mod busload;
pub mod codec;
mod handle;
pub mod link;
pub mod plan;
pub mod poller;
pub mod probe;
pub mod report;
pub mod schedule;
mod serial;
pub mod simulator;
mod slave;
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use handle::{DeviceHandle, RawError, RawRead, WriteError, WriteReport};
pub use slots::HostSlots;

use crate::broker::Broker;
use crate::config::{Device, ModbusSettings, Transport};
use crate::health::Health;
use crate::topics::Topics;
use poller::{Endpoint, Line};
use slave::Slave;

/// Requests (commands) waiting for one line.
const REQUEST_QUEUE: usize = 64;

/// Starts one task per line (distinct `tcp` host:port, or bus) on the current runtime, serving
/// `devices` (the config's, in order); they run until `cancel`. Returns one handle per device,
/// in the same order. Each device counts into `health`'s metrics; each line beats its
/// progress there.
pub fn spawn(
    devices: &[Arc<Device>],
    modbus: &ModbusSettings,
    topics: &Topics,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
    health: &Health,
) -> Vec<DeviceHandle> {
    let slots = Arc::new(HostSlots::new(usize::from(modbus.max_connections_per_host)));
    spawn_sharing(devices, &slots, topics, broker, cancel, tracker, health)
}

/// [`spawn`] with the connection slots given, so that lines started at different times (by
/// a reload) share one cap per host address.
pub fn spawn_sharing(
    devices: &[Arc<Device>],
    slots: &Arc<HostSlots>,
    topics: &Topics,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
    health: &Health,
) -> Vec<DeviceHandle> {
    // Lines in order of their first device; each lists its devices' indices.
    let mut lines: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        let key = line_key(&d.transport);
        let first = *first_of.entry(key).or_insert(i);
        lines.entry(first).or_default().push(i);
    }
    let mut handles: Vec<Option<DeviceHandle>> = vec![None; devices.len()];
    for members in lines.values() {
        let transport = &devices[members[0]].transport;
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let shared = members.len() > 1;
        let label = line_key(transport);
        let slaves: Vec<Slave> = members
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let mut slave = Slave::new(devices[i].clone(), topics, shared, &label);
                slave.metrics = health.metrics.device(&devices[i].name);
                handles[i] = Some(DeviceHandle {
                    tx: tx.clone(),
                    slave: k,
                    online: slave.online.clone(),
                });
                slave
            })
            .collect();
        let endpoint = match transport {
            Transport::Tcp(addr) => Endpoint::Tcp {
                addr: addr.clone(),
                slots: slots.clone(),
            },
            Transport::Rtu(bus) => Endpoint::Rtu(bus.clone()),
        };
        let span = tracing::info_span!("line", name = %label);
        let beat = health.progress.register(format!("line {label}"));
        let line = Line::new(
            label,
            endpoint,
            slaves,
            rx,
            broker.clone(),
            cancel.clone(),
            beat,
        );
        tracker.spawn(line.run().instrument(span));
    }
    handles.into_iter().flatten().collect()
}

/// The line a transport belongs to: `tcp HOST:PORT` or `bus NAME` (the reload diff groups
/// devices the same way).
fn line_key(transport: &Transport) -> String {
    crate::config::diff::line_key(transport)
}
