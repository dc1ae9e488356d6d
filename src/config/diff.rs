//! What changed between two valid configs, for a reload (pure).
//!
//! The unit of restart on the field side is the line (one TCP `host:port` or one serial bus:
//! one task owns it). A line is kept — its connection stays open and its devices miss no poll
//! — when it serves exactly the same devices, in the same order, with identical settings,
//! and nothing it depends on (site, `modbus` section) changed. Every other line is started,
//! stopped or restarted.
//!
//! The other sections restart their own component only: `broker` is applied to the running
//! broker in place (clients stay connected; lines and commands are not touched), `uplink` the
//! upstream link
//! (the queue stays open), `metrics` the HTTP endpoint, `commands` (the write switch and the
//! audit setting) the command router only (devices keep their lines), `status` the status
//! page's server only.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::{Config, Device, Transport};

/// The line a transport belongs to: `tcp HOST:PORT` or `bus NAME`.
pub fn line_key(transport: &Transport) -> String {
    match transport {
        Transport::Tcp(addr) => format!("tcp {addr}"),
        Transport::Rtu(bus) => format!("bus {}", bus.name),
    }
}

/// Devices by line, in the order of the config.
pub fn lines(devices: &[Arc<Device>]) -> BTreeMap<String, Vec<Arc<Device>>> {
    let mut lines: BTreeMap<String, Vec<Arc<Device>>> = BTreeMap::new();
    for d in devices {
        lines
            .entry(line_key(&d.transport))
            .or_default()
            .push(d.clone());
    }
    lines
}

/// What a reload must do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Lines whose devices and settings are unchanged: left running.
    pub kept: Vec<String>,
    /// Lines only in the new config.
    pub added: Vec<String>,
    /// Lines only in the old config.
    pub removed: Vec<String>,
    /// Lines in both, with a change (a device added, removed or edited).
    pub changed: Vec<String>,
    pub site: bool,
    pub broker: bool,
    pub modbus: bool,
    pub uplink: bool,
    pub metrics: bool,
    pub commands: bool,
    pub status: bool,
}

impl Diff {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.site
            && !self.broker
            && !self.modbus
            && !self.uplink
            && !self.metrics
            && !self.commands
            && !self.status
    }

    /// Every line restarts (what they all depend on changed).
    pub fn all_lines(&self) -> bool {
        self.site || self.modbus
    }

    /// One line per change, for the log and the `$agent/config` message.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, flag) in [
            ("site", self.site),
            ("broker", self.broker),
            ("modbus", self.modbus),
            ("uplink", self.uplink),
            ("metrics", self.metrics),
            ("commands", self.commands),
            ("status", self.status),
        ] {
            if flag {
                out.push(format!("{what} changed"));
            }
        }
        for (what, lines) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            for l in lines {
                out.push(format!("line {l} {what}"));
            }
        }
        out
    }
}

/// Compares `old` and `new` (both valid; `devices` as given, since the agent keeps its own
/// shared copies).
pub fn diff(
    old: &Config,
    old_devices: &[Arc<Device>],
    new: &Config,
    new_devices: &[Arc<Device>],
) -> Diff {
    let before = lines(old_devices);
    let after = lines(new_devices);
    let mut d = Diff {
        site: old.site != new.site,
        broker: old.broker != new.broker,
        modbus: old.modbus != new.modbus,
        uplink: old.uplink != new.uplink,
        metrics: old.metrics != new.metrics,
        commands: old.commands != new.commands,
        status: old.status != new.status,
        ..Diff::default()
    };
    for (key, devices) in &after {
        match before.get(key) {
            None => d.added.push(key.clone()),
            Some(was) if same(was, devices) => d.kept.push(key.clone()),
            Some(_) => d.changed.push(key.clone()),
        }
    }
    d.removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    d
}

fn same(a: &[Arc<Device>], b: &[Arc<Device>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| **x == **y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Origin};

    fn config(devices: &str, extra: &str) -> (Config, Vec<Arc<Device>>) {
        let text = format!("site: plant1\ndevices:\n{devices}{extra}");
        let origin = Origin {
            name: "t.yaml".into(),
            base_dir: std::env::temp_dir(),
            state_dir: std::env::temp_dir(),
        };
        let mut c = parse(&text, &origin).expect("valid test config");
        let devices = std::mem::take(&mut c.devices)
            .into_iter()
            .map(Arc::new)
            .collect();
        (c, devices)
    }

    const A: &str = "  - {name: a, tcp: \"10.0.0.1:502\", points: [{name: t, address: 1}]}\n";
    const B: &str = "  - {name: b, tcp: \"10.0.0.2:502\", points: [{name: t, address: 1}]}\n";
    const B2: &str = "  - {name: b, tcp: \"10.0.0.2:502\", points: [{name: t, address: 2}]}\n";
    const C: &str =
        "  - {name: c, tcp: \"10.0.0.2:502\", unit: 2, points: [{name: t, address: 1}]}\n";
    const D: &str = "  - {name: d, tcp: \"10.0.0.4:502\", points: [{name: t, address: 1}]}\n";

    #[test]
    fn only_lines_with_a_changed_device_restart() {
        let (old, od) = config(&format!("{A}{B}"), "");
        let (new, nd) = config(&format!("{A}{B2}{D}"), "");
        let d = diff(&old, &od, &new, &nd);
        assert_eq!(d.kept, ["tcp 10.0.0.1:502"]);
        assert_eq!(d.changed, ["tcp 10.0.0.2:502"]);
        assert_eq!(d.added, ["tcp 10.0.0.4:502"]);
        assert!(d.removed.is_empty());
        assert!(!d.all_lines() && !d.uplink && !d.broker);
        // A device joining a shared line changes that line.
        let (new, nd) = config(&format!("{A}{B}{C}"), "");
        let d = diff(&old, &od, &new, &nd);
        assert_eq!(d.changed, ["tcp 10.0.0.2:502"]);
        // Removing a line.
        let (new, nd) = config(A, "");
        let d = diff(&old, &od, &new, &nd);
        assert_eq!(d.removed, ["tcp 10.0.0.2:502"]);
        assert_eq!(d.summary(), ["line tcp 10.0.0.2:502 removed"]);
    }

    #[test]
    fn identical_configs_have_an_empty_diff_and_sections_are_seen() {
        let (old, od) = config(A, "");
        let (new, nd) = config(A, "");
        assert!(diff(&old, &od, &new, &nd).is_empty());
        let (new, nd) = config(A, "modbus: {max_connections_per_host: 2}\n");
        let d = diff(&old, &od, &new, &nd);
        assert!(d.modbus && d.all_lines());
        let (new, nd) = config(A, "metrics: {}\n");
        assert!(diff(&old, &od, &new, &nd).metrics);
        let (new, nd) = config(A, "status: {}\n");
        let d = diff(&old, &od, &new, &nd);
        assert!(d.status && !d.is_empty() && !d.all_lines());
        assert_eq!(d.summary(), ["status changed"]);
        let (new, nd) = config(A, "broker: {listeners: [{bind: \"127.0.0.1:1884\"}]}\n");
        let d = diff(&old, &od, &new, &nd);
        assert!(d.broker && !d.uplink);
    }

    #[test]
    fn a_commands_change_replaces_the_router_only() {
        let (old, od) = config(A, "");
        let (new, nd) = config(A, "commands: {writes: disabled}\n");
        let d = diff(&old, &od, &new, &nd);
        assert!(d.commands && !d.is_empty() && !d.all_lines());
        assert_eq!(d.kept, ["tcp 10.0.0.1:502"]);
        assert_eq!(d.summary(), ["commands changed"]);
        // A point's write rules are part of its device: that line restarts.
        let point = |rules: &str| {
            format!("  - {{name: a, tcp: \"10.0.0.1:502\", points: [{{name: t, kind: holding, address: 1{rules}}}]}}\n")
        };
        let (old, od) = config(&point(""), "");
        let (new, nd) = config(&point(", writable: {max: 5}"), "");
        assert_eq!(diff(&old, &od, &new, &nd).changed, ["tcp 10.0.0.1:502"]);
    }
}
