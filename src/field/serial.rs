//! Serial ports for Modbus RTU: opening one with a bus's line settings, and [`Quiet`], the byte
//! stream wrapper that keeps a half-duplex master in step.
//!
//! Invariant: bytes that arrive while no request is outstanding (the late answer of a slave
//! that timed out, line noise) are discarded before the next request is written, so they can
//! never be taken for its answer. A master on a half-duplex bus speaks first, so any byte
//! waiting when it is about to write is stale by definition.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_serial::{DataBits, SerialPortBuilderExt, SerialStream, StopBits};
use tracing::debug;

use crate::config::{Bus, Parity};

/// Opens `bus.port` with the bus's baud rate, parity, data and stop bits (no flow control).
pub fn open(bus: &Bus) -> io::Result<SerialStream> {
    let data_bits = match bus.data_bits {
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop_bits = match bus.stop_bits {
        2 => StopBits::Two,
        _ => StopBits::One,
    };
    let parity = match bus.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    tokio_serial::new(&bus.port, bus.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(io::Error::from)
}

/// A byte stream that drops whatever input is waiting each time it is written to.
#[derive(Debug)]
pub struct Quiet<T> {
    inner: T,
}

impl<T> Quiet<T> {
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

impl<T: AsyncRead + Unpin> Quiet<T> {
    /// Reads and drops every byte available now (without waiting for more).
    fn discard_pending(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 256];
        let mut dropped = 0usize;
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => dropped += buf.filled().len(),
                // Nothing waiting, end of stream, or an error: the real read will see the
                // latter two.
                _ => break,
            }
        }
        if dropped > 0 {
            debug!(bytes = dropped, "discarded stale input before a request");
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Quiet<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Quiet<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.discard_pending(cx);
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn stale_input_is_dropped_before_a_write() {
        let (master, mut device) = tokio::io::duplex(64);
        let mut quiet = Quiet::new(master);
        // A late answer arrives while no request is outstanding...
        device.write_all(b"late").await.expect("write");
        device.flush().await.expect("flush");
        tokio::task::yield_now().await;
        // ...the next request goes out, and only what is answered after it is read.
        quiet.write_all(b"req").await.expect("write");
        let mut got = [0u8; 3];
        device.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"req");
        device.write_all(b"ok").await.expect("write");
        let mut answer = [0u8; 2];
        quiet.read_exact(&mut answer).await.expect("read");
        assert_eq!(&answer, b"ok");
    }
}
