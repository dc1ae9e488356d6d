//! MQTT load generator: ferrule's embedded broker and Mosquitto side by side, in one run, on
//! the same machine, with the same clients (rumqttc).
//!
//! ```sh
//! cargo bench --bench mqtt     # BENCH_SECS=5 per latency run, BENCH_ROUNDS=3 rounds
//! ```
//!
//! For each broker (started here: the `ferrule` binary of this build with a minimal config, and
//! the system's `mosquitto`, both with their default limits: 20 in flight, 1000 queued per
//! client), it measures:
//! - throughput: N publishers publish 100-byte messages to `bench/<i>` as fast as their
//!   client allows for BENCH_SECS, M subscribers to `bench/#` count what they receive; the
//!   result is messages delivered per second (every subscriber receives every message, so
//!   N→M delivers N × M copies of each round), plus PUBACKs per second for QoS 1;
//! - latency: the same shape at a fixed publish rate (1,000 messages/s in total), each payload
//!   carrying its send time; percentiles of send-to-receive time over all deliveries;
//! - resident memory (VmRSS) of the broker process when idle and with 1,000 idle clients.
//!
//! The two brokers are measured alternately per scenario (which goes first alternates too), so
//! a load change on the machine hits both. Output: markdown tables with ferrule/Mosquitto
//! ratios, as pasted into `docs/benchmarks.md`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PAYLOAD: usize = 100;
const IDLE_CLIENTS: usize = 2000;
const LATENCY_RATE: u32 = 1000;
/// Messages published per throughput measurement (split over the publishers).
const THROUGHPUT_MESSAGES: u64 = 100_000;

/// A broker process under test; killed when dropped.
struct Broker {
    name: &'static str,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn program(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Broker {
    fn ferrule() -> anyhow::Result<Broker> {
        Self::ferrule_with("")
    }

    /// ferrule with extra `broker:` keys (indented two spaces).
    fn ferrule_with(broker: &str) -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("ferrule.yaml");
        std::fs::write(
            &config,
            format!(
                "site: bench\nbroker:\n  listeners: [{{bind: \"127.0.0.1:{port}\"}}]\n{broker}\n\
                 devices:\n  - {{name: dev, tcp: \"127.0.0.1:9\", poll: 60s, timeout: 100ms, \
                 points: [{{name: p, kind: holding, address: 0}}]}}\n"
            ),
        )?;
        let child = Command::new(env!("CARGO_BIN_EXE_ferrule"))
            .args(["run", "--config"])
            .arg(&config)
            .env("STATE_DIRECTORY", dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start ferrule")?;
        Self::ready(Broker {
            name: "ferrule",
            port,
            child,
            _dir: dir,
        })
    }

    fn mosquitto() -> anyhow::Result<Broker> {
        Self::mosquitto_with("")
    }

    /// Mosquitto with extra `mosquitto.conf` lines.
    fn mosquitto_with(extra: &str) -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "user root\nlog_dest none\npersistence false\nlistener {port} 127.0.0.1\n\
                 allow_anonymous true\n{extra}\n"
            ),
        )?;
        let child = Command::new(program("mosquitto", "FERRULE_MOSQUITTO"))
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start mosquitto")?;
        Self::ready(Broker {
            name: "mosquitto",
            port,
            child,
            _dir: dir,
        })
    }

    fn ready(broker: Broker) -> anyhow::Result<Broker> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_err() {
            if Instant::now() > deadline {
                bail!("{} did not start listening on {}", broker.name, broker.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// Resident set size in KiB.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS")
    }
}

/// A client and its event loop task, which counts what it sees.
struct Conn {
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    acked: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_inflight(100);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Connects; resolves `ready` on CONNACK (or SUBACK, when `subscribe` is given).
async fn connect(
    id: String,
    port: u16,
    subscribe: Option<QoS>,
    counters: Arc<Counters>,
    epoch: Instant,
) -> anyhow::Result<Conn> {
    let (client, eventloop) = AsyncClient::new(options(&id, port), 10_000);
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(drive(eventloop, subscribe.is_some(), counters, epoch, tx));
    if let Some(qos) = subscribe {
        client.subscribe("bench/#", qos).await?;
    }
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .with_context(|| format!("{id}: no CONNACK/SUBACK"))??;
    Ok(Conn { client, task })
}

async fn drive(
    mut eventloop: EventLoop,
    subscriber: bool,
    counters: Arc<Counters>,
    epoch: Instant,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) if !subscriber => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = p.payload.get(..8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(sent);
                    let sent = u64::from_be_bytes(b);
                    if sent > 0 {
                        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        if let Ok(mut l) = counters.latencies.lock() {
                            l.push(now.saturating_sub(sent));
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                // Reconnects are not part of a measurement: stop counting.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Shape {
    publishers: usize,
    subscribers: usize,
    qos: QoS,
}

impl Shape {
    fn label(&self) -> String {
        let q = match self.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        };
        format!("QoS {q}, {}→{}", self.publishers, self.subscribers)
    }
}

struct Throughput {
    delivered_per_s: f64,
    acked_per_s: f64,
    delivered_share: f64,
}

async fn setup(
    port: u16,
    shape: &Shape,
    epoch: Instant,
) -> anyhow::Result<(Vec<Conn>, Vec<Conn>, Arc<Counters>, Arc<Counters>)> {
    let subs_counters = Arc::new(Counters::default());
    let pubs_counters = Arc::new(Counters::default());
    let mut subs = Vec::new();
    for i in 0..shape.subscribers {
        let id = format!("sub-{i}-{}", epoch.elapsed().as_nanos());
        subs.push(connect(id, port, Some(shape.qos), subs_counters.clone(), epoch).await?);
    }
    let mut pubs = Vec::new();
    for i in 0..shape.publishers {
        let id = format!("pub-{i}-{}", epoch.elapsed().as_nanos());
        pubs.push(connect(id, port, None, pubs_counters.clone(), epoch).await?);
    }
    Ok((subs, pubs, subs_counters, pubs_counters))
}

/// When `counter` reached `expected`, or last moved before `quiet` without reaching it.
async fn last_delivery(counter: &AtomicU64, expected: u64, quiet: Duration) -> Instant {
    let mut last = counter.load(Ordering::Relaxed);
    let mut moved = Instant::now();
    loop {
        if last >= expected {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            moved = Instant::now();
        } else if moved.elapsed() >= quiet {
            return moved;
        }
    }
}

/// Waits until `counter` has not moved for `quiet` (or `limit` passed); returns when it last
/// moved.
async fn settle(counter: &AtomicU64, quiet: Duration, limit: Duration) -> Instant {
    let start = Instant::now();
    let mut last = counter.load(Ordering::Relaxed);
    let mut moved = Instant::now();
    while start.elapsed() < limit && moved.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            moved = Instant::now();
        }
    }
    moved
}

async fn throughput(port: u16, shape: &Shape, per_publisher: u64) -> anyhow::Result<Throughput> {
    let epoch = Instant::now();
    let (subs, pubs, received, acks) = setup(port, shape, epoch).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, p) in pubs.iter().enumerate() {
        let client = p.client.clone();
        let qos = shape.qos;
        tasks.push(tokio::spawn(async move {
            let topic = format!("bench/{i}");
            let payload = vec![0u8; PAYLOAD];
            for _ in 0..per_publisher {
                if client
                    .publish(&topic, qos, false, payload.clone())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let expected = per_publisher * (shape.publishers * shape.subscribers) as u64;
    // The queues are large enough for every message: wait for the last delivery (or until
    // nothing has moved for 2 s, when some were lost).
    let end = last_delivery(&received.received, expected, Duration::from_secs(2)).await;
    let elapsed = end.duration_since(start).as_secs_f64().max(0.001);
    let delivered = received.received.load(Ordering::Relaxed) as f64;
    if shape.qos != QoS::AtMostOnce {
        settle(
            &acks.acked,
            Duration::from_millis(500),
            Duration::from_secs(10),
        )
        .await;
    }
    drop((subs, pubs));
    Ok(Throughput {
        delivered_per_s: delivered / elapsed,
        acked_per_s: acks.acked.load(Ordering::Relaxed) as f64 / elapsed,
        delivered_share: delivered / expected as f64,
    })
}

struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    share: f64,
}

async fn latency(port: u16, shape: &Shape, secs: u64) -> anyhow::Result<Latency> {
    let epoch = Instant::now();
    let (subs, pubs, received, _) = setup(port, shape, epoch).await?;
    let per_publisher = LATENCY_RATE / shape.publishers as u32;
    let period = Duration::from_secs(1) / per_publisher;
    let count = u64::from(per_publisher) * secs;
    let mut tasks = Vec::new();
    for (i, p) in pubs.iter().enumerate() {
        let client = p.client.clone();
        let qos = shape.qos;
        tasks.push(tokio::spawn(async move {
            let topic = format!("bench/{i}");
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for _ in 0..count {
                tick.tick().await;
                let mut payload = vec![0u8; PAYLOAD];
                let now = u64::try_from(epoch.elapsed().as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1);
                payload[..8].copy_from_slice(&now.to_be_bytes());
                if client.publish(&topic, qos, false, payload).await.is_err() {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    settle(
        &received.received,
        Duration::from_secs(1),
        Duration::from_secs(20),
    )
    .await;
    drop((subs, pubs));
    let mut l = received
        .latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("latency lock poisoned"))?
        .clone();
    l.sort_unstable();
    let at = |q: f64| -> f64 {
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 - 1.0) * q).round() as usize;
        l[i.min(l.len() - 1)] as f64 / 1e6
    };
    let expected = (count * shape.publishers as u64 * shape.subscribers as u64) as f64;
    Ok(Latency {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
        share: l.len() as f64 / expected,
    })
}

/// RSS (KiB) idle, with [`IDLE_CLIENTS`] idle clients, and 2 s after they left.
async fn idle_rss(broker: &Broker) -> anyhow::Result<(u64, u64, u64)> {
    let idle = broker.rss_kib()?;
    let epoch = Instant::now();
    let counters = Arc::new(Counters::default());
    let mut conns = Vec::with_capacity(IDLE_CLIENTS);
    for i in 0..IDLE_CLIENTS {
        conns.push(
            connect(
                format!("idle-{i}"),
                broker.port,
                None,
                counters.clone(),
                epoch,
            )
            .await?,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = broker.rss_kib()?;
    drop(conns);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = broker.rss_kib()?;
    Ok((idle, loaded, left))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".to_owned()
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(env("BENCH_SECS", 5), env("BENCH_ROUNDS", 3)))
}

/// `BENCH_PORT=1883 cargo bench --bench mqtt`: one round of each measurement against a broker
/// that is already running there (to profile it, or compare builds).
async fn external(port: u16) -> anyhow::Result<()> {
    for shape in shapes() {
        let per_publisher = THROUGHPUT_MESSAGES / shape.publishers as u64;
        let t = throughput(port, &shape, per_publisher).await?;
        println!(
            "{}: {:.0} delivered/s, {:.0} acks/s, {:.0}% delivered",
            shape.label(),
            t.delivered_per_s,
            t.acked_per_s,
            t.delivered_share * 100.0
        );
    }
    for shape in shapes() {
        let l = latency(port, &shape, 5).await?;
        println!(
            "{}: latency p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms ({:.1}% received)",
            shape.label(),
            l.p50,
            l.p90,
            l.p99,
            l.max,
            l.share * 100.0
        );
    }
    Ok(())
}

fn shapes() -> [Shape; 4] {
    [
        Shape {
            publishers: 1,
            subscribers: 1,
            qos: QoS::AtMostOnce,
        },
        Shape {
            publishers: 1,
            subscribers: 1,
            qos: QoS::AtLeastOnce,
        },
        Shape {
            publishers: 10,
            subscribers: 10,
            qos: QoS::AtMostOnce,
        },
        Shape {
            publishers: 10,
            subscribers: 10,
            qos: QoS::AtLeastOnce,
        },
    ]
}

async fn run(secs: u64, rounds: u64) -> anyhow::Result<()> {
    if let Some(port) = std::env::var("BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        return external(port).await;
    }
    println!(
        "# MQTT benchmark: {PAYLOAD}-byte payloads, latency runs of {secs} s, {rounds} rounds\n"
    );
    // Memory first, on fresh brokers: after a load test both keep some of what they allocated.
    println!("## Resident memory (VmRSS, MiB), fresh brokers\n");
    println!(
        "| broker | idle | with {IDLE_CLIENTS} idle clients | per client (KiB) | after they left |"
    );
    println!("|---|---:|---:|---:|---:|");
    for start in [Broker::ferrule, Broker::mosquitto] {
        let broker = start()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle, loaded, left) = idle_rss(&broker).await?;
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            broker.name,
            idle as f64 / 1024.0,
            loaded as f64 / 1024.0,
            loaded.saturating_sub(idle) as f64 / IDLE_CLIENTS as f64,
            left as f64 / 1024.0
        );
    }
    println!();

    // Queues large enough that throughput measures delivery, not a drop policy.
    let ferrule = Broker::ferrule_with("  max_queued_messages: 10000000\n  tcp_nodelay: false")?;
    let nodelay = Broker::ferrule_with("  max_queued_messages: 10000000\n  tcp_nodelay: true")?;
    let mosquitto = Broker::mosquitto_with("max_queued_messages 0")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let brokers = [&ferrule, &nodelay, &mosquitto];
    let shapes = shapes();
    println!("Brokers: ferrule with `tcp_nodelay: false` (\"nagle\") and `true` (\"nodelay\"), Mosquitto with its defaults (set_tcp_nodelay false); queues unbounded on all; ratios are ferrule / Mosquitto.\n");
    println!("## Throughput: {THROUGHPUT_MESSAGES} messages published as fast as the clients go, time to the last delivery (median of {rounds} rounds)\n");
    println!("| scenario | ferrule nagle delivered/s | ferrule nodelay | mosquitto | ratio nagle | ratio nodelay | acks/s nagle / nodelay / mosquitto | delivered of published |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for shape in &shapes {
        let mut results: [Vec<Throughput>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds {
            // Rotate who goes first, so a change of load on the machine hits all.
            for k in 0..3 {
                let b = (k + round as usize) % 3;
                let per_publisher = THROUGHPUT_MESSAGES / shape.publishers as u64;
                results[b].push(throughput(brokers[b].port, shape, per_publisher).await?);
            }
        }
        let med = |b: usize, f: fn(&Throughput) -> f64| median(results[b].iter().map(f).collect());
        let low = results
            .iter()
            .flatten()
            .map(|t| t.delivered_share)
            .fold(1.0, f64::min);
        let d: Vec<f64> = (0..3).map(|b| med(b, |t| t.delivered_per_s)).collect();
        let a: Vec<f64> = (0..3).map(|b| med(b, |t| t.acked_per_s)).collect();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.0} / {:.0} / {:.0} | {}% |",
            shape.label(),
            d[0],
            d[1],
            d[2],
            ratio(d[0], d[2]),
            ratio(d[1], d[2]),
            a[0],
            a[1],
            a[2],
            if low >= 1.0 {
                "100".to_owned()
            } else {
                format!("≥ {:.1}", low * 100.0)
            }
        );
    }
    println!("\nRSS after the throughput runs (MiB): ferrule nagle {:.1}, nodelay {:.1}, mosquitto {:.1}", ferrule.rss_kib()? as f64 / 1024.0, nodelay.rss_kib()? as f64 / 1024.0, mosquitto.rss_kib()? as f64 / 1024.0);
    println!("\n## Latency at {LATENCY_RATE} messages/s published (ms, send to receive; median of {rounds} rounds, max of all)\n");
    println!("| scenario | ferrule nagle p50 / p99 / max | ferrule nodelay p50 / p99 / max | mosquitto p50 / p99 / max | p99 ratio nagle | p99 ratio nodelay |");
    println!("|---|---:|---:|---:|---:|---:|");
    for shape in &shapes {
        let mut results: [Vec<Latency>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds {
            for k in 0..3 {
                let b = (k + 2 * round as usize + 1) % 3;
                results[b].push(latency(brokers[b].port, shape, secs).await?);
            }
        }
        let med = |b: usize, f: fn(&Latency) -> f64| median(results[b].iter().map(f).collect());
        let max = |b: usize| results[b].iter().map(|l| l.max).fold(0.0, f64::max);
        let cell = |b: usize| {
            format!(
                "{:.2} / {:.2} / {:.1}",
                med(b, |l| l.p50),
                med(b, |l| l.p99),
                max(b)
            )
        };
        let p99 = |b: usize| med(b, |l| l.p99);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            shape.label(),
            cell(0),
            cell(1),
            cell(2),
            ratio(p99(0), p99(2)),
            ratio(p99(1), p99(2))
        );
        let low = results
            .iter()
            .flatten()
            .map(|l| l.share)
            .fold(1.0, f64::min);
        if low < 0.999 {
            println!(
                "|  | (some run received only {:.1}% of the messages) |  |  |  |  |",
                low * 100.0
            );
        }
    }
    Ok(())
}
