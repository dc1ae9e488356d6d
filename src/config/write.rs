//! The keys that govern commands: a point's `writable` (range, `step`, `rate_limit`,
//! `confirm`) and `enum`, and the top-level `commands` section (`writes`, `audit`).
//!
//! Invariants: a decoded [`WriteRules`] has a positive finite `step`, non-zero periods, and a
//! `min` not above `max`; enum names are unique, non-empty and their values finite and
//! distinct. [`point_rules`] (called by `validate.rs` for each point) refuses `writable` on
//! read-only tables and `bits` points, a range on a bool, a `step` or `enum` on a non-number,
//! a point too wide for one write, and enum values outside the writable range.

use std::time::Duration;

use serde_yaml::Value;

use super::decode::{expected, map, quote, Ctx, Decode};
use super::model::{
    CommandSettings, DataType, Point, RegisterKind, Writable, WriteRules, DEFAULT_CONFIRM_TIMEOUT,
};
use super::scalar::Finite;

const WRITABLE: &[&str] = &["min", "max", "step", "rate_limit", "confirm"];
const COMMANDS: &[&str] = &["writes", "audit"];

/// `writable`: `true`, `false`, or `{min, max, step, rate_limit, confirm}`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WritableSpec {
    pub writable: Writable,
    pub rules: WriteRules,
}

impl Decode for WritableSpec {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        if !node.is_mapping() {
            return Writable::decode(cx, node).map(|writable| WritableSpec {
                writable,
                rules: WriteRules::default(),
            });
        }
        let m = map(cx, node, WRITABLE)?;
        let min = m.optional::<Finite>(cx, "min");
        let max = m.optional::<Finite>(cx, "max");
        let step = m.optional_with(cx, "step", |cx, v| {
            let f = Finite::decode(cx, v)?.0;
            if f <= 0.0 {
                cx.error(format!(
                    "`{f}` is not a valid step; expected a number above 0"
                ));
                return None;
            }
            Some(f)
        });
        let rate_limit = m.optional_with(cx, "rate_limit", period);
        let confirm = m.optional_with(cx, "confirm", |cx, v| match v {
            Value::Bool(true) => Some(Some(DEFAULT_CONFIRM_TIMEOUT)),
            Value::Bool(false) => Some(None),
            _ => period(cx, v).map(Some),
        });
        let (min, max) = (min?.map(|f| f.0), max?.map(|f| f.0));
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                cx.error(format!("min {lo} is greater than max {hi}"));
                return None;
            }
        }
        Some(WritableSpec {
            writable: Writable::Yes { min, max },
            rules: WriteRules {
                step: step?,
                rate_limit: rate_limit?,
                confirm: confirm?.flatten(),
            },
        })
    }
}

/// A duration (the `Duration` decoder already refuses zero).
fn period(cx: &mut Ctx, node: &Value) -> Option<Duration> {
    Duration::decode(cx, node)
}

/// `enum: {off: 0, auto: 1, manual: 2}`: names and their engineering values, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Names(pub Vec<(String, f64)>);

impl Decode for Names {
    fn decode(cx: &mut Ctx, node: &Value) -> Option<Self> {
        let Some(mapping) = node.as_mapping() else {
            cx.error(expected(
                "a mapping of names to values, e.g. `{off: 0, auto: 1, manual: 2}`",
                node,
            ));
            return None;
        };
        if mapping.is_empty() {
            cx.error("an empty `enum`; name at least one value, e.g. `{off: 0, on: 1}`");
            return None;
        }
        let mut out: Vec<(String, f64)> = Vec::with_capacity(mapping.len());
        let mut ok = true;
        for (key, value) in mapping {
            let Some(name) = key.as_str() else {
                cx.error(format!(
                    "enum names must be strings, found {}",
                    quote(&format!("{key:?}"))
                ));
                ok = false;
                continue;
            };
            if name.trim().is_empty() {
                cx.error("an enum name is empty");
                ok = false;
                continue;
            }
            let Some(v) = cx.at_key(name, |cx| Finite::decode(cx, value)) else {
                ok = false;
                continue;
            };
            if let Some((other, _)) = out.iter().find(|(_, w)| *w == v.0) {
                let (other, v) = (other.clone(), v.0);
                cx.at_key(name, |cx| {
                    cx.error(format!(
                        "value {v} is already named {}; each value has one name",
                        quote(&other)
                    ));
                });
                ok = false;
                continue;
            }
            out.push((name.to_owned(), v.0));
        }
        ok.then_some(Names(out))
    }
}

/// The `commands` section: `{writes: enabled|disabled, audit: log|publish}`.
pub fn commands(cx: &mut Ctx, node: &Value) -> Option<CommandSettings> {
    let m = map(cx, node, COMMANDS)?;
    let writes = m.optional_with(cx, "writes", |cx, v| {
        word(cx, v, &[("enabled", true), ("disabled", false)])
    });
    let audit = m.optional_with(cx, "audit", |cx, v| {
        word(cx, v, &[("log", false), ("publish", true)])
    });
    let defaults = CommandSettings::default();
    Some(CommandSettings {
        writes: writes?.unwrap_or(defaults.writes),
        audit_publish: audit?.unwrap_or(defaults.audit_publish),
    })
}

/// One of a few words (a YAML bool is taken as `enabled`/`disabled` too).
fn word(cx: &mut Ctx, node: &Value, words: &[(&str, bool)]) -> Option<bool> {
    let allowed: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
    let found = match node {
        Value::String(s) => words.iter().find(|(w, _)| w == s).map(|(_, b)| *b),
        Value::Bool(b) if allowed.contains(&"enabled") => Some(*b),
        _ => None,
    };
    if found.is_none() {
        cx.error(expected(&format!("one of {}", allowed.join(", ")), node));
    }
    found
}

/// The context is at one point: the rules of `writable` and `enum` against its table, type
/// and shape.
pub fn point_rules(cx: &mut Ctx, p: &Point) {
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
        } else if let Some(what) = unwritable_shape(p) {
            cx.at_key("writable", |cx| {
                cx.error(what);
            });
        } else if p.data_type == DataType::Bool && (min.is_some() || max.is_some()) {
            cx.at_key("writable", |cx| {
                cx.error("a bool point cannot have a `min`/`max` range; use `writable: true`");
            });
        } else if p.write.step.is_some() && !p.data_type.is_numeric() {
            cx.at_key("writable", |cx| {
                cx.error(format!(
                    "`step` applies to numbers; this point is of type `{}`",
                    p.data_type
                ));
            });
        } else if let Some(limit) = write_limit(p) {
            cx.at_key("writable", |cx| cx.error(limit));
        }
    }
    if !p.names.is_empty() && !p.data_type.is_numeric() {
        cx.at_key("enum", |cx| {
            cx.error(format!(
                "`enum` names numbers; this point is of type `{}`",
                p.data_type
            ));
        });
    }
    if let Writable::Yes { min, max } = p.writable {
        let outside = p
            .names
            .iter()
            .find(|(_, v)| min.is_some_and(|lo| *v < lo) || max.is_some_and(|hi| *v > hi));
        if let Some((name, v)) = outside {
            cx.at_key("enum", |cx| {
                cx.error(format!(
                    "{} = {v} is outside the writable range {}..{}: it could never be written",
                    quote(name),
                    min.map_or(String::new(), |m| m.to_string()),
                    max.map_or(String::new(), |m| m.to_string())
                ));
            });
        }
    }
}

/// Registers one write may carry (FC16).
const MAX_WRITE_REGISTERS: u32 = 123;
/// Coils one write may carry (FC15).
const MAX_WRITE_BITS: u32 = 1968;

/// Why a writable point is too wide for one write request (`None` when it fits).
fn write_limit(p: &Point) -> Option<String> {
    let width = p.end() - u32::from(p.address);
    let (limit, unit, fc) = if p.kind.is_bit() {
        (MAX_WRITE_BITS, "coils", "FC15")
    } else {
        (MAX_WRITE_REGISTERS, "registers", "FC16")
    };
    (width > limit).then(|| {
        format!(
            "the point takes {width} {unit}, more than one write ({fc}) can carry ({limit}); \
             split it into several points"
        )
    })
}

/// Why a point's shape cannot be written by a command (`None` when it can).
fn unwritable_shape(p: &Point) -> Option<&'static str> {
    // Strings, single bits (read-modify-write) and arrays of numbers or coils are written;
    // a `bits` register (16 flags) is not: write its flags as `bit` points.
    (p.data_type == DataType::Bits)
        .then_some("a `bits` point cannot be writable; make each flag a `bit` point to write it")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T: Decode>(yaml: &str) -> Result<T, Vec<String>> {
        let node: Value = serde_yaml::from_str(yaml).expect("test YAML parses");
        let mut cx = Ctx::default();
        let out = T::decode(&mut cx, &node);
        let problems: Vec<String> = cx.into_problems().into_iter().map(|p| p.message).collect();
        match out {
            Some(v) if problems.is_empty() => Ok(v),
            _ => Err(problems),
        }
    }

    #[test]
    fn writable_with_rules() {
        let w: WritableSpec =
            decode("{min: 0, max: 90, step: 0.5, rate_limit: 1s, confirm: 10s}").expect("valid");
        assert_eq!(
            w.writable,
            Writable::Yes {
                min: Some(0.0),
                max: Some(90.0)
            }
        );
        assert_eq!(
            w.rules,
            WriteRules {
                step: Some(0.5),
                rate_limit: Some(Duration::from_secs(1)),
                confirm: Some(Duration::from_secs(10)),
            }
        );
        let w: WritableSpec = decode("{confirm: true}").expect("valid");
        assert_eq!(w.rules.confirm, Some(DEFAULT_CONFIRM_TIMEOUT));
        let w: WritableSpec = decode("true").expect("valid");
        assert_eq!(w.rules, WriteRules::default());
    }

    #[test]
    fn writable_refusals() {
        let e = decode::<WritableSpec>("{step: 0}").expect_err("refused");
        assert!(e[0].contains("not a valid step"), "{e:?}");
        let e = decode::<WritableSpec>("{rate_limit: 0s}").expect_err("refused");
        assert!(e[0].contains("is zero"), "{e:?}");
        let e = decode::<WritableSpec>("{min: 5, max: 1}").expect_err("refused");
        assert!(e[0].contains("min 5 is greater than max 1"), "{e:?}");
        let e = decode::<WritableSpec>("{stpe: 1}").expect_err("refused");
        assert!(e[0].contains("stpe"), "{e:?}");
    }

    #[test]
    fn enums() {
        let n: Names = decode("{off: 0, auto: 1, manual: 2}").expect("valid");
        assert_eq!(
            n.0,
            vec![
                ("off".to_owned(), 0.0),
                ("auto".to_owned(), 1.0),
                ("manual".to_owned(), 2.0)
            ]
        );
        let e = decode::<Names>("{off: 0, stop: 0}").expect_err("refused");
        assert!(e[0].contains("already named `off`"), "{e:?}");
        let e = decode::<Names>("[off, on]").expect_err("refused");
        assert!(e[0].contains("mapping of names"), "{e:?}");
        let e = decode::<Names>("{}").expect_err("refused");
        assert!(e[0].contains("empty"), "{e:?}");
    }
}
