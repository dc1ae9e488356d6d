//! The queue file seen from another process: `ferrule queue stats`, `peek` and `purge`, which
//! work while the agent runs.
//!
//! Invariants: [`snapshot`] and [`peek`] open the file read-only and never create, migrate,
//! checkpoint or move it (a corrupt file is reported, not touched; the agent moves it aside at
//! its next start). [`purge`] is the one writer: one transaction that deletes every row and
//! counts them as `purged`; a running agent notices (`PRAGMA data_version`) and recounts.
//! SQLite's locking keeps the agent's commits and these readers apart; a reader never blocks
//! the agent (WAL), a purge makes the agent's commits wait for it (busy timeout).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::counters::{Counter, Totals};
use super::queue::{Record, Row};
use super::recover::with_suffix;
use super::schema::{self, is_corruption, SCHEMA_VERSION};
use super::StoreError;

/// How long purge waits for the agent's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a queue file holds, read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub path: PathBuf,
    /// Messages queued.
    pub depth: u64,
    /// Their topic + payload bytes.
    pub bytes: u64,
    /// Id and `enqueued_ms` of the oldest message (the next to send), if any.
    pub oldest: Option<(i64, i64)>,
    /// The last id handed out (the sequence number of the newest message ever queued).
    pub last_id: i64,
    /// Totals since the file was created (zero for a file written by an older build).
    pub totals: Totals,
    /// Size of the database file and of its WAL, in bytes.
    pub file_bytes: u64,
    pub wal_bytes: u64,
    /// The database's own size (pages × page size, including what is still in the WAL).
    pub db_bytes: u64,
    /// Pages of it that are free (given back to the file system by the agent over time).
    pub free_bytes: u64,
}

/// Reads depth, size, age, counters and file sizes, read-only.
pub fn snapshot(path: &Path) -> Result<Snapshot, StoreError> {
    let conn = open_read_only(path)?;
    let read = |op: &'static str| move |e| classify(path, op, e);
    // One read transaction: every number of the snapshot is of the same moment.
    conn.execute_batch("BEGIN").map_err(read("begin"))?;
    let (depth, bytes): (i64, i64) = conn
        .query_row(schema::TOTALS, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(read("count rows"))?;
    let oldest = conn
        .query_row(
            "SELECT id, enqueued_ms FROM queue ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(read("read the oldest row"))?;
    let last_id: i64 = conn
        .query_row(schema::LAST_ID, [], |r| r.get(0))
        .map_err(read("read the last id"))?;
    let has_counters: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'counters'",
            [],
            |r| r.get(0),
        )
        .map_err(read("read the schema"))?;
    let totals = if has_counters {
        Totals::read(&conn).map_err(read("read the counters"))?
    } else {
        Totals::default()
    };
    let page = |pragma: &str| {
        conn.pragma_query_value(None, pragma, |r| r.get::<_, i64>(0))
            .map_err(read("read the page counts"))
    };
    let page_size = count(page("page_size")?);
    let free_bytes = count(page("freelist_count")?) * page_size;
    let db_bytes = count(page("page_count")?) * page_size;
    let _ = conn.execute_batch("COMMIT");
    Ok(Snapshot {
        path: path.to_path_buf(),
        depth: count(depth),
        bytes: count(bytes),
        oldest,
        last_id,
        totals,
        file_bytes: file_len(path)?,
        wal_bytes: file_len(&with_suffix(path, "-wal"))?,
        db_bytes,
        free_bytes,
    })
}

/// The first `n` messages, oldest first (the next ones to be sent), read-only.
pub fn peek(path: &Path, n: usize) -> Result<Vec<Row>, StoreError> {
    let conn = open_read_only(path)?;
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare(schema::FETCH)
        .map_err(|e| classify(path, "peek", e))?;
    let rows = stmt
        .query_map(rusqlite::params![i64::MIN, limit], |row| {
            Ok(Row {
                id: row.get(0)?,
                enqueued_ms: row.get(1)?,
                record: Record {
                    topic: row.get(2)?,
                    payload: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                    qos: row.get(4)?,
                    retain: row.get(5)?,
                },
            })
        })
        .map_err(|e| classify(path, "peek", e))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| classify(path, "peek", e))
}

/// Deletes every queued message in one transaction and counts them as `purged`; returns how
/// many there were. Messages the running agent already handed to its uplink (at most its
/// window) may still be delivered.
pub fn purge(path: &Path) -> Result<u64, StoreError> {
    check_exists(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, "set busy_timeout", e))?;
    check_version(&conn, path)?;
    let step = |op: &'static str| move |e| classify(path, op, e);
    conn.execute_batch(schema::BEGIN).map_err(step("begin"))?;
    let result = (|| {
        let n: i64 = conn.query_row("SELECT count(*) FROM queue", [], |r| r.get(0))?;
        conn.execute("DELETE FROM queue", [])?;
        let mut purged = Totals::default();
        purged.add(Counter::Purged, count(n));
        purged.persist(&conn)?;
        conn.execute_batch(schema::COMMIT)?;
        Ok(count(n))
    })();
    match result {
        Ok(n) => {
            // Give the pages back now if nobody holds the file; the agent does it otherwise.
            let _ = schema::incremental_vacuum(&conn, None);
            Ok(n)
        }
        Err(e) => {
            let _ = conn.execute_batch(schema::ROLLBACK);
            Err(classify(path, "purge", e))
        }
    }
}

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    check_exists(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| match is_corruption(&e) {
        true => corrupt(path, &e),
        false => StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, "set busy_timeout", e))?;
    check_version(&conn, path)?;
    Ok(conn)
}

fn check_exists(path: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "read (not a file)",
            source: std::io::Error::from(ErrorKind::InvalidInput),
        }),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "find",
            source,
        }),
    }
}

fn check_version(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| classify(path, "read user_version", e))?;
    match version {
        0 => Err(StoreError::Damaged {
            path: path.to_path_buf(),
            reason: "it holds no queue (schema version 0)".into(),
        }),
        v if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

/// A corruption error names itself; anything else names the operation.
fn classify(path: &Path, op: &'static str, e: rusqlite::Error) -> StoreError {
    if is_corruption(&e) {
        corrupt(path, &e)
    } else {
        StoreError::sqlite(path, op, e)
    }
}

fn corrupt(path: &Path, e: &rusqlite::Error) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        reason: format!("{e}; `ferrule run` moves it aside and starts a new queue"),
    }
}

fn file_len(path: &Path) -> Result<u64, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "inspect",
            source,
        }),
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
