//! The in-flight window: which queue row each packet id and acknowledgement belongs to. Pure
//! bookkeeping, driven by the drain with rumqttc's events.
//!
//! How rumqttc (0.25, both its 3.1.1 and its MQTT 5 state machines) assigns packet ids, and why
//! the matching below is right:
//! - requests are taken from the channel one at a time, in order; a QoS 1/2 publish gets the
//!   next id of a cycle `1..=max_inflight` when it is written, and `Outgoing::Publish(pkid)` is
//!   emitted then (QoS 0: `Outgoing::Publish(0)`). So the n-th `Written` event is the n-th
//!   publish handed over: a FIFO of handed-over rows matches them ([`Window::written`]).
//! - when the next id is still unacknowledged ("collision") rumqttc parks that publish and
//!   reads no further request until the ack of that id; it then writes the parked publish and
//!   emits its `Outgoing::Publish(pkid)` after the ack's event. Order is kept.
//! - a QoS 2 publish frees its id at PUBREC, but stays in flight until PUBCOMP; the id can be
//!   given to a new publish meanwhile. So one id may have two rows waiting: a QoS 2 one for its
//!   PUBCOMP and a newer one. Each id keeps a FIFO, and an acknowledgement takes the oldest
//!   entry *of its kind*: PUBACK a QoS 1 entry, PUBREC/PUBCOMP a QoS 2 entry.
//! - MQTT 5 lowers the cycle to the broker's Receive Maximum; nothing above depends on its size.
//!
//! Invariant: [`Window::outstanding`] counts every row that a crash or reconnect would send
//! again (handed over, written and unacknowledged, acknowledged but not yet deleted); the drain
//! never lets it exceed the window, which bounds the duplicates.

use std::collections::VecDeque;

use super::session::AckKind;

/// What a publish handed to rumqttc is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A queue row, with the QoS it is sent at.
    Row { id: i64, qos: u8 },
    /// The agent's birth message (not a queue row).
    Birth { qos: u8 },
}

impl Slot {
    fn qos(self) -> u8 {
        match self {
            Slot::Row { qos, .. } | Slot::Birth { qos } => qos,
        }
    }

    fn row(self) -> Option<i64> {
        match self {
            Slot::Row { id, .. } => Some(id),
            Slot::Birth { .. } => None,
        }
    }
}

/// What an event settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Nothing (a PUBREC that only moves a QoS 2 publish on, an unknown id, the birth...).
    Nothing,
    /// This row reached the broker (PUBACK, PUBCOMP, or a QoS 0 written).
    Row(i64),
}

/// The publishes of one connection that are not settled yet.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Handed to rumqttc, not written yet, in order.
    handed: VecDeque<Slot>,
    /// Written, awaiting their acknowledgement, per packet id (oldest first); indexed by the
    /// id, which rumqttc keeps within `1..=window`.
    awaiting: Vec<VecDeque<Slot>>,
    /// Publishes in `awaiting`.
    awaiting_len: usize,
    /// Rows in `handed` and `awaiting`.
    rows: usize,
    /// Rows acknowledged whose deletion has not committed yet.
    deleting: usize,
}

impl Window {
    /// A publish was handed to rumqttc.
    pub(crate) fn handed(&mut self, slot: Slot) {
        if slot.row().is_some() {
            self.rows += 1;
        }
        self.handed.push_back(slot);
    }

    /// `Outgoing::Publish(pkid)`: the oldest handed-over publish was written.
    pub(crate) fn written(&mut self, pkid: u16) -> Settled {
        let Some(slot) = self.handed.pop_front() else {
            return Settled::Nothing;
        };
        if slot.qos() == 0 {
            return self.settle(slot);
        }
        let i = usize::from(pkid);
        if i >= self.awaiting.len() {
            self.awaiting.resize_with(i + 1, VecDeque::new);
        }
        self.awaiting[i].push_back(slot);
        self.awaiting_len += 1;
        Settled::Nothing
    }

    /// An acknowledgement arrived. `refused` (MQTT 5) settles the publish as well: the caller
    /// decides what a refusal means for the row.
    pub(crate) fn acked(&mut self, pkid: u16, kind: AckKind, refused: bool) -> Settled {
        let qos = match kind {
            AckKind::PubAck => 1,
            AckKind::PubRec | AckKind::PubComp => 2,
        };
        // A PUBREC that is not a refusal only moves the QoS 2 exchange on.
        if kind == AckKind::PubRec && !refused {
            return Settled::Nothing;
        }
        let Some(fifo) = self.awaiting.get_mut(usize::from(pkid)) else {
            return Settled::Nothing;
        };
        let Some(pos) = fifo.iter().position(|s| s.qos() == qos) else {
            return Settled::Nothing;
        };
        match fifo.remove(pos) {
            Some(slot) => {
                self.awaiting_len -= 1;
                self.settle(slot)
            }
            None => Settled::Nothing,
        }
    }

    fn settle(&mut self, slot: Slot) -> Settled {
        match slot.row() {
            Some(id) => {
                self.rows -= 1;
                self.deleting += 1;
                Settled::Row(id)
            }
            None => Settled::Nothing,
        }
    }

    /// `n` settled rows were deleted (or given up on): they leave the window.
    pub(crate) fn deleted(&mut self, n: usize) {
        self.deleting = self.deleting.saturating_sub(n);
    }

    /// Rows a crash now could send twice: handed over, in flight, or settled but not deleted.
    pub(crate) fn outstanding(&self) -> usize {
        self.rows + self.deleting
    }

    /// Rows handed over or in flight (not settled).
    pub(crate) fn in_flight(&self) -> usize {
        self.rows
    }

    /// Whether nothing at all (rows or birth) is waiting for rumqttc or the broker.
    pub(crate) fn is_idle(&self) -> bool {
        self.handed.is_empty() && self.awaiting_len == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn row(id: i64, qos: u8) -> Slot {
        Slot::Row { id, qos }
    }

    #[test]
    fn written_events_match_handed_rows_in_order_and_qos_0_settles_at_once() {
        let mut w = Window::default();
        w.handed(Slot::Birth { qos: 1 });
        w.handed(row(10, 1));
        w.handed(row(11, 0));
        assert_eq!(w.outstanding(), 2);
        assert_eq!(w.written(1), Settled::Nothing); // the birth
        assert_eq!(w.written(2), Settled::Nothing); // row 10, awaiting PUBACK 2
        assert_eq!(w.written(0), Settled::Row(11));
        assert_eq!(w.acked(1, AckKind::PubAck, false), Settled::Nothing); // birth acked
        assert_eq!(w.acked(2, AckKind::PubAck, false), Settled::Row(10));
        assert_eq!((w.in_flight(), w.outstanding()), (0, 2));
        w.deleted(2);
        assert_eq!(w.outstanding(), 0);
        assert!(w.is_idle());
    }

    #[test]
    fn a_reused_id_after_pubrec_is_told_apart_by_kind() {
        let mut w = Window::default();
        w.handed(row(1, 2));
        w.written(7);
        // PUBREC frees id 7 in rumqttc; a QoS 1 publish gets it while PUBCOMP 7 is due.
        assert_eq!(w.acked(7, AckKind::PubRec, false), Settled::Nothing);
        w.handed(row(2, 1));
        w.written(7);
        // The PUBACK is for row 2, even though row 1 came first under the same id.
        assert_eq!(w.acked(7, AckKind::PubAck, false), Settled::Row(2));
        assert_eq!(w.acked(7, AckKind::PubComp, false), Settled::Row(1));
        assert_eq!(w.acked(7, AckKind::PubComp, false), Settled::Nothing);
    }

    #[test]
    fn a_refused_pubrec_settles_the_qos_2_row() {
        let mut w = Window::default();
        w.handed(row(5, 2));
        w.written(3);
        assert_eq!(w.acked(3, AckKind::PubRec, true), Settled::Row(5));
        assert!(w.is_idle());
    }

    #[test]
    fn unknown_acks_change_nothing() {
        let mut w = Window::default();
        assert_eq!(w.written(1), Settled::Nothing);
        assert_eq!(w.acked(9, AckKind::PubAck, false), Settled::Nothing);
        w.handed(row(1, 1));
        w.written(1);
        assert_eq!(w.acked(1, AckKind::PubComp, false), Settled::Nothing);
        assert_eq!(w.in_flight(), 1);
    }

    /// rumqttc's packet id assignment, as described in the module docs: a cycle of
    /// `1..=max`, a collision parks the publish until that id is acknowledged; every event
    /// carries the publish it is really about, to check the window against.
    struct Rumqttc {
        max: u16,
        last: u16,
        /// Per id: the publish holding it (freed at PUBACK / PUBREC).
        slots: HashMap<u16, Slot>,
        parked: Option<(Slot, u16)>,
        events: Vec<Ev>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Ev {
        Written(u16, Slot),
        Ack(u16, AckKind, Slot),
    }

    impl Rumqttc {
        fn publish(&mut self, slot: Slot) -> bool {
            if self.parked.is_some() {
                return false;
            }
            if slot.qos() == 0 {
                self.events.push(Ev::Written(0, slot));
                return true;
            }
            self.last = if self.last == self.max {
                1
            } else {
                self.last + 1
            };
            if self.slots.contains_key(&self.last) {
                self.parked = Some((slot, self.last));
            } else {
                self.slots.insert(self.last, slot);
                self.events.push(Ev::Written(self.last, slot));
            }
            true
        }

        /// The broker answers the publish holding `pkid`: PUBACK, or PUBREC for QoS 2.
        fn broker_acks(&mut self, pkid: u16) {
            let Some(slot) = self.slots.remove(&pkid) else {
                return;
            };
            let kind = if slot.qos() == 1 {
                AckKind::PubAck
            } else {
                AckKind::PubRec
            };
            self.events.push(Ev::Ack(pkid, kind, slot));
            if let Some((parked, id)) = self.parked {
                if id == pkid {
                    self.parked = None;
                    self.slots.insert(id, parked);
                    self.events.push(Ev::Written(id, parked));
                }
            }
        }
    }

    proptest! {
        /// Whatever order the broker acknowledges different ids in, every row is settled
        /// exactly once, by the acknowledgement of its own publish. (For one id the broker
        /// answers in the order it received: a PUBREL sent before a reuse of the id gets its
        /// PUBCOMP before the new publish is acknowledged.)
        #[test]
        fn every_row_is_settled_once_by_its_own_ack(
            qos in prop::collection::vec(0u8..3, 1..200),
            max in 1u16..12,
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
        ) {
            let mut rumqttc = Rumqttc { max, last: 0, slots: HashMap::new(), parked: None, events: Vec::new() };
            let mut window = Window::default();
            // PUBCOMPs due, per id, in order.
            let mut comps: HashMap<u16, VecDeque<i64>> = HashMap::new();
            let mut settled: Vec<i64> = Vec::new();
            let mut next = 0usize;
            let mut picks = picks.into_iter();
            let mut seen = 0usize;
            loop {
                while next < qos.len() {
                    let slot = row(next as i64, qos[next]);
                    if !rumqttc.publish(slot) { break; }
                    window.handed(slot);
                    next += 1;
                }
                for &ev in &rumqttc.events[seen..] {
                    match ev {
                        Ev::Written(pkid, slot) => match window.written(pkid) {
                            Settled::Row(r) => { prop_assert_eq!(Some(r), slot.row()); prop_assert_eq!(slot.qos(), 0); settled.push(r); }
                            Settled::Nothing => prop_assert!(slot.qos() > 0),
                        },
                        Ev::Ack(pkid, kind, slot) => match window.acked(pkid, kind, false) {
                            Settled::Row(r) => { prop_assert_eq!(Some(r), slot.row()); settled.push(r); }
                            Settled::Nothing => {
                                prop_assert_eq!(kind, AckKind::PubRec);
                                comps.entry(pkid).or_default().extend(slot.row());
                            }
                        },
                    }
                }
                seen = rumqttc.events.len();
                // What the broker may answer now: an id in flight with no PUBCOMP due before
                // it, or the first PUBCOMP due of an id.
                let mut options: Vec<(u16, bool)> = rumqttc.slots.keys()
                    .filter(|k| comps.get(k).is_none_or(|c| c.is_empty()))
                    .map(|&k| (k, false))
                    .chain(comps.iter().filter(|(_, c)| !c.is_empty()).map(|(&k, _)| (k, true)))
                    .collect();
                options.sort_unstable();
                if options.is_empty() { break; }
                let choice = picks.next().map_or(0, |i| i.index(options.len()));
                match options[choice] {
                    (pkid, false) => rumqttc.broker_acks(pkid),
                    (pkid, true) => {
                        let id = comps.get_mut(&pkid).and_then(VecDeque::pop_front);
                        match window.acked(pkid, AckKind::PubComp, false) {
                            Settled::Row(r) => { prop_assert_eq!(Some(r), id); settled.push(r); }
                            Settled::Nothing => prop_assert!(false, "PUBCOMP {} settled nothing", pkid),
                        }
                    }
                }
            }
            settled.sort_unstable();
            let all: Vec<i64> = (0..qos.len() as i64).collect();
            prop_assert_eq!(settled, all);
            prop_assert_eq!(window.in_flight(), 0);
        }
    }
}
