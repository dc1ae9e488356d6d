//! `ferrule probe` against a real device (pymodbus over TCP and over an RTU pty pair), its
//! one-line errors, and the field part of `ferrule check`'s summary.

mod common;

use std::time::Duration;

use common::process::Finished;
use common::{Ferrule, ModbusDevice, Table};

const WAIT: Duration = Duration::from_secs(20);

fn probe(args: &[&str]) -> Finished {
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    Ferrule::output(&all, WAIT)
}

/// The lines a finished command printed on stderr-or-stdout that are not log lines.
fn text(out: &Finished) -> String {
    out.lines.join("\n")
}

#[test]
fn probe_shows_every_interpretation_of_holding_registers() {
    let device = ModbusDevice::start(&[1, 7]);
    // 100-101: f32 21.5 in CDAB; 102-103: "ABCD"
    device.set_holding(7, 100, &[0x0000, 0x41AC, 0x4142, 0x4344]);
    let target = format!("tcp://{}", device.addr());
    let out = probe(&[&target, "--unit", "7", "--holding", "100", "--count", "4"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = out.stdout.join("\n");
    assert!(
        stdout.starts_with(&format!("holding 100..103 of unit 7 at {target}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("    101  0x41AC  16812   16812  0100 0001 1010 1100  \"A.\""),
        "{stdout}"
    );
    let cdab_100: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("    100  ABCD"))
        .take(4)
        .collect();
    assert!(
        cdab_100[1].contains("CDAB") && cdab_100[1].ends_with("  21.5"),
        "{cdab_100:?}"
    );
    assert!(stdout.contains("64-bit values"), "{stdout}");
    assert!(
        stdout.contains("text ABCD (first character in the high byte): \"..A.ABCD\""),
        "{stdout}"
    );
    let reads = device.reads();
    assert_eq!(reads.len(), 1, "one read: {reads:?}");
    assert_eq!(
        (reads[0].fc, reads[0].unit, reads[0].addr, reads[0].count),
        (3, 7, 100, 4)
    );
}

#[test]
fn probe_reads_inputs_and_coils_over_an_rtu_line() {
    let device = ModbusDevice::start_rtu(&[3], 19200);
    device.set_input(3, 10, &[0xFFFF, 0x0002]);
    device.set_coils(3, 4, &[true, false, true]);
    let target = format!(
        "rtu://{}?baud=19200&parity=none",
        device.serial_path().display()
    );
    let out = probe(&[&target, "--unit", "3", "--input", "10", "--count", "2"]);
    let stdout = out.stdout.join("\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("input 10..11 of unit 3 at rtu://"),
        "{stdout}"
    );
    assert!(
        stdout.contains("     10  0xFFFF  65535      -1"),
        "{stdout}"
    );
    // ABCD: 0xFFFF0002 = -65534 as i32
    assert!(stdout.contains("-65534"), "{stdout}");
    let out = probe(&[&target, "--unit", "3", "--coils", "4", "--count", "3"]);
    let stdout = out.stdout.join("\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("      4  1\n      5  0\n      6  1"),
        "{stdout}"
    );
}

#[test]
fn probe_failures_are_one_line_and_exit_non_zero() {
    let device = ModbusDevice::start(&[1, 2]);
    let target = format!("tcp://{}", device.addr());
    device.exception(1, Table::Holding, 50, 1, 2);
    device.mute(2);
    // (args, exit code, fragment of the one error line)
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let closed_target = format!("tcp://127.0.0.1:{closed}");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec![&target, "--unit", "1", "--holding", "48", "--count", "4"],
            1,
            format!("error: {target}: unit 1 refused the read of holding 48..51: exception 0x02 (illegal data address)"),
        ),
        (
            vec![&target, "--unit", "2", "--input", "0", "--timeout", "300ms"],
            1,
            format!("error: {target}: unit 2 did not answer the read of input 0..3 within 300ms"),
        ),
        (
            vec![&closed_target, "--holding", "0"],
            1,
            format!("error: {closed_target}: cannot connect to 127.0.0.1:{closed}"),
        ),
        (
            vec!["rtu:///nonexistent/ttyUSB9", "--coils", "0"],
            1,
            "error: rtu:///nonexistent/ttyUSB9 (19200 baud, 8E1): cannot open serial port /nonexistent/ttyUSB9".into(),
        ),
        (
            vec!["udp://x", "--holding", "0"],
            2,
            "error: `udp://x` is not a valid target".into(),
        ),
        (
            vec![&target, "--holding", "0", "--count", "126"],
            2,
            "error: --count 126 is out of range; one read fetches 1 to 125 registers".into(),
        ),
        (
            vec![&target, "--holding", "65535", "--count", "2"],
            2,
            "error: --count 2 from address 65535 passes the end of the address space".into(),
        ),
    ];
    for (args, code, fragment) in cases {
        let out = probe(&args);
        let lines: Vec<&String> = out.lines.iter().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {lines:?}");
        assert!(lines[0].starts_with(&fragment), "{args:?}: {}", lines[0]);
    }
    // No table: clap's usage error, exit 2.
    let out = probe(&[&target]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn check_shows_normalised_addresses_requests_and_bus_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = r#"site: plant
buses:
  - {name: slow, port: /dev/ttyUSB0, baud: 1200}
  - {name: spare, port: /dev/ttyUSB1}
devices:
  - name: boiler
    tcp: "10.0.0.5:502"
    points:
      - {name: temp, address: 40101, type: f32, order: CDAB}
      - {name: count, address: 400103, type: u64}
      - {name: run, kind: coil, address: 1}
    groups:
      - poll: 100ms
        points:
          - {name: flow, address: 30001}
  - name: meter
    bus: slow
    unit: 3
    address_base: 1
    poll: 200ms
    points:
      - {name: volts, kind: input, address: 1, count: 40}
      - {name: alarm, kind: input, address: 41, bit: 3}
"#;
    let path = Ferrule::write_config(dir.path(), yaml);
    let out = Ferrule::output(&["check", path.to_str().expect("UTF-8")], WAIT);
    let stdout = out.stdout.join("\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail check: {}",
        text(&out)
    );
    for fragment in [
        "2 device(s), 6 point(s), 4 Modbus request(s) per poll cycle",
        "boiler           tcp 10.0.0.5:502 unit 1 poll 1s: 4 point(s), 3 request(s) per cycle (1 every 100ms, 2 every 1s)",
        "temp             holding 100..101       f32 CDAB  (written 40101)",
        "count            holding 102..105       u64 ABCDEFGH  (written 400103)",
        "flow             input 0                u16  (written 30001)  poll 100ms",
        "meter            bus slow unit 3 poll 200ms: 2 point(s), 1 request(s) per cycle",
        "volts            input 0..39            u16[40]  (written 1)",
        "alarm            input 40 bit 3         bool  (written 41)",
        "bus slow (/dev/ttyUSB0, 1200 baud 8E1): 1 device(s), polling needs",
        "warning: bus `slow` cannot keep up",
        "warning: bus `spare` is not used by any device",
    ] {
        assert!(stdout.contains(fragment), "no {fragment:?} in:\n{stdout}");
    }
}
