//! The way out of a command: its result (on `.../set/result` and the MQTT 5 response topic),
//! the interim answer of a held command, and the audit trail (one log line per command, and
//! optionally one message on `{site}/$agent/audit`).
//!
//! Invariant: [`Replier::finish`] is called exactly once per command, and always both
//! publishes the result and writes the audit line; the audit message goes through the broker
//! like any agent message, so the uplink's forward rules (and its durable queue) see it.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value as Json};
use tracing::{info, warn};

use crate::broker::{Message, Origin, Publish};
use crate::config::Qos;
use crate::field::codec::Value;
use crate::payload;
use crate::payload::ResultCode;
use crate::topics::Topics;

use super::parse::CommandValue;

/// Who sent a command, as the audit trail names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// MQTT client id (`uplink` for a command that came down from the cloud).
    pub client_id: String,
    /// User name the client logged in with, if any.
    pub user: Option<String>,
    /// `lan` (a client of the embedded broker), `cloud` (downlink) or `agent`.
    pub source: &'static str,
}

impl Caller {
    pub fn of(origin: &Origin) -> Self {
        match origin {
            Origin::Client {
                client_id,
                username,
                ..
            } => Self {
                client_id: client_id.clone(),
                user: username.clone(),
                source: "lan",
            },
            Origin::Will { client_id } => Self {
                client_id: client_id.clone(),
                user: None,
                source: "lan",
            },
            Origin::Downlink => Self {
                client_id: "uplink".into(),
                user: None,
                source: "cloud",
            },
            Origin::Agent => Self {
                client_id: "ferrule".into(),
                user: None,
                source: "agent",
            },
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: ResultCode,
    pub error: String,
    /// The value read back, when the write happened but does not show (`readback_mismatch`).
    pub read_back: Option<Value>,
}

impl Failure {
    pub fn new(code: ResultCode, error: impl Into<String>) -> Self {
        Self {
            code,
            error: error.into(),
            read_back: None,
        }
    }
}

/// Everything the audit trail records about one command.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub device: &'a str,
    pub point: &'a str,
    pub id: Option<&'a str>,
    /// The value asked for, when the payload parsed.
    pub request: Option<&'a CommandValue>,
    /// The point's value before the write (last read), when known.
    pub old: Option<&'a Value>,
    /// The value read back after the write, or why the command failed.
    pub result: Result<&'a Value, &'a Failure>,
    /// Who confirmed a held command.
    pub confirmed_by: Option<&'a Caller>,
}

/// Publishes results and audit records.
#[derive(Clone)]
pub struct Replier {
    pub topics: Topics,
    pub broker: Arc<dyn Publish>,
    /// Publish audit records on `{site}/$agent/audit`.
    pub audit_publish: bool,
}

impl Replier {
    /// The final result of the command `cmd` (and of the confirm that released it, if any):
    /// published, logged as one audit line, and (`audit: publish`) published as an audit record.
    pub async fn finish(&self, cmd: &Message, confirm: Option<&Message>, rec: &Record<'_>) {
        let at = SystemTime::now();
        let outcome = match rec.result {
            Ok(v) => Ok(v.clone()),
            Err(f) => Err((f.code, f.error.as_str())),
        };
        let read_back = rec.result.err().and_then(|f| f.read_back.as_ref());
        let body = payload::command_result_with(rec.id, outcome, read_back, at);
        let caller = Caller::of(&cmd.origin);
        self.audit_line(&caller, cmd, rec);
        let mut out = vec![Message::agent(
            self.topics.command_result(rec.device, rec.point),
            body.clone(),
            Qos::AtLeastOnce,
            false,
        )];
        for m in std::iter::once(cmd).chain(confirm) {
            if let Some(rt) = &m.response_topic {
                let mut r = Message::agent(rt.clone(), body.clone(), Qos::AtLeastOnce, false);
                r.correlation_data = m.correlation_data.clone();
                out.push(r);
            }
        }
        if self.audit_publish {
            let audit = audit_record(&caller, rec, at);
            out.push(Message::agent(
                self.topics.audit(),
                audit,
                Qos::AtLeastOnce,
                false,
            ));
        }
        if let Err(e) = self.broker.publish_batch(out).await {
            warn!(error = %e, device = rec.device, point = rec.point, "cannot publish a command result");
        }
    }

    /// The interim answer to a command held until `expires` for its confirmation.
    pub async fn pending(
        &self,
        cmd: &Message,
        device: &str,
        point: &str,
        id: Option<&str>,
        expires: SystemTime,
    ) {
        let confirm_topic = self.topics.confirm(device, point);
        let body = payload::command_pending(id, &confirm_topic, expires, SystemTime::now());
        let caller = Caller::of(&cmd.origin);
        info!(target: "ferrule::audit", client_id = %caller.client_id, user = caller.user.as_deref().unwrap_or("-"), device, point, id = id.unwrap_or("-"), confirm_topic = %confirm_topic, "command held until confirmed");
        let mut out = vec![Message::agent(
            self.topics.command_result(device, point),
            body.clone(),
            Qos::AtLeastOnce,
            false,
        )];
        if let Some(rt) = &cmd.response_topic {
            let mut r = Message::agent(rt.clone(), body, Qos::AtLeastOnce, false);
            r.correlation_data = cmd.correlation_data.clone();
            out.push(r);
        }
        if let Err(e) = self.broker.publish_batch(out).await {
            warn!(error = %e, device, point, "cannot publish a pending command answer");
        }
    }

    /// The one audit line of a command.
    fn audit_line(&self, caller: &Caller, cmd: &Message, rec: &Record<'_>) {
        let user = caller.user.as_deref().unwrap_or("-");
        let request = rec.request.map_or_else(
            || String::from_utf8_lossy(&cmd.payload).into_owned(),
            ToString::to_string,
        );
        let old = rec.old.map_or_else(|| "-".to_owned(), ToString::to_string);
        let confirmed_by = rec.confirmed_by.map_or("-", |c| c.client_id.as_str());
        let id = rec.id.unwrap_or("-");
        match rec.result {
            Ok(new) => info!(
                target: "ferrule::audit",
                client_id = %caller.client_id, user, source = caller.source, device = rec.device,
                point = rec.point, id, request = %request, old = %old, new = %new, result = "ok",
                confirmed_by, "command"
            ),
            Err(f) => {
                let new = f
                    .read_back
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string);
                info!(
                    target: "ferrule::audit",
                    client_id = %caller.client_id, user, source = caller.source, device = rec.device,
                    point = rec.point, id, request = %request, old = %old, new = %new,
                    result = f.code.as_str(), error = %f.error, confirmed_by, "command"
                );
            }
        }
    }
}

/// The audit record published on `{site}/$agent/audit`.
fn audit_record(caller: &Caller, rec: &Record<'_>, at: SystemTime) -> String {
    let mut obj = Map::with_capacity(14);
    let text = |s: &str| Json::String(s.to_owned());
    let opt = |s: Option<&str>| s.map_or(Json::Null, text);
    obj.insert("ts".into(), text(&payload::timestamp(at)));
    obj.insert("client_id".into(), text(&caller.client_id));
    obj.insert("user".into(), opt(caller.user.as_deref()));
    obj.insert("source".into(), text(caller.source));
    obj.insert("device".into(), text(rec.device));
    obj.insert("point".into(), text(rec.point));
    obj.insert("id".into(), opt(rec.id));
    obj.insert(
        "request".into(),
        rec.request.map_or(Json::Null, command_json),
    );
    obj.insert("old".into(), rec.old.map_or(Json::Null, Value::to_json));
    match rec.result {
        Ok(v) => {
            obj.insert("new".into(), v.to_json());
            obj.insert("ok".into(), Json::Bool(true));
        }
        Err(f) => {
            obj.insert(
                "new".into(),
                f.read_back.as_ref().map_or(Json::Null, Value::to_json),
            );
            obj.insert("ok".into(), Json::Bool(false));
            obj.insert("code".into(), text(f.code.as_str()));
            obj.insert("error".into(), text(&f.error));
        }
    }
    if let Some(c) = rec.confirmed_by {
        obj.insert("confirmed_by".into(), text(&c.client_id));
        obj.insert("confirmed_by_user".into(), opt(c.user.as_deref()));
    }
    Json::Object(obj).to_string()
}

fn command_json(v: &CommandValue) -> Json {
    match v {
        CommandValue::Bool(b) => Json::Bool(*b),
        CommandValue::Number(n) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        CommandValue::Text(t) => Json::String(t.clone()),
        CommandValue::Array(items) => Json::Array(items.iter().map(command_json).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_records_name_who_what_before_and_after() {
        let caller = Caller {
            client_id: "hmi-1".into(),
            user: Some("alice".into()),
            source: "lan",
        };
        let request = CommandValue::Number(42.0);
        let (old, new) = (Value::Int(10), Value::Int(42));
        let rec = Record {
            device: "boiler",
            point: "sp",
            id: Some("c1"),
            request: Some(&request),
            old: Some(&old),
            result: Ok(&new),
            confirmed_by: None,
        };
        let at = std::time::UNIX_EPOCH;
        assert_eq!(
            audit_record(&caller, &rec, at),
            r#"{"ts":"1970-01-01T00:00:00.000Z","client_id":"hmi-1","user":"alice","source":"lan","device":"boiler","point":"sp","id":"c1","request":42.0,"old":10,"new":42,"ok":true}"#
        );
        let failure = Failure::new(ResultCode::AboveMax, "500 above max 90");
        let rec = Record {
            result: Err(&failure),
            old: None,
            confirmed_by: Some(&caller),
            ..rec
        };
        let j: Json = serde_json::from_str(&audit_record(&caller, &rec, at)).expect("JSON");
        assert_eq!(j["ok"], false);
        assert_eq!(j["code"], "above_max");
        assert_eq!(j["old"], Json::Null);
        assert_eq!(j["confirmed_by_user"], "alice");
    }
}
