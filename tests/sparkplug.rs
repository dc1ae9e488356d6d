//! Sparkplug B edge node, checked by a host application we did not write: pysparkplug (with
//! Eclipse Tahu's protobuf definitions) decodes every message ferrule sends through a real
//! Mosquitto, a pymodbus device is polled and written, and ferrule is the real binary.
//!
//! What is checked: NBIRTH/DBIRTH contents (datatypes, aliases, properties), DDATA by
//! exception with aliases only, `seq` 0..255 per node with NBIRTH at 0, `bdSeq` matching between
//! NBIRTH and the NDEATH will and going up per connection (also across `kill -9`), historical
//! data after an uplink outage, in order and flagged, DCMD writes through the command checks,
//! rebirth on request, and the primary host's STATE.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::mqtt;
use common::process::Proc;
use common::wait::poll_until;
use common::{fixture, python, Ferrule, ModbusDevice, Mosquitto};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The pysparkplug host on the cloud broker.
struct Host {
    proc: Proc,
}

impl Host {
    fn start(cloud: &Mosquitto, host_id: &str) -> Host {
        let proc = Proc::spawn(
            "spb-host",
            Command::new(python())
                .arg(fixture("spb_host.py"))
                .args(["--port", &cloud.port().to_string()])
                .args(["--group", "g", "--node", "gw", "--host-id", host_id])
                .env("PYTHONUNBUFFERED", "1"),
        );
        proc.wait_for_line("\"READY\"", WAIT);
        Host { proc }
    }

    /// Every decoded message so far (JSON lines of type other than READY/OK).
    fn messages(&self) -> Vec<Value> {
        self.proc
            .output()
            .read(|o| o.stdout.clone())
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| !matches!(v["type"].as_str(), Some("READY" | "OK")))
            .collect()
    }

    /// Waits for a message after the first `skip` ones that `check` accepts.
    fn wait(&self, skip: usize, what: &str, check: impl Fn(&Value) -> bool) -> (usize, Value) {
        poll_until(what, WAIT, || {
            self.messages()
                .into_iter()
                .enumerate()
                .skip(skip)
                .find(|(_, m)| check(m))
        })
    }

    fn command(&mut self, line: &str) {
        let before = self.proc.line_count();
        self.proc.write_line(line);
        let (_, reply) = self.proc.wait_for_line_after(
            before,
            |l: &str| l.contains("\"OK\"") || l.contains("\"ERR\""),
            WAIT,
        );
        assert!(reply.contains("\"OK\""), "host refused {line:?}: {reply}");
    }
}

fn config(dir: &Path, cloud: &Mosquitto, device: &ModbusDevice, primary: Option<&str>) -> PathBuf {
    let primary = primary.map_or(String::new(), |h| format!(", primary_host_id: {h}"));
    let yaml = format!(
        r#"
site: s
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: dev
    tcp: "127.0.0.1:{port}"
    unit: 1
    poll: 100ms
    timeout: 1s
    points:
      - {{name: temp, kind: holding, address: 0, type: i16, scale: 0.1, unit: "°C"}}
      - {{name: setpoint, kind: holding, address: 1, type: u16, writable: {{min: 0, max: 50}}}}
      - {{name: run, kind: coil, address: 0, writable: true}}
uplink:
  url: "mqtt://127.0.0.1:{cloud}"
  reconnect: {{initial: 50ms, max: 500ms}}
  queue: {{path: queue.db, durability: full}}
  sparkplug: {{group_id: g, edge_node_id: gw{primary}}}
"#,
        port = device.port(),
        cloud = cloud.port(),
    );
    Ferrule::write_config(dir, &yaml)
}

fn kind(m: &Value) -> &str {
    m["type"].as_str().unwrap_or("")
}

fn metric<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    m["metrics"].as_array()?.iter().find(|x| x["name"] == name)
}

/// The seq and bdSeq rules over everything the host received: no undecodable payload; every
/// NBIRTH has seq 0 and the messages after it count up by one (mod 256); every NDEATH's bdSeq
/// is its NBIRTH's. Returns the bdSeq of each NBIRTH.
fn check_sequences(messages: &[Value]) -> Vec<u64> {
    let mut births = Vec::new();
    let mut last_seq: Option<u64> = None;
    let mut bd: Option<u64> = None;
    for m in messages {
        assert_ne!(kind(m), "ERROR", "the host could not decode: {m}");
        match kind(m) {
            "NBIRTH" => {
                assert_eq!(m["seq"], 0, "NBIRTH seq: {m}");
                let b = m["bdSeq"].as_u64().expect("NBIRTH has bdSeq");
                births.push(b);
                bd = Some(b);
                last_seq = Some(0);
            }
            "NDEATH" => {
                assert_eq!(m["bdSeq"].as_u64(), bd, "NDEATH bdSeq is its NBIRTH's: {m}");
                last_seq = None;
            }
            _ => {
                let seq = m["seq"].as_u64().expect("seq");
                let want = last_seq.map(|s| (s + 1) % 256);
                assert_eq!(Some(seq), want, "seq after {last_seq:?}: {m}");
                last_seq = Some(seq);
            }
        }
    }
    births
}

#[test]
fn births_data_commands_outage_and_kill9_as_a_sparkplug_host_sees_them() {
    let mut cloud = Mosquitto::start_with(&["persistence true", "max_queued_messages 0"]);
    let device = ModbusDevice::start(&[1]);
    device.set_holding(1, 0, &[215]);
    device.set_holding(1, 1, &[5]);
    let mut host = Host::start(&cloud, "h1");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &cloud, &device, None);
    let mut agent = Ferrule::run(&cfg);

    // Births: NBIRTH with bdSeq and rebirth control, DBIRTH with every metric.
    let (_, nbirth) = host.wait(0, "NBIRTH", |m| kind(m) == "NBIRTH");
    assert_eq!(
        metric(&nbirth, "Node Control/Rebirth").map(|m| m["value"].clone()),
        Some(Value::Bool(false))
    );
    let (_, dbirth) = host.wait(0, "DBIRTH with a value", |m| {
        kind(m) == "DBIRTH" && metric(m, "temp").is_some_and(|t| t["value"] == 21.5)
    });
    let temp = metric(&dbirth, "temp").expect("temp");
    assert_eq!(temp["datatype"], "DOUBLE", "scaled i16 → Double");
    assert_eq!(temp["properties"]["engUnit"], "°C");
    assert_eq!(temp["properties"]["readOnly"], true);
    assert_eq!(temp["properties"]["Quality"], 192);
    let setpoint = metric(&dbirth, "setpoint").expect("setpoint");
    assert_eq!(setpoint["datatype"], "UINT16");
    assert_eq!(setpoint["properties"]["readOnly"], false);
    assert_eq!(metric(&dbirth, "run").expect("run")["datatype"], "BOOLEAN");

    // DDATA by exception, aliases only on the wire (the host resolved the name from DBIRTH).
    let seen = host.messages().len();
    device.set_holding(1, 0, &[223]);
    let (_, ddata) = host.wait(seen, "DDATA temp 22.3", |m| {
        kind(m) == "DDATA" && metric(m, "temp").is_some_and(|t| t["value"] == 22.3)
    });
    let t = metric(&ddata, "temp").expect("temp");
    assert_eq!(t["alias"], temp["alias"]);
    assert_eq!(t["is_historical"], false);
    assert_eq!(
        ddata["metrics"].as_array().map(Vec::len),
        Some(1),
        "only what changed"
    );

    // DCMD: through the command checks to the device, the read-back comes back as DDATA.
    let seen = host.messages().len();
    host.command("dcmd dev setpoint UINT16 42");
    device.wait_for_write(WAIT, |w| w.addr == 1 && w.values == [42]);
    host.wait(seen, "DDATA setpoint 42", |m| {
        kind(m) == "DDATA" && metric(m, "setpoint").is_some_and(|t| t["value"] == 42)
    });
    // Refused (above max): audited with its code, the device untouched.
    let lines = agent.line_count();
    host.command("dcmd dev setpoint UINT16 99");
    let (_, audit) = agent.wait_for_line_after(
        lines,
        |l: &str| l.contains("ferrule::audit") && l.contains("setpoint"),
        WAIT,
    );
    assert!(audit.contains("above_max"), "{audit}");
    assert_eq!(device.get_holding(1, 1, 1), [42]);

    // Rebirth on request: NBIRTH with the same bdSeq, seq 0.
    let seen = host.messages().len();
    host.command("rebirth");
    let (_, again) = host.wait(seen, "NBIRTH after rebirth", |m| kind(m) == "NBIRTH");
    assert_eq!(again["bdSeq"], nbirth["bdSeq"]);
    host.wait(seen, "DBIRTH after rebirth", |m| kind(m) == "DBIRTH");

    // Uplink outage: values change while the cloud is down; after the new births they arrive
    // flagged historical, in order, none missing.
    let local = mqtt::sub(agent.listener_addr().port(), "s/dev/temp");
    cloud.stop();
    let outage: Vec<u16> = (300..306).collect();
    for v in &outage {
        device.set_holding(1, 0, &[*v]);
        let want = f64::from(*v) / 10.0;
        local.wait_for(WAIT, |m| m.json()["value"] == want);
    }
    let seen = host.messages().len();
    cloud.start_again();
    let (at, reborn) = host.wait(seen, "NBIRTH after the outage", |m| kind(m) == "NBIRTH");
    let bd0 = nbirth["bdSeq"].as_u64().expect("bdSeq");
    let bd1 = reborn["bdSeq"].as_u64().expect("bdSeq");
    // One more per connection attempt (the attempts while the cloud was down count too).
    assert!(
        bd1 != bd0 && (bd1 + 256 - bd0) % 256 < 100,
        "bdSeq {bd0} then {bd1}"
    );
    let want: Vec<f64> = outage.iter().map(|v| f64::from(*v) / 10.0).collect();
    let history = poll_until("historical DDATA of the outage", WAIT, || {
        let got: Vec<f64> = host.messages()[at..]
            .iter()
            .filter(|m| kind(m) == "DDATA")
            .filter_map(|m| metric(m, "temp").filter(|t| t["is_historical"] == true))
            .filter_map(|t| t["value"].as_f64())
            .collect();
        want.iter().all(|w| got.contains(w)).then_some(got)
    });
    let positions: Vec<usize> = want
        .iter()
        .map(|w| history.iter().position(|g| g == w).expect("present"))
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "in order: {history:?}"
    );

    // kill -9: the broker publishes the NDEATH will with the bdSeq of the NBIRTH; the next
    // start continues the bdSeq.
    let seen = host.messages().len();
    agent.kill9();
    let (_, death) = host.wait(seen, "NDEATH", |m| kind(m) == "NDEATH");
    assert_eq!(death["bdSeq"], reborn["bdSeq"]);
    let _agent = Ferrule::run(&cfg);
    let (_, next) = host.wait(seen, "NBIRTH after kill -9", |m| kind(m) == "NBIRTH");
    assert_eq!(
        next["bdSeq"].as_u64(),
        Some((bd1 + 1) % 256),
        "kept across kill -9"
    );
    host.wait(seen, "DBIRTH after kill -9", |m| kind(m) == "DBIRTH");

    let births = check_sequences(&host.messages());
    assert!(births.len() >= 4, "{births:?}");
}

#[test]
fn with_a_primary_host_births_wait_for_its_state_and_follow_it() {
    let cloud = Mosquitto::start();
    let device = ModbusDevice::start(&[1]);
    let mut host = Host::start(&cloud, "scada");
    host.command("state offline");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &cloud, &device, Some("scada"));
    let agent = Ferrule::run(&cfg);
    agent.wait_for_line("waiting for the primary host", WAIT);
    agent.wait_for_line("device state state=\"online\"", WAIT);
    assert!(
        host.messages().iter().all(|m| kind(m) != "NBIRTH"),
        "no birth while the primary host is offline"
    );
    host.command("state online");
    let (_, first) = host.wait(0, "NBIRTH", |m| kind(m) == "NBIRTH");
    host.wait(0, "DBIRTH", |m| kind(m) == "DBIRTH");
    // The host goes away: the node dies (NDEATH), then is born again when it returns.
    let seen = host.messages().len();
    host.command("state offline");
    host.wait(seen, "NDEATH", |m| kind(m) == "NDEATH");
    host.command("state online");
    let (_, again) = host.wait(seen, "NBIRTH", |m| kind(m) == "NBIRTH");
    assert_ne!(again["bdSeq"], first["bdSeq"], "a new connection");
    check_sequences(&host.messages());
}
