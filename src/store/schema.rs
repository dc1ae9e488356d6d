//! Connection setup, the integrity check and the versioned schema (`PRAGMA user_version`).
//!
//! [`open`] tells a corrupt file (not a database, or `quick_check` fails) apart from every other
//! failure: only the former may be moved aside by the caller. A locked, unreadable or newer file
//! is an error and is left untouched. Nothing is written to a file before it passed the checks.
//!
//! Schema versions:
//! - 1: the `queue` table.
//! - 2: the `counters` table (totals since the file was created: enqueued, delivered, dropped
//!   per reason, purged; written in the same transaction as the rows they count), and
//!   `auto_vacuum = INCREMENTAL` so the pages freed by a drain can be given back to the file
//!   system (a version 1 file is rebuilt once with `VACUUM` to switch it on).
//!
//! A new file's ids start at the Unix time in microseconds of its creation, not at 1: the id is
//! the sequence number the cloud sees, and a queue re-created after its file was lost or moved
//! aside as corrupt must continue above every id the old one handed out (it does as long as the
//! old one averaged fewer than a million messages a second and the clock did not go back).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;
use crate::config::Durability;

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// How long a statement waits for a lock held by another connection (e.g. `ferrule queue`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; more than the statements below.
const STATEMENT_CACHE: usize = 32;

/// The WAL is truncated back to this size after a checkpoint (it grows past it only between
/// two checkpoints, every ~1000 pages by SQLite's default).
const JOURNAL_SIZE_LIMIT: i64 = 16 << 20;

/// Page cache of the worker's connection, in KiB (SQLite's default is 2000 KiB). The queue's
/// working set is its two ends (appends at the tail, reads and deletes at the head) and their
/// index pages: 2 MiB hold them many times over, while a larger cache only fills up with
/// pages of a long backlog read once at open (8 MiB did, in the footprint benchmark: 6 MiB
/// of a gateway's 20 MB budget).
const CACHE_KIB: i64 = 2 << 10;

/// Version 1. `AUTOINCREMENT` keeps ids from being reused after the table empties.
const CREATE_V1: &str = "
CREATE TABLE queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_ms INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    qos         INTEGER NOT NULL CHECK (qos BETWEEN 0 AND 2),
    retain      INTEGER NOT NULL CHECK (retain IN (0, 1))
) STRICT;
";

/// Version 2: totals since the file was created, one row per [`Counter`](super::counters).
const CREATE_V2: &str = "
CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
";

pub(crate) const BEGIN: &str = "BEGIN IMMEDIATE";
pub(crate) const COMMIT: &str = "COMMIT";
pub(crate) const ROLLBACK: &str = "ROLLBACK";
pub(crate) const SAVEPOINT: &str = "SAVEPOINT request";
pub(crate) const ROLLBACK_TO: &str = "ROLLBACK TO request";
pub(crate) const RELEASE: &str = "RELEASE request";
pub(crate) const INSERT: &str =
    "INSERT INTO queue (enqueued_ms, topic, payload, qos, retain) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Deletes a range of ids; returns the size of each deleted row, as counted in `Stats::bytes`.
pub(crate) const DELETE_RANGE: &str = "DELETE FROM queue WHERE id BETWEEN ?1 AND ?2 \
     RETURNING octet_length(topic) + length(payload)";
/// Drops a prefix of the queue (the bounds).
pub(crate) const DELETE_UPTO: &str = "DELETE FROM queue WHERE id <= ?1";
/// The oldest rows with their sizes and times, for the bounds.
pub(crate) const OLDEST_ROWS: &str = "SELECT id, octet_length(topic) + length(payload), \
     enqueued_ms FROM queue ORDER BY id";
pub(crate) const FETCH: &str = "SELECT id, enqueued_ms, topic, payload, qos, retain FROM queue \
     WHERE id > ?1 ORDER BY id LIMIT ?2";
pub(crate) const OLDEST: &str = "SELECT enqueued_ms FROM queue ORDER BY id LIMIT 1";
pub(crate) const TOTALS: &str =
    "SELECT count(*), coalesce(sum(octet_length(topic) + length(payload)), 0) FROM queue";
/// The last id ever handed out: kept by SQLite for `AUTOINCREMENT` tables even when empty.
pub(crate) const LAST_ID: &str =
    "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'queue'";
pub(crate) const CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";
pub(crate) const ADD_COUNTER: &str = "INSERT INTO counters (name, value) VALUES (?1, ?2) \
     ON CONFLICT (name) DO UPDATE SET value = value + excluded.value";
pub(crate) const COUNTERS: &str = "SELECT name, value FROM counters";

/// Outcome of [`open`] that is not an error.
pub(crate) enum Checked {
    /// Ready to use: WAL, synchronous level set, schema current.
    Ready(Connection),
    /// The file is not a usable database; the reason, for the log.
    Corrupt(String),
}

/// The first 16 bytes of every SQLite 3 database file.
const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Opens (creating if needed) the database at `path`, checks it and brings the schema up to date.
pub(crate) fn open(path: &Path, durability: Durability) -> Result<Checked, StoreError> {
    if let Some(reason) = precheck(path)? {
        return Ok(Checked::Corrupt(reason));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(conn) => conn,
        Err(e) if is_corruption(&e) => return Ok(Checked::Corrupt(e.to_string())),
        Err(source) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match setup(&conn, path, durability) {
        Ok(()) => Ok(Checked::Ready(conn)),
        Err(Setup::Corrupt(reason)) => Ok(Checked::Corrupt(reason)),
        Err(Setup::Failed(e)) => Err(e),
    }
}

/// Why [`setup`] stopped.
enum Setup {
    Corrupt(String),
    Failed(StoreError),
}

/// A failed statement of [`setup`]: corruption, or an error naming `op`.
fn failed<'p>(path: &'p Path, op: &'static str) -> impl Fn(rusqlite::Error) -> Setup + 'p {
    move |e| {
        if is_corruption(&e) {
            Setup::Corrupt(format!("{op}: {e}"))
        } else {
            Setup::Failed(StoreError::sqlite(path, op, e))
        }
    }
}

fn setup(conn: &Connection, path: &Path, durability: Durability) -> Result<(), Setup> {
    // Until the file is known to be good, closing must neither checkpoint into it nor delete
    // its WAL: a corrupt file is moved aside as it was found.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(failed(path, "set no_ckpt_on_close"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(failed(path, "set busy_timeout"))?;
    // Read before anything is written: a newer file is refused untouched.
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(failed(path, "read user_version"))?;
    if version > SCHEMA_VERSION {
        return Err(Setup::Failed(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    let mut problems = Vec::new();
    conn.pragma_query(None, "quick_check", |row| {
        let line: String = row.get(0)?;
        if line != "ok" && problems.len() < 5 {
            problems.push(line);
        }
        Ok(())
    })
    .map_err(failed(path, "quick_check"))?;
    if !problems.is_empty() {
        return Err(Setup::Corrupt(format!(
            "quick_check: {}",
            problems.join("; ")
        )));
    }
    if version == 0 {
        // Only takes effect on a file with no table yet, and only before WAL mode writes the
        // first page; a no-op otherwise (`migrate` rebuilds older files).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(failed(path, "set auto_vacuum"))?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(failed(path, "enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Setup::Failed(StoreError::NotWal {
            path: path.to_path_buf(),
            mode,
        }));
    }
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(failed(path, "set synchronous"))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(failed(path, "set journal_size_limit"))?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
        .map_err(failed(path, "set cache_size"))?;
    migrate(conn, version).map_err(failed(path, "create schema"))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
        .map_err(failed(path, "set no_ckpt_on_close"))?;
    Ok(())
}

/// Catches what SQLite would "repair" by deleting: a file that is not a database, and a WAL
/// without its database (SQLite deletes the WAL of an empty or missing database file).
fn precheck(path: &Path) -> Result<Option<String>, StoreError> {
    let io = |op| {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let wal = super::recover::with_suffix(path, "-wal");
    let wal_len = match std::fs::metadata(&wal) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(io("inspect")(e)),
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok((wal_len > 0).then(|| "a WAL file exists without its database".into()));
        }
        Err(e) => return Err(io("open")(e)),
    };
    let mut header = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut header)
        .map_err(io("read"))?;
    Ok(if header.is_empty() {
        (wal_len > 0).then(|| "the database file is empty but its WAL is not".into())
    } else if header.len() < 100 || !header.starts_with(HEADER) {
        Some("not a SQLite database (bad header)".into())
    } else {
        None
    })
}

/// Creates or upgrades the schema from `version` (at most [`SCHEMA_VERSION`]).
fn migrate(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if auto_vacuum(conn)? != AUTO_VACUUM_INCREMENTAL {
        // An existing file switches only by being rebuilt; VACUUM is atomic on its own, and a
        // crash after it just redoes the steps below.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")?;
    }
    let mut steps = String::from("BEGIN IMMEDIATE;");
    if version < 1 {
        steps.push_str(CREATE_V1);
        steps.push_str(&format!(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('queue', {});",
            first_id() - 1
        ));
    }
    if version < 2 {
        steps.push_str(CREATE_V2);
    }
    steps.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
    // One transaction: a crash leaves the file at the old version or the new one, whole.
    conn.execute_batch(&steps).inspect_err(|_| {
        // Leave no transaction open on a connection about to be dropped; if there is none,
        // this fails harmlessly.
        let _ = conn.execute_batch(ROLLBACK);
    })
}

/// `PRAGMA auto_vacuum` value of incremental vacuum.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;

fn auto_vacuum(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "auto_vacuum", |row| row.get(0))
}

/// The first id of a new queue: the Unix time in microseconds (at least 1).
fn first_id() -> i64 {
    chrono::Utc::now().timestamp_micros().max(1)
}

/// Gives up to `pages` free pages back to the file system (all of them with `None`).
///
/// The pragma returns one row per page freed and frees a page per step, so it is stepped to
/// the end (`execute_batch` would step once and free one page).
pub(crate) fn incremental_vacuum(conn: &Connection, pages: Option<i64>) -> rusqlite::Result<()> {
    let sql = match pages {
        Some(n) => format!("PRAGMA incremental_vacuum({n})"),
        None => "PRAGMA incremental_vacuum".to_owned(),
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Whether SQLite says the file itself is damaged (as opposed to locked, unreadable, full...).
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}
