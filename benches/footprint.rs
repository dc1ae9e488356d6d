//! Footprint benchmark (not a test): the size of the release binary, the time from start to
//! READY=1 (the systemd notification, sent once the listeners are bound, the queue is open and
//! every device line started), and the resident memory idle and under load — 1,000 points
//! polled every second, 50 MQTT clients subscribed to everything, and a 100,000-message backlog
//! in the queue — side by side with Mosquitto (idle, and with the same 50 subscribers) in the
//! same run.
//!
//! Run (release build; Mosquitto and mosquitto_sub on PATH or in /usr/sbin):
//!
//! ```sh
//! cargo bench --bench footprint
//! FERRULE_BIN=target/dist/ferrule cargo bench --bench footprint   # the shipped profile
//! ```
//!
//! Prints a Markdown report (the tables of `docs/benchmarks.md`). The Modbus devices are
//! `ferrule simulate` (ten unit ids of 100 registers each, values moving every 250 ms). Memory
//! is `VmRSS` (now) and `VmHWM` (peak) of `/proc/PID/status`, read after the load has run for
//! [`SETTLE`].

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrule::config::Durability;
use ferrule::store::{Queue, Record};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// How long the load runs before memory is read.
const SETTLE: Duration = Duration::from_secs(10);
const CLIENTS: usize = 50;
const BACKLOG: usize = 100_000;
const DEVICES: usize = 10;
const POINTS_PER_DEVICE: usize = 100;
const STARTS: usize = 10;

/// The binary measured: `FERRULE_BIN` (e.g. the shipped `dist` build), or this bench's.
fn bin() -> PathBuf {
    std::env::var_os("FERRULE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferrule")))
}

fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `kB` fields `names` of `/proc/{pid}/status`, in bytes, in the order asked.
fn status_fields<const N: usize>(pid: u32, names: [&str; N]) -> BenchResult<[u64; N]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut out = [0u64; N];
    for (slot, name) in out.iter_mut().zip(names) {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or(format!("no {name} in /proc/{pid}/status"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        *slot = kb * 1024;
    }
    Ok(out)
}

/// (VmRSS, VmHWM) of `pid`, in bytes.
fn memory(pid: u32) -> BenchResult<(u64, u64)> {
    let [rss, hwm] = status_fields(pid, ["VmRSS:", "VmHWM:"])?;
    Ok((rss, hwm))
}

/// `RssAnon` and `RssFile` of `pid` (heap and stacks; the binary's pages), in bytes.
fn rss_breakdown(pid: u32) -> BenchResult<(u64, u64)> {
    let [anon, file] = status_fields(pid, ["RssAnon:", "RssFile:"])?;
    Ok((anon, file))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn free_port() -> BenchResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The devices: `n` unit ids on `port`, 100 i16 holding registers each.
fn devices_yaml(port: u16, n: usize, points: usize) -> String {
    let mut s = String::from("devices:\n");
    for d in 0..n {
        s.push_str(&format!(
            "  - name: dev{d}\n    tcp: \"127.0.0.1:{port}\"\n    unit: {}\n    poll: 1s\n    points:\n",
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

/// Starts `ferrule simulate` for `yaml` (in `dir`) and returns it with its port.
fn simulator(dir: &Path, yaml: &str) -> BenchResult<(Proc, u16)> {
    let path = dir.join("sim.yaml");
    std::fs::write(&path, yaml)?;
    let mut child = Command::new(bin())
        .args(["simulate", "--config"])
        .arg(&path)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let proc = Proc(child);
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if line.contains("simulator listening") {
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .ok_or("no addr=")?;
            let port = addr.rsplit(':').next().ok_or("no port")?.parse()?;
            return Ok((proc, port));
        }
    }
    Err("the simulator did not start".into())
}

/// Runs `ferrule run` on `config` with a notification socket of its own; returns it and the
/// time to READY=1.
fn start_ferrule(dir: &Path, config: &Path) -> BenchResult<(Proc, Duration)> {
    let sock = dir.join(format!("notify-{}.sock", rand_suffix()));
    let socket = UnixDatagram::bind(&sock)?;
    socket.set_read_timeout(Some(Duration::from_secs(60)))?;
    let started = Instant::now();
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(config)
        .env("STATE_DIRECTORY", dir)
        .env("NOTIFY_SOCKET", &sock)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let proc = Proc(child);
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf)?;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            let took = started.elapsed();
            let _ = std::fs::remove_file(&sock);
            return Ok((proc, took));
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

fn stop(mut proc: Proc) -> BenchResult<()> {
    Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status()?;
    proc.0.wait()?;
    Ok(())
}

/// Mosquitto on a free port; waits until it accepts a connection. Returns it and the time
/// until then.
fn start_mosquitto(dir: &Path) -> BenchResult<(Proc, u16, Duration)> {
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )?;
    let started = Instant::now();
    let child = Command::new(mosquitto_bin())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let proc = Proc(child);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("mosquitto did not start".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok((proc, port, started.elapsed()))
}

/// `n` mosquitto_sub clients subscribed to `filter` on `port`.
fn subscribers(port: u16, filter: &str, n: usize) -> BenchResult<Vec<Proc>> {
    (0..n)
        .map(|i| {
            Ok(Proc(
                Command::new("mosquitto_sub")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", filter])
                    .args(["-i", &format!("fp-sub-{i}"), "-q", "0"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            ))
        })
        .collect()
}

/// Fills the queue at `path` with `n` typical point messages.
fn fill_queue(path: &Path, n: usize) -> BenchResult<()> {
    let queue = Queue::open(path, Durability::Normal)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for chunk in 0..n.div_ceil(10_000) {
            let records = (chunk * 10_000..((chunk + 1) * 10_000).min(n))
                .map(|i| Record {
                    topic: format!("fp/dev{}/p{}", i % DEVICES, i % POINTS_PER_DEVICE),
                    payload: Bytes::from(format!(
                        r#"{{"value":{i},"ts":"2026-11-22T10:00:00.123Z","quality":"good"}}"#
                    )),
                    qos: 1,
                    retain: false,
                })
                .collect();
            queue.enqueue_many(records).await?;
        }
        queue.close().await
    })?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let size = std::fs::metadata(bin())?.len();

    // Startup: a one-device config, READY=1 measured STARTS times; Mosquitto's time until
    // its port accepts, as many times.
    let (_sim, sim_port) = simulator(
        dir.path(),
        &format!("site: fp\n{}", devices_yaml(1, DEVICES, POINTS_PER_DEVICE)),
    )?;
    let idle_config = dir.path().join("idle.yaml");
    std::fs::write(
        &idle_config,
        format!(
            "site: fp\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\n  persistence: false\n{}",
            devices_yaml(sim_port, 1, 1)
        ),
    )?;
    let mut ready = Vec::new();
    let mut idle = None;
    for i in 0..STARTS {
        let (proc, took) = start_ferrule(dir.path(), &idle_config)?;
        ready.push(took);
        if i + 1 == STARTS {
            std::thread::sleep(SETTLE);
            idle = Some(memory(proc.0.id())?);
        }
        stop(proc)?;
    }
    let mut mosq_start = Vec::new();
    let mut mosq_idle = None;
    for i in 0..STARTS {
        let mdir = tempfile::tempdir()?;
        let (proc, _, took) = start_mosquitto(mdir.path())?;
        mosq_start.push(took);
        if i + 1 == STARTS {
            std::thread::sleep(SETTLE);
            mosq_idle = Some(memory(proc.0.id())?);
        }
    }

    // Load: 1,000 points every second, 50 subscribers to everything, a 100,000-message
    // backlog (the upstream is a closed port, so it stays).
    let queue_path = dir.path().join("load-queue.db");
    fill_queue(&queue_path, BACKLOG)?;
    let load_config = dir.path().join("load.yaml");
    let broker_port = free_port()?;
    std::fs::write(
        &load_config,
        format!(
            "site: fp\nbroker:\n  listeners: [{{bind: \"127.0.0.1:{broker_port}\"}}]\n  persistence: false\n{}uplink:\n  url: \"mqtt://127.0.0.1:{}\"\n  forward: [{{local: \"fp/#\", qos: 1}}]\n  queue: {{path: {}, durability: normal}}\n",
            devices_yaml(sim_port, DEVICES, POINTS_PER_DEVICE),
            free_port()?,
            queue_path.display()
        ),
    )?;
    let (agent, load_ready) = start_ferrule(dir.path(), &load_config)?;
    let _subs = subscribers(broker_port, "fp/#", CLIENTS)?;
    std::thread::sleep(SETTLE);
    let loaded = memory(agent.0.id())?;
    let breakdown = rss_breakdown(agent.0.id())?;
    stop(agent)?;

    // Mosquitto with the same 50 subscribers (and nothing else).
    let mdir = tempfile::tempdir()?;
    let (mosq, mport, _) = start_mosquitto(mdir.path())?;
    let _msubs = subscribers(mport, "fp/#", CLIENTS)?;
    std::thread::sleep(SETTLE);
    let mosq_loaded = memory(mosq.0.id())?;

    let (idle_rss, idle_hwm) = idle.ok_or("no idle reading")?;
    let (m_idle_rss, _) = mosq_idle.ok_or("no idle reading")?;
    println!("## Footprint\n");
    println!("| | ferrule | Mosquitto | goal |\n|---|---|---|---|");
    println!(
        "| binary (x86_64, stripped) | {} | — | ≤ 8 MB (aarch64) |",
        mib(size)
    );
    println!(
        "| start → READY=1 (ferrule) / port accepting (Mosquitto), median of {STARTS} (min–max) | {:.0} ms ({:.0}–{:.0}) | {:.0} ms ({:.0}–{:.0}) | ≤ 200 ms |",
        median(ready.clone()).as_secs_f64() * 1e3,
        ready.iter().min().ok_or("none")?.as_secs_f64() * 1e3,
        ready.iter().max().ok_or("none")?.as_secs_f64() * 1e3,
        median(mosq_start.clone()).as_secs_f64() * 1e3,
        mosq_start.iter().min().ok_or("none")?.as_secs_f64() * 1e3,
        mosq_start.iter().max().ok_or("none")?.as_secs_f64() * 1e3,
    );
    println!(
        "| RSS idle (1 device, 1 point; Mosquitto: no client) | {} (peak {}) | {} | |",
        mib(idle_rss),
        mib(idle_hwm),
        mib(m_idle_rss)
    );
    println!(
        "| RSS with {} points, {CLIENTS} subscribers, {BACKLOG} queued (Mosquitto: the {CLIENTS} subscribers only) | {} (peak {}) | {} (peak {}) | ≤ 20 MB |",
        DEVICES * POINTS_PER_DEVICE,
        mib(loaded.0),
        mib(loaded.1),
        mib(mosq_loaded.0),
        mib(mosq_loaded.1)
    );
    println!(
        "| of which anonymous (heap, stacks) / file-backed (the binary's pages) | {} / {} | | |",
        mib(breakdown.0),
        mib(breakdown.1)
    );
    println!(
        "| start → READY=1 with that load | {:.0} ms | | |",
        load_ready.as_secs_f64() * 1e3
    );
    Ok(())
}
