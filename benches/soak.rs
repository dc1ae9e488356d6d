//! Soak benchmark (not a test): one running ferrule driven through 1,000 config reloads,
//! 10,000 MQTT client connects and disconnects, 1,000,000 messages and repeated device flaps,
//! with its resident memory, open file descriptors and threads sampled after a warm-up, along
//! every phase and after an idle settle. Does anything grow per reload, per connect, per
//! message or per flap?
//!
//! ```sh
//! cargo bench --bench soak                    # full scale (about 15 minutes on 2 cores)
//! SOAK_SCALE=0.1 cargo bench --bench soak     # every count × 0.1
//! SOAK_RELOADS=200 SOAK_FLAPS=10 SOAK_SETTLE_SECS=30 cargo bench --bench soak
//! ```
//!
//! Setup: the release `ferrule` binary in its own process (`ferrule run`, READY=1 awaited on a
//! notification socket of our own), with an uplink forwarding `soak/#` at QoS 1 to a real
//! Mosquitto started here, the metrics endpoint on, and 4–5 Modbus devices served by
//! `ferrule simulate` (polled every 250 ms). The MQTT clients of this program speak MQTT 3.1.1
//! directly over TCP (a few packet builders below), so that every connect is one TCP connection
//! and nothing is hidden in a client library.
//!
//! Phases (each after a short warm-up of all four, which sets the baseline sample):
//! - **reloads**: the config alternates between two valid versions that differ in devices
//!   (4 × 10 points / 5 × 15 points) and in the broker section (`max_queued_messages`,
//!   `max_inflight`); 9 in 10 are triggered by SIGHUP after rewriting the file the config path
//!   links to, 1 in 10 by replacing the config path itself (the file watch). Each reload's
//!   outcome is awaited on `soak/$agent/config` (and must be `ok` with changes) before the next.
//! - **connects**: 8 threads connect and disconnect; per 20 connects: 10 plain
//!   CONNECT/DISCONNECT, 3 with a QoS 1 subscription, 3 persistent sessions (clean_session=0,
//!   a QoS 1 subscription, a QoS 1 message to themselves left unacknowledged, resumed by the
//!   next connect of the same id: 8 ids per thread), 2 dropped after CONNACK without
//!   DISCONNECT, 1 persistent session dropped after SUBSCRIBE, 1 dropped half-way through its
//!   CONNECT. After each tenth, ferrule's `ferrule_broker_clients_connected` must be back to
//!   what it was. At the end the persistent sessions are ended (clean_session=1).
//!   The same connects then run against Mosquitto, for its memory.
//! - **messages**: 4 publishers (QoS 1, windows of 100) → ferrule → 4 subscribers of
//!   `soak/load/#` (QoS 0), and through the uplink's queue to Mosquitto and a subscriber there;
//!   publishers pause while the queue holds more than 50,000 messages. The phase ends when the
//!   queue is empty again.
//! - **flaps**: the simulator is killed, the devices must go `offline`, it is restarted on the
//!   same port, they must come back `online`.
//!
//! Then [`SETTLE`] of idle (ferrule trims the heap every 10 s) and the last sample. Output: a
//! Markdown report (samples, per-phase slopes, a verdict per resource, Mosquitto's memory for
//! the same connects and messages), as pasted into `docs/benchmarks.md`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Idle time before the last sample (ferrule calls `malloc_trim` every 10 s).
const SETTLE: Duration = Duration::from_secs(30);
const RELOADS: f64 = 1_000.0;
const CONNECTS: f64 = 10_000.0;
const MESSAGES: f64 = 1_000_000.0;
const FLAPS: f64 = 100.0;
/// Samples per phase (besides its end).
const SAMPLES_PER_PHASE: u64 = 10;
const CHURN_THREADS: u64 = 8;
const PERSISTENT_IDS_PER_THREAD: u64 = 8;
const PUBLISHERS: u64 = 4;
const SUBSCRIBERS: usize = 4;
const WINDOW: u64 = 100;
const MAX_BACKLOG: u64 = 50_000;
const PAYLOAD: usize = 64;
/// Every wait on ferrule or a peer gives up after this.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Tolerances of the verdict: last sample against the post-warm-up one.
const RSS_TOLERANCE: u64 = 2 * 1024 * 1024;

fn bin() -> PathBuf {
    std::env::var_os("FERRULE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferrule")))
}

fn mosquitto_bin() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "mosquitto".into())
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn count(name: &str, full: f64, scale: f64, min: u64) -> u64 {
    env_f64(name).map_or_else(|| ((full * scale) as u64).max(min), |v| v as u64)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Resources of a process

#[derive(Clone, Copy, Debug, Default)]
struct Resources {
    rss: u64,
    fds: u64,
    threads: u64,
}

fn resources(pid: u32) -> anyhow::Result<Resources> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(v.trim().trim_end_matches("kB").trim().parse()?)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(Resources {
        rss: field("VmRSS:")? * 1024,
        fds,
        threads: field("Threads:")?,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1, the few packets this program sends

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn connect_packet(id: &str, clean: bool) -> Vec<u8> {
    let mut b = Vec::new();
    put_str(&mut b, "MQTT");
    b.push(4);
    b.push(if clean { 0x02 } else { 0x00 });
    b.extend_from_slice(&3600u16.to_be_bytes());
    put_str(&mut b, id);
    packet(0x10, &b)
}

fn subscribe_packet(pid: u16, filters: &[&str], qos: u8) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    for f in filters {
        put_str(&mut b, f);
        b.push(qos);
    }
    packet(0x82, &b)
}

fn publish_packet(topic: &str, payload: &[u8], pid: Option<u16>) -> Vec<u8> {
    let mut b = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut b, topic);
    if let Some(pid) = pid {
        b.extend_from_slice(&pid.to_be_bytes());
    }
    b.extend_from_slice(payload);
    packet(if pid.is_some() { 0x32 } else { 0x30 }, &b)
}

fn puback_packet(pid: u16) -> Vec<u8> {
    packet(0x40, &pid.to_be_bytes())
}

const DISCONNECT: [u8; 2] = [0xE0, 0x00];

fn read_packet(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    let first = b[0];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        r.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(std::io::Error::other("bad remaining length"));
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((first, body))
}

/// Topic, packet id (QoS > 0) and payload of a PUBLISH body.
fn parse_publish(first: u8, body: &[u8]) -> Option<(&str, Option<u16>, &[u8])> {
    let tlen = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let topic = std::str::from_utf8(body.get(2..2 + tlen)?).ok()?;
    let mut rest = body.get(2 + tlen..)?;
    let pid = if (first >> 1) & 3 > 0 {
        let pid = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        rest = rest.get(2..)?;
        Some(pid)
    } else {
        None
    };
    Some((topic, pid, rest))
}

/// A blocking MQTT client.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16, id: &str, clean: bool) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut c = Client {
            reader: BufReader::new(stream.try_clone()?),
            stream,
        };
        c.stream.write_all(&connect_packet(id, clean))?;
        let (first, body) = read_packet(&mut c.reader).with_context(|| format!("{id}: CONNACK"))?;
        if first != 0x20 || body.get(1) != Some(&0) {
            bail!("{id}: refused: {first:#x} {body:?}");
        }
        Ok(c)
    }

    /// Reads until the packet of type `kind` (high nibble) with packet id `pid`, acknowledging
    /// the QoS 1 messages that come first.
    fn wait_for(&mut self, kind: u8, pid: u16) -> anyhow::Result<()> {
        loop {
            let (first, body) = read_packet(&mut self.reader)?;
            if first >> 4 == kind && body.get(..2) == Some(&pid.to_be_bytes()[..]) {
                return Ok(());
            }
            if first >> 4 == 3 {
                if let Some((_, Some(p), _)) = parse_publish(first, &body) {
                    self.stream.write_all(&puback_packet(p))?;
                }
            }
        }
    }

    fn subscribe(&mut self, filters: &[&str], qos: u8) -> anyhow::Result<()> {
        self.stream.write_all(&subscribe_packet(1, filters, qos))?;
        self.wait_for(9, 1)
    }

    fn disconnect(mut self) -> anyhow::Result<()> {
        self.stream.write_all(&DISCONNECT)?;
        Ok(())
    }
}

/// A subscriber on its own thread: counts messages and, when `events` is given, sends every
/// (topic, payload) there.
fn listen(
    client: Client,
    counter: Arc<AtomicU64>,
    events: Option<mpsc::Sender<(String, String)>>,
) -> std::thread::JoinHandle<()> {
    let Client {
        mut stream,
        mut reader,
    } = client;
    let _ = reader.get_ref().set_read_timeout(None);
    std::thread::spawn(move || {
        while let Ok((first, body)) = read_packet(&mut reader) {
            if first >> 4 != 3 {
                continue;
            }
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some((topic, pid, payload)) = parse_publish(first, &body) {
                if let Some(p) = pid {
                    let _ = stream.write_all(&puback_packet(p));
                }
                if let Some(tx) = &events {
                    let _ = tx.send((topic.to_owned(), String::from_utf8_lossy(payload).into()));
                }
            }
        }
    })
}

/// Waits for an event that `want` accepts.
fn wait_event(
    rx: &mpsc::Receiver<(String, String)>,
    what: &str,
    want: impl Fn(&str, &str) -> bool,
) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (t, p) = rx
            .recv_timeout(left)
            .with_context(|| format!("waiting for {what}"))?;
        if want(&t, &p) {
            return Ok((t, p));
        }
    }
}

fn drain(rx: &mpsc::Receiver<(String, String)>) {
    while rx.try_recv().is_ok() {}
}

// ---------------------------------------------------------------------------------------------
// The peers

/// `ferrule simulate` on `port` (0: any); returns it and its port. Retries while the port is
/// not free again yet.
fn simulator(config: &Path, port: u16) -> anyhow::Result<(Proc, u16)> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut child = Command::new(bin())
            .args(["simulate", "--config"])
            .arg(config)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("no stderr")?;
        let proc = Proc(child);
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            if line.contains("simulator listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .context("no addr=")?;
                let port = addr.rsplit(':').next().context("no port")?.parse()?;
                return Ok((proc, port));
            }
        }
        drop(proc);
        if Instant::now() > deadline {
            bail!("the simulator did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_mosquitto(dir: &Path) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlog_dest none\npersistence false\nmax_queued_messages 0\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n"
        ),
    )?;
    let proc = Proc(
        Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start mosquitto")?,
    );
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("mosquitto did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((proc, port))
}

/// `ferrule run` on `config`; returns once it sent READY=1.
fn start_ferrule(dir: &Path, config: &Path, log: &Path) -> anyhow::Result<Proc> {
    let sock = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&sock)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let proc = Proc(
        Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .env("STATE_DIRECTORY", dir)
            .env("NOTIFY_SOCKET", &sock)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?,
    );
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).context("no READY=1 from ferrule")?;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            return Ok(proc);
        }
    }
}

/// The body of `GET /metrics`.
fn scrape(port: u16) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Configs

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    A,
    B,
}

struct Ports {
    mqtt: u16,
    metrics: u16,
    sim: u16,
    mosquitto: u16,
}

fn devices(variant: Variant, sim: u16) -> String {
    let (n, points) = match variant {
        Variant::A => (4, 10),
        Variant::B => (5, 15),
    };
    let mut s = String::from("devices:\n");
    for d in 0..n {
        s.push_str(&format!(
            "  - name: dev{d}\n    tcp: \"127.0.0.1:{sim}\"\n    unit: {}\n    poll: 250ms\n    timeout: 200ms\n    points:\n",
            d + 1
        ));
        for p in 0..points {
            s.push_str(&format!(
                "      - {{name: p{p}, kind: holding, address: {p}, type: i16}}\n"
            ));
        }
    }
    s
}

fn config(variant: Variant, ports: &Ports, dir: &Path) -> String {
    let (queued, inflight) = match variant {
        Variant::A => (1000, 20),
        Variant::B => (2000, 30),
    };
    format!(
        "site: soak\n\
         broker:\n  listeners: [{{bind: \"127.0.0.1:{}\"}}]\n  max_queued_messages: {queued}\n  max_inflight: {inflight}\n\
         metrics: {{bind: \"127.0.0.1:{}\"}}\n\
         uplink:\n  url: \"mqtt://127.0.0.1:{}\"\n  forward: [{{local: \"soak/#\", qos: 1}}]\n  queue: {{path: \"{}\", durability: normal}}\n{}",
        ports.mqtt,
        ports.metrics,
        ports.mosquitto,
        dir.join("queue.db").display(),
        devices(variant, ports.sim)
    )
}

/// Writes `text` to `path` by a rename, so a reader never sees half of it.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run

#[derive(Clone, Debug)]
struct Sample {
    phase: &'static str,
    /// Iterations of the phase done at this sample.
    iteration: u64,
    at: Duration,
    ferrule: Resources,
    mosquitto: Resources,
}

struct Soak {
    started: Instant,
    dir: PathBuf,
    ports: Ports,
    ferrule: Proc,
    mosquitto: Proc,
    sim: Option<Proc>,
    sim_config: PathBuf,
    /// The file the config path links to (rewritten for SIGHUP reloads).
    target: PathBuf,
    /// The config path ferrule runs on (a symlink to `target`).
    link: PathBuf,
    events: mpsc::Receiver<(String, String)>,
    samples: Vec<Sample>,
    variant: Variant,
    reloads_done: u64,
    reload_times: Vec<Duration>,
    flap_times: Vec<Duration>,
    /// Mosquitto's RSS around its own connects: (before, after).
    mosquitto_connects: (u64, u64),
    messages: MessageStats,
    log: PathBuf,
}

#[derive(Default)]
struct MessageStats {
    published: u64,
    delivered: u64,
    upstream: u64,
    seconds: f64,
}

impl Soak {
    fn sample(&mut self, phase: &'static str, iteration: u64) -> anyhow::Result<()> {
        let s = Sample {
            phase,
            iteration,
            at: self.started.elapsed(),
            ferrule: resources(self.ferrule.0.id()).context("ferrule is gone")?,
            mosquitto: resources(self.mosquitto.0.id())?,
        };
        eprintln!(
            "soak: {:>7.1}s {phase:<10} {iteration:>8} rss {:.1} MiB fds {} threads {}",
            s.at.as_secs_f64(),
            mib(s.ferrule.rss),
            s.ferrule.fds,
            s.ferrule.threads
        );
        self.samples.push(s);
        Ok(())
    }

    fn metrics(&self) -> anyhow::Result<String> {
        scrape(self.ports.metrics)
    }

    /// One reload to the other variant, awaited on `soak/$agent/config`.
    fn reload(&mut self) -> anyhow::Result<()> {
        let next = match self.variant {
            Variant::A => Variant::B,
            Variant::B => Variant::A,
        };
        drain(&self.events);
        let started = Instant::now();
        write_atomic(&self.target, &config(next, &self.ports, &self.dir))?;
        self.reloads_done += 1;
        if self.reloads_done.is_multiple_of(10) {
            // The file watch: the config path itself is replaced (a new link, renamed over it).
            let tmp = self.link.with_extension("link-tmp");
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&self.target, &tmp)?;
            std::fs::rename(&tmp, &self.link)?;
        } else {
            let ok = Command::new("kill")
                .args(["-HUP", &self.ferrule.0.id().to_string()])
                .status()?
                .success();
            if !ok {
                bail!("kill -HUP failed");
            }
        }
        let (_, body) = wait_event(&self.events, "the reload outcome", |t, _| {
            t == "soak/$agent/config"
        })?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let changed = v["changes"].as_array().is_some_and(|c| !c.is_empty());
        if v["ok"] != serde_json::Value::Bool(true) || !changed {
            bail!(
                "reload {} not applied as expected: {body}",
                self.reloads_done
            );
        }
        self.reload_times.push(started.elapsed());
        self.variant = next;
        Ok(())
    }

    fn reloads(&mut self, phase: &'static str, n: u64) -> anyhow::Result<()> {
        let every = (n / SAMPLES_PER_PHASE).max(1);
        for i in 1..=n {
            self.reload()?;
            if phase != "warm-up" && i % every == 0 && i < n {
                self.sample(phase, i)?;
            }
        }
        Ok(())
    }

    fn clients_connected(&self) -> anyhow::Result<f64> {
        metric(&self.metrics()?, "ferrule_broker_clients_connected")
            .context("no ferrule_broker_clients_connected")
    }

    /// Waits until ferrule counts `baseline` clients connected again.
    fn wait_clients(&self, baseline: f64) -> anyhow::Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = self.clients_connected()?;
            if now == baseline {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{now} clients connected, {baseline} before");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connects(&mut self, phase: &'static str, n: u64) -> anyhow::Result<()> {
        let baseline = self.clients_connected()?;
        let chunk = (n / SAMPLES_PER_PHASE).max(1);
        let mut done = 0;
        while done < n {
            let take = chunk.min(n - done);
            churn(self.ports.mqtt, done, take, phase)?;
            done += take;
            // Every dropped connection must be noticed and closed.
            self.wait_clients(baseline)?;
            if phase != "warm-up" && done < n {
                self.sample(phase, done)?;
            }
        }
        end_sessions(self.ports.mqtt, phase)?;
        Ok(())
    }

    fn messages(&mut self, phase: &'static str, n: u64) -> anyhow::Result<()> {
        let port = self.ports.mqtt;
        let baseline = self.clients_connected()?;
        let delivered = Arc::new(AtomicU64::new(0));
        let upstream = Arc::new(AtomicU64::new(0));
        let published = Arc::new(AtomicU64::new(0));
        let depth = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut subs = Vec::new();
        for i in 0..SUBSCRIBERS {
            let mut c = Client::connect(port, &format!("{phase}-sub-{i}"), true)?;
            c.subscribe(&["soak/load/#"], 0)?;
            let s = c.stream.try_clone()?;
            listen(c, delivered.clone(), None);
            subs.push(s);
        }
        let mut up = Client::connect(self.ports.mosquitto, &format!("{phase}-upstream"), true)?;
        up.subscribe(&["soak/load/#"], 0)?;
        let up_stream = up.stream.try_clone()?;
        listen(up, upstream.clone(), None);

        let started = Instant::now();
        let metrics_port = self.ports.metrics;
        let watcher = {
            let (depth, stop) = (depth.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(d) = scrape(metrics_port)
                        .ok()
                        .and_then(|t| metric(&t, "ferrule_queue_depth"))
                    {
                        depth.store(d as u64, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let share = n / PUBLISHERS + u64::from(p < n % PUBLISHERS);
                let (published, depth) = (published.clone(), depth.clone());
                let id = format!("{phase}-pub-{p}");
                std::thread::spawn(move || publish(port, &id, p, share, &published, &depth))
            })
            .collect();
        let every = (n / SAMPLES_PER_PHASE).max(1);
        let mut next = every;
        let mut result = Ok(());
        while publishers.iter().any(|p| !p.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            let now = published.load(Ordering::Relaxed);
            if phase != "warm-up" && now >= next && now < n {
                self.sample(phase, now)?;
                next = (now / every + 1) * every;
            }
        }
        for p in publishers {
            match p.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(anyhow::anyhow!("a publisher panicked")),
            }
        }
        result?;
        // The queue must drain and the subscribers see the end.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let d = metric(&self.metrics()?, "ferrule_queue_depth").unwrap_or(f64::MAX);
            if d == 0.0 && upstream.load(Ordering::Relaxed) >= n {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("soak: the queue did not drain: depth {d}");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        settle(&delivered, n * SUBSCRIBERS as u64);
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        subs.push(up_stream);
        for s in &mut subs {
            let _ = s.write_all(&DISCONNECT);
        }
        self.wait_clients(baseline)?;
        if phase != "warm-up" {
            self.messages = MessageStats {
                published: published.load(Ordering::Relaxed),
                delivered: delivered.load(Ordering::Relaxed),
                upstream: upstream.load(Ordering::Relaxed),
                seconds: started.elapsed().as_secs_f64(),
            };
        }
        Ok(())
    }

    fn flaps(&mut self, phase: &'static str, n: u64) -> anyhow::Result<()> {
        let every = (n / SAMPLES_PER_PHASE).max(1);
        for i in 1..=n {
            let started = Instant::now();
            drain(&self.events);
            drop(self.sim.take());
            wait_event(&self.events, "dev0 offline", |t, p| {
                t == "soak/dev0/$state" && p == "offline"
            })?;
            let (sim, _) = simulator(&self.sim_config, self.ports.sim)?;
            self.sim = Some(sim);
            wait_event(&self.events, "dev0 online", |t, p| {
                t == "soak/dev0/$state" && p == "online"
            })?;
            if phase != "warm-up" {
                self.flap_times.push(started.elapsed());
                if i % every == 0 && i < n {
                    self.sample(phase, i)?;
                }
            }
        }
        Ok(())
    }
}

/// Publishes `n` QoS 1 messages in windows of [`WINDOW`], pausing while the queue is deep.
fn publish(
    port: u16,
    id: &str,
    p: u64,
    n: u64,
    published: &AtomicU64,
    depth: &AtomicU64,
) -> anyhow::Result<()> {
    let mut c = Client::connect(port, id, true)?;
    let topics: Vec<String> = (0..16).map(|k| format!("soak/load/{p}/t{k}")).collect();
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(WINDOW as usize * 100);
    while sent < n {
        while depth.load(Ordering::Relaxed) > MAX_BACKLOG {
            std::thread::sleep(Duration::from_millis(10));
        }
        let w = WINDOW.min(n - sent);
        buf.clear();
        for k in 0..w {
            let i = sent + k;
            let mut payload = format!("{{\"n\":{i},\"p\":{p}}}").into_bytes();
            payload.resize(PAYLOAD, b' ');
            let pid = (k + 1) as u16;
            buf.extend_from_slice(&publish_packet(
                &topics[(i % 16) as usize],
                &payload,
                Some(pid),
            ));
        }
        c.stream.write_all(&buf)?;
        let mut acked = 0;
        while acked < w {
            let (first, _) = read_packet(&mut c.reader).context("PUBACK")?;
            if first >> 4 == 4 {
                acked += 1;
            }
        }
        sent += w;
        published.fetch_add(w, Ordering::Relaxed);
    }
    c.disconnect()
}

/// Waits until `counter` reaches `expected` or stops moving for 5 s.
fn settle(counter: &AtomicU64, expected: u64) {
    let mut last = counter.load(Ordering::Relaxed);
    let mut moved = Instant::now();
    while last < expected && moved.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            moved = Instant::now();
        }
    }
}

fn persistent_id(prefix: &str, thread: u64, i: u64) -> String {
    format!(
        "{prefix}-t{thread}-s{}",
        (i / CHURN_THREADS) % PERSISTENT_IDS_PER_THREAD
    )
}

/// Connects `n` clients (numbered from `first`) over [`CHURN_THREADS`] threads.
fn churn(port: u16, first: u64, n: u64, prefix: &str) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CHURN_THREADS)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut i = first + t;
                    while i < first + n {
                        one_connect(port, prefix, t, i)
                            .with_context(|| format!("connect {i} ({})", i % 20))?;
                        i += CHURN_THREADS;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a connect thread panicked"))??;
        }
        Ok(())
    })
}

fn one_connect(port: u16, prefix: &str, thread: u64, i: u64) -> anyhow::Result<()> {
    let id = format!("{prefix}-c{i}");
    match i % 20 {
        0..=9 => Client::connect(port, &id, true)?.disconnect(),
        10..=12 => {
            let mut c = Client::connect(port, &id, true)?;
            c.subscribe(&[&format!("soak/churn/{i}"), "soak/dev0/#"], 1)?;
            c.disconnect()
        }
        13..=15 => {
            // A persistent session: resumed by the next connect of this id, with the message
            // left unacknowledged here redelivered then.
            let pid = persistent_id(prefix, thread, i);
            let mut c = Client::connect(port, &pid, false)?;
            let topic = format!("soak/churn/{pid}");
            c.subscribe(&[&topic], 1)?;
            c.stream.write_all(&publish_packet(&topic, b"x", Some(2)))?;
            loop {
                let (first, body) = read_packet(&mut c.reader)?;
                if first >> 4 == 4 && body.get(..2) == Some(&[0, 2][..]) {
                    break;
                }
            }
            c.disconnect()
        }
        16 | 17 => {
            drop(Client::connect(port, &id, true)?);
            Ok(())
        }
        18 => {
            let pid = persistent_id(prefix, thread, i);
            let mut c = Client::connect(port, &pid, false)?;
            c.subscribe(&[&format!("soak/churn/{pid}")], 1)?;
            drop(c);
            Ok(())
        }
        _ => {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            let p = connect_packet(&id, true);
            s.write_all(&p[..p.len() / 2])?;
            Ok(())
        }
    }
}

/// Ends every persistent session of the churn (clean_session=1 discards it).
fn end_sessions(port: u16, prefix: &str) -> anyhow::Result<()> {
    for t in 0..CHURN_THREADS {
        for s in 0..PERSISTENT_IDS_PER_THREAD {
            Client::connect(port, &format!("{prefix}-t{t}-s{s}"), true)?.disconnect()?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let scale = env_f64("SOAK_SCALE").unwrap_or(1.0);
    let reloads = count("SOAK_RELOADS", RELOADS, scale, 2);
    let connects = count("SOAK_CONNECTS", CONNECTS, scale, 20);
    let messages = count("SOAK_MESSAGES", MESSAGES, scale, 1000);
    let flaps = count("SOAK_FLAPS", FLAPS, scale, 2);
    let settle_for = env_f64("SOAK_SETTLE_SECS").map_or(SETTLE, Duration::from_secs_f64);

    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().to_path_buf();
    let sim_config = dir.join("sim.yaml");
    std::fs::write(
        &sim_config,
        format!("site: sim\n{}", devices(Variant::B, 1)),
    )?;
    let (sim, sim_port) = simulator(&sim_config, 0)?;
    let mdir = dir.join("mosquitto");
    std::fs::create_dir(&mdir)?;
    let (mosquitto, mosquitto_port) = start_mosquitto(&mdir)?;
    let ports = Ports {
        mqtt: free_port()?,
        metrics: free_port()?,
        sim: sim_port,
        mosquitto: mosquitto_port,
    };
    // The config path is a link to a file in another directory: rewriting that file is seen by
    // SIGHUP only; replacing the link is seen by the file watch.
    let confdir = dir.join("etc");
    let store = dir.join("configs");
    std::fs::create_dir(&confdir)?;
    std::fs::create_dir(&store)?;
    let target = store.join("current.yaml");
    let link = confdir.join("ferrule.yaml");
    write_atomic(&target, &config(Variant::A, &ports, &dir))?;
    std::os::unix::fs::symlink(&target, &link)?;
    let log = dir.join("ferrule.log");
    let ferrule = start_ferrule(&dir, &link, &log)?;

    let (tx, events) = mpsc::channel();
    let mut monitor = Client::connect(ports.mqtt, "soak-monitor", true)?;
    monitor.subscribe(&["soak/$agent/config", "soak/+/$state"], 1)?;
    listen(monitor, Arc::new(AtomicU64::new(0)), Some(tx));
    wait_event(&events, "dev0 online", |t, p| {
        t == "soak/dev0/$state" && p == "online"
    })?;

    let mut soak = Soak {
        started: Instant::now(),
        dir,
        ports,
        ferrule,
        mosquitto,
        sim: Some(sim),
        sim_config,
        target,
        link,
        events,
        samples: Vec::new(),
        variant: Variant::A,
        reloads_done: 0,
        reload_times: Vec::new(),
        flap_times: Vec::new(),
        mosquitto_connects: (0, 0),
        messages: MessageStats::default(),
        log,
    };
    let result = run(&mut soak, reloads, connects, messages, flaps, settle_for);
    if let Err(e) = &result {
        eprintln!("soak failed: {e:#}\nferrule's log (last lines):");
        if let Ok(text) = std::fs::read_to_string(&soak.log) {
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("  {l}");
            }
        }
        return result;
    }
    report(
        &soak,
        scale,
        [reloads, connects, messages, flaps],
        settle_for,
    );
    let _ = Command::new("kill")
        .args(["-TERM", &soak.ferrule.0.id().to_string()])
        .status();
    let _ = soak.ferrule.0.wait();
    Ok(())
}

fn run(
    soak: &mut Soak,
    reloads: u64,
    connects: u64,
    messages: u64,
    flaps: u64,
    settle_for: Duration,
) -> anyhow::Result<()> {
    // Warm-up: a little of everything, so that the allocator's arenas, the broker's tables
    // and the queue's pages exist before the baseline.
    soak.sample("start", 0)?;
    soak.reloads("warm-up", 10)?;
    soak.connects("warm-up", 200)?;
    soak.messages("warm-up", 20_000)?;
    soak.flaps("warm-up", 2)?;
    soak.sample("warm-up", 0)?;

    soak.reload_times.clear();
    soak.reloads("reloads", reloads)?;
    soak.sample("reloads", reloads)?;

    soak.connects("connects", connects)?;
    soak.sample("connects", connects)?;
    // The same connects against Mosquitto, for its memory.
    let before = resources(soak.mosquitto.0.id())?.rss;
    churn(soak.ports.mosquitto, 0, connects, "mosq")?;
    end_sessions(soak.ports.mosquitto, "mosq")?;
    std::thread::sleep(Duration::from_secs(1));
    soak.mosquitto_connects = (before, resources(soak.mosquitto.0.id())?.rss);

    soak.messages("messages", messages)?;
    soak.sample("messages", messages)?;

    soak.flaps("flaps", flaps)?;
    soak.sample("flaps", flaps)?;

    std::thread::sleep(settle_for);
    soak.sample("idle", 0)?;
    Ok(())
}

/// Least-squares slope of `y` over `x`, per 1,000 of `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 1000.0
    }
}

const PHASES: [(&str, &str); 4] = [
    ("reloads", "reload"),
    ("connects", "connect"),
    ("messages", "message"),
    ("flaps", "flap"),
];

fn report(soak: &Soak, scale: f64, counts: [u64; 4], settle_for: Duration) {
    let s = &soak.samples;
    println!("## Soak\n");
    println!(
        "Scale {scale}: {} reloads, {} connects, {} messages, {} flaps, {} s idle settle; {:.0} s in all.\n",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        settle_for.as_secs(),
        soak.started.elapsed().as_secs_f64()
    );
    println!("### Samples (ferrule)\n");
    println!("| t (s) | phase | after | RSS (MiB) | fds | threads | Mosquitto RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for x in s {
        println!(
            "| {:.0} | {} | {} | {:.2} | {} | {} | {:.2} |",
            x.at.as_secs_f64(),
            x.phase,
            x.iteration,
            mib(x.ferrule.rss),
            x.ferrule.fds,
            x.ferrule.threads,
            mib(x.mosquitto.rss)
        );
    }
    let Some(base) = s.iter().find(|x| x.phase == "warm-up") else {
        return;
    };
    let Some(last) = s.last() else { return };

    println!("\n### Per phase (from the sample before the phase to its end)\n");
    println!("| phase | iterations | RSS start → end (MiB) | RSS slope (MiB / 1,000) | fds start → end | fds slope (/ 1,000) | threads start → end | verdict (end against start: RSS +2 MiB, fds +0) |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut slopes = Vec::new();
    for (i, (phase, unit)) in PHASES.iter().enumerate() {
        let Some(start_at) = s.iter().position(|x| x.phase == *phase) else {
            continue;
        };
        let start = &s[start_at - 1];
        let within: Vec<&Sample> = std::iter::once(start)
            .chain(s.iter().filter(|x| x.phase == *phase))
            .collect();
        let xy = |f: fn(&Resources) -> u64| -> Vec<(f64, f64)> {
            within
                .iter()
                .enumerate()
                .map(|(k, x)| {
                    (
                        if k == 0 { 0.0 } else { x.iteration as f64 },
                        f(&x.ferrule) as f64,
                    )
                })
                .collect()
        };
        let rss_slope = slope(&xy(|r| r.rss)) / (1024.0 * 1024.0);
        let fd_slope = slope(&xy(|r| r.fds));
        let Some(end) = within.last() else { continue };
        slopes.push((*phase, *unit, rss_slope, fd_slope));
        let flat = end.ferrule.rss <= start.ferrule.rss + RSS_TOLERANCE
            && end.ferrule.fds <= start.ferrule.fds;
        println!(
            "| {phase} | {} | {:.2} → {:.2} | {rss_slope:+.3} | {} → {} | {fd_slope:+.2} | {} → {} | {} |",
            counts[i],
            mib(start.ferrule.rss),
            mib(end.ferrule.rss),
            start.ferrule.fds,
            end.ferrule.fds,
            start.ferrule.threads,
            end.ferrule.threads,
            if flat { "flat" } else { "growing" }
        );
    }

    println!(
        "\n### Verdicts (last sample, after the idle settle, against the post-warm-up sample)\n"
    );
    println!("| resource | after warm-up | at the end | tolerance | verdict |");
    println!("|---|---|---|---|---|");
    let growth = |what: &str, which: usize| -> String {
        slopes
            .iter()
            .map(|(_, unit, rss, fds)| {
                let v = if which == 0 { *rss } else { *fds };
                format!("{v:+.3}{what} per 1,000 {unit}s")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = |ok: bool, what: &str, which: usize| {
        format!(
            "**{}** (slopes: {})",
            if ok { "flat" } else { "growing" },
            growth(what, which)
        )
    };
    println!(
        "| RSS | {:.2} MiB | {:.2} MiB | +2 MiB | {} |",
        mib(base.ferrule.rss),
        mib(last.ferrule.rss),
        verdict(
            last.ferrule.rss <= base.ferrule.rss + RSS_TOLERANCE,
            " MiB",
            0
        )
    );
    println!(
        "| open fds | {} | {} | +0 | {} |",
        base.ferrule.fds,
        last.ferrule.fds,
        verdict(last.ferrule.fds <= base.ferrule.fds, "", 1)
    );
    println!(
        "| threads | {} | {} | +0 | {} |",
        base.ferrule.threads,
        last.ferrule.threads,
        if last.ferrule.threads <= base.ferrule.threads {
            "**flat**"
        } else {
            "**growing**"
        }
    );

    let mean = |v: &[Duration]| {
        v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len().max(1) as f64 * 1e3
    };
    let m = &soak.messages;
    println!("\n### The load itself\n");
    println!(
        "- reloads: {} applied, {:.0} ms each on average (trigger → outcome on `soak/$agent/config`)",
        soak.reload_times.len(),
        mean(&soak.reload_times)
    );
    println!(
        "- messages: {} published (QoS 1) in {:.0} s ({:.0}/s); {} of {} copies delivered to the {SUBSCRIBERS} local subscribers (QoS 0); {} received upstream through the uplink",
        m.published,
        m.seconds,
        m.published as f64 / m.seconds.max(1e-9),
        m.delivered,
        m.published * SUBSCRIBERS as u64,
        m.upstream
    );
    println!(
        "- flaps: {}, {:.0} ms each on average (kill → `offline` → restart → `online`)",
        soak.flap_times.len(),
        mean(&soak.flap_times)
    );

    let at = |phase: &str| s.iter().rev().find(|x| x.phase == phase);
    if let Some(after_msgs) = at("messages") {
        println!("\n### Mosquitto (the reference broker), same run\n");
        println!("| | before | after |");
        println!("|---|---|---|");
        println!(
            "| the same {} connects and disconnects (direct) | {:.2} MiB | {:.2} MiB |",
            counts[1],
            mib(soak.mosquitto_connects.0),
            mib(soak.mosquitto_connects.1)
        );
        println!(
            "| the {} messages forwarded by ferrule's uplink, to one subscriber | {:.2} MiB | {:.2} MiB |",
            counts[2],
            mib(soak.mosquitto_connects.1),
            mib(after_msgs.mosquitto.rss)
        );
    }
}
