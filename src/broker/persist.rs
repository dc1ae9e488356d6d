//! The broker's persistence file (`broker.persistence`): retained messages and persistent
//! sessions in SQLite, written by one thread. Knows nothing of rmqtt (`sessions.rs` converts).
//!
//! What is written when:
//! - retained messages: every change, coalesced per topic and committed at most once per
//!   [`FLUSH_INTERVAL`] (a crash loses at most that much; flash is not worn by every update);
//! - sessions and their subscriptions: every change, on the same schedule;
//! - messages queued for a session and its unacknowledged in-flight messages: at shutdown
//!   ([`Store::save_messages`]), replacing the previous set. They are read back once at start and
//!   then deleted from the file (they live in memory again), so after a crash a restart loses
//!   the queued messages, never delivers them twice.
//!
//! Invariants: the writer applies operations in the order they were sent; [`Store::close`]
//! returns after everything sent before it is committed. A file that is not a valid database is
//! moved aside (never deleted) and a new one created; the error is logged by the caller.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// Longest time a change waits before it is committed.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retained(
    topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL,
    props TEXT, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
    client_id TEXT PRIMARY KEY, username TEXT, v5 INTEGER NOT NULL,
    expiry_secs INTEGER NOT NULL, receive_max INTEGER, created_ms INTEGER NOT NULL,
    disconnected_ms INTEGER, listener INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions(
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL,
    no_local INTEGER, retain_as_published INTEGER, retain_handling INTEGER, sub_id INTEGER,
    PRIMARY KEY(client_id, filter));
CREATE TABLE IF NOT EXISTS messages(
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, state INTEGER NOT NULL,
    packet_id INTEGER, from_client TEXT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, dup INTEGER NOT NULL, props TEXT,
    created_ms INTEGER NOT NULL, PRIMARY KEY(client_id, seq));
";

/// Errors of the persistence file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("broker persistence file {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the directory of {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move the unreadable persistence file {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("broker persistence file {path} was written by a newer ferrule (schema {found})")]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("the persistence writer has stopped")]
    Stopped,
}

/// MQTT 5 properties of a stored message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format_utf8: Option<bool>,
    /// Seconds, as the publisher set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_data: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
}

impl StoredProps {
    fn is_empty(&self) -> bool {
        *self == StoredProps::default()
    }
}

/// A stored message (topic in its plain form, as clients see it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: Option<u16>,
    /// The client that published it, when one did.
    pub from_client: Option<String>,
    pub props: StoredProps,
    /// When it entered the broker (ms since the epoch): message expiry counts from here.
    pub created_ms: i64,
}

/// Where a stored session message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Queued, never sent.
    Queued = 0,
    /// QoS 1 sent, no PUBACK yet.
    AwaitingAck = 1,
    /// QoS 2 sent, no PUBREC yet.
    AwaitingRec = 2,
    /// QoS 2 PUBREL sent, no PUBCOMP yet.
    AwaitingComp = 3,
}

impl MessageState {
    fn from_i64(n: i64) -> Option<Self> {
        Some(match n {
            0 => Self::Queued,
            1 => Self::AwaitingAck,
            2 => Self::AwaitingRec,
            3 => Self::AwaitingComp,
            _ => return None,
        })
    }
}

/// A stored subscription (filter in its plain form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub filter: String,
    pub qos: u8,
    /// MQTT 5 options (`None` for MQTT 3.1.1 subscriptions).
    pub no_local: Option<bool>,
    pub retain_as_published: Option<bool>,
    pub retain_handling: Option<u8>,
    pub sub_id: Option<u32>,
}

/// A persistent session's identity and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub client_id: String,
    pub username: Option<String>,
    pub v5: bool,
    /// Session expiry in seconds (`u32::MAX`: never).
    pub expiry_secs: u32,
    pub receive_max: Option<u16>,
    pub created_ms: i64,
    /// `None` while the client is connected.
    pub disconnected_ms: Option<i64>,
    /// Index of the listener it connected on.
    pub listener: u16,
}

/// A session as read back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub row: SessionRow,
    pub subscriptions: Vec<StoredSubscription>,
    /// In the order they were queued / sent.
    pub messages: Vec<(MessageState, StoredMessage)>,
}

/// What the file held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub retained: Vec<StoredMessage>,
    pub sessions: Vec<StoredSession>,
    /// Where an unreadable file was moved, if one was.
    pub moved_aside: Option<PathBuf>,
}

enum Op {
    Retain(String, Option<StoredMessage>),
    Session(SessionRow),
    Disconnected {
        client_id: String,
        at_ms: i64,
        expiry_secs: u32,
    },
    DeleteSession(String),
    Subscribe(String, StoredSubscription),
    Unsubscribe(String, String),
    SaveMessages(Vec<(String, Vec<(MessageState, StoredMessage)>)>),
    Close(mpsc::Sender<Result<(), String>>),
}

/// The writer of the persistence file. Cloning gives another handle to the same writer.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Op>,
    path: PathBuf,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

impl Store {
    /// Opens (or creates) the file, reads what it holds, and starts the writer thread.
    pub fn open(path: &Path) -> Result<(Store, Loaded), PersistError> {
        let sqlite = |source| PersistError::Sqlite {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PersistError::Dir {
                path: path.to_owned(),
                source,
            })?;
        }
        let (conn, moved_aside) = match open_checked(path) {
            Ok(conn) => (conn, None),
            Err(Unreadable::Corrupt) => {
                let aside = move_aside(path)?;
                (
                    open_checked(path).map_err(|e| e.into_error(path))?,
                    Some(aside),
                )
            }
            Err(e) => return Err(e.into_error(path)),
        };
        let mut loaded = load(&conn).map_err(sqlite)?;
        loaded.moved_aside = moved_aside;
        // Queued messages are in memory again from now on (see the module docs).
        conn.execute("DELETE FROM messages", []).map_err(sqlite)?;
        let (tx, rx) = mpsc::channel();
        let thread_path = path.to_owned();
        std::thread::Builder::new()
            .name("broker-persist".into())
            .spawn(move || writer(conn, rx, thread_path))
            .map_err(|source| PersistError::Dir {
                path: path.to_owned(),
                source,
            })?;
        Ok((
            Store {
                tx,
                path: path.to_owned(),
            },
            loaded,
        ))
    }

    fn send(&self, op: Op) {
        // A stopped writer has logged why; the broker keeps running without persistence.
        let _ = self.tx.send(op);
    }

    /// A retained message was set (`Some`) or cleared (`None`).
    pub fn retain(&self, topic: String, message: Option<StoredMessage>) {
        self.send(Op::Retain(topic, message));
    }

    /// A persistent session connected (or was created): insert or replace it.
    pub fn session(&self, row: SessionRow) {
        self.send(Op::Session(row));
    }

    /// A persistent session's client disconnected.
    pub fn disconnected(&self, client_id: String, at_ms: i64, expiry_secs: u32) {
        self.send(Op::Disconnected {
            client_id,
            at_ms,
            expiry_secs,
        });
    }

    /// A session ended (expired, cleaned, or replaced by a clean one).
    pub fn delete_session(&self, client_id: String) {
        self.send(Op::DeleteSession(client_id));
    }

    pub fn subscribe(&self, client_id: String, sub: StoredSubscription) {
        self.send(Op::Subscribe(client_id, sub));
    }

    pub fn unsubscribe(&self, client_id: String, filter: String) {
        self.send(Op::Unsubscribe(client_id, filter));
    }

    /// Replaces every stored session message with these (at shutdown).
    pub fn save_messages(&self, messages: Vec<(String, Vec<(MessageState, StoredMessage)>)>) {
        self.send(Op::SaveMessages(messages));
    }

    /// Commits everything sent so far and stops the writer.
    pub fn close(&self) -> Result<(), PersistError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Op::Close(tx))
            .map_err(|_| PersistError::Stopped)?;
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(PersistError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::InvalidParameterName(why),
            }),
            Err(_) => Err(PersistError::Stopped),
        }
    }
}

enum Unreadable {
    Corrupt,
    Newer(i64),
    Other(rusqlite::Error),
}

impl Unreadable {
    fn into_error(self, path: &Path) -> PersistError {
        match self {
            Unreadable::Newer(found) => PersistError::NewerSchema {
                path: path.to_owned(),
                found,
            },
            Unreadable::Other(source) => PersistError::Sqlite {
                path: path.to_owned(),
                source,
            },
            Unreadable::Corrupt => PersistError::Sqlite {
                path: path.to_owned(),
                source: rusqlite::Error::InvalidQuery,
            },
        }
    }
}

fn open_checked(path: &Path) -> Result<Connection, Unreadable> {
    let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            Unreadable::Corrupt
        }
        _ => Unreadable::Other(e),
    };
    let conn = Connection::open(path).map_err(corrupt)?;
    let check: String = conn
        .pragma_query_value(None, "quick_check", |row| row.get(0))
        .map_err(corrupt)?;
    if check != "ok" {
        return Err(Unreadable::Corrupt);
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(corrupt)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(corrupt)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(corrupt)?;
    if version > SCHEMA_VERSION {
        return Err(Unreadable::Newer(version));
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(corrupt)?;
    Ok(conn)
}

/// Renames an unreadable file (and its `-wal`/`-shm`) to `<name>.corrupt-<unix seconds>`.
fn move_aside(path: &Path) -> Result<PathBuf, PersistError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let with = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let target = with(path, &format!(".corrupt-{stamp}"));
    for side in ["-wal", "-shm"] {
        match std::fs::rename(with(path, side), with(&target, side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PersistError::MoveAside {
                    path: path.to_owned(),
                    source: e,
                })
            }
            _ => {}
        }
    }
    std::fs::rename(path, &target).map_err(|source| PersistError::MoveAside {
        path: path.to_owned(),
        source,
    })?;
    Ok(target)
}

fn props_text(p: &StoredProps) -> Option<String> {
    (!p.is_empty()).then(|| serde_json::to_string(p).unwrap_or_default())
}

fn props_from(text: Option<String>) -> StoredProps {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn small(n: i64) -> u8 {
    u8::try_from(n).unwrap_or(0)
}

fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut stmt = conn.prepare("SELECT topic, payload, qos, props, created_ms FROM retained")?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredMessage {
            topic: r.get(0)?,
            payload: r.get(1)?,
            qos: small(r.get(2)?),
            retain: true,
            dup: false,
            packet_id: None,
            from_client: None,
            props: props_from(r.get(3)?),
            created_ms: r.get(4)?,
        })
    })?;
    loaded.retained = rows.collect::<rusqlite::Result<_>>()?;

    let mut sessions: Vec<StoredSession> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT client_id, username, v5, expiry_secs, receive_max, created_ms, disconnected_ms, \
         listener FROM sessions ORDER BY client_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SessionRow {
            client_id: r.get(0)?,
            username: r.get(1)?,
            v5: r.get(2)?,
            expiry_secs: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            receive_max: r
                .get::<_, Option<i64>>(4)?
                .and_then(|n| u16::try_from(n).ok()),
            created_ms: r.get(5)?,
            disconnected_ms: r.get(6)?,
            listener: u16::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        })
    })?;
    for row in rows {
        sessions.push(StoredSession {
            row: row?,
            subscriptions: Vec::new(),
            messages: Vec::new(),
        });
    }
    let index: HashMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.row.client_id.clone(), i))
        .collect();
    let mut stmt = conn.prepare(
        "SELECT client_id, filter, qos, no_local, retain_as_published, retain_handling, sub_id \
         FROM subscriptions ORDER BY client_id, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            StoredSubscription {
                filter: r.get(1)?,
                qos: small(r.get(2)?),
                no_local: r.get(3)?,
                retain_as_published: r.get(4)?,
                retain_handling: r.get::<_, Option<i64>>(5)?.map(small),
                sub_id: r
                    .get::<_, Option<i64>>(6)?
                    .and_then(|n| u32::try_from(n).ok()),
            },
        ))
    })?;
    for row in rows {
        let (client_id, sub) = row?;
        if let Some(&i) = index.get(&client_id) {
            sessions[i].subscriptions.push(sub);
        }
    }
    let mut stmt = conn.prepare(
        "SELECT client_id, state, packet_id, from_client, topic, payload, qos, retain, dup, \
         props, created_ms FROM messages ORDER BY client_id, seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            MessageState::from_i64(r.get(1)?),
            StoredMessage {
                packet_id: r
                    .get::<_, Option<i64>>(2)?
                    .and_then(|n| u16::try_from(n).ok()),
                from_client: r.get(3)?,
                topic: r.get(4)?,
                payload: r.get(5)?,
                qos: small(r.get(6)?),
                retain: r.get(7)?,
                dup: r.get(8)?,
                props: props_from(r.get(9)?),
                created_ms: r.get(10)?,
            },
        ))
    })?;
    for row in rows {
        let (client_id, state, message) = row?;
        if let (Some(&i), Some(state)) = (index.get(&client_id), state) {
            sessions[i].messages.push((state, message));
        }
    }
    loaded.sessions = sessions;
    Ok(loaded)
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Op>, path: PathBuf) {
    let mut pending: Vec<Op> = Vec::new();
    let mut retained: HashMap<String, Option<StoredMessage>> = HashMap::new();
    let mut deadline: Option<Instant> = None;
    let mut flush = |pending: &mut Vec<Op>, retained: &mut HashMap<_, _>| {
        let result = commit(&mut conn, std::mem::take(pending), std::mem::take(retained));
        if let Err(e) = &result {
            tracing::error!(path = %path.display(), error = %e, "cannot write the broker persistence file");
        }
        result
    };
    loop {
        let next = match deadline {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok(Op::Close(reply)) => {
                let result = flush(&mut pending, &mut retained);
                let _ = reply.send(result.map_err(|e| e.to_string()));
                return;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = flush(&mut pending, &mut retained);
                return;
            }
            Ok(Op::Retain(topic, message)) => {
                retained.insert(topic, message);
            }
            Ok(op) => pending.push(op),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if deadline.is_none() && (!pending.is_empty() || !retained.is_empty()) {
            deadline = Some(Instant::now() + FLUSH_INTERVAL);
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            let _ = flush(&mut pending, &mut retained);
            deadline = None;
        }
    }
}

fn commit(
    conn: &mut Connection,
    ops: Vec<Op>,
    retained: HashMap<String, Option<StoredMessage>>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (topic, message) in retained {
        match message {
            Some(m) => {
                tx.execute(
                    "INSERT OR REPLACE INTO retained(topic, payload, qos, props, created_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![topic, m.payload, m.qos, props_text(&m.props), m.created_ms],
                )?;
            }
            None => {
                tx.execute("DELETE FROM retained WHERE topic = ?1", params![topic])?;
            }
        }
    }
    for op in ops {
        apply(&tx, op)?;
    }
    tx.commit()
}

fn apply(tx: &rusqlite::Transaction<'_>, op: Op) -> rusqlite::Result<()> {
    match op {
        Op::Session(s) => {
            tx.execute(
                "INSERT OR REPLACE INTO sessions(client_id, username, v5, expiry_secs, \
                 receive_max, created_ms, disconnected_ms, listener) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.client_id,
                    s.username,
                    s.v5,
                    i64::from(s.expiry_secs),
                    s.receive_max,
                    s.created_ms,
                    s.disconnected_ms,
                    s.listener
                ],
            )?;
        }
        Op::Disconnected {
            client_id,
            at_ms,
            expiry_secs,
        } => {
            tx.execute(
                "UPDATE sessions SET disconnected_ms = ?2, expiry_secs = ?3 WHERE client_id = ?1",
                params![client_id, at_ms, i64::from(expiry_secs)],
            )?;
        }
        Op::DeleteSession(client_id) => {
            for table in ["sessions", "subscriptions", "messages"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE client_id = ?1"),
                    params![client_id],
                )?;
            }
        }
        Op::Subscribe(client_id, s) => {
            tx.execute(
                "INSERT OR REPLACE INTO subscriptions(client_id, filter, qos, no_local, \
                 retain_as_published, retain_handling, sub_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    client_id,
                    s.filter,
                    s.qos,
                    s.no_local,
                    s.retain_as_published,
                    s.retain_handling,
                    s.sub_id
                ],
            )?;
        }
        Op::Unsubscribe(client_id, filter) => {
            tx.execute(
                "DELETE FROM subscriptions WHERE client_id = ?1 AND filter = ?2",
                params![client_id, filter],
            )?;
        }
        Op::SaveMessages(all) => {
            tx.execute("DELETE FROM messages", [])?;
            let mut stmt = tx.prepare(
                "INSERT INTO messages(client_id, seq, state, packet_id, from_client, topic, \
                 payload, qos, retain, dup, props, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (client_id, messages) in all {
                for (seq, (state, m)) in messages.into_iter().enumerate() {
                    stmt.execute(params![
                        client_id,
                        i64::try_from(seq).unwrap_or(i64::MAX),
                        state as i64,
                        m.packet_id,
                        m.from_client,
                        m.topic,
                        m.payload,
                        m.qos,
                        m.retain,
                        m.dup,
                        props_text(&m.props),
                        m.created_ms
                    ])?;
                }
            }
        }
        Op::Retain(..) | Op::Close(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
