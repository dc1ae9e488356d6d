//! The shape of the config file: each section's keys, which are required, and their defaults (the
//! `DEFAULT_*` constants of `model.rs`), decoded with the `decode` toolkit.
//!
//! The rules across fields and items live in `validate.rs`; they are called here as soon as what
//! they look at has decoded, so a problem in one item never hides a problem in another.
//!
//! Invariant: the [`Config`] returned is meaningful only when no problem was recorded in the
//! [`Ctx`]; `None` means at least one problem was.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{all, expected, list, map, Ctx, Decode, Map};
use super::load::Origin;
use super::model::*;
use super::scalar::{Finite, NonNegative, Scale, UnitId};
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
    let uplink = m.optional_with(cx, "uplink", |cx, v| {
        super::uplink::uplink(cx, v, site.as_deref(), origin)
    });
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::model::*;
    use crate::config::{parse, Origin};

    fn origin() -> Origin {
        Origin {
            name: "test.yaml".into(),
            base_dir: PathBuf::from("/etc/ferrule"),
            state_dir: PathBuf::from("/run/state"),
        }
    }

    const MINIMAL: &str = "\
site: plant1
devices:
  - name: boiler
    tcp: \"10.0.0.1:502\"
    points:
      - {name: temp, kind: holding, address: 100}
      - {name: run, kind: coil, address: 3}
";

    #[test]
    fn minimal_config_gets_every_default() {
        let config = parse(MINIMAL, &origin()).expect("valid");
        let bind: SocketAddr = DEFAULT_LISTENER.parse().expect("default listener parses");
        assert_eq!(config.site, "plant1");
        assert_eq!(config.broker.listeners, vec![Listener { bind }]);
        assert_eq!(config.uplink, None);
        let device = &config.devices[0];
        assert_eq!(
            device.transport,
            Transport::Tcp(HostPort {
                host: "10.0.0.1".into(),
                port: 502
            })
        );
        assert_eq!(device.unit, DEFAULT_UNIT);
        assert_eq!(device.poll, DEFAULT_POLL);
        assert_eq!(device.timeout, DEFAULT_TIMEOUT);
        assert_eq!(device.heartbeat, DEFAULT_HEARTBEAT);
        assert_eq!(device.max_gap, DEFAULT_MAX_GAP);
        let temp = &device.points[0];
        assert_eq!(
            *temp,
            Point {
                name: "temp".into(),
                kind: RegisterKind::Holding,
                address: 100,
                data_type: DataType::U16,
                order: WordOrder::Abcd,
                scale: 1.0,
                offset: 0.0,
                unit: None,
                deadband: 0.0,
                heartbeat: None,
                writable: Writable::No,
            }
        );
        assert_eq!(device.points[1].data_type, DataType::Bool);
    }

    #[test]
    fn full_config_decodes_to_the_expected_model() {
        let text = "\
site: plant1
broker:
  listeners: [{bind: \"0.0.0.0:1883\"}, {bind: \"[::1]:0\"}]
devices:
  - name: boiler
    tcp: \"[fd00::5]:1502\"
    unit: 0
    poll: 250ms
    timeout: 1.5s
    heartbeat: 2m
    max_gap: 0
    points:
      - name: temp
        kind: input
        address: 65534
        type: f32
        order: cdab
        scale: 0.1
        offset: -40
        unit: \"°C\"
        deadband: 0.5
        heartbeat: 1h
      - {name: sp, kind: holding, address: 0, type: i16, writable: {min: -10, max: 90.5}}
      - {name: any, kind: holding, address: 1, writable: {max: 7}}
      - {name: run, kind: coil, address: 0, writable: true}
      - {name: off, kind: discrete, address: 0, writable: false}
uplink:
  url: mqtts://cloud.example.com
  client_id: gw_1
  keepalive: 1m
  ca: certs/ca.pem
  forward: [{local: \"plant1/#\"}, {local: \"+/+/$state\", qos: 2}]
  queue: {path: /data/q.db, durability: normal}
";
        let config = parse(text, &origin()).expect("valid");
        assert_eq!(config.broker.listeners.len(), 2);
        assert_eq!(config.broker.listeners[1].bind.port(), 0);
        let d = &config.devices[0];
        assert_eq!(
            d.transport,
            Transport::Tcp(HostPort {
                host: "fd00::5".into(),
                port: 1502
            })
        );
        assert_eq!(
            (d.unit, d.poll, d.timeout, d.heartbeat, d.max_gap),
            (
                0,
                Duration::from_millis(250),
                Duration::from_millis(1500),
                Duration::from_secs(120),
                0
            )
        );
        let temp = &d.points[0];
        assert_eq!(temp.kind, RegisterKind::Input);
        assert_eq!((temp.address, temp.data_type), (65534, DataType::F32));
        assert_eq!(temp.order, WordOrder::Cdab);
        assert_eq!((temp.scale, temp.offset, temp.deadband), (0.1, -40.0, 0.5));
        assert_eq!(temp.unit.as_deref(), Some("°C"));
        assert_eq!(temp.heartbeat, Some(Duration::from_secs(3600)));
        let writable: Vec<Writable> = d.points.iter().map(|p| p.writable).collect();
        assert_eq!(
            writable,
            vec![
                Writable::No,
                Writable::Yes {
                    min: Some(-10.0),
                    max: Some(90.5)
                },
                Writable::Yes {
                    min: None,
                    max: Some(7.0)
                },
                Writable::Yes {
                    min: None,
                    max: None
                },
                Writable::No,
            ]
        );
        let uplink = config.uplink.expect("uplink");
        assert_eq!(uplink.url.to_string(), "mqtts://cloud.example.com:8883");
        assert_eq!(uplink.client_id, "gw_1");
        assert_eq!(uplink.keepalive, Duration::from_secs(60));
        assert_eq!(uplink.ca, Some(PathBuf::from("/etc/ferrule/certs/ca.pem")));
        let rules: Vec<(&str, Qos)> = uplink
            .forward
            .iter()
            .map(|r| (r.local.as_str(), r.qos))
            .collect();
        assert_eq!(
            rules,
            [
                ("plant1/#", Qos::AtLeastOnce),
                ("+/+/$state", Qos::ExactlyOnce)
            ]
        );
        assert_eq!(uplink.queue.path, PathBuf::from("/data/q.db"));
        assert_eq!(uplink.queue.durability, Durability::Normal);
    }

    #[test]
    fn uplink_defaults_and_relative_queue_path() {
        let with = |uplink: &str| {
            let text = format!("{MINIMAL}uplink:\n{uplink}");
            parse(&text, &origin())
                .expect("valid")
                .uplink
                .expect("uplink")
        };
        let u = with("  url: mqtts://[::1]\n");
        assert_eq!(u.url.to_string(), "mqtts://[::1]:8883");
        assert_eq!(u.client_id, "ferrule-plant1");
        assert_eq!(u.keepalive, DEFAULT_UPLINK_KEEPALIVE);
        assert_eq!((u.ca, u.forward), (None, vec![]));
        assert_eq!(u.queue.path, PathBuf::from("/run/state/queue.db"));
        assert_eq!(u.queue.durability, Durability::Full);
        let u = with("  url: mqtt://h:1884\n  queue: {path: data/q.db}\n");
        assert_eq!(u.url.port, 1884);
        assert_eq!(u.queue.path, PathBuf::from("/etc/ferrule/data/q.db"));
    }

    #[test]
    fn empty_values_count_as_absent_for_optional_keys() {
        let text = format!("{MINIMAL}broker:\n  listeners:\n");
        let config = parse(&text, &origin()).expect("valid");
        assert_eq!(config.broker.listeners.len(), 1);
        let text = format!("{MINIMAL}broker:\n  listeners: []\nuplink:\n");
        assert_eq!(parse(&text, &origin()).expect("valid").uplink, None);
    }
}
