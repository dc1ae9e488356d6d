//! The writer thread: takes every operation handed over since its last commit, applies them in
//! order in one transaction, commits, and publishes the last ticket it committed.
//!
//! Group commit comes for free: while one transaction commits (an fsync), new operations pile
//! up and go into the next one. Within a batch, a queue row inserted and deleted again is
//! never written, and only the last value of a retained topic is.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{params, Connection, Transaction};
use tracing::{error, info};

use super::ops::{Op, Shared, AGENT_RETAIN_FLUSH};
use super::rows::{expires_ms, props_text, sub_ids_text};
use crate::broker::message::Publication;

/// Owns the connection.
pub struct Writer {
    conn: Connection,
    path: PathBuf,
    /// Stored message id → queue rows referring to it.
    refs: HashMap<u64, u32>,
    /// The agent's retained messages not yet written, and since when the oldest waits.
    lazy: HashMap<Arc<str>, Option<Arc<Publication>>>,
    lazy_since: Option<Instant>,
    failures: u64,
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Writer {
    pub fn new(conn: Connection, path: PathBuf, refs: HashMap<u64, u32>) -> Self {
        Self {
            conn,
            path,
            refs,
            lazy: HashMap::new(),
            lazy_since: None,
            failures: 0,
        }
    }

    pub fn run(mut self, shared: &Shared) {
        loop {
            let (ops, last, closing) = {
                let mut batch = shared.lock();
                loop {
                    if !batch.ops.is_empty() || batch.closing.is_some() {
                        break;
                    }
                    let due = self.lazy_since.map(|since| since + AGENT_RETAIN_FLUSH);
                    match due {
                        Some(at) if at <= Instant::now() => break,
                        Some(at) => {
                            let wait = at.saturating_duration_since(Instant::now());
                            batch = shared
                                .ready
                                .wait_timeout(batch, wait)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0;
                        }
                        None => {
                            batch = shared
                                .ready
                                .wait(batch)
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                    }
                }
                let closing = batch.closing.take();
                if closing.is_some() {
                    batch.stopped = true;
                }
                (std::mem::take(&mut batch.ops), batch.last, closing)
            };
            let flush_lazy = closing.is_some()
                || self
                    .lazy_since
                    .is_some_and(|since| since.elapsed() >= AGENT_RETAIN_FLUSH);
            let result = self.commit(ops, flush_lazy);
            if let Err(e) = &result {
                self.failures += 1;
                // One line per failure streak start and then every 100th, with the count.
                if self.failures == 1 || self.failures.is_multiple_of(100) {
                    error!(path = %self.path.display(), failures = self.failures, error = %e,
                        "cannot write the broker persistence file; the broker keeps serving from memory");
                }
            } else if self.failures > 0 {
                info!(path = %self.path.display(), "the broker persistence file is written again");
                self.failures = 0;
            }
            // Waiters are released even after a failed commit: the error is logged and
            // counted, and a broker that stops acknowledging would lose more than it saves.
            shared.committed.store(last, Ordering::Release);
            shared.commits.notify_waiters();
            if let Some(reply) = closing {
                let _ = reply.send(result.map_err(|e| e.to_string()));
                return;
            }
        }
    }

    fn commit(&mut self, ops: Vec<Op>, flush_lazy: bool) -> rusqlite::Result<()> {
        let skip = cancelled(&ops);
        let tx = self.conn.transaction()?;
        let mut refs = std::mem::take(&mut self.refs);
        let mut result = Ok(());
        for (i, op) in ops.into_iter().enumerate() {
            if skip.contains(&i) {
                continue;
            }
            if let Op::Retain {
                topic,
                msg,
                lazy: true,
            } = op
            {
                self.lazy_since.get_or_insert_with(Instant::now);
                self.lazy.insert(topic, msg);
                continue;
            }
            if let Op::Retain { topic, .. } = &op {
                self.lazy.remove(topic);
            }
            if let Err(e) = apply(&tx, op, &mut refs) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && flush_lazy {
            for (topic, msg) in std::mem::take(&mut self.lazy) {
                if let Err(e) = retain(&tx, &topic, msg.as_deref()) {
                    result = Err(e);
                    break;
                }
            }
            self.lazy_since = None;
        }
        self.refs = refs;
        result?;
        tx.commit()
    }
}

/// Indexes of operations that cancel out within the batch: an `Enqueue` whose `Dequeue`
/// follows (with the `Sent` between them), and every `Retain` of a topic but the last.
fn cancelled(ops: &[Op]) -> HashSet<usize> {
    let mut skip = HashSet::new();
    let mut queued: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
    let mut retained: HashMap<&str, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Enqueue {
                client_id,
                delivery,
                ..
            } => {
                queued.insert((&**client_id, delivery.seq), vec![i]);
            }
            Op::Sent { client_id, seq, .. } => {
                if let Some(list) = queued.get_mut(&(&**client_id, *seq)) {
                    list.push(i);
                }
            }
            Op::Dequeue { client_id, seq } => {
                if let Some(list) = queued.remove(&(&**client_id, *seq)) {
                    skip.extend(list);
                    skip.insert(i);
                }
            }
            Op::DeleteSession(client_id) => {
                queued.retain(|(c, _), _| c != &&**client_id);
            }
            Op::Retain {
                topic, lazy: false, ..
            } => {
                if let Some(earlier) = retained.insert(topic, i) {
                    skip.insert(earlier);
                }
            }
            _ => {}
        }
    }
    skip
}

fn retain(tx: &Transaction<'_>, topic: &str, msg: Option<&Publication>) -> rusqlite::Result<()> {
    match msg {
        Some(m) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO retained(topic, payload, qos, props, created_ms, \
                 expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                topic,
                &m.payload[..],
                m.qos as u8,
                props_text(m),
                m.created_ms,
                expires_ms(m)
            ])?;
        }
        None => {
            tx.prepare_cached("DELETE FROM retained WHERE topic = ?1")?
                .execute(params![topic])?;
        }
    }
    Ok(())
}

/// One fewer reference to message `id`; the message row goes with the last.
fn release(tx: &Transaction<'_>, refs: &mut HashMap<u64, u32>, id: u64) -> rusqlite::Result<()> {
    let gone = match refs.get_mut(&id) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            refs.remove(&id);
            true
        }
        None => false,
    };
    if gone {
        tx.prepare_cached("DELETE FROM msgs WHERE id = ?1")?
            .execute(params![seq_i64(id)])?;
    }
    Ok(())
}

fn apply(tx: &Transaction<'_>, op: Op, refs: &mut HashMap<u64, u32>) -> rusqlite::Result<()> {
    match op {
        Op::Retain { topic, msg, .. } => retain(tx, &topic, msg.as_deref())?,
        Op::Session(s) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO sessions(client_id, username, protocol, expiry_secs, \
                 disconnected_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &*s.client_id,
                s.username,
                s.protocol,
                i64::from(s.expiry),
                s.disconnected_ms
            ])?;
        }
        Op::Disconnected {
            client_id,
            at_ms,
            expiry,
        } => {
            tx.prepare_cached(
                "UPDATE sessions SET disconnected_ms = ?2, expiry_secs = ?3 WHERE client_id = ?1",
            )?
            .execute(params![&*client_id, at_ms, i64::from(expiry)])?;
        }
        Op::DeleteSession(client_id) => {
            let ids: Vec<i64> = tx
                .prepare_cached("DELETE FROM queue WHERE client_id = ?1 RETURNING msg_id")?
                .query_map(params![&*client_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in ids {
                release(tx, refs, u64::try_from(id).unwrap_or(0))?;
            }
            for table in ["sessions", "subscriptions", "wills", "qos2_in"] {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE client_id = ?1"))?
                    .execute(params![&*client_id])?;
            }
        }
        Op::Subscribe { client_id, row } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO subscriptions(client_id, filter, qos, no_local, \
                 retain_as_published, retain_handling, sub_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &*client_id,
                row.filter,
                row.qos,
                row.no_local,
                row.retain_as_published,
                row.retain_handling,
                row.sub_id
            ])?;
        }
        Op::Unsubscribe { client_id, filter } => {
            tx.prepare_cached("DELETE FROM subscriptions WHERE client_id = ?1 AND filter = ?2")?
                .execute(params![&*client_id, &*filter])?;
        }
        Op::Enqueue {
            client_id,
            delivery,
            msg_id,
        } => {
            let n = refs.entry(msg_id).or_default();
            if *n == 0 {
                let m = &delivery.msg;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO msgs(id, topic, payload, qos, retain, props, \
                     from_client, created_ms, expires_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    seq_i64(msg_id),
                    &*m.topic,
                    &m.payload[..],
                    m.qos as u8,
                    m.retain,
                    props_text(m),
                    m.from.client_id().map(|c| &**c),
                    m.created_ms,
                    expires_ms(m)
                ])?;
            }
            *n += 1;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO queue(client_id, seq, msg_id, qos, retain, sub_ids) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                &*client_id,
                seq_i64(delivery.seq),
                seq_i64(msg_id),
                delivery.qos as u8,
                delivery.retain,
                sub_ids_text(&delivery.sub_ids)
            ])?;
        }
        Op::Sent {
            client_id,
            seq,
            packet_id,
            released,
        } => {
            tx.prepare_cached(
                "UPDATE queue SET packet_id = ?3, released = ?4 WHERE client_id = ?1 AND seq = ?2",
            )?
            .execute(params![&*client_id, seq_i64(seq), packet_id, released])?;
        }
        Op::Dequeue { client_id, seq } => {
            let id: Option<i64> = tx
                .prepare_cached(
                    "DELETE FROM queue WHERE client_id = ?1 AND seq = ?2 RETURNING msg_id",
                )?
                .query_map(params![&*client_id, seq_i64(seq)], |r| r.get(0))?
                .next()
                .transpose()?;
            if let Some(id) = id {
                release(tx, refs, u64::try_from(id).unwrap_or(0))?;
            }
        }
        Op::Will { client_id, will } => match will {
            Some(w) => {
                let m = &w.msg;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO wills(client_id, topic, payload, qos, retain, props, \
                     delay_secs, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    &*client_id,
                    &*m.topic,
                    &m.payload[..],
                    m.qos as u8,
                    m.retain,
                    props_text(m),
                    w.delay,
                    m.created_ms
                ])?;
            }
            None => {
                tx.prepare_cached("DELETE FROM wills WHERE client_id = ?1")?
                    .execute(params![&*client_id])?;
            }
        },
        Op::Qos2 {
            client_id,
            packet_id,
            pending,
        } => {
            let sql = if pending {
                "INSERT OR IGNORE INTO qos2_in(client_id, packet_id) VALUES (?1, ?2)"
            } else {
                "DELETE FROM qos2_in WHERE client_id = ?1 AND packet_id = ?2"
            };
            tx.prepare_cached(sql)?
                .execute(params![&*client_id, packet_id])?;
        }
    }
    Ok(())
}
