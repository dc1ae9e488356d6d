//! Store-and-forward benchmark (not a test): the queue's enqueue rate with `durability: full`
//! and `normal`, its size on disk, and the drain of a backlog to a real Mosquitto at QoS 1 on
//! loopback — side by side in the same run with Mosquitto itself used as the local broker,
//! draining the same backlog through a persistent bridge to the same upstream.
//!
//! Run (release build, Mosquitto on PATH or in /usr/sbin):
//!
//! ```sh
//! cargo bench --bench store_forward
//! BENCH_MESSAGES=200000 BENCH_WINDOWS=100,1000 cargo bench --bench store_forward
//! ```
//!
//! Prints a Markdown report (the tables of `docs/benchmarks.md`). Both drains are timed from the
//! moment the link to the upstream is up (ferrule: `uplink connected`; Mosquitto: the upstream
//! logs the bridge's connection) until a QoS 1 `mosquitto_sub` on the upstream has counted
//! every message; ferrule's queue is also checked empty (every row deleted after its PUBACK).
//! CPU per message is read from `/proc` for the drain side (this process for ferrule, the
//! local Mosquitto for the bridge) and for the upstream Mosquitto.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrule::config::{self, Durability, Origin};
use ferrule::store::{inspect, Queue, Record};
use ferrule::topics::Topics;
use ferrule::uplink::{NoLocal, UplinkTask};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A typical point-state message: 20-byte topic, 76-byte JSON payload.
fn record(i: usize) -> Record {
    Record {
        topic: format!("bench/dev-{:03}/p-{:02}", i % 500, i % 40),
        payload: Bytes::from(format!(
            r#"{{"value":{}.5,"ts":"2026-11-22T10:00:00.123Z","quality":"good","unit":"C"}}"#,
            i % 10_000
        )),
        qos: 1,
        retain: false,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let messages = env_usize("BENCH_MESSAGES", 1_000_000);
    let windows: Vec<usize> = std::env::var("BENCH_WINDOWS")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(messages, &windows))
}

/// Whether `part` (enqueue, bridge, ferrule) is to run: `BENCH_PARTS`, default all.
fn part(part: &str) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |p| p.split(',').any(|x| x.trim() == part))
}

async fn run(messages: usize, windows: &[usize]) -> BenchResult<()> {
    println!("## Store-and-forward benchmark\n");
    println!(
        "{} messages of {} bytes (topic + payload), {} cores, mosquitto {}\n",
        messages,
        record(0).topic.len() + record(0).payload.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mosquitto_version()
    );

    if part("enqueue") {
        enqueue_table(messages).await?;
    }
    drain_table(messages, windows).await
}

async fn enqueue_table(messages: usize) -> BenchResult<()> {
    println!("### Enqueue\n");
    println!("| durability | how | messages | seconds | msgs/s |");
    println!("|---|---|---|---|---|");
    for durability in [Durability::Normal, Durability::Full] {
        for (how, concurrency, batch) in [
            ("64 publishers, one message each", 64, 1),
            ("batches of 100", 1, 100),
        ] {
            let n = if durability == Durability::Full && batch == 1 {
                messages.min(100_000)
            } else {
                messages.min(300_000)
            };
            let dir = tempfile::tempdir()?;
            let queue = Queue::open(&dir.path().join("q.db"), durability)?;
            let secs = enqueue(&queue, n, concurrency, batch).await?;
            queue.close().await?;
            println!(
                "| {} | {how} | {n} | {secs:.2} | {:.0} |",
                name(durability),
                n as f64 / secs
            );
        }
    }
    Ok(())
}

async fn drain_table(messages: usize, windows: &[usize]) -> BenchResult<()> {
    println!("\n### Drain of a {messages}-message backlog to Mosquitto, QoS 1, loopback\n");
    println!(
        "| drained by | window (in flight) | durability | seconds | msgs/s | ratio to the bridge | CPU µs/msg, drain side | CPU µs/msg, upstream |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut first_disk = None;
    for &window in windows {
        let mut bridge = f64::NAN;
        let us = |cpu: f64| Drained::per_message_us(cpu, messages);
        if part("bridge") {
            let d = bridge_drain(messages, window).await?;
            bridge = messages as f64 / d.secs;
            println!(
                "| Mosquitto bridge | {window} | in memory (autosave) | {:.2} | {bridge:.0} | 1.00 | {:.1} | {:.1} |",
                d.secs,
                us(d.cpu_drainer),
                us(d.cpu_upstream)
            );
        }
        if !part("ferrule") {
            continue;
        }
        for durability in [Durability::Full, Durability::Normal] {
            let (d, disk) = ferrule_drain(messages, window, durability).await?;
            let rate = messages as f64 / d.secs;
            println!(
                "| ferrule | {window} | {} | {:.2} | {rate:.0} | {:.2} | {:.1} | {:.1} |",
                name(durability),
                d.secs,
                rate / bridge,
                us(d.cpu_drainer),
                us(d.cpu_upstream)
            );
            first_disk.get_or_insert(disk);
        }
    }
    if let Some(disk) = first_disk {
        print_disk(&disk);
    }
    Ok(())
}

fn name(d: Durability) -> &'static str {
    match d {
        Durability::Full => "full",
        Durability::Normal => "normal",
    }
}

/// Enqueues `n` records: `concurrency` tasks each awaiting requests of `batch` records.
async fn enqueue(queue: &Queue, n: usize, concurrency: usize, batch: usize) -> BenchResult<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (queue, next) = (queue.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed) as usize;
                if first >= n {
                    return Ok::<_, ferrule::store::StoreError>(());
                }
                let records = (first..(first + batch).min(n)).map(record).collect();
                queue.enqueue_many(records).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// File sizes after the backlog was queued.
struct Disk {
    payload: u64,
    file: u64,
    wal: u64,
    in_use: u64,
    after_drain: u64,
}

fn print_disk(d: &Disk) {
    println!(
        "\nQueue on disk with the whole backlog (durability full): {:.1} MB of topics and payloads; file {:.1} MB + WAL {:.1} MB = **{:.2}×** the payload (pages in use {:.2}×); after the drain: {:.2} MB.\n",
        mb(d.payload),
        mb(d.file),
        mb(d.wal),
        (d.file + d.wal) as f64 / d.payload as f64,
        d.in_use as f64 / d.payload as f64,
        mb(d.after_drain)
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Fills a queue with `n` messages, then drains it with ferrule's uplink to a fresh Mosquitto.
async fn ferrule_drain(
    n: usize,
    window: usize,
    durability: Durability,
) -> BenchResult<(Drained, Disk)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let queue = Queue::open(&path, durability)?;
    let mut i = 0;
    while i < n {
        let batch = (i..(i + 1000).min(n)).map(record).collect();
        queue.enqueue_many(batch).await?;
        i += 1000;
    }
    let full = queue.stats().await?;
    let snap = inspect::snapshot(&path)?;
    let mut disk = Disk {
        payload: full.bytes,
        file: snap.file_bytes,
        wal: snap.wal_bytes,
        in_use: snap.db_bytes - snap.free_bytes,
        after_drain: 0,
    };

    let upstream = Mosquitto::start(dir.path(), UPSTREAM)?;
    let counter = Counter::start(&upstream, n).await?;
    let yaml = format!(
        "site: bench\ndevices: [{{name: d, tcp: \"127.0.0.1:9\", points: [{{name: x, kind: holding, address: 0}}]}}]\n\
         uplink:\n  url: \"mqtt://127.0.0.1:{}\"\n  client_id: ferrule-bench\n  window: {window}\n  queue: {{path: {}}}\n",
        upstream.port,
        path.display()
    );
    let origin = Origin {
        name: "bench".into(),
        base_dir: dir.path().to_path_buf(),
        state_dir: dir.path().to_path_buf(),
    };
    let cfg = config::parse(&yaml, &origin)?;
    let uplink = cfg.uplink.ok_or("no uplink in the bench config")?;
    let task = UplinkTask::new(
        &uplink,
        &Topics::new("bench"),
        queue.clone(),
        Arc::new(NoLocal),
    )?;
    let status = task.status();
    let cancel = CancellationToken::new();
    let cpu_before = (cpu_seconds(None), cpu_seconds(Some(upstream.child.id())));
    let running = tokio::spawn(task.run(cancel.clone()));
    wait_until(Duration::from_secs(30), || status.get().connected).await?;
    let start = Instant::now();
    counter.done(Duration::from_secs(600)).await?;
    let mut secs = start.elapsed().as_secs_f64();
    // Every row deleted after its PUBACK: the drain is over only when the queue is empty.
    loop {
        if queue.stats().await?.depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        secs = start.elapsed().as_secs_f64();
    }
    let drained = Drained {
        secs,
        cpu_drainer: cpu_seconds(None) - cpu_before.0,
        cpu_upstream: cpu_seconds(Some(upstream.child.id())) - cpu_before.1,
    };
    cancel.cancel();
    running.await?;
    let counters = queue.counters();
    eprintln!(
        "ferrule drain: {} commits ({:.0} rows per commit)",
        counters.commits,
        n as f64 / counters.commits.max(1) as f64
    );
    queue.close().await?;
    disk.after_drain = std::fs::metadata(&path)?.len()
        + std::fs::metadata(dir.path().join("queue.db-wal")).map_or(0, |m| m.len());
    drop(upstream);
    Ok((drained, disk))
}

/// A timed drain, with the CPU the drain side (ferrule, or the local Mosquitto) and the
/// upstream Mosquitto used meanwhile.
struct Drained {
    secs: f64,
    cpu_drainer: f64,
    cpu_upstream: f64,
}

impl Drained {
    fn per_message_us(cpu: f64, n: usize) -> f64 {
        cpu * 1e6 / n as f64
    }
}

/// User + system CPU seconds of a process (this one with `None`), from `/proc`.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // Fields 14 and 15 of proc(5): utime and stime, in clock ticks (100 per second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// Queues `n` messages in a local Mosquitto whose bridge cannot reach the upstream yet, then
/// starts the upstream and times the bridge's drain.
async fn bridge_drain(n: usize, window: usize) -> BenchResult<Drained> {
    let dir = tempfile::tempdir()?;
    let upstream_port = free_port()?;
    let local = Mosquitto::start(
        dir.path(),
        &[
            "persistence true",
            "max_queued_messages 0",
            &format!("max_inflight_messages {window}"),
            "connection upstream",
            &format!("address 127.0.0.1:{upstream_port}"),
            "topic bench/# out 1",
            "cleansession false",
            "clientid bench-bridge",
            "restart_timeout 1",
            "try_private false",
        ],
    )?;
    // Fill it at QoS 1 through a real client, as a LAN publisher would.
    publish(local.port, n).await?;
    let up_dir = tempfile::tempdir()?;
    let cpu_local = cpu_seconds(Some(local.child.id()));
    let upstream = Mosquitto::start_on(up_dir.path(), upstream_port, UPSTREAM)?;
    let cpu_upstream = cpu_seconds(Some(upstream.child.id()));
    let counter = Counter::start(&upstream, n).await?;
    let connected = upstream.wait_line("bench-bridge", Duration::from_secs(30))?;
    counter.done(Duration::from_secs(600)).await?;
    let secs = connected.elapsed().as_secs_f64();
    let drained = Drained {
        secs,
        cpu_drainer: cpu_seconds(Some(local.child.id())) - cpu_local,
        cpu_upstream: cpu_seconds(Some(upstream.child.id())) - cpu_upstream,
    };
    drop(local);
    Ok(drained)
}

/// Publishes `n` QoS 1 messages with rumqttc and waits for every PUBACK.
async fn publish(port: u16, n: usize) -> BenchResult<()> {
    let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    options
        .set_inflight(100)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 1000);
    let sender = tokio::spawn(async move {
        for i in 0..n {
            let r = record(i);
            client
                .publish(r.topic, QoS::AtLeastOnce, false, r.payload)
                .await?;
        }
        Ok::<_, rumqttc::ClientError>(client)
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
            acked += 1;
        }
    }
    let client = sender.await??;
    client.disconnect().await?;
    Ok(())
}

/// The upstream's settings: no limit on what it queues or has in flight for the counting
/// subscriber (a QoS 0 subscriber loses messages when it falls behind).
const UPSTREAM: &[&str] = &["max_queued_messages 0", "max_inflight_messages 0"];

/// A QoS 1 `mosquitto_sub` on the upstream that exits after `n` `bench/#` messages: a process
/// of its own, so its CPU is counted on neither side.
struct Counter {
    child: Child,
}

impl Drop for Counter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Counter {
    async fn start(upstream: &Mosquitto, n: usize) -> BenchResult<Counter> {
        let id = format!("bench-counter-{}", upstream.port);
        let port = upstream.port.to_string();
        let count = n.to_string();
        let spawn = |program: PathBuf| {
            Command::new(program)
                .args(["-h", "127.0.0.1", "-p", &port, "-i", &id])
                .args(["-q", "1", "-t", "bench/#", "-C", &count])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // Beside the mosquitto found, else on PATH.
        let child = spawn(mosquitto_bin().with_file_name("mosquitto_sub"))
            .or_else(|_| spawn(PathBuf::from("mosquitto_sub")))?;
        // The upstream logs the subscription (log_type subscribe).
        upstream.wait_line(&format!("{id} 1 bench/#"), Duration::from_secs(30))?;
        Ok(Counter { child })
    }

    async fn done(mut self, limit: Duration) -> BenchResult<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("mosquitto_sub ended with {status}").into())
                };
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                return Err("the counting subscriber timed out".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> BenchResult<()> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > limit {
            return Err("timed out".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn free_port() -> BenchResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn mosquitto_bin() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

fn mosquitto_version() -> String {
    Command::new(mosquitto_bin())
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim_start_matches("mosquitto version ").to_owned())
        })
        .unwrap_or_default()
}

/// A Mosquitto child process, killed on drop; its log lines (with their arrival time) kept.
struct Mosquitto {
    child: Child,
    port: u16,
    lines: Arc<Mutex<VecDeque<(Instant, String)>>>,
}

impl Mosquitto {
    fn start(dir: &Path, extra: &[&str]) -> BenchResult<Mosquitto> {
        Self::start_on(dir, free_port()?, extra)
    }

    fn start_on(dir: &Path, port: u16, extra: &[&str]) -> BenchResult<Mosquitto> {
        let mut conf = format!(
            "user root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n\
             connection_messages true\npersistence_location {}/\nlistener {port} 127.0.0.1\nallow_anonymous true\n",
            dir.display()
        );
        // Global settings first, then the bridge section (`connection` starts it).
        for line in extra {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(&path, conf)?;
        let mut child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push_back((Instant::now(), line));
                }
            }
        });
        let m = Mosquitto { child, port, lines };
        m.wait_line(" running", Duration::from_secs(10))?;
        Ok(m)
    }

    /// Waits for a log line containing `text`; returns when it was read.
    fn wait_line(&self, text: &str, limit: Duration) -> BenchResult<Instant> {
        let start = Instant::now();
        loop {
            if let Ok(lines) = self.lines.lock() {
                if let Some((at, _)) = lines.iter().find(|(_, l)| l.contains(text)) {
                    return Ok(*at);
                }
            }
            if start.elapsed() > limit {
                return Err(format!("mosquitto on port {} did not log {text:?}", self.port).into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
