//! [`LineRunner`]: one line (a TCP connection or a serial bus) and its devices, ready to run
//! as a task, and to run again after that task failed (`app::supervise` restarts it); and
//! [`prepare`], which groups a config's devices into lines.
//!
//! Invariant: every instance of a line's task serves the same request queue and sets the same
//! `online` flags the device handles read, so handles outlive a restart.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handle::{DeviceHandle, Request};
use super::poller::{Endpoint, Line};
use super::slave::Slave;
use super::slots::HostSlots;
use crate::broker::Broker;
use crate::config::{Device, Transport};
use crate::health::Health;
use crate::topics::Topics;

/// Requests (commands) waiting for one line.
const REQUEST_QUEUE: usize = 64;

/// Prepares one [`LineRunner`] per line (distinct `tcp` host:port, or bus) serving `devices`
/// (the config's, in order), and one handle per device, in the same order. `slots` caps the
/// connections per host address across every line (lines started at different times by a
/// reload share it). Each device counts into `health`'s metrics.
pub fn prepare(
    devices: &[Arc<Device>],
    slots: &Arc<HostSlots>,
    topics: &Topics,
    broker: &Arc<Broker>,
    health: &Health,
) -> (Vec<DeviceHandle>, Vec<LineRunner>) {
    // Lines in order of their first device; each lists its devices' indices.
    let mut lines: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        let key = line_key(&d.transport);
        let first = *first_of.entry(key).or_insert(i);
        lines.entry(first).or_default().push(i);
    }
    let mut handles: Vec<Option<DeviceHandle>> = vec![None; devices.len()];
    let mut runners = Vec::with_capacity(lines.len());
    for members in lines.values() {
        let transport = &devices[members[0]].transport;
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let online: Vec<Arc<AtomicBool>> = members
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        for (k, &i) in members.iter().enumerate() {
            handles[i] = Some(DeviceHandle {
                tx: tx.clone(),
                slave: k,
                online: online[k].clone(),
            });
        }
        let endpoint = match transport {
            Transport::Tcp(addr) => Endpoint::Tcp {
                addr: addr.clone(),
                slots: slots.clone(),
            },
            Transport::Rtu(bus) => Endpoint::Rtu(bus.clone()),
        };
        runners.push(LineRunner {
            label: line_key(transport),
            devices: members.iter().map(|&i| devices[i].clone()).collect(),
            online,
            endpoint,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            topics: topics.clone(),
            broker: broker.clone(),
            health: health.clone(),
        });
    }
    (handles.into_iter().flatten().collect(), runners)
}

/// One line, ready to run, and to run again after its task failed (see `app::supervise`):
/// each [`LineRunner::instance`] is a fresh task over the same request queue and the same
/// `online` flags the device handles read.
pub struct LineRunner {
    label: String,
    devices: Vec<Arc<Device>>,
    online: Vec<Arc<AtomicBool>>,
    endpoint: Endpoint,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>,
    topics: Topics,
    broker: Arc<Broker>,
    health: Health,
}

impl LineRunner {
    /// `tcp HOST:PORT` or `bus NAME`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A new task of the line, running until `cancel`.
    pub fn instance(&self, cancel: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let slaves = self.slaves();
        let span = tracing::info_span!("line", name = %self.label);
        // A supervised beat: a task that panics is restarted by its supervisor, so its beat
        // must not stop the systemd watchdog (a task that hangs still does).
        let beat = self
            .health
            .progress
            .register(format!("line {}", self.label))
            .supervised();
        let (label, endpoint, rx, broker) = (
            self.label.clone(),
            self.endpoint.clone(),
            self.rx.clone(),
            self.broker.clone(),
        );
        async move {
            // Free at once unless an instance is still running, which never happens under
            // the supervisor (one instance at a time).
            let rx = rx.lock_owned().await;
            Line::new(label, endpoint, slaves, rx, broker, cancel, beat)
                .run()
                .await;
        }
        .instrument(span)
    }

    /// The line's task failed: every device `offline` and every point bad, with `cause`, as
    /// when the line itself is down; writes are refused meanwhile.
    pub async fn down(&self, cause: &str) {
        let mut batch = Vec::new();
        let reason = format!("the line task failed ({cause}); restarting it");
        for mut slave in self.slaves() {
            slave.go_offline(&reason, &mut batch);
        }
        if let Err(e) = self.broker.publish_batch(batch).await {
            tracing::warn!(line = %self.label, error = %e, "cannot publish the devices offline");
        }
    }

    /// Fresh slaves for the line's devices, sharing the handles' `online` flags.
    fn slaves(&self) -> Vec<Slave> {
        let shared = self.devices.len() > 1;
        self.devices
            .iter()
            .zip(&self.online)
            .map(|(device, online)| {
                let mut slave = Slave::new(device.clone(), &self.topics, shared, &self.label);
                slave.online = online.clone();
                slave.metrics = self.health.metrics.device(&device.name);
                slave
            })
            .collect()
    }
}

/// The line a transport belongs to: `tcp HOST:PORT` or `bus NAME` (the reload diff groups
/// devices the same way).
fn line_key(transport: &Transport) -> String {
    crate::config::diff::line_key(transport)
}
