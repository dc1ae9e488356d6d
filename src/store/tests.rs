//! Tests of the queue through its public handle: round trip, ids, stats, group commit, close,
//! crash (a child process killed mid-batch), corrupt files, and a model-based property test.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::recover::with_suffix;
use super::*;
use crate::config::Durability;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Upper bound for anything a test waits on.
const WAIT: Duration = Duration::from_secs(10);

fn record(topic: &str, payload: &[u8]) -> Record {
    Record {
        topic: topic.to_owned(),
        payload: Bytes::copy_from_slice(payload),
        qos: 1,
        retain: false,
    }
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("queue.db")
}

async fn all_rows(queue: &Queue) -> Result<Vec<Row>, StoreError> {
    queue.fetch(0, usize::MAX).await
}

#[tokio::test]
async fn enqueue_fetch_ack_round_trip() -> TestResult {
    let dir = tempfile::tempdir()?;
    let queue = Queue::open(&db_in(&dir), Durability::Full)?;
    let records = vec![
        Record {
            topic: "plant1/boiler/temperature".into(),
            payload: Bytes::from_static(br#"{"value":21.5}"#),
            qos: 1,
            retain: true,
        },
        // An empty retained payload clears a retained message upstream: it must survive as such.
        Record {
            topic: "plant1/boiler/$state".into(),
            payload: Bytes::new(),
            qos: 0,
            retain: true,
        },
        Record {
            topic: "plant1/boiler/setpoint/set/result".into(),
            payload: Bytes::from_static(&[0, 255, 1]),
            qos: 2,
            retain: false,
        },
    ];
    let before = chrono::Utc::now().timestamp_millis();
    let mut ids = Vec::new();
    for r in &records {
        ids.push(queue.enqueue(r.clone()).await?);
    }
    let after = chrono::Utc::now().timestamp_millis();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let rows = queue.fetch(0, 10).await?;
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        rows.iter().map(|r| r.record.clone()).collect::<Vec<_>>(),
        records
    );
    assert!(rows
        .iter()
        .all(|r| (before..=after).contains(&r.enqueued_ms)));
    assert_eq!(queue.fetch(ids[0], 10).await?, rows[1..]);
    assert_eq!(queue.fetch(0, 1).await?, rows[..1]);
    assert_eq!(queue.fetch(ids[2], 10).await?, []);
    assert_eq!(queue.fetch(0, 0).await?, []);

    queue.ack(vec![ids[0], ids[1], 999_999]).await?;
    assert_eq!(queue.fetch(0, 10).await?, rows[2..]);
    queue.ack(vec![ids[2]]).await?;
    assert_eq!(queue.fetch(0, 10).await?, []);
    let stats = queue.stats().await?;
    assert_eq!(
        stats,
        Stats {
            depth: 0,
            bytes: 0,
            oldest_ms: None,
            last_id: ids[2]
        }
    );
    queue.close().await?;
    Ok(())
}

#[tokio::test]
async fn ids_are_never_reused_after_emptying_and_reopening() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_in(&dir);
    let queue = Queue::open(&path, Durability::Normal)?;
    let ids = queue
        .enqueue_many((0..5).map(|i| record("t", &[i])).collect())
        .await?;
    queue.ack(ids.clone()).await?;
    let next = queue.enqueue(record("t", b"x")).await?;
    assert!(next > ids[4]);
    queue.ack(vec![next]).await?;
    queue.close().await?;

    let queue = Queue::open(&path, Durability::Normal)?;
    assert_eq!(queue.stats().await?.last_id, next);
    assert_eq!(*queue.committed().borrow(), next);
    assert!(queue.enqueue(record("t", b"y")).await? > next);
    queue.close().await?;
    Ok(())
}

#[tokio::test]
async fn stats_count_depth_bytes_and_oldest_and_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_in(&dir);
    let queue = Queue::open(&path, Durability::Normal)?;
    let empty = queue.stats().await?;
    assert_eq!((empty.depth, empty.bytes, empty.oldest_ms), (0, 0, None));

    // "°C" is 3 bytes but 2 characters: bytes are counted.
    let first = queue.enqueue(record("a/°C", b"12345")).await?;
    let oldest = queue.fetch(0, 1).await?[0].enqueued_ms;
    let second = queue.enqueue(record("bb", b"")).await?;
    let third = queue.enqueue(record("c", &[7; 100])).await?;
    let expected = Stats {
        depth: 3,
        bytes: (5 + 5) + 2 + (1 + 100),
        oldest_ms: Some(oldest),
        last_id: third,
    };
    assert_eq!(queue.stats().await?, expected);

    queue.ack(vec![second, second]).await?;
    let expected = Stats {
        depth: 2,
        bytes: 10 + 101,
        ..expected
    };
    assert_eq!(queue.stats().await?, expected);
    queue.close().await?;

    // Reopening recounts from the file.
    let queue = Queue::open(&path, Durability::Normal)?;
    assert_eq!(queue.stats().await?, expected);
    queue.ack(vec![first]).await?;
    let stats = queue.stats().await?;
    assert_eq!((stats.depth, stats.bytes), (1, 101));
    assert!(stats.oldest_ms >= Some(oldest));
    queue.close().await?;
    Ok(())
}

#[tokio::test]
async fn committed_watch_follows_commits_and_ends_with_the_worker() -> TestResult {
    let dir = tempfile::tempdir()?;
    let queue = Queue::open(&db_in(&dir), Durability::Normal)?;
    let mut committed = queue.committed();
    let start = *committed.borrow_and_update();
    assert_eq!(start, queue.stats().await?.last_id);

    let writer = queue.clone();
    let id = tokio::spawn(async move { writer.enqueue(record("t", b"1")).await }).await??;
    tokio::time::timeout(WAIT, committed.changed()).await??;
    assert_eq!(*committed.borrow_and_update(), id);

    // An ack commits but adds nothing: no wake-up.
    queue.ack(vec![id]).await?;
    assert!(!committed.has_changed()?);

    queue.close().await?;
    assert!(tokio::time::timeout(WAIT, committed.changed())
        .await?
        .is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_group_committed() -> TestResult {
    const TASKS: usize = 50;
    const EACH: usize = 200;
    let dir = tempfile::tempdir()?;
    let queue = Queue::open(&db_in(&dir), Durability::Full)?;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let queue = queue.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let r = record(&format!("task/{task}"), i.to_string().as_bytes());
                ids.push(queue.enqueue(r).await?);
            }
            Ok::<_, StoreError>(ids)
        }));
    }
    let mut all_ids = HashSet::new();
    for handle in handles {
        for id in handle.await?? {
            assert!(all_ids.insert(id), "id {id} returned twice");
        }
    }
    assert_eq!(all_ids.len(), TASKS * EACH);

    let rows = all_rows(&queue).await?;
    assert_eq!(rows.len(), TASKS * EACH);
    assert!(rows.iter().all(|r| all_ids.contains(&r.id)));
    // Per task (topic), rows come back in the order the task enqueued them.
    let mut next = BTreeMap::<&str, usize>::new();
    for row in &rows {
        let expected = next.entry(&row.record.topic).or_default();
        assert_eq!(row.record.payload, expected.to_string().as_bytes());
        *expected += 1;
    }
    assert!(next.values().all(|&n| n == EACH));

    let commits = queue.counters().commits;
    assert!(
        commits < (TASKS * EACH) as u64,
        "{commits} commits for {} records: no group commit",
        TASKS * EACH
    );
    assert_eq!(queue.counters().failed_commits, 0);
    queue.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_carries_out_what_was_sent_then_refuses() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_in(&dir);
    let queue = Queue::open(&path, Durability::Normal)?;
    let mut handles = Vec::new();
    for i in 0..200u32 {
        let queue = queue.clone();
        handles.push(tokio::spawn(async move {
            queue.enqueue(record("t", &i.to_be_bytes())).await
        }));
    }
    let closer = queue.clone();
    let closed = tokio::spawn(async move { closer.close().await });
    let mut committed = Vec::new();
    for handle in handles {
        match handle.await? {
            Ok(id) => committed.push(id),
            Err(StoreError::Closed) => {}
            Err(e) => return Err(e.into()),
        }
    }
    closed.await??;
    assert!(matches!(
        queue.enqueue(record("t", b"late")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(queue.stats().await, Err(StoreError::Closed)));
    assert!(matches!(queue.close().await, Err(StoreError::Closed)));
    // The checkpoint moved everything into the main file (SQLite then removes the empty WAL).
    let wal = with_suffix(&path, "-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal)?.len() == 0);

    let queue = Queue::open(&path, Durability::Normal)?;
    let ids: HashSet<i64> = all_rows(&queue).await?.iter().map(|r| r.id).collect();
    assert!(committed.iter().all(|id| ids.contains(id)));
    queue.close().await?;
    Ok(())
}

#[tokio::test]
async fn rows_survive_dropping_the_handle_without_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_in(&dir);
    let queue = Queue::open(&path, Durability::Full)?;
    let ids = queue
        .enqueue_many(vec![record("a", b"1"), record("b", b"2")])
        .await?;
    drop(queue);

    let queue = Queue::open(&path, Durability::Full)?;
    let rows = all_rows(&queue).await?;
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), ids);

    // The handle and its worker never go away: the new connection still sees every commit.
    let id = queue.enqueue(record("c", b"3")).await?;
    std::mem::forget(queue);
    let queue = Queue::open(&path, Durability::Full)?;
    assert_eq!(all_rows(&queue).await?.last().map(|r| r.id), Some(id));
    queue.close().await?;
    Ok(())
}

const CRASH_ENV: &str = "FERRULE_STORE_CRASH_DIR";
const CRASH_READY: &str = "ferrule-store-crash-child: ready";
const CRASH_TASKS: usize = 8;
const CRASH_AFTER: usize = 300;

/// The child half of `survives_kill_9_mid_batch`: does nothing unless run by it.
#[test]
fn crash_child() -> TestResult {
    let Some(dir) = std::env::var_os(CRASH_ENV).map(PathBuf::from) else {
        return Ok(());
    };
    // The parent holds our stdin open until it kills us; if it dies first (its test run was
    // interrupted), end too rather than run on as an orphan.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    runtime.block_on(async move {
        let queue = Queue::open(&dir.join("queue.db"), Durability::Full)?;
        let log = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("committed.log"))?,
        );
        let total = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for task in 0..CRASH_TASKS {
            let (queue, log, total) = (queue.clone(), Arc::clone(&log), Arc::clone(&total));
            tasks.push(tokio::spawn(async move {
                // Bounded, so a child whose parent went away does not run on forever.
                for i in 0..CRASH_AFTER as u64 * 20 {
                    let id = queue
                        .enqueue(record(&format!("task/{task}"), &i.to_be_bytes()))
                        .await?;
                    // One write(2) per line: in the page cache, it outlives the process.
                    (&*log).write_all(format!("{id} {task} {i}\n").as_bytes())?;
                    if total.fetch_add(1, Ordering::SeqCst) + 1 == CRASH_AFTER {
                        println!("{CRASH_READY}");
                    }
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }));
        }
        // Runs until killed (or out of work, which the parent reports as a failure).
        for task in tasks {
            task.await?.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

#[test]
fn survives_kill_9_mid_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "store::tests::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // libtest prints "test ... " before it on the same line.
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.ends_with(CRASH_READY));
        let _ = ready_tx.send(ready);
    });
    let ready = ready_rx.recv_timeout(WAIT);
    // SIGKILL while the writers keep going: the kill lands in the middle of some batch.
    child.kill()?;
    child.wait()?;
    assert_eq!(
        ready,
        Ok(true),
        "the child did not report {CRASH_AFTER} commits"
    );

    let logged: Vec<(i64, usize, u64)> = std::fs::read_to_string(dir.path().join("committed.log"))?
        .lines()
        .map(|line| {
            let mut parts = line.split(' ').map(str::parse::<i64>);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(id)), Some(Ok(task)), Some(Ok(i))) => Ok((id, task as usize, i as u64)),
                _ => Err(format!("bad log line {line:?}")),
            }
        })
        .collect::<Result<_, _>>()?;
    assert!(logged.len() >= CRASH_AFTER);

    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let queue = Queue::open(&dir.path().join("queue.db"), Durability::Full)?;
        assert_eq!(queue.recovered_from(), None);
        let rows = all_rows(&queue).await?;
        let by_id: BTreeMap<i64, &Row> = rows.iter().map(|r| (r.id, r)).collect();
        // Every enqueue that resolved is there, as written.
        for &(id, task, i) in &logged {
            let row = by_id.get(&id).ok_or(format!("committed id {id} lost"))?;
            assert_eq!(
                row.record,
                record(&format!("task/{task}"), &i.to_be_bytes())
            );
        }
        // Per task: a gapless prefix 0, 1, 2, ... in id order (the in-flight one may be there).
        let mut next = BTreeMap::<String, u64>::new();
        for row in &rows {
            let expected = next.entry(row.record.topic.clone()).or_default();
            assert_eq!(row.record.payload, expected.to_be_bytes()[..], "{row:?}");
            *expected += 1;
        }
        queue.close().await?;
        Ok(())
    })
}

#[tokio::test]
async fn garbage_file_is_moved_aside_and_replaced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, &garbage)?;
    std::fs::write(with_suffix(&path, "-wal"), b"old wal")?;

    let queue = Queue::open(&path, Durability::Full)?;
    let moved = queue.recovered_from().ok_or("not reported")?;
    assert_eq!(moved.parent(), Some(dir.path()));
    let name = moved.file_name().and_then(|n| n.to_str()).ok_or("name")?;
    let stamp = name
        .strip_prefix("queue.db.corrupt-")
        .ok_or(name.to_owned())?;
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").is_ok(),
        "{name}"
    );
    assert!(std::fs::read(&moved)? == garbage, "moved file changed");
    assert_eq!(std::fs::read(with_suffix(&moved, "-wal"))?, b"old wal");

    let id = queue.enqueue(record("t", b"fresh")).await?;
    assert_eq!(all_rows(&queue).await?.len(), 1);
    // The new queue's ids start at its creation time in microseconds: above any id the lost
    // file handed out (unless it averaged over a million messages a second).
    let now_us = chrono::Utc::now().timestamp_micros();
    assert!(id <= now_us && id > now_us - 60_000_000, "{id} vs {now_us}");
    queue.close().await?;
    Ok(())
}

#[tokio::test]
async fn damaged_pages_are_detected_and_moved_aside() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let queue = Queue::open(&path, Durability::Normal)?;
    let big = vec![b'x'; 1000];
    queue
        .enqueue_many((0..200).map(|_| record("t", &big)).collect())
        .await?;
    queue.close().await?;

    // Scribble over the pages after the schema page (4 KiB pages).
    let mut bytes = std::fs::read(&path)?;
    assert!(bytes.len() > 16 * 4096);
    for b in &mut bytes[2 * 4096..12 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes)?;

    let queue = Queue::open(&path, Durability::Normal)?;
    let moved = queue.recovered_from().ok_or("damage not detected")?;
    assert!(std::fs::read(&moved)? == bytes, "moved file changed");
    assert_eq!(queue.stats().await?.depth, 0);
    queue.close().await?;
    Ok(())
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "user_version", 99)?;
    drop(conn);
    let before = std::fs::read(&path)?;

    match Queue::open(&path, Durability::Full) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: 2,
            ..
        }) => {}
        other => return Err(format!("expected SchemaTooNew, got {other:?}").into()),
    }
    assert!(std::fs::read(&path)? == before, "refused file changed");
    let entries = std::fs::read_dir(dir.path())?.count();
    assert_eq!(entries, 1, "nothing moved aside");
    Ok(())
}

#[test]
fn errors_name_the_file_and_the_operation() {
    let err = StoreError::sqlite(
        Path::new("/var/lib/ferrule/queue.db"),
        "commit",
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None),
    );
    assert_eq!(
        err.to_string(),
        "queue database /var/lib/ferrule/queue.db: commit failed"
    );
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        source
            .as_deref()
            .is_some_and(|s| s.contains("disk is full")),
        "{source:?}"
    );
}

mod files;
mod model;
