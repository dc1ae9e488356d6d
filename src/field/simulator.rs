//! A Modbus TCP slave laid out from a config's point map, for demos, tests and benchmarks.
//!
//! Each device's unit id gets its own four tables. Read-only and non-writable points move
//! (slow sine waves, toggling bits) so a subscriber sees live values; writable points keep
//! whatever a master wrote. Addresses outside the point map read as zero, like many devices
//! with a flat register file. Invariant: the register contents change only under the bank's
//! lock, so a multi-register value is never read half-updated. The bank counts the reads it
//! answers, per unit and request ([`Bank::read_counts`]), for the poll-engine benchmark.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::tcp::Server;
use tokio_modbus::server::Service;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::codec;
use crate::config::{DataType, Device, Point, RegisterKind, Writable};

/// Period of the simulated waveforms.
const WAVE_PERIOD: f64 = 60.0;
/// How often moving values are updated.
const TICK: Duration = Duration::from_millis(250);

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: address already in use (another simulator or Modbus server? choose another --bind)")]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("devices `{first}` and `{second}` both use unit {unit}; one simulator serves each unit id once")]
    DuplicateUnit {
        unit: u8,
        first: String,
        second: String,
    },
}

#[derive(Default)]
struct Tables {
    coils: BTreeMap<u16, bool>,
    discrete: BTreeMap<u16, bool>,
    holding: BTreeMap<u16, u16>,
    input: BTreeMap<u16, u16>,
    /// Reads answered: (table, address, count) → how many.
    reads: BTreeMap<(RegisterKind, u16, u16), u64>,
}

/// One kind of read a unit answered: table, first address, count.
pub type ReadKey = (RegisterKind, u16, u16);

impl Tables {
    fn bits(&self, kind: RegisterKind) -> &BTreeMap<u16, bool> {
        if kind == RegisterKind::Coil {
            &self.coils
        } else {
            &self.discrete
        }
    }

    fn words(&self, kind: RegisterKind) -> &BTreeMap<u16, u16> {
        if kind == RegisterKind::Holding {
            &self.holding
        } else {
            &self.input
        }
    }

    fn set_point(&mut self, point: &Point, words: &[u16]) {
        let table = match point.kind {
            RegisterKind::Holding => &mut self.holding,
            RegisterKind::Input => &mut self.input,
            RegisterKind::Coil | RegisterKind::Discrete => {
                let table = if point.kind == RegisterKind::Coil {
                    &mut self.coils
                } else {
                    &mut self.discrete
                };
                for (i, w) in words.iter().enumerate() {
                    if let Some(a) = u16::try_from(i)
                        .ok()
                        .and_then(|i| point.address.checked_add(i))
                    {
                        table.insert(a, *w != 0);
                    }
                }
                return;
            }
        };
        if let Some(bit) = point.bit {
            // One bit of a register: the other bits belong to other points.
            let register = table.entry(point.address).or_insert(0);
            let mask = 1u16 << bit;
            if words.first().is_some_and(|w| *w != 0) {
                *register |= mask;
            } else {
                *register &= !mask;
            }
            return;
        }
        for (i, w) in words.iter().enumerate() {
            if let Some(a) = u16::try_from(i)
                .ok()
                .and_then(|i| point.address.checked_add(i))
            {
                table.insert(a, *w);
            }
        }
    }
}

/// The register files of every simulated unit.
pub struct Bank {
    units: HashMap<u8, Mutex<Tables>>,
    devices: Vec<Device>,
}

impl Bank {
    /// Lays out the tables of every device (one unit id each).
    pub fn new(devices: &[Device]) -> Result<Arc<Bank>, SimError> {
        let mut owner: HashMap<u8, &str> = HashMap::new();
        let mut units = HashMap::new();
        for d in devices {
            if let Some(first) = owner.insert(d.unit, &d.name) {
                return Err(SimError::DuplicateUnit {
                    unit: d.unit,
                    first: first.into(),
                    second: d.name.clone(),
                });
            }
            let mut tables = Tables::default();
            for p in &d.points {
                tables.set_point(p, &initial_words(p));
            }
            units.insert(d.unit, Mutex::new(tables));
        }
        let bank = Bank {
            units,
            devices: devices.to_vec(),
        };
        bank.tick(0.0);
        Ok(Arc::new(bank))
    }

    fn lock(&self, unit: u8) -> Option<MutexGuard<'_, Tables>> {
        self.units
            .get(&unit)
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Moves every non-writable point to its value at `t` seconds.
    fn tick(&self, t: f64) {
        for d in &self.devices {
            let Some(mut tables) = self.lock(d.unit) else {
                continue;
            };
            for (i, p) in d.points.iter().enumerate() {
                if p.writable != Writable::No && p.kind.is_writable() {
                    continue;
                }
                let phase = i as f64 * 0.7;
                tables.set_point(p, &wave_words(p, t, phase));
            }
        }
    }

    /// Reads the words of a register point (for tests and the demo).
    pub fn read_point(&self, unit: u8, point: &Point) -> Option<Vec<u16>> {
        let tables = self.lock(unit)?;
        if point.kind.is_bit() {
            let bit = tables
                .bits(point.kind)
                .get(&point.address)
                .copied()
                .unwrap_or(false);
            return Some(vec![u16::from(bit)]);
        }
        let table = tables.words(point.kind);
        Some(
            (0..point.width())
                .map(|i| table.get(&(point.address + i)).copied().unwrap_or(0))
                .collect(),
        )
    }

    /// How many reads of each kind every unit has answered so far.
    pub fn read_counts(&self) -> BTreeMap<u8, BTreeMap<ReadKey, u64>> {
        self.units
            .keys()
            .filter_map(|&u| self.lock(u).map(|t| (u, t.reads.clone())))
            .collect()
    }

    fn answer(&self, unit: u8, request: Request<'_>) -> Result<Response, ExceptionCode> {
        let mut tables = self.lock(unit).ok_or(ExceptionCode::GatewayTargetDevice)?;
        let read = match request {
            Request::ReadCoils(a, n) => Some((RegisterKind::Coil, a, n)),
            Request::ReadDiscreteInputs(a, n) => Some((RegisterKind::Discrete, a, n)),
            Request::ReadHoldingRegisters(a, n) => Some((RegisterKind::Holding, a, n)),
            Request::ReadInputRegisters(a, n) => Some((RegisterKind::Input, a, n)),
            _ => None,
        };
        if let Some(key) = read {
            *tables.reads.entry(key).or_default() += 1;
        }
        match request {
            Request::ReadCoils(a, n) => Ok(Response::ReadCoils(read_bits(&tables.coils, a, n)?)),
            Request::ReadDiscreteInputs(a, n) => Ok(Response::ReadDiscreteInputs(read_bits(
                &tables.discrete,
                a,
                n,
            )?)),
            Request::ReadHoldingRegisters(a, n) => Ok(Response::ReadHoldingRegisters(read_words(
                &tables.holding,
                a,
                n,
            )?)),
            Request::ReadInputRegisters(a, n) => Ok(Response::ReadInputRegisters(read_words(
                &tables.input,
                a,
                n,
            )?)),
            Request::WriteSingleCoil(a, v) => {
                tables.coils.insert(a, v);
                Ok(Response::WriteSingleCoil(a, v))
            }
            Request::WriteMultipleCoils(a, values) => {
                let n = check_range(a, values.len(), 1968)?;
                for (i, v) in (a..).zip(values.iter()) {
                    tables.coils.insert(i, *v);
                }
                Ok(Response::WriteMultipleCoils(a, n))
            }
            Request::WriteSingleRegister(a, v) => {
                tables.holding.insert(a, v);
                Ok(Response::WriteSingleRegister(a, v))
            }
            Request::WriteMultipleRegisters(a, values) => {
                let n = check_range(a, values.len(), 123)?;
                for (i, v) in (a..).zip(values.iter()) {
                    tables.holding.insert(i, *v);
                }
                Ok(Response::WriteMultipleRegisters(a, n))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

fn check_range(address: u16, count: usize, max: usize) -> Result<u16, ExceptionCode> {
    if count == 0 || count > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    if usize::from(address) + count > 65_536 {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    u16::try_from(count).map_err(|_| ExceptionCode::IllegalDataValue)
}

fn read_bits(
    table: &BTreeMap<u16, bool>,
    address: u16,
    count: u16,
) -> Result<Vec<bool>, ExceptionCode> {
    check_range(address, usize::from(count), 2000)?;
    Ok((0..count)
        .map(|i| table.get(&(address + i)).copied().unwrap_or(false))
        .collect())
}

fn read_words(
    table: &BTreeMap<u16, u16>,
    address: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    check_range(address, usize::from(count), 125)?;
    Ok((0..count)
        .map(|i| table.get(&(address + i)).copied().unwrap_or(0))
        .collect())
}

/// The starting value of a point: writable points start mid-range (or at zero).
fn initial_words(p: &Point) -> Vec<u16> {
    let value = match p.writable {
        Writable::Yes {
            min: Some(lo),
            max: Some(hi),
        } => (lo + hi) / 2.0,
        Writable::Yes { min: Some(lo), .. } => lo.max(0.0),
        _ => 0.0,
    };
    encode_or_zero(p, value)
}

/// The value of a moving point at `t` seconds: booleans toggle, numbers follow a sine wave
/// kept well inside the raw range of their type.
fn wave_words(p: &Point, t: f64, phase: f64) -> Vec<u16> {
    let s = (t * std::f64::consts::TAU / WAVE_PERIOD + phase).sin();
    if p.kind.is_bit() || p.data_type == DataType::Bool {
        let on = ((t / 5.0 + phase).floor() as i64) % 2 == 0;
        return vec![u16::from(on); usize::from(p.width())];
    }
    let raw = match p.data_type {
        DataType::F32 => 20.0 + 5.0 * s,
        _ => (500.0 + 400.0 * s).round(),
    };
    encode_or_zero(p, raw * p.scale + p.offset)
}

fn encode_or_zero(p: &Point, value: f64) -> Vec<u16> {
    if p.kind.is_bit() {
        return vec![u16::from(value != 0.0); usize::from(p.width())];
    }
    codec::encode_point(p, value).unwrap_or_else(|_| vec![0; usize::from(p.width())])
}

/// tokio-modbus service for one connection.
#[derive(Clone)]
struct Handler {
    bank: Arc<Bank>,
}

impl Service for Handler {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        std::future::ready(self.bank.answer(req.slave, req.request))
    }
}

/// Binds the simulator's listener (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            SimError::AddrInUse { addr }
        } else {
            SimError::Bind { addr, source }
        }
    })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| SimError::Bind { addr, source })?;
    TcpListener::from_std(std_listener).map_err(|source| SimError::Bind { addr, source })
}

/// Serves `bank` on `listener` until `cancel`; values move four times a second.
pub async fn serve(listener: TcpListener, bank: Arc<Bank>, cancel: CancellationToken) {
    serve_all(vec![listener], bank, cancel).await;
}

/// Serves `bank` on every one of `listeners` (one register file, one clock) until `cancel`.
pub async fn serve_all(listeners: Vec<TcpListener>, bank: Arc<Bank>, cancel: CancellationToken) {
    let ticker_bank = bank.clone();
    let ticker_cancel = cancel.clone();
    let ticker = tokio::spawn(async move {
        let start = Instant::now();
        let mut interval = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                () = ticker_cancel.cancelled() => break,
                _ = interval.tick() => ticker_bank.tick(start.elapsed().as_secs_f64()),
            }
        }
    });
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(serve_one(listener, bank.clone(), cancel.clone())))
        .collect();
    for server in servers {
        let _ = server.await;
    }
    ticker.abort();
}

async fn serve_one(listener: TcpListener, bank: Arc<Bank>, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, units = bank.units.len(), "simulator listening");
    }
    let server = Server::new(listener);
    let on_connected = |stream, _addr| {
        let handler = Handler { bank: bank.clone() };
        async move { Ok(Some((handler, stream))) }
    };
    let on_error = |e: io::Error| warn!(error = %e, "simulator connection error");
    let stop = cancel.clone();
    if let Err(e) = server
        .serve_until(
            &on_connected,
            on_error,
            async move { stop.cancelled().await },
        )
        .await
    {
        warn!(error = %e, "simulator stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_points_set_only_their_bit_and_bit_arrays_every_bit() {
        let mut tables = Tables::default();
        let bit = |b: u8| Point {
            bit: Some(b),
            ..Point::new("b", RegisterKind::Input, 7, DataType::Bool)
        };
        tables.set_point(&bit(1), &[1]);
        tables.set_point(&bit(3), &[1]);
        tables.set_point(&bit(1), &[0]);
        assert_eq!(tables.input.get(&7), Some(&0b1000));
        let coils = Point {
            count: 3,
            ..Point::new("c", RegisterKind::Coil, 2, DataType::Bool)
        };
        tables.set_point(&coils, &encode_or_zero(&coils, 1.0));
        let set: Vec<u16> = tables
            .coils
            .iter()
            .filter(|(_, on)| **on)
            .map(|(a, _)| *a)
            .collect();
        assert_eq!(set, vec![2, 3, 4]);
    }
}
