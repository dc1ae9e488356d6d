//! One reload: load and check the new config; refuse it (the running one stays in force,
//! the errors are logged, published retained on `{site}/$agent/config` and counted) or apply
//! it as a diff (see `config::diff`).
//!
//! Prepare, then swap: everything of the new config that can fail (the new uplink with its
//! password file and TLS material, a queue opened for a new uplink, the metrics listener,
//! then the broker section, applied in place all or nothing) is built before anything is
//! stopped. A failure leaves the whole running config in force and the reload is reported
//! failed, with why, on `{site}/$agent/config` (`"ok": false`) and counted.
//!
//! Invariants: the queue is never closed or reopened by a reload (a changed `uplink.queue`
//! section waits for a restart, and says so); a line whose devices did not change keeps its
//! task; a broker section is applied to the running broker (clients stay connected).

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tracing::{error, info, warn};

use tokio::net::TcpListener;

use super::router::Router;
use super::watch::Trigger;
use super::{agent_state, build_uplink, make_tap, open_queue, Agent};
use crate::broker::{self, Message, Tap};
use crate::config::{self, diff, Config, Device, Qos};
use crate::store::Queue;
use crate::topics::Topics;
use crate::uplink::UplinkTask;

/// Reloads `path` into `agent`.
pub(super) async fn reload(agent: &mut Agent, path: &Path, trigger: Trigger) -> anyhow::Result<()> {
    agent
        .health
        .notify("RELOADING=1\nSTATUS=reloading the config");
    info!(path = %path.display(), trigger = trigger.as_str(), "reloading the config");
    let outcome = match load(path).await {
        Err(errors) => {
            for e in &errors {
                error!(error = %e, "config reload refused; the running config stays in force");
            }
            Outcome::Refused(errors)
        }
        Ok(new) => apply(agent, new).await?,
    };
    let (ok, mut body) = match &outcome {
        Outcome::Applied(changes) => (true, json!({"ok": true, "changes": changes})),
        Outcome::Refused(errors) => (false, json!({"ok": false, "errors": errors})),
    };
    if ok {
        agent.health.metrics.reload_succeeded();
    } else {
        agent.health.metrics.reload_failed();
    }
    body["file"] = json!(path.display().to_string());
    body["ts"] = json!(crate::payload::timestamp(std::time::SystemTime::now()));
    let msg = Message::agent(
        agent.topics.agent_config(),
        body.to_string(),
        Qos::AtLeastOnce,
        true,
    );
    if let Err(e) = agent.broker.publish(msg).await {
        warn!(error = %e, "cannot publish the reload outcome");
    }
    agent.health.notify("READY=1\nSTATUS=running");
    Ok(())
}

enum Outcome {
    Applied(Vec<String>),
    Refused(Vec<String>),
}

/// The new config, or every error (one per line, each locating its problem).
async fn load(path: &Path) -> Result<Config, Vec<String>> {
    let owned = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || {
        let config = config::load(&owned)
            .map_err(|e| e.to_string().lines().map(str::to_owned).collect::<Vec<_>>())?;
        // What `ferrule check` looks at too: the files the broker section names.
        let report = broker::check::check(&config.broker);
        if report.errors.is_empty() {
            Ok(config)
        } else {
            Err(report
                .errors
                .into_iter()
                .map(|e| format!("{}: {e}", owned.display()))
                .collect())
        }
    })
    .await;
    loaded.unwrap_or_else(|e| Err(vec![format!("the config loading task failed: {e}")]))
}

/// Applies a valid config as a diff: first prepares everything that can fail (a refusal
/// then leaves the whole running config in force), then swaps the parts that changed.
async fn apply(agent: &mut Agent, mut new: Config) -> anyhow::Result<Outcome> {
    let new_devices: Vec<Arc<Device>> = std::mem::take(&mut new.devices)
        .into_iter()
        .map(Arc::new)
        .collect();
    let d = diff::diff(&agent.config, &agent.devices, &new, &new_devices);
    if d.is_empty() {
        info!("config unchanged");
        return Ok(Outcome::Applied(Vec::new()));
    }
    let mut notes = d.summary();
    info!(changes = %notes.join("; "), "applying the new config");

    if let (Some(old), Some(u)) = (&agent.config.uplink, &mut new.uplink) {
        if old.queue != u.queue {
            warn!("uplink.queue changed: the queue stays as it is until the agent restarts");
            notes.push("uplink.queue: takes effect at the next restart".into());
            u.queue = old.queue.clone();
        }
    }
    let topics = Topics::new(&new.site);

    // 1. Prepare. The broker section last: it is applied in place, all or nothing.
    let prepared = match prepare(agent, &new, &d, &topics, &new_devices).await {
        Ok(p) => p,
        Err(e) => {
            error!(error = %e, "the new config cannot be applied; the running config stays in force");
            return Ok(Outcome::Refused(vec![e]));
        }
    };
    if d.broker {
        match agent.broker.reload(&new.broker).await {
            Ok(applied) => notes.extend(applied),
            Err(e) => {
                error!(error = %e, "the new broker section cannot be applied; the old one stays in force, and the rest of the running config with it");
                prepared.discard().await;
                return Ok(Outcome::Refused(vec![format!("broker: {e}")]));
            }
        }
    }

    // 2. Swap: nothing below fails. Lines (and commands) depend on the topics: stop them
    // first when those change, so they never publish under the old site.
    let all_lines = d.all_lines();
    if all_lines {
        agent.lines.stop_all().await;
        agent.slots = Arc::new(crate::field::HostSlots::new(usize::from(
            new.modbus.max_connections_per_host,
        )));
    } else {
        agent.lines.stop(d.removed.iter().chain(&d.changed)).await;
    }
    if d.site {
        if let Some(r) = agent.router.take() {
            r.stop().await;
        }
        // Otherwise the old site's retained agent state would say `online` for good.
        let _ = agent
            .broker
            .publish(agent_state(&agent.topics, "offline"))
            .await;
    }
    let Prepared {
        queue,
        uplink,
        metrics,
    } = prepared;
    if d.uplink || d.site {
        if let Some(u) = agent.uplink.take() {
            u.stop().await;
        }
        if queue.is_some() {
            agent.queue = queue;
        }
        let tap: Arc<dyn Tap> = make_tap(new.uplink.as_ref(), agent.queue.as_ref());
        agent.tap.set(tap);
        agent.health.metrics.set_queue(agent.queue.clone());
    }
    let new_lines = diff::lines(&new_devices);
    agent.config = new;
    agent.devices = new_devices;
    agent.topics = topics;
    if d.uplink || d.site {
        match uplink {
            Some(task) => agent.run_uplink(task),
            None => agent.health.metrics.set_uplink(None),
        }
    }
    let restart: Vec<(String, Vec<Arc<Device>>)> = new_lines
        .into_iter()
        .filter(|(k, _)| all_lines || d.added.contains(k) || d.changed.contains(k))
        .collect();
    agent.start_lines(restart.into_iter());
    let targets = agent.lines.targets(&agent.devices);
    match &mut agent.router {
        // No devices any more: commands off (a broker-only gateway).
        Some(_) if agent.devices.is_empty() => {
            if let Some(r) = agent.router.take() {
                r.stop().await;
            }
        }
        None if agent.devices.is_empty() => {}
        Some(r) => {
            r.replace(&agent.broker, &agent.topics, targets, agent.config.commands)
                .await
        }
        None => {
            let commands = Router::subscribe(&agent.broker, &agent.topics);
            agent.router = Some(Router::start(
                commands,
                &agent.broker,
                &agent.topics,
                targets,
                agent.config.commands,
                &agent.tree,
                agent.health.metrics.parts(),
            ));
        }
    }
    agent
        .health
        .metrics
        .retain_devices(agent.devices.iter().map(|d| d.name.as_str()));
    match metrics {
        MetricsChange::Keep => {}
        MetricsChange::Off => {
            if let Some(t) = agent.metrics_server.take() {
                t.stop().await;
            }
        }
        MetricsChange::Listen(listener) => {
            if let Some(t) = agent.metrics_server.take() {
                t.stop().await;
            }
            agent.metrics_server = Some(agent.serve_metrics(listener));
        }
    }
    if d.site {
        // The new site's agent state (the old one's stays retained as it was).
        let _ = agent
            .broker
            .publish(agent_state(&agent.topics, "online"))
            .await;
    }
    agent.reload_status(&mut notes).await;
    info!(changes = %notes.join("; "), "config reloaded");
    Ok(Outcome::Applied(notes))
}

/// What a reload built before stopping anything.
struct Prepared {
    /// The queue, opened for an uplink that had none.
    queue: Option<Queue>,
    /// The new uplink, built and checked (password file, TLS material), not started.
    uplink: Option<UplinkTask>,
    metrics: MetricsChange,
}

/// What becomes of the metrics endpoint.
enum MetricsChange {
    Keep,
    Off,
    /// Serve on this listener, bound already.
    Listen(TcpListener),
}

impl Prepared {
    /// The reload is refused after all: closes what was opened for it.
    async fn discard(self) {
        if let Some(q) = self.queue {
            if let Err(e) = q.close().await {
                warn!(error = %e, "cannot close the queue opened for the refused reload");
            }
        }
    }
}

/// Builds and checks every part of `new` that changed and can fail, stopping nothing.
async fn prepare(
    agent: &Agent,
    new: &Config,
    d: &diff::Diff,
    topics: &Topics,
    devices: &[Arc<Device>],
) -> Result<Prepared, String> {
    let mut p = Prepared {
        queue: None,
        uplink: None,
        metrics: MetricsChange::Keep,
    };
    if d.uplink || d.site {
        if let Some(u) = &new.uplink {
            let queue = match &agent.queue {
                Some(q) => q.clone(),
                None => {
                    let q = open_queue(u).await.map_err(|e| format!("uplink: {e:#}"))?;
                    p.queue = Some(q.clone());
                    q
                }
            };
            match build_uplink(u, topics, &queue, &agent.broker, devices, &agent.health) {
                Ok(task) => p.uplink = Some(task),
                Err(e) => {
                    p.discard().await;
                    return Err(format!("uplink: {e:#}"));
                }
            }
        }
    }
    if d.metrics {
        let old = agent.config.metrics.map(|m| m.bind);
        p.metrics = match &new.metrics {
            None => MetricsChange::Off,
            Some(m) if Some(m.bind) == old => MetricsChange::Keep,
            Some(m) => match crate::health::http::bind(m.bind).await {
                Ok(listener) => MetricsChange::Listen(listener),
                Err(e) => {
                    p.discard().await;
                    return Err(e.to_string());
                }
            },
        };
    }
    Ok(p)
}
