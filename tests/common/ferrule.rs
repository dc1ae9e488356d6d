//! The ferrule binary as a child process: started with arguments and an environment, its log
//! lines (tracing fmt on stderr, plus stdout) captured for assertions.
//!
//! ferrule logs one line containing `broker listening` and `addr=IP:PORT` per MQTT listener and
//! `simulator listening` with `addr=` for its simulator; [`Ferrule::listener_addr`] and
//! [`Ferrule::simulator_addr`] wait for those, so tests can configure port 0 everywhere.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::process::{self, Finished, LineMatch, Proc};
use super::wait::TIMEOUT;

/// A running ferrule; killed (SIGKILL) when dropped.
pub struct Ferrule {
    proc: Proc,
}

impl Ferrule {
    /// The binary cargo built for these tests.
    pub fn bin() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_ferrule"))
    }

    /// `ferrule <args>` with `RUST_LOG=info`.
    pub fn start(args: &[&str]) -> Ferrule {
        Self::start_with(Self::bin(), args, &[])
    }

    /// `ferrule run --config <config>`, with the config's directory as the state directory
    /// (`STATE_DIRECTORY`), so each test keeps its broker persistence and queue to itself.
    pub fn run(config: &Path) -> Ferrule {
        let state = config
            .parent()
            .and_then(Path::to_str)
            .expect("config paths in tests are UTF-8");
        let config = config.to_str().expect("config paths in tests are UTF-8");
        Self::start_with(
            Self::bin(),
            &["run", "--config", config],
            &[("STATE_DIRECTORY", state)],
        )
    }

    /// Starts `bin` with `args`. The environment gets `RUST_LOG=info` and `NO_COLOR=1`; `env`
    /// entries are set after those, so they override them.
    pub fn start_with(bin: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Ferrule {
        Ferrule {
            proc: Proc::spawn("ferrule", &mut command(bin.as_ref(), args, env)),
        }
    }

    /// Runs a one-shot command (`check`, `passwd`, `queue ...`) to completion within `timeout`.
    pub fn output(args: &[&str], timeout: Duration) -> Finished {
        Self::output_with(Self::bin(), args, &[], timeout)
    }

    /// [`Ferrule::output`] for any binary and extra environment.
    pub fn output_with(
        bin: impl AsRef<Path>,
        args: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Finished {
        process::run("ferrule", &mut command(bin.as_ref(), args, env), timeout)
    }

    /// Writes `yaml` to `<dir>/ferrule.yaml` and returns the path.
    pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
        let path = dir.join("ferrule.yaml");
        fs::write(&path, yaml)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }

    /// Waits for the first log line (from the start) that `m` accepts.
    pub fn wait_for_line(&self, m: impl LineMatch, timeout: Duration) -> String {
        self.proc.wait_for_line(m, timeout)
    }

    /// Waits for the first line at index `start` or later that `m` accepts; use
    /// [`Ferrule::line_count`] before an action to wait only for what follows it.
    pub fn wait_for_line_after(
        &self,
        start: usize,
        m: impl LineMatch,
        timeout: Duration,
    ) -> (usize, String) {
        self.proc.wait_for_line_after(start, m, timeout)
    }

    pub fn lines(&self) -> Vec<String> {
        self.proc.lines()
    }

    pub fn line_count(&self) -> usize {
        self.proc.line_count()
    }

    /// The last lines, for assertion messages.
    pub fn tail(&self) -> String {
        self.proc.tail()
    }

    /// The address of the first MQTT listener (waits for its `broker listening` line).
    pub fn listener_addr(&self) -> SocketAddr {
        self.addr_of("broker listening")
    }

    /// The addresses of the first `n` MQTT listeners, in log order.
    pub fn listener_addrs(&self, n: usize) -> Vec<SocketAddr> {
        let mut start = 0;
        (0..n)
            .map(|_| {
                let (i, line) = self.proc.wait_for_line_after(
                    start,
                    |l: &str| is_announcement(l, "broker listening"),
                    TIMEOUT,
                );
                start = i + 1;
                parse_addr(&line)
            })
            .collect()
    }

    /// The address of the Modbus simulator (waits for its `simulator listening` line).
    pub fn simulator_addr(&self) -> SocketAddr {
        self.addr_of("simulator listening")
    }

    fn addr_of(&self, announcement: &str) -> SocketAddr {
        let line = self
            .proc
            .wait_for_line(|l: &str| is_announcement(l, announcement), TIMEOUT);
        parse_addr(&line)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn sigterm(&mut self) {
        self.proc.signal("TERM");
    }

    /// Reload request.
    pub fn sighup(&mut self) {
        self.proc.signal("HUP");
    }

    pub fn signal(&mut self, signal: &str) {
        self.proc.signal(signal);
    }

    /// Waits for the exit; panics with the log tail after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.proc.wait_exit(timeout)
    }

    /// SIGKILL: no shutdown code runs (the crash case).
    pub fn kill9(&mut self) -> ExitStatus {
        self.proc.kill()
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The child process itself.
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

fn command(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args).env("RUST_LOG", "info").env("NO_COLOR", "1");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

fn is_announcement(line: &str, announcement: &str) -> bool {
    line.contains(announcement) && line.contains("addr=")
}

/// The socket address in the `addr=` field of a log line (quoted or not).
pub fn parse_addr(line: &str) -> SocketAddr {
    let value = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= field in log line {line:?}"));
    let value = value.trim_matches(|c| c == '"' || c == ',');
    value.parse().unwrap_or_else(|err| {
        panic!("addr={value:?} in log line {line:?} is not a socket address: {err}")
    })
}
