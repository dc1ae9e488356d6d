//! Loading a config: file → text → YAML tree → typed [`Config`], with located diagnostics.
//!
//! Owns the file errors (missing, directory, not UTF-8, empty) and the order of the steps; the
//! YAML tree, its syntax errors and its duplicate keys are `tree.rs`'s, the sections `schema.rs`'s.
//!
//! Invariants: [`load`] and [`parse`] never panic; they return a [`Config`] only when no problem
//! was found; otherwise every problem of the file is returned, located, in file order.

use std::path::{Path, PathBuf};

use super::decode::Ctx;
use super::error::{ConfigError, Diagnostic};
use super::model::{Config, DEFAULT_STATE_DIR};
use super::origin::Origin;
use super::schema;
use super::tree::{explain_duplicate, line_column, located, syntax_error, tree};

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

/// Only whitespace and comments. Checked before parsing: libyaml refuses a stray tab even in an
/// otherwise empty file.
fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::*;
    use crate::config::testing::{origin, MINIMAL};

    fn diagnostics(text: &str) -> Vec<Diagnostic> {
        match parse(text, &origin()) {
            Err(ConfigError::Invalid(d)) => d,
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

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
