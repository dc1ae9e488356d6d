//! A small toolkit that decodes a `serde_yaml::Value` tree into typed values, collecting every
//! problem instead of stopping at the first.
//!
//! The model derives no `Deserialize`: each section is decoded by hand (see `schema.rs`) with
//! [`Ctx`] (the current path and the problems so far), [`map`] / [`Map`] (a mapping with its
//! allowed keys), [`list`] and the [`Decode`] trait, implemented for scalars in `scalar.rs`.
//!
//! Invariants:
//! - a decode function that returns `None` has recorded at least one [`Problem`] (the one
//!   exception, documented where it happens, is a value that depends on another field which
//!   failed and was reported itself);
//! - every problem carries the path of the node it is about, so `locate.rs` can find its line;
//! - every message about a value quotes the value (truncated) and says what is allowed.

use serde_yaml::{Mapping, Value};

pub use super::path::{render, At, Problem, Seg};

/// The decoding context: where we are in the document and what went wrong so far.
#[derive(Debug, Default)]
pub struct Ctx {
    path: Vec<Seg>,
    problems: Vec<Problem>,
    /// The file being decoded (name, text), when known: lets a message name the line of a
    /// node elsewhere in the document (a profile point seen from a device).
    source: Option<(String, String)>,
    /// Problems already located in other files (profile files), in the order found.
    elsewhere: Vec<super::error::Diagnostic>,
}

impl Ctx {
    /// A context over the text of file `name`.
    pub fn with_source(name: &str, text: &str) -> Self {
        Self {
            source: Some((name.to_owned(), text.to_owned())),
            ..Self::default()
        }
    }

    /// `file:line` of the node at `suffix` under the current path, when the source is known.
    pub fn where_is(&self, suffix: &[Seg]) -> Option<String> {
        let (name, text) = self.source.as_ref()?;
        let mut path = self.path.clone();
        path.extend_from_slice(suffix);
        let (line, _) = super::locate::position(text, &path, At::Node)?;
        Some(format!("{name}:{line}"))
    }

    /// `file:line` of the key `key` of the current mapping, when the source is known.
    pub fn where_is_key(&self, key: &str) -> Option<String> {
        let (name, text) = self.source.as_ref()?;
        let mut path = self.path.clone();
        path.push(Seg::Key(key.to_owned()));
        let (line, _) = super::locate::position(text, &path, At::Key { nth: 0 })?;
        Some(format!("{name}:{line}"))
    }

    /// The name of the file being decoded, when known.
    pub fn file_name(&self) -> Option<&str> {
        self.source.as_ref().map(|(name, _)| name.as_str())
    }

    /// Records problems of another file, already located.
    pub fn elsewhere(&mut self, diagnostics: Vec<super::error::Diagnostic>) {
        self.elsewhere.extend(diagnostics);
    }

    /// Problems recorded so far in this file.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Runs `f`, then rewrites the message of every problem it recorded with `amend`.
    pub fn amended<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> R,
        amend: impl Fn(&str) -> String,
    ) -> R {
        let before = self.problems.len();
        let result = f(self);
        for p in &mut self.problems[before..] {
            p.message = amend(&p.message);
        }
        result
    }

    /// The problems of this file and the diagnostics of other files.
    pub fn into_parts(self) -> (Vec<Problem>, Vec<super::error::Diagnostic>) {
        (self.problems, self.elsewhere)
    }
    /// Records a problem about the current node.
    pub fn error(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.clone(),
            at: At::Node,
            message: message.into(),
        });
    }

    /// Records a problem about the `nth` occurrence of `key` in the current mapping.
    pub fn key_error(&mut self, key: &str, nth: usize, message: impl Into<String>) {
        let mut path = self.path.clone();
        path.push(Seg::Key(key.to_owned()));
        self.problems.push(Problem {
            path,
            at: At::Key { nth },
            message: message.into(),
        });
    }

    /// Records a problem found elsewhere (e.g. while building the tree).
    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Runs `f` with `key` appended to the current path.
    pub fn at_key<R>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(Seg::Key(key.to_owned()));
        let result = f(self);
        self.path.pop();
        result
    }

    /// Runs `f` with list element `index` appended to the current path.
    pub fn at_index<R>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(Seg::Index(index));
        let result = f(self);
        self.path.pop();
        result
    }

    /// The problems recorded so far, in the order they were found.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

/// A mapping whose keys have been checked against the allowed ones.
#[derive(Debug, Clone, Copy)]
pub struct Map<'v>(&'v Mapping);

/// Checks that `node` is a mapping whose keys are all in `allowed` (reporting each unknown key,
/// with a suggestion when one is close). Returns the mapping even when some keys are unknown so
/// that its fields are still decoded and checked.
pub fn map<'v>(cx: &mut Ctx, node: &'v Value, allowed: &[&str]) -> Option<Map<'v>> {
    let Some(mapping) = node.as_mapping() else {
        cx.error(expected("a mapping", node));
        return None;
    };
    for key in mapping.keys() {
        match key.as_str() {
            Some(k) if allowed.contains(&k) => {}
            Some(k) => cx.key_error(k, 0, unknown_key(k, allowed)),
            None => cx.error(format!("keys must be strings, found {}", describe(key))),
        }
    }
    Some(Map(mapping))
}

impl<'v> Map<'v> {
    /// The value of `key`, `None` when absent or empty (`key:` with nothing after it).
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// Decodes a key that must be present.
    pub fn required<T: Decode>(&self, cx: &mut Ctx, key: &str) -> Option<T> {
        self.required_with(cx, key, T::decode)
    }

    /// Decodes a key that must be present with `f`; an empty value is decoded (and refused).
    pub fn required_with<T>(
        &self,
        cx: &mut Ctx,
        key: &str,
        f: impl FnOnce(&mut Ctx, &'v Value) -> Option<T>,
    ) -> Option<T> {
        match self.0.get(key) {
            Some(value) => cx.at_key(key, |cx| f(cx, value)),
            None => {
                cx.error(format!("missing required key `{key}`"));
                None
            }
        }
    }

    /// Decodes an optional key: `Some(None)` when absent or empty, `None` when invalid.
    pub fn optional<T: Decode>(&self, cx: &mut Ctx, key: &str) -> Option<Option<T>> {
        self.optional_with(cx, key, T::decode)
    }

    /// Decodes an optional key with `f`.
    pub fn optional_with<T>(
        &self,
        cx: &mut Ctx,
        key: &str,
        f: impl FnOnce(&mut Ctx, &'v Value) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.get(key) {
            Some(value) => cx.at_key(key, |cx| f(cx, value)).map(Some),
            None => Some(None),
        }
    }

    /// Decodes an optional key, `default` when absent or empty.
    pub fn or<T: Decode>(&self, cx: &mut Ctx, key: &str, default: T) -> Option<T> {
        self.optional(cx, key).map(|v| v.unwrap_or(default))
    }
}

/// Decodes each element of a list with `item`; `None` only when `node` is not a list. Items are
/// typically `Option`s, kept in file order even when some failed, so that checks across siblings
/// still see file indexes.
pub fn list<'v, T>(
    cx: &mut Ctx,
    node: &'v Value,
    mut item: impl FnMut(&mut Ctx, &'v Value) -> T,
) -> Option<Vec<T>> {
    let Some(seq) = node.as_sequence() else {
        cx.error(expected("a list", node));
        return None;
    };
    let mut out = Vec::with_capacity(seq.len());
    for (i, element) in seq.iter().enumerate() {
        out.push(cx.at_index(i, |cx| item(cx, element)));
    }
    Some(out)
}

/// All elements, or `None` when one failed (its problem is already recorded).
pub fn all<T>(items: Vec<Option<T>>) -> Option<Vec<T>> {
    items.into_iter().collect()
}

/// A value that can be decoded from one YAML node.
pub trait Decode: Sized {
    /// Decodes `node`, recording a problem (and returning `None`) when it is not valid.
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self>;
}

/// `` `value` ``, control characters escaped, truncated to 40 characters.
pub fn quote(value: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("`");
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

/// What a node is, for "expected X, found Y" messages.
pub fn describe(node: &Value) -> String {
    match node {
        Value::Null => "nothing".to_owned(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(t) => format!("a value tagged `{}`", t.tag),
    }
}

/// `expected {what}, found {describe(node)}`.
pub fn expected(what: &str, node: &Value) -> String {
    format!("expected {what}, found {}", describe(node))
}

fn unknown_key(key: &str, allowed: &[&str]) -> String {
    if key == "<<" {
        return "unknown key `<<`: YAML merge keys are not supported; write the keys out"
            .to_owned();
    }
    let close = allowed
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && d * 2 <= k.len())
        .min_by_key(|(d, _)| *d);
    match close {
        Some((_, k)) => format!("unknown key {}; did you mean `{k}`?", quote(key)),
        None => format!(
            "unknown key {}; expected one of {}",
            quote(key),
            allowed.join(", ")
        ),
    }
}

/// Levenshtein distance (characters), for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::RegisterKind;

    #[test]
    fn unknown_keys_suggest_a_close_one() {
        assert_eq!(
            unknown_key("adress", &["name", "address"]),
            "unknown key `adress`; did you mean `address`?"
        );
        assert_eq!(
            unknown_key("nmae", &["name", "kind"]),
            "unknown key `nmae`; did you mean `name`?"
        );
        assert_eq!(
            unknown_key("ca", &["qos", "url"]),
            "unknown key `ca`; expected one of qos, url"
        );
        assert!(unknown_key("<<", &["a"]).contains("merge keys are not supported"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn messages_quote_and_describe_values() {
        assert_eq!(quote("a\nb"), "`a\\nb`");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("`{}…`", "x".repeat(40)));
        let node: Value = serde_yaml::from_str("{a: 1}").expect("yaml");
        assert_eq!(
            expected("a list", &node),
            "expected a list, found a mapping"
        );
        assert_eq!(describe(&Value::Null), "nothing");
        assert_eq!(
            render(&[
                Seg::Key("devices".into()),
                Seg::Index(1),
                Seg::Key("points".into())
            ]),
            "devices[1].points"
        );
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn maps_report_unknown_and_missing_keys_and_keep_going() {
        let node: Value = serde_yaml::from_str("{nme: x, 7: y, kind: coil}").expect("yaml");
        let mut cx = Ctx::default();
        let m = map(&mut cx, &node, &["name", "kind"]).expect("a mapping");
        assert_eq!(m.required::<String>(&mut cx, "name"), None);
        assert_eq!(
            m.required::<RegisterKind>(&mut cx, "kind"),
            Some(RegisterKind::Coil)
        );
        let problems = cx.into_problems();
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown key `nme`; did you mean `name`?",
                "keys must be strings, found the number `7`",
                "missing required key `name`",
            ]
        );
        assert_eq!(problems[0].at, At::Key { nth: 0 });
        assert_eq!(problems[0].path, vec![Seg::Key("nme".into())]);
    }
}
