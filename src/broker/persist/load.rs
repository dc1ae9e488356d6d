//! Reading the persistence file back at start.
//!
//! Expired messages (MQTT 5 message expiry, counted in wall-clock time across the restart) are
//! skipped and deleted. The writer gets the reference counts of the stored messages and the
//! next free message id.

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::Arc;

use rusqlite::{params, Connection};

use super::rows::{
    qos_from, sub_ids_from, Loaded, LoadedWill, MessageColumns, SessionRow, StoredEntry,
    StoredSession, StoredWill, SubRow,
};
use crate::broker::message::{now_ms, Delivery, Publisher};

/// What a start reads back, the references to each stored message, the next message id.
pub fn load(conn: &Connection) -> rusqlite::Result<(Loaded, HashMap<u64, u32>, u64)> {
    let now = now_ms();
    let mut loaded = Loaded::default();

    let mut stmt = conn.prepare(
        "SELECT topic, payload, qos, props, created_ms, expires_ms FROM retained ORDER BY topic",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(MessageColumns {
            topic: r.get(0)?,
            payload: r.get(1)?,
            qos: r.get(2)?,
            retain: true,
            props: r.get(3)?,
            from_client: None,
            created_ms: r.get(4)?,
            expires_ms: r.get(5)?,
        })
    })?;
    let mut expired = Vec::new();
    for row in rows {
        let cols = row?;
        let topic = cols.topic.clone();
        match cols.into_publication(now) {
            Some(p) => loaded.retained.push(Arc::new(p)),
            None => expired.push(topic),
        }
    }
    for topic in expired {
        conn.execute("DELETE FROM retained WHERE topic = ?1", params![topic])?;
    }

    let mut sessions: Vec<StoredSession> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT client_id, username, protocol, expiry_secs, disconnected_ms FROM sessions \
         ORDER BY client_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SessionRow {
            client_id: r.get::<_, String>(0)?.into(),
            username: r.get(1)?,
            protocol: u8::try_from(r.get::<_, i64>(2)?).unwrap_or(4),
            expiry: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            disconnected_ms: r.get(4)?,
        })
    })?;
    for row in rows {
        sessions.push(StoredSession {
            row: row?,
            subs: Vec::new(),
            entries: Vec::new(),
            qos2_in: Vec::new(),
        });
    }
    let index: HashMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.row.client_id.to_string(), i))
        .collect();

    let mut stmt = conn.prepare(
        "SELECT client_id, filter, qos, no_local, retain_as_published, retain_handling, sub_id \
         FROM subscriptions ORDER BY client_id, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            SubRow {
                filter: r.get(1)?,
                qos: u8::try_from(r.get::<_, i64>(2)?).unwrap_or(0).min(2),
                no_local: r.get(3)?,
                retain_as_published: r.get(4)?,
                retain_handling: u8::try_from(r.get::<_, i64>(5)?).unwrap_or(0).min(2),
                sub_id: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            },
        ))
    })?;
    for row in rows {
        let (client_id, sub) = row?;
        if let Some(&i) = index.get(&client_id) {
            sessions[i].subs.push(sub);
        }
    }

    let mut stmt = conn.prepare("SELECT client_id, packet_id FROM qos2_in")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (client_id, packet_id) = row?;
        if let (Some(&i), Ok(id)) = (index.get(&client_id), u16::try_from(packet_id)) {
            sessions[i].qos2_in.push(id);
        }
    }

    // Every queue row with its message; a message shared by several rows is rebuilt once.
    let mut refs: HashMap<u64, u32> = HashMap::new();
    let mut messages = HashMap::new();
    let mut gone = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT q.client_id, q.seq, q.msg_id, q.qos, q.retain, q.sub_ids, q.packet_id, \
         q.released, m.topic, m.payload, m.qos, m.retain, m.props, m.from_client, \
         m.created_ms, m.expires_ms \
         FROM queue q JOIN msgs m ON m.id = q.msg_id ORDER BY q.client_id, q.seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let client_id: String = r.get(0)?;
        let seq = u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
        let msg_id = u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0);
        let Some(&i) = index.get(&client_id) else {
            gone.push((client_id, seq));
            continue;
        };
        let msg = match messages.get(&msg_id) {
            Some(m) => Some(Arc::clone(m)),
            None => {
                let cols = MessageColumns {
                    topic: r.get(8)?,
                    payload: r.get(9)?,
                    qos: r.get(10)?,
                    retain: r.get(11)?,
                    props: r.get(12)?,
                    from_client: r.get(13)?,
                    created_ms: r.get(14)?,
                    expires_ms: r.get(15)?,
                };
                cols.into_publication(now).map(|p| {
                    let _ = p.stored.set(msg_id);
                    let p = Arc::new(p);
                    messages.insert(msg_id, Arc::clone(&p));
                    p
                })
            }
        };
        let Some(msg) = msg else {
            gone.push((client_id, seq));
            continue;
        };
        *refs.entry(msg_id).or_default() += 1;
        let packet_id = r
            .get::<_, Option<i64>>(6)?
            .and_then(|n| u16::try_from(n).ok())
            .and_then(NonZeroU16::new);
        let released: bool = r.get(7)?;
        let sub_ids: Option<String> = r.get(5)?;
        sessions[i].entries.push(StoredEntry {
            delivery: Delivery {
                msg,
                qos: qos_from(r.get(3)?),
                retain: r.get(4)?,
                sub_ids: sub_ids_from(sub_ids.as_deref()),
                seq,
            },
            sent: packet_id.map(|id| (id, released)),
        });
    }
    drop(rows);
    for (client_id, seq) in gone {
        conn.execute(
            "DELETE FROM queue WHERE client_id = ?1 AND seq = ?2",
            params![client_id, i64::try_from(seq).unwrap_or(i64::MAX)],
        )?;
    }
    conn.execute(
        "DELETE FROM msgs WHERE id NOT IN (SELECT msg_id FROM queue)",
        [],
    )?;
    let next_msg_id: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM msgs", [], |r| {
        r.get(0)
    })?;

    let mut stmt = conn.prepare(
        "SELECT client_id, topic, payload, qos, retain, props, delay_secs, created_ms \
         FROM wills ORDER BY client_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let client_id: String = r.get(0)?;
        Ok((
            client_id.clone(),
            MessageColumns {
                topic: r.get(1)?,
                payload: r.get(2)?,
                qos: r.get(3)?,
                retain: r.get(4)?,
                props: r.get(5)?,
                from_client: Some(client_id),
                created_ms: r.get(7)?,
                expires_ms: None,
            },
            u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        ))
    })?;
    for row in rows {
        let (client_id, cols, delay) = row?;
        if let Some(mut msg) = cols.into_publication(now) {
            let client_id: Arc<str> = client_id.into();
            msg.from = Publisher::Will {
                client_id: client_id.clone(),
            };
            loaded.wills.push(LoadedWill {
                client_id,
                will: StoredWill {
                    msg: Arc::new(msg),
                    delay,
                },
            });
        }
    }

    loaded.sessions = sessions;
    Ok((loaded, refs, u64::try_from(next_msg_id).unwrap_or(0)))
}
