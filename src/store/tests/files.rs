//! The file itself: its size after a drain, the upgrade of a version 1 file, and what
//! `ferrule queue` reads and purges beside a running queue.

use super::*;

/// A version 1 file as the first release wrote it: no counters, no auto-vacuum.
fn write_v1(path: &Path, rows: usize) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE queue (
             id          INTEGER PRIMARY KEY AUTOINCREMENT,
             enqueued_ms INTEGER NOT NULL,
             topic       TEXT    NOT NULL,
             payload     BLOB    NOT NULL,
             qos         INTEGER NOT NULL CHECK (qos BETWEEN 0 AND 2),
             retain      INTEGER NOT NULL CHECK (retain IN (0, 1))
         ) STRICT;
         PRAGMA user_version = 1;",
    )?;
    for i in 0..rows {
        conn.execute(
            "INSERT INTO queue (enqueued_ms, topic, payload, qos, retain) VALUES (?1, 'v1/t', ?2, 1, 0)",
            rusqlite::params![i as i64, format!("m{i}").into_bytes()],
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place_and_keeps_its_rows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    write_v1(&path, 5)?;
    let queue = Queue::open(&path, Durability::Full)?;
    assert_eq!(queue.recovered_from(), None);
    let rows = all_rows(&queue).await?;
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(rows[4].record.payload, b"m4"[..]);
    // Ids go on from the old ones: the sequence the cloud sees has no jump.
    assert_eq!(queue.enqueue(record("t", b"x")).await?, 6);
    queue.close().await?;

    let conn = rusqlite::Connection::open(&path)?;
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(
        (auto_vacuum, version),
        (2, 2),
        "incremental auto-vacuum, schema 2"
    );
    assert_eq!(inspect::snapshot(&path)?.totals.get(Counter::Enqueued), 1);
    Ok(())
}

#[tokio::test]
async fn the_file_shrinks_after_a_drain_and_stays_near_the_payload_size() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let queue = Queue::open(&path, Durability::Normal)?;
    // 20,000 messages of a typical point-state size: ~2 MB of topics and payloads.
    let payload = br#"{"value":21.5,"ts":"2026-11-22T10:00:00.123Z","quality":"good","unit":"C"}"#;
    for chunk in 0..20 {
        let records = (0..1000)
            .map(|i| record(&format!("plant1/device-{chunk}/point-{i}"), payload))
            .collect();
        queue.enqueue_many(records).await?;
    }
    let full = queue.stats().await?;
    let on_disk = |path: &Path| -> std::io::Result<u64> {
        let wal = std::fs::metadata(with_suffix(path, "-wal")).map_or(0, |m| m.len());
        Ok(std::fs::metadata(path)?.len() + wal)
    };
    let snapshot = inspect::snapshot(&path)?;
    let ratio = (snapshot.db_bytes - snapshot.free_bytes) as f64 / full.bytes as f64;
    assert!(ratio < 1.5, "pages in use {ratio:.2}× the payload bytes");
    eprintln!("pages in use: {ratio:.2}× the payload bytes");

    // Drain it the way the uplink does: fetch, ack, in window-sized steps.
    let mut after = 0;
    loop {
        let rows = queue.fetch(after, 500).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        queue.ack(rows.iter().map(|r| r.id).collect()).await?;
    }
    assert_eq!(queue.stats().await?.depth, 0);
    queue.close().await?;
    // Closing checkpoints the WAL; the freed pages were given back along the way.
    let size = on_disk(&path)?;
    assert!(
        size < 512 << 10,
        "{size} bytes on disk for an empty queue that held {} bytes",
        full.bytes
    );
    Ok(())
}

#[tokio::test]
async fn inspect_reads_beside_a_running_queue_and_purge_is_seen_by_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let queue = Queue::open(&path, Durability::Full)?;
    let ids = queue
        .enqueue_many((0..10).map(|i| record("plant1/a", &[i])).collect())
        .await?;
    queue.ack(ids[..2].to_vec()).await?;

    let s = inspect::snapshot(&path)?;
    assert_eq!((s.depth, s.bytes), (8, 8 * 9));
    assert_eq!(s.oldest.map(|(id, _)| id), Some(ids[2]));
    assert_eq!(s.last_id, ids[9]);
    assert_eq!(s.totals.get(Counter::Enqueued), 10);
    assert_eq!(s.totals.get(Counter::Delivered), 2);
    assert!(s.file_bytes > 0);
    let peeked = inspect::peek(&path, 3)?;
    assert_eq!(peeked.iter().map(|r| r.id).collect::<Vec<_>>(), ids[2..5]);

    // Purge from "another process" while the queue keeps running.
    assert_eq!(inspect::purge(&path)?, 8);
    let stats = queue.stats().await?;
    assert_eq!((stats.depth, stats.bytes, stats.last_id), (0, 0, ids[9]));
    assert!(queue.fetch(0, 10).await?.is_empty());
    let next = queue.enqueue(record("plant1/a", b"after")).await?;
    assert!(next > ids[9], "ids go on after a purge");
    assert_eq!(inspect::snapshot(&path)?.totals.get(Counter::Purged), 8);
    queue.close().await?;
    Ok(())
}

#[test]
fn inspect_never_creates_or_moves_a_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("none.db");
    match inspect::snapshot(&missing) {
        Err(StoreError::Io { op: "find", .. }) => {}
        other => return Err(format!("expected a missing file, got {other:?}").into()),
    }
    assert!(!missing.exists());

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192])?;
    match inspect::snapshot(&garbage) {
        Err(e @ StoreError::Damaged { .. }) => {
            assert!(e.to_string().contains("moves it aside"), "{e}");
        }
        other => return Err(format!("expected a damaged file, got {other:?}").into()),
    }
    assert!(inspect::purge(&garbage).is_err());
    assert_eq!(std::fs::read(&garbage)?, vec![0x5a; 8192]);
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        1,
        "nothing created or moved"
    );
    Ok(())
}
