//! Messages from the client: PUBLISH (topic aliases, topic checks, QoS 2 duplicates, receive
//! maximum, payload format, ACL, then the engine) and PUBREL.
//!
//! Invariants:
//! - a QoS 2 message is routed once, whatever the client resends before its PUBREL
//!   (MQTT-4.3.3-9/10): its packet id stays in the session until the PUBREL;
//! - the acknowledgement of a message the engine queued for a persistent session (or a client's
//!   retained message) goes out only once it is committed to the persistence file;
//! - a message the uplink queue cannot take is refused, never acknowledged as delivered: MQTT 5
//!   PUBACK/PUBREC 0x97; MQTT 3.x, which has no negative acknowledgement, gets its connection
//!   closed so that the client keeps and resends the message.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

use super::{Client, End};
use crate::broker::codec::{self, reason, topic, Ack, Packet, Publish, PublishOut, QoS};
use crate::broker::engine::Routed;
use crate::broker::message::{Publication, Publisher};
use crate::broker::stats::BrokerStats;
use crate::broker::tap::TapError;

/// What the acknowledgement of a publish needs.
pub(super) struct Head {
    topic: Arc<str>,
    qos: QoS,
    packet_id: Option<std::num::NonZeroU16>,
}

/// A publish waiting for the engine (see [`Client::on_publish`]).
pub(super) struct Waiting {
    head: Head,
    msg: Arc<Publication>,
}

fn ack(packet_id: std::num::NonZeroU16, code: u8) -> Ack {
    Ack {
        packet_id,
        code,
        reason_string: None,
        user_properties: Vec::new(),
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Client<T> {
    /// The topic of a PUBLISH, through the client's topic aliases (MQTT 5).
    fn resolve_topic(&mut self, p: &Publish) -> Result<Arc<str>, End> {
        let Some(alias) = p.props.topic_alias else {
            if p.topic.is_empty() {
                return Err(End::protocol(
                    "PUBLISH with neither a topic name nor a topic alias",
                ));
            }
            return Ok(p.topic.clone());
        };
        let max = self.settings.max_topic_alias;
        if alias.get() > max {
            return Err(End::violation(
                reason::TOPIC_ALIAS_INVALID,
                format!("topic alias {alias} is above the maximum {max}"),
            ));
        }
        let index = usize::from(alias.get() - 1);
        if p.topic.is_empty() {
            return self
                .aliases_in
                .get(index)
                .and_then(Clone::clone)
                .ok_or_else(|| {
                    End::protocol(format!("topic alias {alias} used before it was set"))
                });
        }
        if self.aliases_in.len() <= index {
            self.aliases_in.resize(index + 1, None);
        }
        self.aliases_in[index] = Some(p.topic.clone());
        Ok(p.topic.clone())
    }

    /// Handles a PUBLISH up to the engine. When the engine cannot take it without waiting
    /// (the uplink's tap, an in-process subscriber), returns it for
    /// [`Client::publish_waiting`]: this function stays synchronous, so the connection's
    /// future does not carry the publish path's state while the client is idle.
    pub(super) fn on_publish(&mut self, p: Publish) -> Result<Option<Waiting>, End> {
        let stats = &self.engine.stats;
        BrokerStats::bump(&stats.messages_received);
        let size = codec::publish_len(self.protocol, &PublishOut::from_publish(&p));
        BrokerStats::add(&stats.bytes_received, size as u64);
        let v5 = self.protocol.is_v5();
        let topic = self.resolve_topic(&p)?;
        if let Err(e) = topic::validate_name(&topic) {
            return Err(End::violation(
                reason::TOPIC_NAME_INVALID,
                format!("PUBLISH topic {topic:?}: {e}"),
            ));
        }
        let qos = p.qos;
        let packet_id = p.packet_id;
        if let (QoS::ExactlyOnce, Some(id)) = (qos, packet_id) {
            let st = self.session.lock();
            if st.owner != self.id {
                return Err(End::TakenOver);
            }
            if st.qos2_in.contains(&id.get()) {
                // A resend before PUBREL: acknowledge again, route nothing.
                drop(st);
                self.ack(Packet::PubRec(ack(id, reason::SUCCESS)), None);
                return Ok(None);
            }
        }
        if v5 && qos != QoS::AtMostOnce {
            // Unacknowledged QoS 1/2 messages from the client, this one included, against the
            // Receive Maximum we announced (§3.3.4: DISCONNECT 0x93 when exceeded).
            let unacked = self.session.lock().qos2_in.len() + self.acks.len() + 1;
            let max = usize::from(self.settings.max_inflight);
            if unacked > max {
                return Err(End::violation(
                    reason::RECEIVE_MAXIMUM_EXCEEDED,
                    format!("more than {max} QoS 1/2 messages unacknowledged (Receive Maximum)"),
                ));
            }
        }
        let head = Head {
            topic,
            qos,
            packet_id,
        };
        if v5 {
            if let Err(e) = codec::check_payload_format(&p.props, &p.payload) {
                BrokerStats::bump(&self.engine.stats.publish_invalid);
                info!(client_id = %self.client_id, topic = %head.topic, error = %e, "publish refused: payload format");
                self.refuse_publish(&head, reason::PAYLOAD_FORMAT_INVALID);
                return Ok(None);
            }
        }
        let access = self.engine.access();
        // `$SYS` is the broker's own, as in Mosquitto.
        let system = head.topic.starts_with("$SYS/") || &*head.topic == "$SYS";
        if system || !access.may_write(&self.client_id, self.username.as_deref(), &head.topic) {
            BrokerStats::bump(&self.engine.stats.publish_denied);
            info!(client_id = %self.client_id, user = self.username.as_deref().unwrap_or(""),
                topic = %head.topic, "publish refused by the ACL");
            if v5 {
                self.refuse_publish(&head, reason::NOT_AUTHORIZED);
            } else if let Some(id) = packet_id {
                // MQTT 3.1.1 has no refusal: acknowledged and dropped, as Mosquitto does.
                let a = ack(id, reason::SUCCESS);
                let packet = if qos == QoS::ExactlyOnce {
                    self.session.lock().qos2_in.push(id.get());
                    Packet::PubRec(a)
                } else {
                    Packet::PubAck(a)
                };
                self.ack(packet, None);
            }
            return Ok(None);
        }
        let msg = Arc::new(Publication::new(
            head.topic.clone(),
            p.payload,
            qos,
            p.retain,
            p.props,
            Publisher::Client {
                client_id: self.client_id.clone(),
                username: self.username.clone(),
                addr: Some(self.peer),
            },
        ));
        match self.engine.try_publish(msg) {
            Ok(routed) => self.published(&head, Ok(routed)).map(|()| None),
            Err(msg) => Ok(Some(Waiting { head, msg })),
        }
    }

    /// A publish the engine takes only after waiting (the tap, an in-process subscriber).
    pub(super) async fn publish_waiting(&mut self, waiting: Waiting) -> Result<(), End> {
        let result = self.engine.publish(waiting.msg).await;
        self.published(&waiting.head, result)
    }

    /// Refuses a publish with `code` (MQTT 5) in its acknowledgement, if it has one.
    fn refuse_publish(&mut self, head: &Head, code: u8) {
        if let Some(id) = head.packet_id {
            // The reason code says it (the log says why); no reason string on PUBACK/PUBREC,
            // as Mosquitto: Paho's client rejects acknowledgement properties.
            let a = ack(id, code);
            let packet = if head.qos == QoS::ExactlyOnce {
                Packet::PubRec(a)
            } else {
                Packet::PubAck(a)
            };
            self.ack(packet, None);
        }
    }

    /// Acknowledges what the engine did with a publish.
    fn published(&mut self, head: &Head, result: Result<Routed, TapError>) -> Result<(), End> {
        let v5 = self.protocol.is_v5();
        match result {
            Ok(routed) => {
                let Some(id) = head.packet_id else {
                    return Ok(());
                };
                // Like Mosquitto: MQTT 5 is told when nobody (no client, no in-process
                // subscriber, no uplink rule) took the message.
                let code = if v5 && routed.delivered == 0 {
                    reason::NO_MATCHING_SUBSCRIBERS
                } else {
                    reason::SUCCESS
                };
                if head.qos == QoS::ExactlyOnce {
                    let ticket = {
                        let mut st = self.session.lock();
                        st.qos2_in.push(id.get());
                        match (&self.engine.store, st.persistent()) {
                            (Some(store), true) => {
                                Some(store.qos2(&self.client_id, id.get(), true))
                            }
                            _ => None,
                        }
                    };
                    self.ack(Packet::PubRec(ack(id, code)), routed.ticket.max(ticket));
                } else {
                    self.ack(Packet::PubAck(ack(id, code)), routed.ticket);
                }
                Ok(())
            }
            Err(e) => {
                BrokerStats::bump(&self.engine.stats.tap_refused);
                warn!(client_id = %self.client_id, topic = %head.topic, error = %e,
                    "publish refused: the uplink queue cannot take it");
                match (head.qos, v5) {
                    (QoS::AtMostOnce, _) => Ok(()),
                    (_, true) => {
                        self.refuse_publish(head, reason::QUOTA_EXCEEDED);
                        Ok(())
                    }
                    (_, false) => Err(End::violation(
                        reason::QUOTA_EXCEEDED,
                        format!(
                            "the uplink queue cannot take a message on {}: {e}",
                            head.topic
                        ),
                    )),
                }
            }
        }
    }

    pub(super) fn on_pubrel(&mut self, a: &Ack) -> Result<(), End> {
        let found = {
            let mut st = self.session.lock();
            if st.owner != self.id {
                return Err(End::TakenOver);
            }
            let at = st.qos2_in.iter().position(|&id| id == a.packet_id.get());
            if let Some(at) = at {
                st.qos2_in.swap_remove(at);
                if let (Some(store), true) = (&self.engine.store, st.persistent()) {
                    store.qos2(&self.client_id, a.packet_id.get(), false);
                }
            }
            at.is_some()
        };
        if !found {
            // Mosquitto answers success too: a PUBREL repeated after a reconnect may find the
            // exchange already complete, and 0x92 would make the client report an error.
            debug!(client_id = %self.client_id, packet_id = a.packet_id, "PUBREL for no message waiting");
        }
        self.ack(Packet::PubComp(ack(a.packet_id, reason::SUCCESS)), None);
        Ok(())
    }
}
