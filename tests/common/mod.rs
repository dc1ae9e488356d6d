//! The integration-test kit: real peers for ferrule, started and stopped by the tests.
//!
//! Each test file says `mod common;` and uses what it needs:
//! - [`mosquitto`] a real Mosquitto broker on a free loopback port (the "cloud" broker)
//! - [`modbus`]    a pymodbus device (TCP or RTU over a socat pty pair) with fault injection
//! - [`ferrule`]   the ferrule binary as a child process, with its log lines
//! - [`mqtt`]      real MQTT clients: paho-mqtt (`tests/fixtures/mqtt_tool.py`) and
//!   `mosquitto_pub` / `mosquitto_sub`
//! - [`wait`]      deadlines: every wait ends, and says what it waited for
//! - [`process`]   the child-process wrapper under all of them (output capture, kill on drop)
//! - [`raw`]       a raw MQTT client on a socket (malformed packets, silence, retransmissions)
//! - [`certs`]     a throw-away PKI made with `openssl` (CA, server and client certificates)
//!
//! Invariants: no wait without a timeout, no sleep used as synchronisation, no child process
//! outlives the value that owns it (dropping it kills the child, also while a failing test
//! unwinds). Peers are found on `PATH`; `FERRULE_PYTHON` and `FERRULE_MOSQUITTO` override the
//! python interpreter and the mosquitto binary. `.ci/run` installs them all.

// Each test binary uses a different part of the kit.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod ferrule;
pub mod modbus;
pub mod mosquitto;
pub mod mqtt;
pub mod process;
pub mod raw;
pub mod wait;

use std::env;
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub use ferrule::Ferrule;
pub use modbus::{ModbusDevice, Table};
pub use mosquitto::Mosquitto;
pub use wait::TIMEOUT;

/// A TCP port on 127.0.0.1 that was free a moment ago. Only for peers that cannot bind port 0
/// themselves (Mosquitto): another process may take it before the peer binds it, so callers
/// retry on a bind failure.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 gives a free port")
}

/// The python interpreter that runs the fixtures: `FERRULE_PYTHON`, or `python3`.
pub fn python() -> OsString {
    env::var_os("FERRULE_PYTHON").unwrap_or_else(|| "python3".into())
}

/// The path of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assert!(path.exists(), "no fixture {}", path.display());
    path
}

/// Finds an installed program: the environment variable `override_var` if set, else `name` on
/// `PATH`, else `/usr/sbin/<name>` and `/sbin/<name>` (Debian installs mosquitto in
/// /usr/sbin, which is not on a normal user's `PATH`).
pub fn program(name: &str, override_var: &str) -> PathBuf {
    if let Some(path) = env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let path_dirs = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&path_dirs).collect();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| process::is_executable(candidate))
        .unwrap_or_else(|| {
            panic!("{name} is not installed (not on PATH, /usr/sbin or /sbin; set {override_var} to its path, or run .ci/run)")
        })
}
