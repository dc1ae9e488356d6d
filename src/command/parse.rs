//! Parsing a `.../set` payload (pure).
//!
//! Accepted: a bare JSON value (`42`, `21.5`, `true`, `"text"`, or an array of numbers or
//! booleans for an array point) or an object `{"value": …, "id": "…"}` (`id` may also be a
//! number). A `.../confirm` payload ([`parse_confirm`]) takes the same forms, and also an
//! object with only an `id`. Anything else is refused with a
//! message that shows an accepted form; unknown object keys are refused so a typo such as
//! `valeu` never turns into a silent no-op.

use serde_json::Value as Json;

/// A command value before it is checked against a point.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandValue {
    Bool(bool),
    Number(f64),
    Text(String),
    /// For array points: numbers or booleans (never nested).
    Array(Vec<CommandValue>),
}

impl std::fmt::Display for CommandValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "{t:?}"),
            Self::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
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

/// A parsed `.../confirm`: which held command it confirms.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub id: Option<String>,
    pub value: Option<CommandValue>,
}

/// Parses a confirm payload: a command payload, or `{"id": "…"}` alone.
pub fn parse_confirm(payload: &[u8]) -> Result<Confirm, String> {
    if let Ok(text) = std::str::from_utf8(payload) {
        if let Ok(Json::Object(obj)) = serde_json::from_str::<Json>(text.trim()) {
            if obj.len() == 1 {
                if let Some(id) = obj.get("id") {
                    return match id {
                        Json::String(s) => Ok(Confirm {
                            id: Some(s.clone()),
                            value: None,
                        }),
                        Json::Number(n) => Ok(Confirm {
                            id: Some(n.to_string()),
                            value: None,
                        }),
                        _ => Err("`id` must be a string or a number".into()),
                    };
                }
            }
        }
    }
    let c = parse(payload)?;
    Ok(Confirm {
        id: c.id,
        value: Some(c.value),
    })
}

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
        Json::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Json::Array(_) | Json::Object(_) | Json::String(_) => Err(format!(
                    "array elements must be numbers or booleans, got {}",
                    clip(&item.to_string())
                )),
                other => single(other),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(CommandValue::Array),
        other => single(other),
    }
}

fn single(v: Json) -> Result<CommandValue, String> {
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
            "value must be a number, a boolean, a string or an array, got {}",
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
    fn arrays() {
        assert_eq!(
            ok("[1, 2.5, true]").value,
            CommandValue::Array(vec![
                CommandValue::Number(1.0),
                CommandValue::Number(2.5),
                CommandValue::Bool(true)
            ])
        );
        assert_eq!(ok("[1,true]").value.to_string(), "[1,true]");
    }

    #[test]
    fn confirms() {
        let c = parse_confirm(br#"{"id": "a1"}"#).expect("valid");
        assert_eq!((c.id.as_deref(), c.value), (Some("a1"), None));
        let c = parse_confirm(b"42").expect("valid");
        assert_eq!((c.id, c.value), (None, Some(CommandValue::Number(42.0))));
        let c = parse_confirm(br#"{"value": 1, "id": 7}"#).expect("valid");
        assert_eq!(c.id.as_deref(), Some("7"));
        assert!(parse_confirm(b"").is_err());
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
        assert!(err(br#"[1,"a"]"#).contains("array elements must be"));
        assert!(err(b"[[1]]").contains("array elements must be"));
        assert!(err(br#"{"valeu": 1}"#).contains("unknown key `valeu`"));
        assert!(err(br#"{"id": "x"}"#).contains("no `value`"));
        assert!(err(br#"{"value": 1, "id": [1]}"#).contains("`id` must be"));
        assert!(err(br#"{"value": {"a": 1}}"#).contains("must be a number"));
    }
}
