//! Wiring: builds every component from a [`Config`], runs them in one task tree
//! (`app::tree`: one root token, one tracker) under supervisors (`app::supervise`), reloads
//! the config as a diff, and drains them in a fixed order on shutdown.
//!
//! Start order: metrics listener and queue → broker (listeners bound: a taken port fails
//! here, before anything else runs) → uplink → device lines → command router → READY=1.
//! Drain order, under one overall deadline ([`SHUTDOWN_DEADLINE`], logged when exceeded):
//! status page → device lines (they publish `offline`) → command router → agent `offline` →
//! uplink (tries to flush the backlog for a few seconds; what is left stays queued) → queue
//! (flushed and closed) → broker → metrics and watchdog → whatever is left in the tree.
//!
//! Supervision: each device line, the uplink and the command router restart when they panic
//! or fail (a line's devices are `offline` meanwhile; `/health` and `STATUS=` name the part).
//!
//! Reload (file change or SIGHUP, see `app/reload.rs`): the new config is loaded and checked
//! first; an invalid one changes nothing. A valid one is prepared (everything that can fail:
//! the new uplink, queue, metrics listener, broker section) before anything is stopped, then
//! swapped in as a diff (`config::diff`): only the lines whose devices changed restart; the
//! uplink and the metrics endpoint restart only when their own section changed; the broker
//! is changed in place; the status page binds a new address before it leaves the old one
//! (see `app/status.rs`); the queue stays open throughout.

mod lines;
mod reload;
mod router;
mod status;
mod supervise;
mod switch;
mod tree;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

use crate::broker::{Broker, Message, NoTap, Tap};
use crate::config::{diff, Config, Device, Qos, Uplink};
use crate::field::HostSlots;
use crate::health::Health;
use crate::store::Queue;
use crate::topics::Topics;
use crate::uplink::{Forwarder, Local, UplinkTask};
use lines::{FieldCtx, Lines};
use router::Router;
use supervise::{supervise, Part, POLICY};
use switch::TapSwitch;
use tree::{Task, Tree};

/// The whole drain on shutdown, every stage included (systemd's `TimeoutStopSec` is 20 s).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);
/// What a stage still gets once the deadline has passed (the queue must still close).
const PAST_DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Runs the agent until `shutdown` resolves, then drains. Errors are start-up failures
/// (listener in use, queue unreadable, TLS material missing); everything after start-up is
/// retried and logged, never fatal.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with(config, None, Health::from_env(), shutdown).await
}

/// [`run`] for the config file at `path`, reloaded when it changes or on SIGHUP.
pub async fn run_file(
    config: Config,
    path: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(config, Some(path), Health::from_env(), shutdown).await
}

/// [`run`] with the health side given (systemd notifications: READY=1 once the listeners
/// are bound, the queue is open and the devices started; STOPPING=1 when draining; the
/// watchdog; the metrics) and, with `path`, reloads of that file.
pub async fn run_with(
    config: Config,
    path: Option<PathBuf>,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    // Poll the shutdown signal once before starting: its handlers are installed now, so a
    // SIGTERM during start-up (or right after `ferrule running`) drains instead of killing.
    let early = std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await;
    let tree = Tree::new();
    let mut agent = Agent::start(config, health.clone(), tree.clone()).await?;
    let mut triggers = path
        .as_deref()
        .map(|p| watch::Triggers::start(p, agent.config.profiles_dir.as_deref(), &tree));
    health.ready();
    // Status and watchdog pings only after READY=1 (systemd ignores pings before it).
    let cancel = tree.child();
    agent.watchdog = health.watchdog(cancel.clone()).map(|run| Task {
        handle: tree.spawn(run),
        cancel,
    });
    if !early {
        loop {
            let trigger = tokio::select! {
                () = &mut shutdown => break,
                t = next_trigger(&mut triggers) => t,
            };
            if let Some(path) = &path {
                if let Err(e) = reload::reload(&mut agent, path, trigger).await {
                    health.stopping();
                    let _ = agent.stop().await;
                    return Err(e);
                }
            }
        }
    }
    info!("shutting down");
    health.stopping();
    agent.stop().await
}

async fn next_trigger(triggers: &mut Option<watch::Triggers>) -> watch::Trigger {
    match triggers {
        Some(t) => t.next().await,
        None => std::future::pending().await,
    }
}

/// The running agent.
pub(crate) struct Agent {
    /// The config in force, without its devices (they are in `devices`).
    config: Config,
    /// The devices in force, shared by the field and command sides.
    devices: Vec<Arc<Device>>,
    topics: Topics,
    health: Health,
    queue: Option<Queue>,
    tap: Arc<TapSwitch>,
    broker: Arc<Broker>,
    uplink: Option<Task>,
    /// Connection slots shared by every line; replaced (with every line) when `modbus`
    /// changes.
    slots: Arc<HostSlots>,
    lines: Lines,
    router: Option<Router>,
    metrics_server: Option<Task>,
    /// The live status page (`status` section), if on.
    status: Option<status::StatusPage>,
    watchdog: Option<Task>,
    /// The task tree every task of the agent runs in.
    tree: Tree,
}

impl Agent {
    async fn start(mut config: Config, health: Health, tree: Tree) -> anyhow::Result<Agent> {
        let topics = Topics::new(&config.site);
        let metrics_listener = match &config.metrics {
            Some(m) => Some(crate::health::http::bind(m.bind).await?),
            None => None,
        };
        let status_listener = status::bind(&config).await?;
        let queue = match &config.uplink {
            Some(u) => Some(open_queue(u).await?),
            None => None,
        };
        let tap = Arc::new(TapSwitch::new(make_tap(
            config.uplink.as_ref(),
            queue.as_ref(),
        )));
        let broker_tap: Arc<dyn Tap> = tap.clone();
        let broker = Arc::new(Broker::start(&config.broker, broker_tap).await?);
        let commands = Router::subscribe(&broker, &topics);
        health.metrics.set_broker(broker.stats());
        health.metrics.set_queue(queue.clone());
        broker
            .publish(agent_state(&topics, "online"))
            .await
            .context("cannot publish the agent state")?;
        let devices: Vec<Arc<Device>> = std::mem::take(&mut config.devices)
            .into_iter()
            .map(Arc::new)
            .collect();
        let slots = Arc::new(HostSlots::new(usize::from(
            config.modbus.max_connections_per_host,
        )));
        let mut agent = Agent {
            config,
            devices,
            topics,
            health,
            queue,
            tap,
            broker,
            uplink: None,
            slots,
            lines: Lines::default(),
            router: None,
            metrics_server: None,
            status: None,
            watchdog: None,
            tree,
        };
        agent.status = status::StatusPage::start(
            &agent.config,
            &agent.broker,
            &agent.topics,
            &agent.devices,
            &agent.health.metrics,
            &agent.tree,
        );
        if let Some(task) = agent.prepare_uplink(&agent.config, &agent.topics, &agent.devices)? {
            agent.run_uplink(task);
        }
        agent.start_lines(diff::lines(&agent.devices).into_iter());
        // A broker-only gateway (no devices) has no command topics: `.../set` messages of LAN
        // clients are left alone (dropping the subscription ends it).
        agent.router = if agent.devices.is_empty() {
            drop(commands);
            info!("no devices: commands off");
            None
        } else {
            Some(Router::start(
                commands,
                &agent.broker,
                &agent.topics,
                agent.lines.targets(&agent.devices),
                agent.config.commands,
                &agent.tree,
                agent.health.metrics.parts(),
            ))
        };
        agent.metrics_server = metrics_listener.map(|l| agent.serve_metrics(l));
        if let (Some(page), Some(listener)) = (agent.status.as_mut(), status_listener) {
            page.set_targets(&agent.lines.targets(&agent.devices));
            page.serve(listener, &agent.config)?;
        }
        info!(
            site = %agent.config.site,
            devices = agent.devices.len(),
            buses = agent.config.buses.len(),
            uplink = agent.config.uplink.as_ref().map_or_else(|| "off".to_owned(), |u| u.url.to_string()),
            "ferrule running"
        );
        Ok(agent)
    }

    fn serve_metrics(&self, listener: tokio::net::TcpListener) -> Task {
        let metrics = self.health.metrics.clone();
        self.tree
            .task(|cancel| crate::health::http::serve(listener, metrics, cancel))
    }

    /// Builds the uplink of `config` (if it has one) over the open queue, without starting
    /// it: what can fail (password file, TLS material) fails here, before anything stops.
    fn prepare_uplink(
        &self,
        config: &Config,
        topics: &Topics,
        devices: &[Arc<Device>],
    ) -> anyhow::Result<Option<UplinkTask>> {
        let (Some(u), Some(q)) = (&config.uplink, &self.queue) else {
            return Ok(None);
        };
        build_uplink(u, topics, q, &self.broker, devices, &self.health).map(Some)
    }

    /// Runs `task` (from [`Agent::prepare_uplink`], on the config in force) under its
    /// supervisor, which builds it again for each restart.
    fn run_uplink(&mut self, task: UplinkTask) {
        let (Some(u), Some(q)) = (self.config.uplink.clone(), self.queue.clone()) else {
            return;
        };
        let span = tracing::info_span!("uplink", url = %u.url);
        let part = Part {
            name: "uplink".into(),
            parts: self.health.metrics.parts().clone(),
            tree: self.tree.clone(),
            policy: POLICY,
            forget: true,
        };
        let (topics, broker, devices, health) = (
            self.topics.clone(),
            self.broker.clone(),
            self.devices.clone(),
            self.health.clone(),
        );
        let mut first = Some(task);
        self.uplink = Some(self.tree.task(move |cancel| {
            supervise(
                part,
                cancel,
                move |cancel| {
                    let task = match first.take() {
                        Some(task) => Ok(task),
                        None => build_uplink(&u, &topics, &q, &broker, &devices, &health),
                    };
                    if let Ok(t) = &task {
                        health.metrics.set_uplink(Some(t.status()));
                    }
                    async move {
                        let task = task.map_err(|e| format!("{e:#}"))?;
                        task.run(cancel.clone()).await;
                        if cancel.is_cancelled() {
                            Ok(())
                        } else {
                            Err("the uplink task ended without being asked to".to_owned())
                        }
                    }
                },
                |_| async {},
            )
            .instrument(span)
        }));
    }

    fn start_lines(&mut self, lines: impl Iterator<Item = (String, Vec<Arc<Device>>)>) {
        let ctx = FieldCtx {
            slots: &self.slots,
            topics: &self.topics,
            broker: &self.broker,
            health: &self.health,
            tree: &self.tree,
        };
        for (key, devices) in lines {
            self.lines.start(key, devices, &ctx);
        }
    }

    /// Drains in the order of the module docs, under [`SHUTDOWN_DEADLINE`].
    async fn stop(mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        let mut drain = Drain {
            deadline,
            exceeded: false,
        };
        if let Some(page) = self.status.take() {
            drain.stage("status page", page.stop()).await;
        }
        drain.stage("device lines", self.lines.stop_all()).await;
        if let Some(router) = self.router.take() {
            drain.stage("command router", router.stop()).await;
        }
        let offline = self.broker.publish(agent_state(&self.topics, "offline"));
        if let Some(Err(e)) = drain.stage("agent state", offline).await {
            warn!(error = %e, "cannot publish the agent state");
        }
        if let Some(uplink) = self.uplink.take() {
            drain.stage("uplink", uplink.stop()).await;
        }
        let mut closed = Ok(());
        if let Some(q) = self.queue.take() {
            if let Some(Err(e)) = drain.stage("queue", q.close()).await {
                closed = Err(e).context("cannot close the uplink queue cleanly");
            }
        }
        drain.stage("broker", self.broker.shutdown()).await;
        for task in [self.metrics_server.take(), self.watchdog.take()]
            .into_iter()
            .flatten()
        {
            drain.stage("metrics and watchdog", task.stop()).await;
        }
        let left = deadline.max(Instant::now() + PAST_DEADLINE_GRACE);
        if !self.tree.close(left).await {
            drain.exceeded = true;
        }
        if drain.exceeded {
            warn!(deadline = ?SHUTDOWN_DEADLINE, "the drain took longer than its deadline");
        }
        info!("stopped");
        closed
    }
}

/// The shutdown drain's clock.
struct Drain {
    deadline: Instant,
    exceeded: bool,
}

impl Drain {
    /// Runs one stage until the deadline (or, once it has passed, for a short grace); `None`
    /// when the stage did not finish, which is logged.
    async fn stage<T>(&mut self, name: &str, stage: impl Future<Output = T>) -> Option<T> {
        let until = self.deadline.max(Instant::now() + PAST_DEADLINE_GRACE);
        match tokio::time::timeout_at(until, stage).await {
            Ok(out) => Some(out),
            Err(_) => {
                self.exceeded = true;
                warn!(
                    stage = name,
                    deadline = ?SHUTDOWN_DEADLINE,
                    "shutdown deadline exceeded; going on with the next stage"
                );
                None
            }
        }
    }
}

/// The uplink task for `u` over `queue`, publishing into `broker`.
fn build_uplink(
    u: &Uplink,
    topics: &Topics,
    queue: &Queue,
    broker: &Arc<Broker>,
    devices: &[Arc<Device>],
    health: &Health,
) -> anyhow::Result<UplinkTask> {
    let local: Arc<dyn Local> = broker.clone();
    Ok(UplinkTask::new(u, topics, queue.clone(), local)
        .context("cannot set up the uplink")?
        .with_devices(devices.iter().map(|d| &**d), topics)
        .with_beat(health.progress.register("uplink").supervised()))
}

fn agent_state(topics: &Topics, state: &str) -> Message {
    Message::agent(
        topics.agent_state(),
        state.to_owned(),
        Qos::AtLeastOnce,
        true,
    )
}

/// Opens the queue of `u`; its integrity check runs off the async workers.
async fn open_queue(u: &Uplink) -> anyhow::Result<Queue> {
    let queue_config = u.queue.clone();
    let opened = tokio::task::spawn_blocking(move || Queue::open_config(&queue_config))
        .await
        .context("the queue opening task failed")?;
    let queue = opened
        .with_context(|| format!("cannot open the uplink queue {}", u.queue.path.display()))?;
    if let Ok(stats) = queue.stats().await {
        info!(
            path = %u.queue.path.display(),
            backlog = stats.depth,
            bytes = stats.bytes,
            max_bytes = u.queue.max_bytes,
            on_full = u.queue.on_full.as_str(),
            "uplink queue opened"
        );
    }
    Ok(queue)
}

/// The broker's tap for `uplink`: its forward rules into `queue`, or nothing.
fn make_tap(uplink: Option<&Uplink>, queue: Option<&Queue>) -> Arc<dyn Tap> {
    match (uplink, queue) {
        (Some(u), Some(q)) => {
            let downlink_filters = u.downlink.iter().map(|d| d.remote.clone()).collect();
            Arc::new(Forwarder::new(
                u.forward.clone(),
                downlink_filters,
                q.clone(),
            ))
        }
        _ => Arc::new(NoTap),
    }
}
