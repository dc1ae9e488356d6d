//! Benchmark of the command round trip (not a test): an MQTT client publishes
//! `bench/dev/sp/set`, the ferrule binary (its own process) checks it, writes the register of
//! the built-in Modbus TCP simulator (FC06), reads it back (FC03) and publishes the result,
//! which the client receives on `bench/dev/sp/set/result`. The simulator and the client run in
//! this process.
//!
//! ```sh
//! cargo bench --bench command                       # 10 s per measurement, 100 commands/s
//! cargo bench --bench command -- --seconds 30 --rate 100
//! ```
//!
//! Side by side, in one run, against the same simulator:
//! - **optimum**: the same Modbus write + read-back done directly by a tokio-modbus client (no
//!   MQTT, no checks): the floor ferrule adds its cost to;
//! - **ferrule, tcp_nodelay**: the broker sends each packet at once (`broker.tcp_nodelay:
//!   true`);
//! - **ferrule, default**: the broker's default (`tcp_nodelay: false`, Nagle, like Mosquitto).
//!
//! For each: p50 / p99 / max latency (from the send to the result) of commands sent at a
//! steady `--rate` (open loop for ferrule: a command is sent on schedule whether or not the
//! previous result has arrived; the direct client is sequential by nature), and the most
//! commands per second sustained with 64 commands outstanding (ferrule) or back to back
//! (optimum: one connection, one request at a time, as ferrule's line task does). Every
//! ferrule result must be `ok:true`. Linux only (reads /proc for CPU).

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrule::config::{self, Origin};
use ferrule::field::simulator::{self, Bank};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio_modbus::client::{Reader, Writer};
use tokio_util::sync::CancellationToken;

const SET: &str = "bench/dev/sp/set";
const RESULT: &str = "bench/dev/sp/set/result";
/// Commands outstanding while measuring the most sustained commands per second.
const WINDOW: usize = 64;
const ADDRESS: u16 = 10;

struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        max: ms[ms.len() - 1],
        n: ms.len(),
    }
}

fn main() {
    let mut seconds = 10u64;
    let mut rate = 100u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds takes a number")
            }
            "--rate" => {
                rate = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rate takes a number")
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?}; use --seconds N, --rate R"),
        }
    }
    let window = Duration::from_secs(seconds);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = rt
        .block_on(simulator::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .expect("bind the simulator");
    let sim = listener.local_addr().expect("addr");
    let text = |nodelay: bool| {
        format!(
            "site: bench\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\n  tcp_nodelay: {nodelay}\n  persistence: false\n\
             devices:\n  - name: dev\n    tcp: \"{sim}\"\n    poll: 1s\n    points:\n      - {{name: sp, kind: holding, address: {ADDRESS}, writable: true}}\n"
        )
    };
    let origin = Origin {
        name: "bench.yaml".into(),
        base_dir: dir.path().to_path_buf(),
        state_dir: dir.path().to_path_buf(),
    };
    let config = config::parse(&text(true), &origin).expect("bench config is valid");
    let bank = Bank::new(&config.devices).expect("bank");
    let cancel = CancellationToken::new();
    let server = rt.spawn(simulator::serve(listener, bank, cancel.clone()));

    println!(
        "command round trip: set -> FC06 write -> FC03 read-back -> result; {rate} commands/s for {seconds}s, then max with {WINDOW} outstanding for {seconds}s"
    );
    let optimum = rt.block_on(optimum(sim, rate, window));
    let mut rows = vec![("optimum (direct Modbus)", optimum)];
    for (name, nodelay) in [
        ("ferrule, tcp_nodelay", true),
        ("ferrule, default (Nagle)", false),
    ] {
        let run_dir = dir.path().join(if nodelay { "nodelay" } else { "nagle" });
        fs::create_dir_all(&run_dir).expect("dir");
        rows.push((
            name,
            run_ferrule(&rt, &run_dir, &text(nodelay), rate, window),
        ));
    }
    println!(
        "| path | p50 ms | p99 ms | max ms | commands | max commands/s | p50 ratio | p99 ratio | throughput ratio | ferrule CPU per 1k commands |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let base = &rows[0].1;
    for (name, r) in &rows {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            r.latency.p50,
            r.latency.p99,
            r.latency.max,
            r.latency.n,
            r.max_rate,
            r.latency.p50 / base.latency.p50,
            r.latency.p99 / base.latency.p99,
            r.max_rate / base.max_rate,
            r.cpu_ms_per_1000
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.0} ms")),
        );
    }
    cancel.cancel();
    let _ = rt.block_on(server);
}

struct Row {
    latency: Latency,
    max_rate: f64,
    cpu_ms_per_1000: Option<f64>,
}

/// The same write + read-back, straight from a tokio-modbus client.
async fn optimum(sim: SocketAddr, rate: u64, window: Duration) -> Row {
    let mut ctx = tokio_modbus::client::tcp::connect_slave(sim, tokio_modbus::Slave(1))
        .await
        .expect("connect to the simulator");
    let mut ms = Vec::new();
    let period = Duration::from_micros(1_000_000 / rate);
    let start = tokio::time::Instant::now();
    let mut i = 0u64;
    while start.elapsed() < window {
        let due = start + period * u32::try_from(i).expect("fits");
        tokio::time::sleep_until(due).await;
        let sent = tokio::time::Instant::now();
        write_read(&mut ctx, (i % 60_000) as u16).await;
        ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        i += 1;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        write_read(&mut ctx, (n % 60_000) as u16).await;
        n += 1;
    }
    Row {
        latency: latency(ms),
        max_rate: n as f64 / start.elapsed().as_secs_f64(),
        cpu_ms_per_1000: None,
    }
}

/// One FC06 write and its FC03 read-back.
async fn write_read(ctx: &mut tokio_modbus::client::Context, v: u16) {
    ctx.write_single_register(ADDRESS, v)
        .await
        .expect("link")
        .expect("write accepted");
    let back = ctx
        .read_holding_registers(ADDRESS, 1)
        .await
        .expect("link")
        .expect("read accepted");
    assert_eq!(back, vec![v]);
}

fn run_ferrule(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    text: &str,
    rate: u64,
    window: Duration,
) -> Row {
    let path = dir.join("bench.yaml");
    fs::write(&path, text).expect("write config");
    let log_path = dir.join("ferrule.log");
    let log = fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrule"))
        .args(["run", "--config"])
        .arg(&path)
        .env("STATE_DIRECTORY", dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start ferrule");
    let port = wait_port(&log_path, &mut child);
    wait_line(&log_path, &mut child, "device state state=\"online\"");
    let pid = child.id();
    let row = rt.block_on(async {
        let (client, mut events) = connect(port).await;
        let latency = steady(&client, &mut events, rate, window).await;
        let cpu0 = cpu_seconds(pid);
        let (done, secs) = flood(&client, &mut events, window).await;
        let cpu = cpu_seconds(pid) - cpu0;
        let _ = client.disconnect().await;
        Row {
            latency,
            max_rate: done as f64 / secs,
            cpu_ms_per_1000: Some(cpu * 1000.0 / (done as f64 / 1000.0)),
        }
    });
    let _ = Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    row
}

async fn connect(port: u16) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new("bench-commander", "127.0.0.1", port);
    options
        .set_inflight(200)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 10_000);
    events.network_options.set_tcp_nodelay(true);
    client
        .subscribe(RESULT, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.expect("connected") {
            break;
        }
    }
    (client, events)
}

fn payload(i: u64) -> String {
    format!(r#"{{"value": {}, "id": "{i}"}}"#, i % 60_000)
}

/// The id of an `ok` result; panics on a failed command.
fn result_id(bytes: &[u8]) -> u64 {
    let j: serde_json::Value = serde_json::from_slice(bytes).expect("results are JSON");
    assert_eq!(
        j["ok"],
        serde_json::Value::Bool(true),
        "a command failed: {j}"
    );
    j["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("results carry the id")
}

/// Commands at `rate` per second for `window`; the latency of each, from when it was sent to
/// its result (not from when it was due: tokio's 1 ms timer would add up to 1 ms to both
/// sides; a late send would only hide a stall of the client itself, which sends without
/// waiting).
async fn steady(
    client: &AsyncClient,
    events: &mut EventLoop,
    rate: u64,
    window: Duration,
) -> Latency {
    let period = Duration::from_micros(1_000_000 / rate);
    let total = (window.as_micros() / period.as_micros()) as u64;
    let start = tokio::time::Instant::now();
    let mut sent_at: Vec<tokio::time::Instant> = Vec::with_capacity(total as usize);
    let mut ms = vec![f64::NAN; total as usize];
    let (mut sent, mut received) = (0u64, 0u64);
    while received < total {
        let next = start + period * u32::try_from(sent).expect("fits");
        tokio::select! {
            () = tokio::time::sleep_until(next), if sent < total => {
                client
                    .try_publish(SET, QoS::AtLeastOnce, false, payload(sent))
                    .expect("queue the publish");
                sent_at.push(tokio::time::Instant::now());
                sent += 1;
            }
            event = events.poll() => {
                if let Event::Incoming(Packet::Publish(p)) = event.expect("connected") {
                    let id = result_id(&p.payload);
                    if let Some(at) = sent_at.get(id as usize) {
                        ms[id as usize] = at.elapsed().as_secs_f64() * 1000.0;
                        received += 1;
                    }
                }
            }
        }
    }
    latency(ms)
}

/// As many commands as go through with [`WINDOW`] outstanding, for `window`; returns the
/// results received and the seconds they took.
async fn flood(client: &AsyncClient, events: &mut EventLoop, window: Duration) -> (u64, f64) {
    let base = 1_000_000u64;
    let mut sent = 0u64;
    for _ in 0..WINDOW {
        client
            .try_publish(SET, QoS::AtLeastOnce, false, payload(base + sent))
            .expect("queue the publish");
        sent += 1;
    }
    let start = Instant::now();
    let mut done = 0u64;
    let mut stop = false;
    while done < sent {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await.expect("connected") {
            let _ = result_id(&p.payload);
            done += 1;
            if !stop && start.elapsed() >= window {
                stop = true;
            }
            if !stop {
                client
                    .try_publish(SET, QoS::AtLeastOnce, false, payload(base + sent))
                    .expect("queue the publish");
                sent += 1;
            }
        }
    }
    (done, start.elapsed().as_secs_f64())
}

fn wait_port(log: &Path, child: &mut Child) -> u16 {
    let line = wait_line(log, child, "broker listening");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("addr= in the listening line")
        .trim_matches('"');
    addr.parse::<SocketAddr>().expect("socket address").port()
}

fn wait_line(log: &Path, child: &mut Child, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ferrule exited ({status}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no `{needle}` within 60s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// User + system CPU time of process `pid` (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}
