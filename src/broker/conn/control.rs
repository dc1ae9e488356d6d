//! SUBSCRIBE, UNSUBSCRIBE and DISCONNECT.
//!
//! Each filter of a SUBSCRIBE is answered on its own: an invalid filter or one the ACL
//! refuses gets its failure code (MQTT 5: 0x8F / 0x87, 3.1.1: 0x80) while the others are
//! granted; the SUBACK of a persistent session waits until its subscriptions are committed.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use super::{Client, End};
use crate::broker::codec::{reason, topic, Disconnect, Packet, SubAck, Subscribe, UnsubAck, Unsubscribe};
use crate::broker::router::SubOpts;
use crate::broker::session::Subscription;
use crate::broker::stats::BrokerStats;

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Client<T> {
    pub(super) fn on_subscribe(&mut self, s: Subscribe) -> Result<(), End> {
        if self.session.lock().owner != self.id {
            return Err(End::TakenOver);
        }
        let access = self.engine.access();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut ticket = None;
        for (filter, opts) in &s.filters {
            // A filter against the syntax rules makes the packet malformed (MQTT-4.7.1-1/2,
            // 4.8.2-1/2): the connection ends, as with Mosquitto (MQTT 5: DISCONNECT 0x81).
            let parsed = topic::parse_filter(filter).map_err(|e| {
                End::violation(
                    reason::MALFORMED_PACKET,
                    format!("SUBSCRIBE filter {filter:?}: {e}"),
                )
            })?;
            if parsed.share_group.is_some() && opts.no_local {
                return Err(End::protocol("no local on a shared subscription (MQTT-3.8.3-4)"));
            }
            // The ACL sees the filter a shared subscription matches, without `$share/{group}/`
            // (as Mosquitto): `topic read #` allows `$share/g/a/b`.
            if !access.may_subscribe(&self.client_id, self.username.as_deref(), parsed.filter) {
                BrokerStats::bump(&self.engine.stats.subscribe_denied);
                info!(client_id = %self.client_id, user = self.username.as_deref().unwrap_or(""),
                    filter = %filter, "subscription refused by the ACL");
                // 0x80 for MQTT 5 too, not 0x87: both are valid SUBACK codes (§3.9.3), and the
                // Paho interoperability suite (test_subscribe_failure) accepts only 0x80.
                codes.push(reason::UNSPECIFIED_ERROR);
                continue;
            }
            let sub = Subscription {
                opts: SubOpts {
                    qos: opts.qos as u8,
                    no_local: opts.no_local,
                    retain_as_published: opts.retain_as_published,
                    sub_id: s.subscription_identifier.unwrap_or(0),
                },
                retain_handling: opts.retain_handling,
            };
            let share = parsed.share_group.map(|g| (g, parsed.filter));
            let t = self.engine.subscribe(&self.session, filter, share, sub);
            ticket = ticket.max(t);
            codes.push(opts.qos as u8);
        }
        self.ack(
            Packet::SubAck(SubAck {
                packet_id: s.packet_id,
                codes,
                reason_string: None,
                user_properties: Vec::new(),
            }),
            ticket,
        );
        Ok(())
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), End> {
        if self.session.lock().owner != self.id {
            return Err(End::TakenOver);
        }
        let mut codes = Vec::with_capacity(u.filters.len());
        let mut ticket = None;
        for filter in &u.filters {
            if let Err(e) = topic::parse_filter(filter) {
                return Err(End::violation(
                    reason::MALFORMED_PACKET,
                    format!("UNSUBSCRIBE filter {filter:?}: {e}"),
                ));
            }
            let (existed, t) = self.engine.unsubscribe(&self.session, filter);
            ticket = ticket.max(t);
            codes.push(if existed {
                reason::SUCCESS
            } else {
                reason::NO_SUBSCRIPTION_EXISTED
            });
        }
        self.ack(
            Packet::UnsubAck(UnsubAck {
                packet_id: u.packet_id,
                codes,
                reason_string: None,
                user_properties: Vec::new(),
            }),
            ticket,
        );
        Ok(())
    }

    pub(super) fn on_disconnect(&mut self, d: &Disconnect) -> Result<(), End> {
        if let Some(expiry) = d.session_expiry_interval {
            if self.expiry == 0 && expiry != 0 {
                // MQTT-3.14.2-2.
                return Err(End::protocol(
                    "DISCONNECT sets a session expiry after CONNECT set none",
                ));
            }
            self.expiry = expiry;
        }
        // Only a normal disconnection (0x00) discards the will (MQTT-3.14.4-3).
        Err(if d.code == reason::NORMAL_DISCONNECTION {
            End::Disconnected
        } else {
            End::DisconnectedWithWill
        })
    }
}
