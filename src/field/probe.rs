//! `ferrule probe`: reads raw registers (or bits) from a device and shows every way to read them
//! — u16/i16, u32/i32/f32 and u64/i64/f64 in all four orders, text in both byte orders — so a
//! user can find the `type` and `order` of an undocumented device.
//!
//! Parsing the target and rendering are pure; [`read`] does the one request. Every failure is
//! one line ([`ProbeError`]'s `Display`) naming the target, the unit and the range.

use std::fmt::Write as _;
use std::time::Duration;

use super::codec::{self, Raw};
use super::link::{Exception, Link, LinkError, ReadData};
use crate::config::{
    self, Bus, DataType, HostPort, Parity, RegisterKind, WordOrder, DEFAULT_BAUD,
    DEFAULT_DATA_BITS, DEFAULT_PARITY, DEFAULT_STOP_BITS,
};

/// Port of a `tcp://` target without one.
const MODBUS_TCP_PORT: u16 = 502;

/// Where to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(HostPort),
    Rtu(Bus),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Rtu(bus) => write!(
                f,
                "rtu://{} ({} baud, {}{}{})",
                bus.port,
                bus.baud,
                bus.data_bits,
                bus.parity
                    .as_str()
                    .chars()
                    .next()
                    .unwrap_or('n')
                    .to_ascii_uppercase(),
                bus.stop_bits
            ),
        }
    }
}

/// Parses `tcp://HOST[:PORT]` (port 502 by default) or
/// `rtu:///dev/ttyUSB0[?baud=9600&parity=none&data_bits=8&stop_bits=1]` (defaults: 19200 8E1).
pub fn parse_target(s: &str) -> Result<Target, String> {
    const ALLOWED: &str = "expected tcp://HOST[:PORT] or rtu:///dev/ttyUSB0?baud=9600";
    if let Some(rest) = s.strip_prefix("tcp://") {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        return config::parse_host_port(rest, Some(MODBUS_TCP_PORT))
            .map(Target::Tcp)
            .map_err(|why| format!("`{s}` is not a valid target: {why}; {ALLOWED}"));
    }
    let Some(rest) = s.strip_prefix("rtu://") else {
        return Err(format!("`{s}` is not a valid target; {ALLOWED}"));
    };
    let (port, query) = rest.split_once('?').unwrap_or((rest, ""));
    if port.is_empty() {
        return Err(format!("`{s}` names no serial port; {ALLOWED}"));
    }
    let mut bus = Bus {
        name: "probe".into(),
        port: port.to_owned(),
        baud: DEFAULT_BAUD,
        parity: DEFAULT_PARITY,
        data_bits: DEFAULT_DATA_BITS,
        stop_bits: DEFAULT_STOP_BITS,
        inter_frame_delay: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = || format!("`{value}` is not a valid {key} in `{s}`");
        match key {
            "baud" => bus.baud = value.parse().ok().filter(|b| *b > 0).ok_or_else(bad)?,
            "parity" => {
                bus.parity = match value.to_ascii_lowercase().as_str() {
                    "none" | "n" => Parity::None,
                    "even" | "e" => Parity::Even,
                    "odd" | "o" => Parity::Odd,
                    _ => return Err(format!("{}; expected none, even or odd", bad())),
                }
            }
            "data_bits" => {
                bus.data_bits = value
                    .parse()
                    .ok()
                    .filter(|b| *b == 7 || *b == 8)
                    .ok_or_else(bad)?
            }
            "stop_bits" => {
                bus.stop_bits = value
                    .parse()
                    .ok()
                    .filter(|b| *b == 1 || *b == 2)
                    .ok_or_else(bad)?
            }
            _ => {
                return Err(format!(
                    "unknown setting `{key}` in `{s}`; expected baud, parity, data_bits, stop_bits"
                ))
            }
        }
    }
    Ok(Target::Rtu(bus))
}

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub unit: u8,
    pub kind: RegisterKind,
    pub address: u16,
    pub count: u16,
    pub timeout: Duration,
}

impl Request {
    /// `holding 100..103` or `coil 7`.
    fn range(&self) -> String {
        if self.count == 1 {
            format!("{} {}", self.kind, self.address)
        } else {
            let last = u32::from(self.address) + u32::from(self.count) - 1;
            format!("{} {}..{last}", self.kind, self.address)
        }
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{target}: {source}")]
    Link {
        target: String,
        #[source]
        source: LinkError,
    },
    #[error("{target}: unit {unit} refused the read of {range}: {exception}")]
    Refused {
        target: String,
        unit: u8,
        range: String,
        exception: Exception,
    },
    #[error("{target}: unit {unit} did not answer the read of {range} within {timeout:?}")]
    NoAnswer {
        target: String,
        unit: u8,
        range: String,
        timeout: Duration,
    },
}

/// Connects (or opens the port), reads once, closes.
pub async fn read(target: &Target, req: &Request) -> Result<ReadData, ProbeError> {
    let link_error = |source| ProbeError::Link {
        target: target.to_string(),
        source,
    };
    let mut link = match target {
        Target::Tcp(addr) => Link::connect_tcp(addr, req.timeout).await,
        Target::Rtu(bus) => Link::open_serial(bus),
    }
    .map_err(link_error)?;
    let answer = link
        .read(req.unit, req.kind, req.address, req.count, req.timeout)
        .await;
    link.close(req.timeout).await;
    match answer {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(exception)) => Err(ProbeError::Refused {
            target: target.to_string(),
            unit: req.unit,
            range: req.range(),
            exception,
        }),
        Err(LinkError::Timeout(timeout)) => Err(ProbeError::NoAnswer {
            target: target.to_string(),
            unit: req.unit,
            range: req.range(),
            timeout,
        }),
        Err(e) => Err(link_error(e)),
    }
}

/// The report for `data` read by `req` from `target`.
pub fn render(target: &Target, req: &Request, data: &ReadData) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} of unit {} at {target}", req.range(), req.unit);
    match data {
        ReadData::Bits(bits) => {
            let _ = writeln!(out, "\naddress  value");
            for (a, bit) in (req.address..).zip(bits) {
                let _ = writeln!(out, "{a:>7}  {}", u8::from(*bit));
            }
        }
        ReadData::Words(words) => render_words(&mut out, req.address, words),
    }
    out
}

fn render_words(out: &mut String, start: u16, words: &[u16]) {
    let _ = writeln!(
        out,
        "\naddress     hex    u16     i16  bits 15..0           ascii"
    );
    for (a, w) in (start..).zip(words) {
        let [hi, lo] = w.to_be_bytes();
        let _ = writeln!(
            out,
            "{a:>7}  0x{w:04X}  {w:>5}  {:>6}  {:04b} {:04b} {:04b} {:04b}  \"{}{}\"",
            i16::from_be_bytes([hi, lo]),
            hi >> 4,
            hi & 0xF,
            lo >> 4,
            lo & 0xF,
            printable(hi),
            printable(lo)
        );
    }
    if words.len() >= 2 {
        let _ = writeln!(out, "\n32-bit values, from registers a and a+1");
        let _ = writeln!(out, "address  order           u32          i32  f32");
        for (k, pair) in words.windows(2).enumerate() {
            for (j, order) in WordOrder::ALL.into_iter().enumerate() {
                let a = label(start, k, j);
                let _ = writeln!(
                    out,
                    "{a:>7}  {order}   {:>11}  {:>11}  {}",
                    show(DataType::U32, order, pair),
                    show(DataType::I32, order, pair),
                    show(DataType::F32, order, pair),
                );
            }
        }
    }
    if words.len() >= 4 {
        let _ = writeln!(out, "\n64-bit values, from registers a to a+3 (order {{ABCD, CDAB, BADC, DCBA}} = {{ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA}})");
        let _ = writeln!(
            out,
            "address  order                    u64                   i64  f64"
        );
        for (k, quad) in words.windows(4).enumerate() {
            for (j, order) in WordOrder::ALL.into_iter().enumerate() {
                let a = label(start, k, j);
                let _ = writeln!(
                    out,
                    "{a:>7}  {order}   {:>20}  {:>20}  {}",
                    show(DataType::U64, order, quad),
                    show(DataType::I64, order, quad),
                    show(DataType::F64, order, quad),
                );
            }
        }
    }
    let text = |swapped: bool| -> String {
        words
            .iter()
            .flat_map(|w| {
                let [hi, lo] = w.to_be_bytes();
                if swapped {
                    [lo, hi]
                } else {
                    [hi, lo]
                }
            })
            .map(printable)
            .collect()
    };
    let _ = writeln!(
        out,
        "\ntext ABCD (first character in the high byte): \"{}\"",
        text(false)
    );
    let _ = writeln!(
        out,
        "text BADC (first character in the low byte):  \"{}\"",
        text(true)
    );
}

/// The address column: shown on the first row of each group of four orders only.
fn label(start: u16, k: usize, order_index: usize) -> String {
    if order_index == 0 {
        (u32::from(start) + k as u32).to_string()
    } else {
        String::new()
    }
}

/// One interpretation, as text.
fn show(data_type: DataType, order: WordOrder, words: &[u16]) -> String {
    match codec::words_to_raw(data_type, order, words) {
        Ok(Raw::F32(f)) => float(f64::from(f), f.to_string()),
        Ok(Raw::F64(f)) => float(f, f.to_string()),
        Ok(Raw::U32(v)) => v.to_string(),
        Ok(Raw::I32(v)) => v.to_string(),
        Ok(Raw::U64(v)) => v.to_string(),
        Ok(Raw::I64(v)) => v.to_string(),
        Ok(other) => format!("{other:?}"),
        Err(e) => e.to_string(),
    }
}

/// A float readably: plainly when moderate, in exponent form when huge or tiny.
fn float(x: f64, plain: String) -> String {
    if x == 0.0 || !x.is_finite() || (1e-4..1e9).contains(&x.abs()) {
        plain
    } else {
        format!("{x:e}")
    }
}

fn printable(b: u8) -> char {
    if (0x20..0x7F).contains(&b) {
        char::from(b)
    } else {
        '.'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("tcp://10.0.0.5"),
            Ok(Target::Tcp(HostPort {
                host: "10.0.0.5".into(),
                port: 502
            }))
        );
        assert_eq!(
            parse_target("tcp://[::1]:1502").map(|t| t.to_string()),
            Ok("tcp://[::1]:1502".into())
        );
        let Ok(Target::Rtu(bus)) =
            parse_target("rtu:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=2")
        else {
            panic!("an rtu target");
        };
        assert_eq!(
            (
                bus.port.as_str(),
                bus.baud,
                bus.parity,
                bus.data_bits,
                bus.stop_bits
            ),
            ("/dev/ttyUSB0", 9600, Parity::None, 8, 2)
        );
        assert_eq!(
            parse_target("rtu:///dev/ttyS1").map(|t| t.to_string()),
            Ok("rtu:///dev/ttyS1 (19200 baud, 8E1)".into())
        );
        for (bad, fragment) in [
            ("http://x", "not a valid target"),
            ("tcp://", "host is empty"),
            ("tcp://h:0", "is not a port"),
            ("rtu://", "names no serial port"),
            ("rtu:///dev/x?baud=fast", "not a valid baud"),
            ("rtu:///dev/x?parity=mark", "expected none, even or odd"),
            ("rtu:///dev/x?speed=1", "unknown setting `speed`"),
        ] {
            let err = parse_target(bad).expect_err(bad);
            assert!(err.contains(fragment), "{bad}: {err}");
        }
    }

    #[test]
    fn every_interpretation_is_shown() {
        let target = parse_target("tcp://127.0.0.1:1502").expect("target");
        let req = Request {
            unit: 1,
            kind: RegisterKind::Holding,
            address: 100,
            count: 4,
            timeout: Duration::from_secs(1),
        };
        // f32 21.5 in CDAB at 100-101, then "AB" "CD"
        let text = render(
            &target,
            &req,
            &ReadData::Words(vec![0x0000, 0x41AC, 0x4142, 0x4344]),
        );
        assert!(
            text.starts_with("holding 100..103 of unit 1 at tcp://127.0.0.1:1502"),
            "{text}"
        );
        assert!(
            text.contains("    101  0x41AC  16812   16812  0100 0001 1010 1100  \"A.\""),
            "{text}"
        );
        assert!(text.contains("    102  0x4142  16706   16706"), "{text}");
        // 100..101 read CDAB is 21.5
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("CDAB")).collect();
        assert!(rows.iter().any(|r| r.ends_with("  21.5")), "{rows:?}");
        assert!(text.contains("64-bit values"), "{text}");
        assert!(
            text.contains("text ABCD (first character in the high byte): \"..A.ABCD\""),
            "{text}"
        );
        assert!(
            text.contains("text BADC (first character in the low byte):  \"...ABADC\""),
            "{text}"
        );
        // four orders for each of the three 32-bit windows, four for the one 64-bit window
        assert_eq!(text.lines().filter(|l| l.contains(" DCBA ")).count(), 4);
        let bits = render(
            &target,
            &Request {
                kind: RegisterKind::Coil,
                count: 2,
                ..req
            },
            &ReadData::Bits(vec![true, false]),
        );
        assert!(bits.contains("    100  1\n    101  0"), "{bits}");
    }

    #[test]
    fn floats_are_readable() {
        assert_eq!(float(21.5, "21.5".into()), "21.5");
        assert_eq!(
            float(1e30, "1000000000000000000000000000000".into()),
            "1e30"
        );
        assert_eq!(
            float(
                2.3e-41,
                "0.0000000000000000000000000000000000000000235".into()
            ),
            "2.3e-41"
        );
    }
}
