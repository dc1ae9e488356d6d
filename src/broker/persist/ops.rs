//! What the engine hands the persistence writer: [`Op`]s in a [`Batch`], and the state both
//! sides share ([`Shared`]: the batch, the writer's wake-up, the committed ticket).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::broker::message::{Delivery, Publication};

use super::rows::{SessionRow, StoredWill, SubRow};

/// Longest time a retained message published by the agent waits before it is written.
pub const AGENT_RETAIN_FLUSH: Duration = Duration::from_secs(30);

/// One change to the file.
#[derive(Debug)]
pub(super) enum Op {
    Retain {
        topic: Arc<str>,
        msg: Option<Arc<Publication>>,
        lazy: bool,
    },
    Session(SessionRow),
    Disconnected {
        client_id: Arc<str>,
        at_ms: i64,
        expiry: u32,
    },
    DeleteSession(Arc<str>),
    Subscribe {
        client_id: Arc<str>,
        row: SubRow,
    },
    Unsubscribe {
        client_id: Arc<str>,
        filter: Box<str>,
    },
    Enqueue {
        client_id: Arc<str>,
        delivery: Delivery,
        msg_id: u64,
    },
    Sent {
        client_id: Arc<str>,
        seq: u64,
        packet_id: u16,
        released: bool,
    },
    Dequeue {
        client_id: Arc<str>,
        seq: u64,
    },
    Will {
        client_id: Arc<str>,
        will: Option<StoredWill>,
    },
    Qos2 {
        client_id: Arc<str>,
        packet_id: u16,
        pending: bool,
    },
}

/// Operations handed over and not yet taken by the writer.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) ops: Vec<Op>,
    /// Ticket of the last operation handed over.
    pub(super) last: u64,
    /// Next id for a stored message.
    pub(super) next_msg_id: u64,
    pub(super) closing: Option<std::sync::mpsc::Sender<Result<(), String>>>,
    pub(super) stopped: bool,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) batch: Mutex<Batch>,
    pub(super) ready: Condvar,
    /// Ticket of the last committed operation, and its change signal (`notify_waiters`).
    pub(super) committed: AtomicU64,
    pub(super) commits: Notify,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
