//! The read planner: which Modbus read requests fetch a device's points in one poll cycle.
//!
//! Pure: a point map and [`Limits`] in, a list of [`Read`]s out. A request covers one table
//! (kinds are never mixed) and a contiguous span of registers or bits. The plan merges points into
//! the fewest requests such that:
//! - every point is in exactly one [`Read`], and lies wholly inside its span;
//! - a span is no longer than the table's limit ([`MAX_REGISTERS`] registers for holding/input,
//!   [`MAX_BITS`] bits for coil/discrete, by default) — except that a lone point wider than the
//!   limit (only possible with a limit below 2) gets a request of its own rather than being lost;
//! - two consecutive points of one request leave at most `max_gap` registers/bits unused between
//!   them (reading a few unused registers is cheaper than a round trip; more is not);
//! - a span starts at its first point and ends at its last: no register is read beyond them;
//! - the reads are ordered by table (coil, discrete, holding, input) then address, and each read
//!   lists its points ascending by address (ties by end, then input index).
//!
//! Overlapping points (refused by validation) and a point ending at 65536 are still planned: the
//! planner never panics and never drops a point.
//!
//! Also here, as pure functions: the poll classes of a device ([`classes`]: points grouped by
//! their poll interval, each group planned on its own) and the split of a request a device
//! refused ([`split`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use crate::config::{Device, Point, RegisterKind};

/// Most registers one read may fetch (FC03/FC04: 125 in the Modbus specification).
pub const MAX_REGISTERS: u16 = 125;
/// Most bits one read may fetch (FC01/FC02: 2000 in the Modbus specification).
pub const MAX_BITS: u16 = 2000;

/// Size limits of the requests of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest span of one holding or input register read.
    pub max_registers: u16,
    /// Longest span of one coil or discrete input read.
    pub max_bits: u16,
    /// Most unused registers (or bits) read between two consecutive points of one request.
    pub max_gap: u16,
}

impl Limits {
    /// The protocol maxima ([`MAX_REGISTERS`], [`MAX_BITS`]) with the given gap.
    pub fn with_gap(max_gap: u16) -> Self {
        Self {
            max_registers: MAX_REGISTERS,
            max_bits: MAX_BITS,
            max_gap,
        }
    }

    /// Longest span of one read of `kind`.
    pub fn max_span(&self, kind: RegisterKind) -> u16 {
        if kind.is_bit() {
            self.max_bits
        } else {
            self.max_registers
        }
    }
}

/// One read request of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The table read.
    pub kind: RegisterKind,
    /// First register or bit read.
    pub address: u16,
    /// Number of registers or bits read.
    pub count: u16,
    /// Indices into the planned slice of the points this read serves, ascending by address.
    pub points: Vec<usize>,
}

impl Read {
    /// Address one past the last register or bit read (may be 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count)
    }

    /// Where `point`'s registers (or bit) sit in this read's response, or `None` when the point
    /// is of another table or not wholly inside the span.
    pub fn range_of(&self, point: &Point) -> Option<Range<usize>> {
        if point.kind != self.kind || point.address < self.address || point.end() > self.end() {
            return None;
        }
        let start = usize::from(point.address - self.address);
        Some(start..start + usize::from(point.width()))
    }
}

/// The fewest reads that fetch every point of `points` within `limits` (see the module doc).
///
/// Per table, a greedy sweep over the points sorted by address: start a block at the lowest
/// point not yet covered, extend it with the next point while the span and gap rules hold, then
/// close it.
///
/// Why greedy is optimal. Valid points never overlap, except single-bit points of one register,
/// whose spans are equal; so in (address, end) order the ends never decrease either (if `p`
/// precedes `q` at a lower address, `p.end ≤ q.address < q.end`; the same holds for points at
/// most 2 wide even when they overlap: `p.end ≤ p.address + 2 ≤ q.address + 1 ≤ q.end`). A
/// block's span is thus `last.end − first.address`, and its unused
/// registers before a point lie between that point and the end of the one before it. Let the greedy
/// blocks be `B1..Bm` and `s_j` the first point of `Bj`. Greedy closed `Bj` because adding
/// `s_{j+1}` broke a rule:
/// - the gap rule: more than `max_gap` registers between `Bj`'s end and `s_{j+1}` belong to no
///   point at all (ends are monotone), so any request holding `s_j` and any point from `s_{j+1}`
///   on has two consecutive points straddling those registers, more than `max_gap` apart;
/// - or the span rule: `s_{j+1}.end − s_j.address` exceeds the limit, and a request holding `s_j`
///   and any point `q` from `s_{j+1}` on spans at least `q.end − s_j.address ≥ s_{j+1}.end −
///   s_j.address`.
///
/// Either way no valid request holds two of `s_1..s_m`, so every valid plan — contiguous runs or
/// not — has at least `m` requests. The tests check this against a brute-force optimum.
pub fn plan(points: &[Point], limits: &Limits) -> Vec<Read> {
    let all: Vec<usize> = (0..points.len()).collect();
    plan_some(points, &all, limits)
}

/// [`plan`] for the points of `points` listed in `members` (indices into `points`, which the
/// reads refer to).
pub fn plan_some(points: &[Point], members: &[usize], limits: &Limits) -> Vec<Read> {
    let mut reads = Vec::new();
    for kind in RegisterKind::ALL {
        let mut sorted: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| points.get(i).is_some_and(|p| p.kind == kind))
            .collect();
        sorted.sort_by_key(|&i| (points[i].address, points[i].end(), i));
        let max_span = u32::from(limits.max_span(kind));
        let max_gap = u32::from(limits.max_gap);
        let mut block: Option<Block> = None;
        for i in sorted {
            let point = &points[i];
            match block.as_mut() {
                Some(b) if b.admits(point, max_span, max_gap) => b.push(i, point),
                _ => {
                    reads.extend(block.take().map(|b| b.into_read(kind)));
                    block = Some(Block::new(i, point));
                }
            }
        }
        reads.extend(block.map(|b| b.into_read(kind)));
    }
    reads
}

/// Number of requests one poll cycle of `points` takes: `plan(points, limits).len()`.
pub fn requests_per_cycle(points: &[Point], limits: &Limits) -> usize {
    plan(points, limits).len()
}

/// The points of a device polled at one interval, and their reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub interval: Duration,
    /// Reads of the class's points (indices into the device's points), planned together.
    pub reads: Vec<Read>,
}

/// The poll classes of `device`: its points grouped by their poll interval (a point's own or
/// its group's `poll`, else the device's), shortest interval first, each planned with the
/// device's `max_gap`. Points of different intervals are never merged into one request.
pub fn classes(device: &Device) -> Vec<Class> {
    let limits = Limits::with_gap(device.max_gap);
    let mut by_interval: BTreeMap<Duration, Vec<usize>> = BTreeMap::new();
    for (i, p) in device.points.iter().enumerate() {
        by_interval.entry(device.poll_of(p)).or_default().push(i);
    }
    by_interval
        .into_iter()
        .map(|(interval, members)| Class {
            interval,
            reads: plan_some(&device.points, &members, &limits),
        })
        .collect()
}

/// Splits a read the device refused in two, to find the registers it does not have: the points
/// are cut where the unused span between two consecutive points is largest (unused registers are
/// the likely culprits), ties at the cut nearest the middle; each half spans only its own points.
/// `None` for a read of a single point, or of points that all start at one address (bits of one
/// register), which cannot be split.
pub fn split(read: &Read, points: &[Point]) -> Option<(Read, Read)> {
    let members: Vec<&Point> = read
        .points
        .iter()
        .map(|&i| points.get(i))
        .collect::<Option<_>>()?;
    let n = members.len();
    let middle = n as f64 / 2.0;
    let mut reach = members.first()?.end();
    let mut best: Option<(u32, f64, usize)> = None;
    for (k, p) in members.iter().enumerate().skip(1) {
        if p.address != members[k - 1].address {
            let gap = u32::from(p.address).saturating_sub(reach);
            let distance = (k as f64 - middle).abs();
            let better = match best {
                None => true,
                Some((g, d, _)) => gap > g || (gap == g && distance < d),
            };
            if better {
                best = Some((gap, distance, k));
            }
        }
        reach = reach.max(p.end());
    }
    let (_, _, cut) = best?;
    let half = |ids: &[usize]| {
        let start = ids
            .iter()
            .map(|&i| points[i].address)
            .min()
            .unwrap_or(read.address);
        let end = ids
            .iter()
            .map(|&i| points[i].end())
            .max()
            .unwrap_or(read.end());
        Read {
            kind: read.kind,
            address: start,
            // Within the original span, which fitted a u16.
            count: u16::try_from(end - u32::from(start)).unwrap_or(read.count),
            points: ids.to_vec(),
        }
    };
    Some((half(&read.points[..cut]), half(&read.points[cut..])))
}

/// A read being built: its first address, the furthest end of its points, and the points.
struct Block {
    start: u16,
    end: u32,
    points: Vec<usize>,
}

impl Block {
    fn new(index: usize, point: &Point) -> Self {
        Self {
            start: point.address,
            end: point.end(),
            points: vec![index],
        }
    }

    /// Whether `point` (at or after the block's start) may join without breaking a rule. The
    /// running `end` is the furthest end so far, so overlapping points leave no gap.
    fn admits(&self, point: &Point, max_span: u32, max_gap: u32) -> bool {
        let gap_ok = u32::from(point.address) <= self.end + max_gap;
        let span_ok = self.end.max(point.end()) - u32::from(self.start) <= max_span;
        gap_ok && span_ok
    }

    fn push(&mut self, index: usize, point: &Point) {
        self.end = self.end.max(point.end());
        self.points.push(index);
    }

    fn into_read(self, kind: RegisterKind) -> Read {
        // A span is at most max(limit, 2) ≤ 65535 (the limit is a u16, a point at most 2 wide),
        // so the conversion cannot saturate.
        let count = u16::try_from(self.end - u32::from(self.start)).unwrap_or(u16::MAX);
        Read {
            kind,
            address: self.start,
            count,
            points: self.points,
        }
    }
}

#[cfg(test)]
mod tests;
