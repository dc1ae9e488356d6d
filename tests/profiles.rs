//! Device profiles through the real binary: `check` shows each device's resolved map, errors
//! name the device and the profile line, and devices built from a profile (with overrides,
//! dropped and added points, the profile's default word order) poll a real pymodbus device.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mqtt;
use common::{Ferrule, ModbusDevice};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn check(config: &Path) -> (bool, String, String) {
    let out = Ferrule::output(&["check", config.to_str().expect("utf-8")], WAIT);
    (
        out.status.success(),
        out.stdout.join("\n"),
        out.lines.join("\n"),
    )
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn check_shows_the_resolved_map_of_each_device_of_the_example_site() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/profiles-site.yaml");
    let (ok, out, err) = check(&config);
    assert!(ok, "{err}");
    assert!(
        line_with(&out, "profile eastron-sdm630 (")
            .ends_with("38 point(s), used by meter-1, meter-2"),
        "{out}"
    );
    assert!(line_with(&out, "profile boiler-basic (").contains("profiles-site.yaml:15)"));
    assert!(
        line_with(&out, "    meter-1 ").contains("poll 5s: 38 point(s)"),
        "{out}"
    );
    // meter-2: its own poll, two points dropped, one overridden.
    assert!(
        line_with(&out, "    meter-2 ").contains("poll 10s: 36 point(s)"),
        "{out}"
    );
    assert!(
        out.contains("profile eastron-sdm630 (")
            && out.contains(
                "0 added; overridden: power_total; dropped: current_neutral, power_demand_max"
            ),
        "{out}"
    );
    let meter2 = &out[out.find("    meter-2 ").expect("meter-2")..];
    let total = line_with(meter2, "power_total ");
    assert!(
        total.contains("input 52..53") && total.contains("f32 ABCD"),
        "{total}"
    );
    assert!(
        total.contains("deadband 50") && total.ends_with("[profile, overridden]"),
        "{total}"
    );
    assert!(!meter2[..meter2.find("    main-incomer").expect("next")]
        .contains("current_neutral  input"));
    // An added point comes after the profile's, marked as the device's own.
    let added = line_with(&out, "export_energy    holding");
    assert!(
        added.contains("holding 92..93")
            && added.contains("i32 CDAB")
            && added.ends_with("[device]"),
        "{added}"
    );
    let setpoint = line_with(&out, "setpoint         holding");
    assert!(
        setpoint.contains("writable 20..80") && setpoint.ends_with("[profile, overridden]"),
        "{setpoint}"
    );
}

#[test]
fn errors_name_the_device_and_the_profile_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).expect("mkdir");
    std::fs::write(
        profiles.join("meter.yaml"),
        "name: meter\norder: CDAB\npoints:\n  - {name: voltage, kind: input, address: 0, type: f32}\n  - {name: frequency, kind: input, address: 10, type: f32}\n",
    )
    .expect("write");
    std::fs::write(
        profiles.join("broken.yaml"),
        "points:\n  - {name: a, kind: input, address: 1}\n  - {name: b, kind: coil, address: 1, type: f32}\n",
    )
    .expect("write");
    let config = Ferrule::write_config(
        dir.path(),
        r#"site: s
profiles_dir: profiles
devices:
  - name: m1
    tcp: "10.0.0.1:502"
    profile: meter
    drop: [nope]
    overrides:
      voltage: {writable: true}
    points:
      - {name: frequency, kind: holding, address: 5}
      - {name: extra, kind: input, address: 1}
  - name: m2
    tcp: "10.0.0.1:502"
    profile: metre
  - name: m3
    tcp: "10.0.0.1:502"
    profile: broken
"#,
    );
    let (ok, _, err) = check(&config);
    assert!(!ok);
    let file = config.display().to_string();
    let meter = profiles.join("meter.yaml").display().to_string();
    let expect = [
        format!("{file}:7:12: devices[0].drop[0]: profile `meter` ({meter}:1) has no point `nope`; its points are voltage, frequency"),
        format!("{file}:9:27: devices[0].overrides.voltage.writable: an input point cannot be writable: the input table is read-only (use holding) (point `voltage` of profile `meter` at {meter}:4)"),
        format!("{file}:11:16: devices[0].points[0].name: duplicate point name `frequency`: already point `frequency` of profile `meter` at {meter}:5"),
        format!("{file}:12:45: devices[0].points[1].address: input 1 overlaps point `voltage` of profile `meter` at {meter}:4 (input 0..1)"),
        format!("{file}:15:14: devices[1].profile: no profile named `metre`; expected one of meter"),
        format!("{}:3:45: points[1].type: type `f32` is not allowed for a coil point", profiles.join("broken.yaml").display()),
    ];
    for e in &expect {
        assert!(err.contains(e.as_str()), "missing\n  {e}\nin\n{err}");
    }
    // The device naming the broken profile is not reported a second time.
    assert!(!err.contains("devices[2]"), "{err}");
    assert!(err.contains("6 error(s)"), "{err}");
}

#[test]
fn devices_built_from_a_profile_poll_a_real_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = ModbusDevice::start(&[1, 2]);
    // f32 230.5 = 0x43668000, in the profile's default order CDAB: 8000 4366
    for unit in [1, 2] {
        device.set_input(unit, 0, &[0x8000, 0x4366]);
        device.set_input(unit, 10, &[500]);
        device.set_holding(unit, 20, &[7]);
    }
    std::fs::create_dir(dir.path().join("profiles")).expect("mkdir");
    std::fs::write(
        dir.path().join("profiles/meter.yaml"),
        "name: meter\npoll: 100ms\norder: CDAB\npoints:\n  - {name: voltage, kind: input, address: 0, type: f32, unit: V}\n  - {name: frequency, kind: input, address: 10, scale: 0.1, unit: Hz}\n",
    )
    .expect("write");
    let yaml = format!(
        r#"site: p
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
profiles_dir: profiles
devices:
  - {{name: m1, tcp: "{addr}", unit: 1, profile: meter, overrides: {{frequency: {{scale: 0.01, unit: kHz}}}}}}
  - name: m2
    tcp: "{addr}"
    unit: 2
    profile: meter
    drop: [frequency]
    points: [{{name: mode, kind: holding, address: 20, writable: true}}]
"#,
        addr = device.addr()
    );
    let config = Ferrule::write_config(dir.path(), &yaml);
    let agent = Ferrule::run(&config);
    let states = mqtt::sub(agent.listener_addr().port(), "p/#");
    let value = |topic: &str| {
        let m = states.wait_for(WAIT, |m| m.topic == topic);
        m.json()
    };
    assert_eq!(value("p/m1/voltage")["value"], json!(230.5));
    assert_eq!(value("p/m1/voltage")["unit"], json!("V"));
    assert_eq!(value("p/m1/frequency")["value"], json!(5.0));
    assert_eq!(value("p/m1/frequency")["unit"], json!("kHz"));
    assert_eq!(value("p/m2/voltage")["value"], json!(230.5));
    assert_eq!(value("p/m2/mode")["value"], json!(7));
    // m2 dropped `frequency`; it writes `mode`, its own point.
    mqtt::publish(
        agent.listener_addr().port(),
        "p/m2/mode/set",
        r#"{"value": 9, "id": "a"}"#,
        1,
    );
    let reply = states.wait_for(WAIT, |m| m.topic == "p/m2/mode/set/result");
    assert_eq!(reply.json()["ok"], json!(true), "{}", reply.text());
    assert_eq!(device.get_holding(2, 20, 1), vec![9]);
    states.assert_none_for(Duration::from_millis(300), |m| m.topic == "p/m2/frequency");
}

/// The point lines of `check`'s summary (the resolved maps), without the profile markers.
fn point_lines(summary: &str) -> Vec<String> {
    summary
        .lines()
        .filter(|l| l.starts_with("      ") && !l.trim_start().starts_with("profile "))
        .map(|l| l.replace("  [profile]", ""))
        .collect()
}

#[test]
fn import_csv_turns_the_shipped_register_maps_into_the_shipped_profiles() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/profiles");
    let dir = tempfile::tempdir().expect("tempdir");
    let imported = dir.path().join("profiles");
    std::fs::create_dir(&imported).expect("mkdir");
    for (csv, name, extra) in [
        ("eastron-sdm630.csv", "eastron-sdm630", None),
        (
            "carlo-gavazzi-em24.csv",
            "carlo-gavazzi-em24",
            Some("holding"),
        ),
    ] {
        let out = imported.join(format!("{name}.yaml"));
        let csv = shipped.join(csv);
        let mut args = vec![
            "import",
            "csv",
            csv.to_str().expect("utf-8"),
            "--profile",
            name,
            "-o",
            out.to_str().expect("utf-8"),
        ];
        if let Some(kind) = extra {
            args.extend(["--kind", kind]);
        }
        let done = Ferrule::output(&args, WAIT);
        assert!(done.status.success(), "{}", done.tail());
        assert!(
            done.tail().contains(&format!("profile `{name}` with")),
            "{}",
            done.tail()
        );
    }
    let site = |profiles: &Path| {
        format!(
            "site: s\nprofiles_dir: \"{}\"\ndevices:\n  - {{name: a, tcp: \"10.0.0.1:502\", profile: eastron-sdm630}}\n  - {{name: b, tcp: \"10.0.0.2:502\", profile: carlo-gavazzi-em24}}\n",
            profiles.display()
        )
    };
    let from_csv = dir.path().join("csv.yaml");
    std::fs::write(&from_csv, site(&imported)).expect("write");
    let from_yaml = dir.path().join("yaml.yaml");
    std::fs::write(&from_yaml, site(&shipped)).expect("write");
    let (ok, csv_summary, err) = check(&from_csv);
    assert!(ok, "{err}");
    let (ok, yaml_summary, err) = check(&from_yaml);
    assert!(ok, "{err}");
    let lines = point_lines(&csv_summary);
    assert_eq!(lines.len(), 38 + 31, "{csv_summary}");
    assert_eq!(lines, point_lines(&yaml_summary));
    assert!(
        csv_summary.contains("current_l1       holding 12..13         i32 CDAB"),
        "{csv_summary}"
    );
}

#[test]
fn import_csv_refuses_bad_rows_with_line_column_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("map.csv");
    std::fs::write(
        &csv,
        "Tag;Register;Format;Access\nflow;40001;REAL;R\npressure;40002;UINT16;R\nlevel;40010;quad;R\nvalve;40020;INT16;maybe\n",
    )
    .expect("write");
    let done = Ferrule::output(
        &[
            "import",
            "csv",
            csv.to_str().expect("utf-8"),
            "--profile",
            "p",
        ],
        WAIT,
    );
    assert_eq!(done.status.code(), Some(2), "{}", done.tail());
    let name = csv.display().to_string();
    let text = done.lines.join("\n");
    assert!(
        text.contains(&format!("{name}:4:13: type `quad`: expected a data type")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}:5:19: writable `maybe`: expected yes/no")),
        "{text}"
    );
    // Once the rows are fixed, the overlap is found as `check` would, at the CSV row.
    std::fs::write(
        &csv,
        "Tag;Register;Format;Access\nflow;40001;REAL;R\npressure;40002;UINT16;R\n",
    )
    .expect("write");
    let done = Ferrule::output(
        &[
            "import",
            "csv",
            csv.to_str().expect("utf-8"),
            "--profile",
            "p",
        ],
        WAIT,
    );
    assert_eq!(done.status.code(), Some(2), "{}", done.tail());
    assert!(
        done.lines.join("\n").contains(&format!(
            "{name}:3:10: holding 1 overlaps point `flow` (holding 0..1)"
        )),
        "{}",
        done.tail()
    );
}
