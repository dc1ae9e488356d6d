//! Topic templates: how a forward rule names the upstream topic of a local message (and a
//! downlink rule the local topic of an upstream message).
//!
//! Syntax of a template:
//! - with placeholders: `{topic}` is the whole source topic, `{1}`, `{2}`, ... its 1st, 2nd, ...
//!   level (`telemetry/{2}/{3}` maps `plant1/boiler/temp` to `telemetry/boiler/temp`);
//! - without: a prefix, joined with `/` (`factory/eu` maps `plant1/boiler/temp` to
//!   `factory/eu/plant1/boiler/temp`).
//!
//! Invariants: a parsed template contains no wildcard and no NUL, every `{` opens a valid
//! placeholder (so `{` and `}` cannot appear literally), and rendering never fails: a level
//! beyond the source topic renders empty (config validation refuses templates whose levels a
//! matching topic might lack, see [`min_levels`]).

use std::fmt;

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Topic,
    /// 1-based level of the source topic.
    Level(usize),
}

/// Highest level number accepted in a placeholder.
const MAX_LEVEL: usize = 64;

impl Template {
    /// Parses a template; the error says what is wrong, for a config message.
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.is_empty() {
            return Err("is empty".into());
        }
        if text.contains(['+', '#']) {
            return Err("must not contain the wildcards '+' or '#'".into());
        }
        if text.contains('\0') {
            return Err("must not contain NUL".into());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find(['{', '}']) {
            literal.push_str(&rest[..open]);
            if rest[open..].starts_with('}') {
                return Err("has a `}` without its `{`".into());
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or("has a `{` without its `}`; placeholders are {topic}, {1}, {2}, ...")?;
            let name = &after[..close];
            let part = match name {
                "topic" => Part::Topic,
                n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    match n.parse::<usize>() {
                        Ok(level @ 1..=MAX_LEVEL) => Part::Level(level),
                        _ => {
                            return Err(format!(
                                "has `{{{n}}}`; levels are numbered from 1 to {MAX_LEVEL}"
                            ))
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "has an unknown placeholder `{{{name}}}`; expected {{topic}} or a level \
                         number such as {{1}}"
                    ))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if parts.is_empty() {
            // A prefix.
            let prefix = literal.strip_suffix('/').unwrap_or(&literal);
            if prefix.is_empty() {
                return Err("is only `/`; a prefix needs at least one level".into());
            }
            parts = vec![Part::Text(format!("{prefix}/")), Part::Topic];
        } else if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The highest level number the template uses (0 when none).
    pub fn highest_level(&self) -> usize {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Level(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The literal text the rendered topic always starts with.
    pub fn literal_start(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    /// The topic for source topic `topic`.
    pub fn render(&self, topic: &str) -> String {
        let mut out = String::with_capacity(self.text.len() + topic.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Topic => out.push_str(topic),
                Part::Level(n) => out.push_str(topic.split('/').nth(n - 1).unwrap_or("")),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The fewest levels a topic matching the (valid) `filter` can have: `a/+/c` → 3, `a/#` → 1
/// (`#` also matches its parent level), `#` → 1.
pub fn min_levels(filter: &str) -> usize {
    let levels = filter.split('/').count();
    if filter == "#" {
        1
    } else if filter.ends_with("/#") {
        levels - 1
    } else {
        levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, topic: &str) -> String {
        Template::parse(template).expect(template).render(topic)
    }

    #[test]
    fn placeholders_and_prefixes() {
        let t = "plant1/boiler/temp";
        assert_eq!(render("telemetry/{2}/{3}", t), "telemetry/boiler/temp");
        assert_eq!(render("gw/{topic}", t), "gw/plant1/boiler/temp");
        assert_eq!(render("{topic}", t), t);
        assert_eq!(render("{1}-{3}/x", t), "plant1-temp/x");
        assert_eq!(render("factory/eu", t), "factory/eu/plant1/boiler/temp");
        assert_eq!(render("factory/eu/", t), "factory/eu/plant1/boiler/temp");
        assert_eq!(render("$aws/things/gw1/{3}", t), "$aws/things/gw1/temp");
        // A level the topic lacks renders empty (validation keeps this from happening).
        assert_eq!(render("{5}", t), "");
    }

    #[test]
    fn bad_templates_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("/", "only `/`"),
            ("a/+/b", "wildcards"),
            ("a/#", "wildcards"),
            ("a/{2", "without its `}`"),
            ("a/}", "without its `{`"),
            ("a/{0}", "numbered from 1"),
            ("a/{65}", "numbered from 1"),
            ("a/{site}", "unknown placeholder `{site}`"),
            ("a/{}", "unknown placeholder"),
        ] {
            let err = Template::parse(text).expect_err(text);
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn facts_for_validation() {
        let t = Template::parse("x/{3}/{1}").expect("valid");
        assert_eq!(t.highest_level(), 3);
        assert_eq!(t.literal_start(), "x/");
        assert_eq!(
            Template::parse("{topic}").expect("valid").highest_level(),
            0
        );
        assert_eq!(
            Template::parse("pre").expect("valid").literal_start(),
            "pre/"
        );
        for (filter, n) in [("a/+/c", 3), ("a/#", 1), ("#", 1), ("+", 1), ("a/b/#", 2)] {
            assert_eq!(min_levels(filter), n, "{filter}");
        }
    }
}
