//! The running field lines, by line key: started, stopped and restarted one by one, so a
//! reload touches only the lines whose devices changed.
//!
//! Each line runs under its supervisor (`app::supervise`): a line task that panics is
//! restarted, its devices `offline` meanwhile.
//!
//! Invariant: a line not stopped keeps its task, its connection and its poll schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::supervise::{supervise, Part, POLICY};
use super::tree::{Task, Tree};
use crate::broker::Broker;
use crate::command::Target;
use crate::config::Device;
use crate::field::{self, DeviceHandle, HostSlots, LineRunner};
use crate::health::parts::Parts;
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
    pub tree: &'a Tree,
}

struct Line {
    devices: Vec<Arc<Device>>,
    handles: Vec<DeviceHandle>,
    /// The line's supervisor.
    task: Task,
}

#[derive(Default)]
pub struct Lines {
    running: BTreeMap<String, Line>,
}

impl Lines {
    /// Starts the task of line `key` serving `devices` (all on that line, in config order),
    /// under its supervisor.
    pub fn start(&mut self, key: String, devices: Vec<Arc<Device>>, ctx: &FieldCtx<'_>) {
        let (handles, runners) =
            field::prepare(&devices, ctx.slots, ctx.topics, ctx.broker, ctx.health);
        // The devices of one key share one line: one runner.
        let Some(runner) = runners.into_iter().next() else {
            return;
        };
        let (parts, tree) = (ctx.health.metrics.parts().clone(), ctx.tree.clone());
        let task = ctx
            .tree
            .task(|cancel| supervise_line(Arc::new(runner), parts, tree, cancel));
        self.running.insert(
            key,
            Line {
                devices,
                handles,
                task,
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
            line.task.cancel.cancel();
        }
        for line in stopping {
            if !line.task.stop_within(FIELD_DRAIN).await {
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

/// Runs `runner`'s line until `cancel`, restarting its task when it fails (see
/// `app::supervise`); while it is down its devices are `offline`.
async fn supervise_line(
    runner: Arc<LineRunner>,
    parts: Parts,
    tree: Tree,
    cancel: CancellationToken,
) {
    let part = Part {
        name: format!("line {}", runner.label()),
        parts,
        tree,
        policy: POLICY,
        forget: true,
    };
    let (run, down) = (runner.clone(), runner);
    supervise(
        part,
        cancel,
        move |cancel| {
            let instance = run.instance(cancel.clone());
            async move {
                instance.await;
                if cancel.is_cancelled() {
                    Ok(())
                } else {
                    Err("the line task ended without being asked to".to_owned())
                }
            }
        },
        move |cause| {
            let down = down.clone();
            async move { down.down(&cause).await }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;
    use crate::broker::NoTap;
    use crate::config::{parse, Origin};
    use crate::field::link::WriteData;
    use crate::field::simulator::{self, Bank};

    const WAIT: Duration = Duration::from_secs(20);

    async fn next_state(
        rx: &mut tokio::sync::mpsc::Receiver<crate::broker::Message>,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let msg = tokio::time::timeout(WAIT, rx.recv())
            .await?
            .ok_or("subscription closed")?;
        Ok(String::from_utf8_lossy(&msg.payload).into_owned())
    }

    /// A real line (a Modbus TCP device served by the simulator, the broker in process) whose
    /// task is made to panic once it is online: its device is published `offline` with the
    /// cause, the part is reported down, the supervisor restarts the line, the device comes
    /// back `online`, and a write through the device's handle (made before the panic) reaches
    /// the device through the restarted task.
    #[tokio::test]
    async fn a_line_task_that_panics_is_restarted_and_its_device_offline_meanwhile(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let listener = simulator::bind("127.0.0.1:0".parse()?).await?;
        let port = listener.local_addr()?.port();
        let text = format!(
            "site: t\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\ndevices:\n  - {{name: boiler, tcp: \"127.0.0.1:{port}\", poll: 100ms, points: [{{name: sp, kind: holding, address: 1, writable: true}}]}}\n"
        );
        let origin = Origin {
            name: "test.yaml".into(),
            base_dir: dir.path().to_path_buf(),
            state_dir: dir.path().to_path_buf(),
        };
        let config = parse(&text, &origin)?;
        let bank = Bank::new(&config.devices)?;
        let cancel = CancellationToken::new();
        let sim = tokio::spawn(simulator::serve(listener, bank.clone(), cancel.clone()));
        let broker = Arc::new(Broker::start(&config.broker, Arc::new(NoTap)).await?);
        let topics = Topics::new(&config.site);
        let mut states = broker.subscribe(&topics.device_state("boiler"), 16);
        let mut points = broker.subscribe(&topics.point("boiler", "sp"), 64);
        let devices: Vec<Arc<Device>> = config.devices.iter().cloned().map(Arc::new).collect();
        let health = Health::default();
        let slots = Arc::new(HostSlots::new(4));
        let (handles, runners) = field::prepare(&devices, &slots, &topics, &broker, &health);
        let runner = Arc::new(runners.into_iter().next().ok_or("no line")?);
        let (tree, parts) = (Tree::new(), health.metrics.parts().clone());
        let fail = Arc::new(Notify::new());
        let starts = Arc::new(AtomicUsize::new(0));
        let part = Part {
            name: format!("line {}", runner.label()),
            parts: parts.clone(),
            tree: tree.clone(),
            policy: POLICY,
            forget: true,
        };
        let (run, down, inject, count) = (runner.clone(), runner, fail.clone(), starts.clone());
        let supervisor = tokio::spawn(supervise(
            part,
            cancel.clone(),
            move |cancel| {
                let instance = run.instance(cancel);
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let inject = inject.clone();
                async move {
                    if first {
                        tokio::select! {
                            () = instance => {}
                            () = inject.notified() => panic!("injected for the test"),
                        }
                    } else {
                        instance.await;
                    }
                    Ok(())
                }
            },
            move |cause| {
                let down = down.clone();
                async move { down.down(&cause).await }
            },
        ));

        assert_eq!(next_state(&mut states).await?, "online");
        fail.notify_one();
        assert_eq!(next_state(&mut states).await?, "offline");
        let down = parts
            .describe_down()
            .ok_or("the part is not reported down")?;
        assert_eq!(
            down,
            format!("line tcp 127.0.0.1:{port} (panicked: injected for the test)")
        );
        assert!(
            !handles[0].is_online(),
            "writes are refused while it is down"
        );
        // The point went bad with the cause, as when the line itself is down.
        loop {
            let msg = tokio::time::timeout(WAIT, points.recv())
                .await?
                .ok_or("closed")?;
            let body = String::from_utf8_lossy(&msg.payload).into_owned();
            if body.contains("\"bad\"") {
                assert!(body.contains("injected for the test"), "{body}");
                break;
            }
        }
        assert_eq!(next_state(&mut states).await?, "online");
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(parts.describe_down(), None);
        assert_eq!(parts.snapshot()[0].1.restarts, 1);
        // The handle made before the panic reaches the restarted task.
        let value = handles[0].write(0, WriteData::Registers(vec![42])).await?;
        assert_eq!(value.to_string(), "42");
        assert_eq!(bank.read_point(1, &devices[0].points[0]), Some(vec![42]));

        cancel.cancel();
        supervisor.await?;
        sim.await?;
        assert!(tree.close(tokio::time::Instant::now() + WAIT).await);
        broker.shutdown().await;
        Ok(())
    }
}
