//! `.../set` commands: topic → device and point → parse → check → write through the device's
//! task → read back → result.
//!
//! Invariants:
//! - every command gets exactly one result on `.../set/result` (and on the MQTT 5 response
//!   topic when the caller gave one), whether it was refused, failed or succeeded;
//! - a refused command never reaches the device;
//! - commands for one device are executed one at a time, in arrival order, by that device's
//!   worker; a slow or offline device never delays commands for the others.

pub mod parse;
pub mod validate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::broker::{Broker, Message};
use crate::config::{Device, Qos};
use crate::field::codec::Value;
use crate::field::poller::DeviceHandle;
use crate::payload;
use crate::topics::Topics;

/// Commands waiting for one device before new ones are refused as `busy`.
const DEVICE_QUEUE: usize = 1024;

/// A device as seen by the command path.
pub struct Target {
    pub device: Arc<Device>,
    pub handle: DeviceHandle,
}

struct Worker {
    tx: mpsc::Sender<Message>,
}

/// Routes command messages to per-device workers until `cancel`.
pub async fn run(
    targets: Vec<Target>,
    topics: Topics,
    broker: Arc<Broker>,
    mut commands: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    for t in targets {
        let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
        let span = tracing::info_span!("commands", device = %t.device.name);
        let ctx = Ctx {
            topics: topics.clone(),
            broker: broker.clone(),
        };
        workers.insert(t.device.name.clone(), Worker { tx });
        tracker.spawn(device_worker(t, ctx, rx).instrument(span));
    }
    let ctx = Ctx {
        topics: topics.clone(),
        broker,
    };
    loop {
        let msg = tokio::select! {
            () = cancel.cancelled() => break,
            m = commands.recv() => match m { Some(m) => m, None => break },
        };
        let Some((device, point)) = topics.parse_command(&msg.topic) else {
            continue;
        };
        let Some(worker) = workers.get(device) else {
            let (device, point) = (device.to_owned(), point.to_owned());
            let reason = format!("no device `{device}` in this gateway's config");
            ctx.reply(
                &msg,
                &device,
                &point,
                None,
                Err(("unknown_device", &reason)),
            )
            .await;
            continue;
        };
        if let Err(e) = worker.tx.try_send(msg) {
            let msg = match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            if let Some((device, point)) = topics.parse_command(&msg.topic) {
                let (device, point) = (device.to_owned(), point.to_owned());
                let reason = format!("{DEVICE_QUEUE} commands already waiting for `{device}`");
                ctx.reply(&msg, &device, &point, None, Err(("busy", &reason)))
                    .await;
            }
        }
    }
    drop(workers);
    tracker.close();
    tracker.wait().await;
}

#[derive(Clone)]
struct Ctx {
    topics: Topics,
    broker: Arc<Broker>,
}

impl Ctx {
    /// Publishes the result on `.../set/result` and on the MQTT 5 response topic, and logs one
    /// audit line.
    async fn reply(
        &self,
        cmd: &Message,
        device: &str,
        point: &str,
        id: Option<&str>,
        outcome: Result<Value, (&str, &str)>,
    ) {
        let body = payload::command_result(id, outcome.clone(), SystemTime::now());
        let who = cmd.origin.client_id().unwrap_or("-");
        match outcome {
            Ok(v) => {
                info!(client_id = who, device, point, value = %v, payload = %String::from_utf8_lossy(&cmd.payload), "command written")
            }
            Err((code, reason)) => {
                info!(client_id = who, device, point, code, reason, payload = %String::from_utf8_lossy(&cmd.payload), "command refused")
            }
        }
        let mut out = vec![Message::agent(
            self.topics.command_result(device, point),
            body.clone(),
            Qos::AtLeastOnce,
            false,
        )];
        if let Some(rt) = &cmd.response_topic {
            let mut m = Message::agent(rt.clone(), body, Qos::AtLeastOnce, false);
            m.correlation_data = cmd.correlation_data.clone();
            out.push(m);
        }
        if let Err(e) = self.broker.publish_batch(out).await {
            warn!(error = %e, "cannot publish command result");
        }
    }
}

async fn device_worker(target: Target, ctx: Ctx, mut rx: mpsc::Receiver<Message>) {
    let points: HashMap<&str, usize> = target
        .device
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    while let Some(msg) = rx.recv().await {
        let Some((device, point_name)) = ctx.topics.parse_command(&msg.topic) else {
            continue;
        };
        let parsed = parse::parse(&msg.payload);
        let id = parsed.as_ref().ok().and_then(|c| c.id.clone());
        let Some(&index) = points.get(point_name) else {
            let reason = format!("device `{device}` has no point `{point_name}`");
            ctx.reply(
                &msg,
                device,
                point_name,
                id.as_deref(),
                Err(("unknown_point", &reason)),
            )
            .await;
            continue;
        };
        let cmd = match parsed {
            Ok(c) => c,
            Err(reason) => {
                ctx.reply(
                    &msg,
                    device,
                    point_name,
                    None,
                    Err(("bad_payload", &reason)),
                )
                .await;
                continue;
            }
        };
        let point = &target.device.points[index];
        let data = match validate::check(point, &cmd.value) {
            Ok(d) => d,
            Err(r) => {
                ctx.reply(
                    &msg,
                    device,
                    point_name,
                    id.as_deref(),
                    Err((r.code, &r.message)),
                )
                .await;
                continue;
            }
        };
        match target.handle.write(index, data).await {
            Ok(v) => {
                ctx.reply(&msg, device, point_name, id.as_deref(), Ok(v))
                    .await
            }
            Err(e) => {
                let reason = e.to_string();
                ctx.reply(
                    &msg,
                    device,
                    point_name,
                    id.as_deref(),
                    Err((e.code(), &reason)),
                )
                .await;
            }
        }
    }
}
