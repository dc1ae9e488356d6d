//! The systemd notification protocol (`sd_notify`), by hand: one datagram per state change
//! to the socket named by `$NOTIFY_SOCKET` (a path, or an abstract name starting with `@`).
//!
//! Invariants: sending never blocks the runtime (the socket is non-blocking; a full receive
//! queue drops the datagram, as `sd_notify` would report and ignore) and never fails the agent;
//! without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tracing::debug;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    /// An abstract socket name (without the leading `@`).
    Abstract(Vec<u8>),
}

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names; `None` when it is unset or empty.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let target = parse_target(value.to_str()?)?;
        match UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(socket) => Some(Self { socket, target }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the systemd notification socket");
                None
            }
        }
    }

    /// A notifier for the socket at `path` (tests, and callers that know the path).
    pub fn for_path(path: &std::path::Path) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            target: Target::Path(path.to_owned()),
        })
    }

    /// Sends one state (`READY=1`, `STATUS=...`, several lines joined by `\n`).
    pub fn send(&self, state: &str) -> io::Result<()> {
        let sent = match &self.target {
            Target::Path(path) => self.socket.send_to(state.as_bytes(), path),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                self.socket.send_to_addr(state.as_bytes(), &addr)
            }
        };
        sent.map(|_| ())
    }

    /// Sends `state`, logging (at debug: systemd may simply be gone) when it cannot.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.send(state) {
            debug!(error = %e, state, "systemd notification not sent");
        }
    }
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, for this process when
/// `$WATCHDOG_PID` is set); `None` when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_from(&usec, pid.as_deref(), std::process::id())
}

fn watchdog_from(usec: &str, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(us) => Some(Duration::from_micros(us)),
    }
}

fn parse_target(value: &str) -> Option<Target> {
    if value.is_empty() {
        return None;
    }
    match value.strip_prefix('@') {
        Some(name) => Some(Target::Abstract(name.as_bytes().to_vec())),
        None if value.starts_with('/') => Some(Target::Path(PathBuf::from(value))),
        // vsock and other forms are not supported: the agent runs on the host.
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_paths_or_abstract_names() {
        assert_eq!(
            parse_target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target("@/org/x"),
            Some(Target::Abstract(b"/org/x".to_vec()))
        );
        assert_eq!(parse_target(""), None);
        assert_eq!(parse_target("vsock:2:1234"), None);
    }

    #[test]
    fn watchdog_interval_is_for_this_process_only() {
        assert_eq!(
            watchdog_from("3000000", None, 7),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            watchdog_from("3000000", Some("7"), 7),
            Some(Duration::from_secs(3))
        );
        assert_eq!(watchdog_from("3000000", Some("8"), 7), None);
        assert_eq!(watchdog_from("0", None, 7), None);
        assert_eq!(watchdog_from("soon", None, 7), None);
    }

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path)?;
        let n = Notifier {
            socket: UnixDatagram::unbound()?,
            target: Target::Path(path),
        };
        n.send("READY=1")?;
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf)?;
        assert_eq!(&buf[..len], b"READY=1");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("ferrule-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let server = UnixDatagram::bind_addr(&addr)?;
        let n = Notifier {
            socket: UnixDatagram::unbound()?,
            target: Target::Abstract(name.into_bytes()),
        };
        n.send("WATCHDOG=1")?;
        let len = server.recv(&mut buf)?;
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        Ok(())
    }
}
