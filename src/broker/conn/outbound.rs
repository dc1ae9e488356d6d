//! Deliveries to the client: taking messages out of the session within the in-flight window and
//! the output bound, writing them (with the client's maximum packet size and topic aliases),
//! and settling the client's PUBACK / PUBREC / PUBCOMP.
//!
//! Invariants:
//! - a message larger than the client's maximum packet size is not sent; it is dropped and
//!   counted (MQTT-3.1.2-25), and a topic alias is only ever used after the client was told
//!   its topic, in a packet that was actually sent;
//! - a QoS 2 message gets a PUBREL only after its PUBREC, and leaves the window at PUBCOMP.

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::io::OUT_HIGH;
use super::{Client, End};
use crate::broker::codec::{self, reason, Ack, Packet, PublishOut, PublishProps, QoS};
use crate::broker::message::Delivery;
use crate::broker::session::Stage;
use crate::broker::stats::BrokerStats;

static NO_PROPS: LazyLock<PublishProps> = LazyLock::new(PublishProps::default);

/// The topic aliases the broker uses towards one MQTT 5 client (it allowed `max`).
#[derive(Debug)]
pub(super) struct Aliases {
    max: u16,
    by_topic: HashMap<Arc<str>, NonZeroU16>,
    /// Topic of each alias (index = alias - 1).
    topics: Vec<Arc<str>>,
    /// Next alias to reuse once all are taken (round robin).
    next: usize,
}

/// How a topic is sent.
struct Plan {
    alias: Option<NonZeroU16>,
    /// The topic must be sent too (a new or re-used alias, or none).
    with_topic: bool,
}

impl Aliases {
    pub fn for_client(max: u16) -> Option<Box<Aliases>> {
        (max > 0).then(|| {
            Box::new(Aliases {
                max,
                by_topic: HashMap::new(),
                topics: Vec::new(),
                next: 0,
            })
        })
    }

    fn plan(&self, topic: &Arc<str>) -> Plan {
        if let Some(&alias) = self.by_topic.get(topic) {
            return Plan {
                alias: Some(alias),
                with_topic: false,
            };
        }
        let index = if self.topics.len() < usize::from(self.max) {
            self.topics.len()
        } else {
            self.next
        };
        Plan {
            alias: u16::try_from(index + 1).ok().and_then(NonZeroU16::new),
            with_topic: true,
        }
    }

    /// The client now knows `topic` by `alias`.
    fn commit(&mut self, topic: &Arc<str>, alias: NonZeroU16) {
        let index = usize::from(alias.get() - 1);
        if index < self.topics.len() {
            let old = std::mem::replace(&mut self.topics[index], topic.clone());
            self.by_topic.remove(&old);
            self.next = (index + 1) % usize::from(self.max);
        } else {
            self.topics.push(topic.clone());
        }
        self.by_topic.insert(topic.clone(), alias);
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Client<T> {
    /// Moves deliveries from the session to the output until the window or the output bound
    /// is reached. Fails when the session was taken over.
    pub(super) fn refill(&mut self) -> Result<(), End> {
        let session = self.session.clone();
        let mut st = session.lock();
        if st.owner != self.id {
            return Err(End::TakenOver);
        }
        let store = self.engine.store.clone();
        let now = Instant::now();
        while self.io.pending_output() < OUT_HIGH {
            let Some((d, packet_id)) = st.next_to_send(
                self.window,
                now,
                store.as_ref().map(|s| (s, &*self.client_id)),
            ) else {
                break;
            };
            if !self.write_delivery(&d, packet_id, false, now) {
                if let Some(id) = packet_id {
                    st.settle(id.get(), Stage::Published);
                }
                if let (Some(s), true) = (&store, d.seq != 0) {
                    s.dequeue(&self.client_id, d.seq);
                }
            }
        }
        self.more = st
            .queue
            .front()
            .is_some_and(|d| d.qos == QoS::AtMostOnce || st.inflight.len() < self.window);
        Ok(())
    }

    /// Writes one delivery; `false` when it was dropped as too large for the client.
    pub(super) fn write_delivery(
        &mut self,
        d: &Delivery,
        packet_id: Option<NonZeroU16>,
        dup: bool,
        now: Instant,
    ) -> bool {
        let msg = &d.msg;
        let v5 = self.protocol.is_v5();
        let plan = match &self.aliases_out {
            Some(a) if v5 => a.plan(&msg.topic),
            _ => Plan {
                alias: None,
                with_topic: true,
            },
        };
        let out = PublishOut {
            dup: dup && d.qos != QoS::AtMostOnce,
            qos: d.qos,
            retain: d.retain,
            topic: if plan.with_topic { &msg.topic } else { "" },
            packet_id,
            topic_alias: plan.alias,
            message_expiry_interval: msg.expiry_left(now),
            subscription_identifiers: d.sub_ids.as_slice(),
            props: msg.props.as_deref().unwrap_or(&NO_PROPS),
            payload: &msg.payload,
        };
        let len = codec::publish_len(self.protocol, &out);
        if u32::try_from(len).map_or(true, |l| l > self.max_out) {
            BrokerStats::bump(&self.engine.stats.dropped_too_large);
            debug!(client_id = %self.client_id, topic = %msg.topic, size = len, max = self.max_out,
                "message larger than the client's maximum packet size: not sent");
            return false;
        }
        codec::encode_publish(self.io.output(), self.protocol, &out);
        self.packets_out += 1;
        if let (Some(a), Some(alias), true) = (self.aliases_out.as_mut(), plan.alias, plan.with_topic) {
            a.commit(&msg.topic, alias);
        }
        let stats = &self.engine.stats;
        BrokerStats::bump(&stats.messages_sent);
        BrokerStats::add(&stats.bytes_sent, len as u64);
        true
    }

    fn owned(&self, st: &crate::broker::session::State) -> Result<(), End> {
        if st.owner == self.id {
            Ok(())
        } else {
            Err(End::TakenOver)
        }
    }

    pub(super) fn on_puback(&mut self, a: &Ack) -> Result<(), End> {
        let session = self.session.clone();
        let mut st = session.lock();
        self.owned(&st)?;
        match st.settle(a.packet_id.get(), Stage::Published) {
            Some(f) => self.forget(&f.delivery),
            None => debug!(client_id = %self.client_id, packet_id = a.packet_id, "PUBACK for no message in flight"),
        }
        Ok(())
    }

    pub(super) fn on_pubrec(&mut self, a: &Ack) -> Result<(), End> {
        let session = self.session.clone();
        let mut st = session.lock();
        self.owned(&st)?;
        if a.code >= 0x80 {
            // Refused by the client: the exchange ends here (MQTT 5 §4.3.3).
            if let Some(f) = st.settle(a.packet_id.get(), Stage::Published) {
                self.forget(&f.delivery);
            }
            return Ok(());
        }
        let released = st.release(a.packet_id.get()).map(|f| f.delivery.seq);
        drop(st);
        let code = match released {
            Some(seq) => {
                if let (Some(store), true) = (&self.engine.store, seq != 0) {
                    store.sent(&self.client_id, seq, a.packet_id.get(), true);
                }
                reason::SUCCESS
            }
            None => reason::PACKET_IDENTIFIER_NOT_FOUND,
        };
        self.send(&Packet::PubRel(Ack {
            packet_id: a.packet_id,
            code,
            reason_string: None,
            user_properties: Vec::new(),
        }));
        Ok(())
    }

    pub(super) fn on_pubcomp(&mut self, a: &Ack) -> Result<(), End> {
        let session = self.session.clone();
        let mut st = session.lock();
        self.owned(&st)?;
        match st.settle(a.packet_id.get(), Stage::Released) {
            Some(f) => self.forget(&f.delivery),
            None => debug!(client_id = %self.client_id, packet_id = a.packet_id, "PUBCOMP for no message in flight"),
        }
        Ok(())
    }

    /// A delivery is done: its persisted row goes.
    fn forget(&self, d: &Delivery) {
        if let (Some(store), true) = (&self.engine.store, d.seq != 0) {
            store.dequeue(&self.client_id, d.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_assigned_then_reused_round_robin() {
        let mut a = Aliases::for_client(2).expect("allowed");
        let t: Vec<Arc<str>> = ["a", "b", "c"].iter().map(|&s| s.into()).collect();
        let p = a.plan(&t[0]);
        assert_eq!((p.alias.map(NonZeroU16::get), p.with_topic), (Some(1), true));
        a.commit(&t[0], p.alias.expect("alias"));
        let p = a.plan(&t[0]);
        assert_eq!((p.alias.map(NonZeroU16::get), p.with_topic), (Some(1), false));
        let p = a.plan(&t[1]);
        a.commit(&t[1], p.alias.expect("alias"));
        let p = a.plan(&t[2]);
        assert_eq!((p.alias.map(NonZeroU16::get), p.with_topic), (Some(1), true), "reuses the first");
        a.commit(&t[2], p.alias.expect("alias"));
        assert!(a.plan(&t[0]).with_topic, "a's alias was taken");
        assert!(!a.plan(&t[1]).with_topic);
        assert!(Aliases::for_client(0).is_none());
    }
}
