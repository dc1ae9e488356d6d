//! Topic escaping that lets rmqtt carry topics with a `$`-level after the first one.
//!
//! The MQTT specification only gives `$` a meaning at the start of a topic (`$SYS/...`:
//! not matched by a leading wildcard); `plant1/boiler/$state` is an ordinary topic, and
//! Mosquitto treats it so. rmqtt 0.24 refuses any level starting with `$` after the first
//! (`Topic::is_valid`), which would break ferrule's own `{site}/{device}/$state` and
//! `{site}/$agent/state` topics and any LAN client using such topics.
//!
//! So inside rmqtt, every level after the first that starts with `$` or with the escape
//! character U+FF04 (`＄`) gets one extra leading U+FF04. The mapping is a bijection
//! (unescaping strips exactly one leading U+FF04 from such levels), keeps wildcard levels as
//! they are, and leaves the first level alone, so `$SYS` keeps its special meaning and
//! filter matching is unchanged: a level matches in escaped form exactly when it matches in
//! plain form. Topics are escaped where they enter rmqtt (client publishes and wills,
//! subscribe and unsubscribe filters, the agent's publishes) and unescaped where they leave
//! it (delivery to clients, the tap), so no client and no other module ever sees the escape.

use std::borrow::Cow;

const ESC: char = '\u{FF04}';

fn needs_escape(level: &str) -> bool {
    level.starts_with('$') || level.starts_with(ESC)
}

/// The form of `topic` (a name or a filter) used inside rmqtt.
pub fn escape(topic: &str) -> Cow<'_, str> {
    if !topic.split('/').skip(1).any(needs_escape) {
        return Cow::Borrowed(topic);
    }
    let mut out = String::with_capacity(topic.len() + 6);
    for (i, level) in topic.split('/').enumerate() {
        if i > 0 {
            out.push('/');
            if needs_escape(level) {
                out.push(ESC);
            }
        }
        out.push_str(level);
    }
    Cow::Owned(out)
}

/// The plain form of a topic taken from rmqtt.
pub fn unescape(topic: &str) -> Cow<'_, str> {
    if !topic.contains(ESC) {
        return Cow::Borrowed(topic);
    }
    let mut out = String::with_capacity(topic.len());
    for (i, level) in topic.split('/').enumerate() {
        if i > 0 {
            out.push('/');
            out.push_str(level.strip_prefix(ESC).unwrap_or(level));
        } else {
            out.push_str(level);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_dollar_levels_after_the_first() {
        assert_eq!(escape("plant/boiler/$state"), "plant/boiler/\u{FF04}$state");
        assert_eq!(escape("plant/$agent/state"), "plant/\u{FF04}$agent/state");
        assert_eq!(escape("$SYS/broker/uptime"), "$SYS/broker/uptime");
        assert_eq!(escape("plant/+/$state"), "plant/+/\u{FF04}$state");
        assert_eq!(escape("plant/#"), "plant/#");
        assert_eq!(escape("a/b$c"), "a/b$c");
        assert!(matches!(escape("plant/boiler/temp"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_escape_character_itself_is_escaped() {
        assert_eq!(escape("a/\u{FF04}x"), "a/\u{FF04}\u{FF04}x");
        assert_eq!(unescape("a/\u{FF04}\u{FF04}x"), "a/\u{FF04}x");
    }

    proptest! {
        #[test]
        fn round_trip(levels in prop::collection::vec("[$\u{FF04}a+#]{0,3}", 1..6)) {
            let topic = levels.join("/");
            let escaped = escape(&topic);
            prop_assert_eq!(unescape(&escaped), topic.as_str());
            // No level after the first starts with '$' inside rmqtt.
            prop_assert!(!escaped.split('/').skip(1).any(|l| l.starts_with('$')));
        }
    }
}
