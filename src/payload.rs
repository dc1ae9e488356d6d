//! The payload contract (DESIGN.md): point state, device state and command results as JSON.
//!
//! Invariants: every payload is one compact JSON object (or a bare state word for `$state`);
//! timestamps are RFC 3339 UTC with milliseconds (`2026-11-22T10:00:00.123Z`); a non-finite
//! number is published as `null`, never as invalid JSON.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

mod result_code;
mod value;

pub use result_code::ResultCode;
pub use value::Value;

/// Quality of a published point value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// The value was read successfully.
    Good,
    /// The read failed; the payload's `error` says why.
    Bad,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
        }
    }
}

/// State of a device as published on `{site}/{device}/$state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Every read of the last cycle succeeded.
    Online,
    /// Connected, but some reads were refused (exception codes).
    Degraded,
    /// Not connected, or the link failed.
    Offline,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Degraded => "degraded",
            Self::Offline => "offline",
        }
    }
}

/// `2026-11-22T10:00:00.123Z`.
pub fn timestamp(at: SystemTime) -> String {
    DateTime::<Utc>::from(at)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `{"value":21.5,"ts":"…","quality":"good","unit":"°C"}`; a bad read has `"value":null` and
/// an `error`.
pub fn point_state(
    value: Option<Value>,
    quality: Quality,
    error: Option<&str>,
    unit: Option<&str>,
    at: SystemTime,
) -> String {
    let mut obj = Map::with_capacity(5);
    obj.insert(
        "value".into(),
        value.as_ref().map_or(Json::Null, Value::to_json),
    );
    obj.insert("ts".into(), Json::String(timestamp(at)));
    obj.insert("quality".into(), Json::String(quality.as_str().into()));
    if let Some(unit) = unit {
        obj.insert("unit".into(), Json::String(unit.into()));
    }
    if let Some(error) = error {
        obj.insert("error".into(), Json::String(error.into()));
    }
    Json::Object(obj).to_string()
}

/// A command result: `{"id":"abc","ok":true,"value":42,"ts":"…"}` or
/// `{"id":"abc","ok":false,"code":"above_max","error":"…","ts":"…"}`; a failure that has a
/// read-back (`readback_mismatch`) carries it as `value` too.
pub fn command_result(
    id: Option<&str>,
    outcome: Result<Value, (ResultCode, &str)>,
    at: SystemTime,
) -> String {
    command_result_with(id, outcome, None, at)
}

/// [`command_result`] with the value read back after a failed check of the write.
pub fn command_result_with(
    id: Option<&str>,
    outcome: Result<Value, (ResultCode, &str)>,
    read_back: Option<&Value>,
    at: SystemTime,
) -> String {
    let mut obj = Map::with_capacity(5);
    obj.insert(
        "id".into(),
        id.map_or(Json::Null, |i| Json::String(i.into())),
    );
    match outcome {
        Ok(value) => {
            obj.insert("ok".into(), Json::Bool(true));
            obj.insert("value".into(), value.to_json());
        }
        Err((code, error)) => {
            obj.insert("ok".into(), Json::Bool(false));
            if let Some(v) = read_back {
                obj.insert("value".into(), v.to_json());
            }
            obj.insert("code".into(), Json::String(code.as_str().into()));
            obj.insert("error".into(), Json::String(error.into()));
        }
    }
    obj.insert("ts".into(), Json::String(timestamp(at)));
    Json::Object(obj).to_string()
}

/// The interim answer to a command held for confirmation:
/// `{"id":"abc","pending":true,"code":"awaiting_confirm","confirm_topic":"…","expires":"…","ts":"…"}`
/// (no `ok` yet: the result follows when it is confirmed, or when it expires).
pub fn command_pending(
    id: Option<&str>,
    confirm_topic: &str,
    expires: SystemTime,
    at: SystemTime,
) -> String {
    let mut obj = Map::with_capacity(6);
    obj.insert(
        "id".into(),
        id.map_or(Json::Null, |i| Json::String(i.into())),
    );
    obj.insert("pending".into(), Json::Bool(true));
    obj.insert(
        "code".into(),
        Json::String(ResultCode::AwaitingConfirm.as_str().into()),
    );
    obj.insert("confirm_topic".into(), Json::String(confirm_topic.into()));
    obj.insert("expires".into(), Json::String(timestamp(expires)));
    obj.insert("ts".into(), Json::String(timestamp(at)));
    Json::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_773_600_123) // 2026-11-27T10:00:00.123Z
    }

    #[test]
    fn timestamps_are_rfc3339_millis_utc() {
        assert_eq!(timestamp(at()), "2026-11-27T10:00:00.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn good_state_payload() {
        let p = point_state(
            Some(Value::Float(21.5)),
            Quality::Good,
            None,
            Some("°C"),
            at(),
        );
        assert_eq!(
            p,
            r#"{"value":21.5,"ts":"2026-11-27T10:00:00.123Z","quality":"good","unit":"°C"}"#
        );
        let p = point_state(Some(Value::Int(42)), Quality::Good, None, None, at());
        assert_eq!(
            p,
            r#"{"value":42,"ts":"2026-11-27T10:00:00.123Z","quality":"good"}"#
        );
    }

    #[test]
    fn bad_state_payload_has_null_value_and_error() {
        let p = point_state(None, Quality::Bad, Some("timeout after 500ms"), None, at());
        assert_eq!(
            p,
            r#"{"value":null,"ts":"2026-11-27T10:00:00.123Z","quality":"bad","error":"timeout after 500ms"}"#
        );
    }

    #[test]
    fn results() {
        let ok = command_result(Some("abc"), Ok(Value::Int(42)), at());
        assert_eq!(
            ok,
            r#"{"id":"abc","ok":true,"value":42,"ts":"2026-11-27T10:00:00.123Z"}"#
        );
        let mismatch = command_result_with(
            Some("m"),
            Err((ResultCode::ReadbackMismatch, "wrote 5, read back 0")),
            Some(&Value::Int(0)),
            at(),
        );
        assert_eq!(
            mismatch,
            r#"{"id":"m","ok":false,"value":0,"code":"readback_mismatch","error":"wrote 5, read back 0","ts":"2026-11-27T10:00:00.123Z"}"#
        );
        let pending = command_pending(Some("p"), "s/d/p/confirm", at(), at());
        assert_eq!(
            pending,
            r#"{"id":"p","pending":true,"code":"awaiting_confirm","confirm_topic":"s/d/p/confirm","expires":"2026-11-27T10:00:00.123Z","ts":"2026-11-27T10:00:00.123Z"}"#
        );
        let bad = command_result(
            None,
            Err((ResultCode::AboveMax, "42000 above max 9000")),
            at(),
        );
        assert_eq!(
            bad,
            r#"{"id":null,"ok":false,"code":"above_max","error":"42000 above max 9000","ts":"2026-11-27T10:00:00.123Z"}"#
        );
    }
}
