//! The async handle of the queue: [`Queue`], cheap to clone, every clone talking to one worker
//! thread over a bounded channel (a full channel makes callers wait: back-pressure).
//!
//! A request that was sent is carried out even if its future is dropped: dropping an `enqueue`
//! does not un-queue the record (at-least-once, never at-most-once).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use super::bounds::Limits;
use super::counters::{Counter, SharedCounters};
pub(crate) use super::record::Clock;
pub use super::record::{Counters, Record, Row, Stats};
use super::schema::{self, Checked};
use super::worker::{Request, Worker};
use super::{recover, StoreError};
use crate::config::{Durability, QueueConfig};

/// Requests that may wait for the worker before senders are made to wait.
const CHANNEL_CAPACITY: usize = 1024;

/// Handle to the durable queue. Clones share one worker thread and one SQLite connection.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    requests: mpsc::Sender<Request>,
    committed: watch::Receiver<i64>,
    counters: Arc<SharedCounters>,
    thread: Mutex<Option<JoinHandle<()>>>,
    recovered_from: Option<PathBuf>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.inner.path)
            .field("recovered_from", &self.inner.recovered_from)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens the queue at `path`, creating its parent directories and the database as needed,
    /// and starts the worker thread. Rows left by an earlier run (or crash) are kept, in order.
    ///
    /// A file that is not a database or fails `PRAGMA quick_check` is moved aside (see
    /// [`Queue::recovered_from`]), logged, and replaced by a new empty queue. Any other failure
    /// (permissions, locks, a newer schema) is an error and leaves the file untouched.
    ///
    /// Blocks: the integrity check reads the whole file. From async code, call it inside
    /// `spawn_blocking` or before serving traffic.
    pub fn open(path: &Path, durability: Durability) -> Result<Queue, StoreError> {
        Self::open_inner(path, durability, Limits::default(), Clock::System)
    }

    /// [`Queue::open`] for `uplink.queue`: its path, durability and bounds.
    pub fn open_config(config: &QueueConfig) -> Result<Queue, StoreError> {
        Self::open_with(&config.path, config.durability, Limits::from(config))
    }

    /// [`Queue::open`] with bounds.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        limits: Limits,
    ) -> Result<Queue, StoreError> {
        Self::open_inner(path, durability, limits, Clock::System)
    }

    /// [`Queue::open_with`] on a test's clock.
    #[cfg(test)]
    pub(crate) fn open_with_clock(
        path: &Path,
        durability: Durability,
        limits: Limits,
        clock: Clock,
    ) -> Result<Queue, StoreError> {
        Self::open_inner(path, durability, limits, clock)
    }

    fn open_inner(
        path: &Path,
        durability: Durability,
        limits: Limits,
        clock: Clock,
    ) -> Result<Queue, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_path_buf(),
                op: "create directory",
                source,
            })?;
        }
        let (conn, recovered_from) = match schema::open(path, durability)? {
            Checked::Ready(conn) => (conn, None),
            Checked::Corrupt(reason) => {
                let moved = recover::move_aside(path, chrono::Utc::now())?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %moved.display(),
                    %reason,
                    "queue database is corrupt: moved it aside and started an empty queue"
                );
                match schema::open(path, durability)? {
                    Checked::Ready(conn) => (conn, Some(moved)),
                    Checked::Corrupt(reason) => {
                        return Err(StoreError::Corrupt {
                            path: path.to_path_buf(),
                            reason,
                        })
                    }
                }
            }
        };
        let counters = Arc::new(SharedCounters::default());
        let (worker, committed) = Worker::new(
            conn,
            path.to_path_buf(),
            Arc::clone(&counters),
            limits,
            clock,
        )?;
        let (requests, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("ferrule-store".into())
            .spawn(move || worker.run(rx))
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                op: "start the worker thread for",
                source,
            })?;
        Ok(Queue {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                requests,
                committed,
                counters,
                thread: Mutex::new(Some(thread)),
                recovered_from,
            }),
        })
    }

    /// The queue file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Where a corrupt file found by [`Queue::open`] was moved, if one was.
    pub fn recovered_from(&self) -> Option<PathBuf> {
        self.inner.recovered_from.clone()
    }

    /// Queues one record; resolves with its id once the row is committed. Refused with
    /// [`StoreError::Full`] or [`StoreError::TooLarge`] when the bounds say so.
    pub async fn enqueue(&self, record: Record) -> Result<i64, StoreError> {
        let mut ids = self.enqueue_many(vec![record]).await?;
        Ok(ids.pop().expect("the worker returns one id per record"))
    }

    /// Queues records in one transaction (all or none); resolves with their ids, in order, once
    /// committed. Under `on_full: reject_new` a request that does not fit is refused whole
    /// ([`StoreError::Full`]); under `drop_oldest` it is taken and the oldest rows make room
    /// (which may be some of its own records when it alone exceeds a bound).
    pub async fn enqueue_many(&self, records: Vec<Record>) -> Result<Vec<i64>, StoreError> {
        self.call(|reply| Request::Enqueue { records, reply }).await
    }

    /// Up to `limit` rows with ids greater than `after_id`, oldest first.
    pub async fn fetch(&self, after_id: i64, limit: usize) -> Result<Vec<Row>, StoreError> {
        self.call(|reply| Request::Fetch {
            after_id,
            limit,
            reply,
        })
        .await
    }

    /// Deletes rows (call after the upstream PUBACK); unknown ids are ignored.
    pub async fn ack(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.delete(ids, Counter::Delivered).await
    }

    /// Deletes rows the upstream broker refused for good (MQTT 5 reason codes such as "not
    /// authorized"), counted as `refused_upstream`; unknown ids are ignored.
    pub async fn discard(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.delete(ids, Counter::RefusedUpstream).await
    }

    async fn delete(&self, ids: Vec<i64>, counter: Counter) -> Result<(), StoreError> {
        self.call(|reply| Request::Ack {
            ids,
            counter,
            reply,
        })
        .await
    }

    /// Depth, size, age and last id of the queue.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.call(|reply| Request::Stats { reply }).await
    }

    /// The last committed id; changes after every commit that added rows. Its sender is dropped
    /// when the worker stops, which ends `changed()` with an error.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.inner.committed.clone()
    }

    /// Commits, failures, and messages in, out, dropped and refused since open.
    pub fn counters(&self) -> Counters {
        Counters {
            commits: self.inner.counters.commits.load(Ordering::Relaxed),
            failed_commits: self.inner.counters.failed_commits.load(Ordering::Relaxed),
            messages: self.inner.counters.totals(),
        }
    }

    /// Carries out every request already sent, checkpoints the WAL into the database file, closes
    /// it and joins the worker thread. Every later call on any clone gets [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        let result = self.call(|reply| Request::Close { reply }).await;
        let thread = match self.inner.thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_panic)) => {
                    tracing::error!(path = %self.inner.path.display(), "queue worker thread panicked");
                }
                Err(e) => {
                    tracing::error!(path = %self.inner.path.display(), error = %e, "cannot join the queue worker thread");
                }
            }
        }
        result
    }

    /// Sends a request and waits for its answer; a stopped worker means [`StoreError::Closed`].
    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(request(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl From<&QueueConfig> for Limits {
    fn from(c: &QueueConfig) -> Self {
        Limits {
            max_bytes: Some(c.max_bytes),
            max_messages: c.max_messages,
            max_age: c.max_age,
            on_full: c.on_full,
        }
    }
}
