//! Benchmark of the poll engine (not a test): the ferrule binary, in its own process, polls
//! 100 devices × 100 points every second from the built-in Modbus TCP simulator, which runs in
//! this process and counts every read it answers.
//!
//! ```sh
//! cargo bench --bench poll_engine                      # every scenario, 30 s each
//! cargo bench --bench poll_engine -- --seconds 60 --scenario static-100-connections
//! ```
//!
//! Reported per scenario: points/s sustained, requests per poll cycle measured at the
//! simulator vs the planner's count (they must be equal: the engine sends the plan, nothing
//! more), ferrule's CPU time (user + system, all threads, from /proc) per 1,000 points and as a
//! share of one core, and its resident memory (now and peak). Linux only (/proc).
//!
//! Scenarios:
//! - `static-100-connections`: each device at its own address (127.0.0.2 … 127.0.0.101), so
//!   100 TCP connections; the values never change, so ferrule publishes only heartbeats — the
//!   cost of polling and decoding itself;
//! - `changing-100-connections`: the same, with every value moving four times a second, so
//!   every point is published to the embedded broker at every poll — polling plus publishing;
//! - `static-1-gateway`: all 100 devices as unit ids behind one address: one connection.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrule::config::{self, Config, Origin};
use ferrule::field::plan;
use ferrule::field::simulator::{self, Bank, ReadKey};
use tokio_util::sync::CancellationToken;

const DEVICES: usize = 100;
const WARM_UP_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// All devices behind one address (one connection) instead of one address each.
    shared: bool,
    /// Values move (every point published every poll) instead of staying put.
    moving: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "static-100-connections",
        shared: false,
        moving: false,
    },
    Scenario {
        name: "changing-100-connections",
        shared: false,
        moving: true,
    },
    Scenario {
        name: "static-1-gateway",
        shared: true,
        moving: false,
    },
];

fn main() {
    let mut seconds = 30u64;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds takes a number")
            }
            "--scenario" => only = args.next(),
            // `cargo bench` passes --bench; anything else is a mistake worth knowing about.
            "--bench" => {}
            other => panic!("unknown argument {other:?}; use --seconds N, --scenario NAME"),
        }
    }
    println!(
        "poll engine: {DEVICES} devices x 100 points, poll 1s, {seconds}s measured per scenario"
    );
    println!(
        "{:<26} {:>9} {:>15} {:>8} {:>6} {:>12} {:>9} {:>9}",
        "scenario",
        "points/s",
        "requests/cycle",
        "planner",
        "equal",
        "CPU/1k pts",
        "CPU %",
        "RSS MB"
    );
    for s in SCENARIOS {
        if only.as_deref().is_some_and(|o| o != s.name) {
            continue;
        }
        let r = run(s, Duration::from_secs(seconds));
        println!(
            "{:<26} {:>9.0} {:>15.3} {:>8.3} {:>6} {:>9.3} ms {:>8.2}% {:>5.1} (peak {:.1})",
            s.name,
            r.points_per_second,
            r.requests_per_cycle,
            r.planned_per_cycle,
            if r.exact { "yes" } else { "NO" },
            r.cpu_ms_per_1000_points,
            r.cpu_percent,
            r.rss_mb,
            r.peak_rss_mb
        );
        if r.unplanned > 0 {
            println!("  !! {} requests not in the plan", r.unplanned);
        }
    }
}

struct Report {
    points_per_second: f64,
    /// Requests in the window / cycles in the window (the window's edges blur it slightly).
    requests_per_cycle: f64,
    planned_per_cycle: f64,
    /// Every request was a planned read and every planned read was made as often as the others.
    exact: bool,
    unplanned: u64,
    cpu_ms_per_1000_points: f64,
    cpu_percent: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
}

/// The point map of device `i`: 50 u16 and 20 f32 in one block, 20 i16 past a hole wider than
/// `max_gap`, 10 coils — three requests per cycle.
fn config_text(port: u16, scenario: Scenario) -> String {
    let writable = if scenario.moving {
        ""
    } else {
        // Writable points keep their value in the simulator.
        ", writable: true"
    };
    let mut out =
        String::from("site: bench\nbroker:\n  listeners: [{bind: \"127.0.0.1:0\"}]\ndevices:\n");
    for i in 0..DEVICES {
        let host = if scenario.shared {
            "127.0.0.1".to_owned()
        } else {
            format!("127.0.0.{}", i + 2)
        };
        out.push_str(&format!(
            "  - name: d{i}\n    tcp: \"{host}:{port}\"\n    unit: {}\n    poll: 1s\n    points:\n",
            i + 1
        ));
        for a in 0..50 {
            out.push_str(&format!(
                "      - {{name: u{a}, kind: holding, address: {a}{writable}}}\n"
            ));
        }
        for k in 0..20 {
            let a = 50 + 2 * k;
            out.push_str(&format!(
                "      - {{name: f{k}, kind: holding, address: {a}, type: f32, order: CDAB{writable}}}\n"
            ));
        }
        for k in 0..20 {
            let a = 120 + k;
            out.push_str(&format!(
                "      - {{name: s{k}, kind: holding, address: {a}, type: i16, scale: 0.1{writable}}}\n"
            ));
        }
        for k in 0..10 {
            out.push_str(&format!(
                "      - {{name: c{k}, kind: coil, address: {k}{writable}}}\n"
            ));
        }
    }
    out
}

fn parse(text: &str, dir: &Path) -> Config {
    let origin = Origin {
        name: "bench.yaml".into(),
        base_dir: dir.to_path_buf(),
        state_dir: dir.to_path_buf(),
    };
    config::parse(text, &origin).unwrap_or_else(|e| panic!("bench config invalid: {e}"))
}

fn run(scenario: Scenario, window: Duration) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // The simulator's listeners: one per device address (loopback only), same port.
    let listeners = rt.block_on(async {
        if scenario.shared {
            vec![simulator::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .expect("bind")]
        } else {
            let first = simulator::bind(SocketAddr::from(([127, 0, 0, 2], 0)))
                .await
                .expect("bind");
            let port = first.local_addr().expect("addr").port();
            let mut all = vec![first];
            for i in 1..DEVICES {
                let ip = [127, 0, 0, u8::try_from(i + 2).expect("≤ 255")];
                all.push(
                    simulator::bind(SocketAddr::from((ip, port)))
                        .await
                        .expect("bind the same port on the next loopback address"),
                );
            }
            all
        }
    });
    let port = listeners[0].local_addr().expect("addr").port();
    let text = config_text(port, scenario);
    let config = parse(&text, dir.path());
    let bank = Bank::new(&config.devices).expect("bank");
    let cancel = CancellationToken::new();
    let server = rt.spawn(simulator::serve_all(
        listeners,
        bank.clone(),
        cancel.clone(),
    ));

    let path = dir.path().join("bench.yaml");
    fs::write(&path, &text).expect("write config");
    let log = fs::File::create(dir.path().join("ferrule.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrule"))
        .args(["run", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start ferrule");
    let pid = child.id();

    // The plan of each unit, and the reads it consists of.
    let planned: BTreeMap<u8, Vec<ReadKey>> = config
        .devices
        .iter()
        .map(|d| {
            let keys = plan::classes(d)
                .iter()
                .flat_map(|c| c.reads.iter().map(|r| (r.kind, r.address, r.count)))
                .collect();
            (d.unit, keys)
        })
        .collect();
    let points_of: BTreeMap<u8, usize> = config
        .devices
        .iter()
        .map(|d| (d.unit, d.points.len()))
        .collect();

    warm_up(&bank, &planned, &mut child, dir.path());
    let (c0, cpu0, t0) = (bank.read_counts(), cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    let (c1, cpu1, t1) = (bank.read_counts(), cpu_seconds(pid), Instant::now());
    let (rss, peak) = memory_mb(pid);

    let elapsed = (t1 - t0).as_secs_f64();
    let mut points = 0.0;
    let (mut requests, mut cycles, mut plan_total, mut unplanned) = (0u64, 0u64, 0usize, 0u64);
    // Every request in the window is a planned read, and the planned reads of each unit were
    // made equally often (within one, at the window's edges): then each cycle is exactly the
    // plan.
    let mut exact = true;
    for (unit, keys) in &planned {
        let delta = |key: &ReadKey| {
            let before = c0.get(unit).and_then(|m| m.get(key)).copied().unwrap_or(0);
            let after = c1.get(unit).and_then(|m| m.get(key)).copied().unwrap_or(0);
            after - before
        };
        let deltas: Vec<u64> = keys.iter().map(delta).collect();
        let (least, most) = (
            deltas.iter().copied().min().unwrap_or(0),
            deltas.iter().copied().max().unwrap_or(0),
        );
        exact &= most - least <= 1;
        let others: u64 = c1
            .get(unit)
            .map(|m| m.keys().filter(|k| !keys.contains(k)).map(delta).sum())
            .unwrap_or(0);
        unplanned += others;
        requests += deltas.iter().sum::<u64>() + others;
        // A cycle starts with the plan's first read.
        cycles += deltas.first().copied().unwrap_or(0);
        plan_total += keys.len();
        points += least as f64 * points_of[unit] as f64;
    }
    let cpu = cpu1 - cpu0;
    let report = Report {
        points_per_second: points / elapsed,
        requests_per_cycle: requests as f64 / cycles as f64,
        planned_per_cycle: plan_total as f64 / planned.len() as f64,
        exact: exact && unplanned == 0,
        unplanned,
        cpu_ms_per_1000_points: cpu * 1000.0 / (points / 1000.0),
        cpu_percent: cpu / elapsed * 100.0,
        rss_mb: rss,
        peak_rss_mb: peak,
    };
    let _ = Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    cancel.cancel();
    let _ = rt.block_on(server);
    report
}

/// Waits until every unit has been polled through three whole cycles.
fn warm_up(bank: &Arc<Bank>, planned: &BTreeMap<u8, Vec<ReadKey>>, child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + WARM_UP_LIMIT;
    loop {
        let counts = bank.read_counts();
        let ready = planned.iter().all(|(unit, keys)| {
            keys.iter().all(|k| {
                counts
                    .get(unit)
                    .and_then(|m| m.get(k))
                    .copied()
                    .unwrap_or(0)
                    >= 3
            })
        });
        if ready {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "ferrule exited ({status}) during warm-up:\n{}",
                fs::read_to_string(dir.join("ferrule.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not every device was polled within {WARM_UP_LIMIT:?}:\n{}",
            fs::read_to_string(dir.join("ferrule.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// User + system CPU time of process `pid` (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The command name (field 2) may hold spaces; fields count from after its `)`.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory now and at its peak, in MB (10^6 bytes), from /proc/<pid>/status.
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") * 1024.0 / 1e6, kb("VmHWM:") * 1024.0 / 1e6)
}
