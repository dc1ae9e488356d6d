//! Running as a service: the systemd unit (checked by `systemd-analyze verify`), the
//! notification protocol spoken to a socket of the test's own (READY=1, STATUS=, WATCHDOG=1,
//! STOPPING=1), and the metrics endpoint scraped with a real HTTP client (curl).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ferrule::parse_addr;
use common::wait::poll_until;
use common::{Ferrule, ModbusDevice, Mosquitto};

const WAIT: Duration = Duration::from_secs(20);

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo_file("systemd/ferrule.service")).expect("unit file");
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/ferrule check",
        "ExecReload=/usr/bin/ferrule check",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=ferrule",
        "ConfigurationDirectory=ferrule",
        "User=ferrule",
        "SupplementaryGroups=dialout",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "\nCapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(want), "the unit lacks {want:?}");
    }
    // `verify` wants the executables to exist: the binary under test stands in for
    // /usr/bin/ferrule.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("ferrule.service");
    let bin = Ferrule::bin();
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/ferrule", &bin.to_string_lossy()),
    )
    .expect("write the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "verify printed warnings: {stderr}"
    );
    // And it does catch mistakes: a misspelt key is reported.
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/ferrule", &bin.to_string_lossy())
            .replace("ProtectHome=", "ProtectHoem="),
    )
    .expect("write the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ProtectHoem"));
}

/// A config with one device on `device`, the broker on a free port and (optionally) the
/// metrics endpoint and an uplink.
fn config(dir: &Path, device: &ModbusDevice, extra: &str) -> PathBuf {
    let yaml = format!(
        r#"
site: svc
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: boiler
    tcp: "127.0.0.1:{port}"
    poll: 100ms
    timeout: 1s
    points:
      - {{name: temperature, kind: holding, address: 100, type: i16}}
      - {{name: level, kind: holding, address: 101, type: i16}}
{extra}"#,
        port = device.port(),
    );
    Ferrule::write_config(dir, &yaml)
}

/// Receives notification datagrams until `want` accepts one; returns every datagram seen.
fn recv_until(socket: &UnixDatagram, what: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}; got {seen:?}"
        );
        socket.set_read_timeout(Some(left)).expect("timeout");
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = want(&text);
                seen.push(text);
                if done {
                    return seen;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn systemd_gets_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let cloud = Mosquitto::start();
    let extra = format!(
        "uplink:\n  url: \"mqtt://127.0.0.1:{}\"\n  forward: [{{local: \"svc/#\", qos: 1}}]\n  queue: {{path: queue.db, durability: normal}}\n",
        cloud.port()
    );
    let path = config(dir.path(), &device, &extra);
    let sock_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    let state = dir.path().to_str().expect("utf-8");
    let mut agent = Ferrule::start_with(
        Ferrule::bin(),
        &["run", "--config", path.to_str().expect("utf-8")],
        &[
            ("STATE_DIRECTORY", state),
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let seen = recv_until(&socket, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    // READY comes once the listener is bound: it takes a client at once.
    let addr = agent.listener_addr();
    std::net::TcpStream::connect(addr).expect("the broker listens when READY=1 arrives");
    assert!(
        seen.iter().all(|m| !m.contains("WATCHDOG=1")),
        "a ping before READY: {seen:?}"
    );

    let seen = recv_until(
        &socket,
        "a status with the device online and the uplink connected",
        |m| m.starts_with("STATUS=devices 1/1 online, backlog ") && m.ends_with("uplink connected"),
    );
    let _ = seen;
    // Pings keep coming (the line task and the uplink make progress, even when idle).
    for _ in 0..3 {
        recv_until(&socket, "WATCHDOG=1", |m| m == "WATCHDOG=1");
    }
    // The device goes away: the status says so, and the watchdog is still fed (a device in
    // back-off is healthy, not wedged).
    device.stop();
    recv_until(&socket, "a status with the device offline", |m| {
        m.starts_with("STATUS=devices 0/1 online")
    });
    for _ in 0..3 {
        recv_until(&socket, "WATCHDOG=1 while the device is away", |m| {
            m == "WATCHDOG=1"
        });
    }
    // A reload (SIGHUP; nothing changed) is announced, and READY=1 follows.
    agent.sighup();
    recv_until(&socket, "RELOADING=1", |m| {
        m.lines().any(|l| l == "RELOADING=1")
    });
    recv_until(&socket, "READY=1 after the reload", |m| {
        m.lines().any(|l| l == "READY=1")
    });
    agent.sigterm();
    recv_until(&socket, "STOPPING=1", |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    assert!(agent.wait_exit(WAIT).success());
}

#[test]
fn an_abstract_notify_socket_works_too() {
    use std::os::linux::net::SocketAddrExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let path = config(dir.path(), &device, "");
    let name = format!("ferrule-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind");
    let state = dir.path().to_str().expect("utf-8");
    let _agent = Ferrule::start_with(
        Ferrule::bin(),
        &["run", "--config", path.to_str().expect("utf-8")],
        &[
            ("STATE_DIRECTORY", state),
            ("NOTIFY_SOCKET", &format!("@{name}")),
        ],
    );
    recv_until(&socket, "READY=1", |m| m.lines().any(|l| l == "READY=1"));
    recv_until(&socket, "STATUS= with the uplink off", |m| {
        m == "STATUS=devices 1/1 online, uplink off"
    });
}

/// GETs `url` with curl; (status code, body).
fn curl(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status code"), body.to_owned())
}

/// The value of the sample `name` (with its labels, exactly as rendered).
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_are_scraped_and_move() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let cloud = Mosquitto::start();
    let extra = format!(
        "metrics: {{bind: \"127.0.0.1:0\"}}\nuplink:\n  url: \"mqtt://127.0.0.1:{}\"\n  forward: [{{local: \"svc/#\", qos: 1}}]\n  queue: {{path: queue.db, durability: normal}}\n",
        cloud.port()
    );
    let path = config(dir.path(), &device, &extra);
    let agent = Ferrule::run(&path);
    let line = agent.wait_for_line(
        |l: &str| l.contains("metrics endpoint listening") && l.contains("addr="),
        WAIT,
    );
    let base = format!("http://{}", parse_addr(&line));
    poll_until("/health answers 200", WAIT, || {
        (curl(&format!("{base}/health")).0 == 200).then_some(())
    });

    let polls = "ferrule_device_polls_total{device=\"boiler\"}";
    let published = "ferrule_device_points_published_total{device=\"boiler\"}";
    let latency = "ferrule_device_read_seconds_count{device=\"boiler\"}";
    let first = poll_until("the device polled and published", WAIT, || {
        let (code, body) = curl(&format!("{base}/metrics"));
        assert_eq!(code, 200);
        (sample(&body, polls)? >= 1.0 && sample(&body, published)? >= 2.0).then_some(body)
    });
    for name in [
        "ferrule_ready",
        "ferrule_queue_depth",
        "ferrule_queue_bytes",
        "ferrule_queue_oldest_age_seconds",
        "ferrule_queue_messages_total{event=\"enqueued\"}",
        "ferrule_queue_messages_total{event=\"delivered\"}",
        "ferrule_queue_messages_total{event=\"dropped_max_bytes\"}",
        "ferrule_uplink_connected",
        "ferrule_uplink_reconnects_total",
        "ferrule_broker_clients_connected",
        "ferrule_broker_messages_received_total",
        "ferrule_reloads_total",
        "ferrule_reload_failures_total",
        "ferrule_process_resident_memory_bytes",
        "ferrule_device_errors_total{device=\"boiler\",kind=\"no_answer\"}",
        "ferrule_device_read_seconds_bucket{device=\"boiler\",le=\"+Inf\"}",
    ] {
        assert!(
            sample(&first, name).is_some(),
            "no sample {name} in\n{first}"
        );
    }
    assert_eq!(sample(&first, "ferrule_ready"), Some(1.0));
    assert!(sample(&first, "ferrule_process_resident_memory_bytes").is_some_and(|v| v > 1e6));

    // Values move: polls and latencies grow, a value change is published, a client connects
    // and publishes, the uplink forwards.
    let p0 = sample(&first, polls).expect("polls");
    let l0 = sample(&first, latency).expect("latency count");
    let pub0 = sample(&first, published).expect("published");
    device.set_holding(1, 100, &[42]);
    common::mqtt::publish(agent.listener_addr().port(), "svc/other/x", "1", 1);
    let moved = poll_until("the counters to move", WAIT, || {
        let (_, body) = curl(&format!("{base}/metrics"));
        let ok = sample(&body, polls)? > p0
            && sample(&body, latency)? > l0
            && sample(&body, published)? > pub0
            && sample(&body, "ferrule_broker_messages_received_total")? >= 1.0
            && sample(&body, "ferrule_queue_messages_total{event=\"delivered\"}")? >= 1.0
            && sample(&body, "ferrule_uplink_connected")? == 1.0;
        ok.then_some(body)
    });
    assert!(
        sample(&moved, "ferrule_queue_messages_total{event=\"enqueued\"}")
            .is_some_and(|v| v >= 1.0)
    );

    // Errors by kind: the device stops answering.
    device.mute(1);
    poll_until("no_answer errors counted", WAIT, || {
        let (_, body) = curl(&format!("{base}/metrics"));
        (sample(
            &body,
            "ferrule_device_errors_total{device=\"boiler\",kind=\"no_answer\"}",
        )? >= 1.0)
            .then_some(())
    });

    // Anything else is 404; HEAD works.
    assert_eq!(curl(&format!("{base}/nothing")).0, 404);
    let head = Command::new("curl")
        .args(["-sS", "-I", "--max-time", "10", &format!("{base}/health")])
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&head.stdout).starts_with("HTTP/1.1 200"));
}

#[test]
fn check_warns_about_metrics_on_the_network_and_privileged_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1]);
    let path = config(dir.path(), &device, "metrics: {bind: \"0.0.0.0:80\"}\n");
    let out = Ferrule::output(&["check", path.to_str().expect("utf-8")], WAIT);
    assert!(out.status.success(), "{}", out.tail());
    assert!(
        out.lines
            .iter()
            .any(|l| l.contains("warning: metrics.bind") && l.contains("not a loopback address")),
        "{}",
        out.tail()
    );
    assert!(
        out.lines
            .iter()
            .any(|l| l.contains("warning: metrics.bind `0.0.0.0:80`")
                && l.contains("CAP_NET_BIND_SERVICE")),
        "{}",
        out.tail()
    );
    // The broker's listeners too; the usual ports get no such warning.
    let path = config(dir.path(), &device, "");
    let text = std::fs::read_to_string(&path)
        .expect("read")
        .replace("127.0.0.1:0", "127.0.0.1:883");
    std::fs::write(&path, text).expect("write");
    let out = Ferrule::output(&["check", path.to_str().expect("utf-8")], WAIT);
    assert!(out.status.success(), "{}", out.tail());
    assert!(
        out.lines.iter().any(
            |l| l.contains("warning: broker.listeners[0] `127.0.0.1:883`")
                && l.contains("CAP_NET_BIND_SERVICE")
        ),
        "{}",
        out.tail()
    );
    let path = config(dir.path(), &device, "");
    let out = Ferrule::output(&["check", path.to_str().expect("utf-8")], WAIT);
    assert!(
        !out.lines.iter().any(|l| l.contains("warning")),
        "{}",
        out.tail()
    );
}
