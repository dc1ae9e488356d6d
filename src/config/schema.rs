//! The shape of the config file: each section's keys, which are required, and their defaults (the
//! `DEFAULT_*` constants of `model/defaults.rs`), decoded with the `decode` toolkit.
//!
//! The rules across fields and items live in `validate.rs`; they are called here as soon as what
//! they look at has decoded, so a problem in one item never hides a problem in another.
//!
//! Invariant: the [`Config`] returned is meaningful only when no problem was recorded in the
//! [`Ctx`]; `None` means at least one problem was.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{all, expected, list, map, quote, Ctx, Decode, Map};
use super::model::*;
use super::origin::Origin;
use super::points::{gather_points, group, level_name, point_list, Inherited, Named};
use super::scalar::{AddressBase, Baud, ConnectionCap, DataBits, StopBits, UnitId};
use super::validate;

const TOP: &[&str] = &[
    "site",
    "broker",
    "modbus",
    "buses",
    "devices",
    "uplink",
    "commands",
    "metrics",
    "profiles",
    "profiles_dir",
    "status",
];
const METRICS: &[&str] = &["bind"];
const MODBUS: &[&str] = &["max_connections_per_host"];
const BUS: &[&str] = &[
    "name",
    "port",
    "baud",
    "parity",
    "data_bits",
    "stop_bits",
    "inter_frame_delay",
];
const DEVICE: &[&str] = &[
    "name",
    "tcp",
    "bus",
    "unit",
    "poll",
    "timeout",
    "heartbeat",
    "max_gap",
    "address_base",
    "points",
    "groups",
    "force_fc16",
    "profile",
    "overrides",
    "drop",
];

/// Decodes and validates the whole document.
pub fn config(cx: &mut Ctx, root: &Value, origin: &Origin) -> Option<Config> {
    if !root.is_mapping() {
        cx.error(expected("a mapping with at least `site`", root));
        return None;
    }
    let m = map(cx, root, TOP)?;
    let site = m.required_with(cx, "site", |cx, v| level_name(cx, v, "site"));
    let broker = m.optional_with(cx, "broker", |cx, v| super::broker::broker(cx, v, origin));
    let modbus = m.optional_with(cx, "modbus", modbus);
    let buses = m
        .optional_with(cx, "buses", buses)
        .map(Option::unwrap_or_default);
    let cap = match &modbus {
        Some(Some(settings)) => Some(settings.max_connections_per_host),
        Some(None) => Some(DEFAULT_MAX_CONNECTIONS_PER_HOST),
        None => None,
    };
    // Optional: a config without devices is a broker-only gateway (the embedded broker and the
    // store-and-forward uplink for LAN publishers).
    let (profiles, profiles_dir) = super::profile::profiles(cx, &m, origin);
    let mut uses = Vec::new();
    let profiles_ok = profiles.ok && profiles.failed.is_empty();
    let devices = m
        .optional_with(cx, "devices", |cx, v| {
            let known = Known {
                buses: buses.as_deref(),
                profiles: &profiles,
            };
            devices(cx, v, &known, cap, &mut uses)
        })
        .map(Option::unwrap_or_default);
    let uplink = m.optional_with(cx, "uplink", |cx, v| {
        super::uplink::uplink(cx, v, site.as_deref(), origin)
    });
    let commands = m.optional_with(cx, "commands", super::write::commands);
    let metrics = m.optional_with(cx, "metrics", metrics);
    let status = m.optional_with(cx, "status", super::status::status);
    let buses = all(buses?.into_iter().map(|b| b.item).collect());
    if !profiles_ok {
        return None;
    }
    Some(Config {
        site: site?,
        broker: broker?.unwrap_or_else(|| super::broker::default_broker(origin)),
        buses: buses?,
        devices: devices?,
        modbus: modbus?.unwrap_or_default(),
        uplink: uplink?,
        commands: commands?.unwrap_or_default(),
        metrics: metrics?,
        profiles: super::profile::infos(&profiles.valid, &uses),
        profiles_dir,
        status: status?,
    })
}

/// The `metrics` section: present means on; `metrics: {}` listens on loopback. An empty
/// `metrics:` is absent (off), as for the other sections.
fn metrics(cx: &mut Ctx, node: &Value) -> Option<MetricsConfig> {
    let m = map(cx, node, METRICS)?;
    let bind = m.or(cx, "bind", default_metrics_bind());
    Some(MetricsConfig { bind: bind? })
}

fn default_metrics_bind() -> SocketAddr {
    DEFAULT_METRICS_BIND
        .parse()
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9108)))
}

fn modbus(cx: &mut Ctx, node: &Value) -> Option<ModbusSettings> {
    let m = map(cx, node, MODBUS)?;
    let cap = m.or(
        cx,
        "max_connections_per_host",
        ConnectionCap(DEFAULT_MAX_CONNECTIONS_PER_HOST),
    );
    Some(ModbusSettings {
        max_connections_per_host: cap?.0,
    })
}

fn buses(cx: &mut Ctx, node: &Value) -> Option<Vec<Named<Bus>>> {
    let items = list(cx, node, bus)?;
    let names: Vec<Option<&str>> = items.iter().map(|b| b.name.as_deref()).collect();
    validate::unique_names(cx, "bus", "buses", &names);
    let ports: Vec<Option<&str>> = items
        .iter()
        .map(|b| b.item.as_ref().map(|b| b.port.as_str()))
        .collect();
    validate::unique_ports(cx, &ports);
    Some(items)
}

fn bus(cx: &mut Ctx, node: &Value) -> Named<Bus> {
    let Some(m) = map(cx, node, BUS) else {
        return Named::failed();
    };
    let name = m.required_with(cx, "name", |cx, v| {
        let name = String::decode(cx, v)?;
        validate::bus_name(cx, &name);
        Some(name)
    });
    let port = m.required_with(cx, "port", |cx, v| {
        let port = String::decode(cx, v)?;
        if port.trim().is_empty() {
            cx.error("the port is empty; expected a serial device such as `/dev/ttyUSB0`");
            return None;
        }
        Some(port)
    });
    let baud = m.or(cx, "baud", Baud(DEFAULT_BAUD));
    let parity = m.or(cx, "parity", DEFAULT_PARITY);
    let data_bits = m.or(cx, "data_bits", DataBits(DEFAULT_DATA_BITS));
    let stop_bits = m.or(cx, "stop_bits", StopBits(DEFAULT_STOP_BITS));
    let delay = m.optional::<Duration>(cx, "inter_frame_delay");
    validate::frame_delay(cx, delay.flatten());
    let item = (|| {
        Some(Bus {
            name: name.clone()?,
            port: port?,
            baud: baud?.0,
            parity: parity?,
            data_bits: data_bits?.0,
            stop_bits: stop_bits?.0,
            inter_frame_delay: delay?,
        })
    })();
    Named { name, item }
}

/// What devices refer to by name; `None` when that section failed to decode (then the names
/// are not checked).
struct Known<'a> {
    buses: Option<&'a [Named<Bus>]>,
    profiles: &'a super::profile::Profiles,
}

fn devices(
    cx: &mut Ctx,
    node: &Value,
    known: &Known<'_>,
    cap: Option<u16>,
    uses: &mut Vec<ProfileUse>,
) -> Option<Vec<Device>> {
    let items = list(cx, node, |cx, v| device(cx, v, known, uses))?;
    let names: Vec<Option<&str>> = items.iter().map(|d| d.name.as_deref()).collect();
    validate::unique_names(cx, "device", "devices", &names);
    if let Some(cap) = cap {
        let endpoints: Vec<Option<&HostPort>> = items
            .iter()
            .map(|d| match d.item.as_ref().map(|d| &d.transport) {
                Some(Transport::Tcp(addr)) => Some(addr),
                _ => None,
            })
            .collect();
        validate::connections_per_host(cx, &endpoints, cap);
    }
    all(items.into_iter().map(|d| d.item).collect())
}

fn device(
    cx: &mut Ctx,
    node: &Value,
    known: &Known<'_>,
    uses: &mut Vec<ProfileUse>,
) -> Named<Device> {
    let Some(m) = map(cx, node, DEVICE) else {
        return Named::failed();
    };
    let name = m.required_with(cx, "name", |cx, v| level_name(cx, v, "device"));
    let item = device_fields(cx, m, name.clone(), known).map(|(device, usage)| {
        uses.extend(usage);
        device
    });
    Named { name, item }
}

fn device_fields(
    cx: &mut Ctx,
    m: Map<'_>,
    name: Option<String>,
    known: &Known<'_>,
) -> Option<(Device, Option<ProfileUse>)> {
    // `Some(None)`: no profile; `None`: a profile that is unknown or failed (reported).
    let profile = m.optional_with(cx, "profile", |cx, v| {
        super::profile::lookup(cx, v, known.profiles)
    });
    let from = profile.flatten();
    if m.get("profile").is_none() {
        for key in ["overrides", "drop"] {
            if m.get(key).is_some() {
                cx.key_error(
                    key,
                    0,
                    format!(
                        "`{key}` changes the points of a profile; this device has no `profile`"
                    ),
                );
            }
        }
    }
    let tcp = m.optional::<HostPort>(cx, "tcp");
    let bus = m.optional_with(cx, "bus", |cx, v| bus_ref(cx, v, known.buses));
    let unit = m.or(cx, "unit", UnitId(DEFAULT_UNIT));
    let poll = m.or(
        cx,
        "poll",
        from.and_then(|p| p.poll).unwrap_or(DEFAULT_POLL),
    );
    let timeout = m.or(
        cx,
        "timeout",
        from.and_then(|p| p.timeout).unwrap_or(DEFAULT_TIMEOUT),
    );
    let heartbeat = m.or(
        cx,
        "heartbeat",
        from.and_then(|p| p.heartbeat).unwrap_or(DEFAULT_HEARTBEAT),
    );
    let max_gap = m.or(
        cx,
        "max_gap",
        from.and_then(|p| p.max_gap).unwrap_or(DEFAULT_MAX_GAP),
    );
    let address_base = m.or(
        cx,
        "address_base",
        AddressBase(from.and_then(|p| p.address_base).unwrap_or(0)),
    );
    let force_fc16 = m.or(cx, "force_fc16", false);
    // A bad `address_base` is reported once; the points are still checked, as 0-based.
    let base = address_base.map_or(0, |b| b.0);
    let inherited = Inherited {
        order: from.and_then(|p| p.order),
        ..Inherited::default()
    };
    let plain = m.optional_with(cx, "points", |cx, v| point_list(cx, v, base, &inherited));
    let groups = m.optional_with(cx, "groups", |cx, v| {
        list(cx, v, |cx, v| group(cx, v, base, &inherited))
    });
    validate::timing(cx, poll, timeout);
    let transport = transport(cx, &m, tcp, bus);
    if matches!(transport, Some(Transport::Rtu(_))) {
        validate::bus_unit(cx, unit);
    }
    let own = gather_points(cx, &m, plain?, groups?, m.get("profile").is_some());
    let (points, usage) = match (profile?, own?) {
        (None, own) => (own.into_iter().map(|(_, p)| p).collect(), None),
        (Some(p), own) => {
            let (points, usage) = super::profile::resolve(cx, &m, name.as_deref(), p, own)?;
            (points, Some(usage))
        }
    };
    let device = Device {
        name: name?,
        transport: transport?,
        points,
        unit: unit?.0,
        poll: poll?,
        timeout: timeout?,
        heartbeat: heartbeat?,
        max_gap: max_gap?,
        address_base: address_base?.0,
        force_fc16: force_fc16?,
    };
    Some((device, usage))
}

/// Exactly one of `tcp` and `bus`. `None` when one of them failed to decode (already reported)
/// or when both or neither are given (reported here).
fn transport(
    cx: &mut Ctx,
    m: &Map<'_>,
    tcp: Option<Option<HostPort>>,
    bus: Option<Option<Option<Bus>>>,
) -> Option<Transport> {
    match (tcp?, bus?) {
        (Some(addr), None) => Some(Transport::Tcp(addr)),
        (None, Some(bus)) => bus.map(Transport::Rtu),
        (Some(_), Some(_)) => {
            if m.get("bus").is_some() {
                cx.key_error(
                    "bus",
                    0,
                    "a device has either `tcp` (Modbus TCP) or `bus` (Modbus RTU), not both",
                );
            }
            None
        }
        (None, None) => {
            cx.error(
                "missing required key `tcp` or `bus`: a device is reached over Modbus TCP \
                 (`tcp: host:port`) or on a serial bus (`bus: name` of one of `buses`)",
            );
            None
        }
    }
}

/// `bus: name`: the bus, `Some(None)` when that bus itself failed to decode (reported there).
fn bus_ref(cx: &mut Ctx, node: &Value, buses: Option<&[Named<Bus>]>) -> Option<Option<Bus>> {
    let name = String::decode(cx, node)?;
    // Without a decoded `buses` section (reported there), no name can be checked.
    let buses = buses?;
    match buses
        .iter()
        .find(|b| b.name.as_deref() == Some(name.as_str()))
    {
        Some(b) => Some(b.item.clone()),
        None => {
            let known: Vec<&str> = buses.iter().filter_map(|b| b.name.as_deref()).collect();
            if known.is_empty() {
                cx.error(format!(
                    "no bus named {}: the `buses` section defines none",
                    quote(&name)
                ));
            } else {
                cx.error(format!(
                    "no bus named {}; expected one of {}",
                    quote(&name),
                    known.join(", ")
                ));
            }
            None
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::model::*;
    use crate::config::parse;

    use crate::config::testing::{origin, MINIMAL};

    #[test]
    fn minimal_config_gets_every_default() {
        let config = parse(MINIMAL, &origin()).expect("valid");
        let bind: SocketAddr = DEFAULT_LISTENER.parse().expect("default listener parses");
        let v6: SocketAddr = DEFAULT_LISTENER_V6
            .parse()
            .expect("default listener parses");
        assert_eq!(config.site, "plant1");
        let v6 = Listener {
            best_effort: true,
            ..Listener::plain(v6)
        };
        assert_eq!(
            config.broker,
            BrokerConfig::with_listeners(vec![Listener::plain(bind), v6], &origin().state_dir)
        );
        assert_eq!(
            config.broker.persistence,
            Some(PathBuf::from("/run/state/broker.db"))
        );
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
                written_address: None,
                data_type: DataType::U16,
                order: WordOrder::Abcd,
                count: 1,
                length: 0,
                bit: None,
                scale: 1.0,
                offset: 0.0,
                unit: None,
                deadband: Deadband::Absolute(0.0),
                heartbeat: None,
                poll: None,
                writable: Writable::No,
                write: WriteRules::default(),
                names: Vec::new(),
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
        assert_eq!(
            (temp.scale, temp.offset, temp.deadband),
            (0.1, -40.0, Deadband::Absolute(0.5))
        );
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
        assert_eq!(
            config.broker.listeners.len(),
            2,
            "the two default listeners"
        );
        let text = format!("{MINIMAL}broker:\n  listeners: []\nuplink:\n");
        assert_eq!(parse(&text, &origin()).expect("valid").uplink, None);
    }

    #[test]
    fn buses_groups_and_the_new_point_keys_decode() {
        let text = "\
site: plant1
modbus: {max_connections_per_host: 2}
buses:
  - {name: rs485-1, port: /dev/ttyUSB0, baud: 9600, parity: none, stop_bits: 2}
  - {name: rs485-2, port: /dev/ttyS1, data_bits: 7, inter_frame_delay: 5ms}
devices:
  - name: meter
    bus: rs485-1
    unit: 3
    address_base: 1
    poll: 2s
    points:
      - {name: energy, kind: input, address: 1, type: u64, order: GHEFCDAB}
      - {name: serial, address: 30101, type: string, length: 8, order: badc}
      - {name: alarm, kind: holding, address: 5, bit: 3}
      - {name: phases, kind: input, address: 10, type: f64, count: 3, deadband: 2%}
      - {name: leds, address: \"010001\", count: 8}
      - {name: big, address: 465536}
    groups:
      - poll: 100ms
        heartbeat: 5s
        points:
          - {name: flow, kind: input, address: 50, type: f32}
          - {name: rare, kind: input, address: 60, poll: 10s}
  - {name: pump, bus: rs485-2, points: [{name: run, kind: coil, address: 0}]}
";
        let config = parse(text, &origin()).expect("valid");
        assert_eq!(config.modbus.max_connections_per_host, 2);
        assert_eq!(config.buses.len(), 2);
        let b = &config.buses[0];
        assert_eq!(
            (
                b.baud,
                b.parity,
                b.data_bits,
                b.stop_bits,
                b.inter_frame_delay
            ),
            (9600, Parity::None, 8, 2, None)
        );
        let b2 = &config.buses[1];
        assert_eq!(
            (b2.baud, b2.parity, b2.data_bits, b2.stop_bits),
            (DEFAULT_BAUD, DEFAULT_PARITY, 7, 1)
        );
        assert_eq!(b2.frame_delay(), Duration::from_millis(5));
        let meter = &config.devices[0];
        assert_eq!(meter.transport, Transport::Rtu(config.buses[0].clone()));
        assert_eq!((meter.unit, meter.address_base), (3, 1));
        let p = |name: &str| {
            meter
                .points
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("no point {name}"))
        };
        let energy = p("energy");
        assert_eq!(
            (energy.kind, energy.address, energy.data_type, energy.order),
            (RegisterKind::Input, 0, DataType::U64, WordOrder::Cdab)
        );
        assert_eq!(energy.written_address.as_deref(), Some("1"));
        let serial = p("serial");
        assert_eq!(
            (
                serial.kind,
                serial.address,
                serial.length,
                serial.order,
                serial.width()
            ),
            (RegisterKind::Input, 100, 8, WordOrder::Badc, 8)
        );
        assert_eq!(serial.written_address.as_deref(), Some("30101"));
        let alarm = p("alarm");
        assert_eq!(
            (alarm.address, alarm.bit, alarm.data_type, alarm.width()),
            (4, Some(3), DataType::Bool, 1)
        );
        let phases = p("phases");
        assert_eq!((phases.count, phases.width()), (3, 12));
        assert_eq!(phases.deadband, Deadband::Percent(2.0));
        let leds = p("leds");
        assert_eq!(
            (leds.kind, leds.address, leds.data_type, leds.width()),
            (RegisterKind::Coil, 10_000, DataType::Bool, 8)
        );
        assert_eq!(
            (p("big").kind, p("big").address),
            (RegisterKind::Holding, 65_535)
        );
        // group points come after `points`, with the group's poll and heartbeat
        let names: Vec<&str> = meter.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["energy", "serial", "alarm", "phases", "leds", "big", "flow", "rare"]
        );
        assert_eq!(p("flow").poll, Some(Duration::from_millis(100)));
        assert_eq!(p("flow").heartbeat, Some(Duration::from_secs(5)));
        assert_eq!(
            p("rare").poll,
            Some(Duration::from_secs(10)),
            "its own poll wins"
        );
        assert_eq!(p("energy").poll, None);
        assert_eq!(meter.poll_of(p("energy")), Duration::from_secs(2));
        assert_eq!(config.devices[1].unit, DEFAULT_UNIT);
    }
}
