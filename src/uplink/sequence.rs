//! The per-gateway sequence number of forwarded messages, so the cloud can detect gaps.
//!
//! Definition: a message's sequence number is its queue id ([`Row::id`](crate::store::Row)).
//! It strictly increases in the order messages were accepted, and the drain sends in that
//! order. So, seen from the cloud, per gateway (client id):
//! - the next message has a higher number than the last one: normal;
//! - a number equal to or below one already seen: a duplicate (a resend after a crash or a
//!   reconnect, at most the in-flight window) — safe to drop;
//! - a jump by more than one: the messages in between were dropped at the gateway by a queue
//!   bound or `ferrule queue purge` (counted there, see `ferrule queue stats`), or a QoS 0
//!   message was lost on the way.
//!
//! A new queue file starts at its creation time in microseconds, so a queue re-created after
//! its file was lost or moved aside as corrupt continues above the old numbers (a jump, which
//! is what happened).
//!
//! Carried as an MQTT 5 user property (`sequence: property`) or as a field added to payloads
//! that are JSON objects (`sequence: json`; other payloads, and objects that already have the
//! field, are sent unchanged). The payload bytes are otherwise kept as they were: the field is
//! inserted right after the opening brace.

use bytes::Bytes;

/// `payload` with `"key":seq` as its first field, when it is a JSON object without `key`.
pub fn stamp_json(payload: &[u8], key: &str, seq: i64) -> Option<Bytes> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).ok()?;
    if object.contains_key(key) {
        return None;
    }
    let brace = payload.iter().position(|b| !b.is_ascii_whitespace())?;
    let key = serde_json::to_string(key).ok()?;
    let mut out = Vec::with_capacity(payload.len() + key.len() + 22);
    out.extend_from_slice(&payload[..=brace]);
    out.extend_from_slice(key.as_bytes());
    out.push(b':');
    out.extend_from_slice(seq.to_string().as_bytes());
    if !object.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(&payload[brace + 1..]);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(payload: &str) -> Option<String> {
        stamp_json(payload.as_bytes(), "seq", 42).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn objects_get_the_field_first_and_keep_their_bytes() {
        assert_eq!(
            stamp(r#"{"value":21.50,"ts":"2026-11-22T10:00:00.123Z"}"#).as_deref(),
            Some(r#"{"seq":42,"value":21.50,"ts":"2026-11-22T10:00:00.123Z"}"#)
        );
        assert_eq!(stamp("{}").as_deref(), Some(r#"{"seq":42}"#));
        assert_eq!(
            stamp(" { \"a\" : 1 } ").as_deref(),
            Some(r#" {"seq":42, "a" : 1 } "#)
        );
        let stamped = stamp(r#"{"nested":{"seq":1},"list":[1,2]}"#).expect("object");
        let v: serde_json::Value = serde_json::from_str(&stamped).expect("still JSON");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["nested"]["seq"], 1);
    }

    #[test]
    fn everything_else_is_left_alone() {
        for payload in [
            "online",
            "42",
            "[1,2]",
            r#""text""#,
            r#"{"seq":7}"#,
            "{broken",
            "",
        ] {
            assert_eq!(stamp(payload), None, "{payload:?}");
        }
        assert_eq!(stamp_json(&[0xff, 0xfe], "seq", 1), None);
    }

    #[test]
    fn the_key_is_escaped() {
        let out = stamp_json(b"{}", "a\"b", 1).expect("object");
        assert_eq!(&out[..], br#"{"a\"b":1}"#);
    }
}
