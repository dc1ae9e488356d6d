//! Writing the translated config: YAML text with a comment naming the Mosquitto line behind
//! each key (pure).
//!
//! Invariant: every string value is written double-quoted with JSON escapes (valid YAML
//! whatever it holds); numbers and booleans are written bare.

use std::fmt::Write as _;

/// A double-quoted YAML string (the config's one writer of them).
pub use crate::config::yaml_string as q;

/// One `key: value` with the comments above it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub key: String,
    /// A scalar or flow value, already written; empty when `children` hold the value.
    pub value: String,
    pub comments: Vec<String>,
    /// Nested keys (a mapping), written below at one more level.
    pub children: Vec<Entry>,
    /// List items (each a mapping), written below as `- key: value` blocks.
    pub items: Vec<Vec<Entry>>,
}

impl Entry {
    pub fn scalar(key: &str, value: impl Into<String>, comment: Option<String>) -> Self {
        Entry {
            key: key.to_owned(),
            value: value.into(),
            comments: comment.into_iter().collect(),
            ..Entry::default()
        }
    }
}

/// Writes `entries` at `indent` spaces.
pub fn write(out: &mut String, entries: &[Entry], indent: usize) {
    let pad = " ".repeat(indent);
    for e in entries {
        for c in &e.comments {
            let _ = writeln!(out, "{pad}# {c}");
        }
        if !e.children.is_empty() {
            let _ = writeln!(out, "{pad}{}:", e.key);
            write(out, &e.children, indent + 2);
        } else if !e.items.is_empty() {
            let _ = writeln!(out, "{pad}{}:", e.key);
            for item in &e.items {
                let mut block = String::new();
                write(&mut block, item, indent + 4);
                // The first key of the item carries the dash.
                let mut first = true;
                for line in block.lines() {
                    let trimmed = &line[(indent + 4).min(line.len())..];
                    if first && trimmed.starts_with('#') {
                        // Comments above the item go above its dash.
                        let _ = writeln!(out, "{pad}  {trimmed}");
                    } else if first {
                        let _ = writeln!(out, "{pad}  - {trimmed}");
                        first = false;
                    } else {
                        let _ = writeln!(out, "{line}");
                    }
                }
            }
        } else {
            let _ = writeln!(out, "{pad}{}: {}", e.key, e.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_entries_and_lists_are_valid_yaml() {
        let mut listener = vec![Entry::scalar("bind", q("0.0.0.0:1883"), Some("a:1".into()))];
        listener.push(Entry::scalar("protocol", "websockets", None));
        let broker = Entry {
            key: "broker".into(),
            children: vec![
                Entry::scalar("allow_anonymous", "false", Some("m.conf:2 `x`".into())),
                Entry {
                    key: "listeners".into(),
                    items: vec![listener.clone(), listener],
                    ..Entry::default()
                },
            ],
            ..Entry::default()
        };
        let mut out = String::new();
        write(
            &mut out,
            &[Entry::scalar("site", q("a\"b"), None), broker],
            0,
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&out).expect(&out);
        assert_eq!(v["site"], serde_yaml::Value::from("a\"b"));
        assert_eq!(v["broker"]["listeners"][1]["protocol"], "websockets");
        assert_eq!(v["broker"]["allow_anonymous"], false);
    }
}
