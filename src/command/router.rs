//! The command router: `.../set` messages (from the agent's subscription) and `.../confirm`
//! messages (subscribed here) → the worker of their device, one task per device; a command for
//! an unknown device, or one more than a device's queue holds, is refused here.
//!
//! Across reloads ([`Handover`]): a generation that is replaced (its command channel closed,
//! not cancelled) hands the commands its workers hold for confirmation to its successor, which
//! adopts them before it serves its first command; a cancelled one (the agent stops) fails
//! them with `shutting_down`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::parse;
use super::reply::{Failure, Record, Replier};
use super::worker::{Handed, Input, Worker};
use crate::broker::{Broker, Message};
use crate::config::{CommandSettings, Device};
use crate::field::poller::DeviceHandle;
use crate::payload::ResultCode;
use crate::topics::Topics;

/// Commands waiting for one device before new ones are refused as `busy`.
const DEVICE_QUEUE: usize = 1024;
/// Confirmations waiting in the in-process subscription.
const CONFIRM_BACKLOG: usize = 256;

/// How long a new generation waits for the held commands of the one it replaces (which
/// first finishes the commands it had queued).
const ADOPT_WAIT: Duration = Duration::from_secs(15);

/// What a router generation receives from the one before it and gives the one after it.
#[derive(Default)]
pub struct Handover {
    /// The held commands of the previous generation, awaited before the first command.
    pub adopt: Option<oneshot::Receiver<Vec<Handed>>>,
    /// Where this generation's held commands go when it is replaced: set by the replacer
    /// before this generation's command channel closes.
    pub successor: Arc<Mutex<Option<oneshot::Sender<Vec<Handed>>>>>,
}

/// A device as seen by the command path.
pub struct Target {
    pub device: Arc<Device>,
    pub handle: DeviceHandle,
}

/// Routes command messages (`commands`, from the `.../set` subscription) and confirmations
/// (subscribed here) to per-device workers until `cancel`.
pub async fn run(
    targets: Vec<Target>,
    topics: Topics,
    broker: Arc<Broker>,
    mut commands: mpsc::Receiver<Message>,
    settings: CommandSettings,
    cancel: CancellationToken,
    handover: Handover,
) {
    let mut confirms = broker.subscribe(&topics.confirm_filter(), CONFIRM_BACKLOG);
    let replier = Replier {
        topics: topics.clone(),
        broker,
        audit_publish: settings.audit_publish,
    };
    let mut adopted = adopted(handover.adopt, &targets, &replier).await;
    let tracker = TaskTracker::new();
    let mut workers: HashMap<String, mpsc::Sender<Input>> = HashMap::new();
    let mut handles = Vec::with_capacity(targets.len());
    for t in targets {
        let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
        let span = tracing::info_span!("commands", device = %t.device.name);
        let held = adopted.remove(&t.device.name).unwrap_or_default();
        workers.insert(t.device.name.clone(), tx);
        let mut worker = Worker::new(t, replier.clone(), settings.writes);
        handles.push(
            tracker.spawn(
                async move {
                    for h in held {
                        worker.adopt(h).await;
                    }
                    worker.run(rx).await
                }
                .instrument(span),
            ),
        );
    }
    loop {
        let input = tokio::select! {
            () = cancel.cancelled() => break,
            m = commands.recv() => match m { Some(m) => Input::Set(m), None => break },
            m = confirms.recv() => match m { Some(m) => Input::Confirm(m), None => break },
        };
        let (msg, parsed) = match &input {
            Input::Set(m) => (m, topics.parse_command(&m.topic)),
            Input::Confirm(m) => (m, topics.parse_confirm(&m.topic)),
        };
        let Some((device, point)) = parsed else {
            continue;
        };
        let (device, point) = (device.to_owned(), point.to_owned());
        let Some(worker) = workers.get(&device) else {
            let f = Failure::new(
                ResultCode::UnknownDevice,
                format!("no device `{device}` in this gateway's config"),
            );
            refuse(&replier, msg, &device, &point, &f).await;
            continue;
        };
        if let Err(e) = worker.try_send(input) {
            let input = match e {
                mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => i,
            };
            let msg = match &input {
                Input::Set(m) | Input::Confirm(m) => m,
            };
            let f = Failure::new(
                ResultCode::Busy,
                format!("{DEVICE_QUEUE} commands already waiting for `{device}`"),
            );
            refuse(&replier, msg, &device, &point, &f).await;
        }
    }
    drop(workers);
    // Replaced (the channel closed, not cancelled): hand the held commands over.
    let successor = if cancel.is_cancelled() {
        None
    } else {
        handover
            .successor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    };
    let mut handed = Vec::new();
    for handle in handles {
        let Ok(mut worker) = handle.await else {
            continue;
        };
        match &successor {
            Some(_) => handed.extend(worker.hand_over()),
            None => worker.fail_held().await,
        }
    }
    if let Some(tx) = successor {
        if let Err(lost) = tx.send(handed) {
            tracing::warn!(
                commands = lost.len(),
                "the next command router is gone; held commands are dropped"
            );
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// The previous generation's held commands, by device; those for a device this generation
/// does not serve are ended here with `point_changed`.
async fn adopted(
    adopt: Option<oneshot::Receiver<Vec<Handed>>>,
    targets: &[Target],
    replier: &Replier,
) -> HashMap<String, Vec<Handed>> {
    let mut by_device: HashMap<String, Vec<Handed>> = HashMap::new();
    let Some(rx) = adopt else {
        return by_device;
    };
    let handed = match tokio::time::timeout(ADOPT_WAIT, rx).await {
        Ok(Ok(handed)) => handed,
        // The previous router ended without handing over (it failed, or took too long).
        Ok(Err(_)) | Err(_) => return by_device,
    };
    for h in handed {
        if targets.iter().any(|t| t.device.name == h.device) {
            by_device.entry(h.device.clone()).or_default().push(h);
            continue;
        }
        let f = Failure::new(
            ResultCode::PointChanged,
            format!(
                "a reload removed device `{}` before the command was confirmed",
                h.device
            ),
        );
        let rec = Record {
            device: &h.device,
            point: h.point_name(),
            id: h.id(),
            request: Some(h.value()),
            old: None,
            result: Err(&f),
            confirmed_by: None,
        };
        replier.finish(h.msg(), None, &rec).await;
    }
    by_device
}

/// The result of a command refused before it reached a device's worker.
async fn refuse(replier: &Replier, msg: &Message, device: &str, point: &str, f: &Failure) {
    let parsed = parse::parse(&msg.payload).ok();
    let rec = Record {
        device,
        point,
        id: parsed.as_ref().and_then(|c| c.id.as_deref()),
        request: parsed.as_ref().map(|c| &c.value),
        old: None,
        result: Err(f),
        confirmed_by: None,
    };
    replier.finish(msg, None, &rec).await;
}
