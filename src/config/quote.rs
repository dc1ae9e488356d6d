//! Writing YAML: the one double-quoted string writer of the config files ferrule generates
//! (`ferrule import` profiles, `ferrule migrate` configs). JSON escapes, so any text round-trips.

use std::fmt::Write as _;

/// `s` as a double-quoted YAML string.
pub fn yaml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::yaml_string;

    #[test]
    fn quotes_escape_and_control_characters_round_trip() -> Result<(), serde_yaml::Error> {
        for s in [
            "plain",
            "a \"b\" c",
            "back\\slash",
            "tab\tnl\nbell\u{7}",
            "°C",
            "",
        ] {
            let q = yaml_string(s);
            assert!(q.starts_with('"') && q.ends_with('"'), "{q}");
            assert_eq!(serde_yaml::from_str::<String>(&q)?, s, "{q}");
        }
        Ok(())
    }
}
