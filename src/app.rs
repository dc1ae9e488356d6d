//! Wiring: builds every component from a [`Config`], runs them under cancellation tokens, and
//! drains them in a fixed order on shutdown.
//!
//! Start order: queue → broker (listeners bound: a taken port fails here, before anything else
//! runs) → uplink → device tasks → command router.
//! Drain order (each stage bounded by a deadline): device tasks (they publish `offline`) →
//! command router → agent `offline` → uplink (tries to flush the backlog for a few seconds;
//! what is left stays queued) → queue (flushed and closed) → broker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::broker::{Broker, Message, NoTap, Tap};
use crate::command::{self, Target};
use crate::config::{Config, Device, Qos};
use crate::health::Health;
use crate::store::Queue;
use crate::topics::Topics;
use crate::uplink::{Forwarder, Local, UplinkTask};

/// How long device tasks get to stop and publish their final state.
const FIELD_DRAIN: Duration = Duration::from_secs(5);
/// Commands waiting in the in-process subscription.
const COMMAND_BACKLOG: usize = 1024;

/// Runs the agent until `shutdown` resolves, then drains. Errors are start-up failures
/// (listener in use, queue unreadable, TLS material missing); everything after start-up is
/// retried and logged, never fatal.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with(config, Health::from_env(), shutdown).await
}

/// [`run`] with the health side given: systemd notifications (READY=1 once the listeners are
/// bound, the queue is open and the devices started; STOPPING=1 when draining), the watchdog
/// and the metrics endpoint.
pub async fn run_with(
    mut config: Config,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let topics = Topics::new(&config.site);
    let metrics_listener = match &config.metrics {
        Some(m) => Some(crate::health::http::bind(m.bind).await?),
        None => None,
    };

    let queue = match &config.uplink {
        // Opening checks the whole file's integrity: keep it off the async workers.
        Some(u) => {
            let queue_config = u.queue.clone();
            let opened = tokio::task::spawn_blocking(move || Queue::open_config(&queue_config))
                .await
                .context("the queue opening task failed")?;
            let queue = opened.with_context(|| {
                format!("cannot open the uplink queue {}", u.queue.path.display())
            })?;
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
            Some(queue)
        }
        None => None,
    };
    let tap: Arc<dyn Tap> = match (&config.uplink, &queue) {
        (Some(u), Some(q)) => {
            let downlink_filters = u.downlink.iter().map(|d| d.remote.clone()).collect();
            Arc::new(Forwarder::new(
                u.forward.clone(),
                downlink_filters,
                q.clone(),
            ))
        }
        _ => Arc::new(NoTap),
    };

    let broker = Arc::new(Broker::start(&config.broker, tap).await?);
    health.metrics.set_broker(broker.stats());
    health.metrics.set_queue(queue.clone());
    let commands = broker.subscribe(&topics.command_filter(), COMMAND_BACKLOG);
    let agent_state = |state: &str| {
        Message::agent(
            topics.agent_state(),
            state.to_owned(),
            Qos::AtLeastOnce,
            true,
        )
    };
    broker
        .publish(agent_state("online"))
        .await
        .context("cannot publish the agent state")?;

    let uplink_cancel = CancellationToken::new();
    let uplink = match (&config.uplink, &queue) {
        (Some(u), Some(q)) => {
            let local: Arc<dyn Local> = broker.clone();
            let task = UplinkTask::new(u, &topics, q.clone(), local)
                .context("cannot set up the uplink")?
                .with_beat(health.progress.register("uplink"));
            health.metrics.set_uplink(Some(task.status()));
            let span = tracing::info_span!("uplink", url = %u.url);
            Some(tokio::spawn(
                task.run(uplink_cancel.clone()).instrument(span),
            ))
        }
        _ => None,
    };

    let field_cancel = CancellationToken::new();
    let field = TaskTracker::new();
    // One task per line (TCP host:port or serial bus); one handle per device, in config order.
    // The field and command sides share one copy of each device's point map.
    let devices: Vec<Arc<Device>> = std::mem::take(&mut config.devices)
        .into_iter()
        .map(Arc::new)
        .collect();
    let handles = crate::field::spawn(
        &devices,
        &config.modbus,
        &topics,
        broker.clone(),
        field_cancel.clone(),
        &field,
        &health,
    );
    let targets: Vec<Target> = devices
        .iter()
        .zip(handles)
        .map(|(device, handle)| Target {
            device: device.clone(),
            handle,
        })
        .collect();
    field.close();

    let command_cancel = CancellationToken::new();
    let router = tokio::spawn(command::run(
        targets,
        topics.clone(),
        broker.clone(),
        commands,
        command_cancel.clone(),
    ));

    info!(
        site = %config.site,
        devices = devices.len(),
        buses = config.buses.len(),
        uplink = config.uplink.as_ref().map_or_else(|| "off".to_owned(), |u| u.url.to_string()),
        "ferrule running"
    );
    let health_cancel = CancellationToken::new();
    let watchdog = health.spawn_watchdog(health_cancel.clone());
    let metrics_server = metrics_listener.map(|l| {
        tokio::spawn(crate::health::http::serve(
            l,
            health.metrics.clone(),
            health_cancel.clone(),
        ))
    });
    health.ready();
    shutdown.await;
    info!("shutting down");
    health.stopping();

    field_cancel.cancel();
    if tokio::time::timeout(FIELD_DRAIN, field.wait())
        .await
        .is_err()
    {
        warn!("device tasks did not stop within {FIELD_DRAIN:?}");
    }
    command_cancel.cancel();
    let _ = router.await;
    if let Err(e) = broker.publish(agent_state("offline")).await {
        warn!(error = %e, "cannot publish the agent state");
    }
    uplink_cancel.cancel();
    if let Some(uplink) = uplink {
        let _ = uplink.await;
    }
    if let Some(q) = queue {
        q.close()
            .await
            .context("cannot close the uplink queue cleanly")?;
    }
    broker.shutdown().await;
    health_cancel.cancel();
    for task in [watchdog, metrics_server].into_iter().flatten() {
        let _ = task.await;
    }
    info!("stopped");
    Ok(())
}
