//! Parsing a `.../set` payload (pure).
//!
//! Accepted: a bare JSON value (`42`, `21.5`, `true`, `"text"`) or an object
//! `{"value": …, "id": "…"}` (`id` may also be a number). Anything else is refused with a
//! message that shows an accepted form; unknown object keys are refused so a typo such as
//! `valeu` never turns into a silent no-op.

use serde_json::Value as Json;

/// A command value before it is checked against a point.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl std::fmt::Display for CommandValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub value: CommandValue,
    /// Caller's id, echoed in the result.
    pub id: Option<String>,
}

const FORMS: &str = r#"expected a value such as 42, 21.5, true or {"value": 42, "id": "abc"}"#;

/// Parses a command payload; the error is a human-readable reason.
pub fn parse(payload: &[u8]) -> Result<Command, String> {
    let text =
        std::str::from_utf8(payload).map_err(|e| format!("payload is not UTF-8 ({e}); {FORMS}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty payload; {FORMS}"));
    }
    let json: Json = serde_json::from_str(text)
        .map_err(|_| format!("payload `{}` is not JSON; {FORMS}", clip(text)))?;
    match json {
        Json::Object(mut obj) => {
            if let Some(key) = obj.keys().find(|k| *k != "value" && *k != "id") {
                return Err(format!(
                    "unknown key `{key}` in command object; allowed keys are `value` and `id`"
                ));
            }
            let id = match obj.remove("id") {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(s),
                Some(Json::Number(n)) => Some(n.to_string()),
                Some(other) => {
                    return Err(format!(
                        "`id` must be a string or a number, got {}",
                        clip(&other.to_string())
                    ))
                }
            };
            let value = obj
                .remove("value")
                .ok_or_else(|| format!("command object has no `value`; {FORMS}"))?;
            Ok(Command {
                value: scalar(value)?,
                id,
            })
        }
        other => Ok(Command {
            value: scalar(other)?,
            id: None,
        }),
    }
}

fn scalar(v: Json) -> Result<CommandValue, String> {
    match v {
        Json::Bool(b) => Ok(CommandValue::Bool(b)),
        Json::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(CommandValue::Number)
            .ok_or_else(|| format!("number {n} is out of range")),
        Json::String(s) => Ok(CommandValue::Text(s)),
        Json::Null => Err(format!("value is null; {FORMS}")),
        Json::Array(_) | Json::Object(_) => Err(format!(
            "value must be a number, a boolean or a string, got {}",
            clip(&v.to_string())
        )),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        let mut out: String = s.chars().take(40).collect();
        out.push('…');
        out
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> Command {
        match parse(p.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{p:?} refused: {e}"),
        }
    }

    fn err(p: &[u8]) -> String {
        match parse(p) {
            Ok(c) => panic!("{p:?} accepted as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bare_values() {
        assert_eq!(ok("42").value, CommandValue::Number(42.0));
        assert_eq!(ok(" 21.5\n").value, CommandValue::Number(21.5));
        assert_eq!(ok("-3").value, CommandValue::Number(-3.0));
        assert_eq!(ok("true").value, CommandValue::Bool(true));
        assert_eq!(ok("\"auto\"").value, CommandValue::Text("auto".into()));
        assert_eq!(ok("42").id, None);
    }

    #[test]
    fn objects_with_ids() {
        let c = ok(r#"{"value": 42, "id": "abc"}"#);
        assert_eq!(
            (c.value, c.id),
            (CommandValue::Number(42.0), Some("abc".into()))
        );
        assert_eq!(ok(r#"{"id": 7, "value": false}"#).id, Some("7".into()));
        assert_eq!(ok(r#"{"value": 1}"#).id, None);
    }

    #[test]
    fn refusals_say_why() {
        assert!(err(b"").contains("empty payload"));
        assert!(err(b"   ").contains("empty payload"));
        assert!(err(b"fourty-two").contains("is not JSON"));
        assert!(err(b"\xff\xfe").contains("not UTF-8"));
        assert!(err(b"null").contains("null"));
        assert!(err(b"[1,2]").contains("must be a number"));
        assert!(err(br#"{"valeu": 1}"#).contains("unknown key `valeu`"));
        assert!(err(br#"{"id": "x"}"#).contains("no `value`"));
        assert!(err(br#"{"value": 1, "id": [1]}"#).contains("`id` must be"));
        assert!(err(br#"{"value": {"a": 1}}"#).contains("must be a number"));
    }
}
