//! A small toolkit that decodes a `serde_yaml::Value` tree into typed values, collecting every
//! problem instead of stopping at the first.
//!
//! The model derives no `Deserialize`: each section is decoded by hand (see `schema.rs`) with
//! [`Ctx`] (the current path and the problems so far), [`map`] / [`Map`] (a mapping with its
//! allowed keys), [`list`] and the [`Decode`] trait for scalars.
//!
//! Invariants:
//! - a decode function that returns `None` has recorded at least one [`Problem`] (the one
//!   exception, documented where it happens, is a value that depends on another field which
//!   failed and was reported itself);
//! - every problem carries the path of the node it is about, so `locate.rs` can find its line;
//! - every message about a value quotes the value (truncated) and says what is allowed.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::model::{
    DataType, Durability, HostPort, Qos, RegisterKind, UplinkUrl, WordOrder, Writable,
};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// The value of a mapping key.
    Key(String),
    /// An element of a list (0-based).
    Index(usize),
}

/// Renders a path as shown in messages: `devices[1].points[3].kind` (empty for the root).
pub fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Which token of the node at a path a problem points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The value itself.
    Node,
    /// The key of the last path segment, in its `nth` occurrence (0 = first; more only for
    /// duplicate keys).
    Key { nth: usize },
}

/// A problem found while decoding or validating, not yet located in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Vec<Seg>,
    pub at: At,
    pub message: String,
}

/// The decoding context: where we are in the document and what went wrong so far.
#[derive(Debug, Default)]
pub struct Ctx {
    path: Vec<Seg>,
    problems: Vec<Problem>,
}

impl Ctx {
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

/// The text of a string node.
fn text<'v>(cx: &mut Ctx, node: &'v Value, what: &str) -> Option<&'v str> {
    let s = node.as_str();
    if s.is_none() {
        cx.error(expected(what, node));
    }
    s
}

/// An integer within `min..=max`.
fn integer(cx: &mut Ctx, node: &Value, min: i64, max: i64) -> Option<i64> {
    let allowed = format!("an integer from {min} to {max}");
    let Value::Number(n) = node else {
        cx.error(expected(&allowed, node));
        return None;
    };
    if n.is_f64() {
        cx.error(expected(&allowed, node));
        return None;
    }
    match n.as_i64() {
        Some(i) if (min..=max).contains(&i) => Some(i),
        _ => {
            cx.error(format!("`{n}` is out of range; expected {allowed}"));
            None
        }
    }
}

/// A finite number (integer or not).
fn finite(cx: &mut Ctx, node: &Value) -> Option<f64> {
    match node {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                cx.error(format!("`{n}` is not a finite number"));
                None
            }
        },
        _ => {
            cx.error(expected("a number", node));
            None
        }
    }
}

/// One of a closed set of names, e.g. register kinds.
fn one_of<T: Copy>(
    cx: &mut Ctx,
    node: &Value,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    ignore_case: bool,
) -> Option<T> {
    let names: Vec<&str> = all.iter().map(|t| name(*t)).collect();
    let s = text(cx, node, &format!("{what}: one of {}", names.join(", ")))?;
    let found = all.iter().copied().find(|t| {
        let n = name(*t);
        n == s || (ignore_case && n.eq_ignore_ascii_case(s))
    });
    if found.is_none() {
        cx.error(format!(
            "{} is not {what}; expected one of {}",
            quote(s),
            names.join(", ")
        ));
    }
    found
}

impl Decode for String {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        match node {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => {
                cx.error(format!(
                    "{}; quote it if you mean text",
                    expected("a string", node)
                ));
                None
            }
            _ => {
                cx.error(expected("a string", node));
                None
            }
        }
    }
}

impl Decode for bool {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let b = node.as_bool();
        if b.is_none() {
            cx.error(expected("`true` or `false`", node));
        }
        b
    }
}

impl Decode for u16 {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 0, i64::from(u16::MAX)).and_then(|i| u16::try_from(i).ok())
    }
}

/// A Modbus unit (slave) id, 0–247.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitId(pub u8);

impl Decode for UnitId {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 0, 247).and_then(|i| u8::try_from(i).ok().map(UnitId))
    }
}

/// Any finite number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finite(pub f64);

impl Decode for Finite {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        finite(cx, node).map(Finite)
    }
}

/// A finite, non-zero number (a scale factor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale(pub f64);

impl Decode for Scale {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let f = finite(cx, node)?;
        if f == 0.0 {
            cx.error("`0` is not a valid scale; expected a non-zero number");
            return None;
        }
        Some(Scale(f))
    }
}

/// A finite number ≥ 0 (a deadband).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonNegative(pub f64);

impl Decode for NonNegative {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let f = finite(cx, node)?;
        if f < 0.0 {
            cx.error(format!("`{f}` is negative; expected a number ≥ 0"));
            return None;
        }
        Some(NonNegative(f))
    }
}

impl Decode for Duration {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let parsed = match node {
            Value::String(s) => parse_duration(s),
            Value::Number(n) => Err(no_unit(&n.to_string())),
            _ => Err(expected("a duration such as `250ms`, `1s`, `2m`", node)),
        };
        parsed.map_err(|message| cx.error(message)).ok()
    }
}

fn no_unit(number: &str) -> String {
    format!("`{number}` has no unit; add one of ms, s, m, h (e.g. `{number}s`)")
}

/// Parses `250ms`, `1s`, `1.5s`, `2m`, `1h` exactly (no floating point); must be > 0.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{} is not a duration; expected a number and a unit (ms, s, m, h), e.g. `250ms`, `1.5s`",
            quote(s)
        )
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" if !number.is_empty() => return Err(no_unit(number)),
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(fraction)
        || (number.contains('.') && fraction.is_empty())
        || whole.len() > 20
        || fraction.len() > 18
    {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let f: u128 = fraction.parse().map_err(|_| bad())?;
        f * unit_nanos / 10u128.pow(fraction.len() as u32)
    };
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(fraction_nanos))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("{} is too long", quote(s)))?;
    if nanos == 0 {
        return Err(format!(
            "{} is zero; expected a duration greater than 0",
            quote(s)
        ));
    }
    Ok(Duration::from_nanos(nanos))
}

/// A duration as written in messages (`250ms`, `1.5s`, `90s`).
pub fn show_duration(d: Duration) -> String {
    format!("{d:?}")
}

impl Decode for SocketAddr {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "an IP address and port such as `127.0.0.1:1883`")?;
        let parsed = s.parse().ok();
        if parsed.is_none() {
            cx.error(format!(
                "{} is not an IP address and port; expected e.g. `127.0.0.1:1883` or `[::]:1883`",
                quote(s)
            ));
        }
        parsed
    }
}

impl Decode for HostPort {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "`host:port` such as `192.168.1.10:502`")?;
        parse_host_port(s, None)
            .map_err(|why| {
                cx.error(format!(
                    "{} is not a valid `host:port`: {why}; expected e.g. `192.168.1.10:502` or `[fd00::5]:502`",
                    quote(s)
                ));
            })
            .ok()
    }
}

/// Parses `host:port`, `[v6]:port`, and (with a default port) `host` / `[v6]`.
fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<HostPort, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("`[` without a closing `]`")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{} is not an IPv6 address", quote(host)));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("expected `:port` after `]`")?,
                ),
            ),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("an IPv6 address must be in brackets".to_owned())
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || "/@?#[]\\".contains(c))
    {
        return Err(format!("{} is not a host name or IP address", quote(host)));
    }
    let port = match port {
        None => default_port.ok_or("the port is missing")?,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("{} is not a port (1 to 65535)", quote(p))),
        },
    };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

impl Decode for UplinkUrl {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "a URL such as `mqtts://broker.example.com`")?;
        parse_url(s).map_err(|message| cx.error(message)).ok()
    }
}

fn parse_url(s: &str) -> Result<UplinkUrl, String> {
    const ALLOWED: &str = "expected mqtt://host[:port] (default port 1883) or mqtts://host[:port] (default port 8883)";
    let (tls, rest, default_port) = if let Some(rest) = s.strip_prefix("mqtt://") {
        (false, rest, 1883)
    } else if let Some(rest) = s.strip_prefix("mqtts://") {
        (true, rest, 8883)
    } else {
        return Err(format!(
            "{} does not start with a supported scheme; {ALLOWED}",
            quote(s)
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let hp = parse_host_port(rest, Some(default_port))
        .map_err(|why| format!("{} is not a valid URL: {why}; {ALLOWED}", quote(s)))?;
    Ok(UplinkUrl {
        tls,
        host: hp.host,
        port: hp.port,
    })
}

impl Decode for RegisterKind {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(cx, node, "a register kind", &Self::ALL, Self::as_str, false)
    }
}

impl Decode for DataType {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(cx, node, "a data type", &Self::ALL, Self::as_str, false)
    }
}

impl Decode for WordOrder {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(cx, node, "a byte order", &Self::ALL, Self::as_str, true)
    }
}

impl Decode for Durability {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        fn name(d: Durability) -> &'static str {
            match d {
                Durability::Full => "full",
                Durability::Normal => "normal",
            }
        }
        one_of(
            cx,
            node,
            "a durability",
            &[Durability::Full, Durability::Normal],
            name,
            false,
        )
    }
}

impl Decode for Qos {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let qos = match node {
            Value::Number(n) => n
                .as_u64()
                .and_then(|l| u8::try_from(l).ok())
                .and_then(Qos::from_level),
            _ => None,
        };
        if qos.is_none() {
            match node {
                Value::Number(n) => {
                    cx.error(format!("`{n}` is not a QoS level; expected 0, 1 or 2"))
                }
                _ => cx.error(expected("a QoS level: 0, 1 or 2", node)),
            }
        }
        qos
    }
}

impl Decode for Writable {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        match node {
            Value::Bool(false) => Some(Writable::No),
            Value::Bool(true) => Some(Writable::Yes {
                min: None,
                max: None,
            }),
            Value::Mapping(_) => {
                let m = map(cx, node, &["min", "max"])?;
                let min = m.optional::<Finite>(cx, "min");
                let max = m.optional::<Finite>(cx, "max");
                let (min, max) = (min?.map(|f| f.0), max?.map(|f| f.0));
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        cx.error(format!("min {lo} is greater than max {hi}"));
                        return None;
                    }
                }
                Some(Writable::Yes { min, max })
            }
            _ => {
                cx.error(expected("`true`, `false` or a range `{min, max}`", node));
                None
            }
        }
    }
}

impl Decode for PathBuf {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "a file path")?;
        if s.is_empty() {
            cx.error("the path is empty; expected a file path");
            return None;
        }
        Some(PathBuf::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T: Decode>(yaml: &str) -> Result<T, String> {
        let node: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut cx = Ctx::default();
        let value = T::decode(&mut cx, &node);
        let problems = cx.into_problems();
        match (value, problems.as_slice()) {
            (Some(v), []) => Ok(v),
            (None, [p]) => Err(p.message.clone()),
            _ => panic!("{yaml}: a value and problems {problems:?}"),
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0.001ms", Duration::from_nanos(1000)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for (text, fragment) in [
            ("0s", "is zero"),
            ("0.0ms", "is zero"),
            ("5", "has no unit"),
            ("1.5", "has no unit"),
            ("1sec", "is not a duration"),
            ("-1s", "is not a duration"),
            (".5s", "is not a duration"),
            ("5.s", "is not a duration"),
            ("1.2.3s", "is not a duration"),
            ("s", "is not a duration"),
            ("", "is not a duration"),
            (" 1s", "is not a duration"),
            ("99999999999999999999h", "is too long"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
        }
        assert!(decode::<Duration>("5")
            .expect_err("number")
            .contains("`5` has no unit"));
        assert!(decode::<Duration>("[1]")
            .expect_err("list")
            .contains("found a list"));
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn host_ports() {
        let hp = |host: &str, port| HostPort {
            host: host.into(),
            port,
        };
        assert_eq!(parse_host_port("plc-1:502", None), Ok(hp("plc-1", 502)));
        assert_eq!(
            parse_host_port("10.0.0.1:65535", None),
            Ok(hp("10.0.0.1", 65535))
        );
        assert_eq!(
            parse_host_port("[fe80::1]:502", None),
            Ok(hp("fe80::1", 502))
        );
        assert_eq!(
            parse_host_port("broker", Some(1883)),
            Ok(hp("broker", 1883))
        );
        assert_eq!(parse_host_port("[::1]", Some(8883)), Ok(hp("::1", 8883)));
        for (text, fragment) in [
            ("plc", "port is missing"),
            ("plc:0", "is not a port"),
            ("plc:65536", "is not a port"),
            ("plc:x", "is not a port"),
            (":502", "host is empty"),
            ("fe80::1:502", "must be in brackets"),
            ("[fe80::1:502", "without a closing"),
            ("[nope]:502", "is not an IPv6 address"),
            ("[::1]502", "expected `:port`"),
            ("a b:502", "is not a host name"),
            ("user@h:502", "is not a host name"),
        ] {
            let err = parse_host_port(text, None).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
        }
    }

    #[test]
    fn urls() {
        let url = parse_url("mqtts://cloud.example.com/").expect("url");
        assert_eq!(
            (url.tls, url.host.as_str(), url.port),
            (true, "cloud.example.com", 8883)
        );
        assert_eq!(parse_url("mqtt://h:1").expect("url").port, 1);
        for (text, fragment) in [
            ("tcp://h", "supported scheme"),
            ("h:1883", "supported scheme"),
            ("MQTT://h", "supported scheme"),
            ("mqtt://", "host is empty"),
            ("mqtt://h/topic", "is not a host name"),
            ("mqtt://u@h", "is not a host name"),
        ] {
            let err = parse_url(text).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
            assert!(err.contains("mqtts://host[:port]"), "{text}: {err}");
        }
    }

    #[test]
    fn scalars_refuse_wrong_types_and_ranges() {
        assert_eq!(decode::<u16>("65535"), Ok(65535));
        assert!(decode::<u16>("-1")
            .expect_err("neg")
            .contains("out of range"));
        assert!(decode::<u16>("1.5")
            .expect_err("float")
            .contains("found the number `1.5`"));
        assert_eq!(decode::<UnitId>("247"), Ok(UnitId(247)));
        assert!(decode::<UnitId>("248")
            .expect_err("unit")
            .contains("from 0 to 247"));
        assert_eq!(decode::<String>("abc"), Ok("abc".to_owned()));
        assert!(decode::<String>("42")
            .expect_err("num")
            .contains("quote it"));
        assert!(decode::<bool>("yes")
            .expect_err("yes")
            .contains("expected `true` or `false`"));
        assert_eq!(decode::<WordOrder>("dcba"), Ok(WordOrder::Dcba));
        assert!(decode::<RegisterKind>("Holding").is_err());
        assert_eq!(decode::<Qos>("0"), Ok(Qos::AtMostOnce));
        assert!(decode::<Qos>("\"1\"")
            .expect_err("str")
            .contains("expected a QoS level"));
        assert_eq!(decode::<Durability>("normal"), Ok(Durability::Normal));
        assert!(decode::<Finite>(".nan")
            .expect_err("nan")
            .contains("not a finite number"));
        assert!(decode::<Scale>("0.0")
            .expect_err("zero")
            .contains("non-zero"));
        assert!(decode::<NonNegative>("-0.5")
            .expect_err("neg")
            .contains("`-0.5` is negative"));
        assert!(decode::<PathBuf>("\"\"")
            .expect_err("empty")
            .contains("path is empty"));
        assert!(decode::<SocketAddr>("\"[::]:0\"").is_ok());
        assert!(decode::<Writable>("1")
            .expect_err("num")
            .contains("`{min, max}`"));
        assert_eq!(
            decode::<Writable>("{min: 1}"),
            Ok(Writable::Yes {
                min: Some(1.0),
                max: None
            })
        );
    }

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
