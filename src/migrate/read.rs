//! Reading a Mosquitto configuration: one [`Directive`] per option line, in the order
//! Mosquitto reads them (an `include_dir` is replaced by the `*.conf` files of the directory in
//! alphabetical order, as Mosquitto does).
//!
//! Invariant: comment and blank lines are skipped; every other line becomes a directive, even
//! one ferrule does not know (the translation decides what to do with it).

use std::path::{Path, PathBuf};

/// One option line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The file, as shown in messages.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The option name (first word).
    pub option: String,
    /// The words after the option (a value with spaces is kept whole in `rest`).
    pub args: Vec<String>,
    /// Everything after the option name, trimmed.
    pub rest: String,
}

impl Directive {
    /// `file:line`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The option line as written (option and arguments), with the value of a secret
    /// (`remote_password`, `local_password`, `bridge_psk`...) left out: this text goes into
    /// reports and comments.
    pub fn text(&self) -> String {
        if self.option.contains("password") || self.option.contains("psk") {
            return format!("{} …", self.option);
        }
        if self.rest.is_empty() {
            self.option.clone()
        } else {
            format!("{} {}", self.option, self.rest)
        }
    }
}

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{at}: include_dir {dir}: cannot read the directory: {source}")]
    Dir {
        at: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("{at}: include_dir nests too deep (more than {MAX_DEPTH} levels); is there a loop?")]
    TooDeep { at: String },
}

/// Mosquitto refuses nested includes beyond a few levels; so do we (and loops end).
const MAX_DEPTH: usize = 8;

/// The directives of `path` and of the files it includes.
pub fn read(path: &Path) -> Result<Vec<Directive>, ReadError> {
    let mut out = Vec::new();
    read_into(path, 0, &mut out)?;
    Ok(out)
}

fn read_into(path: &Path, depth: usize, out: &mut Vec<Directive>) -> Result<(), ReadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::File {
        path: name.clone(),
        source,
    })?;
    for d in parse(&name, &text) {
        if d.option == "include_dir" {
            if depth >= MAX_DEPTH {
                return Err(ReadError::TooDeep { at: d.at() });
            }
            let dir = resolve(path, &d.rest);
            for file in conf_files(&dir).map_err(|source| ReadError::Dir {
                at: d.at(),
                dir: dir.display().to_string(),
                source,
            })? {
                read_into(&file, depth + 1, out)?;
            }
        }
        out.push(d);
    }
    Ok(())
}

/// A path of the configuration: absolute as written, else relative to the file's directory.
pub fn resolve(file: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    file.parent().unwrap_or(Path::new(".")).join(p)
}

/// The `*.conf` files of `dir`, sorted by name (Mosquitto's order).
fn conf_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    Ok(files)
}

/// The directives of one file's text (pure).
pub fn parse(file: &str, text: &str) -> Vec<Directive> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (option, rest) = line
                .split_once(char::is_whitespace)
                .map_or((line, ""), |(o, r)| (o, r.trim()));
            Some(Directive {
                file: file.to_owned(),
                line: i + 1,
                option: option.to_owned(),
                args: rest.split_whitespace().map(str::to_owned).collect(),
                rest: rest.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_directives_with_their_place() {
        let d = parse(
            "m.conf",
            "# c\n\nlistener 1883 127.0.0.1\n  allow_anonymous   true \n",
        );
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].line, d[0].option.as_str()), (3, "listener"));
        assert_eq!(d[0].args, ["1883", "127.0.0.1"]);
        assert_eq!(d[1].at(), "m.conf:4");
        assert_eq!(d[1].text(), "allow_anonymous true");
        let secret = parse("m.conf", "remote_password hunter2\n");
        assert_eq!(secret[0].text(), "remote_password …");
    }

    #[test]
    fn include_dir_reads_conf_files_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).expect("mkdir");
        std::fs::write(conf_d.join("b.conf"), "max_keepalive 60\n").expect("write");
        std::fs::write(conf_d.join("a.conf"), "listener 1884\n").expect("write");
        std::fs::write(conf_d.join("README"), "not read\n").expect("write");
        let main = dir.path().join("mosquitto.conf");
        std::fs::write(&main, "include_dir conf.d\nsys_interval 5\n").expect("write");
        let d = read(&main).expect("read");
        let options: Vec<&str> = d.iter().map(|d| d.option.as_str()).collect();
        assert_eq!(
            options,
            ["listener", "max_keepalive", "include_dir", "sys_interval"]
        );
        assert!(d[0].file.ends_with("a.conf"));
    }
}
