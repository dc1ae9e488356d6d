//! `ferrule check FILE`: a summary of a valid config (exit 0), every error of an invalid one
//! (exit 2); warnings never make a config invalid.

use std::process::ExitCode;

use crate::broker;
use crate::config::{self, Config, Device, Point, Transport};
use crate::field::{busload, plan};

use super::args::ConfigArg;
use super::common::{config_path, invalid, EXIT_INVALID};
use super::queue;

/// Checks the config `arg` names, with the files it names (password, ACL, certificates).
pub fn main(arg: &ConfigArg) -> ExitCode {
    let path = match config_path(arg) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match config::load(path) {
        Ok(config) => {
            let broker = broker::check::check(&config.broker);
            for warning in &broker.warnings {
                eprintln!("warning: {warning}");
            }
            for warning in crate::health::check(&config) {
                eprintln!("warning: {warning}");
            }
            if !broker.errors.is_empty() {
                for error in &broker.errors {
                    eprintln!("{}: {error}", path.display());
                }
                eprintln!("{} error(s) in files the config names", broker.errors.len());
                return ExitCode::from(EXIT_INVALID);
            }
            print!("{}", summary(&path.display().to_string(), &config));
            ExitCode::SUCCESS
        }
        Err(e) => invalid(&e),
    }
}

/// The summary `check` prints for a valid config: every device with its points (addresses
/// normalised to 0-based protocol addresses) and requests per poll cycle, every bus with the
/// share of its time the polling needs, and warnings (which do not make the config invalid).
pub fn summary(name: &str, config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let points: usize = config.devices.iter().map(|d| d.points.len()).sum();
    let requests: usize = config.devices.iter().map(requests_per_cycle).sum();
    let _ = writeln!(out, "{name}: valid");
    let _ = writeln!(out, "  site {}", config.site);
    let listeners: Vec<String> = config
        .broker
        .listeners
        .iter()
        .map(|l| {
            let tls = if l.tls.is_some() { " tls" } else { "" };
            let ws = match l.protocol {
                config::ListenerProtocol::Mqtt => "",
                config::ListenerProtocol::Websockets => " websockets",
            };
            format!("{}{tls}{ws}", l.bind)
        })
        .collect();
    let _ = writeln!(out, "  broker listeners: {}", listeners.join(", "));
    for p in &config.profiles {
        let users: Vec<&str> = p.devices.iter().map(|u| u.device.as_str()).collect();
        let _ = writeln!(
            out,
            "  profile {} ({}): {} point(s), used by {}",
            p.name,
            p.at,
            p.points,
            if users.is_empty() {
                "no device".to_owned()
            } else {
                users.join(", ")
            }
        );
    }
    if config.devices.is_empty() {
        let role = if config.uplink.is_some() {
            "the embedded broker and the store-and-forward uplink for LAN publishers"
        } else {
            "the embedded broker only"
        };
        let _ = writeln!(
            out,
            "  no devices: a broker-only gateway ({role}); no Modbus polling, commands off"
        );
    } else {
        let _ = writeln!(
            out,
            "  {} device(s), {points} point(s), {requests} Modbus request(s) per poll cycle",
            config.devices.len()
        );
    }
    for d in &config.devices {
        let classes = plan::classes(d);
        let mut per = String::new();
        if classes.len() > 1 {
            let parts: Vec<String> = classes
                .iter()
                .map(|c| {
                    format!(
                        "{} every {}",
                        c.reads.len(),
                        config::show_duration(c.interval)
                    )
                })
                .collect();
            per = format!(" ({})", parts.join(", "));
        }
        let _ = writeln!(
            out,
            "    {:<16} {} poll {}: {} point(s), {} request(s) per cycle{per}",
            d.name,
            d.endpoint(),
            config::show_duration(d.poll),
            d.points.len(),
            requests_per_cycle(d),
        );
        let usage = config.profile_of(&d.name);
        if let Some(u) = usage {
            let at = config
                .profiles
                .iter()
                .find(|p| p.name == u.profile)
                .map_or("", |p| p.at.as_str());
            let mut changes = vec![format!("{} added", u.added)];
            if !u.overridden.is_empty() {
                changes.push(format!("overridden: {}", u.overridden.join(", ")));
            }
            if !u.dropped.is_empty() {
                changes.push(format!("dropped: {}", u.dropped.join(", ")));
            }
            let _ = writeln!(
                out,
                "      profile {} ({at}); {}",
                u.profile,
                changes.join("; ")
            );
        }
        let own_from = d.points.len() - usage.map_or(d.points.len(), |u| u.added);
        for (i, p) in d.points.iter().enumerate() {
            let origin = match usage {
                None => "",
                Some(_) if i >= own_from => "  [device]",
                Some(u) if u.overridden.contains(&p.name) => "  [profile, overridden]",
                Some(_) => "  [profile]",
            };
            let _ = writeln!(out, "      {}{origin}", describe_point(d, p));
        }
    }
    let mut warnings = Vec::new();
    for bus in &config.buses {
        let on_bus: Vec<&Device> = config
            .devices
            .iter()
            .filter(|d| matches!(&d.transport, Transport::Rtu(b) if b.name == bus.name))
            .collect();
        if on_bus.is_empty() {
            warnings.push(format!("bus `{}` is not used by any device", bus.name));
            continue;
        }
        let load = busload::bus_load(bus, on_bus.iter().copied());
        let parity = bus
            .parity
            .as_str()
            .chars()
            .next()
            .unwrap_or('n')
            .to_ascii_uppercase();
        let _ = writeln!(
            out,
            "  bus {} ({}, {} baud {}{}{}): {} device(s), polling needs {:.0}% of the bus (wire time)",
            bus.name,
            bus.port,
            bus.baud,
            bus.data_bits,
            parity,
            bus.stop_bits,
            on_bus.len(),
            load.utilisation() * 100.0
        );
        for c in &load.classes {
            let _ = writeln!(
                out,
                "    {:<16} {} request(s), {:.1} ms of bus time every {}",
                c.device,
                c.requests,
                c.time.as_secs_f64() * 1000.0,
                config::show_duration(c.interval)
            );
        }
        if load.overloaded() {
            warnings.push(format!(
                "bus `{}` cannot keep up: one round of its poll cycles takes {:.0}% of the time \
                 between them at {} baud (wire time alone, before device latency); poll less \
                 often, raise the baud rate, or spread the devices over more buses",
                bus.name,
                load.utilisation() * 100.0,
                bus.baud
            ));
        }
    }
    if config.devices.is_empty() {
        let _ = writeln!(out, "  commands: off (no devices)");
    } else {
        let _ = writeln!(
            out,
            "  commands: writes {}, audit {}{}",
            if config.commands.writes {
                "enabled"
            } else {
                "disabled"
            },
            if config.commands.audit_publish {
                "publish"
            } else {
                "log"
            },
            if any_writable(config) {
                ""
            } else {
                " (no writable point)"
            }
        );
    }
    match &config.uplink {
        None => {
            let _ = writeln!(out, "  uplink: off");
        }
        Some(u) => {
            let rules: Vec<String> = u
                .forward
                .iter()
                .map(|r| match &r.remote {
                    Some(remote) => format!("{} → {remote} (qos {})", r.local, r.qos.level()),
                    None => format!("{} (qos {})", r.local, r.qos.level()),
                })
                .collect();
            let _ = writeln!(
                out,
                "  uplink: {} (MQTT {}) as {}, window {}, forward {}",
                u.url,
                u.protocol.as_str(),
                u.client_id,
                u.window,
                rules.join(", ")
            );
            if !u.downlink.is_empty() {
                let filters: Vec<&str> = u.downlink.iter().map(|d| d.remote.as_str()).collect();
                let _ = writeln!(out, "  downlink: {}", filters.join(", "));
            }
            let q = &u.queue;
            let _ = writeln!(
                out,
                "  queue: {} (max_bytes {}, on_full {}, durability {})",
                q.path.display(),
                queue::size(q.max_bytes),
                q.on_full.as_str(),
                match q.durability {
                    config::Durability::Full => "full",
                    config::Durability::Normal => "normal",
                }
            );
        }
    }
    for w in warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Requests of one round of every poll class of a device.
fn requests_per_cycle(d: &Device) -> usize {
    plan::classes(d).iter().map(|c| c.reads.len()).sum()
}

/// Whether any point of the config accepts commands.
fn any_writable(config: &Config) -> bool {
    config
        .devices
        .iter()
        .flat_map(|d| &d.points)
        .any(|p| p.writable != config::Writable::No)
}

/// `temperature  holding 100..101  f32 CDAB  (written 40101)`.
fn describe_point(d: &Device, p: &Point) -> String {
    let last = p.end() - 1;
    let mut at = if u32::from(p.address) == last {
        format!("{} {}", p.kind, p.address)
    } else {
        format!("{} {}..{last}", p.kind, p.address)
    };
    if let Some(bit) = p.bit {
        at.push_str(&format!(" bit {bit}"));
    }
    let mut shape = p.data_type.to_string();
    if p.count > 1 {
        shape.push_str(&format!("[{}]", p.count));
    }
    let multi = p.data_type.registers() > 1 || p.data_type == config::DataType::String;
    if multi && !p.kind.is_bit() {
        shape.push(' ');
        shape.push_str(if p.data_type.registers() == 4 {
            p.order.as_str8()
        } else {
            p.order.as_str()
        });
    }
    let mut extra = String::new();
    if let Some(written) = &p.written_address {
        extra.push_str(&format!("  (written {written})"));
    }
    if p.deadband != config::Deadband::default() {
        extra.push_str(&format!("  deadband {}", p.deadband));
    }
    if let Some(poll) = p.poll.filter(|poll| *poll != d.poll) {
        extra.push_str(&format!("  poll {}", config::show_duration(poll)));
    }
    if let Some(rules) = crate::command::describe(p) {
        extra.push_str(&format!("  {rules}"));
    }
    format!("{:<16} {at:<22} {shape}{extra}", p.name)
}
