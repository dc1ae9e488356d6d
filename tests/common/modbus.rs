//! A Modbus device for tests: `tests/fixtures/modbus_device.py` (pymodbus 3.16) as a child
//! process, driven over its stdin/stdout line protocol (documented in the fixture).
//!
//! TCP: [`ModbusDevice::start`] serves on 127.0.0.1 on a port the fixture's own socket picked.
//! RTU: [`ModbusDevice::start_rtu`] links two ptys with socat; the fixture serves one end, and
//! ferrule opens [`ModbusDevice::serial_path`]. One fixture plays every unit on the line.
//!
//! Control commands are answered within [`TIMEOUT`]; an `ERR` reply fails the test with the
//! fixture's reason. All methods take `&self`, so a device can be shared between threads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tempfile::TempDir;

use super::process::{Proc, Stdout};
use super::wait::{poll, poll_until, TIMEOUT};
use super::{fixture, program, python};

/// One of the four Modbus tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Coils,
    DiscreteInputs,
    Holding,
    Input,
}

impl Table {
    /// The fixture's name for it: `co`, `di`, `hr`, `ir`.
    pub fn code(self) -> &'static str {
        match self {
            Table::Coils => "co",
            Table::DiscreteInputs => "di",
            Table::Holding => "hr",
            Table::Input => "ir",
        }
    }

    fn parse(code: &str) -> Table {
        match code {
            "co" => Table::Coils,
            "di" => Table::DiscreteInputs,
            "hr" => Table::Holding,
            "ir" => Table::Input,
            other => panic!("the fixture named an unknown table {other:?}"),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A write the device accepted from a client (frozen registers included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Function code: 5, 6, 15, 16 (or 22, 23).
    pub fc: u8,
    pub unit: u8,
    pub table: Table,
    pub addr: u16,
    /// Register values, or 0/1 for coils.
    pub values: Vec<u16>,
}

/// A read the device answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Function code: 1, 2, 3, 4 (or 23).
    pub fc: u8,
    pub unit: u8,
    pub table: Table,
    pub addr: u16,
    pub count: u16,
}

/// TCP connections the device has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Accepted since start.
    pub accepted: u64,
    /// Open now.
    pub open: u64,
}

/// Which requests an [`ModbusDevice::exception_on`] rule refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuse {
    Reads,
    Writes,
    Both,
}

enum Link {
    Tcp {
        port: u16,
    },
    Rtu {
        baud: u32,
        /// socat's pty pair; it lives as long as the device.
        socat: Proc,
        /// The end ferrule opens.
        client: PathBuf,
        /// The end the fixture serves.
        device: PathBuf,
        _dir: TempDir,
    },
}

struct Control {
    proc: Proc,
    replies: Receiver<String>,
}

/// What the fixture logged, drained into the test process so that reading never loses entries.
#[derive(Default)]
struct Logs {
    writes: Vec<Write>,
    reads: Vec<Read>,
}

/// The pymodbus device; stopped (killed) when dropped.
pub struct ModbusDevice {
    units: Vec<u8>,
    link: Link,
    control: Mutex<Option<Control>>,
    logs: Mutex<Logs>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ModbusDevice {
    /// A Modbus TCP device on 127.0.0.1 serving `units`, every table 10000 cells of zero.
    pub fn start(units: &[u8]) -> ModbusDevice {
        let mut device = ModbusDevice {
            units: units.to_vec(),
            link: Link::Tcp { port: 0 },
            control: Mutex::new(None),
            logs: Mutex::default(),
        };
        device.launch();
        device
    }

    /// A Modbus RTU line at `baud` (8N1) serving `units`: socat joins two ptys, the fixture
    /// serves one end, ferrule opens [`ModbusDevice::serial_path`].
    pub fn start_rtu(units: &[u8], baud: u32) -> ModbusDevice {
        let dir = tempfile::Builder::new()
            .prefix("ferrule-rtu-")
            .tempdir()
            .expect("a temporary directory for the pty links");
        let device_end = dir.path().join("device");
        let client_end = dir.path().join("ferrule");
        let socat = spawn_socat(&device_end, &client_end);
        let mut device = ModbusDevice {
            units: units.to_vec(),
            link: Link::Rtu {
                baud,
                socat,
                client: client_end,
                device: device_end,
                _dir: dir,
            },
            control: Mutex::new(None),
            logs: Mutex::default(),
        };
        device.launch();
        device
    }

    /// Pulls the plug of an RTU line, as when a USB serial adapter is unplugged: the fixture
    /// and socat stop and both pty links disappear (a client that has the port open gets I/O
    /// errors, and cannot open the path again). Panics for a TCP device.
    pub fn unplug(&mut self) {
        let Link::Rtu {
            socat,
            client,
            device,
            ..
        } = &mut self.link
        else {
            panic!("only an RTU line can be unplugged; use stop() for a TCP device");
        };
        if let Some(mut control) = lock(&self.control).take() {
            control.proc.kill();
        }
        // On SIGTERM socat removes its links.
        socat.signal("TERM");
        socat.wait_exit(TIMEOUT);
        poll_until("socat's pty links to disappear", TIMEOUT, || {
            (!client.exists() && !device.exists()).then_some(())
        });
    }

    /// Plugs an unplugged RTU line back in: new ptys behind the same two paths, the fixture
    /// serving the same units again (all cells zero, no fault rules).
    pub fn plug_in(&mut self) {
        let Link::Rtu {
            socat,
            client,
            device,
            ..
        } = &mut self.link
        else {
            panic!("only an RTU line can be plugged in");
        };
        assert!(!socat.is_running(), "the line is still plugged in");
        *socat = spawn_socat(device, client);
        self.launch();
    }

    /// The TCP port (panics for an RTU device).
    pub fn port(&self) -> u16 {
        match &self.link {
            Link::Tcp { port } => *port,
            Link::Rtu { .. } => panic!("an RTU device has no TCP port; use serial_path()"),
        }
    }

    /// `127.0.0.1:<port>`, the form ferrule's `tcp:` takes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The serial device ferrule opens (panics for a TCP device).
    pub fn serial_path(&self) -> &Path {
        match &self.link {
            Link::Rtu { client, .. } => client,
            Link::Tcp { .. } => panic!("a TCP device has no serial path; use addr()"),
        }
    }

    pub fn units(&self) -> &[u8] {
        &self.units
    }

    fn launch(&mut self) {
        let units = self
            .units
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut cmd = Command::new(python());
        cmd.arg(fixture("modbus_device.py"))
            .args(["--units", &units])
            .env("PYTHONUNBUFFERED", "1");
        let name = match &self.link {
            Link::Tcp { port } => {
                cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
                "modbus-device(tcp)"
            }
            Link::Rtu { baud, device, .. } => {
                cmd.arg("--rtu")
                    .arg(device)
                    .args(["--baud", &baud.to_string()]);
                "modbus-device(rtu)"
            }
        };
        let (tx, replies) = mpsc::channel();
        let proc = Proc::spawn_with(
            name,
            &mut cmd,
            Stdout::Each(Box::new(move |line| {
                // At the end of stdout, dropping `tx` tells reply_to the fixture is gone.
                // The receiver is gone only when the device is being dropped.
                if let Some(line) = line {
                    let _ = tx.send(line);
                }
            })),
        );
        let mut control = Control { proc, replies };
        let ready = control.reply_to("startup");
        let Some(value) = ready.strip_prefix("READY ") else {
            panic!("{name} printed {ready:?} instead of `READY ...`");
        };
        if let Link::Tcp { port } = &mut self.link {
            *port = value
                .strip_prefix("port=")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| {
                    panic!("{name} printed {ready:?}, expected `READY port=<port>`")
                });
        }
        *lock(&self.control) = Some(control);
    }

    /// Sends a raw control command; `Ok(text after "OK")` or `Err(reason after "ERR")`.
    pub fn try_command(&self, command: &str) -> Result<String, String> {
        let mut guard = lock(&self.control);
        let control = guard
            .as_mut()
            .unwrap_or_else(|| panic!("the modbus device is stopped; cannot send {command:?}"));
        control.proc.write_line(command);
        let reply = control.reply_to(command);
        if reply == "OK" {
            Ok(String::new())
        } else if let Some(rest) = reply.strip_prefix("OK ") {
            Ok(rest.to_owned())
        } else if let Some(reason) = reply.strip_prefix("ERR ") {
            Err(reason.to_owned())
        } else {
            panic!("the modbus device answered {command:?} with {reply:?}, neither OK nor ERR")
        }
    }

    /// Sends a control command that must succeed; returns the text after `OK`.
    pub fn command(&self, command: &str) -> String {
        self.try_command(command)
            .unwrap_or_else(|reason| panic!("modbus device refused {command:?}: {reason}"))
    }

    /// Sets cells through the control channel (not over the wire; not logged as a write).
    /// Bits take 0 / 1.
    pub fn set(&self, unit: u8, table: Table, addr: u16, values: &[u16]) {
        assert!(!values.is_empty(), "set needs at least one value");
        let joined = join(values.iter());
        self.command(&format!("set {unit} {table} {addr} {joined}"));
    }

    /// Reads cells through the control channel. Bits come back as 0 / 1.
    pub fn get(&self, unit: u8, table: Table, addr: u16, count: u16) -> Vec<u16> {
        let reply = self.command(&format!("get {unit} {table} {addr} {count}"));
        reply
            .split_whitespace()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("bad value {v:?} in {reply:?}"))
            })
            .collect()
    }

    pub fn set_holding(&self, unit: u8, addr: u16, values: &[u16]) {
        self.set(unit, Table::Holding, addr, values);
    }

    pub fn get_holding(&self, unit: u8, addr: u16, count: u16) -> Vec<u16> {
        self.get(unit, Table::Holding, addr, count)
    }

    pub fn set_input(&self, unit: u8, addr: u16, values: &[u16]) {
        self.set(unit, Table::Input, addr, values);
    }

    pub fn get_input(&self, unit: u8, addr: u16, count: u16) -> Vec<u16> {
        self.get(unit, Table::Input, addr, count)
    }

    pub fn set_coils(&self, unit: u8, addr: u16, values: &[bool]) {
        self.set_bits(unit, Table::Coils, addr, values);
    }

    pub fn get_coils(&self, unit: u8, addr: u16, count: u16) -> Vec<bool> {
        self.get_bits(unit, Table::Coils, addr, count)
    }

    pub fn set_discrete(&self, unit: u8, addr: u16, values: &[bool]) {
        self.set_bits(unit, Table::DiscreteInputs, addr, values);
    }

    pub fn get_discrete(&self, unit: u8, addr: u16, count: u16) -> Vec<bool> {
        self.get_bits(unit, Table::DiscreteInputs, addr, count)
    }

    fn set_bits(&self, unit: u8, table: Table, addr: u16, values: &[bool]) {
        let bits: Vec<u16> = values.iter().map(|&b| u16::from(b)).collect();
        self.set(unit, table, addr, &bits);
    }

    fn get_bits(&self, unit: u8, table: Table, addr: u16, count: u16) -> Vec<bool> {
        self.get(unit, table, addr, count)
            .iter()
            .map(|&v| v != 0)
            .collect()
    }

    /// TCP connections accepted so far and open now (for RTU: the serial line, 1 and 1).
    pub fn connections(&self) -> Connections {
        let reply = self.command("connections");
        let numbers: Vec<u64> = reply
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        match numbers[..] {
            [accepted, open] => Connections { accepted, open },
            _ => panic!("bad `connections` reply {reply:?}"),
        }
    }

    /// Waits until `check` accepts the connection counts, e.g. `|c| c.open == 1`.
    pub fn wait_connections(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(Connections) -> bool,
    ) -> Connections {
        let mut last = None;
        poll(timeout, || {
            let now = self.connections();
            last = Some(now);
            check(now).then_some(now)
        })
        .unwrap_or_else(|| {
            panic!("timed out after {timeout:?} waiting for {what}; last counts {last:?}")
        })
    }

    /// Closes every client connection now; the device keeps listening. Returns how many it
    /// closed. TCP only.
    pub fn drop_connections(&self) -> usize {
        let reply = self.command("drop");
        reply
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad `drop` reply {reply:?}"))
    }

    /// Client writes to these cells (holding registers or coils) are answered as successful but
    /// change nothing: the read-back then disagrees.
    pub fn freeze(&self, unit: u8, table: Table, addr: u16, count: u16) {
        self.command(&format!("freeze {unit} {table} {addr} {count}"));
    }

    /// The unit stops answering anything (a dead slave): requests time out.
    pub fn mute(&self, unit: u8) {
        self.command(&format!("mute {unit}"));
    }

    /// The unit answers every request `delay` late (a slow slave); zero: at once again.
    pub fn delay(&self, unit: u8, delay: Duration) {
        self.command(&format!("delay {unit} {}", delay.as_millis()));
    }

    pub fn unmute(&self, unit: u8) {
        self.command(&format!("unmute {unit}"));
    }

    /// Reads touching the range answer Modbus exception `code` (1-8, 10, 11; pymodbus cannot
    /// send others).
    pub fn exception(&self, unit: u8, table: Table, addr: u16, count: u16, code: u8) {
        self.exception_on(unit, table, addr, count, code, Refuse::Reads);
    }

    /// Like [`ModbusDevice::exception`], choosing whether reads, writes or both are refused.
    pub fn exception_on(
        &self,
        unit: u8,
        table: Table,
        addr: u16,
        count: u16,
        code: u8,
        refuse: Refuse,
    ) {
        let scope = match refuse {
            Refuse::Reads => "read",
            Refuse::Writes => "write",
            Refuse::Both => "any",
        };
        self.command(&format!(
            "exception {unit} {table} {addr} {count} {code} {scope}"
        ));
    }

    /// Removes the freeze, exception, mute and delay rules of `unit`, or of every unit.
    pub fn clear_faults(&self, unit: Option<u8>) {
        match unit {
            Some(unit) => self.command(&format!("clear {unit}")),
            None => self.command("clear"),
        };
    }

    fn drain(&self) -> MutexGuard<'_, Logs> {
        let writes = self.command("writes");
        let reads = self.command("reads");
        let mut logs = lock(&self.logs);
        logs.writes.extend(entries(&writes).map(parse_write));
        logs.reads.extend(entries(&reads).map(parse_read));
        logs
    }

    /// Every write the device accepted since start (or [`ModbusDevice::forget_logs`]), in order.
    pub fn writes(&self) -> Vec<Write> {
        self.drain().writes.clone()
    }

    /// Every read the device answered since start (or [`ModbusDevice::forget_logs`]), in order.
    pub fn reads(&self) -> Vec<Read> {
        self.drain().reads.clone()
    }

    /// Waits for an accepted write that `check` matches; returns the first.
    pub fn wait_for_write(&self, timeout: Duration, check: impl Fn(&Write) -> bool) -> Write {
        poll(timeout, || self.drain().writes.iter().find(|w| check(w)).cloned()).unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for a matching Modbus write; writes so far: {:?}",
                self.writes()
            )
        })
    }

    /// Starts the write and read logs afresh.
    pub fn forget_logs(&self) {
        let mut logs = self.drain();
        logs.writes.clear();
        logs.reads.clear();
    }

    /// Requests addressed to `unit` so far, answered or not (a muted unit's too).
    pub fn requests(&self, unit: u8) -> u64 {
        let reply = self.command(&format!("requests {unit}"));
        reply
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad `requests` reply {reply:?}"))
    }

    /// Stops the fixture (`quit`): for a TCP device the port closes, as when a device is
    /// switched off. The cell values are lost.
    pub fn stop(&self) {
        let mut guard = lock(&self.control);
        let mut control = guard.take().expect("the modbus device is already stopped");
        control.proc.write_line("quit");
        let status = control.proc.wait_exit(TIMEOUT);
        assert!(
            status.success(),
            "modbus device exited with {status}; its log:\n{}",
            control.proc.tail()
        );
    }

    /// Kills the fixture (SIGKILL).
    pub fn kill(&self) {
        let mut guard = lock(&self.control);
        let mut control = guard.take().expect("the modbus device is already stopped");
        control.proc.kill();
    }

    /// Starts the fixture again after [`ModbusDevice::stop`] / [`ModbusDevice::kill`]: same
    /// port or serial line, same units, all cells zero again, no fault rules.
    pub fn start_again(&mut self) {
        assert!(
            lock(&self.control).is_none(),
            "the modbus device is still running"
        );
        self.launch();
    }

    /// The fixture's stderr (pymodbus log lines).
    pub fn lines(&self) -> Vec<String> {
        lock(&self.control)
            .as_ref()
            .map(|c| c.proc.lines())
            .unwrap_or_default()
    }
}

impl Control {
    /// The next line on the fixture's stdout.
    fn reply_to(&mut self, command: &str) -> String {
        match self.replies.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{} did not answer {command:?} within {TIMEOUT:?}; its log:\n{}",
                self.proc.name(),
                self.proc.tail()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                self.proc.kill();
                panic!(
                    "{} exited instead of answering {command:?}; its log:\n{}",
                    self.proc.name(),
                    self.proc.tail()
                )
            }
        }
    }
}

/// socat joining two ptys, linked at `device_end` (the fixture's) and `client_end` (ferrule's),
/// once both links exist.
fn spawn_socat(device_end: &Path, client_end: &Path) -> Proc {
    let pty = |path: &Path| format!("pty,raw,echo=0,link={}", path.display());
    let socat = Proc::spawn(
        "socat",
        Command::new(program("socat", "FERRULE_SOCAT"))
            .args(["-d", "-d"])
            .arg(pty(device_end))
            .arg(pty(client_end)),
    );
    socat.wait_for_line("starting data transfer loop", TIMEOUT);
    poll_until("socat's pty links", TIMEOUT, || {
        (device_end.exists() && client_end.exists()).then_some(())
    });
    socat
}

fn join(values: impl Iterator<Item = impl ToString>) -> String {
    values.map(|v| v.to_string()).collect::<Vec<_>>().join(" ")
}

fn entries(reply: &str) -> impl Iterator<Item = &str> {
    reply.split(';').map(str::trim).filter(|e| !e.is_empty())
}

/// `fc16:1:hr:100=1,2,3`
fn parse_write(entry: &str) -> Write {
    let parsed = entry.split_once('=').and_then(|(head, values)| {
        let (fc, unit, table, addr) = parse_head(head)?;
        let values = values
            .split(',')
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        Some(Write {
            fc,
            unit,
            table,
            addr,
            values,
        })
    });
    parsed.unwrap_or_else(|| panic!("bad write log entry {entry:?}"))
}

/// `fc03:1:hr:0+10`
fn parse_read(entry: &str) -> Read {
    let parsed = entry.split_once('+').and_then(|(head, count)| {
        let (fc, unit, table, addr) = parse_head(head)?;
        Some(Read {
            fc,
            unit,
            table,
            addr,
            count: count.parse().ok()?,
        })
    });
    parsed.unwrap_or_else(|| panic!("bad read log entry {entry:?}"))
}

fn parse_head(head: &str) -> Option<(u8, u8, Table, u16)> {
    let mut parts = head.split(':');
    let fc = parts.next()?.strip_prefix("fc")?.parse().ok()?;
    let unit = parts.next()?.parse().ok()?;
    let table = Table::parse(parts.next()?);
    let addr = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((fc, unit, table, addr))
}
