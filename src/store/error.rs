//! Errors of the store. Each names the queue file and, for failed statements, the operation; the
//! underlying SQLite or I/O error is the [`source`](std::error::Error::source) (print the chain,
//! e.g. `{:#}` with anyhow, to see it).

use std::path::PathBuf;
use std::sync::Arc;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite could not open the file (nothing was moved or changed).
    #[error("cannot open queue database {}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A statement failed. `source` is shared because one failed commit is reported to every
    /// request of its batch.
    #[error("queue database {}: {op} failed", path.display())]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        source: Arc<rusqlite::Error>,
    },
    /// A file-system operation failed (`path` is the file or directory acted on).
    #[error("queue database: cannot {op} {}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// A corrupt queue file could not be moved aside; the old file is left where it was.
    #[error("cannot move corrupt queue database {} aside to {}", from.display(), to.display())]
    MoveAside {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    /// The file is still unusable after the corrupt one was moved aside.
    #[error("queue database {} is unusable after recovery: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The file is damaged (found by `ferrule queue`, which never moves it).
    #[error("queue database {} is corrupt: {reason}", path.display())]
    Damaged { path: PathBuf, reason: String },
    /// The file was written by a newer ferrule; it is left untouched.
    #[error(
        "queue database {} has schema version {found}; this build supports up to {supported}",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The file system refused WAL mode (e.g. a network file system).
    #[error("queue database {}: journal mode is {mode:?}, WAL is required", path.display())]
    NotWal { path: PathBuf, mode: String },
    /// `on_full: reject_new` and the queue is at a bound: the message was not queued.
    #[error("queue {} is full ({bound} {limit} reached; on_full: reject_new): message refused", path.display())]
    Full {
        path: PathBuf,
        bound: &'static str,
        limit: u64,
    },
    /// One message alone is larger than `max_bytes`: it could never be queued.
    #[error("message of {size} bytes refused: larger than the queue's max_bytes ({max_bytes}) of {}", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        max_bytes: u64,
    },
    /// The queue was closed (or its worker thread has stopped).
    #[error("the queue is closed")]
    Closed,
}

impl StoreError {
    /// Whether the queue refused the message because of its bounds (not a failure of the
    /// queue itself).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::TooLarge { .. })
    }

    pub(crate) fn sqlite(
        path: &std::path::Path,
        op: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        Self::Sqlite {
            path: path.to_path_buf(),
            op,
            source: Arc::new(source),
        }
    }
}
