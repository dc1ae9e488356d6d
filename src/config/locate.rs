//! Finds the line and column of a node, given its path, in the original YAML text.
//!
//! `serde_yaml::Value` carries no positions, but yaml_serde attaches the position of the node
//! being deserialized to an error raised by a visitor (`Error::location()`). So to locate a node,
//! the deserializer is run again over the text with a [`DeserializeSeed`] that walks mappings and
//! lists along the path (skipping siblings with `IgnoredAny`) and fails on purpose at the target:
//! on the node itself, or on the matching key when the problem is about a key. The failure's
//! location is the target's.
//!
//! Invariants: never panics and never drops a problem. When a path cannot be located (a node that
//! only exists as a default, a walk through a YAML tag...), the nearest located ancestor is used,
//! and the start of the document as the last resort.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::path::{At, Problem, Seg};

/// Text of the deliberate error, to tell it from a real one.
const MARKER: &str = "ferrule: located target";

/// 1-based `(line, column)` of the node at `path` (or of its key, per `at`), if it exists.
pub fn position(text: &str, path: &[Seg], at: At) -> Option<(usize, usize)> {
    let walk = Walk { path, at };
    match walk.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Err(e) if e.to_string().contains(MARKER) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// `(line, column)` of a problem: its node, else its nearest located ancestor, else `(1, 1)`.
pub fn nearest(text: &str, problem: &Problem) -> (usize, usize) {
    let path = problem.path.as_slice();
    let mut tries: Vec<(&[Seg], At)> = vec![(path, problem.at)];
    if let At::Key { nth } = problem.at {
        if nth > 0 {
            tries.push((path, At::Key { nth: 0 }));
        }
    }
    tries.extend((0..=path.len()).rev().map(|len| (&path[..len], At::Node)));
    tries
        .into_iter()
        .find_map(|(path, at)| position(text, path, at))
        .unwrap_or((1, 1))
}

/// `(line, column)` of the root node of the second document, when the text holds several.
pub fn second_document(text: &str) -> Option<(usize, usize)> {
    let document = serde_yaml::Deserializer::from_str(text).nth(1)?;
    match (Walk {
        path: &[],
        at: At::Node,
    })
    .deserialize(document)
    {
        Err(e) if e.to_string().contains(MARKER) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Walks `path` from the node it is given; fails with [`MARKER`] at the target.
struct Walk<'p> {
    path: &'p [Seg],
    at: At,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            None => d.deserialize_any(Target),
            Some((Seg::Index(index), rest)) => d.deserialize_any(InSeq {
                index: *index,
                rest,
                at: self.at,
            }),
            Some((Seg::Key(key), rest)) => d.deserialize_any(InMap {
                key,
                rest,
                at: self.at,
            }),
        }
    }
}

/// The target node: every `visit_*` keeps its default, which fails with an "invalid type" error
/// whose text includes `expecting`, i.e. the marker; yaml_serde adds the node's position.
struct Target;

impl Visitor<'_> for Target {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MARKER)
    }
}

/// Looks for element `index` of a list. Any other kind of node fails without the marker.
struct InSeq<'p> {
    index: usize,
    rest: &'p [Seg],
    at: At,
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk {
            path: self.rest,
            at: self.at,
        })?;
        Ok(())
    }
}

/// Looks for `key` in a mapping: fails on the key itself when it is the target, else descends
/// into the value of its first occurrence.
struct InMap<'p> {
    key: &'p str,
    rest: &'p [Seg],
    at: At,
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let target_nth = match self.at {
            At::Key { nth } if self.rest.is_empty() => Some(nth),
            _ => None,
        };
        let mut seen = 0;
        loop {
            let key = KeySeed {
                name: self.key,
                fail: target_nth == Some(seen),
            };
            let Some(matched) = map.next_key_seed(key)? else {
                return Ok(());
            };
            if matched && target_nth.is_none() {
                return map.next_value_seed(Walk {
                    path: self.rest,
                    at: self.at,
                });
            }
            seen += usize::from(matched);
            map.next_value::<IgnoredAny>()?;
        }
    }
}

/// Reads one mapping key: `true` when it is the string `name`; fails there when `fail`.
struct KeySeed<'p> {
    name: &'p str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.name, self.fail) {
            (true, true) => Err(E::custom(MARKER)),
            (matched, _) => Ok(matched),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        // A tagged key: consume it whole so the mapping stays in step.
        let (_, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>()?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    const DOC: &str = "\
site: plant1
devices:
  - name: boiler
    points:
      - {name: temp, kind: holding, address: 100}
      - name: sp
        kind: holdng
  - name: meter
    tcp: \"10.0.0.2:502\"
";

    #[test]
    fn locates_nodes_along_the_path() {
        let kind = [
            key("devices"),
            Seg::Index(0),
            key("points"),
            Seg::Index(1),
            key("kind"),
        ];
        assert_eq!(position(DOC, &kind, At::Node), Some((7, 15)));
        let address = [
            key("devices"),
            Seg::Index(0),
            key("points"),
            Seg::Index(0),
            key("address"),
        ];
        assert_eq!(position(DOC, &address, At::Node), Some((5, 46)));
        let tcp = [key("devices"), Seg::Index(1), key("tcp")];
        assert_eq!(position(DOC, &tcp, At::Node), Some((9, 10)));
        assert_eq!(position(DOC, &[key("site")], At::Node), Some((1, 7)));
        assert_eq!(position(DOC, &[], At::Node), Some((1, 1)));
        // A mapping in a list starts at its first key.
        assert_eq!(
            position(DOC, &[key("devices"), Seg::Index(1)], At::Node),
            Some((8, 5))
        );
    }

    #[test]
    fn locates_keys() {
        let tcp = [key("devices"), Seg::Index(1), key("tcp")];
        assert_eq!(position(DOC, &tcp, At::Key { nth: 0 }), Some((9, 5)));
        let dup = "a: 1\nb: 2\na: 3\n";
        assert_eq!(position(dup, &[key("a")], At::Key { nth: 1 }), Some((3, 1)));
        assert_eq!(position(dup, &[key("a")], At::Key { nth: 2 }), None);
    }

    #[test]
    fn missing_nodes_fall_back_to_the_nearest_ancestor() {
        let problem = |path: Vec<Seg>, at| Problem {
            path,
            at,
            message: String::new(),
        };
        let absent = problem(vec![key("devices"), Seg::Index(1), key("poll")], At::Node);
        assert_eq!(position(DOC, &absent.path, absent.at), None);
        assert_eq!(nearest(DOC, &absent), (8, 5));
        let past_end = problem(
            vec![key("devices"), Seg::Index(7), key("name")],
            At::Key { nth: 0 },
        );
        assert_eq!(nearest(DOC, &past_end), (3, 3));
        let through_scalar = problem(vec![key("site"), Seg::Index(0)], At::Node);
        assert_eq!(nearest(DOC, &through_scalar), (1, 7));
        assert_eq!(nearest("", &through_scalar), (1, 1));
    }

    #[test]
    fn walks_through_aliases_tags_and_odd_keys() {
        let doc = "\
base: &b {x: 1}
other: *b
? [complex, key]
: 1
1: one
tagged: !t {y: 2}
last: 3
";
        assert_eq!(
            position(doc, &[key("other"), key("x")], At::Node),
            Some((1, 14))
        );
        assert_eq!(position(doc, &[key("last")], At::Node), Some((7, 7)));
        assert_eq!(position(doc, &[key("tagged")], At::Node), Some((6, 9)));
        assert_eq!(position(doc, &[key("tagged"), key("y")], At::Node), None);
    }

    #[test]
    fn finds_the_second_document() {
        assert_eq!(second_document("a: 1\n---\nb: 2\n"), Some((3, 1)));
        assert_eq!(second_document("a: 1\n"), None);
    }
}
