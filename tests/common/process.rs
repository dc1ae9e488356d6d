//! A child process owned by a test: its output captured line by line in background threads,
//! waits on that output with deadlines, signals, and a kill on drop so that a failing test
//! (a panic unwinds through the drop) leaves no process behind.
//!
//! Every captured line has ANSI escapes removed, so log parsing does not depend on whether the
//! child decided to colour its output. Set `FERRULE_TEST_ECHO=1` to also copy each line to the
//! test's stderr as `[name] line` (shown by `cargo test` for failing tests, or with
//! `--nocapture`).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::wait::{poll, Watch};

/// How many of the last output lines a failure message quotes.
pub const TAIL_LINES: usize = 40;

/// Says whether a line is the one a test waits for: a `&str` / `String` matches lines that
/// contain it, a closure `|line: &str| -> bool` decides itself.
pub trait LineMatch {
    fn matches(&self, line: &str) -> bool;
    /// How a timeout message names what was awaited.
    fn describe(&self) -> String;
}

impl LineMatch for &str {
    fn matches(&self, line: &str) -> bool {
        line.contains(*self)
    }
    fn describe(&self) -> String {
        format!("a line containing {self:?}")
    }
}

impl LineMatch for String {
    fn matches(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("a line containing {self:?}")
    }
}

impl<F: Fn(&str) -> bool> LineMatch for F {
    fn matches(&self, line: &str) -> bool {
        self(line)
    }
    fn describe(&self) -> String {
        "a line accepted by the predicate".to_owned()
    }
}

/// Everything a child has written so far.
#[derive(Default)]
pub struct Output {
    /// stdout and stderr lines, interleaved in arrival order.
    pub lines: Vec<String>,
    /// stdout lines only (when stdout is captured).
    pub stdout: Vec<String>,
    /// Output streams still open; 0 means the child has closed both (it has exited, or is
    /// about to).
    open_streams: usize,
}

impl Output {
    /// The last `n` lines, one per line, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        if self.lines.is_empty() {
            return "    (no output)".to_owned();
        }
        self.lines[start..]
            .iter()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// True once the child has closed both output streams.
    pub fn ended(&self) -> bool {
        self.open_streams == 0
    }
}

/// Where a child's stdout goes.
pub enum Stdout {
    /// Into [`Output::lines`] and [`Output::stdout`].
    Capture,
    /// To this function, one line at a time (e.g. a fixture's reply channel or a message
    /// parser), then `None` once at the end of the stream; not into the captured output.
    /// It runs on the reader thread: it must not panic.
    Each(Box<dyn FnMut(Option<String>) + Send>),
}

/// A running child process; killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Watch<Output>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin piped (kept open until [`Proc::close_stdin`] or drop) and both
    /// output streams captured.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        Self::spawn_with(name, cmd, Stdout::Capture)
    }

    /// Like [`Proc::spawn`], with stdout going where `stdout` says.
    pub fn spawn_with(name: &str, cmd: &mut Command, stdout: Stdout) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|err| {
            panic!(
                "cannot start {name} ({}): {err}; are the test peers installed (.ci/run)?",
                describe_command(cmd)
            )
        });
        let output = Arc::new(Watch::new(Output {
            open_streams: 2,
            ..Output::default()
        }));
        let echo = std::env::var_os("FERRULE_TEST_ECHO").is_some_and(|v| v != "0");
        let out = child.stdout.take().expect("stdout was set to piped");
        let err = child.stderr.take().expect("stderr was set to piped");
        let sink: Box<dyn FnMut(Option<String>) + Send> = match stdout {
            Stdout::Capture => {
                let output = Arc::clone(&output);
                Box::new(move |line: Option<String>| {
                    if let Some(line) = line {
                        output.update(|o| {
                            o.stdout.push(line.clone());
                            o.lines.push(line);
                        });
                    }
                })
            }
            Stdout::Each(each) => each,
        };
        pump(name, "stdout", out, echo, Arc::clone(&output), sink);
        let log = Arc::clone(&output);
        let to_log = Box::new(move |line: Option<String>| {
            if let Some(line) = line {
                log.update(|o| o.lines.push(line));
            }
        });
        pump(name, "stderr", err, echo, Arc::clone(&output), to_log);
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            output,
            status: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The captured output, shared with the reader threads.
    pub fn output(&self) -> &Watch<Output> {
        &self.output
    }

    /// All captured lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.read(|o| o.lines.clone())
    }

    /// The number of captured lines so far (a starting point for [`Proc::wait_for_line_after`]).
    pub fn line_count(&self) -> usize {
        self.output.read(|o| o.lines.len())
    }

    /// The last [`TAIL_LINES`] lines, indented, for failure messages.
    pub fn tail(&self) -> String {
        self.output.read(|o| o.tail(TAIL_LINES))
    }

    /// Waits for the first line (from the start of the output) that `m` accepts.
    pub fn wait_for_line(&self, m: impl LineMatch, timeout: Duration) -> String {
        self.wait_for_line_after(0, m, timeout).1
    }

    /// Waits for the first line at index `start` or later that `m` accepts; returns its index
    /// and text. Panics with the output's tail on timeout, or as soon as the child has ended
    /// without printing it.
    pub fn wait_for_line_after(
        &self,
        start: usize,
        m: impl LineMatch,
        timeout: Duration,
    ) -> (usize, String) {
        enum Found {
            Line(usize, String),
            Ended,
        }
        let found = self.output.wait_for(timeout, |o| {
            let skip = start.min(o.lines.len());
            if let Some((i, line)) = o
                .lines
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, l)| m.matches(l))
            {
                return Some(Found::Line(i, line.clone()));
            }
            o.ended().then_some(Found::Ended)
        });
        match found {
            Some(Found::Line(i, line)) => (i, line),
            Some(Found::Ended) => panic!(
                "{} ended without printing {}; its last lines:\n{}",
                self.name,
                m.describe(),
                self.tail()
            ),
            None => panic!(
                "timed out after {timeout:?} waiting for {} to print {}; its last lines:\n{}",
                self.name,
                m.describe(),
                self.tail()
            ),
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`, `KILL`, ...) with `kill(1)`: the kit
    /// forbids unsafe code, so no libc. The pid cannot have been reused: the child is only
    /// reaped by this struct.
    pub fn signal(&mut self, signal: &str) {
        if !self.is_running() {
            panic!(
                "cannot send SIG{signal} to {}: it already exited ({:?}); its last lines:\n{}",
                self.name,
                self.status,
                self.tail()
            );
        }
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("cannot run kill(1) to signal {}: {err}", self.name));
        assert!(
            status.success(),
            "kill -s {signal} {} failed: {status}",
            self.pid()
        );
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|err| panic!("cannot query {}: {err}", self.name));
        }
        self.status
    }

    /// Waits for the child to exit and for its output to be fully read; panics with the
    /// output's tail after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = poll(timeout, || self.try_status()).unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {} (pid {}) to exit; its last lines:\n{}",
                self.name,
                self.pid(),
                self.tail()
            )
        });
        // A grandchild holding the pipes open must not hang the test; what was read is kept.
        let left = deadline.saturating_duration_since(Instant::now());
        self.output.wait_for(left.max(Duration::from_secs(1)), |o| {
            o.ended().then_some(())
        });
        status
    }

    /// SIGKILL, then reap. Does nothing if the child already exited.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_status() {
            return status;
        }
        // An error here means it exited in between; wait() below reaps it either way.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|err| panic!("cannot reap {}: {err}", self.name));
        self.status = Some(status);
        status
    }

    /// Writes one line to the child's stdin.
    pub fn write_line(&mut self, line: &str) {
        let name = &self.name;
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("stdin of {name} is already closed"));
        let sent = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush());
        if let Err(err) = sent {
            panic!(
                "cannot write {line:?} to {name}: {err}; its last lines:\n{}",
                self.tail()
            );
        }
    }

    /// Closes the child's stdin (the kit's python tools take that as "exit now").
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl Drop for Proc {
    /// Never panics: it also runs while a failing test unwinds.
    fn drop(&mut self) {
        self.stdin = None;
        if self.status.is_none() && !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `stream` line by line on a thread, giving each cleaned line to `sink`.
fn pump(
    name: &str,
    stream: &str,
    from: impl Read + Send + 'static,
    echo: bool,
    output: Arc<Watch<Output>>,
    mut sink: Box<dyn FnMut(Option<String>) + Send>,
) {
    let label = name.to_owned();
    thread::Builder::new()
        .name(format!("{name}-{stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(from);
            let mut raw = Vec::new();
            // Ends at EOF, or on a read error, which for a pipe means the same.
            while reader.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
                let line = strip_ansi(String::from_utf8_lossy(&raw).trim_end_matches(['\n', '\r']));
                raw.clear();
                if echo {
                    eprintln!("[{label}] {line}");
                }
                sink(Some(line));
            }
            sink(None);
            output.update(|o| o.open_streams -= 1);
        })
        .expect("the OS lets a test start a thread");
}

/// Removes ANSI escape sequences (colours, styles) from a line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters... final byte in '@'..='~'; other escapes are one char long.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// `program arg arg ...` for messages.
pub fn describe_command(cmd: &Command) -> String {
    let mut words = vec![quote(cmd.get_program())];
    words.extend(cmd.get_args().map(quote));
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '\'') {
        format!("{text:?}")
    } else {
        text.into_owned()
    }
}

/// A finished run of a one-shot command.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// stdout and stderr, interleaved.
    pub lines: Vec<String>,
    /// stdout alone.
    pub stdout: Vec<String>,
}

impl Finished {
    /// The last lines, for failure messages.
    pub fn tail(&self) -> String {
        let start = self.lines.len().saturating_sub(TAIL_LINES);
        self.lines[start..].join("\n")
    }
}

/// Runs `cmd` to completion (killing it after `timeout`, which fails the test) and returns
/// its status and output.
pub fn run(name: &str, cmd: &mut Command, timeout: Duration) -> Finished {
    let mut proc = Proc::spawn(name, cmd);
    proc.close_stdin();
    let status = proc.wait_exit(timeout);
    let (lines, stdout) = proc.output.read(|o| (o.lines.clone(), o.stdout.clone()));
    Finished {
        status,
        lines,
        stdout,
    }
}

/// `true` if `path` names an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
