//! Hot reload with real peers: pymodbus devices (their connection counts show which lines
//! were restarted), paho-mqtt subscribers, the real binary watching its config file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::mqtt;
use common::{Ferrule, ModbusDevice, Table};

const WAIT: Duration = Duration::from_secs(30);

/// Two devices on two lines (one pymodbus server each); `b_points` are device b's points.
fn yaml(a: &ModbusDevice, b: &ModbusDevice, b_points: &str, extra: &str) -> String {
    format!(
        r#"site: rl
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: a
    tcp: "127.0.0.1:{a}"
    poll: 100ms
    points:
      - {{name: x, kind: holding, address: 1, type: i16}}
  - name: b
    tcp: "127.0.0.1:{b}"
    poll: 100ms
    points:
{b_points}{extra}"#,
        a = a.port(),
        b = b.port(),
    )
}

const B_ONE: &str = "      - {name: y, kind: holding, address: 2, type: i16}\n";
const B_TWO: &str = "      - {name: y, kind: holding, address: 2, type: i16}\n      - {name: z, kind: holding, address: 3, type: i16}\n";

/// Saves `text` over `path` the way many editors do: a new file renamed over the old one.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename it over the config");
}

/// Saves `text` into the existing file (truncate and write).
fn save_in_place(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the config in place");
}

struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
    a: ModbusDevice,
    b: ModbusDevice,
    agent: Ferrule,
}

fn start(extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = ModbusDevice::start(&[1]);
    let b = ModbusDevice::start(&[1]);
    a.set(1, Table::Holding, 1, &[11]);
    b.set(1, Table::Holding, 2, &[22]);
    b.set(1, Table::Holding, 3, &[33]);
    let path = Ferrule::write_config(dir.path(), &yaml(&a, &b, B_ONE, extra));
    let agent = Ferrule::run(&path);
    agent.wait_for_line(|l: &str| l.contains("watching the config file"), WAIT);
    a.wait_connections("a connected", WAIT, |c| c.open == 1);
    b.wait_connections("b connected", WAIT, |c| c.open == 1);
    Setup {
        _dir: dir,
        path,
        a,
        b,
        agent,
    }
}

/// Waits for the `n`-th "config reloaded" line after line `from`.
fn wait_reloaded(agent: &Ferrule, from: usize) -> usize {
    agent
        .wait_for_line_after(from, |l: &str| l.contains("config reloaded"), WAIT)
        .0
}

#[test]
fn a_changed_device_restarts_only_its_line() {
    let s = start("");
    let sub = mqtt::sub(s.agent.listener_addr().port(), "rl/#");
    sub.wait_for(WAIT, |m| m.topic == "rl/b/y");
    let a_before = s.a.connections();
    let b_before = s.b.connections();
    assert_eq!((a_before.accepted, b_before.accepted), (1, 1));

    let from = s.agent.line_count();
    save_in_place(&s.path, &yaml(&s.a, &s.b, B_TWO, ""));
    wait_reloaded(&s.agent, from);

    // b's new point is published; b's line was restarted, a's was not.
    let z = sub.wait_for(WAIT, |m| m.topic == "rl/b/z");
    assert_eq!(z.json()["value"], 33);
    s.b.wait_connections("b reconnected", WAIT, |c| c.accepted == 2 && c.open == 1);
    let outcome = sub.wait_for(WAIT, |m| m.topic == "rl/$agent/config");
    let j = outcome.json();
    assert_eq!(j["ok"], true, "{j}");
    // Retained: a client subscribing later sees the outcome of the last reload.
    let late = mqtt::sub(s.agent.listener_addr().port(), "rl/$agent/config");
    assert!(
        late.wait_for(WAIT, |m| m.topic == "rl/$agent/config")
            .retain
    );
    assert!(j["changes"].to_string().contains("changed"), "{j}");
    // a kept its connection and kept being polled through the reload.
    let requests = s.a.requests(1);
    s.a.set(1, Table::Holding, 1, &[12]);
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 12);
    assert!(s.a.requests(1) > requests);
    let a_after = s.a.connections();
    assert_eq!(
        (a_after.accepted, a_after.open),
        (1, 1),
        "device a was reconnected"
    );
    let offline_a = sub
        .messages()
        .into_iter()
        .any(|m| m.topic == "rl/a/$state" && m.payload == b"offline");
    assert!(!offline_a, "device a went offline during the reload");
}

#[test]
fn an_invalid_config_is_refused_and_the_agent_keeps_publishing() {
    let s = start("metrics: {bind: \"127.0.0.1:0\"}\n");
    let sub = mqtt::sub(s.agent.listener_addr().port(), "rl/#");
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x");

    let from = s.agent.line_count();
    let broken = yaml(
        &s.a,
        &s.b,
        "      - {name: y, kind: holding, address: 2, type: i17}\n",
        "",
    );
    save_in_place(&s.path, &broken);
    s.agent
        .wait_for_line_after(from, |l: &str| l.contains("config reload refused"), WAIT);
    let outcome = sub.wait_for(WAIT, |m| m.topic == "rl/$agent/config");
    let j = outcome.json();
    assert_eq!(j["ok"], false, "{j}");
    let errors = j["errors"].to_string();
    assert!(
        errors.contains("ferrule.yaml:") && errors.contains("i17"),
        "{j}"
    );

    // Still running on the old config: both devices publish, nobody reconnected.
    s.a.set(1, Table::Holding, 1, &[13]);
    s.b.set(1, Table::Holding, 2, &[23]);
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 13);
    sub.wait_for(WAIT, |m| m.topic == "rl/b/y" && m.json()["value"] == 23);
    assert_eq!(s.a.connections().accepted, 1);
    assert_eq!(s.b.connections().accepted, 1);

    // The failure is counted.
    let line = s.agent.wait_for_line(
        |l: &str| l.contains("metrics endpoint listening") && l.contains("addr="),
        WAIT,
    );
    let addr = common::ferrule::parse_addr(&line);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("\nferrule_reload_failures_total 1\n"),
        "{body}"
    );
    assert!(body.contains("\nferrule_reloads_total 0\n"), "{body}");
}

#[test]
fn rename_over_in_place_and_sighup_all_reload() {
    let mut s = start("");
    let sub = mqtt::sub(s.agent.listener_addr().port(), "rl/#");
    sub.wait_for(WAIT, |m| m.topic == "rl/b/y");

    let from = s.agent.line_count();
    save_by_rename(&s.path, &yaml(&s.a, &s.b, B_TWO, ""));
    let at = wait_reloaded(&s.agent, from);
    sub.wait_for(WAIT, |m| m.topic == "rl/b/z");

    save_in_place(&s.path, &yaml(&s.a, &s.b, B_ONE, ""));
    let at = wait_reloaded(&s.agent, at + 1);
    s.b.wait_connections("b restarted twice", WAIT, |c| {
        c.accepted == 3 && c.open == 1
    });

    // A rename-over save keeps being watched (the directory is, not the old inode).
    save_by_rename(&s.path, &yaml(&s.a, &s.b, B_TWO, ""));
    let at = wait_reloaded(&s.agent, at + 1);

    // SIGHUP with nothing changed: reloaded, nothing restarted.
    s.agent.sighup();
    s.agent.wait_for_line_after(
        at + 1,
        |l: &str| l.contains("reloading the config") && l.contains("SIGHUP"),
        WAIT,
    );
    s.agent
        .wait_for_line_after(at + 1, |l: &str| l.contains("config unchanged"), WAIT);
    assert_eq!(s.a.connections().accepted, 1);
    s.b.wait_connections("b restarted three times", WAIT, |c| {
        c.accepted == 4 && c.open == 1
    });
}

/// GETs `/metrics` of the agent and returns the value of sample `name`.
fn metric(agent: &Ferrule, name: &str) -> Option<f64> {
    let line = agent.wait_for_line(
        |l: &str| l.contains("metrics endpoint listening") && l.contains("addr="),
        WAIT,
    );
    let addr = common::ferrule::parse_addr(&line);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn uplink(url: &str, client_id: &str) -> String {
    format!(
        "metrics: {{bind: \"127.0.0.1:0\"}}\nuplink:\n  url: \"{url}\"\n  client_id: {client_id}\n  forward: [{{local: \"rl/#\", qos: 1}}]\n  queue: {{path: queue.db, durability: normal}}\n  reconnect: {{initial: 100ms, max: 500ms}}\n"
    )
}

#[test]
fn the_uplink_restarts_alone_and_keeps_its_backlog_and_the_broker_alone_too() {
    // An upstream nobody listens on: the backlog grows.
    let down = format!("mqtt://127.0.0.1:{}", common::free_port());
    let cloud = common::Mosquitto::start();
    let s = start(&uplink(&down, "gw1"));
    let port = s.agent.listener_addr().port();
    let sub = mqtt::sub(port, "rl/#");
    // The upstream is down: a changed value is queued (the tap enqueues before delivery).
    s.a.set(1, Table::Holding, 1, &[77]);
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 77);
    assert!(metric(&s.agent, "ferrule_queue_depth").is_some_and(|d| d >= 1.0));

    // Only the uplink section changes: the backlog goes to the new upstream; the device lines
    // and the broker are untouched.
    let upstream = mqtt::sub(cloud.port(), "rl/#");
    let from = s.agent.line_count();
    save_in_place(
        &s.path,
        &yaml(&s.a, &s.b, B_ONE, &uplink(&cloud.url(), "gw2")),
    );
    wait_reloaded(&s.agent, from);
    let x = upstream.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 77);
    assert_eq!(x.json()["quality"], "good");
    assert_eq!(s.a.connections().accepted, 1);
    assert_eq!(s.b.connections().accepted, 1);
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the broker still listens");
    common::wait::poll_until("the uplink connected", WAIT, || {
        (metric(&s.agent, "ferrule_uplink_connected")? == 1.0).then_some(())
    });
    let connects = metric(&s.agent, "ferrule_uplink_connects_total");

    // Only the broker section changes: a new listener; the uplink stays connected as it was.
    let from = s.agent.line_count();
    let with_broker = yaml(&s.a, &s.b, B_ONE, &uplink(&cloud.url(), "gw2")).replace(
        "  listeners: [{bind: \"127.0.0.1:0\"}]",
        "  listeners: [{bind: \"127.0.0.1:0\"}]\n  max_queued_messages: 500",
    );
    save_in_place(&s.path, &with_broker);
    wait_reloaded(&s.agent, from);
    let (_, line) = s.agent.wait_for_line_after(
        from,
        |l: &str| l.contains("broker listening") && l.contains("addr="),
        WAIT,
    );
    let new_port = common::ferrule::parse_addr(&line).port();
    let again = mqtt::sub(new_port, "rl/#");
    s.a.set(1, Table::Holding, 1, &[78]);
    again.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 78);
    upstream.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 78);
    assert_eq!(metric(&s.agent, "ferrule_uplink_connects_total"), connects);
    assert_eq!(metric(&s.agent, "ferrule_reloads_total"), Some(2.0));
}

#[test]
fn a_broker_section_change_keeps_clients_connected_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = ModbusDevice::start(&[1]);
    let b = ModbusDevice::start(&[1]);
    let port = common::free_port();
    let text = yaml(&a, &b, B_ONE, "").replace(
        "  listeners: [{bind: \"127.0.0.1:0\"}]",
        &format!("  listeners: [{{bind: \"127.0.0.1:{port}\"}}]"),
    );
    let path = Ferrule::write_config(dir.path(), &text);
    let agent = Ferrule::run(&path);
    agent.wait_for_line(|l: &str| l.contains("watching the config file"), WAIT);
    let sub = mqtt::sub(port, "rl/#");
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x");

    let from = agent.line_count();
    save_in_place(
        &path,
        &text.replace(
            &format!("  listeners: [{{bind: \"127.0.0.1:{port}\"}}]"),
            &format!("  listeners: [{{bind: \"127.0.0.1:{port}\"}}]\n  max_queued_messages: 500"),
        ),
    );
    let at = wait_reloaded(&agent, from);
    assert!(
        !agent.lines()[from..=at]
            .iter()
            .any(|l| l.contains("the old one stays in force")),
        "{}",
        agent.tail()
    );
    let again = mqtt::sub(port, "rl/#");
    a.set(1, Table::Holding, 1, &[5]);
    again.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 5);
    // The subscriber connected before the reload was never dropped: it gets the new value on
    // the connection it had.
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 5);
    assert!(
        !agent.lines()[from..]
            .iter()
            .any(|l| l.contains("client disconnected")),
        "{}",
        agent.tail()
    );
    // A listener that cannot be bound (the port is taken) leaves the old section in force.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let from = agent.line_count();
    save_in_place(
        &path,
        &text.replace(
            &format!("  listeners: [{{bind: \"127.0.0.1:{port}\"}}]"),
            &format!("  listeners: [{{bind: \"127.0.0.1:{taken_port}\"}}]"),
        ),
    );
    // Refused as a whole (prepare, then swap): reported failed, nothing else applied.
    agent.wait_for_line_after(
        from,
        |l: &str| l.contains("the old one stays in force"),
        WAIT,
    );
    let report = sub.wait_for(WAIT, |m| {
        m.topic == "rl/$agent/config" && m.json()["ok"] == false
    });
    assert!(
        report.json()["errors"]
            .to_string()
            .contains("address already in use"),
        "{:?}",
        report.json()
    );
    let last = mqtt::sub(port, "rl/#");
    a.set(1, Table::Holding, 1, &[6]);
    last.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 6);
    sub.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 6);
}

/// A serial bus is one line: a change to one of its devices restarts the bus task, which
/// opens the same port again; a TCP device beside it is untouched.
#[test]
fn a_change_on_a_serial_bus_reopens_the_port_and_leaves_tcp_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rtu = ModbusDevice::start_rtu(&[1, 2], 19200);
    let tcp = ModbusDevice::start(&[1]);
    rtu.set(1, Table::Holding, 0, &[10]);
    rtu.set(2, Table::Holding, 0, &[20]);
    rtu.set(2, Table::Holding, 1, &[21]);
    let text = |unit2_points: &str| {
        format!(
            "site: rl\nbroker:\n  listeners: [{{bind: \"127.0.0.1:0\"}}]\nbuses:\n  - {{name: bus1, port: \"{port}\", baud: 19200, parity: none}}\ndevices:\n  - {{name: t, tcp: \"127.0.0.1:{tcp}\", poll: 100ms, points: [{{name: x, kind: holding, address: 1}}]}}\n  - {{name: u1, bus: bus1, unit: 1, poll: 100ms, points: [{{name: a, kind: holding, address: 0}}]}}\n  - {{name: u2, bus: bus1, unit: 2, poll: 100ms, points: [{unit2_points}]}}\n",
            port = rtu.serial_path().display(),
            tcp = tcp.port(),
        )
    };
    let path = Ferrule::write_config(dir.path(), &text("{name: a, kind: holding, address: 0}"));
    let agent = Ferrule::run(&path);
    agent.wait_for_line(|l: &str| l.contains("watching the config file"), WAIT);
    let sub = mqtt::sub(agent.listener_addr().port(), "rl/#");
    sub.wait_for(WAIT, |m| m.topic == "rl/u2/a" && m.json()["value"] == 20);
    sub.wait_for(WAIT, |m| m.topic == "rl/t/x");
    tcp.wait_connections("t connected", WAIT, |c| c.open == 1);

    let from = agent.line_count();
    save_by_rename(
        &path,
        &text("{name: a, kind: holding, address: 0}, {name: b, kind: holding, address: 1}"),
    );
    wait_reloaded(&agent, from);
    // The bus came back (the port reopened): the new point and both units are published.
    sub.wait_for(WAIT, |m| m.topic == "rl/u2/b" && m.json()["value"] == 21);
    rtu.set(1, Table::Holding, 0, &[11]);
    sub.wait_for(WAIT, |m| m.topic == "rl/u1/a" && m.json()["value"] == 11);
    assert_eq!(
        tcp.connections().accepted,
        1,
        "the TCP device was reconnected"
    );
}

#[test]
fn a_site_change_moves_every_topic_and_retires_the_old_agent_state() {
    let s = start("");
    let port = s.agent.listener_addr().port();
    let old = mqtt::sub(port, "rl/#");
    old.wait_for(WAIT, |m| m.topic == "rl/a/x");
    let new = mqtt::sub(port, "r2/#");

    let from = s.agent.line_count();
    save_in_place(
        &s.path,
        &yaml(&s.a, &s.b, B_ONE, "").replace("site: rl", "site: r2"),
    );
    wait_reloaded(&s.agent, from);
    new.wait_for(WAIT, |m| m.topic == "r2/a/x" && m.json()["value"] == 11);
    new.wait_for(WAIT, |m| m.topic == "r2/b/y" && m.json()["value"] == 22);
    new.wait_for(WAIT, |m| {
        m.topic == "r2/$agent/state" && m.payload == b"online"
    });
    let ok = new.wait_for(WAIT, |m| m.topic == "r2/$agent/config");
    assert_eq!(ok.json()["ok"], true);
    old.wait_for(WAIT, |m| {
        m.topic == "rl/$agent/state" && m.payload == b"offline"
    });
}

/// Prepare, then swap: a reload whose new uplink cannot start (its CA file is not a
/// certificate), or whose metrics listener cannot bind, changes nothing, not even the device
/// change that came with it; it is reported failed with why, and counted. The old uplink
/// stays connected and keeps forwarding. A valid reload afterwards applies.
#[test]
fn a_reload_that_cannot_start_a_part_leaves_the_whole_old_config_in_force() {
    let cloud = common::Mosquitto::start();
    let s = start(&uplink(&cloud.url(), "gw1"));
    let port = s.agent.listener_addr().port();
    let sub = mqtt::sub(port, "rl/#");
    let upstream = mqtt::sub(cloud.port(), "rl/#");
    common::wait::poll_until("the uplink connected", WAIT, || {
        (metric(&s.agent, "ferrule_uplink_connected")? == 1.0).then_some(())
    });
    let connects = metric(&s.agent, "ferrule_uplink_connects_total");

    // 1. A new uplink over TLS whose CA file is garbage, and device b gains a point.
    let dir = s.path.parent().expect("dir");
    std::fs::write(dir.join("bad-ca.pem"), "not a certificate\n").expect("write");
    let tls_uplink = uplink(&cloud.url().replace("mqtt://", "mqtts://"), "gw2")
        .replace("  client_id: gw2\n", "  client_id: gw2\n  ca: bad-ca.pem\n");
    let from = s.agent.line_count();
    save_in_place(&s.path, &yaml(&s.a, &s.b, B_TWO, &tls_uplink));
    s.agent.wait_for_line_after(
        from,
        |l: &str| l.contains("the running config stays in force"),
        WAIT,
    );
    let outcome = sub.wait_for(WAIT, |m| m.topic == "rl/$agent/config");
    let j = outcome.json();
    assert_eq!(j["ok"], false, "{j}");
    assert!(j["errors"].to_string().contains("uplink"), "{j}");

    // 2. The metrics endpoint moved to a port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let from = s.agent.line_count();
    save_in_place(
        &s.path,
        &yaml(&s.a, &s.b, B_TWO, &uplink(&cloud.url(), "gw1")).replace(
            "metrics: {bind: \"127.0.0.1:0\"}",
            &format!("metrics: {{bind: \"127.0.0.1:{taken_port}\"}}"),
        ),
    );
    s.agent.wait_for_line_after(
        from,
        |l: &str| l.contains("the running config stays in force"),
        WAIT,
    );
    let refused = sub.wait_for(WAIT, |m| {
        m.topic == "rl/$agent/config" && m.json()["errors"].to_string().contains("metrics")
    });
    assert_eq!(refused.json()["ok"], false);

    // Nothing changed: b kept its line and has no new point, the old uplink still forwards
    // on its first connection, and the old metrics endpoint answers, counting both failures.
    s.a.set(1, Table::Holding, 1, &[79]);
    upstream.wait_for(WAIT, |m| m.topic == "rl/a/x" && m.json()["value"] == 79);
    assert_eq!(s.b.connections().accepted, 1);
    assert!(!sub.messages().iter().any(|m| m.topic == "rl/b/z"));
    assert_eq!(metric(&s.agent, "ferrule_uplink_connects_total"), connects);
    assert_eq!(metric(&s.agent, "ferrule_reload_failures_total"), Some(2.0));
    assert_eq!(metric(&s.agent, "ferrule_reloads_total"), Some(0.0));

    // 3. The device change alone applies.
    drop(taken);
    let from = s.agent.line_count();
    save_in_place(
        &s.path,
        &yaml(&s.a, &s.b, B_TWO, &uplink(&cloud.url(), "gw1")),
    );
    wait_reloaded(&s.agent, from);
    let z = sub.wait_for(WAIT, |m| m.topic == "rl/b/z");
    assert_eq!(z.json()["value"], 33);
    upstream.wait_for(WAIT, |m| m.topic == "rl/b/z");
    assert_eq!(metric(&s.agent, "ferrule_reloads_total"), Some(1.0));
}
