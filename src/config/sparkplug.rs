//! The `uplink.sparkplug` section: the uplink speaks Sparkplug B (spec 3.0) as an edge node.
//!
//! ```yaml
//! uplink:
//!   url: mqtt://cloud:1883
//!   sparkplug: {group_id: plant1, edge_node_id: gw1, primary_host_id: scada}
//! ```
//!
//! Invariants: each id is one non-empty MQTT topic level without wildcards (`+`, `#`) or `/`,
//! as the spec requires of group, edge node and host ids. With this section and no
//! `forward` rules, the uplink forwards the agent's point and device-state topics
//! (`{site}/+/+`), which is what the edge node publishes.

use serde_yaml::Value;

use super::decode::{map, quote, Ctx, Decode};

const SPARKPLUG: &[&str] = &["group_id", "edge_node_id", "primary_host_id"];

/// `uplink.sparkplug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparkplug {
    /// The Sparkplug group id (first level after `spBv1.0/`).
    pub group_id: String,
    /// The edge node id: this agent.
    pub edge_node_id: String,
    /// With a primary host: publish only while `spBv1.0/STATE/{id}` says it is online, and
    /// send new births when it comes back.
    pub primary_host_id: Option<String>,
}

/// Decodes `uplink.sparkplug`.
pub fn sparkplug(cx: &mut Ctx, node: &Value) -> Option<Sparkplug> {
    let m = map(cx, node, SPARKPLUG)?;
    let group_id = m.required_with(cx, "group_id", id);
    let edge_node_id = m.required_with(cx, "edge_node_id", id);
    let primary_host_id = m.optional_with(cx, "primary_host_id", id);
    Some(Sparkplug {
        group_id: group_id?,
        edge_node_id: edge_node_id?,
        primary_host_id: primary_host_id?,
    })
}

/// The forward rule of a Sparkplug uplink without `forward`: every point and device state.
pub fn default_forward(site: &str) -> Vec<super::ForwardRule> {
    vec![super::ForwardRule {
        local: format!("{site}/+/+"),
        remote: None,
        qos: super::Qos::AtLeastOnce,
        retain: false,
    }]
}

/// A Sparkplug id: one topic level.
fn id(cx: &mut Ctx, node: &Value) -> Option<String> {
    let text = String::decode(cx, node)?;
    if text.is_empty() || text.contains(['/', '+', '#', '\0']) {
        cx.error(format!(
            "{} is not a Sparkplug id; expected a non-empty name without `/`, `+` or `#`",
            quote(&text)
        ));
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(yaml: &str) -> (Option<Sparkplug>, usize) {
        let node: Value = serde_yaml::from_str(yaml).expect("test YAML parses");
        let mut cx = Ctx::default();
        let s = sparkplug(&mut cx, &node);
        (s, cx.into_problems().len())
    }

    #[test]
    fn ids_are_one_topic_level() {
        let (s, n) = decode("{group_id: g, edge_node_id: n, primary_host_id: h}");
        assert_eq!(n, 0);
        assert_eq!(
            s,
            Some(Sparkplug {
                group_id: "g".into(),
                edge_node_id: "n".into(),
                primary_host_id: Some("h".into()),
            })
        );
        let (s, n) = decode("{group_id: a/b, edge_node_id: '+', foo: 1}");
        assert!(s.is_none());
        assert_eq!(n, 3, "bad group, bad node, unknown key");
        let (_, n) = decode("{group_id: g}");
        assert_eq!(n, 1, "edge_node_id is required");
    }
}
