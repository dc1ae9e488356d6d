//! Decoding of scalar values: strings, numbers, durations, addresses, URLs and the enums of the
//! model, each with a message that quotes the bad value and says what is allowed.
//!
//! Invariant: every `decode` that returns `None` has recorded exactly one problem.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{expected, map, quote, Ctx, Decode};
use super::model::{
    DataType, Deadband, Durability, HostPort, ListenerProtocol, Parity, Qos, RegisterKind, Scheme,
    UplinkUrl, WordOrder, Writable,
};

/// The text of a string node.
pub(super) fn text<'v>(cx: &mut Ctx, node: &'v Value, what: &str) -> Option<&'v str> {
    let s = node.as_str();
    if s.is_none() {
        cx.error(expected(what, node));
    }
    s
}

/// An integer within `min..=max`.
pub(super) fn integer(cx: &mut Ctx, node: &Value, min: i64, max: i64) -> Option<i64> {
    let allowed = format!("an integer from {min} to {max}");
    let Value::Number(n) = node else {
        cx.error(expected(&allowed, node));
        return None;
    };
    if n.is_f64() {
        cx.error(expected(&allowed, node));
        return None;
    }
    match n.as_i64() {
        Some(i) if (min..=max).contains(&i) => Some(i),
        _ => {
            cx.error(format!("`{n}` is out of range; expected {allowed}"));
            None
        }
    }
}

/// A finite number (integer or not).
fn finite(cx: &mut Ctx, node: &Value) -> Option<f64> {
    match node {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                cx.error(format!("`{n}` is not a finite number"));
                None
            }
        },
        _ => {
            cx.error(expected("a number", node));
            None
        }
    }
}

/// One of a closed set of names, e.g. register kinds.
pub(super) fn one_of<T: Copy>(
    cx: &mut Ctx,
    node: &Value,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    ignore_case: bool,
) -> Option<T> {
    let names: Vec<&str> = all.iter().map(|t| name(*t)).collect();
    let s = text(cx, node, &format!("{what}: one of {}", names.join(", ")))?;
    let found = all.iter().copied().find(|t| {
        let n = name(*t);
        n == s || (ignore_case && n.eq_ignore_ascii_case(s))
    });
    if found.is_none() {
        cx.error(format!(
            "{} is not {what}; expected one of {}",
            quote(s),
            names.join(", ")
        ));
    }
    found
}

impl Decode for String {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        match node {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => {
                cx.error(format!(
                    "{}; quote it if you mean text",
                    expected("a string", node)
                ));
                None
            }
            _ => {
                cx.error(expected("a string", node));
                None
            }
        }
    }
}

impl Decode for bool {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let b = node.as_bool();
        if b.is_none() {
            cx.error(expected("`true` or `false`", node));
        }
        b
    }
}

impl Decode for u16 {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 0, i64::from(u16::MAX)).and_then(|i| u16::try_from(i).ok())
    }
}

/// A Modbus unit (slave) id, 0–247.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitId(pub u8);

impl Decode for UnitId {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 0, 247).and_then(|i| u8::try_from(i).ok().map(UnitId))
    }
}

/// Any finite number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finite(pub f64);

impl Decode for Finite {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        finite(cx, node).map(Finite)
    }
}

/// A finite, non-zero number (a scale factor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale(pub f64);

impl Decode for Scale {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let f = finite(cx, node)?;
        if f == 0.0 {
            cx.error("`0` is not a valid scale; expected a non-zero number");
            return None;
        }
        Some(Scale(f))
    }
}

/// An integer within `min..=max`, for the small bounded settings below.
macro_rules! bounded_integer {
    ($(#[$doc:meta])* $name:ident($t:ty), $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $t);

        impl Decode for $name {
            fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
                integer(cx, node, $min, $max).and_then(|i| <$t>::try_from(i).ok().map($name))
            }
        }
    };
}

bounded_integer!(
    /// `address_base`: 0 or 1.
    AddressBase(u8), 0, 1
);
bounded_integer!(
    /// `bit`: a bit of a 16-bit register, 0 (least significant) to 15.
    BitIndex(u8), 0, 15
);
bounded_integer!(
    /// `count`: elements of an array point (a coil table may have up to 2000).
    Count(u16), 1, 2000
);
bounded_integer!(
    /// `length`: registers of a string point (one read holds at most 125).
    Length(u16), 1, 125
);
bounded_integer!(
    /// `baud`: bits per second of a serial line.
    Baud(u32), 50, 4_000_000
);
bounded_integer!(
    /// `data_bits`: 7 or 8.
    DataBits(u8), 7, 8
);
bounded_integer!(
    /// `stop_bits`: 1 or 2.
    StopBits(u8), 1, 2
);
bounded_integer!(
    /// `modbus.max_connections_per_host`.
    ConnectionCap(u16), 1, 1024
);

impl Decode for Deadband {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        const ALLOWED: &str = "expected a number ≥ 0 or a percentage such as `2%`";
        match node {
            Value::String(s) => {
                let parsed = s
                    .trim_end()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|p| p.is_finite() && *p >= 0.0);
                if parsed.is_none() {
                    cx.error(format!("{} is not a deadband; {ALLOWED}", quote(s)));
                }
                parsed.map(Deadband::Percent)
            }
            Value::Number(_) => {
                let f = finite(cx, node)?;
                if f < 0.0 {
                    cx.error(format!("`{f}` is negative; {ALLOWED}"));
                    return None;
                }
                Some(Deadband::Absolute(f))
            }
            _ => {
                cx.error(expected("a number ≥ 0 or a percentage such as `2%`", node));
                None
            }
        }
    }
}

impl Decode for Parity {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(cx, node, "a parity", &Self::ALL, Self::as_str, true)
    }
}

impl Decode for Duration {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let parsed = match node {
            Value::String(s) => parse_duration(s),
            Value::Number(n) => Err(no_unit(&n.to_string())),
            _ => Err(expected("a duration such as `250ms`, `1s`, `2m`", node)),
        };
        parsed.map_err(|message| cx.error(message)).ok()
    }
}

fn no_unit(number: &str) -> String {
    format!("`{number}` has no unit; add one of ms, s, m, h (e.g. `{number}s`)")
}

/// Parses `250ms`, `1s`, `1.5s`, `2m`, `1h` exactly (no floating point); must be > 0.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{} is not a duration; expected a number and a unit (ms, s, m, h), \
             e.g. `250ms`, `1.5s`",
            quote(s)
        )
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" if !number.is_empty() => return Err(no_unit(number)),
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(fraction)
        || (number.contains('.') && fraction.is_empty())
        || whole.len() > 20
        || fraction.len() > 18
    {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let f: u128 = fraction.parse().map_err(|_| bad())?;
        f * unit_nanos / 10u128.pow(fraction.len() as u32)
    };
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(fraction_nanos))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("{} is too long", quote(s)))?;
    if nanos == 0 {
        return Err(format!(
            "{} is zero; expected a duration greater than 0",
            quote(s)
        ));
    }
    Ok(Duration::from_nanos(nanos))
}

/// A duration as written in messages (`250ms`, `1.5s`, `90s`).
pub fn show_duration(d: Duration) -> String {
    format!("{d:?}")
}

impl Decode for SocketAddr {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "an IP address and port such as `127.0.0.1:1883`")?;
        let parsed = s.parse().ok();
        if parsed.is_none() {
            cx.error(format!(
                "{} is not an IP address and port; expected e.g. `127.0.0.1:1883` or `[::]:1883`",
                quote(s)
            ));
        }
        parsed
    }
}

impl Decode for HostPort {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "`host:port` such as `192.168.1.10:502`")?;
        parse_host_port(s, None)
            .map_err(|why| {
                cx.error(format!(
                    "{} is not a valid `host:port`: {why}; \
                     expected e.g. `192.168.1.10:502` or `[fd00::5]:502`",
                    quote(s)
                ));
            })
            .ok()
    }
}

/// Parses `host:port`, `[v6]:port`, and (with a default port) `host` / `[v6]`.
pub fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<HostPort, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("`[` without a closing `]`")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{} is not an IPv6 address", quote(host)));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("expected `:port` after `]`")?,
                ),
            ),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("an IPv6 address must be in brackets".to_owned())
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || "/@?#[]\\".contains(c))
    {
        return Err(format!("{} is not a host name or IP address", quote(host)));
    }
    let port = match port {
        None => default_port.ok_or("the port is missing")?,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("{} is not a port (1 to 65535)", quote(p))),
        },
    };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

impl Decode for UplinkUrl {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "a URL such as `mqtts://broker.example.com`")?;
        parse_url(s).map_err(|message| cx.error(message)).ok()
    }
}

fn parse_url(s: &str) -> Result<UplinkUrl, String> {
    const ALLOWED: &str = "expected mqtt://host[:port] (default port 1883), \
                           mqtts://host[:port] (8883), ws://host[:port][/path] (80) \
                           or wss://host[:port][/path] (443)";
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "{} does not start with a supported scheme; {ALLOWED}",
            quote(s)
        ));
    };
    let scheme = match scheme {
        "mqtt" => Scheme::Mqtt,
        "mqtts" => Scheme::Mqtts,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        _ => {
            return Err(format!(
                "{} does not start with a supported scheme; {ALLOWED}",
                quote(s)
            ))
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) if scheme.websocket() => (&rest[..i], &rest[i..]),
        _ => (rest.strip_suffix('/').unwrap_or(rest), ""),
    };
    let hp = parse_host_port(authority, Some(scheme.default_port()))
        .map_err(|why| format!("{} is not a valid URL: {why}; {ALLOWED}", quote(s)))?;
    if path.contains(|c: char| c.is_whitespace() || c == '#') {
        return Err(format!(
            "{} is not a valid URL: the path must not contain spaces or `#`; {ALLOWED}",
            quote(s)
        ));
    }
    let path = match path {
        "" if scheme.websocket() => "/mqtt".to_owned(),
        p => p.to_owned(),
    };
    Ok(UplinkUrl {
        scheme,
        host: hp.host,
        port: hp.port,
        path,
    })
}

impl Decode for RegisterKind {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(cx, node, "a register kind", &Self::ALL, Self::as_str, false)
    }
}

impl Decode for DataType {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(cx, node, "a data type", &Self::ALL, Self::as_str, false)
    }
}

impl Decode for WordOrder {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        // The 8-byte spellings (`GHEFCDAB`) name the same four orders.
        if let Some(order) = node.as_str().and_then(|s| {
            Self::ALL
                .into_iter()
                .find(|o| o.as_str8().eq_ignore_ascii_case(s))
        }) {
            return Some(order);
        }
        one_of(cx, node, "a byte order", &Self::ALL, Self::as_str, true)
    }
}

impl Decode for Durability {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        fn name(d: Durability) -> &'static str {
            match d {
                Durability::Full => "full",
                Durability::Normal => "normal",
            }
        }
        one_of(
            cx,
            node,
            "a durability",
            &[Durability::Full, Durability::Normal],
            name,
            false,
        )
    }
}

impl Decode for Qos {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let qos = match node {
            Value::Number(n) => n
                .as_u64()
                .and_then(|l| u8::try_from(l).ok())
                .and_then(Qos::from_level),
            _ => None,
        };
        if qos.is_none() {
            match node {
                Value::Number(n) => {
                    cx.error(format!("`{n}` is not a QoS level; expected 0, 1 or 2"))
                }
                _ => cx.error(expected("a QoS level: 0, 1 or 2", node)),
            }
        }
        qos
    }
}

impl Decode for Writable {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        match node {
            Value::Bool(false) => Some(Writable::No),
            Value::Bool(true) => Some(Writable::Yes {
                min: None,
                max: None,
            }),
            Value::Mapping(_) => {
                let m = map(cx, node, &["min", "max"])?;
                let min = m.optional::<Finite>(cx, "min");
                let max = m.optional::<Finite>(cx, "max");
                let (min, max) = (min?.map(|f| f.0), max?.map(|f| f.0));
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        cx.error(format!("min {lo} is greater than max {hi}"));
                        return None;
                    }
                }
                Some(Writable::Yes { min, max })
            }
            _ => {
                cx.error(expected("`true`, `false` or a range `{min, max}`", node));
                None
            }
        }
    }
}

impl Decode for PathBuf {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let s = text(cx, node, "a file path")?;
        if s.is_empty() {
            cx.error("the path is empty; expected a file path");
            return None;
        }
        Some(PathBuf::from(s))
    }
}

impl Decode for ListenerProtocol {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        one_of(
            cx,
            node,
            "a listener protocol",
            &Self::ALL,
            Self::as_str,
            true,
        )
    }
}

/// Largest MQTT packet size accepted: 64 bytes to 268435455 (the protocol's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSize(pub u32);

impl Decode for PacketSize {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 64, 268_435_455).and_then(|i| u32::try_from(i).ok().map(PacketSize))
    }
}

/// A count limit (clients, queued messages): 1 to 10,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub u32);

impl Decode for Limit {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 1, 10_000_000).and_then(|i| u32::try_from(i).ok().map(Limit))
    }
}

/// An MQTT in-flight window: 1 to 65535 messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub u16);

impl Decode for Window {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        integer(cx, node, 1, 65_535).and_then(|i| u16::try_from(i).ok().map(Window))
    }
}

/// A period that can be switched off: a duration, or `off` / `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Option<Duration>);

impl Decode for Period {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        match node {
            Value::Bool(false) => Some(Period(None)),
            Value::String(s) if s == "off" => Some(Period(None)),
            Value::String(s) => parse_duration(s)
                .map_err(|message| cx.error(format!("{message}, or `off`")))
                .ok()
                .map(|d| Period(Some(d))),
            Value::Number(n) => {
                cx.error(no_unit(&n.to_string()));
                None
            }
            _ => {
                cx.error(expected("a duration such as `10s`, or `off`", node));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T: Decode>(yaml: &str) -> Result<T, String> {
        let node: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut cx = Ctx::default();
        let value = T::decode(&mut cx, &node);
        let problems = cx.into_problems();
        match (value, problems.as_slice()) {
            (Some(v), []) => Ok(v),
            (None, [p]) => Err(p.message.clone()),
            _ => panic!("{yaml}: a value and problems {problems:?}"),
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0.001ms", Duration::from_nanos(1000)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for (text, fragment) in [
            ("0s", "is zero"),
            ("0.0ms", "is zero"),
            ("5", "has no unit"),
            ("1.5", "has no unit"),
            ("1sec", "is not a duration"),
            ("-1s", "is not a duration"),
            (".5s", "is not a duration"),
            ("5.s", "is not a duration"),
            ("1.2.3s", "is not a duration"),
            ("s", "is not a duration"),
            ("", "is not a duration"),
            (" 1s", "is not a duration"),
            ("99999999999999999999h", "is too long"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
        }
        assert!(decode::<Duration>("5")
            .expect_err("number")
            .contains("`5` has no unit"));
        assert!(decode::<Duration>("[1]")
            .expect_err("list")
            .contains("found a list"));
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn host_ports() {
        let hp = |host: &str, port| HostPort {
            host: host.into(),
            port,
        };
        assert_eq!(parse_host_port("plc-1:502", None), Ok(hp("plc-1", 502)));
        assert_eq!(
            parse_host_port("10.0.0.1:65535", None),
            Ok(hp("10.0.0.1", 65535))
        );
        assert_eq!(
            parse_host_port("[fe80::1]:502", None),
            Ok(hp("fe80::1", 502))
        );
        assert_eq!(
            parse_host_port("broker", Some(1883)),
            Ok(hp("broker", 1883))
        );
        assert_eq!(parse_host_port("[::1]", Some(8883)), Ok(hp("::1", 8883)));
        for (text, fragment) in [
            ("plc", "port is missing"),
            ("plc:0", "is not a port"),
            ("plc:65536", "is not a port"),
            ("plc:x", "is not a port"),
            (":502", "host is empty"),
            ("fe80::1:502", "must be in brackets"),
            ("[fe80::1:502", "without a closing"),
            ("[nope]:502", "is not an IPv6 address"),
            ("[::1]502", "expected `:port`"),
            ("a b:502", "is not a host name"),
            ("user@h:502", "is not a host name"),
        ] {
            let err = parse_host_port(text, None).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
        }
    }

    #[test]
    fn urls() {
        let url = parse_url("mqtts://cloud.example.com/").expect("url");
        assert_eq!(
            (url.tls(), url.host.as_str(), url.port),
            (true, "cloud.example.com", 8883)
        );
        assert_eq!(parse_url("mqtt://h:1").expect("url").port, 1);
        let ws = parse_url("ws://h").expect("url");
        assert_eq!(
            (ws.scheme, ws.port, ws.path.as_str()),
            (Scheme::Ws, 80, "/mqtt")
        );
        assert_eq!(ws.to_string(), "ws://h:80/mqtt");
        let wss = parse_url("wss://h:8443/ws/mqtt").expect("url");
        assert_eq!(
            (wss.tls(), wss.port, wss.path.as_str()),
            (true, 8443, "/ws/mqtt")
        );
        for (text, fragment) in [
            ("tcp://h", "supported scheme"),
            ("h:1883", "supported scheme"),
            ("MQTT://h", "supported scheme"),
            ("mqtt://", "host is empty"),
            ("mqtt://h/topic", "is not a host name"),
            ("mqtt://u@h", "is not a host name"),
        ] {
            let err = parse_url(text).expect_err(text);
            assert!(err.contains(fragment), "{text}: {err}");
            assert!(err.contains("mqtts://host[:port]"), "{text}: {err}");
        }
    }

    #[test]
    fn scalars_refuse_wrong_types_and_ranges() {
        assert_eq!(decode::<u16>("65535"), Ok(65535));
        assert!(decode::<u16>("-1")
            .expect_err("neg")
            .contains("out of range"));
        assert!(decode::<u16>("1.5")
            .expect_err("float")
            .contains("found the number `1.5`"));
        assert_eq!(decode::<UnitId>("247"), Ok(UnitId(247)));
        assert!(decode::<UnitId>("248")
            .expect_err("unit")
            .contains("from 0 to 247"));
        assert_eq!(decode::<String>("abc"), Ok("abc".to_owned()));
        assert!(decode::<String>("42")
            .expect_err("num")
            .contains("quote it"));
        assert!(decode::<bool>("yes")
            .expect_err("yes")
            .contains("expected `true` or `false`"));
        assert_eq!(decode::<WordOrder>("dcba"), Ok(WordOrder::Dcba));
        assert!(decode::<RegisterKind>("Holding").is_err());
        assert_eq!(decode::<Qos>("0"), Ok(Qos::AtMostOnce));
        assert!(decode::<Qos>("\"1\"")
            .expect_err("str")
            .contains("expected a QoS level"));
        assert_eq!(decode::<Durability>("normal"), Ok(Durability::Normal));
        assert!(decode::<Finite>(".nan")
            .expect_err("nan")
            .contains("not a finite number"));
        assert!(decode::<Scale>("0.0")
            .expect_err("zero")
            .contains("non-zero"));
        assert!(decode::<Deadband>("-0.5")
            .expect_err("neg")
            .contains("`-0.5` is negative"));
        assert_eq!(decode::<Deadband>("2%"), Ok(Deadband::Percent(2.0)));
        assert_eq!(decode::<Deadband>("0.5"), Ok(Deadband::Absolute(0.5)));
        assert!(decode::<Deadband>("\"-2%\"")
            .expect_err("neg")
            .contains("is not a deadband"));
        assert!(decode::<Deadband>("lots")
            .expect_err("word")
            .contains("a percentage such as `2%`"));
        assert_eq!(decode::<WordOrder>("GHEFCDAB"), Ok(WordOrder::Cdab));
        assert_eq!(decode::<WordOrder>("hgfedcba"), Ok(WordOrder::Dcba));
        assert_eq!(decode::<Parity>("Even"), Ok(Parity::Even));
        assert!(decode::<BitIndex>("16")
            .expect_err("bit")
            .contains("from 0 to 15"));

        assert!(decode::<PathBuf>("\"\"")
            .expect_err("empty")
            .contains("path is empty"));
        assert!(decode::<SocketAddr>("\"[::]:0\"").is_ok());
        assert!(decode::<Writable>("1")
            .expect_err("num")
            .contains("`{min, max}`"));
        assert_eq!(
            decode::<Writable>("{min: 1}"),
            Ok(Writable::Yes {
                min: Some(1.0),
                max: None
            })
        );
    }
}
