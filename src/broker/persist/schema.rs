//! Opening the persistence file: create the directory, check integrity (moving a corrupt file
//! aside under a free name), set WAL and `synchronous=FULL`, and create or migrate the schema.
//!
//! Schema 1 (ferrule on rmqtt) held retained messages, sessions and subscriptions in shapes
//! schema 2 can take over, and queued messages only between a clean stop and the next start;
//! migrating keeps the first three and drops the last (it was empty after every start).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::PersistError;

pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retained(
    topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL,
    props TEXT, created_ms INTEGER NOT NULL, expires_ms INTEGER);
CREATE TABLE IF NOT EXISTS sessions(
    client_id TEXT PRIMARY KEY, username TEXT, protocol INTEGER NOT NULL,
    expiry_secs INTEGER NOT NULL, disconnected_ms INTEGER);
CREATE TABLE IF NOT EXISTS subscriptions(
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL,
    no_local INTEGER NOT NULL, retain_as_published INTEGER NOT NULL,
    retain_handling INTEGER NOT NULL, sub_id INTEGER NOT NULL,
    PRIMARY KEY(client_id, filter));
CREATE TABLE IF NOT EXISTS msgs(
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, props TEXT, from_client TEXT,
    created_ms INTEGER NOT NULL, expires_ms INTEGER);
CREATE TABLE IF NOT EXISTS queue(
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, sub_ids TEXT,
    packet_id INTEGER, released INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(client_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wills(
    client_id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, props TEXT,
    delay_secs INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS qos2_in(
    client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY(client_id, packet_id)) WITHOUT ROWID;
";

/// Schema 1 → 2 (run inside the transaction that creates the schema-2 tables).
const MIGRATE_1: &str = "
ALTER TABLE retained ADD COLUMN expires_ms INTEGER;
ALTER TABLE sessions RENAME TO sessions_1;
ALTER TABLE subscriptions RENAME TO subscriptions_1;
DROP TABLE IF EXISTS messages;
";

const MIGRATE_1_COPY: &str = "
INSERT INTO sessions(client_id, username, protocol, expiry_secs, disconnected_ms)
    SELECT client_id, username, CASE v5 WHEN 1 THEN 5 ELSE 4 END, expiry_secs, disconnected_ms
    FROM sessions_1;
INSERT INTO subscriptions(client_id, filter, qos, no_local, retain_as_published,
        retain_handling, sub_id)
    SELECT client_id, filter, qos, COALESCE(no_local, 0), COALESCE(retain_as_published, 0),
        COALESCE(retain_handling, 0), COALESCE(sub_id, 0)
    FROM subscriptions_1;
DROP TABLE sessions_1;
DROP TABLE subscriptions_1;
";

enum Unreadable {
    Corrupt,
    Newer(i64),
    Other(rusqlite::Error),
}

/// Opens `path`; a corrupt file is moved aside first (its new name is returned).
pub fn open(path: &Path) -> Result<(Connection, Option<PathBuf>), PersistError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PersistError::Dir {
            path: path.to_owned(),
            source,
        })?;
    }
    let fail = |e: Unreadable| match e {
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
    };
    match open_checked(path) {
        Ok(conn) => Ok((conn, None)),
        Err(Unreadable::Corrupt) => {
            let aside = crate::store::recover::move_aside(path, chrono::Utc::now()).map_err(
                |e| PersistError::MoveAside {
                    path: path.to_owned(),
                    reason: e.to_string(),
                },
            )?;
            let conn = open_checked(path).map_err(fail)?;
            Ok((conn, Some(aside)))
        }
        Err(e) => Err(fail(e)),
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
    // A commit is on the disk before the engine acknowledges what it holds (power loss too).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(corrupt)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(corrupt)?;
    if version > SCHEMA_VERSION {
        return Err(Unreadable::Newer(version));
    }
    let (before, after) = if version == 1 {
        (MIGRATE_1, MIGRATE_1_COPY)
    } else {
        ("", "")
    };
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {before} {SCHEMA} {after} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(corrupt)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_1_file_is_migrated_keeping_retained_messages_sessions_and_subscriptions(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("broker.db");
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch(
                "CREATE TABLE retained(topic TEXT PRIMARY KEY, payload BLOB NOT NULL,
                    qos INTEGER NOT NULL, props TEXT, created_ms INTEGER NOT NULL);
                 CREATE TABLE sessions(client_id TEXT PRIMARY KEY, username TEXT,
                    v5 INTEGER NOT NULL, expiry_secs INTEGER NOT NULL, receive_max INTEGER,
                    created_ms INTEGER NOT NULL, disconnected_ms INTEGER,
                    listener INTEGER NOT NULL);
                 CREATE TABLE subscriptions(client_id TEXT NOT NULL, filter TEXT NOT NULL,
                    qos INTEGER NOT NULL, no_local INTEGER, retain_as_published INTEGER,
                    retain_handling INTEGER, sub_id INTEGER, PRIMARY KEY(client_id, filter));
                 CREATE TABLE messages(client_id TEXT NOT NULL, seq INTEGER NOT NULL);
                 INSERT INTO retained VALUES('a/b', x'6869', 1, NULL, 5);
                 INSERT INTO sessions VALUES('keep1', 'bob', 0, 4294967295, NULL, 1, 9, 0);
                 INSERT INTO subscriptions VALUES('keep1', 'a/#', 1, NULL, NULL, NULL, NULL);
                 PRAGMA user_version = 1;",
            )?;
        }
        let (conn, aside) = open(&path)?;
        assert!(aside.is_none());
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(version, SCHEMA_VERSION);
        let (protocol, expiry): (i64, i64) = conn.query_row(
            "SELECT protocol, expiry_secs FROM sessions WHERE client_id = 'keep1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!((protocol, expiry), (4, 4_294_967_295));
        let subs: i64 = conn.query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0))?;
        let retained: i64 = conn.query_row("SELECT count(*) FROM retained", [], |r| r.get(0))?;
        assert_eq!((subs, retained), (1, 1));
        Ok(())
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_twice_without_overwriting(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("broker.db");
        let mut asides = Vec::new();
        for round in 0..2 {
            std::fs::write(&path, format!("not a database {round}").repeat(100))?;
            let (_conn, aside) = open(&path)?;
            asides.push(aside.expect("moved aside"));
        }
        assert_ne!(asides[0], asides[1], "a free name each time");
        for (round, aside) in asides.iter().enumerate() {
            let text = std::fs::read_to_string(aside)?;
            assert!(text.starts_with(&format!("not a database {round}")));
        }
        Ok(())
    }
}
