//! [`Store`]: the handle the engine writes through (tickets, group commit, close), and
//! [`PersistError`]; see the module docs of `persist` for the invariants.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::Notify;

use crate::broker::message::{Delivery, Publication};

use super::ops::{Batch, Op, Shared};
use super::rows::{Loaded, SessionRow, StoredWill, SubRow};
use super::{load, schema, writer};

/// Errors of the persistence file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("broker persistence file {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the directory of {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move the unreadable persistence file {path} aside: {reason}")]
    MoveAside { path: PathBuf, reason: String },
    #[error("broker persistence file {path} was written by a newer ferrule (schema {found})")]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("broker persistence file {path}: the writer thread cannot start: {source}")]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("broker persistence file {path}: the writer has stopped")]
    Stopped { path: PathBuf },
}

/// The handle on the persistence file. Cloning gives another handle to the same writer.
#[derive(Debug, Clone)]
pub(in crate::broker) struct Store {
    shared: Arc<Shared>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the file, reads what it holds, and starts the writer thread.
    pub fn open(path: &Path) -> Result<(Store, Loaded), PersistError> {
        let (conn, moved_aside) = schema::open(path)?;
        let sqlite = |source| PersistError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let (mut loaded, refs, next_msg_id) = load::load(&conn).map_err(sqlite)?;
        loaded.moved_aside = moved_aside;
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch {
                next_msg_id,
                ..Batch::default()
            }),
            ready: Condvar::new(),
            committed: AtomicU64::new(0),
            commits: Notify::new(),
        });
        let writer = writer::Writer::new(conn, path.to_owned(), refs);
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("broker-persist".into())
            .spawn(move || writer.run(&thread_shared))
            .map_err(|source| PersistError::Thread {
                path: path.to_owned(),
                source,
            })?;
        Ok((
            Store {
                shared,
                path: path.to_owned(),
            },
            loaded,
        ))
    }

    fn send(&self, op: Op) -> u64 {
        let mut batch = self.shared.lock();
        if batch.stopped {
            // The writer has logged why it stopped; the broker keeps serving from memory.
            return 0;
        }
        batch.last += 1;
        let ticket = batch.last;
        let wake = batch.ops.is_empty();
        batch.ops.push(op);
        drop(batch);
        if wake {
            self.shared.ready.notify_one();
        }
        ticket
    }

    /// The ticket of the last committed operation.
    pub fn committed(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// Signalled (to every waiter) after each commit: create the future, then check
    /// [`Store::committed`], then await it.
    pub fn commits(&self) -> &Notify {
        &self.shared.commits
    }

    /// A retained message was set (`Some`) or cleared (`None`). `lazy`: the agent's own.
    pub fn retain(&self, topic: Arc<str>, msg: Option<Arc<Publication>>, lazy: bool) -> u64 {
        self.send(Op::Retain { topic, msg, lazy })
    }

    /// A persistent session connected (or was created): insert or replace it.
    pub fn session(&self, row: SessionRow) -> u64 {
        self.send(Op::Session(row))
    }

    /// A persistent session's client went away.
    pub fn disconnected(&self, client_id: &Arc<str>, at_ms: i64, expiry: u32) -> u64 {
        self.send(Op::Disconnected {
            client_id: client_id.clone(),
            at_ms,
            expiry,
        })
    }

    /// A session ended: it, its subscriptions, its queue and its will go.
    pub fn delete_session(&self, client_id: &Arc<str>) -> u64 {
        self.send(Op::DeleteSession(client_id.clone()))
    }

    pub fn subscribe(&self, client_id: &Arc<str>, row: SubRow) -> u64 {
        self.send(Op::Subscribe {
            client_id: client_id.clone(),
            row,
        })
    }

    pub fn unsubscribe(&self, client_id: &Arc<str>, filter: &str) -> u64 {
        self.send(Op::Unsubscribe {
            client_id: client_id.clone(),
            filter: filter.into(),
        })
    }

    /// A QoS 1/2 delivery queued for a persistent session (its `seq` set by the session).
    pub fn enqueue(&self, client_id: &Arc<str>, delivery: &Delivery) -> u64 {
        let mut batch = self.shared.lock();
        let msg_id = *delivery.msg.stored.get_or_init(|| {
            batch.next_msg_id += 1;
            batch.next_msg_id
        });
        drop(batch);
        self.send(Op::Enqueue {
            client_id: client_id.clone(),
            delivery: delivery.clone(),
            msg_id,
        })
    }

    /// The queued message `seq` was sent with `packet_id` (`released`: its PUBREL was).
    pub fn sent(&self, client_id: &str, seq: u64, packet_id: u16, released: bool) -> u64 {
        self.send(Op::Sent {
            client_id: client_id.into(),
            seq,
            packet_id,
            released,
        })
    }

    /// The queued message `seq` was acknowledged (or dropped).
    pub fn dequeue(&self, client_id: &str, seq: u64) -> u64 {
        self.send(Op::Dequeue {
            client_id: client_id.into(),
            seq,
        })
    }

    /// The will of a connected client (`None`: it has none any more).
    pub fn will(&self, client_id: &Arc<str>, will: Option<StoredWill>) -> u64 {
        self.send(Op::Will {
            client_id: client_id.clone(),
            will,
        })
    }

    /// An incoming QoS 2 message `packet_id` waits for its PUBREL (`pending`) or is done.
    pub fn qos2(&self, client_id: &Arc<str>, packet_id: u16, pending: bool) -> u64 {
        self.send(Op::Qos2 {
            client_id: client_id.clone(),
            packet_id,
            pending,
        })
    }

    /// Waits until every operation handed over so far is committed.
    #[cfg(test)]
    pub async fn flushed(&self) {
        let ticket = self.shared.lock().last;
        loop {
            let next = self.commits().notified();
            if self.committed() >= ticket || self.shared.lock().stopped {
                return;
            }
            next.await;
        }
    }

    /// Commits everything handed over (the agent's lazy retained messages too) and stops the
    /// writer. Blocking: call it off the async workers.
    pub fn close(&self) -> Result<(), PersistError> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut batch = self.shared.lock();
            if batch.stopped {
                return Err(PersistError::Stopped {
                    path: self.path.clone(),
                });
            }
            batch.closing = Some(tx);
        }
        self.shared.ready.notify_one();
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(PersistError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::InvalidParameterName(reason),
            }),
            Err(_) => Err(PersistError::Stopped {
                path: self.path.clone(),
            }),
        }
    }
}
