//! YAML text → `serde_yaml::Value` tree, with every duplicate key and tag recorded as a
//! problem at its key rather than stopping the parse, and problems located as file:line:column.
//!
//! Built by our own visitor rather than `Value::deserialize` so that one bad key never hides
//! another. Used by `load` for the config file and by `profile` for profile files.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_yaml::{Mapping, Value};

use super::decode::{describe, render, At, Problem, Seg};
use super::error::Diagnostic;
use super::locate;

/// Locates the `problems` of file `name` in its `text`, in file order.
pub(super) fn located(name: &str, text: &str, problems: Vec<Problem>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = problems
        .into_iter()
        .map(|p| {
            let (line, column) = locate::nearest(text, &p);
            Diagnostic {
                file: name.to_owned(),
                line,
                column,
                path: render(&p.path),
                message: p.message,
            }
        })
        .collect();
    out.sort_by_key(|d| (d.line, d.column));
    out
}

/// The YAML tree of a whole file (a profile file): the tree, with its duplicate keys and tags
/// as problems, or the one-line syntax error.
pub(super) fn file_tree(name: &str, text: &str) -> Result<(Value, Vec<Problem>), Diagnostic> {
    match tree(text) {
        Ok((root, found)) => {
            let found = found
                .into_iter()
                .map(|p| explain_duplicate(text, p))
                .collect();
            Ok((root, found))
        }
        Err(e) => {
            let ((line, column), message) = syntax_error(text, &e);
            Err(Diagnostic {
                file: name.to_owned(),
                line,
                column,
                path: String::new(),
                message,
            })
        }
    }
}

/// The YAML tree of `text`, and the duplicate keys and tags found while building it.
pub(super) fn tree(text: &str) -> Result<(Value, Vec<Problem>), serde_yaml::Error> {
    let mut found = Vec::new();
    let root = Node {
        path: Vec::new(),
        found: &mut found,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text))?;
    Ok((root, found))
}

/// 1-based line and column (in characters) just after `prefix`.
pub(super) fn line_column(prefix: &[u8]) -> (usize, usize) {
    let line_start = prefix
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + prefix.iter().filter(|b| **b == b'\n').count();
    let column = 1 + String::from_utf8_lossy(&prefix[line_start..])
        .chars()
        .count();
    (line, column)
}

/// Position and one-line message of an error that stopped the YAML parser.
pub(super) fn syntax_error(text: &str, e: &serde_yaml::Error) -> ((usize, usize), String) {
    let Some(location) = e.location() else {
        if let Some(position) = locate::second_document(text) {
            let message =
                "a second YAML document starts here (after `---`); expected exactly one".to_owned();
            return (position, message);
        }
        return ((1, 1), format!("YAML syntax error: {e}"));
    };
    let (line, column) = (location.line(), location.column());
    let raw = e.to_string();
    let mut message = raw.replacen(&format!(" at line {line} column {column}"), "", 1);
    let offending = text
        .get(location.index()..)
        .and_then(|rest| rest.chars().next());
    if offending == Some('\t') || raw.contains("tab character") {
        message.push_str(" (YAML indents with spaces, not tabs)");
    }
    ((line, column), format!("YAML syntax error: {message}"))
}

/// Adds where the first occurrence of a duplicated key is.
pub(super) fn explain_duplicate(text: &str, problem: Problem) -> Problem {
    match problem.at {
        At::Key { nth } if nth > 0 => {
            match locate::position(text, &problem.path, At::Key { nth: 0 }) {
                Some((line, _)) => Problem {
                    message: format!("{} (first at line {line})", problem.message),
                    ..problem
                },
                None => problem,
            }
        }
        _ => problem,
    }
}

/// Builds the `Value` of one node, recording duplicate keys and tags in `found` instead of failing.
/// A duplicated key keeps its first value.
struct Node<'a> {
    path: Vec<Seg>,
    found: &'a mut Vec<Problem>,
}

fn child(path: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut path = path.to_vec();
    path.push(seg);
    path
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        // Beyond 64 bits: out of range for every field, kept approximately for the message.
        Ok(Value::Number((v as f64).into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Number((v as f64).into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let element = Node {
                path: child(&self.path, Seg::Index(out.len())),
                found: &mut *self.found,
            };
            match seq.next_element_seed(element)? {
                Some(value) => out.push(value),
                None => return Ok(Value::Sequence(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut mapping = Mapping::new();
        let mut repeats: Vec<(Value, usize)> = Vec::new();
        loop {
            let key_node = Node {
                path: self.path.clone(),
                found: &mut *self.found,
            };
            let Some(key) = map.next_key_seed(key_node)? else {
                return Ok(Value::Mapping(mapping));
            };
            if mapping.contains_key(&key) {
                let nth = match repeats.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        repeats.push((key.clone(), 1));
                        1
                    }
                };
                self.found.push(duplicate(&self.path, &key, nth));
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let path = match key.as_str() {
                Some(k) => child(&self.path, Seg::Key(k.to_owned())),
                None => self.path.clone(),
            };
            let value = map.next_value_seed(Node {
                path,
                found: &mut *self.found,
            })?;
            mapping.insert(key, value);
        }
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant) = data.variant::<String>()?;
        self.found.push(Problem {
            path: self.path.clone(),
            at: At::Node,
            message: format!("YAML tags such as `!{tag}` are not supported; remove the tag"),
        });
        variant.newtype_variant_seed(self)
    }
}

fn duplicate(path: &[Seg], key: &Value, nth: usize) -> Problem {
    match key.as_str() {
        Some(k) => Problem {
            path: child(path, Seg::Key(k.to_owned())),
            at: At::Key { nth },
            message: format!("duplicate key `{k}`"),
        },
        None => Problem {
            path: path.to_vec(),
            at: At::Node,
            message: format!("duplicate key {}", describe(key)),
        },
    }
}
