//! Profiles at run time, through the real binary: editing a profile file reloads the config
//! and restarts exactly the devices that use that profile (pymodbus connection counts show
//! which lines restarted), and `ferrule simulate` lays out devices built from profiles so
//! that `ferrule run` on the same config reads every point of them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::mqtt;
use common::{Ferrule, ModbusDevice, Table};

const WAIT: Duration = Duration::from_secs(30);

const METER: &str =
    "name: meter\npoll: 100ms\npoints:\n  - {name: x, kind: holding, address: 1, type: i16}\n";
const METER_TWO: &str = "name: meter\npoll: 100ms\npoints:\n  - {name: x, kind: holding, address: 1, type: i16}\n  - {name: y, kind: holding, address: 2, type: i16}\n";
const PUMP: &str =
    "name: pump\npoll: 100ms\npoints:\n  - {name: speed, kind: holding, address: 1, type: i16}\n";

#[test]
fn editing_a_profile_restarts_exactly_the_devices_that_use_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).expect("mkdir");
    std::fs::write(profiles.join("meter.yaml"), METER).expect("write");
    std::fs::write(profiles.join("pump.yaml"), PUMP).expect("write");
    let devices: Vec<ModbusDevice> = (0..3).map(|_| ModbusDevice::start(&[1])).collect();
    for d in &devices {
        d.set(1, Table::Holding, 1, &[11]);
        d.set(1, Table::Holding, 2, &[22]);
    }
    let yaml = format!(
        r#"site: pr
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
profiles_dir: profiles
devices:
  - {{name: m1, tcp: "127.0.0.1:{}", profile: meter}}
  - {{name: m2, tcp: "127.0.0.1:{}", profile: meter}}
  - {{name: p1, tcp: "127.0.0.1:{}", profile: pump}}
"#,
        devices[0].port(),
        devices[1].port(),
        devices[2].port()
    );
    let config = Ferrule::write_config(dir.path(), &yaml);
    let agent = Ferrule::run(&config);
    agent.wait_for_line(
        |l: &str| l.contains("watching the profiles directory"),
        WAIT,
    );
    for (i, d) in devices.iter().enumerate() {
        d.wait_connections(&format!("device {i} connected"), WAIT, |c| c.open == 1);
    }
    let sub = mqtt::sub(agent.listener_addr().port(), "pr/#");
    sub.wait_for(WAIT, |m| m.topic == "pr/p1/speed");

    let from = agent.line_count();
    std::fs::write(profiles.join("meter.yaml"), METER_TWO).expect("edit the profile");
    agent.wait_for_line_after(from, |l: &str| l.contains("config reloaded"), WAIT);

    // The meters have their new point; both were restarted, the pump was not.
    for m in ["m1", "m2"] {
        let y = sub.wait_for(WAIT, |msg| msg.topic == format!("pr/{m}/y"));
        assert_eq!(y.json()["value"], 22);
    }
    devices[0].wait_connections("m1 reconnected", WAIT, |c| c.accepted == 2 && c.open == 1);
    devices[1].wait_connections("m2 reconnected", WAIT, |c| c.accepted == 2 && c.open == 1);
    // The pump kept its connection and its polling.
    let requests = devices[2].requests(1);
    devices[2].set(1, Table::Holding, 1, &[12]);
    sub.wait_for(WAIT, |m| {
        m.topic == "pr/p1/speed" && m.json()["value"] == 12
    });
    assert!(devices[2].requests(1) > requests);
    let pump = devices[2].connections();
    assert_eq!(
        (pump.accepted, pump.open),
        (1, 1),
        "the pump was reconnected"
    );
    let outcome = sub.wait_for(WAIT, |m| m.topic == "pr/$agent/config");
    assert_eq!(outcome.json()["ok"], true, "{}", outcome.text());

    // A broken profile is refused; the running config stays.
    let from = agent.line_count();
    std::fs::write(
        profiles.join("meter.yaml"),
        "name: meter\npoints:\n  - {name: x, kind: coil, address: 1, type: f32}\n",
    )
    .expect("break it");
    let line = agent
        .wait_for_line_after(from, |l: &str| l.contains("meter.yaml:3"), WAIT)
        .1;
    assert!(
        line.contains("type `f32` is not allowed for a coil point"),
        "{line}"
    );
    devices[0].set(1, Table::Holding, 2, &[23]);
    sub.wait_for(WAIT, |m| m.topic == "pr/m1/y" && m.json()["value"] == 23);
}

#[test]
fn simulate_lays_out_devices_from_profiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/profiles");
    let config = |target: &str| {
        format!(
            r#"site: sim
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
profiles_dir: "{}"
devices:
  - {{name: meter-1, tcp: "{target}", unit: 1, profile: eastron-sdm630, poll: 200ms}}
  - name: meter-2
    tcp: "{target}"
    unit: 2
    poll: 200ms
    profile: carlo-gavazzi-em24
    drop: [phase_sequence]
    points: [{{name: export_energy, kind: holding, address: 0x5C, type: i32, order: CDAB, scale: 0.1}}]
"#,
            shipped.display()
        )
    };
    let sim_config = dir.path().join("sim.yaml");
    std::fs::write(&sim_config, config("127.0.0.1:9")).expect("write");
    let sim = Ferrule::start(&[
        "simulate",
        "--config",
        sim_config.to_str().expect("utf-8"),
        "--bind",
        "127.0.0.1:0",
    ]);
    let addr = sim.simulator_addr();
    let run_config = Ferrule::write_config(dir.path(), &config(&addr.to_string()));
    let agent = Ferrule::run(&run_config);
    let sub = mqtt::sub(agent.listener_addr().port(), "sim/+/+");
    // Every point of both resolved maps is read with quality good.
    let want = 38 + 30 + 1;
    let seen = common::wait::poll_until("every point published good", WAIT, || {
        let good: BTreeSet<String> = sub
            .messages()
            .iter()
            .filter(|m| !m.topic.contains('$') && m.json()["quality"] == "good")
            .map(|m| m.topic.clone())
            .collect();
        (good.len() >= want).then_some(good)
    });
    assert_eq!(seen.len(), want, "{seen:?}");
    assert!(seen.contains("sim/meter-1/total_reactive_energy"));
    assert!(seen.contains("sim/meter-2/export_energy"));
    assert!(!seen.contains("sim/meter-2/phase_sequence"));
}
