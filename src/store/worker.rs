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
//!
//! The bounds (see `bounds`) are applied inside the same transaction: expired rows are dropped
//! before the writes, a request that does not fit under `reject_new` is refused alone, and under
//! `drop_oldest` the oldest rows are dropped after the writes until the bounds hold. The
//! counters of the batch (see `counters`) are written in it too.
//!
//! With `durability: full`, a commit that adds messages is fsynced; one that only deletes
//! (acknowledged, dropped or expired rows) is not (`synchronous = NORMAL` for it): a crash of
//! the process keeps it anyway, and a power loss can only undo deletes, so delivered messages
//! may be sent again, never lost. The next fsynced commit makes the earlier ones durable too
//! (the WAL is written in order).
//!
//! Other connections (`ferrule queue purge`) may change the file: `PRAGMA data_version` is
//! checked before each batch and the totals are recounted when it moved. Pages freed by deletes
//! are given back to the file system a chunk at a time (`incremental_vacuum`) once more than a
//! third of the file is free.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot, watch};

use super::bounds::{self, Level, Limits, Refusal};
use super::counters::{Counter, DropLog, SharedCounters, Totals};
use super::record::{Clock, Record, Row, Stats};
use super::schema;
use super::StoreError;

/// A batch stops growing once it holds this many records (a single larger request is still
/// carried out whole).
pub(crate) const MAX_BATCH_RECORDS: usize = 1024;

/// Failed batches in a row between two repeated error logs.
const LOG_EVERY_FAILURES: u64 = 100;

/// `PRAGMA synchronous` value of FULL.
const SYNCHRONOUS_FULL: i64 = 2;

/// Free pages below which the file is never shrunk (256 KiB of 4 KiB pages).
const VACUUM_MIN_FREE_PAGES: i64 = 64;
/// Most pages given back per batch, so one batch never stalls on a long vacuum.
const VACUUM_STEP_PAGES: i64 = 2048;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What a handle asks of the worker.
pub(crate) enum Request {
    Enqueue {
        records: Vec<Record>,
        reply: Reply<Vec<i64>>,
    },
    Ack {
        ids: Vec<i64>,
        /// What the deleted rows count as: delivered, or refused upstream.
        counter: Counter,
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
        counter: Counter,
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

/// A failed statement: the operation and SQLite's error.
type Failure = (&'static str, rusqlite::Error);

/// How one write of a batch failed.
enum WriteError {
    /// The write was refused (by SQLite, rolled back alone, or by the bounds); the batch goes on.
    Refused(StoreError),
    /// The transaction is no longer sound (rolled back by SQLite, or a savepoint failed):
    /// the whole batch fails.
    Abort(Failure),
}

/// The state of the open transaction of a batch: what the queue will hold once it commits.
struct Txn {
    level: Level,
    tally: Totals,
    last_id: i64,
    expired: bool,
}

pub(crate) struct Worker {
    conn: Connection,
    path: PathBuf,
    /// Totals of the committed rows, kept in step with every commit so `stats` needs no scan.
    level: Level,
    last_id: i64,
    committed: watch::Sender<i64>,
    counters: Arc<SharedCounters>,
    limits: Limits,
    clock: Clock,
    /// `PRAGMA data_version` as last seen: another connection committed when it moves.
    data_version: i64,
    /// The time (ms) at which the oldest row turns older than `max_age`; `i64::MAX` when no row
    /// can expire.
    next_expiry_ms: i64,
    failures_in_a_row: u64,
    vacuum_failures: u64,
    drop_log: DropLog,
    /// The file was opened with `synchronous = FULL` (`durability: full`).
    durable: bool,
    /// Whether the connection is at `synchronous = FULL` now.
    sync_full: bool,
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
        limits: Limits,
        clock: Clock,
    ) -> Result<(Worker, watch::Receiver<i64>), StoreError> {
        let (level, last_id) =
            recount(&conn).map_err(|e| StoreError::sqlite(&path, "count rows", e))?;
        let data_version =
            data_version(&conn).map_err(|e| StoreError::sqlite(&path, "read data_version", e))?;
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(|e| StoreError::sqlite(&path, "read synchronous", e))?;
        let durable = synchronous >= SYNCHRONOUS_FULL;
        let (committed, rx) = watch::channel(last_id);
        let worker = Worker {
            conn,
            path,
            level,
            last_id,
            committed,
            counters,
            limits,
            clock,
            data_version,
            // Check at the first batch.
            next_expiry_ms: i64::MIN,
            failures_in_a_row: 0,
            vacuum_failures: 0,
            drop_log: DropLog::default(),
            durable,
            sync_full: durable,
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
                Request::Ack {
                    ids,
                    counter,
                    reply,
                } => writes.push(Write::Ack {
                    ids,
                    counter,
                    reply,
                }),
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
        self.sync_external();
        let now = self.clock.now_ms();
        let expire = self.limits.max_age.is_some() && now >= self.next_expiry_ms;
        if !writes.is_empty() || expire {
            self.commit_batch(writes, now, expire);
        }
        for read in reads {
            self.read(read);
        }
        self.drop_log.flush(&self.path, Instant::now());
    }

    /// Recounts the totals when another connection changed the file.
    fn sync_external(&mut self) {
        let version = match data_version(&self.conn) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the queue's data_version");
                return;
            }
        };
        if version == self.data_version {
            return;
        }
        match recount(&self.conn) {
            Ok((level, last_id)) => {
                tracing::info!(
                    path = %self.path.display(),
                    depth = level.depth,
                    was = self.level.depth,
                    "queue changed by another process (ferrule queue purge?); totals recounted"
                );
                self.data_version = version;
                self.level = level;
                self.last_id = self.last_id.max(last_id);
                self.next_expiry_ms = i64::MIN;
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot recount the queue");
            }
        }
    }

    /// All writes of a batch in one transaction, with the bounds; answers each once the outcome
    /// is known.
    fn commit_batch(&mut self, writes: Vec<Write>, now: i64, expire: bool) {
        let mut txn = Txn {
            level: self.level,
            tally: Totals::default(),
            last_id: self.last_id,
            expired: false,
        };
        let mut outcomes = Vec::with_capacity(writes.len());
        let adds = writes.iter().any(|w| matches!(w, Write::Enqueue { .. }));
        let mut failure = self.set_sync(adds).err().map(|e| ("set synchronous", e));
        if failure.is_none() {
            failure = self.exec(schema::BEGIN).err().map(|e| ("begin", e));
        }
        if failure.is_none() && expire {
            failure = self.drop_prefix(&mut txn, self.limits.cutoff_ms(now)).err();
            txn.expired = true;
        }
        if failure.is_none() {
            for write in &writes {
                match self.apply_in_savepoint(write, now, &mut txn) {
                    Ok(ids) => outcomes.push(Ok(ids)),
                    Err(WriteError::Refused(e)) => outcomes.push(Err(e)),
                    Err(WriteError::Abort(f)) => {
                        failure = Some(f);
                        break;
                    }
                }
            }
        }
        if failure.is_none() && self.limits.over(txn.level) {
            failure = self.drop_prefix(&mut txn, None).err();
        }
        if failure.is_none() && !txn.tally.is_zero() {
            failure = txn
                .tally
                .persist(&self.conn)
                .err()
                .map(|e| ("update counters", e));
        }
        if failure.is_none() {
            failure = self.commit().err().map(|e| ("commit", e));
        }
        match failure {
            None => self.committed_batch(writes, outcomes, txn, now),
            Some((op, e)) => self.failed_batch(writes, op, e),
        }
    }

    /// `synchronous = FULL` for a commit that adds messages, `NORMAL` for one that only
    /// deletes (with `durability: full`; `normal` stays `NORMAL`).
    fn set_sync(&mut self, adds: bool) -> rusqlite::Result<()> {
        let full = self.durable && adds;
        if self.sync_full != full {
            let level = if full { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", level)?;
            self.sync_full = full;
        }
        Ok(())
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
    fn committed_batch(
        &mut self,
        writes: Vec<Write>,
        outcomes: Vec<Result<Vec<i64>, StoreError>>,
        txn: Txn,
        now: i64,
    ) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if self.failures_in_a_row > 0 {
            tracing::info!(
                path = %self.path.display(),
                failed = self.failures_in_a_row,
                "queue commits succeed again"
            );
            self.failures_in_a_row = 0;
        }
        let removed = txn.level.depth < self.level.depth + txn.tally.get(Counter::Enqueued);
        self.level = txn.level;
        self.counters.add(&txn.tally);
        self.drop_log.note(&txn.tally, &self.path);
        if txn.last_id != self.last_id {
            self.last_id = txn.last_id;
            self.committed.send_replace(self.last_id);
        }
        if let Some(max_age) = self.limits.max_age {
            if txn.expired || self.next_expiry_ms == i64::MAX {
                self.next_expiry_ms = match self.oldest_ms() {
                    Ok(Some(oldest)) => oldest.saturating_add(duration_ms(max_age)),
                    Ok(None) => i64::MAX,
                    // Check again at the next batch.
                    Err(_) => now,
                };
            }
        }
        for (write, outcome) in writes.into_iter().zip(outcomes) {
            answer(write, outcome);
        }
        if removed {
            self.maybe_vacuum();
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
        if self.failures_in_a_row == 1 || self.failures_in_a_row.is_multiple_of(LOG_EVERY_FAILURES)
        {
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

    /// One write inside a savepoint of the open transaction; on success, its effect is added to
    /// `txn`.
    fn apply_in_savepoint(
        &mut self,
        write: &Write,
        now: i64,
        txn: &mut Txn,
    ) -> Result<Vec<i64>, WriteError> {
        if let Write::Enqueue { records, .. } = write {
            let sizes: Vec<u64> = records.iter().map(size).collect();
            if let Err(refusal) = self.limits.admit(txn.level, &sizes) {
                txn.tally.add(refusal.counter(), records.len() as u64);
                return Err(WriteError::Refused(self.refused(refusal)));
            }
        }
        let abort = |op| move |e| WriteError::Abort((op, e));
        self.exec(schema::SAVEPOINT).map_err(abort("savepoint"))?;
        let result = match write {
            Write::Enqueue { records, .. } => self
                .insert(records, now)
                .map(|(ids, bytes)| {
                    txn.level.depth += ids.len() as u64;
                    txn.level.bytes += bytes;
                    txn.tally.add(Counter::Enqueued, ids.len() as u64);
                    if let Some(&last) = ids.last() {
                        txn.last_id = txn.last_id.max(last);
                    }
                    ids
                })
                .map_err(|e| ("enqueue", e)),
            Write::Ack { ids, counter, .. } => self
                .delete(ids)
                .map(|(rows, bytes)| {
                    txn.level.depth = txn.level.depth.saturating_sub(rows);
                    txn.level.bytes = txn.level.bytes.saturating_sub(bytes);
                    txn.tally.add(*counter, rows);
                    Vec::new()
                })
                .map_err(|e| ("ack", e)),
        };
        match result {
            Ok(ids) => {
                self.exec(schema::RELEASE)
                    .map_err(abort("release savepoint"))?;
                Ok(ids)
            }
            // Disk full, I/O errors and the like make SQLite roll back the whole transaction.
            Err(failure) if self.conn.is_autocommit() => Err(WriteError::Abort(failure)),
            Err((op, e)) => {
                // The effect was not added to `txn`: the closures above ran only on success.
                self.exec(schema::ROLLBACK_TO)
                    .and_then(|()| self.exec(schema::RELEASE))
                    .map_err(abort("roll back to savepoint"))?;
                Err(WriteError::Refused(StoreError::sqlite(&self.path, op, e)))
            }
        }
    }

    fn refused(&self, refusal: Refusal) -> StoreError {
        match refusal {
            Refusal::TooLarge { size, max_bytes } => StoreError::TooLarge {
                path: self.path.clone(),
                size,
                max_bytes,
            },
            Refusal::Full { bound, limit } => StoreError::Full {
                path: self.path.clone(),
                bound,
                limit,
            },
        }
    }

    /// Drops the prefix of the queue the bounds ask for (`cutoff_ms`: also the expired rows).
    fn drop_prefix(&mut self, txn: &mut Txn, cutoff_ms: Option<i64>) -> Result<(), Failure> {
        let fail = |e| ("apply the queue bounds", e);
        let drops = {
            let mut stmt = self
                .conn
                .prepare_cached(schema::OLDEST_ROWS)
                .map_err(fail)?;
            let mut rows = stmt.query([]).map_err(fail)?;
            let mut error = None;
            let oldest = std::iter::from_fn(|| match rows.next() {
                Ok(Some(row)) => match (row.get(0), row.get(1), row.get(2)) {
                    (Ok(id), Ok(size), Ok(ms)) => Some((id, count(size), ms)),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        error = Some(e);
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    error = Some(e);
                    None
                }
            });
            let drops = bounds::plan(&self.limits, txn.level, cutoff_ms, oldest);
            if let Some(e) = error {
                return Err(fail(e));
            }
            drops
        };
        if let Some(up_to) = drops.up_to {
            self.conn
                .prepare_cached(schema::DELETE_UPTO)
                .and_then(|mut stmt| stmt.execute([up_to]))
                .map_err(fail)?;
            txn.level.depth = txn.level.depth.saturating_sub(drops.rows);
            txn.level.bytes = txn.level.bytes.saturating_sub(drops.bytes);
            txn.tally.merge(&drops.tally);
        }
        Ok(())
    }

    fn insert(&self, records: &[Record], now: i64) -> rusqlite::Result<(Vec<i64>, u64)> {
        let mut stmt = self.conn.prepare_cached(schema::INSERT)?;
        let mut ids = Vec::with_capacity(records.len());
        let mut bytes = 0u64;
        for r in records {
            ids.push(stmt.insert(params![now, r.topic, &r.payload[..], r.qos, r.retain])?);
            bytes += size(r);
        }
        Ok((ids, bytes))
    }

    /// Deletes the rows with these ids (any order, duplicates and unknown ids allowed), one
    /// statement per run of consecutive ids; returns the rows and bytes deleted.
    fn delete(&self, ids: &[i64]) -> rusqlite::Result<(u64, u64)> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut stmt = self.conn.prepare_cached(schema::DELETE_RANGE)?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        for (first, last) in runs(&sorted) {
            let mut deleted = stmt.query([first, last])?;
            while let Some(row) = deleted.next()? {
                rows += 1;
                bytes += count(row.get(0)?);
            }
        }
        Ok((rows, bytes))
    }

    /// Gives free pages back to the file system once more than a third of the file is free.
    fn maybe_vacuum(&mut self) {
        let pages = |pragma| {
            self.conn
                .pragma_query_value(None, pragma, |row| row.get::<_, i64>(0))
        };
        let (free, total) = match (pages("freelist_count"), pages("page_count")) {
            (Ok(free), Ok(total)) => (free, total),
            _ => return,
        };
        if free < VACUUM_MIN_FREE_PAGES || free * 3 <= total {
            return;
        }
        // Down to an eighth free, so the next vacuum waits for a good chunk of new free pages.
        let step = (free - total / 8).clamp(1, VACUUM_STEP_PAGES);
        match schema::incremental_vacuum(&self.conn, Some(step)) {
            Ok(()) => self.vacuum_failures = 0,
            Err(e) => {
                self.vacuum_failures += 1;
                if self.vacuum_failures == 1
                    || self.vacuum_failures.is_multiple_of(LOG_EVERY_FAILURES)
                {
                    tracing::warn!(path = %self.path.display(), error = %e, failed = self.vacuum_failures, "cannot shrink the queue file; it keeps its free pages for now");
                }
            }
        }
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
                    .oldest_ms()
                    .map(|oldest_ms| Stats {
                        depth: self.level.depth,
                        bytes: self.level.bytes,
                        oldest_ms,
                        last_id: self.last_id,
                    })
                    .map_err(|e| StoreError::sqlite(&self.path, "stats", e));
                let _ = reply.send(stats);
            }
        }
    }

    pub(crate) fn fetch(&self, after_id: i64, limit: usize) -> rusqlite::Result<Vec<Row>> {
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

    fn oldest_ms(&self) -> rusqlite::Result<Option<i64>> {
        let mut stmt = self.conn.prepare_cached(schema::OLDEST)?;
        stmt.query_row([], |row| row.get::<_, i64>(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
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
fn answer(write: Write, outcome: Result<Vec<i64>, StoreError>) {
    match write {
        Write::Enqueue { reply, .. } => {
            let _ = reply.send(outcome);
        }
        Write::Ack { reply, .. } => {
            let _ = reply.send(outcome.map(|_| ()));
        }
    }
}

/// The size of a record as the bounds count it: topic and payload bytes.
fn size(r: &Record) -> u64 {
    (r.topic.len() + r.payload.len()) as u64
}

/// Depth, bytes and the last id ever handed out, read from the file.
fn recount(conn: &Connection) -> rusqlite::Result<(Level, i64)> {
    let level = conn.query_row(schema::TOTALS, [], |row| {
        Ok(Level {
            depth: count(row.get(0)?),
            bytes: count(row.get(1)?),
        })
    })?;
    let last_id = conn.query_row(schema::LAST_ID, [], |row| row.get::<_, i64>(0))?;
    Ok((level, last_id))
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "data_version", |row| row.get(0))
}

/// `[first, last]` ranges of consecutive ids in sorted, deduplicated `ids`.
fn runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A count or size from SQL, which has only signed integers; never negative in this schema.
fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests;
