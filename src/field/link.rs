//! One Modbus connection with a timeout on every request and typed outcomes.
//!
//! Keeps "the device said no" apart from "the link is broken" (as tokio-modbus does):
//! [`Answer`] is `Result<Result<T, Exception>, LinkError>`. Invariants:
//! - every request is bounded by the link's timeout;
//! - a response of the wrong length is a [`LinkError::Garbage`]: the caller must rebuild the
//!   connection (the stream may be out of step), never decode it;
//! - an exception code is `Ok(Err(_))`: the link stays up.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_modbus::ExceptionCode;

use crate::config::{HostPort, RegisterKind};

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
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Io(#[source] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("garbage answer: {0}")]
    Garbage(String),
}

/// A Modbus exception code returned by the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception(pub u8);

impl Exception {
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
    /// Registers: FC06 for one, FC16 for several.
    Registers(Vec<u16>),
}

/// A connected Modbus master.
pub struct Link {
    ctx: Context,
    timeout: Duration,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connects over Modbus TCP, resolving the host anew each time (DHCP, DNS changes).
    pub async fn connect_tcp(
        addr: &HostPort,
        unit: u8,
        timeout: Duration,
    ) -> Result<Link, LinkError> {
        let text = addr.to_string();
        let connect = async {
            let mut last = None;
            let addrs = tokio::net::lookup_host((addr.host.as_str(), addr.port))
                .await
                .map_err(|source| LinkError::Resolve {
                    addr: text.clone(),
                    source,
                })?;
            for sa in addrs {
                match TcpStream::connect(sa).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e),
                }
            }
            Err(LinkError::Connect {
                addr: text.clone(),
                source: last.unwrap_or_else(|| io::Error::other("host has no address")),
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
        let ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(unit));
        Ok(Link { ctx, timeout })
    }

    /// Selects the unit (slave) id for the following requests.
    pub fn set_unit(&mut self, unit: u8) {
        self.ctx.set_slave(Slave(unit));
    }

    /// Reads `count` registers or bits of `kind` starting at `address`.
    pub async fn read(&mut self, kind: RegisterKind, address: u16, count: u16) -> Answer<ReadData> {
        let timeout = self.timeout;
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

    /// Writes to coils or holding registers starting at `address`.
    pub async fn write(&mut self, address: u16, data: &WriteData) -> Answer<()> {
        let timeout = self.timeout;
        let ctx = &mut self.ctx;
        match data {
            WriteData::Coil(on) => bounded(timeout, ctx.write_single_coil(address, *on)).await,
            WriteData::Registers(words) if words.len() == 1 => {
                bounded(timeout, ctx.write_single_register(address, words[0])).await
            }
            WriteData::Registers(words) => {
                bounded(timeout, ctx.write_multiple_registers(address, words)).await
            }
        }
    }

    /// Closes the connection politely (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            self.timeout,
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
