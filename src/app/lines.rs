//! The running field lines, by line key: started, stopped and restarted one by one, so a
//! reload touches only the lines whose devices changed.
//!
//! Invariant: a line not stopped keeps its task, its connection and its poll schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::broker::Broker;
use crate::command::Target;
use crate::config::Device;
use crate::field::{self, DeviceHandle, HostSlots};
use crate::health::Health;
use crate::topics::Topics;

/// How long a line task gets to stop and publish its final state.
pub const FIELD_DRAIN: Duration = Duration::from_secs(5);

/// What line tasks are started with.
pub struct FieldCtx<'a> {
    /// The connection slots of every line (`modbus.max_connections_per_host`).
    pub slots: &'a Arc<HostSlots>,
    pub topics: &'a Topics,
    pub broker: &'a Arc<Broker>,
    pub health: &'a Health,
}

struct Line {
    devices: Vec<Arc<Device>>,
    handles: Vec<DeviceHandle>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

#[derive(Default)]
pub struct Lines {
    running: BTreeMap<String, Line>,
}

impl Lines {
    /// Starts the task of line `key` serving `devices` (all on that line, in config order).
    pub fn start(&mut self, key: String, devices: Vec<Arc<Device>>, ctx: &FieldCtx<'_>) {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handles = field::spawn_sharing(
            &devices,
            ctx.slots,
            ctx.topics,
            ctx.broker.clone(),
            cancel.clone(),
            &tracker,
            ctx.health,
        );
        tracker.close();
        self.running.insert(
            key,
            Line {
                devices,
                handles,
                cancel,
                tracker,
            },
        );
    }

    /// Stops the lines `keys` (all at once) and waits for them.
    pub async fn stop<'a>(&mut self, keys: impl IntoIterator<Item = &'a String>) {
        let stopping: Vec<Line> = keys
            .into_iter()
            .filter_map(|k| self.running.remove(k))
            .collect();
        for line in &stopping {
            line.cancel.cancel();
        }
        for line in stopping {
            if tokio::time::timeout(FIELD_DRAIN, line.tracker.wait())
                .await
                .is_err()
            {
                warn!("a line task did not stop within {FIELD_DRAIN:?}");
            }
        }
    }

    pub async fn stop_all(&mut self) {
        let keys: Vec<String> = self.running.keys().cloned().collect();
        self.stop(&keys).await;
    }

    /// The command targets of the running devices, in the order of `order`.
    pub fn targets(&self, order: &[Arc<Device>]) -> Vec<Target> {
        let by_name: HashMap<&str, (&Arc<Device>, &DeviceHandle)> = self
            .running
            .values()
            .flat_map(|l| l.devices.iter().zip(&l.handles))
            .map(|(d, h)| (d.name.as_str(), (d, h)))
            .collect();
        order
            .iter()
            .filter_map(|d| by_name.get(d.name.as_str()))
            .map(|(device, handle)| Target {
                device: Arc::clone(device),
                handle: (*handle).clone(),
            })
            .collect()
    }
}
