//! Connection setup, the integrity check and the versioned schema (`PRAGMA user_version`).
//!
//! [`open`] tells a corrupt file (not a database, or `quick_check` fails) apart from every other
//! failure: only the former may be moved aside by the caller. A locked, unreadable or newer file
//! is an error and is left untouched. Nothing is written to a file before it passed the checks.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;
use crate::config::Durability;

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection (e.g. `ferrule queue`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; more than the statements below.
const STATEMENT_CACHE: usize = 32;

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

pub(crate) const BEGIN: &str = "BEGIN IMMEDIATE";
pub(crate) const COMMIT: &str = "COMMIT";
pub(crate) const ROLLBACK: &str = "ROLLBACK";
pub(crate) const SAVEPOINT: &str = "SAVEPOINT request";
pub(crate) const ROLLBACK_TO: &str = "ROLLBACK TO request";
pub(crate) const RELEASE: &str = "RELEASE request";
pub(crate) const INSERT: &str =
    "INSERT INTO queue (enqueued_ms, topic, payload, qos, retain) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Returns the size of the deleted row, as counted in `Stats::bytes`.
pub(crate) const DELETE: &str =
    "DELETE FROM queue WHERE id = ?1 RETURNING octet_length(topic) + length(payload)";
pub(crate) const FETCH: &str = "SELECT id, enqueued_ms, topic, payload, qos, retain FROM queue \
     WHERE id > ?1 ORDER BY id LIMIT ?2";
pub(crate) const OLDEST: &str = "SELECT enqueued_ms FROM queue ORDER BY id LIMIT 1";
pub(crate) const TOTALS: &str =
    "SELECT count(*), coalesce(sum(octet_length(topic) + length(payload)), 0) FROM queue";
/// The last id ever handed out: kept by SQLite for `AUTOINCREMENT` tables even when empty.
pub(crate) const LAST_ID: &str =
    "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'queue'";
pub(crate) const CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

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
    // One transaction: a crash leaves either no table or version 1 with its table.
    let sql =
        format!("BEGIN IMMEDIATE; {CREATE_V1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;");
    conn.execute_batch(&sql).inspect_err(|_| {
        // Leave no transaction open on a connection about to be dropped; if there is none,
        // this fails harmlessly.
        let _ = conn.execute_batch(ROLLBACK);
    })
}

/// Whether SQLite says the file itself is damaged (as opposed to locked, unreadable, full...).
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}
