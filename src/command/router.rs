//! The command router: `.../set` messages (from the agent's subscription) and `.../confirm`
//! messages (subscribed here) → the worker of their device, one task per device; a command for
//! an unknown device, or one more than a device's queue holds, is refused here.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::parse;
use super::reply::{Failure, Record, Replier};
use super::worker::{Input, Worker};
use crate::broker::{Broker, Message};
use crate::config::{CommandSettings, Device};
use crate::field::poller::DeviceHandle;
use crate::payload::ResultCode;
use crate::topics::Topics;

/// Commands waiting for one device before new ones are refused as `busy`.
const DEVICE_QUEUE: usize = 1024;
/// Confirmations waiting in the in-process subscription.
const CONFIRM_BACKLOG: usize = 256;

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
) {
    let mut confirms = broker.subscribe(&topics.confirm_filter(), CONFIRM_BACKLOG);
    let replier = Replier {
        topics: topics.clone(),
        broker,
        audit_publish: settings.audit_publish,
    };
    let tracker = TaskTracker::new();
    let mut workers: HashMap<String, mpsc::Sender<Input>> = HashMap::new();
    for t in targets {
        let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
        let span = tracing::info_span!("commands", device = %t.device.name);
        workers.insert(t.device.name.clone(), tx);
        let worker = Worker::new(t, replier.clone(), settings.writes);
        tracker.spawn(worker.run(rx).instrument(span));
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
    tracker.close();
    tracker.wait().await;
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
