//! Errors of loading a config: one-line file errors and located diagnostics.
//!
//! Invariants: every message fits on one line; a [`ConfigError::Invalid`] holds at least one
//! diagnostic, sorted in file order; a diagnostic always names its file, line and column (1-based).

use std::fmt;
use std::io;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, no permission, ...).
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file, as named by the caller.
        path: String,
        source: io::Error,
    },
    /// The path names a directory.
    #[error("{path} is a directory, not a config file")]
    IsDir { path: String },
    /// The file is not UTF-8 text.
    #[error("{path} is not valid UTF-8 (first bad byte at line {line}, column {column})")]
    NotUtf8 {
        path: String,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based column (in characters) of the first invalid byte.
        column: usize,
    },
    /// The file holds no YAML value: empty, or only whitespace and comments.
    #[error("{path} is empty: expected a mapping with at least `site`")]
    Empty { path: String },
    /// The file parsed as YAML (or not) and has problems, all of them listed in file order.
    #[error("{}", DisplayLines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The located problems; empty unless [`ConfigError::Invalid`].
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid(diagnostics) => diagnostics,
            _ => &[],
        }
    }
}

/// One located problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as shown in messages (`configs/demo.yaml`, `<built-in demo.yaml>`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Where in the document: `devices[1].points[3].kind`; empty for the root or a syntax error.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Displays diagnostics one per line (no trailing newline).
struct DisplayLines<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, path: &str, message: &str) -> Diagnostic {
        Diagnostic {
            file: "configs/x.yaml".into(),
            line,
            column: 15,
            path: path.into(),
            message: message.into(),
        }
    }

    #[test]
    fn diagnostic_display_names_file_line_column_path() {
        let d = diag(
            12,
            "devices[1].points[3].kind",
            "`holdng` is not a register kind",
        );
        assert_eq!(
            d.to_string(),
            "configs/x.yaml:12:15: devices[1].points[3].kind: `holdng` is not a register kind"
        );
        assert_eq!(diag(2, "", "bad").to_string(), "configs/x.yaml:2:15: bad");
    }

    #[test]
    fn invalid_displays_one_diagnostic_per_line() {
        let e = ConfigError::Invalid(vec![diag(1, "site", "a"), diag(2, "devices", "b")]);
        assert_eq!(
            e.to_string(),
            "configs/x.yaml:1:15: site: a\nconfigs/x.yaml:2:15: devices: b"
        );
        assert_eq!(e.diagnostics().len(), 2);
        assert!(ConfigError::Empty { path: "x".into() }
            .diagnostics()
            .is_empty());
    }

    #[test]
    fn file_errors_are_one_line() {
        let e = ConfigError::Read {
            path: "configs/x.yaml".into(),
            source: io::Error::from_raw_os_error(2),
        };
        assert_eq!(
            e.to_string(),
            "cannot read config file configs/x.yaml: No such file or directory (os error 2)"
        );
        let e = ConfigError::NotUtf8 {
            path: "configs/x.yaml".into(),
            line: 3,
            column: 7,
        };
        assert_eq!(
            e.to_string(),
            "configs/x.yaml is not valid UTF-8 (first bad byte at line 3, column 7)"
        );
        let e = ConfigError::IsDir {
            path: "configs/".into(),
        };
        assert_eq!(e.to_string(), "configs/ is a directory, not a config file");
    }
}
