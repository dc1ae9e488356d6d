//! The shape of the config file: each section's keys, which are required, and their defaults (the
//! `DEFAULT_*` constants of `model.rs`), decoded with the `decode` toolkit.
//!
//! The rules across fields and items live in `validate.rs`; they are called here as soon as what
//! they look at has decoded, so a problem in one item never hides a problem in another.
//!
//! Invariant: the [`Config`] returned is meaningful only when no problem was recorded in the
//! [`Ctx`]; `None` means at least one problem was.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{
    all, expected, list, map, Ctx, Decode, Finite, Map, NonNegative, Scale, UnitId,
};
use super::load::Origin;
use super::model::*;
use super::validate;

const TOP: &[&str] = &["site", "broker", "devices", "uplink"];
const BROKER: &[&str] = &["listeners"];
const LISTENER: &[&str] = &["bind"];
const DEVICE: &[&str] = &[
    "name",
    "tcp",
    "unit",
    "poll",
    "timeout",
    "heartbeat",
    "max_gap",
    "points",
];
const POINT: &[&str] = &[
    "name",
    "kind",
    "address",
    "type",
    "order",
    "scale",
    "offset",
    "unit",
    "deadband",
    "heartbeat",
    "writable",
];
const UPLINK: &[&str] = &["url", "client_id", "keepalive", "ca", "forward", "queue"];
const FORWARD: &[&str] = &["local", "qos"];
const QUEUE: &[&str] = &["path", "durability"];

/// Decodes and validates the whole document.
pub fn config(cx: &mut Ctx, root: &Value, origin: &Origin) -> Option<Config> {
    if !root.is_mapping() {
        cx.error(expected(
            "a mapping with at least `site` and `devices`",
            root,
        ));
        return None;
    }
    let m = map(cx, root, TOP)?;
    let site = m.required_with(cx, "site", |cx, v| level_name(cx, v, "site"));
    let broker = m.optional_with(cx, "broker", broker);
    let devices = m.required_with(cx, "devices", devices);
    let uplink = m.optional_with(cx, "uplink", |cx, v| uplink(cx, v, site.as_deref(), origin));
    Some(Config {
        site: site?,
        broker: broker?.unwrap_or_else(default_broker),
        devices: devices?,
        uplink: uplink?,
    })
}

/// A name that is also a topic level: the site, a device, a point.
fn level_name(cx: &mut Ctx, node: &Value, what: &str) -> Option<String> {
    let name = String::decode(cx, node)?;
    validate::level(cx, what, &name);
    Some(name)
}

fn default_broker() -> BrokerConfig {
    let bind = DEFAULT_LISTENER
        .parse()
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 1883)));
    BrokerConfig {
        listeners: vec![Listener { bind }],
    }
}

fn broker(cx: &mut Ctx, node: &Value) -> Option<BrokerConfig> {
    let m = map(cx, node, BROKER)?;
    let listeners = m.optional_with(cx, "listeners", |cx, v| {
        let items = list(cx, v, listener)?;
        validate::listeners(cx, &items);
        all(items)
    })?;
    match listeners {
        Some(listeners) if !listeners.is_empty() => Some(BrokerConfig { listeners }),
        _ => Some(default_broker()),
    }
}

fn listener(cx: &mut Ctx, node: &Value) -> Option<Listener> {
    let m = map(cx, node, LISTENER)?;
    let bind = m.required(cx, "bind");
    Some(Listener { bind: bind? })
}

/// An item of a list and its name, decoded on its own so that duplicate names are found even
/// when another field of the item is wrong.
struct Named<T> {
    name: Option<String>,
    item: Option<T>,
}

impl<T> Named<T> {
    fn failed() -> Self {
        Self {
            name: None,
            item: None,
        }
    }
}

fn devices(cx: &mut Ctx, node: &Value) -> Option<Vec<Device>> {
    let items = list(cx, node, device)?;
    if items.is_empty() {
        cx.error("no devices: at least one device is required");
    }
    let names: Vec<Option<&str>> = items.iter().map(|d| d.name.as_deref()).collect();
    validate::unique_names(cx, "device", "devices", &names);
    all(items.into_iter().map(|d| d.item).collect())
}

fn device(cx: &mut Ctx, node: &Value) -> Named<Device> {
    let Some(m) = map(cx, node, DEVICE) else {
        return Named::failed();
    };
    let name = m.required_with(cx, "name", |cx, v| level_name(cx, v, "device"));
    let item = device_fields(cx, m, name.clone());
    Named { name, item }
}

fn device_fields(cx: &mut Ctx, m: Map<'_>, name: Option<String>) -> Option<Device> {
    let tcp = m.required::<HostPort>(cx, "tcp");
    let unit = m.or(cx, "unit", UnitId(DEFAULT_UNIT));
    let poll = m.or(cx, "poll", DEFAULT_POLL);
    let timeout = m.or(cx, "timeout", DEFAULT_TIMEOUT);
    let heartbeat = m.or(cx, "heartbeat", DEFAULT_HEARTBEAT);
    let max_gap = m.or(cx, "max_gap", DEFAULT_MAX_GAP);
    let points = m.required_with(cx, "points", points);
    validate::timing(cx, poll, timeout);
    Some(Device {
        name: name?,
        transport: Transport::Tcp(tcp?),
        unit: unit?.0,
        poll: poll?,
        timeout: timeout?,
        heartbeat: heartbeat?,
        max_gap: max_gap?,
        points: points?,
    })
}

fn points(cx: &mut Ctx, node: &Value) -> Option<Vec<Point>> {
    let items = list(cx, node, point)?;
    if items.is_empty() {
        cx.error("no points: a device needs at least one point");
    }
    let names: Vec<Option<&str>> = items.iter().map(|p| p.name.as_deref()).collect();
    validate::unique_names(cx, "point", "points", &names);
    let decoded: Vec<Option<&Point>> = items.iter().map(|p| p.item.as_ref()).collect();
    validate::points(cx, &decoded);
    all(items.into_iter().map(|p| p.item).collect())
}

fn point(cx: &mut Ctx, node: &Value) -> Named<Point> {
    let Some(m) = map(cx, node, POINT) else {
        return Named::failed();
    };
    let name = m.required_with(cx, "name", |cx, v| level_name(cx, v, "point"));
    let item = point_fields(cx, m, name.clone());
    Named { name, item }
}

fn point_fields(cx: &mut Ctx, m: Map<'_>, name: Option<String>) -> Option<Point> {
    let kind = m.required::<RegisterKind>(cx, "kind");
    let address = m.required::<u16>(cx, "address");
    let data_type = m.optional::<DataType>(cx, "type");
    let order = m.or(cx, "order", WordOrder::default());
    let scale = m.or(cx, "scale", Scale(1.0));
    let offset = m.or(cx, "offset", Finite(0.0));
    let unit = m.optional::<String>(cx, "unit");
    let deadband = m.or(cx, "deadband", NonNegative(0.0));
    let heartbeat = m.optional::<Duration>(cx, "heartbeat");
    let writable = m.or(cx, "writable", Writable::No);
    let kind = kind?;
    Some(Point {
        name: name?,
        kind,
        address: address?,
        data_type: data_type?.unwrap_or(default_type(kind)),
        order: order?,
        scale: scale?.0,
        offset: offset?.0,
        unit: unit?,
        deadband: deadband?.0,
        heartbeat: heartbeat?,
        writable: writable?,
    })
}

/// `bool` for the bit tables, `u16` for the register tables.
fn default_type(kind: RegisterKind) -> DataType {
    if kind.is_bit() {
        DataType::Bool
    } else {
        DataType::U16
    }
}

fn uplink(cx: &mut Ctx, node: &Value, site: Option<&str>, origin: &Origin) -> Option<Uplink> {
    let m = map(cx, node, UPLINK)?;
    let url = m.required::<UplinkUrl>(cx, "url");
    let client_id = m.optional_with(cx, "client_id", |cx, v| {
        let id = String::decode(cx, v)?;
        validate::client_id(cx, &id);
        Some(id)
    });
    let keepalive = m.or(cx, "keepalive", DEFAULT_UPLINK_KEEPALIVE);
    validate::keepalive(cx, keepalive);
    let ca = m.optional::<PathBuf>(cx, "ca");
    let forward = m.optional_with(cx, "forward", |cx, v| all(list(cx, v, forward_rule)?));
    let queue = m.optional_with(cx, "queue", |cx, v| queue(cx, v, origin));
    // Without `client_id` the default needs the site; when the site failed it is reported there.
    let client_id = match client_id? {
        Some(id) => id,
        None => format!("ferrule-{}", site?),
    };
    Some(Uplink {
        url: url?,
        client_id,
        keepalive: keepalive?,
        ca: ca?.map(|ca| origin.base_dir.join(ca)),
        forward: forward?.unwrap_or_default(),
        queue: queue?.unwrap_or_else(|| QueueConfig {
            path: origin.state_dir.join(DEFAULT_QUEUE_FILE),
            durability: Durability::default(),
        }),
    })
}

fn forward_rule(cx: &mut Ctx, node: &Value) -> Option<ForwardRule> {
    let m = map(cx, node, FORWARD)?;
    let local = m.required_with(cx, "local", |cx, v| {
        let filter = String::decode(cx, v)?;
        validate::filter(cx, &filter);
        Some(filter)
    });
    let qos = m.or(cx, "qos", Qos::default());
    Some(ForwardRule {
        local: local?,
        qos: qos?,
    })
}

fn queue(cx: &mut Ctx, node: &Value, origin: &Origin) -> Option<QueueConfig> {
    let m = map(cx, node, QUEUE)?;
    let path = m.optional::<PathBuf>(cx, "path");
    let durability = m.or(cx, "durability", Durability::default());
    Some(QueueConfig {
        path: match path? {
            Some(path) => origin.base_dir.join(path),
            None => origin.state_dir.join(DEFAULT_QUEUE_FILE),
        },
        durability: durability?,
    })
}
