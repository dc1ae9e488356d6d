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

use super::decode::{quote, show_duration, Ctx};
use super::model::{DataType, Listener, Point, Writable};
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
            let instead = if p.kind.is_bit() { "coil" } else { "holding" };
            cx.at_key("writable", |cx| {
                cx.error(format!(
                    "a {} point cannot be writable: that table is read-only (use {instead})",
                    p.kind
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
