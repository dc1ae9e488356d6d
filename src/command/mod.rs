//! `.../set` commands: topic → device and point → parse → check → write through the device's
//! task → read back → result, with the safety rules of the point (`rate_limit`, `confirm`) and
//! of the gateway (`commands: {writes, audit}`).
//!
//! - `parse`    payloads of `.../set` and `.../confirm` (pure)
//! - `validate` a value against its point, encoded for the wire (pure)
//! - `worker`   one device's commands, in order: hold, rate limit, write, result
//! - `reply`    results, interim answers of held commands, and the audit trail
//!
//! Invariants:
//! - every command gets exactly one result on `.../set/result` (and on the MQTT 5 response
//!   topic when the caller gave one), whether it was refused, failed or succeeded, and one
//!   audit line;
//! - a refused command never reaches the device;
//! - commands for one device are executed one at a time, in arrival order, by that device's
//!   worker; a slow or offline device never delays commands for the others.

pub mod parse;
mod reply;
pub mod validate;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::{Broker, Message};
use crate::config::{CommandSettings, Device};
use crate::field::poller::DeviceHandle;
use crate::topics::Topics;
use reply::{Failure, Record, Replier};
use worker::{Input, Worker};

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
                "unknown_device",
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
                "busy",
                format!("{DEVICE_QUEUE} commands already waiting for `{device}`"),
            );
            refuse(&replier, msg, &device, &point, &f).await;
        }
    }
    drop(workers);
    tracker.close();
    tracker.wait().await;
}

/// The write rules of a point for `ferrule check`: `writable 0..90 step 0.5 rate 1s confirm 10s
/// enum off=0,auto=1`; `None` when it is not writable.
pub fn describe(p: &crate::config::Point) -> Option<String> {
    use crate::config::{show_duration, Writable};
    let Writable::Yes { min, max } = p.writable else {
        return None;
    };
    let mut out = String::from("writable");
    match (min, max) {
        (None, None) => {}
        (lo, hi) => out.push_str(&format!(
            " {}..{}",
            lo.map_or(String::new(), |v| v.to_string()),
            hi.map_or(String::new(), |v| v.to_string())
        )),
    }
    if let Some(step) = p.write.step {
        out.push_str(&format!(" step {step}"));
    }
    if let Some(period) = p.write.rate_limit {
        out.push_str(&format!(" rate 1/{}", show_duration(period)));
    }
    if let Some(period) = p.write.confirm {
        out.push_str(&format!(" confirm {}", show_duration(period)));
    }
    if !p.names.is_empty() {
        let names: Vec<String> = p.names.iter().map(|(n, v)| format!("{n}={v}")).collect();
        out.push_str(&format!(" enum {}", names.join(",")));
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{DataType, Point, RegisterKind, Writable};

    #[test]
    fn check_describes_the_write_rules() {
        let mut p = Point::new("sp", RegisterKind::Holding, 1, DataType::U16);
        assert_eq!(describe(&p), None);
        p.writable = Writable::Yes {
            min: None,
            max: None,
        };
        assert_eq!(describe(&p).as_deref(), Some("writable"));
        p.writable = Writable::Yes {
            min: Some(0.0),
            max: None,
        };
        p.write.step = Some(0.5);
        p.write.rate_limit = Some(Duration::from_secs(1));
        p.write.confirm = Some(Duration::from_secs(10));
        p.names = vec![("off".into(), 0.0), ("on".into(), 1.0)];
        assert_eq!(
            describe(&p).as_deref(),
            Some("writable 0.. step 0.5 rate 1/1s confirm 10s enum off=0,on=1")
        );
    }
}
