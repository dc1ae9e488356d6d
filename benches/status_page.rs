//! Benchmark of the status page's cost to the rest of the agent (not a test): does polling
//! keep its rate, and does the broker keep its latency, while 100 browsers watch the page and
//! misbehaving clients hammer it?
//!
//! ```sh
//! cargo bench --bench status_page            # BENCH_SECS=10 per window, BENCH_ROUNDS=2
//! FERRULE_BIN=target/debug/ferrule cargo bench --bench status_page   # another binary
//! ```
//!
//! Setup: the ferrule binary in its own process polls 10 devices × 20 moving registers every
//! 100 ms from the built-in simulator (in this process, which counts every read it answers);
//! the status page on loopback; a latency probe (on a runtime and thread of its own) publishes
//! 200 QoS 0 messages/s through the embedded broker to a subscriber, each carrying its send
//! time. The viewers and abusers run in this process too, on the same 2 cores: their own CPU
//! is part of what the machine carries.
//!
//! Phases, alternated per round (so a load change on the machine hits all of them):
//! - `no viewers`: the page is on, nobody watches;
//! - `100 viewers`: 100 event streams read every document;
//! - `100 viewers + abuse`: the same, plus 10 streams that never read (slow clients), 10
//!   slow-loris heads (a byte a second), and 20 clients sending malformed requests and 64 KB
//!   headers, 20 a second each.
//!
//! Reported per phase: Modbus reads answered per second, broker latency p50/p99/max, ferrule's
//! CPU time as a share of one core (Linux: /proc), documents
//! received per viewer per second, HTTP answers to the bad requests. Output: a markdown table,
//! as pasted into `docs/benchmarks.md`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrule::config::{self, Origin};
use ferrule::field::simulator::{self, Bank};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const DEVICES: usize = 10;
const POINTS: usize = 20;
const VIEWERS: usize = 100;
const PROBE_RATE: u64 = 200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Viewers,
    Abuse,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Idle => "no viewers",
            Self::Viewers => "100 viewers",
            Self::Abuse => "100 viewers + abuse",
        }
    }
}

#[derive(Default, Clone)]
struct Sample {
    reads_per_s: f64,
    latencies_us: Vec<u64>,
    docs_per_viewer_s: f64,
    answers: Vec<String>,
    /// ferrule's CPU time (user + system, all threads) as a share of one core.
    cpu_percent: f64,
}

/// User + system CPU seconds of process `pid` (`/proc/<pid>/stat`, fields 14 and 15, in
/// clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let window = Duration::from_secs(env_u64("BENCH_SECS", 10));
    let rounds = env_u64("BENCH_ROUNDS", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = rt
        .block_on(simulator::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .expect("bind the simulator");
    let sim_port = listener.local_addr().expect("addr").port();
    let (mqtt_port, page_port) = (free_port(), free_port());
    let mut text = format!(
        "site: bench\nbroker:\n  listeners: [{{bind: \"127.0.0.1:{mqtt_port}\"}}]\nstatus: {{bind: \"127.0.0.1:{page_port}\"}}\ndevices:\n"
    );
    for d in 0..DEVICES {
        text.push_str(&format!(
            "  - name: d{d}\n    tcp: \"127.0.0.1:{sim_port}\"\n    unit: {}\n    poll: 100ms\n    points:\n",
            d + 1
        ));
        for p in 0..POINTS {
            text.push_str(&format!(
                "      - {{name: p{p}, kind: holding, address: {}}}\n",
                p * 4
            ));
        }
    }
    let origin = Origin {
        name: "bench.yaml".into(),
        base_dir: dir.path().into(),
        state_dir: dir.path().into(),
    };
    let config = config::parse(&text, &origin).expect("bench config");
    let bank = Bank::new(&config.devices).expect("bank");
    let cancel = CancellationToken::new();
    rt.spawn(simulator::serve_all(
        vec![listener],
        bank.clone(),
        cancel.clone(),
    ));
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, &text).expect("config file");
    let bin = std::env::var_os("FERRULE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferrule")));
    let log = std::fs::File::create(dir.path().join("ferrule.log")).expect("log");
    let child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start ferrule");
    let pid = child.id();
    let _agent = Agent(child);
    let page: SocketAddr = ([127, 0, 0, 1], page_port).into();
    let total_reads = || -> u64 { bank.read_counts().values().flat_map(|m| m.values()).sum() };
    // Warm-up: the page answers and every device has been polled for a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(TcpStream::connect(page)).is_err() || total_reads() < (DEVICES * 30) as u64 {
        assert!(
            Instant::now() < deadline,
            "ferrule did not start polling; see {}",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let probe_cancel = CancellationToken::new();
    // The probe has a runtime (and thread) of its own: the viewers' and abusers' tasks in this
    // process must not delay it, or their cost would be counted as the broker's.
    let probe_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("probe runtime");
    probe_rt.block_on(start_probe(
        mqtt_port,
        latencies.clone(),
        probe_cancel.clone(),
    ));
    std::thread::sleep(Duration::from_secs(2));

    let phases = [Phase::Idle, Phase::Viewers, Phase::Abuse];
    let mut results: Vec<(Phase, Vec<Sample>)> = phases.iter().map(|p| (*p, Vec::new())).collect();
    for round in 0..rounds {
        let mut order = phases.to_vec();
        order.rotate_left(usize::try_from(round).unwrap_or(0) % phases.len());
        for phase in order {
            let load = CancellationToken::new();
            let docs = Arc::new(AtomicU64::new(0));
            let answers = Arc::new(Mutex::new(Vec::new()));
            if phase != Phase::Idle {
                for _ in 0..VIEWERS {
                    rt.spawn(viewer(page, docs.clone(), load.clone()));
                }
                // Every viewer has its first document before the window starts.
                let deadline = Instant::now() + Duration::from_secs(30);
                while docs.load(Ordering::Relaxed) < VIEWERS as u64 {
                    assert!(Instant::now() < deadline, "the viewers got no documents");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if phase == Phase::Abuse {
                for i in 0..10 {
                    rt.spawn(stalled_viewer(page, load.clone()));
                    rt.spawn(slow_loris(page, load.clone()));
                    rt.spawn(bad_requests(
                        page,
                        i % 2 == 0,
                        answers.clone(),
                        load.clone(),
                    ));
                    rt.spawn(bad_requests(
                        page,
                        i % 2 == 1,
                        answers.clone(),
                        load.clone(),
                    ));
                }
            }
            std::thread::sleep(Duration::from_secs(1));
            latencies.lock().expect("lock").clear();
            let (r0, d0, t0) = (total_reads(), docs.load(Ordering::Relaxed), Instant::now());
            let c0 = cpu_seconds(pid);
            std::thread::sleep(window);
            let (r1, d1, secs) = (
                total_reads(),
                docs.load(Ordering::Relaxed),
                t0.elapsed().as_secs_f64(),
            );
            let cpu = cpu_seconds(pid) - c0;
            let mut lat = std::mem::take(&mut *latencies.lock().expect("lock"));
            lat.sort_unstable();
            load.cancel();
            let mut answers = std::mem::take(&mut *answers.lock().expect("lock"));
            answers.sort();
            answers.dedup();
            if let Some((_, v)) = results.iter_mut().find(|(p, _)| *p == phase) {
                v.push(Sample {
                    reads_per_s: (r1 - r0) as f64 / secs,
                    latencies_us: lat,
                    docs_per_viewer_s: (d1 - d0) as f64 / secs / VIEWERS as f64,
                    answers,
                    cpu_percent: cpu / secs * 100.0,
                });
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    probe_cancel.cancel();
    cancel.cancel();

    println!("| phase | Modbus reads/s | broker p50 | broker p99 | broker max | ferrule CPU | documents per viewer/s | answers to bad requests |");
    println!("|---|---|---|---|---|---|---|---|");
    for (phase, samples) in &results {
        for s in samples {
            let pct = |q: f64| {
                s.latencies_us
                    .get(((s.latencies_us.len() as f64 - 1.0) * q) as usize)
                    .map_or("–".to_owned(), |us| {
                        format!("{:.2} ms", *us as f64 / 1000.0)
                    })
            };
            println!(
                "| {} | {:.0} | {} | {} | {} | {:.1} % | {} | {} |",
                phase.name(),
                s.reads_per_s,
                pct(0.5),
                pct(0.99),
                pct(1.0),
                s.cpu_percent,
                if *phase == Phase::Idle {
                    "–".to_owned()
                } else {
                    format!("{:.2}", s.docs_per_viewer_s)
                },
                if s.answers.is_empty() {
                    "–".to_owned()
                } else {
                    s.answers.join(", ")
                },
            );
        }
    }
}

/// Publishes [`PROBE_RATE`] messages/s with their send time; a subscriber records latencies.
async fn start_probe(port: u16, out: Arc<Mutex<Vec<u64>>>, cancel: CancellationToken) {
    let epoch = Instant::now();
    let (sub, mut sub_loop) =
        AsyncClient::new(MqttOptions::new("probe-sub", "127.0.0.1", port), 1000);
    sub.subscribe("probe/lat", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                () = stop.cancelled() => break,
                ev = sub_loop.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(bytes) = <[u8; 8]>::try_from(&p.payload[..8.min(p.payload.len())]) {
                        let sent = u64::from_be_bytes(bytes);
                        let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                        out.lock().expect("lock").push(now.saturating_sub(sent));
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("probe subscriber: {e}"),
            }
        }
    });
    let _ = ready_rx.await;
    let (publisher, mut pub_loop) =
        AsyncClient::new(MqttOptions::new("probe-pub", "127.0.0.1", port), 1000);
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                ev = pub_loop.poll() => if let Err(e) = ev { panic!("probe publisher: {e}") },
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PROBE_RATE));
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
            let mut payload = now.to_be_bytes().to_vec();
            payload.resize(100, 0);
            let _ = publisher
                .publish("probe/lat", QoS::AtMostOnce, false, payload)
                .await;
        }
    });
}

/// One browser's event stream: counts the documents it reads.
async fn viewer(page: SocketAddr, docs: Arc<AtomicU64>, cancel: CancellationToken) {
    let Ok(mut s) = TcpStream::connect(page).await else {
        return;
    };
    if s.write_all(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = tokio::select! {
            () = cancel.cancelled() => return,
            n = s.read(&mut buf) => match n { Ok(0) | Err(_) => return, Ok(n) => n },
        };
        tail.extend_from_slice(&buf[..n]);
        let found = tail.windows(6).filter(|w| *w == b"data: ").count() as u64;
        // `hello` carries a data line too; it is not a document.
        let hello = u64::from(tail.windows(12).any(|w| w == b"event: hello"));
        docs.fetch_add(found.saturating_sub(hello), Ordering::Relaxed);
        let keep = tail.len().min(11);
        tail.drain(..tail.len() - keep);
    }
}

/// A client that opens the stream and never reads it.
async fn stalled_viewer(page: SocketAddr, cancel: CancellationToken) {
    let Ok(mut s) = TcpStream::connect(page).await else {
        return;
    };
    let _ = s
        .write_all(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
        .await;
    cancel.cancelled().await;
}

/// Sends a request head one byte a second, over and over.
async fn slow_loris(page: SocketAddr, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let Ok(mut s) = TcpStream::connect(page).await else {
            return;
        };
        for b in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
        }
    }
}

/// Malformed requests or 64 KB headers, 20 a second; records the status lines.
async fn bad_requests(
    page: SocketAddr,
    oversized: bool,
    answers: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
) {
    let request = if oversized {
        format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024)).into_bytes()
    } else {
        b"\x16\x03\x01 garbage \xff\xfe\r\nnot http\r\n\r\n".to_vec()
    };
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(mut s) = TcpStream::connect(page).await else {
            continue;
        };
        let _ = s.write_all(&request).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        let line = String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or("(reset)")
            .to_owned();
        let line = if line.is_empty() {
            "(closed)".to_owned()
        } else {
            line
        };
        answers.lock().expect("lock").push(line);
    }
}
