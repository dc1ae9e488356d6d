//! A real Mosquitto broker for tests: ferrule's "cloud" upstream, or a LAN peer.
//!
//! It listens on 127.0.0.1 on a port picked by [`free_port`] (Mosquitto cannot bind port 0),
//! retrying with another port if that one was taken in between. Its configuration and any
//! files it needs live in a temporary directory that goes away with the value; its log (every
//! type, to stderr) is captured for assertions and failure messages.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{LineMatch, Proc};
use super::wait::{poll, TIMEOUT};
use super::{free_port, program};

/// A running (or stopped) Mosquitto; killed when dropped.
pub struct Mosquitto {
    dir: TempDir,
    port: u16,
    extra: Vec<String>,
    proc: Option<Proc>,
}

impl Mosquitto {
    /// Anonymous access, no persistence, on a free port.
    pub fn start() -> Mosquitto {
        Self::start_with(&[])
    }

    /// Like [`Mosquitto::start`], with extra `mosquitto.conf` lines appended to the listener's
    /// configuration. `{dir}` in a line is replaced by the broker's temporary directory, where
    /// [`Mosquitto::write_file`] puts files (write them before they are used: a
    /// `password_file` is read at start, so create it with [`Mosquitto::with_files`]).
    /// A `persistence true` line turns persistence on (stored in `{dir}`); `allow_anonymous
    /// false` turns anonymous access off.
    pub fn start_with(extra_config: &[&str]) -> Mosquitto {
        Self::with_files(&[], extra_config)
    }

    /// [`Mosquitto::start_with`], after writing `files` (name, contents) into `{dir}`.
    pub fn with_files(files: &[(&str, &str)], extra_config: &[&str]) -> Mosquitto {
        let mut broker = Self::unstarted(extra_config);
        for (name, contents) in files {
            broker.write_file(name, contents);
        }
        broker.launch(None);
        broker
    }

    fn unstarted(extra_config: &[&str]) -> Mosquitto {
        Mosquitto {
            port: 0,
            extra: extra_config.iter().map(|line| (*line).to_owned()).collect(),
            dir: tempfile::Builder::new()
                .prefix("ferrule-mosquitto-")
                .tempdir()
                .expect("a temporary directory for mosquitto"),
            proc: None,
        }
    }

    /// Anonymous access off; `user` / `password` is the one account (hashed by
    /// `mosquitto_passwd` into `{dir}/passwd`), plus `extra_config` lines.
    pub fn with_password(user: &str, password: &str, extra_config: &[&str]) -> Mosquitto {
        let mut lines = vec!["allow_anonymous false", "password_file {dir}/passwd"];
        lines.extend_from_slice(extra_config);
        let mut broker = Self::unstarted(&lines);
        let passwd = broker.dir().join("passwd");
        let mut cmd = Command::new(program("mosquitto_passwd", "FERRULE_MOSQUITTO_PASSWD"));
        cmd.args(["-c", "-b"]).arg(&passwd).args([user, password]);
        let done = super::process::run("mosquitto_passwd", &mut cmd, TIMEOUT);
        assert!(
            done.status.success(),
            "mosquitto_passwd failed ({}):\n{}",
            done.status,
            done.tail()
        );
        broker.launch(None);
        broker
    }

    /// The port it listens on (kept across [`Mosquitto::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `mqtt://127.0.0.1:<port>`, the form ferrule's `uplink.url` takes.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The temporary directory holding its configuration (and persistence, if on).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into [`Mosquitto::dir`], e.g. a password or ACL file for the next start.
    pub fn write_file(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }

    /// Graceful stop: SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let proc = self.running_proc("stop");
        proc.signal("TERM");
        let status = proc.wait_exit(TIMEOUT);
        self.proc = None;
        status
    }

    /// Abrupt stop: SIGKILL (clients see their connections reset, nothing is saved).
    pub fn kill(&mut self) -> ExitStatus {
        let status = self.running_proc("kill").kill();
        self.proc = None;
        status
    }

    /// Starts it again after [`Mosquitto::stop`] or [`Mosquitto::kill`], on the same port
    /// with the same configuration (and, with persistence on, the same saved state).
    pub fn start_again(&mut self) {
        assert!(
            self.proc.is_none(),
            "mosquitto on port {} is still running; stop() or kill() it first",
            self.port
        );
        self.launch(Some(self.port));
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Its log lines so far (of the current run; the previous run's are gone after
    /// [`Mosquitto::start_again`]).
    pub fn lines(&self) -> Vec<String> {
        self.proc.as_ref().map(Proc::lines).unwrap_or_default()
    }

    /// Waits for a log line, e.g. `"New client connected from"` or a client id.
    pub fn wait_for_line(&self, m: impl LineMatch, timeout: Duration) -> String {
        self.proc
            .as_ref()
            .expect("mosquitto is not running")
            .wait_for_line(m, timeout)
    }

    /// The running process (for signals, line indexes and the like).
    pub fn proc(&mut self) -> &mut Proc {
        self.running_proc("use")
    }

    fn running_proc(&mut self, action: &str) -> &mut Proc {
        let port = self.port;
        self.proc
            .as_mut()
            .unwrap_or_else(|| panic!("cannot {action} mosquitto on port {port}: not running"))
    }

    fn config(&self) -> String {
        let dir = self.dir.path().display().to_string();
        let extra: Vec<String> = self
            .extra
            .iter()
            .map(|l| l.replace("{dir}", &dir))
            .collect();
        let persistence_set = extra
            .iter()
            .any(|l| l.trim_start().starts_with("persistence "));
        let anonymous_set = extra
            .iter()
            .any(|l| l.trim_start().starts_with("allow_anonymous "));
        let mut lines = vec![
            "# written by tests/common/mosquitto.rs".to_owned(),
            // As root, mosquitto would switch to the `mosquitto` user, which cannot write
            // into this root-owned directory; for other users this line does nothing.
            "user root".to_owned(),
            "log_dest stderr".to_owned(),
            "log_type all".to_owned(),
            "connection_messages true".to_owned(),
            format!("persistence_location {dir}/"),
        ];
        if !persistence_set {
            lines.push("persistence false".to_owned());
        }
        lines.push(format!("listener {} 127.0.0.1", self.port));
        if !anonymous_set {
            lines.push("allow_anonymous true".to_owned());
        }
        lines.extend(extra);
        lines.join("\n") + "\n"
    }

    /// Starts mosquitto and waits until it accepts connections: on `port`, retrying while it
    /// is still taken, or on fresh free ports.
    fn launch(&mut self, port: Option<u16>) {
        let deadline = Instant::now() + TIMEOUT;
        let binary = program("mosquitto", "FERRULE_MOSQUITTO");
        let mut failures = Vec::new();
        loop {
            self.port = port.unwrap_or_else(free_port);
            let conf = self.write_file("mosquitto.conf", &self.config());
            let mut proc = Proc::spawn(
                &format!("mosquitto:{}", self.port),
                Command::new(&binary).arg("-c").arg(&conf),
            );
            // "running" is logged after the listeners are bound; a bind failure ends it.
            let left = deadline.saturating_duration_since(Instant::now());
            let started = proc.output().wait_for(left, |o| {
                if o.lines
                    .iter()
                    .any(|l| l.contains("mosquitto version") && l.contains(" running"))
                {
                    Some(true)
                } else {
                    o.ended().then_some(false)
                }
            });
            if started == Some(true) {
                let port = self.port;
                let left = deadline.saturating_duration_since(Instant::now());
                let accepts = poll(left, || TcpStream::connect(("127.0.0.1", port)).ok());
                assert!(
                    accepts.is_some(),
                    "mosquitto logged `running` but does not accept connections on port {port}; its log:\n{}",
                    proc.tail()
                );
                self.proc = Some(proc);
                return;
            }
            let tail = proc.tail();
            let status = proc.kill();
            let in_use = tail.contains("Address already in use");
            failures.push(format!("port {}: {status}\n{tail}", self.port));
            if !in_use || Instant::now() >= deadline {
                panic!(
                    "mosquitto did not start ({} attempts); config:\n{}\nlogs:\n{}",
                    failures.len(),
                    self.config(),
                    failures.join("\n")
                );
            }
            if port.is_some() {
                // The same port is wanted (start_again): it is still held, e.g. by a
                // previous broker that is not quite gone yet. Re-check shortly.
                std::thread::sleep(super::wait::POLL_INTERVAL);
            }
        }
    }
}
