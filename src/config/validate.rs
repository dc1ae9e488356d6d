//! The rules that a well-typed config must still follow: names are topic levels and unique,
//! registers of one device do not overlap and fit the address space, read-only tables are not
//! writable, timings and uplink settings are in range.
//!
//! Each rule runs as soon as what it looks at has decoded (`schema.rs` calls it with the context
//! positioned at the right node); an item that failed to decode is passed as `None` and skipped,
//! so a typo is reported once and never causes a second, spurious error. Rules only record
//! problems; they never change the model.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::decode::{quote, render, Ctx, Seg};
use super::model::{DataType, HostPort, Listener, Point, WordOrder};
use super::scalar::{show_duration, UnitId};
use crate::topics;

/// Registers one read may fetch (FC03/FC04); a point must fit in one read.
const MAX_READ_REGISTERS: u32 = 125;
/// Bits one read may fetch (FC01/FC02).
const MAX_READ_BITS: u32 = 2000;
/// Longest inter-frame delay accepted.
const MAX_FRAME_DELAY: Duration = Duration::from_secs(1);

/// Shortest poll interval accepted.
const MIN_POLL: Duration = Duration::from_millis(10);
/// Longest request timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// MQTT keepalive is a 16-bit number of seconds; 0 (off) is refused.
const MIN_KEEPALIVE: Duration = Duration::from_secs(1);
const MAX_KEEPALIVE: Duration = Duration::from_secs(65_535);

/// The node at the context is the name of a `what` (site, device, point): a topic level.
pub fn level(cx: &mut Ctx, what: &str, name: &str) {
    if let Err(why) = topics::check_level(name) {
        cx.error(format!(
            "{} is not a valid {what} name: it {why}",
            quote(name)
        ));
    }
}

/// The context is at a list (`devices`, `points`) whose items have these names (`None` when the
/// name failed to decode); a repeated name is reported on the later item.
pub fn unique_names(cx: &mut Ctx, what: &str, list: &str, names: &[Option<&str>]) {
    for (j, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        if let Some(i) = names[..j].iter().position(|n| n == &Some(*name)) {
            cx.at_index(j, |cx| {
                cx.at_key("name", |cx| {
                    cx.error(format!(
                        "duplicate {what} name {}; already used by {list}[{i}]",
                        quote(name)
                    ));
                });
            });
        }
    }
}

/// A point of a device and where it is, relative to the device: `points[3]` or
/// `groups[1].points[0]`.
#[derive(Debug)]
pub struct PointAt<'a> {
    pub path: &'a [Seg],
    /// `None` when the name failed to decode.
    pub name: Option<&'a str>,
    /// `None` when the point failed to decode.
    pub point: Option<&'a Point>,
}

/// Runs `f` with `path` appended to the current path.
fn at_path<R>(cx: &mut Ctx, path: &[Seg], f: impl FnOnce(&mut Ctx) -> R) -> R {
    match path.split_first() {
        None => f(cx),
        Some((Seg::Key(k), rest)) => cx.at_key(k, |cx| at_path(cx, rest, f)),
        Some((Seg::Index(i), rest)) => cx.at_index(*i, |cx| at_path(cx, rest, f)),
    }
}

/// The context is at a device: checks each of its points (in `points` and `groups`), that
/// their names are unique, and that they do not overlap.
pub fn points(cx: &mut Ctx, points: &[PointAt<'_>]) {
    for (j, at) in points.iter().enumerate() {
        if let Some(name) = at.name {
            if let Some(first) = points[..j].iter().find(|p| p.name == Some(name)) {
                at_path(cx, at.path, |cx| {
                    cx.at_key("name", |cx| {
                        cx.error(format!(
                            "duplicate point name {}; already used by {}",
                            quote(name),
                            render(first.path)
                        ));
                    });
                });
            }
        }
        let Some(point) = at.point else { continue };
        at_path(cx, at.path, |cx| single_point(cx, point));
        let earlier = points[..j]
            .iter()
            .filter_map(|p| p.point)
            .find(|q| overlaps(q, point));
        if let Some(q) = earlier {
            at_path(cx, at.path, |cx| {
                cx.at_key("address", |cx| {
                    cx.error(format!(
                        "{} overlaps point {} ({})",
                        span(point),
                        quote(&q.name),
                        span(q)
                    ));
                });
            });
        }
    }
}

/// Two points overlap when they share a register or bit, except that a single-bit point may
/// share its register with other single-bit points (of other bits) and with one-register
/// points (`u16`, `bits`...) of exactly that register. (Never with a point wider than the
/// register: the planner's optimality rests on spans being disjoint or equal.)
/// Whether two points of one device read a register (or bit) in common.
pub fn overlaps(a: &Point, b: &Point) -> bool {
    let shared =
        a.kind == b.kind && u32::from(a.address) < b.end() && u32::from(b.address) < a.end();
    let one_register = |p: &Point| p.end() - u32::from(p.address) == 1;
    match (a.bit, b.bit) {
        (Some(x), Some(y)) => shared && x == y,
        (Some(_), None) => shared && !one_register(b),
        (None, Some(_)) => shared && !one_register(a),
        (None, None) => shared,
    }
}

/// `holding 100..101` (inclusive), `coil 5` or `holding 7 bit 3`.
/// `holding 100..101`, `coil 3`, `holding 4 bit 3`.
pub fn span(p: &Point) -> String {
    if let Some(bit) = p.bit {
        format!("{} {} bit {bit}", p.kind, p.address)
    } else if p.end() - u32::from(p.address) == 1 {
        format!("{} {}", p.kind, p.address)
    } else {
        format!("{} {}..{}", p.kind, p.address, p.end() - 1)
    }
}

/// The context is at one point.
fn single_point(cx: &mut Ctx, p: &Point) {
    let width = p.end() - u32::from(p.address);
    if p.end() > 65_536 {
        let unit = if p.kind.is_bit() { "bits" } else { "registers" };
        cx.at_key("address", |cx| {
            cx.error(format!(
                "address {} + {width} {unit} passes the end of the address space (65535)",
                p.address,
            ));
        });
    }
    let limit = if p.kind.is_bit() {
        MAX_READ_BITS
    } else {
        MAX_READ_REGISTERS
    };
    if width > limit {
        let unit = if p.kind.is_bit() { "bits" } else { "registers" };
        let key = if p.data_type == DataType::String {
            "length"
        } else {
            "count"
        };
        cx.at_key(key, |cx| {
            cx.error(format!(
                "the point takes {width} {unit}, more than one read can fetch ({limit}); \
                 split it into several points"
            ));
        });
    }
    if p.kind.is_bit() && p.data_type != DataType::Bool {
        cx.at_key("type", |cx| {
            cx.error(format!(
                "type `{}` is not allowed for a {} point; coil and discrete points are `bool`",
                p.data_type, p.kind
            ));
        });
    }
    shape(cx, p);
    super::write::point_rules(cx, p);
}

/// The rules of `bit`, `length`, `count` and a string's `order`.
fn shape(cx: &mut Ctx, p: &Point) {
    if let Some(bit) = p.bit {
        if p.kind.is_bit() {
            cx.at_key("bit", |cx| {
                cx.error(format!(
                    "`bit` selects a bit of a register; a {} point is a single bit already",
                    p.kind
                ));
            });
        } else if p.data_type != DataType::Bool {
            cx.at_key("type", |cx| {
                cx.error(format!(
                    "a point with `bit: {bit}` is a bool; remove `type: {}` or `bit`",
                    p.data_type
                ));
            });
        } else if p.count > 1 {
            cx.at_key("count", |cx| {
                cx.error("a point with `bit` is one bit; `count` is not allowed with it");
            });
        }
    }
    if p.data_type == DataType::String {
        if p.length == 0 {
            cx.at_key("type", |cx| {
                cx.error(
                    "a string point needs `length`: its size in registers (2 characters each)",
                );
            });
        }
        if p.count > 1 {
            cx.at_key("count", |cx| {
                cx.error("arrays of strings are not supported; define one point per string");
            });
        }
        if !matches!(p.order, WordOrder::Abcd | WordOrder::Badc) {
            cx.at_key("order", |cx| {
                cx.error(format!(
                    "`{}` does not apply to a string; expected ABCD (first character in the \
                     high byte, the default) or BADC (in the low byte)",
                    p.order
                ));
            });
        }
    } else if p.length != 0 {
        cx.at_key("length", |cx| {
            cx.error(format!(
                "`length` is the size of a string; this point is of type `{}`",
                p.data_type
            ));
        });
    }
}

/// The context is at a bus's `name`.
pub fn bus_name(cx: &mut Ctx, name: &str) {
    if name.trim().is_empty() {
        cx.error("the bus name is empty");
    }
}

/// The context is at `buses`: two buses may not open the same serial port.
pub fn unique_ports(cx: &mut Ctx, ports: &[Option<&str>]) {
    for (j, port) in ports.iter().enumerate() {
        let Some(port) = port else { continue };
        if let Some(i) = ports[..j].iter().position(|p| p == &Some(*port)) {
            cx.at_index(j, |cx| {
                cx.at_key("port", |cx| {
                    cx.error(format!(
                        "serial port {} is already used by buses[{i}]; one bus per port",
                        quote(port)
                    ));
                });
            });
        }
    }
}

/// The context is at a bus.
pub fn frame_delay(cx: &mut Ctx, delay: Option<Duration>) {
    if let Some(d) = delay.filter(|d| *d > MAX_FRAME_DELAY) {
        cx.at_key("inter_frame_delay", |cx| {
            cx.error(format!(
                "`{}` is too long; inter_frame_delay must be at most {}",
                show_duration(d),
                show_duration(MAX_FRAME_DELAY)
            ));
        });
    }
}

/// The context is at a device on a bus: unit 0 is the RTU broadcast address, which no device
/// answers.
pub fn bus_unit(cx: &mut Ctx, unit: Option<UnitId>) {
    if unit == Some(UnitId(0)) {
        cx.at_key("unit", |cx| {
            cx.error(
                "unit 0 is the broadcast address on a serial bus: no device answers it; \
                 expected 1 to 247",
            );
        });
    }
}

/// The context is at `devices`: ferrule opens one connection per distinct `host:port`, and no
/// more than `cap` to one host.
pub fn connections_per_host(cx: &mut Ctx, endpoints: &[Option<&HostPort>], cap: u16) {
    let mut seen: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
    for (j, endpoint) in endpoints.iter().enumerate() {
        let Some(hp) = endpoint else { continue };
        let ports = seen.entry(hp.host.as_str()).or_default();
        if ports.contains(&hp.port) {
            continue;
        }
        ports.push(hp.port);
        if ports.len() > usize::from(cap) {
            let n = ports.len();
            cx.at_index(j, |cx| {
                cx.at_key("tcp", |cx| {
                    cx.error(format!(
                        "`{hp}` would be connection {n} to host {}, above \
                         modbus.max_connections_per_host ({cap}); devices with the same \
                         host:port share one connection",
                        hp.host
                    ));
                });
            });
        }
    }
}

/// The context is at a device, group or point; `poll` and `timeout` are its (decoded) settings.
pub fn timing(cx: &mut Ctx, poll: Option<Duration>, timeout: Option<Duration>) {
    if let Some(poll) = poll.filter(|p| *p < MIN_POLL) {
        cx.at_key("poll", |cx| {
            cx.error(format!(
                "`{}` is too short; poll must be at least {}",
                show_duration(poll),
                show_duration(MIN_POLL)
            ));
        });
    }
    if let Some(timeout) = timeout.filter(|t| *t > MAX_TIMEOUT) {
        cx.at_key("timeout", |cx| {
            cx.error(format!(
                "`{}` is too long; timeout must be at most {}",
                show_duration(timeout),
                show_duration(MAX_TIMEOUT)
            ));
        });
    }
}

/// The context is at `broker.listeners`: two listeners may not claim the same address and port
/// (port 0 picks a free port, so it never conflicts).
pub fn listeners(cx: &mut Ctx, items: &[Option<Listener>]) {
    for (j, listener) in items.iter().enumerate() {
        let Some(b) = listener.as_ref().map(|l| l.bind) else {
            continue;
        };
        let earlier = items[..j].iter().enumerate().find_map(|(i, l)| {
            l.as_ref()
                .filter(|l| conflicts(l.bind, b))
                .map(|l| (i, l.bind))
        });
        if let Some((i, a)) = earlier {
            let message = if a == b {
                format!("`{b}` is already bound by listeners[{i}]")
            } else {
                format!("`{b}` conflicts with listeners[{i}] (`{a}`): same port")
            };
            cx.at_index(j, |cx| cx.at_key("bind", |cx| cx.error(message)));
        }
    }
}

/// The context is at `broker.listeners[].tls`: client certificates can only be required when
/// there is a CA to check them against.
pub fn client_certificates(cx: &mut Ctx, has_ca: bool, require_certificate: bool) {
    if require_certificate && !has_ca {
        cx.at_key("require_certificate", |cx| {
            cx.error(
                "`require_certificate: true` needs `ca`: the CA certificate(s) that client \
                 certificates are checked against",
            );
        });
    }
}

fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    let same_family = a.is_ipv4() == b.is_ipv4();
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (same_family && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// The context is at `uplink.client_id`.
pub fn client_id(cx: &mut Ctx, id: &str) {
    if id.is_empty() {
        cx.error("the client id is empty; expected 1 to 23 characters of A-Z, a-z, 0-9, `-`, `_`");
    } else if id.len() > 65_535 {
        cx.error(format!(
            "the client id is {} bytes long; at most 65535 are allowed",
            id.len()
        ));
    }
}

/// The context is at `uplink`; `keepalive` is its (decoded) setting.
pub fn keepalive(cx: &mut Ctx, keepalive: Option<Duration>) {
    let Some(k) = keepalive.filter(|k| *k < MIN_KEEPALIVE || *k > MAX_KEEPALIVE) else {
        return;
    };
    cx.at_key("keepalive", |cx| {
        cx.error(format!(
            "`{}` is out of range; keepalive must be from 1s to 65535s",
            show_duration(k)
        ));
    });
}

/// The context is at a forward rule's `local`.
pub fn filter(cx: &mut Ctx, filter: &str) {
    if let Err(why) = topics::check_filter(filter) {
        cx.error(format!(
            "{} is not a valid topic filter: {why}",
            quote(filter)
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::{parse, ConfigError, Diagnostic, Origin};

    fn diagnostics(text: &str) -> Vec<Diagnostic> {
        let origin = Origin {
            name: "x.yaml".into(),
            base_dir: PathBuf::from("/etc/ferrule"),
            state_dir: PathBuf::from("/var/lib/ferrule"),
        };
        match parse(text, &origin) {
            Err(ConfigError::Invalid(d)) => d,
            other => panic!("expected diagnostics for\n{text}\ngot {other:?}"),
        }
    }

    /// Lines 1–5; a point written after it is on line 6.
    const HEAD: &str = "\
site: plant1
devices:
  - name: boiler
    tcp: \"10.0.0.1:502\"
    points:
";

    /// A valid device whose `points:` is on line 5 and first point on line 6.
    fn with_point(point: &str) -> String {
        format!("{HEAD}      - {point}\n")
    }

    /// A valid config (lines 1–6) followed by `tail`, starting on line 7.
    fn with_tail(tail: &str) -> String {
        format!(
            "{}{tail}",
            with_point("{name: t, kind: holding, address: 1}")
        )
    }

    /// A valid config whose device has `key` on line 5 (points move to line 6, first point 7).
    fn with_device_key(key: &str) -> String {
        let head = HEAD.replace("    points:", &format!("    {key}\n    points:"));
        format!("{head}      - {{name: t, kind: coil, address: 1}}\n")
    }

    struct Case {
        what: &'static str,
        text: String,
        /// Number of diagnostics expected.
        count: usize,
        /// `line:column: path: message` (the path part absent for the root); the message may be
        /// cut short.
        expect: &'static str,
    }

    fn case(what: &'static str, text: String, count: usize, expect: &'static str) -> Case {
        Case {
            what,
            text,
            count,
            expect,
        }
    }

    #[rustfmt::skip] // a table: one case per two lines reads better than rustfmt's layout
    fn cases() -> Vec<Case> {
        vec![
            case("unknown key, suggestion", with_device_key("unti: 3"), 1,
                "5:5: devices[0].unti: unknown key `unti`; did you mean `unit`?"),
            case("unknown key, no suggestion", with_tail("color: red\n"), 1,
                "7:1: color: unknown key `color`; expected one of site, broker, modbus, buses, devices,"),
            case("missing site",
                with_point("{name: t, kind: coil, address: 1}").replace("site: plant1\n", "# no site\n"), 1,
                "2:1: missing required key `site`"),
            case("bad kind", with_point("{name: t, kind: holdng, address: 1}"), 1,
                "6:25: devices[0].points[0].kind: `holdng` is not a register kind; expected one"),
            case("bad type", with_point("{name: t, kind: input, address: 1, type: float}"), 1,
                "6:50: devices[0].points[0].type: `float` is not a data type; expected one of"),
            case("bad order",
                with_point("{name: t, kind: input, address: 1, type: f32, order: ABDC}"), 1,
                "6:62: devices[0].points[0].order: `ABDC` is not a byte order; expected one of"),
            case("bad duration", with_device_key("poll: 1sec"), 1,
                "5:11: devices[0].poll: `1sec` is not a duration; expected a number and a unit"),
            case("duration without unit", with_device_key("timeout: 5"), 1,
                "5:14: devices[0].timeout: `5` has no unit; add one of ms, s, m, h (e.g. `5s`)"),
            case("address too large", with_point("{name: t, kind: coil, address: 70000}"), 1,
                "6:40: devices[0].points[0].address: `70000` is out of range; expected an integer"),
            case("string where a number is expected",
                with_point("{name: t, kind: coil, address: \"7\"}"), 1,
                "6:40: devices[0].points[0].address: expected an integer from 0 to 65535, found"),
            case("address space end",
                with_point("{name: t, kind: input, address: 65535, type: u32}"), 1,
                "6:41: devices[0].points[0].address: address 65535 + 2 registers passes the end"),
            case("overlap",
                with_tail("      - {name: temp2, kind: holding, address: 0, type: f32}\n"), 1,
                "7:47: devices[0].points[1].address: holding 0..1 overlaps point `t` (holding 1)"),
            case("overlap, same range",
                with_point(concat!("{name: temp, kind: holding, address: 100, type: f32}\n",
                    "      - {name: temp2, kind: holding, address: 100, type: i32}")), 1,
                "7:47: devices[0].points[1].address: holding 100..101 overlaps point `temp`"),
            case("duplicate device",
                with_tail(concat!("  - name: boiler\n    tcp: \"10.0.0.2:502\"\n",
                    "    points: [{name: t, kind: coil, address: 1}]\n")), 1,
                "7:11: devices[1].name: duplicate device name `boiler`; already used by devices[0]"),
            case("duplicate point", with_tail("      - {name: t, kind: coil, address: 1}\n"), 1,
                "7:16: devices[0].points[1].name: duplicate point name `t`; already used by"),
            case("name with /", with_point("{name: a/b, kind: coil, address: 1}"), 1,
                "6:16: devices[0].points[0].name: `a/b` is not a valid point name: it must not"),
            case("name with +",
                with_point("{name: t, kind: coil, address: 1}").replace("name: boiler", "name: boiler+1"), 1,
                "3:11: devices[0].name: `boiler+1` is not a valid device name: it must not"),
            case("name with $",
                with_point("{name: t, kind: coil, address: 1}").replace("site: plant1", "site: $plant"), 1,
                "1:7: site: `$plant` is not a valid site name: it must not contain '$'"),
            case("coil with a non-bool type",
                with_point("{name: t, kind: coil, address: 1, type: u16}"), 1,
                "6:49: devices[0].points[0].type: type `u16` is not allowed for a coil point;"),
            case("url scheme", with_tail("uplink:\n  url: \"http://cloud:1883\"\n"), 1,
                "8:8: uplink.url: `http://cloud:1883` does not start with a supported scheme;"),
            case("bad filter",
                with_tail("uplink:\n  url: mqtt://cloud\n  forward:\n    - {local: \"a/#/b\"}\n"), 1,
                "10:15: uplink.forward[0].local: `a/#/b` is not a valid topic filter: '#' must be"),
            case("qos 3",
                with_tail("uplink:\n  url: mqtt://cloud\n  forward:\n    - {local: \"a/#\", qos: 3}\n"), 1,
                "10:27: uplink.forward[0].qos: `3` is not a QoS level; expected 0, 1 or 2"),
            case("writable min > max",
                with_point("{name: t, kind: holding, address: 1, writable: {min: 10, max: 5}}"), 1,
                "6:56: devices[0].points[0].writable: min 10 is greater than max 5"),
            case("writable on input",
                with_point("{name: t, kind: input, address: 1, writable: true}"), 1,
                "6:54: devices[0].points[0].writable: an input point cannot be writable: the"),
            case("writable range on bool",
                with_point("{name: t, kind: coil, address: 1, writable: {max: 1}}"), 1,
                "6:53: devices[0].points[0].writable: a bool point cannot have a `min`/`max` range"),
            case("devices not a list", "site: plant1\ndevices:\n  name: boiler\n".into(), 1,
                "3:3: devices: expected a list, found a mapping"),
            case("empty points list", HEAD.replace("    points:", "    points: []"), 1,
                "5:13: devices[0].points: no points: a device needs at least one point"),
            case("site not a string", "site: [a]\ndevices: []\n".into(), 1,
                "1:7: site: expected a string, found a list"),
            case("duplicate key", with_point("{name: t, kind: coil, address: 1, kind: input}"), 1,
                "6:43: devices[0].points[0].kind: duplicate key `kind` (first at line 6)"),
            case("tab indentation", HEAD.replace("    tcp:", "\ttcp:"), 1,
                "4:1: YAML syntax error"),
            case("unit id out of range", with_device_key("unit: 300"), 1,
                "5:11: devices[0].unit: `300` is out of range; expected an integer from 0 to 247"),
            case("poll too short", with_device_key("poll: 5ms"), 1,
                "5:11: devices[0].poll: `5ms` is too short; poll must be at least 10ms"),
            case("timeout too long", with_device_key("timeout: 90s"), 1,
                "5:14: devices[0].timeout: `90s` is too long; timeout must be at most 60s"),
            case("duplicate listener",
                with_tail(concat!("broker:\n  listeners:\n    - bind: \"0.0.0.0:1883\"\n",
                    "    - bind: \"127.0.0.1:1883\"\n")), 1,
                "10:13: broker.listeners[1].bind: `127.0.0.1:1883` conflicts with listeners[0]"),
            case("client certificates without a CA",
                with_tail(concat!("broker:\n  listeners:\n    - bind: \"0.0.0.0:8883\"\n",
                    "      tls: {cert: a.crt, key: a.key, require_certificate: true}\n")), 1,
                "10:59: broker.listeners[0].tls.require_certificate: `require_certificate: true` needs `ca`"),
            case("unknown listener protocol",
                with_tail("broker: {listeners: [{bind: \"127.0.0.1:9001\", protocol: ws}]}\n"), 1,
                "7:57: broker.listeners[0].protocol: `ws` is not a listener protocol; expected one of mqtt, websockets"),
            case("packet size too small", with_tail("broker: {max_packet_size: 10}\n"), 1,
                "7:27: broker.max_packet_size: `10` is out of range; expected an integer from 64 to 268435455"),
            case("sys_interval not a duration", with_tail("broker: {sys_interval: never}\n"), 1,
                "7:24: broker.sys_interval: `never` is not a duration"),
            case("max_inflight zero", with_tail("broker: {max_inflight: 0}\n"), 1,
                "7:24: broker.max_inflight: `0` is out of range; expected an integer from 1 to 65535"),
            case("tcp without port",
                HEAD.replace("10.0.0.1:502", "10.0.0.1") + "      - {name: t, kind: coil, address: 1}\n", 1,
                "4:10: devices[0].tcp: `10.0.0.1` is not a valid `host:port`: the port is missing"),
            case("keepalive below 1s",
                with_tail("uplink: {url: \"mqtts://c\", keepalive: 500ms}\n"), 1,
                "7:39: uplink.keepalive: `500ms` is out of range; keepalive must be from 1s to"),
            case("scale zero", with_point("{name: t, kind: holding, address: 1, scale: 0}"), 1,
                "6:53: devices[0].points[0].scale: `0` is not a valid scale; expected a non-zero"),
            case("bind not an address",
                with_tail("broker: {listeners: [{bind: \"localhost:1883\"}]}\n"), 1,
                "7:29: broker.listeners[0].bind: `localhost:1883` is not an IP address and port"),
            // the point map
            case("bit out of range", with_point("{name: t, kind: holding, address: 1, bit: 16}"), 1,
                "6:51: devices[0].points[0].bit: `16` is out of range; expected an integer from 0 to 15"),
            case("bit of a coil", with_point("{name: t, kind: coil, address: 1, bit: 3}"), 1,
                "6:48: devices[0].points[0].bit: `bit` selects a bit of a register; a coil point is a single"),
            case("bit with a non-bool type",
                with_point("{name: t, kind: holding, address: 1, type: u16, bit: 3}"), 1,
                "6:52: devices[0].points[0].type: a point with `bit: 3` is a bool; remove `type: u16` or `bit`"),
            case("same bit twice",
                with_point("{name: a, kind: input, address: 7, bit: 3}\n      - {name: b, kind: input, address: 7, bit: 3}"), 1,
                "7:41: devices[0].points[1].address: input 7 bit 3 overlaps point `a` (input 7 bit 3)"),
            case("bit inside a wider point",
                with_point("{name: a, kind: input, address: 7, type: u32}\n      - {name: b, kind: input, address: 8, bit: 3}"), 1,
                "7:41: devices[0].points[1].address: input 8 bit 3 overlaps point `a` (input 7..8)"),
            case("string without length", with_point("{name: t, kind: holding, address: 1, type: string}"), 1,
                "6:52: devices[0].points[0].type: a string point needs `length`: its size in registers (2"),
            case("length on a number", with_point("{name: t, kind: holding, address: 1, length: 4}"), 1,
                "6:54: devices[0].points[0].length: `length` is the size of a string; this point is of type"),
            case("string in word order",
                with_point("{name: t, kind: input, address: 1, type: string, length: 4, order: CDAB}"), 1,
                "6:76: devices[0].points[0].order: `CDAB` does not apply to a string; expected ABCD (first"),
            case("count zero", with_point("{name: t, kind: holding, address: 1, count: 0}"), 1,
                "6:53: devices[0].points[0].count: `0` is out of range; expected an integer from 1 to 2000"),
            case("array wider than a read",
                with_point("{name: t, kind: input, address: 0, type: f32, count: 100}"), 1,
                "6:62: devices[0].points[0].count: the point takes 200 registers, more than one read can fetch"),
            case("writable bits",
                with_point("{name: t, kind: holding, address: 0, type: bits, writable: true}"), 1,
                "6:68: devices[0].points[0].writable: a `bits` point cannot be writable; make each flag"),
            case("step on a string",
                with_point("{name: t, kind: holding, address: 0, type: string, length: 2, writable: {step: 1}}"), 1,
                "6:81: devices[0].points[0].writable: `step` applies to numbers; this point is of type `string`"),
            case("enum on a bool",
                with_point("{name: t, kind: coil, address: 0, enum: {off: 0}}"), 1,
                "6:49: devices[0].points[0].enum: `enum` names numbers; this point is of type `bool`"),
            case("enum outside the range",
                with_point("{name: t, kind: holding, address: 0, enum: {off: 0, boost: 5}, writable: {max: 2}}"), 1,
                "6:52: devices[0].points[0].enum: `boost` = 5 is outside the writable range ..2"),
            case("write too wide",
                with_point("{name: t, kind: holding, address: 0, count: 124, writable: true}"), 1,
                "6:68: devices[0].points[0].writable: the point takes 124 registers, more than one write (FC16)"),
            case("bad deadband", with_point("{name: t, kind: holding, address: 1, deadband: lots}"), 1,
                "6:56: devices[0].points[0].deadband: `lots` is not a deadband; expected a number ≥ 0 or a"),
            case("negative percent deadband", with_point("{name: t, kind: holding, address: 1, deadband: -2%}"), 1,
                "6:56: devices[0].points[0].deadband: `-2%` is not a deadband; expected a number ≥ 0 or a"),
            case("address_base 2", with_device_key("address_base: 2"), 1,
                "5:19: devices[0].address_base: `2` is out of range; expected an integer from 0 to 1"),
            case("address 0 counted from 1",
                with_device_key("address_base: 1").replace("address: 1}", "address: 0}"), 1,
                "7:40: devices[0].points[0].address: address 0 is below 1: this device counts addresses from 1"),
            case("not a Modicon address", with_point("{name: t, address: 25000}"), 1,
                "6:28: devices[0].points[0].address: `25000` is not a Modicon address, and the point has no"),
            case("Modicon address of another table", with_point("{name: t, kind: input, address: 400001}"), 1,
                "6:41: devices[0].points[0].address: `400001` is a Modicon address of the holding table, but"),
            case("point poll too short", with_point("{name: t, kind: coil, address: 1, poll: 1ms}"), 1,
                "6:49: devices[0].points[0].poll: `1ms` is too short; poll must be at least 10ms"),
            case("group without poll",
                HEAD.replace("    points:", "    groups:\n      - points: [{name: t, kind: coil, address: 1}]"), 1,
                "6:9: devices[0].groups[0]: missing required key `poll`"),
            case("duplicate name across a group",
                with_tail("    groups:\n      - poll: 100ms\n        points: [{name: t, kind: coil, address: 9}]\n"), 1,
                "9:25: devices[0].groups[0].points[0].name: duplicate point name `t`; already used by points[0]"),
            case("overlap across a group",
                with_tail("    groups:\n      - poll: 100ms\n        points: [{name: u, kind: holding, address: 1}]\n"), 1,
                "9:52: devices[0].groups[0].points[0].address: holding 1 overlaps point `t` (holding 1)"),
            // buses and transports
            case("unknown bus", with_bus("bus: rs485-2", ""), 1,
                "6:10: devices[0].bus: no bus named `rs485-2`; expected one of rs485-1"),
            case("tcp and bus", with_bus("bus: rs485-1\n    tcp: \"10.0.0.1:502\"", ""), 1,
                "6:5: devices[0].bus: a device has either `tcp` (Modbus TCP) or `bus` (Modbus RTU), not both"),
            case("neither tcp nor bus", HEAD.replace("    tcp: \"10.0.0.1:502\"\n", "") + "      - {name: t, kind: coil, address: 1}\n", 1,
                "3:5: devices[0]: missing required key `tcp` or `bus`: a device is reached over Modbus TCP"),
            case("unit 0 on a bus", with_bus("bus: rs485-1\n    unit: 0", ""), 1,
                "7:11: devices[0].unit: unit 0 is the broadcast address on a serial bus: no device answers it;"),
            case("duplicate bus name", with_bus("bus: rs485-1", "  - {name: rs485-1, port: /dev/ttyUSB1}\n"), 1,
                "3:12: buses[1].name: duplicate bus name `rs485-1`; already used by buses[0]"),
            case("two buses on one port", with_bus("bus: rs485-1", "  - {name: rs485-2, port: /dev/ttyUSB0}\n"), 1,
                "3:27: buses[1].port: serial port `/dev/ttyUSB0` is already used by buses[0]; one bus per port"),
            case("bad parity", with_bus("bus: rs485-1", "").replace("port: /dev/ttyUSB0", "port: /dev/ttyUSB0, parity: mark"), 1,
                "2:49: buses[0].parity: `mark` is not a parity; expected one of none, even, odd"),
            case("data bits 9", with_bus("bus: rs485-1", "").replace("port: /dev/ttyUSB0", "port: /dev/ttyUSB0, data_bits: 9"), 1,
                "2:52: buses[0].data_bits: `9` is out of range; expected an integer from 7 to 8"),
            case("stop bits 3", with_bus("bus: rs485-1", "").replace("port: /dev/ttyUSB0", "port: /dev/ttyUSB0, stop_bits: 3"), 1,
                "2:52: buses[0].stop_bits: `3` is out of range; expected an integer from 1 to 2"),
            case("inter-frame delay too long", with_bus("bus: rs485-1", "").replace("port: /dev/ttyUSB0", "port: /dev/ttyUSB0, inter_frame_delay: 2s"), 1,
                "2:60: buses[0].inter_frame_delay: `2s` is too long; inter_frame_delay must be at most 1s"),
            case("too many connections to one host",
                format!("modbus: {{max_connections_per_host: 1}}\n{}", with_tail(concat!("  - name: m\n    tcp: \"10.0.0.1:503\"\n",
                    "    points: [{name: t, kind: coil, address: 1}]\n"))), 1,
                "9:10: devices[1].tcp: `10.0.0.1:503` would be connection 2 to host 10.0.0.1, above"),
        ]
    }

    /// A device on bus `rs485-1` (`/dev/ttyUSB0`, defined first, lines 1-3; `extra` buses
    /// follow); `device_keys` replace the device's `tcp` line.
    fn with_bus(device_keys: &str, extra: &str) -> String {
        let head = HEAD.replace("    tcp: \"10.0.0.1:502\"", &format!("    {device_keys}"));
        format!(
            "buses:\n  - {{name: rs485-1, port: /dev/ttyUSB0}}\n{extra}{head}      - {{name: t, kind: coil, address: 1}}\n"
        )
    }

    #[test]
    fn each_bad_config_is_reported_where_it_is_wrong() {
        let cases = cases();
        assert!(cases.len() >= 20);
        let mut failures = Vec::new();
        for c in &cases {
            let got: Vec<String> = diagnostics(&c.text).iter().map(|d| d.to_string()).collect();
            let want = format!("x.yaml:{}", c.expect);
            if got.len() != c.count || !got.iter().any(|d| d.starts_with(&want)) {
                failures.push(format!(
                    "{}: want {} × {want}\n  got {got:#?}",
                    c.what, c.count
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_problem_of_the_file_is_reported_in_file_order() {
        let text = "\
site: plant/1
broker:
  listeners: [{bind: \"1.2.3.4\"}]
devices:
  - name: boiler
    tcp: \"10.0.0.1:502\"
    pol: 1s
    points:
      - {name: a, kind: holdng, address: 70000}
      - {name: b, kind: holding, address: 5, type: f32}
      - {name: c, kind: holding, address: 6}
  - name: meter
    tcp: \"10.0.0.2\"
    points:
      - {name: v, kind: coil, address: 1, type: f32}
uplink:
  url: \"ftp://x\"
";
        let got: Vec<(usize, usize, String)> = diagnostics(text)
            .into_iter()
            .map(|d| (d.line, d.column, d.path))
            .collect();
        let want = [
            (1, 7, "site"),
            (3, 22, "broker.listeners[0].bind"),
            (7, 5, "devices[0].pol"),
            (9, 25, "devices[0].points[0].kind"),
            (9, 42, "devices[0].points[0].address"),
            (11, 43, "devices[0].points[2].address"),
            (13, 10, "devices[1].tcp"),
            (15, 49, "devices[1].points[0].type"),
            (17, 8, "uplink.url"),
        ];
        let want: Vec<(usize, usize, String)> = want
            .iter()
            .map(|(l, c, p)| (*l, *c, (*p).to_owned()))
            .collect();
        assert_eq!(got, want);
    }
}
