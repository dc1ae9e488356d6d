//! Device profiles: named point maps with device defaults, shared by every device of a model.
//!
//! A profile is defined inline (`profiles: {NAME: {...}}`) or in a file of its own under
//! `profiles_dir` (one file per device model, `name:` inside or the file's stem). A device
//! names one with `profile: NAME` and may add points (`points`, `groups`), change some keys of
//! a profile point (`overrides: {POINT: {deadband, writable, ...}}`) and leave points out
//! (`drop: [POINT, ...]`).
//!
//! Invariants:
//! - a profile's points are validated once, where they are written (its own file and line);
//! - a device's resolved map is the profile's points in profile order (minus dropped, with
//!   overrides applied), then the device's own points; it obeys every rule of a plain device
//!   (names unique, no overlap, writable only where the table allows);
//! - an error caused by combining a device with its profile is reported at the device, and
//!   names the profile and the `file:line` of the profile point involved.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::decode::{expected, map, quote, Ctx, Decode, Map, Seg};
use super::model::{Point, Writable};
use super::model::{ProfileInfo, ProfileUse, WordOrder};
use super::origin::Origin;
use super::points::{point_list, Inherited};
use super::scalar::{AddressBase, Finite, Scale};
use super::validate;

/// Keys of a profile body.
const PROFILE: &[&str] = &[
    "description",
    "source",
    "poll",
    "timeout",
    "heartbeat",
    "max_gap",
    "address_base",
    "order",
    "points",
];
/// Keys of a profile file: a profile body and its name.
const PROFILE_FILE: &[&str] = &[
    "name",
    "description",
    "source",
    "poll",
    "timeout",
    "heartbeat",
    "max_gap",
    "address_base",
    "order",
    "points",
];
/// Keys a device may override on a profile point.
pub const OVERRIDE: &[&str] = &[
    "deadband",
    "heartbeat",
    "poll",
    "writable",
    "enum",
    "scale",
    "offset",
    "unit",
];

/// A decoded profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// `file:line` of its definition.
    pub at: String,
    pub poll: Option<Duration>,
    pub timeout: Option<Duration>,
    pub heartbeat: Option<Duration>,
    pub max_gap: Option<u16>,
    pub address_base: Option<u8>,
    /// Default word order of the profile's points (and of the points a device adds).
    pub order: Option<WordOrder>,
    /// The points, each with the `file:line` where it is written.
    pub points: Vec<(Point, String)>,
}

/// The profiles of a config (inline ones and those of `profiles_dir`).
#[derive(Debug, Default)]
pub struct Profiles {
    /// Those that decoded.
    pub valid: Vec<Profile>,
    /// Names (or file stems) of those that did not (reported where they are written): a
    /// device naming one is not reported again.
    pub failed: Vec<String>,
    /// Whether the sections themselves decoded (the directory could be read...).
    pub ok: bool,
}

/// Decodes `profiles` and `profiles_dir` of the top-level mapping.
pub fn profiles(cx: &mut Ctx, m: &Map<'_>, origin: &Origin) -> (Profiles, Option<PathBuf>) {
    let mut ok = true;
    let mut out: Vec<Profile> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let inline = m.optional_with(cx, "profiles", |cx, v| {
        let Some(mapping) = v.as_mapping() else {
            cx.error(expected(
                "a mapping of profile names to profiles, e.g. `{sdm630: {points: [...]}}`",
                v,
            ));
            return None;
        };
        let mut found = Vec::new();
        for (key, body) in mapping {
            let Some(name) = key.as_str() else {
                cx.error(format!(
                    "profile names must be strings, found {}",
                    super::decode::describe(key)
                ));
                continue;
            };
            let at = cx
                .where_is_key(name)
                .unwrap_or_else(|| format!("profiles.{name}"));
            let decoded = cx.at_key(name, |cx| {
                valid_name(cx, name)?;
                body_of(cx, body, name.to_owned(), at, PROFILE)
            });
            match decoded {
                Some(p) => found.push(p),
                None => failed.push(name.to_owned()),
            }
        }
        Some(found)
    });
    match inline {
        Some(Some(found)) => out.extend(found),
        Some(None) => {}
        None => ok = false,
    }
    let dir = m.optional_with(cx, "profiles_dir", |cx, v| {
        let dir = String::decode(cx, v)?;
        Some(origin.base_dir.join(dir))
    });
    let dir = match dir {
        Some(dir) => dir,
        None => {
            ok = false;
            None
        }
    };
    if let Some(dir) = &dir {
        match cx.at_key("profiles_dir", |cx| from_dir(cx, dir, &mut failed)) {
            Some(found) => {
                for p in found {
                    if let Some(first) = out.iter().find(|q| q.name == p.name) {
                        cx.at_key("profiles_dir", |cx| {
                            cx.error(format!(
                                "profile {} is defined twice: at {} and at {}",
                                quote(&p.name),
                                first.at,
                                p.at
                            ));
                        });
                        ok = false;
                    } else {
                        out.push(p);
                    }
                }
            }
            None => ok = false,
        }
    }
    let profiles = Profiles {
        valid: out,
        failed,
        ok,
    };
    (profiles, dir)
}

fn valid_name(cx: &mut Ctx, name: &str) -> Option<()> {
    let bad = name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        cx.error(format!(
            "{} is not a valid profile name; expected a word without spaces, e.g. `sdm630`",
            quote(name)
        ));
        return None;
    }
    Some(())
}

/// The valid profile files of `dir` (`*.yaml`, `*.yml`, by file name); the problems of the
/// others are reported in their own files and their names added to `failed`. `None` when the
/// directory cannot be read.
fn from_dir(cx: &mut Ctx, dir: &Path, failed: &mut Vec<String>) -> Option<Vec<Profile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            cx.error(format!(
                "cannot read the profiles directory {}: {e}",
                dir.display()
            ));
            return None;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        match from_file(&file) {
            Ok(p) => out.push(p),
            Err(diagnostics) => {
                cx.elsewhere(diagnostics);
                failed.push(profile_name_of(&file));
            }
        }
    }
    Some(out)
}

/// The name a profile file gives itself (`name:`), else its stem; for naming a failed file.
fn profile_name_of(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("name:")
                    .map(|n| n.trim().trim_matches(['"', '\'']).to_owned())
            })
        })
        .unwrap_or(stem)
}

/// Reads and decodes one profile file.
pub fn from_file(path: &Path) -> Result<Profile, Vec<super::Diagnostic>> {
    let name = path.display().to_string();
    let one = |message: String| {
        vec![super::Diagnostic {
            file: name.clone(),
            line: 1,
            column: 1,
            path: String::new(),
            message,
        }]
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Err(one(format!("cannot read the profile file: {e}"))),
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    from_text(&name, &text, stem)
}

/// Decodes the text of a profile file named `name`; `stem` is its name when it gives none.
pub fn from_text(name: &str, text: &str, stem: String) -> Result<Profile, Vec<super::Diagnostic>> {
    let name = name.to_owned();
    let text = text.to_owned();
    let one = |message: String| {
        vec![super::Diagnostic {
            file: name.clone(),
            line: 1,
            column: 1,
            path: String::new(),
            message,
        }]
    };
    let (root, found) = super::tree::file_tree(&name, &text).map_err(|d| vec![d])?;
    let mut cx = Ctx::with_source(&name, &text);
    for problem in found {
        cx.push(problem);
    }
    let profile = if root.is_mapping() {
        let given = root.get("name").and_then(Value::as_str).map(str::to_owned);
        let profile_name = given.unwrap_or(stem);
        if root.get("name").is_some_and(|v| !v.is_string()) {
            cx.at_key("name", |cx| {
                cx.error(expected(
                    "a profile name",
                    root.get("name").unwrap_or(&Value::Null),
                ))
            });
        }
        valid_name(&mut cx, &profile_name);
        let at = format!("{name}:1");
        body_of(&mut cx, &root, profile_name, at, PROFILE_FILE)
    } else {
        cx.error(expected("a mapping with the profile's `points`", &root));
        None
    };
    let (problems, _) = cx.into_parts();
    match profile {
        Some(p) if problems.is_empty() => Ok(p),
        _ => {
            let mut d = super::tree::located(&name, &text, problems);
            if d.is_empty() {
                d = one("internal error: the profile did not decode".into());
            }
            Err(d)
        }
    }
}

/// Decodes a profile body (`keys` allowed) at the context.
fn body_of(cx: &mut Ctx, node: &Value, name: String, at: String, keys: &[&str]) -> Option<Profile> {
    let m = map(cx, node, keys)?;
    let _ = m.optional::<String>(cx, "description");
    let _ = m.optional::<String>(cx, "source");
    let poll = m.optional::<Duration>(cx, "poll");
    let timeout = m.optional::<Duration>(cx, "timeout");
    validate::timing(cx, poll.flatten(), timeout.flatten());
    let heartbeat = m.optional::<Duration>(cx, "heartbeat");
    let max_gap = m.optional::<u16>(cx, "max_gap");
    let address_base = m.optional::<AddressBase>(cx, "address_base");
    let order = m.optional::<WordOrder>(cx, "order");
    let base = address_base.flatten().map_or(0, |b| b.0);
    let inherited = Inherited {
        order: order.flatten(),
        ..Inherited::default()
    };
    let points = m.required_with(cx, "points", |cx, v| {
        let items = point_list(cx, v, base, &inherited)?;
        if items.is_empty() {
            cx.error("no points: a profile needs at least one point");
        }
        let paths: Vec<Vec<Seg>> = (0..items.len()).map(|i| vec![Seg::Index(i)]).collect();
        let at: Vec<validate::PointAt<'_>> = items
            .iter()
            .zip(&paths)
            .map(|(p, path)| validate::PointAt {
                path,
                name: p.name.as_deref(),
                point: p.item.as_ref(),
            })
            .collect();
        validate::points(cx, &at);
        let mut out = Vec::with_capacity(items.len());
        for (i, p) in items.into_iter().enumerate() {
            let line = cx
                .where_is(&[Seg::Index(i)])
                .unwrap_or_else(|| format!("{name} point {i}"));
            out.push((p.item?, line));
        }
        Some(out)
    });
    Some(Profile {
        name,
        at,
        poll: poll?,
        timeout: timeout?,
        heartbeat: heartbeat?,
        max_gap: max_gap?,
        address_base: address_base?.map(|b| b.0),
        order: order?,
        points: points?,
    })
}

/// `profile: NAME` on a device: the profile, `None` when unknown (reported) or when the
/// profiles failed to decode (reported there).
pub fn lookup<'p>(cx: &mut Ctx, node: &Value, all: &'p Profiles) -> Option<&'p Profile> {
    let name = String::decode(cx, node)?;
    if all.failed.contains(&name) || !all.ok {
        return None;
    }
    let profiles = &all.valid;
    match profiles.iter().find(|p| p.name == name) {
        Some(p) => Some(p),
        None if profiles.is_empty() => {
            cx.error(format!(
                "no profile named {}: the config defines none (`profiles:` or `profiles_dir:`)",
                quote(&name)
            ));
            None
        }
        None => {
            let known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
            cx.error(format!(
                "no profile named {}; expected one of {}",
                quote(&name),
                known.join(", ")
            ));
            None
        }
    }
}

/// A device's resolved point map: the profile's points (minus `drop`, with `overrides`), then
/// `own` (the device's points, with their paths in the device). The context is at the device.
pub fn resolve(
    cx: &mut Ctx,
    m: &Map<'_>,
    device: Option<&str>,
    profile: &Profile,
    own: Vec<(Vec<Seg>, Point)>,
) -> Option<(Vec<Point>, ProfileUse)> {
    let pname = profile.name.clone();
    let of_profile = |point: &str, at: &str| {
        format!(
            "point {} of profile {} at {at}",
            quote(point),
            quote(&pname)
        )
    };
    let known = |cx: &mut Ctx, name: &str| -> bool {
        if profile.points.iter().any(|(p, _)| p.name == name) {
            return true;
        }
        cx.error(format!(
            "profile {} ({}) has no point {}; its points are {}",
            quote(&profile.name),
            profile.at,
            quote(name),
            listing(profile)
        ));
        false
    };
    let mut ok = true;
    let dropped: Vec<String> = m
        .optional_with(cx, "drop", |cx, v| {
            let items = super::decode::list(cx, v, |cx, v| {
                let name = String::decode(cx, v)?;
                known(cx, &name).then_some(name)
            })?;
            super::decode::all(items)
        })
        .unwrap_or_else(|| {
            ok = false;
            None
        })
        .unwrap_or_default();
    let mut points: Vec<(Point, String)> = profile
        .points
        .iter()
        .filter(|(p, _)| !dropped.contains(&p.name))
        .cloned()
        .collect();
    let mut overridden = Vec::new();
    let overrides = m.optional_with(cx, "overrides", |cx, v| {
        let Some(mapping) = v.as_mapping() else {
            cx.error(expected(
                "a mapping of profile point names to the keys to change, e.g. \
                 `{voltage_l1: {deadband: 0.5}}`",
                v,
            ));
            return None;
        };
        let mut all_ok = true;
        for (key, change) in mapping {
            let Some(name) = key.as_str() else {
                cx.error(format!(
                    "point names must be strings, found {}",
                    super::decode::describe(key)
                ));
                all_ok = false;
                continue;
            };
            let done = cx.at_key(name, |cx| {
                if !known(cx, name) {
                    return None;
                }
                if dropped.iter().any(|d| d == name) {
                    cx.error(format!(
                        "point {} is in `drop` and cannot be overridden as well",
                        quote(name)
                    ));
                    return None;
                }
                let (point, at) = points.iter_mut().find(|(p, _)| p.name == name)?;
                let at = at.clone();
                let amend = |message: &str| format!("{message} ({})", of_profile(name, &at));
                cx.amended(|cx| apply_override(cx, change, point), amend)
            });
            match done {
                Some(()) => overridden.push(name.to_owned()),
                None => all_ok = false,
            }
        }
        all_ok.then_some(())
    });
    if overrides.is_none() {
        ok = false;
    }
    // The device's own points against the profile's: names and registers.
    for (path, p) in &own {
        for (q, at) in &points {
            if q.name == p.name {
                at_path(cx, path, |cx| {
                    cx.at_key("name", |cx| {
                        cx.error(format!(
                            "duplicate point name {}: already {}; change it with `overrides: \
                             {{{}: {{...}}}}`, or replace it: add it to `drop` and define it here",
                            quote(&p.name),
                            of_profile(&q.name, at),
                            q.name
                        ));
                    });
                });
                ok = false;
            } else if validate::overlaps(q, p) {
                at_path(cx, path, |cx| {
                    cx.at_key("address", |cx| {
                        cx.error(format!(
                            "{} overlaps {} ({})",
                            validate::span(p),
                            of_profile(&q.name, at),
                            validate::span(q)
                        ));
                    });
                });
                ok = false;
            }
        }
    }
    let added = own.len();
    let mut resolved: Vec<Point> = points.into_iter().map(|(p, _)| p).collect();
    resolved.extend(own.into_iter().map(|(_, p)| p));
    if resolved.is_empty() {
        cx.at_key("drop", |cx| {
            cx.error(format!(
                "no points left: every point of profile {} is dropped and the device adds none",
                quote(&profile.name)
            ))
        });
        ok = false;
    }
    let usage = ProfileUse {
        profile: profile.name.clone(),
        device: device.unwrap_or_default().to_owned(),
        added,
        overridden,
        dropped,
    };
    ok.then_some((resolved, usage))
}

/// Applies one `overrides.POINT` mapping to `point` and checks the point's rules again.
fn apply_override(cx: &mut Ctx, change: &Value, point: &mut Point) -> Option<()> {
    let m = map(cx, change, OVERRIDE)?;
    let deadband = m.optional(cx, "deadband");
    let heartbeat = m.optional::<Duration>(cx, "heartbeat");
    let poll = m.optional::<Duration>(cx, "poll");
    validate::timing(cx, poll.flatten(), None);
    let writable = m.optional::<super::write::WritableSpec>(cx, "writable");
    let names = m.optional::<super::write::Names>(cx, "enum");
    let scale = m.optional::<Scale>(cx, "scale");
    let offset = m.optional::<Finite>(cx, "offset");
    let unit = m.optional::<String>(cx, "unit");
    if let Some(d) = deadband? {
        point.deadband = d;
    }
    if let Some(h) = heartbeat? {
        point.heartbeat = Some(h);
    }
    if let Some(p) = poll? {
        point.poll = Some(p);
    }
    if let Some(w) = writable? {
        point.writable = w.writable;
        point.write = w.rules;
    }
    if let Some(n) = names? {
        point.names = n.0;
    }
    if let Some(s) = scale? {
        point.scale = s.0;
    }
    if let Some(o) = offset? {
        point.offset = o.0;
    }
    if let Some(u) = unit? {
        point.unit = Some(u);
    }
    let before = cx.problem_count();
    super::write::point_rules(cx, point);
    if point.writable == Writable::No {
        point.write = Default::default();
    }
    (cx.problem_count() == before).then_some(())
}

fn listing(profile: &Profile) -> String {
    const MAX: usize = 12;
    let names: Vec<&str> = profile
        .points
        .iter()
        .take(MAX)
        .map(|(p, _)| p.name.as_str())
        .collect();
    let more = profile.points.len().saturating_sub(MAX);
    if more > 0 {
        format!("{} and {more} more", names.join(", "))
    } else {
        names.join(", ")
    }
}

fn at_path<R>(cx: &mut Ctx, path: &[Seg], f: impl FnOnce(&mut Ctx) -> R) -> R {
    match path.split_first() {
        None => f(cx),
        Some((Seg::Key(k), rest)) => cx.at_key(k, |cx| at_path(cx, rest, f)),
        Some((Seg::Index(i), rest)) => cx.at_index(*i, |cx| at_path(cx, rest, f)),
    }
}

/// What `check` shows of the profiles: each with where it is defined and who uses it.
pub fn infos(profiles: &[Profile], uses: &[ProfileUse]) -> Vec<ProfileInfo> {
    profiles
        .iter()
        .map(|p| ProfileInfo {
            name: p.name.clone(),
            at: p.at.clone(),
            points: p.points.len(),
            devices: uses
                .iter()
                .filter(|u| u.profile == p.name)
                .cloned()
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::model::*;
    use crate::config::testing::origin;
    use crate::config::{parse, ConfigError};

    const SITE: &str = "\
site: s
profiles:
  meter:
    poll: 2s
    timeout: 300ms
    order: CDAB
    address_base: 1
    points:
      - {name: v, kind: input, address: 1, type: f32}
      - {name: f, kind: input, address: 11, type: u16, scale: 0.1}
      - {name: sp, kind: holding, address: 21, type: i16}
devices:
";

    fn messages(text: &str) -> Vec<String> {
        match parse(text, &origin()) {
            Err(ConfigError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    #[test]
    fn a_device_gets_the_profile_defaults_map_and_its_changes() {
        let text = format!(
            "{SITE}  - name: m
    tcp: \"h:502\"
    timeout: 1s
    profile: meter
    drop: [f]
    overrides: {{sp: {{writable: {{min: 0, max: 50}}, deadband: 2}}}}
    points: [{{name: extra, kind: input, address: 31, type: u32}}]
"
        );
        let config = parse(&text, &origin()).unwrap_or_else(|e| panic!("{e}"));
        let d = &config.devices[0];
        assert_eq!(
            (d.poll, d.timeout),
            (
                std::time::Duration::from_secs(2),
                std::time::Duration::from_secs(1)
            )
        );
        assert_eq!(d.address_base, 1);
        let names: Vec<&str> = d.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["v", "sp", "extra"]);
        // The profile's base and order apply to its points and to the device's own.
        assert_eq!(
            (d.points[0].address, d.points[0].order),
            (0, WordOrder::Cdab)
        );
        assert_eq!(
            (d.points[2].address, d.points[2].order),
            (30, WordOrder::Cdab)
        );
        assert_eq!(
            d.points[1].writable,
            Writable::Yes {
                min: Some(0.0),
                max: Some(50.0)
            }
        );
        assert_eq!(d.points[1].deadband, Deadband::Absolute(2.0));
        let usage = config.profile_of("m").expect("uses a profile");
        assert_eq!(
            (usage.added, usage.overridden.clone(), usage.dropped.clone()),
            (1, vec!["sp".to_owned()], vec!["f".to_owned()])
        );
        assert_eq!(config.profiles[0].at, "test.yaml:3");
    }

    #[test]
    fn combining_errors_name_the_device_and_the_profile_line() {
        let text = format!(
            "{SITE}  - name: m
    tcp: \"h:502\"
    profile: meter
    overrides: {{v: {{writable: true}}, nope: {{deadband: 1}}}}
    drop: [f, f2]
  - {{name: n, tcp: \"h:502\", profile: metre}}
  - {{name: o, tcp: \"h:502\", drop: [v], points: [{{name: a, kind: coil, address: 0}}]}}
"
        );
        let got = messages(&text);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].starts_with("test.yaml:16:31: devices[0].overrides.v.writable: an input point cannot be writable"), "{}", got[0]);
        assert!(
            got[0].ends_with("(point `v` of profile `meter` at test.yaml:9)"),
            "{}",
            got[0]
        );
        assert!(got[1].starts_with("test.yaml:16:44: devices[0].overrides.nope: profile `meter` (test.yaml:3) has no point `nope`"), "{}", got[1]);
        assert!(got[2].starts_with("test.yaml:17:15: devices[0].drop[1]: profile `meter` (test.yaml:3) has no point `f2`"), "{}", got[2]);
        assert!(
            got[3].contains("devices[1].profile: no profile named `metre`; expected one of meter"),
            "{}",
            got[3]
        );
        assert!(got[4].contains("devices[2].drop: `drop` changes the points of a profile; this device has no `profile`"), "{}", got[4]);
    }
}
