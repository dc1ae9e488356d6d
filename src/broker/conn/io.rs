//! A connection's transport and buffers, and the one poll that waits for whatever comes next.
//!
//! Invariants:
//! - input is read through a buffer on the stack and only the bytes of an incomplete packet
//!   are kept between reads; output is written from one buffer that is freed once empty; an
//!   idle connection holds neither;
//! - output is bounded: the caller stops adding deliveries above [`OUT_HIGH`] bytes and is told
//!   ([`Event::Drained`]) when the buffer has been written out;
//! - writes never block reads: a client that does not read still has its PINGREQs and
//!   acknowledgements read and handled.

use std::future::Future;
use std::time::Duration;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::futures::Notified;
use tokio_util::sync::WaitForCancellationFuture;

/// Stop adding deliveries to the output above this many bytes.
pub const OUT_HIGH: usize = 64 * 1024;
/// Bytes read per system call.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers larger than this are freed when they empty (smaller ones are kept for reuse).
const KEEP: usize = 4 * 1024;

/// What woke the connection.
#[derive(Debug)]
pub enum Event {
    /// Bytes arrived (see [`Io::input`]).
    Input,
    /// The session has something new (or was taken over).
    Wake,
    /// The output buffer was written out while more deliveries wait.
    Drained,
    /// The persistence file committed (acknowledgements may go).
    Committed,
    /// The keepalive deadline passed.
    Timer,
    /// The client closed the connection.
    Eof,
    Failed(std::io::Error),
    /// The broker is stopping.
    Shutdown,
}

/// Longest time the last packets get to leave before the socket closes.
const LINGER: Duration = Duration::from_secs(2);

/// The transport with its buffers.
pub struct Io<T> {
    stream: T,
    input: Vec<u8>,
    /// Bytes of `input` already decoded.
    consumed: usize,
    output: Vec<u8>,
    /// Bytes of `output` already written.
    written: usize,
    /// A write failed (reported once the reader sees it too).
    write_error: Option<std::io::Error>,
    /// Bytes read and written since [`Io::take_counts`].
    read_bytes: u64,
    written_bytes: u64,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Io<T> {
    pub fn new(stream: T) -> Self {
        Self {
            stream,
            input: Vec::new(),
            consumed: 0,
            output: Vec::new(),
            written: 0,
            write_error: None,
            read_bytes: 0,
            written_bytes: 0,
        }
    }

    /// Bytes read and written since the last call.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.read_bytes),
            std::mem::take(&mut self.written_bytes),
        )
    }

    /// The bytes read and not yet consumed.
    pub fn input(&self) -> &[u8] {
        self.input.get(self.consumed..).unwrap_or_default()
    }

    /// `n` bytes of [`Io::input`] were decoded.
    pub fn consume(&mut self, n: usize) {
        self.consumed = (self.consumed + n).min(self.input.len());
    }

    /// Decoding stopped (an incomplete packet, or nothing left): keep only what is left.
    pub fn input_done(&mut self) {
        if self.consumed >= self.input.len() {
            self.input.clear();
            if self.input.capacity() > KEEP {
                self.input = Vec::new();
            }
        } else if self.consumed > 0 {
            self.input.drain(..self.consumed);
        }
        self.consumed = 0;
    }

    /// The buffer to encode packets into.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Writes what it can of the output without waiting.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.written < self.output.len() {
            let chunk = &self.output[self.written..];
            match Pin::new(&mut self.stream).poll_write(cx, chunk) {
                Poll::Ready(Ok(0)) => {
                    self.write_error = Some(std::io::ErrorKind::WriteZero.into());
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.written_bytes += n as u64;
                }
                Poll::Ready(Err(e)) => {
                    self.write_error = Some(e);
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        // TLS and WebSocket streams keep bytes until flushed.
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Err(e)) => self.write_error = Some(e),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) => {}
        }
        self.output.clear();
        self.written = 0;
        if self.output.capacity() > KEEP {
            self.output = Vec::new();
        }
        Poll::Ready(())
    }

    fn poll_read_in(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Event::Eof),
            Poll::Ready(Ok(())) => {
                self.input.extend_from_slice(buf.filled());
                self.read_bytes += buf.filled().len() as u64;
                Poll::Ready(Event::Input)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Event::Failed(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Waits for the next thing to do; meanwhile writes the output. `want_drain`: report
    /// [`Event::Drained`] once the output is written (more deliveries wait).
    #[allow(clippy::too_many_arguments)]
    pub fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        shutdown: Pin<&mut WaitForCancellationFuture<'_>>,
        woken: Pin<&mut Notified<'_>>,
        committed: Option<Pin<&mut Notified<'_>>>,
        timer: Option<Pin<&mut tokio::time::Sleep>>,
        want_drain: bool,
    ) -> Poll<Event> {
        if shutdown.poll(cx).is_ready() {
            return Poll::Ready(Event::Shutdown);
        }
        let had_output = self.pending_output() > 0;
        if had_output && self.poll_write_out(cx).is_ready() {
            if let Some(e) = self.write_error.take() {
                return Poll::Ready(Event::Failed(e));
            }
            if want_drain {
                return Poll::Ready(Event::Drained);
            }
        }
        if let Poll::Ready(event) = self.poll_read_in(cx) {
            return Poll::Ready(event);
        }
        if woken.poll(cx).is_ready() {
            return Poll::Ready(Event::Wake);
        }
        if let Some(c) = committed {
            if c.poll(cx).is_ready() {
                return Poll::Ready(Event::Committed);
            }
        }
        if let Some(t) = timer {
            if t.poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
        }
        if !had_output && want_drain {
            // Nothing was waiting to be written: room for more right away.
            return Poll::Ready(Event::Drained);
        }
        Poll::Pending
    }

    /// Writes out everything (closing time), within the caller's timeout.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_out(cx)).await;
        match self.write_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads until at least one more byte arrives (the CONNECT handshake).
    pub async fn read_more(&mut self) -> Event {
        std::future::poll_fn(|cx| self.poll_read_in(cx)).await
    }

    /// Closes the connection in at most [`LINGER`]: writes what is owed, shuts the write side
    /// down (FIN, so the client reads the last packets), then, with `drain`, reads and drops
    /// what the client still sends until it closes too. Without the drain, bytes unread at
    /// close make the kernel answer with a reset, which can destroy the DISCONNECT or CONNACK
    /// the client has not read yet.
    pub async fn close(&mut self, drain: bool) {
        let _ = tokio::time::timeout(LINGER, async {
            if self.flush().await.is_err() {
                return;
            }
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await;
            while drain {
                self.input.clear();
                self.consumed = 0;
                if !matches!(self.read_more().await, Event::Input) {
                    break;
                }
            }
        })
        .await;
    }
}
