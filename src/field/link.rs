//! One Modbus connection — a TCP stream or a serial port with RTU framing — with a timeout on
//! every request and typed outcomes.
//!
//! Keeps "the device said no" apart from "the link is broken" (as tokio-modbus does):
//! [`Answer`] is `Result<Result<T, Exception>, LinkError>`. Invariants:
//! - every request is bounded by the timeout its caller passes (devices on one line may have
//!   different timeouts);
//! - a response of the wrong length is a [`LinkError::Garbage`], never decoded;
//! - an exception code is `Ok(Err(_))`: the link stays up;
//! - on RTU, every request starts after the bus has been silent for the inter-frame delay, and
//!   with no stale input pending (see `serial.rs`): a late answer to an earlier request is
//!   discarded, never taken for the answer to the next one. A late answer that arrives *while*
//!   the next read waits for its own answer garbles it (wrong unit, wrong length): a read that
//!   follows a timeout and gets such a frame is sent once more (reads only; a write is never
//!   repeated).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_modbus::ExceptionCode;

use tracing::debug;

use super::serial::{self, Quiet};
use crate::config::{Bus, HostPort, RegisterKind};

/// Why a connection failed or must be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open serial port {port}: {source}")]
    Open {
        port: String,
        #[source]
        source: io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Io(#[source] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("garbage answer: {0}")]
    Garbage(String),
}

impl LinkError {
    /// True when the line itself is gone (connect/open failed, I/O error): on a serial bus,
    /// timeouts and garbled frames concern one slave, not the port.
    pub fn is_line_down(&self) -> bool {
        matches!(
            self,
            Self::Resolve { .. } | Self::Connect { .. } | Self::Open { .. } | Self::Io(_)
        )
    }
}

/// A Modbus exception code returned by the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception(pub u8);

impl Exception {
    /// Illegal data address: the request touches registers the device does not have.
    pub const ILLEGAL_ADDRESS: Exception = Exception(0x02);

    /// The standard name of the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x01 => "illegal function",
            0x02 => "illegal data address",
            0x03 => "illegal data value",
            0x04 => "server device failure",
            0x05 => "acknowledge",
            0x06 => "server device busy",
            0x08 => "memory parity error",
            0x0A => "gateway path unavailable",
            0x0B => "gateway target device failed to respond",
            _ => "unknown exception",
        }
    }

    /// True for the gateway codes (0x0A, 0x0B) that mean the device behind a gateway did not
    /// answer: for fault isolation that is a missing answer, not a refusal.
    pub fn is_no_answer(self) -> bool {
        matches!(self.0, 0x0A | 0x0B)
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exception {:#04x} ({})", self.0, self.name())
    }
}

/// The outcome of one request.
pub type Answer<T> = Result<Result<T, Exception>, LinkError>;

/// Data returned by a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadData {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

/// What a write puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteData {
    /// One coil (FC05).
    Coil(bool),
    /// Several coils (FC15).
    Coils(Vec<bool>),
    /// Registers: FC06 for one, FC16 for several.
    Registers(Vec<u16>),
    /// Registers with FC16 even when there is only one (devices without FC06).
    MultipleRegisters(Vec<u16>),
    /// One bit of a holding register: not a request of its own; the line task turns it into
    /// a read of the register and a write of it with the bit changed (read-modify-write).
    Bit { bit: u8, on: bool },
}

impl WriteData {
    /// Whether `read` (the read-back of the point) holds what this write put there.
    pub fn read_back_matches(&self, read: &ReadData) -> bool {
        match (self, read) {
            (Self::Coil(on), ReadData::Bits(bits)) => bits.first() == Some(on),
            (Self::Coils(want), ReadData::Bits(bits)) => bits.get(..want.len()) == Some(want),
            (Self::Registers(want) | Self::MultipleRegisters(want), ReadData::Words(words)) => {
                words.get(..want.len()) == Some(want)
            }
            (Self::Bit { bit, on }, ReadData::Words(words)) => {
                words.first().map(|w| w >> bit & 1 == 1) == Some(*on)
            }
            _ => false,
        }
    }
}

/// RTU timing: the silence kept between frames.
#[derive(Debug)]
struct Rtu {
    frame_delay: Duration,
    /// When the bus last carried a frame (our request's answer, or a timeout).
    last: Option<Instant>,
    /// The last request got no answer: its answer may still come, during the next one.
    after_timeout: bool,
}

/// A connected Modbus master.
pub struct Link {
    ctx: Context,
    rtu: Option<Rtu>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("rtu", &self.rtu)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connects over Modbus TCP, resolving the host anew each time (DHCP, DNS changes).
    pub async fn connect_tcp(addr: &HostPort, timeout: Duration) -> Result<Link, LinkError> {
        let addrs = Self::resolve(addr, timeout).await?;
        Self::connect_resolved(addr, &addrs, timeout).await
    }

    /// The addresses of `addr`'s host (never empty), within `timeout`.
    pub async fn resolve(addr: &HostPort, timeout: Duration) -> Result<Vec<SocketAddr>, LinkError> {
        let text = addr.to_string();
        let error = |source| LinkError::Resolve {
            addr: text.clone(),
            source,
        };
        let lookup = tokio::net::lookup_host((addr.host.as_str(), addr.port));
        let addrs: Vec<SocketAddr> = tokio::time::timeout(timeout, lookup)
            .await
            .map_err(|_| {
                error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out after {timeout:?}"),
                ))
            })?
            .map_err(error)?
            .collect();
        if addrs.is_empty() {
            return Err(error(io::Error::other("the host has no address")));
        }
        Ok(addrs)
    }

    /// Connects to the first of `addrs` (the resolved addresses of `addr`) that accepts.
    pub async fn connect_resolved(
        addr: &HostPort,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Link, LinkError> {
        let text = addr.to_string();
        let connect = async {
            let mut last = None;
            for sa in addrs {
                match TcpStream::connect(sa).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e),
                }
            }
            Err(LinkError::Connect {
                addr: text.clone(),
                source: last.unwrap_or_else(|| io::Error::other("the host has no address")),
            })
        };
        let stream =
            tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| LinkError::Connect {
                    addr: text.clone(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("timed out after {timeout:?}"),
                    ),
                })??;
        // Requests are small and latency-bound.
        let _ = stream.set_nodelay(true);
        let ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(1));
        Ok(Link { ctx, rtu: None })
    }

    /// Opens the serial port of `bus` with its line settings, for Modbus RTU.
    pub fn open_serial(bus: &Bus) -> Result<Link, LinkError> {
        let port = serial::open(bus).map_err(|source| LinkError::Open {
            port: bus.port.clone(),
            source,
        })?;
        Ok(Self::attach_rtu(port, bus.frame_delay()))
    }

    /// Modbus RTU over any byte stream (a serial port, or a pipe in tests).
    pub fn attach_rtu<T>(io: T, frame_delay: Duration) -> Link
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + 'static,
    {
        let ctx = tokio_modbus::client::rtu::attach_slave(Quiet::new(io), Slave(1));
        Link {
            ctx,
            rtu: Some(Rtu {
                frame_delay,
                last: None,
                after_timeout: false,
            }),
        }
    }

    /// True for a serial (RTU) link.
    pub fn is_rtu(&self) -> bool {
        self.rtu.is_some()
    }

    /// Keeps the inter-frame silence, then addresses `unit`.
    async fn begin(&mut self, unit: u8) {
        if let Some(rtu) = &self.rtu {
            if let Some(last) = rtu.last {
                tokio::time::sleep_until(last + rtu.frame_delay).await;
            }
        }
        self.ctx.set_slave(Slave(unit));
    }

    fn end<T>(&mut self, answer: &Answer<T>) {
        if let Some(rtu) = &mut self.rtu {
            rtu.last = Some(Instant::now());
            rtu.after_timeout = matches!(answer, Err(LinkError::Timeout(_)));
        }
    }

    /// Reads `count` registers or bits of `kind` starting at `address` from `unit`.
    pub async fn read(
        &mut self,
        unit: u8,
        kind: RegisterKind,
        address: u16,
        count: u16,
        timeout: Duration,
    ) -> Answer<ReadData> {
        let after_timeout = self.rtu.as_ref().is_some_and(|r| r.after_timeout);
        let answer = self.read_once(unit, kind, address, count, timeout).await;
        match answer {
            Err(LinkError::Protocol(e) | LinkError::Garbage(e)) if after_timeout => {
                debug!(error = %e, "a late answer garbled the read; reading again");
                self.read_once(unit, kind, address, count, timeout).await
            }
            other => other,
        }
    }

    async fn read_once(
        &mut self,
        unit: u8,
        kind: RegisterKind,
        address: u16,
        count: u16,
        timeout: Duration,
    ) -> Answer<ReadData> {
        self.begin(unit).await;
        let ctx = &mut self.ctx;
        let answer = match kind {
            RegisterKind::Coil => bounded(timeout, ctx.read_coils(address, count))
                .await
                .map(|r| r.map(ReadData::Bits)),
            RegisterKind::Discrete => bounded(timeout, ctx.read_discrete_inputs(address, count))
                .await
                .map(|r| r.map(ReadData::Bits)),
            RegisterKind::Holding => bounded(timeout, ctx.read_holding_registers(address, count))
                .await
                .map(|r| r.map(ReadData::Words)),
            RegisterKind::Input => bounded(timeout, ctx.read_input_registers(address, count))
                .await
                .map(|r| r.map(ReadData::Words)),
        };
        self.end(&answer);
        match answer {
            Ok(Ok(data)) => {
                let got = match &data {
                    // Bit reads come back padded to whole bytes; only the requested bits count.
                    ReadData::Bits(bits) if bits.len() >= usize::from(count) => {
                        let mut bits = bits.clone();
                        bits.truncate(usize::from(count));
                        return Ok(Ok(ReadData::Bits(bits)));
                    }
                    ReadData::Bits(bits) => bits.len(),
                    ReadData::Words(words) => words.len(),
                };
                if got == usize::from(count) {
                    Ok(Ok(data))
                } else {
                    Err(LinkError::Garbage(format!(
                        "asked for {count} {kind} values at {address}, got {got}"
                    )))
                }
            }
            other => other,
        }
    }

    /// Writes coils or holding registers of `unit` starting at `address`.
    pub async fn write(
        &mut self,
        unit: u8,
        address: u16,
        data: &WriteData,
        timeout: Duration,
    ) -> Answer<()> {
        self.begin(unit).await;
        let ctx = &mut self.ctx;
        let answer = match data {
            WriteData::Coil(on) => bounded(timeout, ctx.write_single_coil(address, *on)).await,
            WriteData::Registers(words) if words.len() == 1 => {
                bounded(timeout, ctx.write_single_register(address, words[0])).await
            }
            WriteData::Coils(bits) => {
                bounded(timeout, ctx.write_multiple_coils(address, bits)).await
            }
            WriteData::Registers(words) | WriteData::MultipleRegisters(words) => {
                bounded(timeout, ctx.write_multiple_registers(address, words)).await
            }
            WriteData::Bit { .. } => Err(LinkError::Protocol(
                "a single-bit write is a read-modify-write of its register, done by the line task"
                    .into(),
            )),
        };
        self.end(&answer);
        answer
    }

    /// Closes the connection politely (best effort, bounded by `timeout`).
    pub async fn close(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(
            timeout,
            tokio_modbus::client::Client::disconnect(&mut self.ctx),
        )
        .await;
    }
}

async fn bounded<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = tokio_modbus::Result<T>>,
) -> Answer<T> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(LinkError::Timeout(timeout)),
        Ok(Err(tokio_modbus::Error::Transport(e))) => Err(LinkError::Io(e)),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(LinkError::Protocol(e.to_string())),
        Ok(Ok(Err(code))) => Ok(Err(Exception(u8::from(code)))),
        Ok(Ok(Ok(v))) => Ok(Ok(v)),
    }
}

/// The exception code of a tokio-modbus exception, for simulators.
pub fn exception_code(e: Exception) -> ExceptionCode {
    ExceptionCode::new(e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_backs_match_what_was_written() {
        let words = |w: &[u16]| ReadData::Words(w.to_vec());
        let bits = |b: &[bool]| ReadData::Bits(b.to_vec());
        assert!(WriteData::Coil(true).read_back_matches(&bits(&[true])));
        assert!(!WriteData::Coil(true).read_back_matches(&bits(&[false])));
        assert!(WriteData::Coils(vec![true, false]).read_back_matches(&bits(&[true, false])));
        assert!(!WriteData::Coils(vec![true, false]).read_back_matches(&bits(&[true])));
        assert!(WriteData::Registers(vec![1, 2]).read_back_matches(&words(&[1, 2])));
        assert!(!WriteData::Registers(vec![1, 2]).read_back_matches(&words(&[1, 3])));
        assert!(WriteData::MultipleRegisters(vec![7]).read_back_matches(&words(&[7])));
        // A bit write only looks at its bit: the device may change the others.
        let bit3 = WriteData::Bit { bit: 3, on: true };
        assert!(bit3.read_back_matches(&words(&[0xFF08])));
        assert!(!bit3.read_back_matches(&words(&[0xFFF7])));
        // Wrong shapes never match.
        assert!(!WriteData::Coil(true).read_back_matches(&words(&[1])));
        assert!(!WriteData::Registers(vec![1]).read_back_matches(&bits(&[true])));
    }
}
