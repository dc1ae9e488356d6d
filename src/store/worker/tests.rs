//! Batches handed to the worker directly, so their make-up is exact.

use std::time::Duration;

use std::sync::atomic::AtomicI64;

use super::*;
use crate::config::{Durability, OnFull};
use crate::store::schema::Checked;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn worker(dir: &tempfile::TempDir) -> Result<(Worker, watch::Receiver<i64>), StoreError> {
    bounded(dir, Limits::default())
}

fn bounded(
    dir: &tempfile::TempDir,
    limits: Limits,
) -> Result<(Worker, watch::Receiver<i64>), StoreError> {
    let path = dir.path().join("queue.db");
    let Checked::Ready(conn) = schema::open(&path, Durability::Normal)? else {
        return Err(StoreError::Closed);
    };
    Worker::new(conn, path, Arc::default(), limits, Clock::default())
}

fn record(topic: &str, qos: u8) -> Record {
    Record {
        topic: topic.into(),
        payload: Bytes::from_static(b"p"),
        qos,
        retain: false,
    }
}

fn enqueue(records: Vec<Record>) -> (Request, oneshot::Receiver<Result<Vec<i64>, StoreError>>) {
    let (reply, rx) = oneshot::channel();
    (Request::Enqueue { records, reply }, rx)
}

/// The id of a one-record enqueue.
fn one(
    rx: &mut oneshot::Receiver<Result<Vec<i64>, StoreError>>,
) -> Result<i64, Box<dyn std::error::Error>> {
    match rx.try_recv()??[..] {
        [id] => Ok(id),
        ref other => Err(format!("expected one id, got {other:?}").into()),
    }
}

fn run(worker: &mut Worker, batch: Vec<Request>) {
    let mut closers = Vec::new();
    worker.execute(batch.into_iter(), &mut closers);
    assert!(closers.is_empty());
}

fn ids(worker: &Worker) -> rusqlite::Result<Vec<i64>> {
    Ok(worker.fetch(0, usize::MAX)?.iter().map(|r| r.id).collect())
}

#[test]
fn a_refused_write_fails_alone_and_the_batch_commits_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut worker, committed) = worker(&dir)?;
    let (good1, mut rx1) = enqueue(vec![record("a", 0), record("b", 1)]);
    let (bad, mut rx_bad) = enqueue(vec![record("c", 1), record("d", 3)]);
    let (good2, mut rx2) = enqueue(vec![record("e", 2)]);
    run(&mut worker, vec![good1, bad, good2]);

    let first = rx1.try_recv()??;
    assert_eq!(first.len(), 2);
    assert_eq!(first[1], first[0] + 1);
    match rx_bad.try_recv()? {
        Err(StoreError::Sqlite { op: "enqueue", .. }) => {}
        other => return Err(format!("expected a refused enqueue, got {other:?}").into()),
    }
    // The refused request's first record was rolled back with it.
    let id = one(&mut rx2)?;
    assert_eq!(ids(&worker)?, [first[0], first[1], id]);
    assert_eq!(worker.counters.commits.load(Ordering::Relaxed), 1);
    assert_eq!((worker.level.depth, worker.last_id), (3, id));
    assert_eq!(*committed.borrow(), id);
    Ok(())
}

#[test]
fn a_failed_commit_fails_every_write_of_the_batch_and_the_worker_goes_on() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut worker, committed) = worker(&dir)?;
    let (first, mut rx1) = enqueue(vec![record("a", 1)]);
    run(&mut worker, vec![first]);
    let kept = one(&mut rx1)?;

    worker.fail_commits = true;
    let (e1, mut rx1) = enqueue(vec![record("b", 1)]);
    let (e2, mut rx2) = enqueue(vec![record("c", 1), record("d", 1)]);
    let (ack_reply, mut rx_ack) = oneshot::channel();
    let ack = Request::Ack {
        ids: vec![kept],
        counter: Counter::Delivered,
        reply: ack_reply,
    };
    run(&mut worker, vec![e1, ack, e2]);
    for result in [
        rx1.try_recv()?.map(|_| ()),
        rx2.try_recv()?.map(|_| ()),
        rx_ack.try_recv()?,
    ] {
        match result {
            Err(StoreError::Sqlite { op: "commit", .. }) => {}
            other => return Err(format!("expected the commit error, got {other:?}").into()),
        }
    }
    // Rolled back: the ack did not delete, the enqueues left nothing.
    assert_eq!(ids(&worker)?, [kept]);
    assert_eq!((worker.level.depth, worker.last_id), (1, kept));
    assert_eq!(*committed.borrow(), kept);
    assert_eq!(worker.counters.failed_commits.load(Ordering::Relaxed), 1);

    worker.fail_commits = false;
    let (next, mut rx) = enqueue(vec![record("e", 1)]);
    run(&mut worker, vec![next]);
    let id = one(&mut rx)?;
    assert!(id > kept);
    assert_eq!(ids(&worker)?, [kept, id]);
    Ok(())
}

#[test]
fn a_locked_database_fails_the_batch_and_is_retried_later() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut worker, _committed) = worker(&dir)?;
    worker.conn.busy_timeout(Duration::from_millis(10))?;
    let other = Connection::open(dir.path().join("queue.db"))?;
    other.execute_batch("BEGIN IMMEDIATE")?;

    let (request, mut rx) = enqueue(vec![record("a", 1)]);
    run(&mut worker, vec![request]);
    match rx.try_recv()? {
        Err(StoreError::Sqlite { op: "begin", .. }) => {}
        other => return Err(format!("expected a busy begin, got {other:?}").into()),
    }

    other.execute_batch("ROLLBACK")?;
    let (request, mut rx) = enqueue(vec![record("a", 1)]);
    run(&mut worker, vec![request]);
    assert_eq!(rx.try_recv()??.len(), 1);
    Ok(())
}

#[test]
fn reads_of_a_batch_see_its_committed_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut worker, _committed) = worker(&dir)?;
    let (fetch_reply, mut fetched) = oneshot::channel();
    let (stats_reply, mut stats) = oneshot::channel();
    let (request, mut rx) = enqueue(vec![record("a", 1)]);
    let fetch = Request::Fetch {
        after_id: 0,
        limit: 10,
        reply: fetch_reply,
    };
    run(
        &mut worker,
        vec![fetch, Request::Stats { reply: stats_reply }, request],
    );
    let id = one(&mut rx)?;
    assert_eq!(
        fetched
            .try_recv()??
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [id]
    );
    assert_eq!(stats.try_recv()??.depth, 1);
    Ok(())
}

fn stats(worker: &mut Worker) -> Result<Stats, Box<dyn std::error::Error>> {
    let (reply, mut rx) = oneshot::channel();
    run(worker, vec![Request::Stats { reply }]);
    Ok(rx.try_recv()??)
}

fn persisted(worker: &Worker) -> rusqlite::Result<Totals> {
    Totals::read(&worker.conn)
}

#[test]
fn drop_oldest_keeps_the_newest_within_bounds_and_counts_in_the_same_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = Limits {
        max_messages: Some(3),
        ..Limits::default()
    };
    let (mut worker, _) = bounded(&dir, limits)?;
    let (requests, mut replies): (Vec<_>, Vec<_>) = (0..5)
        .map(|i| enqueue(vec![record(&format!("t{i}"), 1)]))
        .unzip();
    run(&mut worker, requests);
    let all: Vec<i64> = replies.iter_mut().map(one).collect::<Result<_, _>>()?;
    // Every request was taken; the two oldest made room.
    assert_eq!(ids(&worker)?, all[2..]);
    assert_eq!(worker.counters.commits.load(Ordering::Relaxed), 1);
    let totals = worker.counters.totals();
    assert_eq!(totals.get(Counter::Enqueued), 5);
    assert_eq!(totals.get(Counter::DroppedMaxMessages), 2);
    assert_eq!(persisted(&worker)?, totals);
    assert_eq!(stats(&mut worker)?.depth, 3);
    Ok(())
}

#[test]
fn reject_new_refuses_the_request_that_does_not_fit_and_keeps_the_rest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = Limits {
        max_bytes: Some(4),
        on_full: OnFull::RejectNew,
        ..Limits::default()
    };
    let (mut worker, _) = bounded(&dir, limits)?;
    // Each record is 2 bytes ("a" + "p").
    let (r1, mut rx1) = enqueue(vec![record("a", 1)]);
    let (r2, mut rx2) = enqueue(vec![record("b", 1), record("c", 1)]);
    let (r3, mut rx3) = enqueue(vec![record("d", 1)]);
    run(&mut worker, vec![r1, r2, r3]);
    let kept = one(&mut rx1)?;
    match rx2.try_recv()? {
        Err(StoreError::Full {
            bound: "max_bytes",
            limit: 4,
            ..
        }) => {}
        other => return Err(format!("expected a full queue, got {other:?}").into()),
    }
    let last = one(&mut rx3)?;
    assert_eq!(ids(&worker)?, [kept, last]);
    let totals = worker.counters.totals();
    assert_eq!(totals.get(Counter::RejectedFull), 2);
    assert_eq!(totals.get(Counter::Enqueued), 2);
    assert_eq!(persisted(&worker)?, totals);
    Ok(())
}

#[test]
fn expired_rows_are_dropped_at_the_next_batch_even_a_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let Checked::Ready(conn) = schema::open(&path, Durability::Normal)? else {
        return Err("not ready".into());
    };
    let now = Arc::new(AtomicI64::new(1_000_000));
    let limits = Limits {
        max_age: Some(Duration::from_secs(1)),
        ..Limits::default()
    };
    let clock = Clock::Fake(Arc::clone(&now));
    let (mut worker, _) = Worker::new(conn, path, Arc::default(), limits, clock)?;
    let (a, mut rx_a) = enqueue(vec![record("a", 1)]);
    run(&mut worker, vec![a]);
    now.store(1_000_600, Ordering::Relaxed);
    let (b, mut rx_b) = enqueue(vec![record("b", 1)]);
    run(&mut worker, vec![b]);
    let (_, b) = (one(&mut rx_a)?, one(&mut rx_b)?);

    now.store(1_001_000, Ordering::Relaxed);
    assert_eq!(stats(&mut worker)?.depth, 2, "exactly max_age old is kept");
    now.store(1_001_001, Ordering::Relaxed);
    let s = stats(&mut worker)?;
    assert_eq!((s.depth, s.oldest_ms), (1, Some(1_000_600)));
    assert_eq!(ids(&worker)?, [b]);
    assert_eq!(worker.counters.totals().get(Counter::DroppedMaxAge), 1);
    now.store(1_002_000, Ordering::Relaxed);
    assert_eq!(stats(&mut worker)?.depth, 0);
    assert_eq!(persisted(&worker)?.get(Counter::DroppedMaxAge), 2);
    Ok(())
}

#[test]
fn changes_by_another_connection_are_recounted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut worker, _) = worker(&dir)?;
    let (r, mut rx) = enqueue((0..4).map(|i| record(&format!("t{i}"), 1)).collect());
    run(&mut worker, vec![r]);
    let ids = rx.try_recv()??;
    let other = Connection::open(dir.path().join("queue.db"))?;
    other.execute("DELETE FROM queue WHERE id <= ?1", [ids[1]])?;
    let s = stats(&mut worker)?;
    assert_eq!((s.depth, s.bytes, s.last_id), (2, 6, ids[3]));
    Ok(())
}

#[test]
fn acks_delete_runs_of_ids_in_any_order() -> TestResult {
    assert_eq!(runs(&[1, 2, 3, 5, 7, 8]), [(1, 3), (5, 5), (7, 8)]);
    assert_eq!(runs(&[]), []);
    let dir = tempfile::tempdir()?;
    let (mut worker, _) = worker(&dir)?;
    let (r, mut rx) = enqueue((0..6).map(|i| record(&format!("t{i}"), 1)).collect());
    run(&mut worker, vec![r]);
    let ids = rx.try_recv()??;
    let (reply, mut acked) = oneshot::channel();
    let ack = Request::Ack {
        ids: vec![ids[4], ids[0], ids[1], ids[4], 12345],
        counter: Counter::Delivered,
        reply,
    };
    run(&mut worker, vec![ack]);
    acked.try_recv()??;
    assert_eq!(ids_of(&worker)?, [ids[2], ids[3], ids[5]]);
    assert_eq!(worker.counters.totals().get(Counter::Delivered), 3);
    assert_eq!(worker.level, Level { depth: 3, bytes: 9 });
    Ok(())
}

fn ids_of(worker: &Worker) -> rusqlite::Result<Vec<i64>> {
    ids(worker)
}

#[test]
fn with_durability_full_only_commits_that_add_messages_are_fsynced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.db");
    let Checked::Ready(conn) = schema::open(&path, Durability::Full)? else {
        return Err("not ready".into());
    };
    let (mut worker, _) = Worker::new(
        conn,
        path,
        Arc::default(),
        Limits::default(),
        Clock::default(),
    )?;
    let level = |w: &Worker| -> rusqlite::Result<i64> {
        w.conn.pragma_query_value(None, "synchronous", |r| r.get(0))
    };
    let (r, mut rx) = enqueue(vec![record("a", 1)]);
    run(&mut worker, vec![r]);
    let id = one(&mut rx)?;
    assert_eq!(level(&worker)?, SYNCHRONOUS_FULL);
    let (reply, mut acked) = oneshot::channel();
    run(
        &mut worker,
        vec![Request::Ack {
            ids: vec![id],
            counter: Counter::Delivered,
            reply,
        }],
    );
    acked.try_recv()??;
    assert_eq!(level(&worker)?, 1, "a delete-only commit is not fsynced");
    let (r, mut rx) = enqueue(vec![record("b", 1)]);
    run(&mut worker, vec![r]);
    one(&mut rx)?;
    assert_eq!(
        level(&worker)?,
        SYNCHRONOUS_FULL,
        "back to FULL for new messages"
    );
    Ok(())
}
