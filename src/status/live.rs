//! What the agent's own messages say right now: the last value of every point, each device's
//! `$state`, the uplink's status document, and the last [`MAX_EVENTS`] events (device state
//! changes, command results and refusals, audit records, reload results, uplink changes,
//! connection refusals).
//!
//! Pure: [`Live::apply`] takes the message and the time. Invariants: at most [`MAX_EVENTS`]
//! events are kept (the oldest go first); `version` grows with every change the page would show.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use serde_json::{json, Value as Json};

use super::catalog::{About, Catalog};
use crate::broker::Message;
use crate::topics::Topics;

/// Events kept for the page.
pub const MAX_EVENTS: usize = 100;

/// The last publication of a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The payload as published (`value`, `ts`, `quality`, `error`...); `null` if not JSON.
    pub payload: Json,
    pub at: SystemTime,
}

/// One line of the event list.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: SystemTime,
    /// `state`, `command`, `refused`, `audit`, `reload`, `uplink`, `connection`.
    pub kind: &'static str,
    pub text: String,
}

/// The state fed by the agent's messages.
#[derive(Debug, Default)]
pub struct Live {
    /// By point topic.
    pub samples: HashMap<String, Sample>,
    /// `$state` by device name, and since when.
    pub states: HashMap<String, (String, SystemTime)>,
    /// The retained `{site}/$agent/uplink` document.
    pub uplink: Option<Json>,
    pub events: VecDeque<Event>,
    pub version: u64,
}

impl Live {
    /// Takes in one message of the site.
    pub fn apply(&mut self, catalog: &Catalog, topics: &Topics, msg: &Message, now: SystemTime) {
        let payload = std::str::from_utf8(&msg.payload).unwrap_or("");
        let parsed = || serde_json::from_str::<Json>(payload).unwrap_or(Json::Null);
        match catalog.about(&msg.topic) {
            Some(About::Point { .. }) => {
                self.samples.insert(
                    msg.topic.clone(),
                    Sample {
                        payload: parsed(),
                        at: now,
                    },
                );
                self.version += 1;
            }
            Some(About::DeviceState { device }) => {
                let name = catalog.devices[*device].name.clone();
                let before = self.states.get(&name).map(|(s, _)| s.clone());
                if before.as_deref() != Some(payload) {
                    let from = before.unwrap_or_else(|| "unknown".into());
                    self.event(now, "state", format!("{name}: {from} → {payload}"));
                    self.states.insert(name, (payload.to_owned(), now));
                }
            }
            Some(About::CommandResult { device, point }) => {
                let d = &catalog.devices[*device];
                let what = format!("{}/{}", d.name, d.points[*point].name);
                let r = parsed();
                let id = r["id"].as_str().unwrap_or("-");
                let (kind, text) = if r["pending"] == json!(true) {
                    (
                        "command",
                        format!("{what}: held for confirmation (id {id})"),
                    )
                } else if r["ok"] == json!(true) {
                    (
                        "command",
                        format!("{what} = {} written (id {id})", r["value"]),
                    )
                } else {
                    let code = r["code"].as_str().unwrap_or("refused");
                    let error = r["error"].as_str().unwrap_or("");
                    ("refused", format!("{what}: {code}: {error} (id {id})"))
                };
                self.event(now, kind, text);
            }
            None if msg.topic == topics.agent_uplink() => {
                let doc = parsed();
                let before = self.uplink.as_ref().map(|u| u["state"].clone());
                if before.as_ref() != Some(&doc["state"]) {
                    let err = doc["last_error"].as_str().map(|e| format!(" ({e})"));
                    let state = doc["state"].as_str().unwrap_or("?");
                    self.event(
                        now,
                        "uplink",
                        format!("uplink {state}{}", err.unwrap_or_default()),
                    );
                }
                self.uplink = Some(doc);
                self.version += 1;
            }
            None if msg.topic == topics.agent_config() => {
                let r = parsed();
                let text = if r["ok"] == json!(true) {
                    let changes: Vec<&str> = r["changes"]
                        .as_array()
                        .map(|c| c.iter().filter_map(Json::as_str).collect())
                        .unwrap_or_default();
                    format!(
                        "reload applied: {}",
                        if changes.is_empty() {
                            "nothing changed".into()
                        } else {
                            changes.join("; ")
                        }
                    )
                } else {
                    let errors: Vec<&str> = r["errors"]
                        .as_array()
                        .map(|c| c.iter().filter_map(Json::as_str).collect())
                        .unwrap_or_default();
                    format!("reload refused: {}", errors.join("; "))
                };
                self.event(now, "reload", text);
            }
            None if msg.topic == topics.audit() => {
                self.event(now, "audit", payload.to_owned());
            }
            None => {}
        }
    }

    /// Records an event (the oldest goes when there are [`MAX_EVENTS`]).
    pub fn event(&mut self, at: SystemTime, kind: &'static str, text: String) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event { at, kind, text });
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{parse, Origin, Qos};

    fn catalog() -> Result<(Catalog, Topics), Box<dyn std::error::Error>> {
        let origin = Origin {
            name: "t.yaml".into(),
            base_dir: std::env::temp_dir(),
            state_dir: std::env::temp_dir(),
        };
        let config = parse(
            "site: p\ndevices:\n  - {name: boiler, tcp: \"127.0.0.1:502\", points: [{name: t, address: 1, unit: C}, {name: sp, address: 2, writable: true}]}\n",
            &origin,
        )?;
        let topics = Topics::new("p");
        let devices: Vec<_> = config.devices.into_iter().map(Arc::new).collect();
        Ok((Catalog::new(&devices, &topics), topics))
    }

    fn msg(topic: &str, payload: &str) -> Message {
        Message::agent(topic.into(), payload.to_owned(), Qos::AtMostOnce, false)
    }

    #[test]
    fn points_states_and_results_become_rows_and_events() -> Result<(), Box<dyn std::error::Error>>
    {
        let (cat, topics) = catalog()?;
        let mut live = Live::default();
        let now = SystemTime::now();
        live.apply(
            &cat,
            &topics,
            &msg("p/boiler/t", r#"{"value":21.5,"quality":"good"}"#),
            now,
        );
        assert_eq!(live.samples["p/boiler/t"].payload["value"], json!(21.5));
        live.apply(&cat, &topics, &msg("p/boiler/$state", "online"), now);
        live.apply(&cat, &topics, &msg("p/boiler/$state", "online"), now);
        live.apply(&cat, &topics, &msg("p/boiler/$state", "offline"), now);
        live.apply(
            &cat,
            &topics,
            &msg(
                "p/boiler/sp/set/result",
                r#"{"id":"a","ok":false,"code":"above_max","error":"9 above max 5"}"#,
            ),
            now,
        );
        live.apply(&cat, &topics, &msg("p/other/x", "1"), now);
        let texts: Vec<_> = live
            .events
            .iter()
            .map(|e| (e.kind, e.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("state", "boiler: unknown → online"),
                ("state", "boiler: online → offline"),
                ("refused", "boiler/sp: above_max: 9 above max 5 (id a)"),
            ]
        );
        Ok(())
    }

    #[test]
    fn at_most_a_hundred_events_are_kept() {
        let mut live = Live::default();
        for i in 0..150 {
            live.event(SystemTime::now(), "audit", i.to_string());
        }
        assert_eq!(live.events.len(), MAX_EVENTS);
        assert_eq!(live.events.front().map(|e| e.text.as_str()), Some("50"));
    }
}
