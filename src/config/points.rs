//! The points of a device or a profile (`points`, `groups[].points`): their keys, defaults
//! inherited from a group or profile, and the names of list items ([`Named`]).
//!
//! Shared by `schema.rs` (devices) and `profile.rs` (profiles), and depends on neither.

use std::time::Duration;

use serde_yaml::Value;

use super::address::{address_without_kind, resolve_address, AddressInput};
use super::decode::{all, list, map, Ctx, Decode, Map, Seg};
use super::model::*;
use super::scalar::{BitIndex, Count, Finite, Length, Scale};
use super::validate::{self, PointAt};

const GROUP: &[&str] = &["poll", "heartbeat", "points"];
const POINT: &[&str] = &[
    "name",
    "kind",
    "address",
    "type",
    "order",
    "count",
    "length",
    "bit",
    "scale",
    "offset",
    "unit",
    "deadband",
    "heartbeat",
    "poll",
    "writable",
    "enum",
];

/// A name that is also a topic level: the site, a device, a point.
pub(super) fn level_name(cx: &mut Ctx, node: &Value, what: &str) -> Option<String> {
    let name = String::decode(cx, node)?;
    validate::level(cx, what, &name);
    Some(name)
}

/// An item of a list and its name, decoded on its own so that duplicate names are found even
/// when another field of the item is wrong.
pub(super) struct Named<T> {
    pub name: Option<String>,
    pub item: Option<T>,
}

impl<T> Named<T> {
    pub(super) fn failed() -> Self {
        Self {
            name: None,
            item: None,
        }
    }
}

/// What a group (or a profile) passes on to its points.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Inherited {
    pub poll: Option<Duration>,
    pub heartbeat: Option<Duration>,
    /// The profile's default word order.
    pub order: Option<WordOrder>,
}

/// `groups[]`: `{poll, heartbeat, points}`; the points, with the group's settings as defaults.
pub(super) fn group(
    cx: &mut Ctx,
    node: &Value,
    base: u8,
    outer: &Inherited,
) -> Option<Vec<Named<Point>>> {
    let m = map(cx, node, GROUP)?;
    let poll = m.required::<Duration>(cx, "poll");
    validate::timing(cx, poll, None);
    let heartbeat = m.optional::<Duration>(cx, "heartbeat");
    let inherited = Inherited {
        poll,
        heartbeat: heartbeat.flatten(),
        order: outer.order,
    };
    let points = m.required_with(cx, "points", |cx, v| point_list(cx, v, base, &inherited));
    poll?;
    heartbeat?;
    points
}

pub(super) fn point_list(
    cx: &mut Ctx,
    node: &Value,
    base: u8,
    inherited: &Inherited,
) -> Option<Vec<Named<Point>>> {
    list(cx, node, |cx, v| point(cx, v, base, inherited))
}

/// Joins `points` and the points of `groups` into the device's own points (with their paths),
/// checking names and overlaps across all of them. With a profile, a device may have none.
pub(super) fn gather_points(
    cx: &mut Ctx,
    m: &Map<'_>,
    plain: Option<Vec<Named<Point>>>,
    groups: Option<Vec<Option<Vec<Named<Point>>>>>,
    profile: bool,
) -> Option<Vec<(Vec<Seg>, Point)>> {
    let mut located: Vec<(Vec<Seg>, Named<Point>)> = Vec::new();
    let plain_empty = plain.as_ref().is_some_and(Vec::is_empty);
    for (i, p) in plain.into_iter().flatten().enumerate() {
        located.push((vec![Seg::Key("points".into()), Seg::Index(i)], p));
    }
    let mut groups_failed = false;
    for (g, group) in groups.into_iter().flatten().enumerate() {
        let Some(points) = group else {
            groups_failed = true;
            continue;
        };
        for (i, p) in points.into_iter().enumerate() {
            let path = vec![
                Seg::Key("groups".into()),
                Seg::Index(g),
                Seg::Key("points".into()),
                Seg::Index(i),
            ];
            located.push((path, p));
        }
    }
    if located.is_empty() && !groups_failed && !profile {
        if plain_empty {
            cx.at_key("points", |cx| {
                cx.error("no points: a device needs at least one point")
            });
        } else if m.get("points").is_none() && m.get("groups").is_none() {
            cx.error("missing required key `points`");
        } else {
            cx.error("no points: a device needs at least one point");
        }
    }
    let at: Vec<PointAt<'_>> = located
        .iter()
        .map(|(path, p)| PointAt {
            path,
            name: p.name.as_deref(),
            point: p.item.as_ref(),
        })
        .collect();
    validate::points(cx, &at);
    let points = all(located
        .into_iter()
        .map(|(path, p)| p.item.map(|p| (path, p)))
        .collect());
    if groups_failed {
        return None;
    }
    points
}

fn point(cx: &mut Ctx, node: &Value, base: u8, inherited: &Inherited) -> Named<Point> {
    let Some(m) = map(cx, node, POINT) else {
        return Named::failed();
    };
    let name = m.required_with(cx, "name", |cx, v| level_name(cx, v, "point"));
    let item = point_fields(cx, m, name.clone(), base, inherited);
    Named { name, item }
}

fn point_fields(
    cx: &mut Ctx,
    m: Map<'_>,
    name: Option<String>,
    base: u8,
    inherited: &Inherited,
) -> Option<Point> {
    let kind = m.optional::<RegisterKind>(cx, "kind");
    let address = m.required_with(cx, "address", |cx, v| {
        let input = AddressInput::decode(cx, v)?;
        let Some(kind) = kind else {
            // `kind` failed to decode (reported there): the address is still checked for what
            // does not depend on it.
            if let Some(message) = address_without_kind(&input, base) {
                cx.error(message);
            }
            return None;
        };
        resolve_address(&input, kind, base)
            .map_err(|message| cx.error(message))
            .ok()
    });
    let data_type = m.optional::<DataType>(cx, "type");
    let order = m.or(cx, "order", inherited.order.unwrap_or_default());
    let count = m.or(cx, "count", Count(1));
    let length = m.optional::<Length>(cx, "length");
    let bit = m.optional::<BitIndex>(cx, "bit");
    let scale = m.or(cx, "scale", Scale(1.0));
    let offset = m.or(cx, "offset", Finite(0.0));
    let unit = m.optional::<String>(cx, "unit");
    let deadband = m.or(cx, "deadband", Deadband::default());
    let heartbeat = m.optional::<Duration>(cx, "heartbeat");
    let poll = m.optional::<Duration>(cx, "poll");
    validate::timing(cx, poll.flatten(), None);
    let writable = m.or(cx, "writable", super::write::WritableSpec::default());
    let names = m.or(cx, "enum", super::write::Names::default());
    let (kind, address, written_address) = address?;
    let bit = bit?.map(|b| b.0);
    let data_type = data_type?.unwrap_or(default_type(kind, bit.is_some()));
    Some(Point {
        name: name?,
        kind,
        address,
        written_address,
        data_type,
        order: order?,
        count: count?.0,
        length: length?.map_or(0, |l| l.0),
        bit,
        scale: scale?.0,
        offset: offset?.0,
        unit: unit?,
        deadband: deadband?,
        heartbeat: heartbeat?.or(inherited.heartbeat),
        poll: poll?.or(inherited.poll),
        writable: writable.map(|w| w.writable)?,
        write: writable?.rules,
        names: names?.0,
    })
}

/// `bool` for the bit tables and single-bit points, `u16` for the register tables.
fn default_type(kind: RegisterKind, bit: bool) -> DataType {
    if kind.is_bit() || bit {
        DataType::Bool
    } else {
        DataType::U16
    }
}
