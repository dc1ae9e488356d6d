//! Loading a config: file → text → YAML tree → typed [`Config`], with located diagnostics.
//!
//! Owns the file errors (missing, directory, not UTF-8, empty), YAML syntax errors, and building
//! the `serde_yaml::Value` tree. The tree is built by our own visitor rather than
//! `Value::deserialize` so that duplicate keys and YAML tags are reported as diagnostics (every one
//! of them, at the offending key) instead of stopping the load.
//!
//! Invariants: [`load`] and [`parse`] never panic; they return a [`Config`] only when no problem
//! was found; otherwise every problem of the file is returned, located, in file order.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{
    self, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_yaml::{Mapping, Value};

use super::decode::{describe, render, At, Ctx, Problem, Seg};
use super::error::{ConfigError, Diagnostic};
use super::model::{Config, DEFAULT_STATE_DIR};
use super::{locate, schema};

/// Where a config text comes from: how to name it in messages and how to resolve its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Shown in messages, e.g. `configs/demo.yaml` or `<built-in demo.yaml>`.
    pub name: String,
    /// Relative paths in the config (`uplink.ca`, `uplink.queue.path`) resolve here.
    pub base_dir: PathBuf,
    /// Where state lives by default (the queue file).
    pub state_dir: PathBuf,
}

/// Reads and parses the config file at `path`.
///
/// Relative paths in the file resolve against the file's directory; the state directory is the
/// first entry of `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`), else
/// [`DEFAULT_STATE_DIR`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(_) if path.is_dir() => return Err(ConfigError::IsDir { path: name }),
        Err(source) => return Err(ConfigError::Read { path: name, source }),
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let (line, column) = line_column(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
            return Err(ConfigError::NotUtf8 {
                path: name,
                line,
                column,
            });
        }
    };
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let origin = Origin {
        name,
        base_dir,
        state_dir: state_dir(std::env::var_os("STATE_DIRECTORY")),
    };
    parse(&text, &origin)
}

/// Parses a config text; `origin` names it and resolves its relative paths.
pub fn parse(text: &str, origin: &Origin) -> Result<Config, ConfigError> {
    let diagnostic = |(line, column): (usize, usize), path: String, message: String| Diagnostic {
        file: origin.name.clone(),
        line,
        column,
        path,
        message,
    };
    let empty = || ConfigError::Empty {
        path: origin.name.clone(),
    };
    if is_blank(text) {
        return Err(empty());
    }
    let (root, found) = match tree(text) {
        Ok(tree) => tree,
        Err(e) => {
            let (position, message) = if super::mosquitto_hint::looks_like_mosquitto(text) {
                ((1, 1), super::mosquitto_hint::message(&origin.name))
            } else {
                syntax_error(text, &e)
            };
            let syntax = diagnostic(position, String::new(), message);
            return Err(ConfigError::Invalid(vec![syntax]));
        }
    };
    if root.is_null() {
        return Err(empty());
    }
    let mut cx = Ctx::with_source(&origin.name, text);
    for problem in found {
        cx.push(explain_duplicate(text, problem));
    }
    let config = schema::config(&mut cx, &root, origin);
    let (problems, elsewhere) = cx.into_parts();
    if let Some(config) = config.filter(|_| problems.is_empty() && elsewhere.is_empty()) {
        return Ok(config);
    }
    if root.is_string() && super::mosquitto_hint::looks_like_mosquitto(text) {
        return Err(ConfigError::Invalid(vec![diagnostic(
            (1, 1),
            String::new(),
            super::mosquitto_hint::message(&origin.name),
        )]));
    }
    let mut diagnostics = located(&origin.name, text, problems);
    if diagnostics.is_empty() && elsewhere.is_empty() {
        // Unreachable by the decode invariant; reported rather than trusted.
        let message = "internal error: the config did not decode but no problem was reported";
        diagnostics.push(diagnostic((1, 1), String::new(), message.to_owned()));
    }
    // Stable: problems at the same position keep the order they were found in. Problems of
    // other files (profiles) follow, file by file.
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.extend(elsewhere);
    Err(ConfigError::Invalid(diagnostics))
}

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

/// Only whitespace and comments. Checked before parsing: libyaml refuses a stray tab even in an
/// otherwise empty file.
fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

/// The YAML tree of `text`, and the duplicate keys and tags found while building it.
fn tree(text: &str) -> Result<(Value, Vec<Problem>), serde_yaml::Error> {
    let mut found = Vec::new();
    let root = Node {
        path: Vec::new(),
        found: &mut found,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text))?;
    Ok((root, found))
}

/// The state directory: the first entry of `$STATE_DIRECTORY` (systemd may list several,
/// separated by `:`), else [`DEFAULT_STATE_DIR`].
fn state_dir(env: Option<std::ffi::OsString>) -> PathBuf {
    env.and_then(|v| {
        v.to_str()
            .and_then(|s| s.split(':').next())
            .filter(|first| !first.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// 1-based line and column (in characters) just after `prefix`.
fn line_column(prefix: &[u8]) -> (usize, usize) {
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
fn syntax_error(text: &str, e: &serde_yaml::Error) -> ((usize, usize), String) {
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
fn explain_duplicate(text: &str, problem: Problem) -> Problem {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::*;

    fn origin() -> Origin {
        Origin {
            name: "test.yaml".into(),
            base_dir: PathBuf::from("/etc/ferrule"),
            state_dir: PathBuf::from("/run/state"),
        }
    }

    fn diagnostics(text: &str) -> Vec<Diagnostic> {
        match parse(text, &origin()) {
            Err(ConfigError::Invalid(d)) => d,
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    const MINIMAL: &str = "\
site: plant1
devices:
  - name: boiler
    tcp: \"10.0.0.1:502\"
    points:
      - {name: temp, kind: holding, address: 100}
      - {name: run, kind: coil, address: 3}
";

    #[test]
    fn example_config_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/example.yaml"));
        let config = load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.devices.len(), 3);
        assert_eq!(config.buses.len(), 1);
        let uplink = config.uplink.expect("uplink");
        let configs = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
        assert_eq!(uplink.queue.path, configs.join("queue.db"));
        let kinds: std::collections::BTreeSet<RegisterKind> = config
            .devices
            .iter()
            .flat_map(|d| d.points.iter().map(|p| p.kind))
            .collect();
        assert_eq!(kinds.len(), 4);
    }

    #[test]
    fn file_errors_are_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            path
        };

        let missing = dir.path().join("missing.yaml");
        let e = load(&missing).expect_err("missing");
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read config file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );

        let e = load(dir.path()).expect_err("dir");
        assert_eq!(
            e.to_string(),
            format!("{} is a directory, not a config file", dir.path().display())
        );

        let bad = write("bad.yaml", b"site: a\ndevices:\n  - na\xc3\xa9me\xff: x\n");
        match load(&bad).expect_err("not utf-8") {
            ConfigError::NotUtf8 { line, column, .. } => assert_eq!((line, column), (3, 10)),
            e => panic!("{e:?}"),
        }

        for (name, text) in [
            ("empty.yaml", ""),
            ("blank.yaml", "  \n\n\t\n"),
            ("comments.yaml", "# nothing here\n  # still nothing\n"),
            ("marker.yaml", "---\n# only a document marker\n"),
        ] {
            let path = write(name, text.as_bytes());
            let e = load(&path).expect_err(name);
            assert_eq!(
                e.to_string(),
                format!(
                    "{} is empty: expected a mapping with at least `site`",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn load_names_the_file_and_resolves_against_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gw.yaml");
        let text =
            format!("{MINIMAL}uplink: {{url: \"mqtt://h\", queue: {{path: q.db}}, bad: 1}}\n");
        std::fs::write(&path, &text).expect("write");
        let e = load(&path).expect_err("unknown key");
        let d = &e.diagnostics()[0];
        assert_eq!(d.file, path.display().to_string());
        assert_eq!((d.line, d.column, d.path.as_str()), (8, 48, "uplink.bad"));
        std::fs::write(&path, text.replace(", bad: 1", "")).expect("write");
        let uplink = load(&path).expect("valid").uplink.expect("uplink");
        assert_eq!(uplink.queue.path, dir.path().join("q.db"));
    }

    #[test]
    fn state_directory_is_the_first_entry() {
        assert_eq!(state_dir(None), PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(
            state_dir(Some("/var/lib/gw".into())),
            PathBuf::from("/var/lib/gw")
        );
        assert_eq!(state_dir(Some("/a:/b".into())), PathBuf::from("/a"));
        assert_eq!(state_dir(Some("".into())), PathBuf::from(DEFAULT_STATE_DIR));
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column(b""), (1, 1));
        assert_eq!(line_column(b"ab\ncd"), (2, 3));
        assert_eq!(line_column("é\n\u{e9}x".as_bytes()), (2, 3));
    }

    #[test]
    fn syntax_errors_are_one_located_diagnostic() {
        let d = diagnostics("site: a\n\tdevices: []\n");
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].column, d[0].path.as_str()), (2, 1, ""));
        assert!(
            d[0].message.starts_with("YAML syntax error: "),
            "{}",
            d[0].message
        );
        assert!(d[0].message.contains("not tabs"), "{}", d[0].message);

        let d = diagnostics("site: [a, b\ndevices: []\n");
        assert_eq!((d.len(), d[0].line), (1, 2));

        let d = diagnostics("site: a\n---\nsite: b\n");
        assert_eq!((d[0].line, d[0].column), (3, 1));
        assert!(
            d[0].message.contains("second YAML document"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn every_duplicate_key_and_tag_is_reported() {
        let text = "\
site: plant1
site: plant2
devices:
  - name: boiler
    tcp: \"h:502\"
    name: again
    points:
      - {name: t, kind: !k holding, address: 1, address: 2}
";
        let d = diagnostics(text);
        let got: Vec<(usize, usize, &str, &str)> = d
            .iter()
            .map(|d| (d.line, d.column, d.path.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, 1, "site", "duplicate key `site` (first at line 1)"),
                (
                    6,
                    5,
                    "devices[0].name",
                    "duplicate key `name` (first at line 4)"
                ),
                (
                    8,
                    25,
                    "devices[0].points[0].kind",
                    "YAML tags such as `!k` are not supported; remove the tag"
                ),
                (
                    8,
                    49,
                    "devices[0].points[0].address",
                    "duplicate key `address` (first at line 8)"
                ),
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Whatever the edit to a valid config, parsing never panics and an invalid result
        /// always carries at least one located diagnostic.
        #[test]
        fn never_panics_on_edited_configs(
            at in 0usize..4000,
            cut in 0usize..40,
            insert in "[ -~\t\n]{0,8}",
        ) {
            let text = include_str!("../../configs/example.yaml");
            let mut at = at % text.len();
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let edited = format!("{}{insert}{}", &text[..at], &text[end..]);
            match parse(&edited, &origin()) {
                Ok(_) | Err(ConfigError::Empty { .. }) => {}
                Err(ConfigError::Invalid(d)) => {
                    proptest::prop_assert!(!d.is_empty());
                    proptest::prop_assert!(d.iter().all(|d| d.line >= 1 && d.column >= 1));
                    let in_order = d
                        .windows(2)
                        .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column));
                    proptest::prop_assert!(in_order);
                }
                Err(e) => proptest::prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
