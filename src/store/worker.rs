//! The thread that owns the SQLite connection.
//!
//! Group commit: the worker blocks for one request, then takes every request already waiting (up
//! to [`MAX_BATCH_RECORDS`] records) and carries out all the writes of that batch (enqueues and
//! acks) in one transaction. Only after `COMMIT` returned does it answer them; if the commit
//! fails, every write of the batch gets the error and nothing of it stays. Reads of the batch run
//! after the commit, so they never see uncommitted rows. An idle queue adds no latency: a lone
//! request is a batch of one.
//!
//! Each write runs inside a savepoint, so a write SQLite refuses (e.g. a QoS above 2) fails alone
//! without taking the rest of its batch down. When SQLite has rolled the whole transaction back
//! itself (disk full, I/O error) or a savepoint cannot be released or rolled back, the whole
//! batch fails. Either way a caller is told "committed" only for rows that are.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot, watch};

use super::queue::{Record, Row, SharedCounters, Stats};
use super::schema;
use super::StoreError;

/// A batch stops growing once it holds this many records (a single larger request is still
/// carried out whole).
pub(crate) const MAX_BATCH_RECORDS: usize = 1024;

/// Failed batches in a row between two repeated error logs.
const LOG_EVERY_FAILURES: u64 = 100;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What a handle asks of the worker.
pub(crate) enum Request {
    Enqueue {
        records: Vec<Record>,
        reply: Reply<Vec<i64>>,
    },
    Ack {
        ids: Vec<i64>,
        reply: Reply<()>,
    },
    Fetch {
        after_id: i64,
        limit: usize,
        reply: Reply<Vec<Row>>,
    },
    Stats {
        reply: Reply<Stats>,
    },
    Close {
        reply: Reply<()>,
    },
}

impl Request {
    /// Size of the request for the batch cap.
    fn weight(&self) -> usize {
        match self {
            Request::Enqueue { records, .. } => records.len().max(1),
            Request::Ack { ids, .. } => ids.len().max(1),
            _ => 1,
        }
    }
}

/// A write of a batch.
enum Write {
    Enqueue {
        records: Vec<Record>,
        reply: Reply<Vec<i64>>,
    },
    Ack {
        ids: Vec<i64>,
        reply: Reply<()>,
    },
}

/// A read of a batch.
enum Read {
    Fetch {
        after_id: i64,
        limit: usize,
        reply: Reply<Vec<Row>>,
    },
    Stats {
        reply: Reply<Stats>,
    },
}

/// The effect of one write, applied to the in-memory totals once its batch committed.
#[derive(Default)]
struct Done {
    /// Ids of the inserted rows (none for an ack).
    ids: Vec<i64>,
    added_bytes: u64,
    removed_rows: u64,
    removed_bytes: u64,
}

/// A failed statement: the operation and SQLite's error.
type Failure = (&'static str, rusqlite::Error);

/// How one write of a batch failed.
enum WriteError {
    /// SQLite refused this write; it was rolled back alone, the batch goes on.
    Refused(Failure),
    /// The transaction is no longer sound (rolled back by SQLite, or a savepoint failed):
    /// the whole batch fails.
    Abort(Failure),
}

pub(crate) struct Worker {
    conn: Connection,
    path: PathBuf,
    /// Totals of the committed rows, kept in step with every commit so `stats` needs no scan.
    depth: u64,
    bytes: u64,
    last_id: i64,
    committed: watch::Sender<i64>,
    counters: Arc<SharedCounters>,
    failures_in_a_row: u64,
    /// Test hook: make the next commits fail as if `COMMIT` had.
    #[cfg(test)]
    pub(crate) fail_commits: bool,
}

impl Worker {
    /// Takes over an open, checked connection; reads the totals once.
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        counters: Arc<SharedCounters>,
    ) -> Result<(Worker, watch::Receiver<i64>), StoreError> {
        let (depth, bytes) = conn
            .query_row(schema::TOTALS, [], |row| {
                Ok((count(row.get(0)?), count(row.get(1)?)))
            })
            .map_err(|e| StoreError::sqlite(&path, "count rows", e))?;
        let last_id = conn
            .query_row(schema::LAST_ID, [], |row| row.get::<_, i64>(0))
            .map_err(|e| StoreError::sqlite(&path, "read last id", e))?;
        let (committed, rx) = watch::channel(last_id);
        let worker = Worker {
            conn,
            path,
            depth,
            bytes,
            last_id,
            committed,
            counters,
            failures_in_a_row: 0,
            #[cfg(test)]
            fail_commits: false,
        };
        Ok((worker, rx))
    }

    /// Serves requests until every handle is gone or one asked to close; then checkpoints and
    /// closes the database.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut closers = Vec::new();
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut weight = first.weight();
            batch.push(first);
            while weight < MAX_BATCH_RECORDS {
                match rx.try_recv() {
                    Ok(request) => {
                        weight += request.weight();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            let closers_before = closers.len();
            self.execute(batch.drain(..), &mut closers);
            if closers.len() > closers_before {
                // Refuse new requests; those already sent are still carried out by this loop.
                rx.close();
            }
        }
        let result = self.shutdown();
        let mut closers = closers.into_iter();
        if let Some(first) = closers.next() {
            let _ = first.send(result);
        } else if let Err(e) = result {
            tracing::error!(error = %e, "closing the queue database failed");
        }
        for later in closers {
            let _ = later.send(Err(StoreError::Closed));
        }
    }

    /// Carries out one batch: all writes in one transaction, then the reads.
    pub(crate) fn execute(
        &mut self,
        batch: impl Iterator<Item = Request>,
        closers: &mut Vec<Reply<()>>,
    ) {
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for request in batch {
            match request {
                Request::Enqueue { records, reply } => {
                    writes.push(Write::Enqueue { records, reply })
                }
                Request::Ack { ids, reply } => writes.push(Write::Ack { ids, reply }),
                Request::Fetch {
                    after_id,
                    limit,
                    reply,
                } => reads.push(Read::Fetch {
                    after_id,
                    limit,
                    reply,
                }),
                Request::Stats { reply } => reads.push(Read::Stats { reply }),
                Request::Close { reply } => closers.push(reply),
            }
        }
        if !writes.is_empty() {
            self.commit_batch(writes);
        }
        for read in reads {
            self.read(read);
        }
    }

    /// All writes of a batch in one transaction; answers each once the outcome is known.
    fn commit_batch(&mut self, writes: Vec<Write>) {
        let now = chrono::Utc::now().timestamp_millis();
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut failure = self.exec(schema::BEGIN).err().map(|e| ("begin", e));
        if failure.is_none() {
            for write in &writes {
                match self.apply_in_savepoint(write, now) {
                    Ok(done) => outcomes.push(Ok(done)),
                    Err(WriteError::Refused((op, e))) => {
                        outcomes.push(Err(StoreError::sqlite(&self.path, op, e)));
                    }
                    Err(WriteError::Abort(f)) => {
                        failure = Some(f);
                        break;
                    }
                }
            }
        }
        if failure.is_none() {
            failure = self.commit().err().map(|e| ("commit", e));
        }
        match failure {
            None => self.committed_batch(writes, outcomes),
            Some((op, e)) => self.failed_batch(writes, op, e),
        }
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        #[cfg(test)]
        if self.fail_commits {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some("injected commit failure".into()),
            ));
        }
        self.exec(schema::COMMIT)
    }

    /// Applies the effects, then answers: totals and `committed` are up to date before any
    /// caller learns of the commit.
    fn committed_batch(&mut self, writes: Vec<Write>, outcomes: Vec<Result<Done, StoreError>>) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if self.failures_in_a_row > 0 {
            tracing::info!(
                path = %self.path.display(),
                failed = self.failures_in_a_row,
                "queue commits succeed again"
            );
            self.failures_in_a_row = 0;
        }
        let last_id_before = self.last_id;
        for done in outcomes.iter().flatten() {
            self.depth += done.ids.len() as u64;
            self.depth = self.depth.saturating_sub(done.removed_rows);
            self.bytes += done.added_bytes;
            self.bytes = self.bytes.saturating_sub(done.removed_bytes);
            if let Some(&last) = done.ids.last() {
                self.last_id = self.last_id.max(last);
            }
        }
        if self.last_id != last_id_before {
            self.committed.send_replace(self.last_id);
        }
        for (write, outcome) in writes.into_iter().zip(outcomes) {
            answer(write, outcome);
        }
    }

    fn failed_batch(&mut self, writes: Vec<Write>, op: &'static str, e: rusqlite::Error) {
        if !self.conn.is_autocommit() {
            if let Err(rollback) = self.exec(schema::ROLLBACK) {
                tracing::error!(path = %self.path.display(), error = %rollback, "queue rollback failed");
            }
        }
        self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
        self.failures_in_a_row += 1;
        if self.failures_in_a_row == 1 || self.failures_in_a_row % LOG_EVERY_FAILURES == 0 {
            tracing::error!(
                path = %self.path.display(),
                op,
                error = %e,
                requests = writes.len(),
                failed_in_a_row = self.failures_in_a_row,
                "queue write failed; every request of the batch gets the error"
            );
        }
        let source = Arc::new(e);
        for write in writes {
            let err = StoreError::Sqlite {
                path: self.path.clone(),
                op,
                source: Arc::clone(&source),
            };
            answer(write, Err(err));
        }
    }

    /// One write inside a savepoint of the open transaction.
    fn apply_in_savepoint(&mut self, write: &Write, now: i64) -> Result<Done, WriteError> {
        let abort = |op| move |e| WriteError::Abort((op, e));
        self.exec(schema::SAVEPOINT).map_err(abort("savepoint"))?;
        let result = match write {
            Write::Enqueue { records, .. } => self.insert(records, now).map_err(|e| ("enqueue", e)),
            Write::Ack { ids, .. } => self.delete(ids).map_err(|e| ("ack", e)),
        };
        match result {
            Ok(done) => {
                self.exec(schema::RELEASE)
                    .map_err(abort("release savepoint"))?;
                Ok(done)
            }
            // Disk full, I/O errors and the like make SQLite roll back the whole transaction.
            Err(failure) if self.conn.is_autocommit() => Err(WriteError::Abort(failure)),
            Err(failure) => {
                self.exec(schema::ROLLBACK_TO)
                    .and_then(|()| self.exec(schema::RELEASE))
                    .map_err(abort("roll back to savepoint"))?;
                Err(WriteError::Refused(failure))
            }
        }
    }

    fn insert(&self, records: &[Record], now: i64) -> rusqlite::Result<Done> {
        let mut stmt = self.conn.prepare_cached(schema::INSERT)?;
        let mut ids = Vec::with_capacity(records.len());
        let mut bytes = 0u64;
        for r in records {
            ids.push(stmt.insert(params![now, r.topic, &r.payload[..], r.qos, r.retain])?);
            bytes += (r.topic.len() + r.payload.len()) as u64;
        }
        Ok(Done {
            ids,
            added_bytes: bytes,
            ..Done::default()
        })
    }

    fn delete(&self, ids: &[i64]) -> rusqlite::Result<Done> {
        let mut stmt = self.conn.prepare_cached(schema::DELETE)?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        for id in ids {
            let mut deleted = stmt.query([id])?;
            if let Some(row) = deleted.next()? {
                rows += 1;
                bytes += count(row.get(0)?);
            }
        }
        Ok(Done {
            removed_rows: rows,
            removed_bytes: bytes,
            ..Done::default()
        })
    }

    fn read(&self, read: Read) {
        match read {
            Read::Fetch {
                after_id,
                limit,
                reply,
            } => {
                let rows = self
                    .fetch(after_id, limit)
                    .map_err(|e| StoreError::sqlite(&self.path, "fetch", e));
                let _ = reply.send(rows);
            }
            Read::Stats { reply } => {
                let stats = self
                    .stats()
                    .map_err(|e| StoreError::sqlite(&self.path, "stats", e));
                let _ = reply.send(stats);
            }
        }
    }

    fn fetch(&self, after_id: i64, limit: usize) -> rusqlite::Result<Vec<Row>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(schema::FETCH)?;
        let rows = stmt.query_map(params![after_id, limit], |row| {
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
        })?;
        rows.collect()
    }

    fn stats(&self) -> rusqlite::Result<Stats> {
        let mut stmt = self.conn.prepare_cached(schema::OLDEST)?;
        let oldest_ms = stmt
            .query_row([], |row| row.get::<_, i64>(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        Ok(Stats {
            depth: self.depth,
            bytes: self.bytes,
            oldest_ms,
            last_id: self.last_id,
        })
    }

    /// Runs a cached statement that returns no rows.
    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Moves the WAL into the database file and closes the connection.
    fn shutdown(self) -> Result<(), StoreError> {
        let busy: i64 = self
            .conn
            .query_row(schema::CHECKPOINT, [], |row| row.get(0))
            .map_err(|e| StoreError::sqlite(&self.path, "checkpoint", e))?;
        if busy != 0 {
            tracing::warn!(path = %self.path.display(), "queue checkpoint incomplete: database busy");
        }
        let path = self.path;
        self.conn
            .close()
            .map_err(|(_, e)| StoreError::sqlite(&path, "close", e))
    }
}

/// Answers a write; the caller has gone away if the send fails, which changes nothing.
fn answer(write: Write, outcome: Result<Done, StoreError>) {
    match write {
        Write::Enqueue { reply, .. } => {
            let _ = reply.send(outcome.map(|done| done.ids));
        }
        Write::Ack { reply, .. } => {
            let _ = reply.send(outcome.map(|_| ()));
        }
    }
}

/// A count or size from SQL, which has only signed integers; never negative in this schema.
fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! Batches handed to the worker directly, so their make-up is exact.

    use std::time::Duration;

    use super::*;
    use crate::config::Durability;
    use crate::store::schema::Checked;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn worker(dir: &tempfile::TempDir) -> Result<(Worker, watch::Receiver<i64>), StoreError> {
        let path = dir.path().join("queue.db");
        let Checked::Ready(conn) = schema::open(&path, Durability::Normal)? else {
            return Err(StoreError::Closed);
        };
        Worker::new(conn, path, Arc::default())
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

        assert_eq!(rx1.try_recv()??, [1, 2]);
        match rx_bad.try_recv()? {
            Err(StoreError::Sqlite { op: "enqueue", .. }) => {}
            other => return Err(format!("expected a refused enqueue, got {other:?}").into()),
        }
        // The refused request's first record was rolled back with it.
        let id = one(&mut rx2)?;
        assert_eq!(ids(&worker)?, [1, 2, id]);
        assert_eq!(worker.counters.commits.load(Ordering::Relaxed), 1);
        assert_eq!((worker.depth, worker.last_id), (3, id));
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
        assert_eq!((worker.depth, worker.last_id), (1, kept));
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
        assert_eq!(rx.try_recv()??, [1]);
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
}
