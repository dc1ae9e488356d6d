//! The rules that a well-typed config must still follow: names are topic levels and unique,
//! registers of one device do not overlap and fit the address space, read-only tables are not
//! writable, timings and uplink settings are in range.
//!
//! Each rule runs as soon as what it looks at has decoded (`schema.rs` calls it with the context
//! positioned at the right node); an item that failed to decode is passed as `None` and skipped,
//! so a typo is reported once and never causes a second, spurious error. Rules only record
//! problems; they never change the model.

use std::net::SocketAddr;
use std::time::Duration;

use super::decode::{quote, Ctx};
use super::model::{DataType, Listener, Point, RegisterKind, Writable};
use super::scalar::show_duration;
use crate::topics;

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

/// The context is at a device's `points`: checks each point, then overlaps between points.
pub fn points(cx: &mut Ctx, points: &[Option<&Point>]) {
    for (j, point) in points.iter().enumerate() {
        let Some(point) = point else { continue };
        cx.at_index(j, |cx| single_point(cx, point));
        let earlier = points[..j].iter().flatten().find(|q| overlaps(q, point));
        if let Some(q) = earlier {
            cx.at_index(j, |cx| {
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

fn overlaps(a: &Point, b: &Point) -> bool {
    a.kind == b.kind && u32::from(a.address) < b.end() && u32::from(b.address) < a.end()
}

/// `holding 100..101` (inclusive) or `coil 5`.
fn span(p: &Point) -> String {
    if p.width() == 1 {
        format!("{} {}", p.kind, p.address)
    } else {
        format!("{} {}..{}", p.kind, p.address, p.end() - 1)
    }
}

/// The context is at one point.
fn single_point(cx: &mut Ctx, p: &Point) {
    if p.end() > 65_536 {
        cx.at_key("address", |cx| {
            cx.error(format!(
                "address {} + {} registers passes the end of the address space (65535)",
                p.address,
                p.width()
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
    if let Writable::Yes { min, max } = p.writable {
        if !p.kind.is_writable() {
            let (article, instead) = match p.kind {
                RegisterKind::Input => ("an", "holding"),
                _ => ("a", "coil"),
            };
            cx.at_key("writable", |cx| {
                cx.error(format!(
                    "{article} {} point cannot be writable: the {} table is read-only \
                     (use {instead})",
                    p.kind, p.kind
                ));
            });
        } else if p.data_type == DataType::Bool && (min.is_some() || max.is_some()) {
            cx.at_key("writable", |cx| {
                cx.error("a bool point cannot have a `min`/`max` range; use `writable: true`");
            });
        }
    }
}

/// The context is at a device; `poll` and `timeout` are its (decoded) settings.
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
                "7:1: color: unknown key `color`; expected one of site, broker, devices, uplink"),
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
            case("no devices", "site: plant1\ndevices: []\n".into(), 1,
                "2:10: devices: no devices: at least one device is required"),
            case("empty points list", HEAD.replace("    points:", "    points: []"), 1,
                "5:13: devices[0].points: no points: a device needs at least one point"),
            case("site not a string", "site: [a]\ndevices: []\n".into(), 2,
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
        ]
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
