//! The way other modules reach a device: [`DeviceHandle`], one per configured device, whose
//! requests go to the task of the line (connection or bus) that serves the device.
//!
//! Invariant: a write to a device that is offline (its line is down, or its breaker is open)
//! fails at once with [`WriteError::Offline`]; a command is never held to be executed minutes
//! later. The same holds for a raw read ([`DeviceHandle::read_raw`], the status page's "raw
//! registers"), which also never waits for room in the line's queue: a full queue is
//! [`RawError::Busy`] at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use super::codec::Value;
use super::link::{Exception, ReadData, WriteData};
use crate::config::RegisterKind;
use crate::payload::ResultCode;

/// Why a write did not happen (or its result is unknown).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("device is offline: {0}")]
    Offline(String),
    #[error("device refused the write: {0}")]
    Refused(Exception),
    #[error("write sent but the read-back was refused: {0}")]
    ReadBackRefused(Exception),
    #[error("link failed during the write: {0}")]
    Link(String),
    #[error("read-back could not be decoded: {0}")]
    Decode(String),
    /// The write was acknowledged but the point reads back something else (a device that
    /// ignores or clamps the write).
    #[error("the device acknowledged the write but reads back {0}")]
    Mismatch(Value),
    #[error("the device task has stopped")]
    Stopped,
}

impl WriteError {
    /// Machine-readable code for command results.
    pub fn code(&self) -> ResultCode {
        match self {
            Self::Offline(_) => ResultCode::DeviceOffline,
            Self::Refused(_) => ResultCode::DeviceException,
            Self::ReadBackRefused(_) => ResultCode::ReadbackFailed,
            Self::Link(_) => ResultCode::LinkError,
            Self::Decode(_) => ResultCode::ReadbackFailed,
            Self::Mismatch(_) => ResultCode::ReadbackMismatch,
            Self::Stopped => ResultCode::ShuttingDown,
        }
    }
}

/// A request to a line task on behalf of one of its devices.
#[derive(Debug)]
pub(super) enum Request {
    Write {
        /// Index of the device among the line's slaves.
        slave: usize,
        /// Index of the point in the device's point map.
        point: usize,
        data: WriteData,
        reply: oneshot::Sender<WriteReport>,
    },
    /// One read of a point's registers (or bits), as they are on the device.
    ReadRaw {
        slave: usize,
        point: usize,
        reply: oneshot::Sender<Result<RawRead, RawError>>,
    },
}

/// A point's registers (or bits) as read from the device, undecoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRead {
    pub unit: u8,
    pub kind: RegisterKind,
    /// The first address read (0-based, as on the wire).
    pub address: u16,
    pub data: ReadData,
    /// When the answer came.
    pub at: SystemTime,
}

/// Why a raw read has no registers to show.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RawError {
    #[error("device is offline: {0}")]
    Offline(String),
    #[error("the line's request queue is full; try again")]
    Busy,
    #[error("no answer: {0}")]
    NoAnswer(String),
    #[error("device refused the read: {0}")]
    Refused(Exception),
    #[error("link failed during the read: {0}")]
    Link(String),
    #[error("no point #{0} on the device")]
    NoPoint(usize),
    #[error("the device task has stopped")]
    Stopped,
}

/// What became of a write, with the point's value before it, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// The last value read from the point before the write (by the poll, or by the read of a
    /// read-modify-write); `None` when it has never been read successfully.
    pub old: Option<Value>,
    /// The value read back after the write, or why there is none.
    pub result: Result<Value, WriteError>,
}

impl WriteReport {
    pub(super) fn failed(old: Option<Value>, e: WriteError) -> Self {
        Self {
            old,
            result: Err(e),
        }
    }
}

/// The way to reach one device through the task of its line.
#[derive(Clone, Debug)]
pub struct DeviceHandle {
    pub(super) tx: mpsc::Sender<Request>,
    pub(super) slave: usize,
    pub(super) online: Arc<AtomicBool>,
}

impl DeviceHandle {
    /// Writes `data` to point `point` (index in the device's point list), reads it back and
    /// returns the value read back (already published on the state topic).
    pub async fn write(&self, point: usize, data: WriteData) -> Result<Value, WriteError> {
        self.write_report(point, data).await.result
    }

    /// [`DeviceHandle::write`], also telling the value the point had before.
    pub async fn write_report(&self, point: usize, data: WriteData) -> WriteReport {
        if !self.online.load(Ordering::Acquire) {
            return WriteReport::failed(None, WriteError::Offline("not connected".into()));
        }
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Request::Write {
                slave: self.slave,
                point,
                data,
                reply,
            })
            .await
            .is_err()
        {
            return WriteReport::failed(None, WriteError::Stopped);
        }
        rx.await
            .unwrap_or_else(|_| WriteReport::failed(None, WriteError::Stopped))
    }

    /// Reads point `point`'s registers (or bits) once, through the line's task like any
    /// request; the caller bounds the wait (a line busy with a slow device answers late).
    pub async fn read_raw(&self, point: usize) -> Result<RawRead, RawError> {
        if !self.online.load(Ordering::Acquire) {
            return Err(RawError::Offline("not connected".into()));
        }
        let (reply, rx) = oneshot::channel();
        let request = Request::ReadRaw {
            slave: self.slave,
            point,
            reply,
        };
        match self.tx.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(RawError::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(RawError::Stopped),
        }
        rx.await.unwrap_or(Err(RawError::Stopped))
    }

    /// Whether the device is reachable right now (its line is up and it answers).
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }
}

/// A write as a test's stand-in for the line task sees it.
#[cfg(test)]
#[derive(Debug)]
pub struct FakeWrite {
    pub point: usize,
    pub data: WriteData,
    pub reply: oneshot::Sender<WriteReport>,
}

#[cfg(test)]
impl DeviceHandle {
    /// A handle to a device with no line task: its writes arrive on the returned receiver,
    /// for the test to answer. `online` is what the handle reports.
    pub fn fake(online: bool) -> (Self, mpsc::UnboundedReceiver<FakeWrite>) {
        let (tx, mut rx) = mpsc::channel(8);
        let (out, writes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Request::Write {
                point, data, reply, ..
            }) = rx.recv().await
            {
                let _ = out.send(FakeWrite { point, data, reply });
            }
        });
        let handle = Self {
            tx,
            slave: 0,
            online: Arc::new(AtomicBool::new(online)),
        };
        (handle, writes)
    }
}
