//! The only place that builds or parses MQTT topic strings, and the topic-filter rules.
//!
//! Topic contract (DESIGN.md):
//! - `{site}/{device}/{point}`            point state (retained JSON)
//! - `{site}/{device}/$state`             `online` / `offline` / `degraded` (retained)
//! - `{site}/{device}/{point}/set`        commands
//! - `{site}/{device}/{point}/set/result` command results
//! - `{site}/{device}/{point}/confirm`    confirmations of held commands (`confirm` points)
//! - `{site}/$agent/audit`                the audit trail of commands (when `audit: publish`)
//! - `{site}/$agent/state`                `online` / `offline` (retained; the upstream will)
//! - `{site}/$agent/uplink`               the uplink's state (retained JSON)
//!
//! [`Template`] (in `template.rs`) maps topics for the uplink's forward and downlink rules.
//!
//! Invariant: site, device and point names are valid topic levels ([`check_level`]), so the
//! topics built here are always valid topic names and parse back to the same parts.

pub mod sparkplug;
mod template;

pub use template::{min_levels, Template};

/// Topic level of the device state topic (`{site}/{device}/$state`).
pub const STATE_LEVEL: &str = "$state";
/// Topic level under which the agent publishes about itself (`{site}/$agent/...`).
pub const AGENT_LEVEL: &str = "$agent";

/// Builds and parses the topics of one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    site: String,
}

impl Topics {
    /// Topics under `site` (a valid topic level).
    pub fn new(site: &str) -> Self {
        Self {
            site: site.to_owned(),
        }
    }

    /// The site prefix.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// `{site}/{device}/{point}`: the retained state of a point.
    pub fn point(&self, device: &str, point: &str) -> String {
        format!("{}/{device}/{point}", self.site)
    }

    /// `{site}/{device}/$state`: the retained state of a device.
    pub fn device_state(&self, device: &str) -> String {
        format!("{}/{device}/{STATE_LEVEL}", self.site)
    }

    /// `{site}/$agent/state`: the retained state of the agent itself.
    pub fn agent_state(&self) -> String {
        format!("{}/{AGENT_LEVEL}/state", self.site)
    }

    /// `{site}/$agent/config`: the retained outcome of the last config reload (its errors when
    /// the new config was refused).
    pub fn agent_config(&self) -> String {
        format!("{}/{AGENT_LEVEL}/config", self.site)
    }

    /// `{site}/$agent/uplink`: the retained state of the uplink.
    pub fn agent_uplink(&self) -> String {
        format!("{}/{AGENT_LEVEL}/uplink", self.site)
    }

    /// `{site}/{device}/{point}/set`: where commands for a point arrive.
    pub fn command(&self, device: &str, point: &str) -> String {
        format!("{}/{device}/{point}/set", self.site)
    }

    /// `{site}/{device}/{point}/set/result`: where command results go.
    pub fn command_result(&self, device: &str, point: &str) -> String {
        format!("{}/{device}/{point}/set/result", self.site)
    }

    /// The filter matching every command topic of the site.
    pub fn command_filter(&self) -> String {
        format!("{}/+/+/set", self.site)
    }

    /// `(device, point)` when `topic` is a command topic of this site.
    pub fn parse_command<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        self.parse_point_action(topic, "set")
    }

    /// `{site}/{device}/{point}/confirm`: where held commands are confirmed.
    pub fn confirm(&self, device: &str, point: &str) -> String {
        format!("{}/{device}/{point}/confirm", self.site)
    }

    /// The filter matching every confirm topic of the site.
    pub fn confirm_filter(&self) -> String {
        format!("{}/+/+/confirm", self.site)
    }

    /// `(device, point)` when `topic` is a confirm topic of this site.
    pub fn parse_confirm<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        self.parse_point_action(topic, "confirm")
    }

    /// `{site}/$agent/audit`: the audit trail of commands.
    pub fn audit(&self) -> String {
        format!("{}/{AGENT_LEVEL}/audit", self.site)
    }

    fn parse_point_action<'t>(&self, topic: &'t str, action: &str) -> Option<(&'t str, &'t str)> {
        let rest = topic.strip_prefix(self.site.as_str())?.strip_prefix('/')?;
        let mut levels = rest.split('/');
        let device = levels.next()?;
        let point = levels.next()?;
        match (levels.next(), levels.next()) {
            (Some(a), None) if a == action && !device.is_empty() && !point.is_empty() => {
                Some((device, point))
            }
            _ => None,
        }
    }
}

/// Why a name cannot be used as a topic level.
pub fn check_level(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '+' | '#' | '$' | '\0'))
    {
        return Err(match c {
            '/' => "must not contain '/' (it separates topic levels)",
            '+' | '#' => "must not contain the MQTT wildcards '+' or '#'",
            '$' => "must not contain '$' (reserved for system topics)",
            _ => "must not contain NUL",
        });
    }
    if name.trim() != name {
        return Err("must not start or end with whitespace");
    }
    if name.len() > 256 {
        return Err("must be at most 256 bytes");
    }
    Ok(())
}

/// Why a string is not a valid MQTT topic filter (MQTT 3.1.1 §4.7).
pub fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("must not be empty");
    }
    if filter.len() > 65_535 {
        return Err("is longer than 65535 bytes");
    }
    if filter.contains('\0') {
        return Err("must not contain NUL");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != last) {
            return Err("'#' must be a whole level and the last one");
        }
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}

/// Whether a topic name matches a (valid) topic filter, with the MQTT rule that topics starting
/// with `$` are not matched by a filter starting with a wildcard.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic name matches both (valid) filters, with the `$` rule of [`matches()`].
pub fn filters_overlap(a: &str, b: &str) -> bool {
    if hides_dollar(a, b) || hides_dollar(b, a) {
        return false;
    }
    let (mut a, mut b) = (a.split('/'), b.split('/'));
    loop {
        match (a.next(), b.next()) {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (Some(x), Some(y)) if x == "+" || y == "+" || x == y => {}
            _ => return false,
        }
    }
}

/// Whether every topic name that `inner` matches is also matched by `outer` (both valid
/// filters), with the `$` rule of [`matches()`].
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    if hides_dollar(outer, inner) {
        return false;
    }
    let (mut o, mut i) = (outer.split('/'), inner.split('/'));
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(x), Some(y)) if x == y && x != "+" => {}
            _ => return false,
        }
    }
}

/// A filter starting with a wildcard matches no topic of a filter whose first level is a literal
/// starting with `$`.
fn hides_dollar(wild: &str, literal: &str) -> bool {
    (wild.starts_with('+') || wild.starts_with('#')) && literal.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_contract_topics() {
        let t = Topics::new("plant1");
        assert_eq!(t.point("boiler", "temp"), "plant1/boiler/temp");
        assert_eq!(t.device_state("boiler"), "plant1/boiler/$state");
        assert_eq!(t.agent_state(), "plant1/$agent/state");
        assert_eq!(t.agent_uplink(), "plant1/$agent/uplink");
        assert_eq!(t.command("boiler", "sp"), "plant1/boiler/sp/set");
        assert_eq!(
            t.command_result("boiler", "sp"),
            "plant1/boiler/sp/set/result"
        );
        assert_eq!(t.command_filter(), "plant1/+/+/set");
    }

    #[test]
    fn parses_command_topics_only() {
        let t = Topics::new("plant1");
        assert_eq!(
            t.parse_command("plant1/boiler/sp/set"),
            Some(("boiler", "sp"))
        );
        assert_eq!(t.parse_command("plant1/boiler/sp/set/result"), None);
        assert_eq!(t.parse_command("plant1/boiler/sp"), None);
        assert_eq!(t.parse_command("plant2/boiler/sp/set"), None);
        assert_eq!(t.parse_command("plant1x/boiler/sp/set"), None);
        assert_eq!(t.parse_command("plant1//sp/set"), None);
        let built = t.command("a b", "c-d");
        assert_eq!(t.parse_command(&built), Some(("a b", "c-d")));
        assert_eq!(
            t.parse_confirm("plant1/boiler/sp/confirm"),
            Some(("boiler", "sp"))
        );
        assert_eq!(t.parse_confirm("plant1/boiler/sp/set"), None);
        assert_eq!(t.parse_command("plant1/boiler/sp/confirm"), None);
        assert_eq!(t.confirm("boiler", "sp"), "plant1/boiler/sp/confirm");
        assert_eq!(t.audit(), "plant1/$agent/audit");
    }

    #[test]
    fn level_rules() {
        assert!(check_level("boiler-1").is_ok());
        assert!(check_level("Température").is_ok());
        for bad in ["", "a/b", "a+", "#", "$state", " x", "x\0"] {
            assert!(check_level(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn filter_rules() {
        for ok in ["#", "+", "a/#", "a/+/c", "+/+/set", "$SYS/#", "a//b"] {
            assert!(check_filter(ok).is_ok(), "{ok:?} refused");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "a/+b/c"] {
            assert!(check_filter(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn matching() {
        let cases = [
            ("#", "a/b", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+/c", "a/b/c", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("+/+", "a/", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("demo/+/+/set", "demo/boiler/sp/set", true),
            ("demo/+/+/set", "demo/boiler/sp/set/result", false),
        ];
        for (f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f} vs {t}");
        }
    }

    #[test]
    fn filters_overlapping_and_covering() {
        // (a, b, overlap, a covers b)
        let cases = [
            ("#", "a/b", true, true),
            ("a/#", "a", true, true),
            ("a", "a/#", true, false),
            ("a/+", "a/b", true, true),
            ("a/b", "a/+", true, false),
            ("a/+", "+/b", true, false),
            ("a/+", "a/+", true, true),
            ("a/+", "a/#", true, false),
            ("a/+/c", "a/b/d", false, false),
            ("a/b", "a/b/c", false, false),
            ("+/+", "a/b/c", false, false),
            ("#", "$SYS/#", false, false),
            ("+/x", "$SYS/x", false, false),
            ("$SYS/#", "$SYS/broker/+", true, true),
            ("site/+/+/set", "site/#", true, false),
            ("site/#", "site/+/+/set", true, true),
        ];
        for (a, b, overlap, covers) in cases {
            assert_eq!(filters_overlap(a, b), overlap, "overlap {a} {b}");
            assert_eq!(filters_overlap(b, a), overlap, "overlap {b} {a}");
            assert_eq!(filter_covers(a, b), covers, "{a} covers {b}");
        }
    }
}
