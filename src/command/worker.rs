//! One device's commands, one at a time in arrival order: parse → global switch → check →
//! (hold for confirmation) → rate limit → write through the device's line task → result.
//!
//! Invariants:
//! - every `.../set` gets exactly one final result; a held one also gets an interim
//!   `awaiting_confirm` answer first, and its final result when it is confirmed, replaced
//!   (`superseded`), expires (`confirm_timeout`) or the agent stops (`shutting_down`);
//! - a held command survives a reload that leaves its point (and device) as they were: the
//!   old worker hands it over ([`Worker::hand_over`]) and the new one adopts it with its
//!   deadline ([`Worker::adopt`]); a reload that changed or removed the point ends it with
//!   `point_changed`;
//! - a command for an offline device fails at once (`device_offline`), also before being held;
//! - `rate_limit` counts the writes that were sent to the device, not refused commands.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::broker::Message;
use crate::config::Point;
use crate::field::link::WriteData;
use crate::field::WriteError;
use crate::payload::ResultCode;

use super::parse::{self, CommandValue};
use super::reply::{Caller, Failure, Record, Replier};
use super::validate;
use super::Target;

/// What the router hands a device worker.
pub enum Input {
    Set(Message),
    Confirm(Message),
}

/// A held command handed from the worker of one router generation to the next (a reload).
pub struct Handed {
    /// The device's name.
    pub device: String,
    /// The device's definition when the command was held (where the write would go).
    target: std::sync::Arc<crate::config::Device>,
    /// The point's definition when the command was held.
    point: Point,
    held: Held,
}

impl Handed {
    /// The message the command came in.
    pub fn msg(&self) -> &Message {
        &self.held.msg
    }

    /// The point's name.
    pub fn point_name(&self) -> &str {
        &self.point.name
    }

    /// The command's id, if it had one.
    pub fn id(&self) -> Option<&str> {
        self.held.id.as_deref()
    }

    /// The value it would write.
    pub fn value(&self) -> &CommandValue {
        &self.held.value
    }
}

/// A command waiting for its confirmation.
struct Held {
    msg: Message,
    id: Option<String>,
    value: CommandValue,
    data: WriteData,
    deadline: Instant,
}

/// The state of one device's worker.
pub struct Worker {
    target: Target,
    replier: Replier,
    writes_enabled: bool,
    index: HashMap<String, usize>,
    held: HashMap<usize, Held>,
    last_write: HashMap<usize, Instant>,
}

/// A command that passed every check, ready to be written.
struct Ready<'a> {
    msg: &'a Message,
    confirm: Option<&'a Message>,
    point: usize,
    id: Option<String>,
    value: CommandValue,
    data: WriteData,
}

impl Worker {
    pub fn new(target: Target, replier: Replier, writes_enabled: bool) -> Self {
        let index = target
            .device
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Self {
            target,
            replier,
            writes_enabled,
            index,
            held: HashMap::new(),
            last_write: HashMap::new(),
        }
    }

    /// Serves `rx` until it closes; returns the worker with the commands it still holds
    /// (the router fails them, or hands them to its successor).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>) -> Self {
        loop {
            let next = self.held.values().map(|h| h.deadline).min();
            let input = tokio::select! {
                input = rx.recv() => input,
                () = sleep_until(next) => {
                    self.expire(Instant::now()).await;
                    continue;
                }
            };
            match input {
                Some(Input::Set(msg)) => self.set(msg).await,
                Some(Input::Confirm(msg)) => self.confirm(msg).await,
                None => break,
            }
        }
        self
    }

    /// The agent stops: every held command gets `shutting_down`.
    pub async fn fail_held(&mut self) {
        let held: Vec<(usize, Held)> = self.held.drain().collect();
        for (point, h) in held {
            let f = Failure::new(
                ResultCode::ShuttingDown,
                "the agent stopped before the command was confirmed",
            );
            self.fail(&h.msg, None, point, h.id.as_deref(), Some(&h.value), &f)
                .await;
        }
    }

    /// A reload replaces this worker: the held commands, for the next one.
    pub fn hand_over(&mut self) -> Vec<Handed> {
        let device = self.device().to_owned();
        let held: Vec<(usize, Held)> = self.held.drain().collect();
        held.into_iter()
            .map(|(point, held)| Handed {
                device: device.clone(),
                target: self.target.device.clone(),
                point: self.point(point).clone(),
                held,
            })
            .collect()
    }

    /// Takes over a command the previous worker held: kept, with its deadline, when the point
    /// is still defined as it was on the same device (address and unit id); ended with
    /// `point_changed` otherwise.
    pub async fn adopt(&mut self, h: Handed) {
        let device = &self.target.device;
        let same_device = device.transport == h.target.transport && device.unit == h.target.unit;
        let same = self
            .index
            .get(&h.point.name)
            .copied()
            .filter(|&i| same_device && *self.point(i) == h.point);
        let Some(point) = same else {
            let f = Failure::new(
                ResultCode::PointChanged,
                format!(
                    "a reload changed or removed `{}/{}` before the command was confirmed",
                    self.device(),
                    h.point.name
                ),
            );
            // Reported against the point as the command named it (it may be gone).
            let rec = Record {
                device: &h.device,
                point: &h.point.name,
                id: h.held.id.as_deref(),
                request: Some(&h.held.value),
                old: None,
                result: Err(&f),
                confirmed_by: None,
            };
            self.replier.finish(&h.held.msg, None, &rec).await;
            return;
        };
        self.held.insert(point, h.held);
    }

    fn device(&self) -> &str {
        &self.target.device.name
    }

    fn point(&self, i: usize) -> &Point {
        &self.target.device.points[i]
    }

    async fn set(&mut self, msg: Message) {
        let Some((_, name)) = self.replier.topics.parse_command(&msg.topic) else {
            return;
        };
        let name = name.to_owned();
        let parsed = parse::parse(&msg.payload);
        let id = parsed.as_ref().ok().and_then(|c| c.id.clone());
        let Some((point, cmd)) = self.resolve(&msg, &name, parsed, id.as_deref()).await else {
            return;
        };
        if !self.writes_enabled {
            let f = Failure::new(
                ResultCode::WritesDisabled,
                "writes are disabled on this gateway (`commands: {writes: disabled}`)",
            );
            self.fail(&msg, None, point, id.as_deref(), Some(&cmd.value), &f)
                .await;
            return;
        }
        let data = match validate::check(self.point(point), &cmd.value) {
            Ok(d) => d,
            Err(r) => {
                let f = Failure::new(r.code, r.message);
                self.fail(&msg, None, point, id.as_deref(), Some(&cmd.value), &f)
                    .await;
                return;
            }
        };
        if !self.target.handle.is_online() {
            let f = Failure::new(
                ResultCode::DeviceOffline,
                format!(
                    "device `{}` is offline; the command is not kept",
                    self.device()
                ),
            );
            self.fail(&msg, None, point, id.as_deref(), Some(&cmd.value), &f)
                .await;
            return;
        }
        if let Some(timeout) = self.point(point).write.confirm {
            if let Some(old) = self.held.remove(&point) {
                let f = Failure::new(
                    ResultCode::Superseded,
                    "a newer command for the point replaced it before it was confirmed",
                );
                self.fail(
                    &old.msg,
                    None,
                    point,
                    old.id.as_deref(),
                    Some(&old.value),
                    &f,
                )
                .await;
            }
            let expires = SystemTime::now() + timeout;
            self.replier
                .pending(&msg, self.device(), &name, id.as_deref(), expires)
                .await;
            self.held.insert(
                point,
                Held {
                    msg,
                    id,
                    value: cmd.value,
                    data,
                    deadline: Instant::now() + timeout,
                },
            );
            return;
        }
        let ready = Ready {
            msg: &msg,
            confirm: None,
            point,
            id,
            value: cmd.value,
            data,
        };
        self.execute(ready).await;
    }

    async fn confirm(&mut self, msg: Message) {
        let Some((_, name)) = self.replier.topics.parse_confirm(&msg.topic) else {
            return;
        };
        let name = name.to_owned();
        let parsed = parse::parse_confirm(&msg.payload);
        let id = parsed.as_ref().ok().and_then(|c| c.id.clone());
        let Some((point, confirm)) = self.resolve(&msg, &name, parsed, id.as_deref()).await else {
            return;
        };
        let Some(held) = self.held.get(&point) else {
            let f = Failure::new(
                ResultCode::NothingToConfirm,
                format!(
                    "no command for `{}/{name}` is waiting for a confirmation",
                    self.device()
                ),
            );
            self.fail(&msg, None, point, id.as_deref(), confirm.value.as_ref(), &f)
                .await;
            return;
        };
        let matches = match &held.id {
            Some(hid) => {
                confirm.id.as_deref() == Some(hid.as_str())
                    && confirm.value.as_ref().is_none_or(|v| *v == held.value)
            }
            None => confirm.value.as_ref() == Some(&held.value),
        };
        if !matches {
            let want = match &held.id {
                Some(hid) => format!("the id {hid:?}"),
                None => format!("the value {}", held.value),
            };
            let f = Failure::new(
                ResultCode::ConfirmMismatch,
                format!(
                    "the confirmation does not match the waiting command: it must carry {want}"
                ),
            );
            // The confirm is refused; the held command keeps waiting until it expires.
            self.fail(&msg, None, point, id.as_deref(), confirm.value.as_ref(), &f)
                .await;
            return;
        }
        let Some(held) = self.held.remove(&point) else {
            return;
        };
        let ready = Ready {
            msg: &held.msg,
            confirm: Some(&msg),
            point,
            id: held.id.clone(),
            value: held.value.clone(),
            data: held.data.clone(),
        };
        self.execute(ready).await;
    }

    /// Held commands whose time is up get `confirm_timeout`.
    async fn expire(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for point in due {
            if let Some(h) = self.held.remove(&point) {
                let timeout = self.point(point).write.confirm.unwrap_or_default();
                let f = Failure::new(
                    ResultCode::ConfirmTimeout,
                    format!(
                        "not confirmed on {} within {}",
                        self.replier
                            .topics
                            .confirm(self.device(), &self.point(point).name),
                        crate::config::show_duration(timeout)
                    ),
                );
                self.fail(&h.msg, None, point, h.id.as_deref(), Some(&h.value), &f)
                    .await;
            }
        }
    }

    /// The rate limit, the write and its read-back, and the result.
    async fn execute(&mut self, r: Ready<'_>) {
        let now = Instant::now();
        if let (Some(period), Some(last)) = (
            self.point(r.point).write.rate_limit,
            self.last_write.get(&r.point),
        ) {
            let since = now.saturating_duration_since(*last);
            if since < period {
                let f = Failure::new(
                    ResultCode::RateLimited,
                    format!(
                        "point `{}` takes at most one write per {}; the last was {} ago",
                        self.point(r.point).name,
                        crate::config::show_duration(period),
                        show_ms(since)
                    ),
                );
                self.fail(
                    r.msg,
                    r.confirm,
                    r.point,
                    r.id.as_deref(),
                    Some(&r.value),
                    &f,
                )
                .await;
                return;
            }
        }
        let report = self.target.handle.write_report(r.point, r.data).await;
        if !matches!(report.result, Err(WriteError::Offline(_))) {
            self.last_write.insert(r.point, now);
        }
        let confirmed_by = r.confirm.map(|c| Caller::of(&c.origin));
        let failure = report.result.as_ref().err().map(|e| match e {
            WriteError::Mismatch(v) => Failure {
                code: e.code(),
                error: format!("wrote {} but the device reads back {v}", r.value),
                read_back: Some(v.clone()),
            },
            other => Failure::new(other.code(), other.to_string()),
        });
        let result = match (&report.result, &failure) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(f)) => Err(f),
            (Err(_), None) => return,
        };
        let name = self.point(r.point).name.clone();
        let rec = Record {
            device: self.device(),
            point: &name,
            id: r.id.as_deref(),
            request: Some(&r.value),
            old: report.old.as_ref(),
            result,
            confirmed_by: confirmed_by.as_ref(),
        };
        self.replier.finish(r.msg, r.confirm, &rec).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        msg: &Message,
        confirm: Option<&Message>,
        point: usize,
        id: Option<&str>,
        request: Option<&CommandValue>,
        f: &Failure,
    ) {
        let name = self.point(point).name.clone();
        let rec = Record {
            device: self.device(),
            point: &name,
            id,
            request,
            old: None,
            result: Err(f),
            confirmed_by: None,
        };
        self.replier.finish(msg, confirm, &rec).await;
    }

    /// The point a `set` or `confirm` names, with its parsed payload; an unknown point
    /// (`unknown_point`) or a payload that does not parse (`bad_payload`) is answered here.
    async fn resolve<T>(
        &self,
        msg: &Message,
        name: &str,
        parsed: Result<T, String>,
        id: Option<&str>,
    ) -> Option<(usize, T)> {
        let Some(&point) = self.index.get(name) else {
            let f = Failure::new(
                ResultCode::UnknownPoint,
                format!("device `{}` has no point `{name}`", self.device()),
            );
            self.fail_named(msg, name, id, None, &f).await;
            return None;
        };
        match parsed {
            Ok(c) => Some((point, c)),
            Err(reason) => {
                let f = Failure::new(ResultCode::BadPayload, reason);
                self.fail(msg, None, point, None, None, &f).await;
                None
            }
        }
    }

    async fn fail_named(
        &self,
        msg: &Message,
        name: &str,
        id: Option<&str>,
        request: Option<&CommandValue>,
        f: &Failure,
    ) {
        let rec = Record {
            device: self.device(),
            point: name,
            id,
            request,
            old: None,
            result: Err(f),
            confirmed_by: None,
        };
        self.replier.finish(msg, None, &rec).await;
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn show_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    //! One device's worker with a stand-in for its line task ([`DeviceHandle::fake`]) and its
    //! results published into an in-memory [`Recorder`].

    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::{Input, Worker};
    use crate::broker::{Message, Recorder};
    use crate::command::reply::Replier;
    use crate::command::Target;
    use crate::config::{parse, testing::origin, Qos};
    use crate::field::codec::Value;
    use crate::field::link::WriteData;
    use crate::field::{DeviceHandle, WriteReport};
    use crate::topics::Topics;

    type Error = Box<dyn std::error::Error>;
    const WAIT: Duration = Duration::from_secs(10);
    const CONFIG: &str =
        "site: plant1\ndevices:\n  - name: boiler\n    tcp: \"10.0.0.1:502\"\n    \
        points:\n      - {name: sp, kind: holding, address: 100, writable: {min: 0, max: 90}}\n";

    struct Rig {
        commands: mpsc::Sender<Input>,
        results: mpsc::UnboundedReceiver<Message>,
    }

    /// The worker of a device reached through `handle`.
    fn rig(handle: DeviceHandle, writes_enabled: bool) -> Result<Rig, Error> {
        let config = parse(CONFIG, &origin())?;
        let target = Target {
            device: Arc::new(config.devices[0].clone()),
            handle,
        };
        let (recorder, results) = Recorder::new();
        let replier = Replier {
            topics: Topics::new("plant1"),
            broker: recorder,
            audit_publish: false,
        };
        let (commands, rx) = mpsc::channel(8);
        tokio::spawn(Worker::new(target, replier, writes_enabled).run(rx));
        Ok(Rig { commands, results })
    }

    impl Rig {
        async fn set(&self, payload: &str) -> Result<(), Error> {
            let msg = Message::agent(
                "plant1/boiler/sp/set".into(),
                payload.to_owned(),
                Qos::AtLeastOnce,
                false,
            );
            self.commands.send(Input::Set(msg)).await?;
            Ok(())
        }

        /// The next result on `plant1/boiler/sp/set/result`, as JSON.
        async fn result(&mut self) -> Result<serde_json::Value, Error> {
            let results = &mut self.results;
            let msg = tokio::time::timeout(WAIT, async {
                while let Some(m) = results.recv().await {
                    if m.topic == "plant1/boiler/sp/set/result" {
                        return Some(m);
                    }
                }
                None
            })
            .await
            .map_err(|_| "no result within the wait")?
            .ok_or("the worker stopped")?;
            Ok(serde_json::from_slice(&msg.payload)?)
        }
    }

    #[tokio::test]
    async fn refuses_bad_commands_with_their_code_and_never_writes() -> Result<(), Error> {
        let (handle, mut writes) = DeviceHandle::fake(true);
        let mut rig = rig(handle, true)?;
        for (payload, code) in [
            ("{\"nope\": 1}", "bad_payload"),
            ("not json at all {", "bad_payload"),
            ("{\"value\": 91, \"id\": \"a\"}", "above_max"),
            ("-1", "below_min"),
            ("true", "wrong_type"),
        ] {
            rig.set(payload).await?;
            let r = rig.result().await?;
            assert_eq!(r["ok"], false, "{payload}: {r}");
            assert_eq!(r["code"], code, "{payload}: {r}");
        }
        // Every refusal was answered before this one; none reached the device.
        assert!(writes.try_recv().is_err(), "a refused command was written");
        Ok(())
    }

    #[tokio::test]
    async fn writes_a_good_command_and_answers_with_the_value_read_back() -> Result<(), Error> {
        let (handle, mut writes) = DeviceHandle::fake(true);
        let mut rig = rig(handle, true)?;
        rig.set("{\"value\": 42, \"id\": \"c1\"}").await?;
        let write = tokio::time::timeout(WAIT, writes.recv())
            .await?
            .ok_or("no write")?;
        assert_eq!(write.point, 0);
        assert_eq!(write.data, WriteData::Registers(vec![42]));
        let _ = write.reply.send(WriteReport {
            old: Some(Value::Int(10)),
            result: Ok(Value::Int(42)),
        });
        let r = rig.result().await?;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["id"], "c1");
        assert_eq!(r["value"], 42);
        Ok(())
    }

    #[tokio::test]
    async fn refuses_everything_when_writes_are_disabled() -> Result<(), Error> {
        let (handle, mut writes) = DeviceHandle::fake(true);
        let mut rig = rig(handle, false)?;
        rig.set("42").await?;
        let r = rig.result().await?;
        assert_eq!(
            (r["ok"].clone(), r["code"].clone()),
            (false.into(), "writes_disabled".into())
        );
        assert!(writes.try_recv().is_err());
        Ok(())
    }
}
