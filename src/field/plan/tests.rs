use super::*;
use crate::config::DataType;
use proptest::prelude::*;
use RegisterKind::{Coil, Discrete, Holding, Input};

fn pt(kind: RegisterKind, address: u16, data_type: DataType) -> Point {
    Point::new(&format!("{kind}{address}"), kind, address, data_type)
}

fn u16_at(address: u16) -> Point {
    pt(Holding, address, DataType::U16)
}

fn f32_at(address: u16) -> Point {
    pt(Holding, address, DataType::F32)
}

fn coil_at(address: u16) -> Point {
    pt(Coil, address, DataType::Bool)
}

fn read(kind: RegisterKind, address: u16, count: u16, points: &[usize]) -> Read {
    Read {
        kind,
        address,
        count,
        points: points.to_vec(),
    }
}

#[test]
fn empty_map_plans_nothing() {
    assert_eq!(plan(&[], &Limits::with_gap(16)), vec![]);
    assert_eq!(requests_per_cycle(&[], &Limits::with_gap(16)), 0);
}

#[test]
fn with_gap_uses_protocol_maxima() {
    let limits = Limits::with_gap(7);
    assert_eq!(
        limits,
        Limits {
            max_registers: 125,
            max_bits: 2000,
            max_gap: 7
        }
    );
    assert_eq!(limits.max_span(Coil), 2000);
    assert_eq!(limits.max_span(Discrete), 2000);
    assert_eq!(limits.max_span(Holding), 125);
    assert_eq!(limits.max_span(Input), 125);
}

#[test]
fn adjacent_points_merge() {
    // registers 0, 1-2, 3, listed out of order: one read of 4
    let points = [u16_at(3), f32_at(1), u16_at(0)];
    assert_eq!(
        plan(&points, &Limits::with_gap(0)),
        vec![read(Holding, 0, 4, &[2, 1, 0])]
    );
}

#[test]
fn register_span_splits_past_125() {
    let limits = Limits::with_gap(200);
    // 0 and 124: span exactly 125 fits
    assert_eq!(
        plan(&[u16_at(0), u16_at(124)], &limits),
        vec![read(Holding, 0, 125, &[0, 1])]
    );
    // 0 and 125: span 126 splits
    assert_eq!(
        plan(&[u16_at(0), u16_at(125)], &limits),
        vec![read(Holding, 0, 1, &[0]), read(Holding, 125, 1, &[1])]
    );
    // a 2-register value ending at 125 fits; one ending at 126 does not
    assert_eq!(requests_per_cycle(&[u16_at(0), f32_at(123)], &limits), 1);
    assert_eq!(requests_per_cycle(&[u16_at(0), f32_at(124)], &limits), 2);
    // 126 consecutive registers take two reads: 125 + 1
    let row: Vec<Point> = (0..126).map(u16_at).collect();
    let reads = plan(&row, &Limits::with_gap(0));
    assert_eq!(reads.len(), 2);
    assert_eq!((reads[0].address, reads[0].count), (0, 125));
    assert_eq!((reads[1].address, reads[1].count), (125, 1));
}

#[test]
fn bit_span_splits_past_2000() {
    let limits = Limits::with_gap(2000);
    assert_eq!(
        plan(&[coil_at(0), coil_at(1999)], &limits),
        vec![read(Coil, 0, 2000, &[0, 1])]
    );
    assert_eq!(
        plan(&[coil_at(0), coil_at(2000)], &limits),
        vec![read(Coil, 0, 1, &[0]), read(Coil, 2000, 1, &[1])]
    );
    // bits are not bound by the register limit
    assert_eq!(requests_per_cycle(&[coil_at(0), coil_at(500)], &limits), 1);
}

#[test]
fn gap_rule() {
    for max_gap in [0u16, 1, 16, 100] {
        let limits = Limits::with_gap(max_gap);
        // u16 at 0 ends at 1; a point at 1 + g leaves g registers unused
        let merged = plan(&[u16_at(0), u16_at(1 + max_gap)], &limits);
        assert_eq!(
            merged,
            vec![read(Holding, 0, max_gap + 2, &[0, 1])],
            "gap {max_gap}"
        );
        let split = plan(&[u16_at(0), u16_at(2 + max_gap)], &limits);
        assert_eq!(split.len(), 2, "gap {max_gap} + 1");
        // the same for bits
        assert_eq!(
            requests_per_cycle(&[coil_at(0), coil_at(1 + max_gap)], &limits),
            1
        );
        assert_eq!(
            requests_per_cycle(&[coil_at(0), coil_at(2 + max_gap)], &limits),
            2
        );
    }
    // the gap counts from the end of a 2-register value: f32 at 0 ends at 2
    let limits = Limits::with_gap(3);
    assert_eq!(requests_per_cycle(&[f32_at(0), u16_at(5)], &limits), 1);
    assert_eq!(requests_per_cycle(&[f32_at(0), u16_at(6)], &limits), 2);
}

#[test]
fn kinds_are_never_mixed_and_come_in_table_order() {
    let points = [
        pt(Input, 0, DataType::U16),
        u16_at(1),
        pt(Discrete, 0, DataType::Bool),
        coil_at(1),
        u16_at(0),
        coil_at(0),
    ];
    assert_eq!(
        plan(&points, &Limits::with_gap(16)),
        vec![
            read(Coil, 0, 2, &[5, 3]),
            read(Discrete, 0, 1, &[2]),
            read(Holding, 0, 2, &[4, 1]),
            read(Input, 0, 1, &[0]),
        ]
    );
}

#[test]
fn reads_are_ordered_by_address_within_a_table() {
    let points = [u16_at(500), u16_at(10), u16_at(300)];
    let reads = plan(&points, &Limits::with_gap(16));
    let starts: Vec<u16> = reads.iter().map(|r| r.address).collect();
    assert_eq!(starts, [10, 300, 500]);
    assert_eq!(reads[0].points, [1]);
}

#[test]
fn overlapping_points_are_all_kept() {
    // validation refuses these; the planner must still cover every point, once
    let points = [f32_at(10), u16_at(11), u16_at(10), f32_at(10), u16_at(12)];
    assert_eq!(
        plan(&points, &Limits::with_gap(0)),
        vec![read(Holding, 10, 3, &[2, 0, 3, 1, 4])]
    );
    // an f32 at 10 ends at 12: a point at 12 is adjacent to it, not to the u16 at 11
    let points = [f32_at(10), u16_at(11), u16_at(13)];
    assert_eq!(requests_per_cycle(&points, &Limits::with_gap(0)), 2);
}

#[test]
fn the_top_of_the_address_space() {
    let points = [u16_at(65_533), f32_at(65_534), coil_at(65_535)];
    let reads = plan(&points, &Limits::with_gap(0));
    assert_eq!(
        reads,
        vec![
            read(Coil, 65_535, 1, &[2]),
            read(Holding, 65_533, 3, &[0, 1]),
        ]
    );
    assert_eq!(reads[0].end(), 65_536);
    assert_eq!(reads[1].end(), 65_536);
    // past the address space (validation refuses it): planned as is, no overflow
    let reads = plan(&[f32_at(65_535)], &Limits::with_gap(0));
    assert_eq!(reads, vec![read(Holding, 65_535, 2, &[0])]);
}

#[test]
fn a_point_wider_than_the_limit_gets_its_own_read() {
    let tiny = Limits {
        max_registers: 1,
        max_bits: 0,
        max_gap: 10,
    };
    let points = [f32_at(0), u16_at(2), coil_at(0), coil_at(1)];
    assert_eq!(
        plan(&points, &tiny),
        vec![
            read(Coil, 0, 1, &[2]),
            read(Coil, 1, 1, &[3]),
            read(Holding, 0, 2, &[0]),
            read(Holding, 2, 1, &[1]),
        ]
    );
}

#[test]
fn range_of_locates_points_in_the_response() {
    let points = [u16_at(100), f32_at(103), coil_at(100)];
    let reads = plan(&points, &Limits::with_gap(16));
    let holding = &reads[1];
    assert_eq!(holding.range_of(&points[0]), Some(0..1));
    assert_eq!(holding.range_of(&points[1]), Some(3..5));
    assert_eq!(holding.range_of(&points[2]), None, "other table");
    assert_eq!(holding.range_of(&u16_at(99)), None);
    assert_eq!(holding.range_of(&f32_at(104)), None, "runs past the end");
}

// ---- properties against a brute-force optimum ----

/// Whether `group` (points of one kind) may form one request under the stated rules, checked
/// directly: any single point, or a span within the limit with small enough gaps.
fn feasible(points: &[Point], group: &[usize], limits: &Limits) -> bool {
    let mut sorted = group.to_vec();
    sorted.sort_by_key(|&i| (points[i].address, points[i].end()));
    let Some(&first) = sorted.first() else {
        return false;
    };
    if sorted.len() == 1 {
        return true;
    }
    let start = u32::from(points[first].address);
    let mut end = points[first].end();
    for &i in &sorted[1..] {
        let p = &points[i];
        if u32::from(p.address) > end + u32::from(limits.max_gap) {
            return false;
        }
        end = end.max(p.end());
    }
    end - start <= u32::from(limits.max_span(points[first].kind))
}

/// The fewest requests over splits of each table's address-sorted points into runs (DP).
fn optimum_by_runs(points: &[Point], limits: &Limits) -> usize {
    RegisterKind::ALL
        .iter()
        .map(|&kind| {
            let mut sorted: Vec<usize> = (0..points.len())
                .filter(|&i| points[i].kind == kind)
                .collect();
            sorted.sort_by_key(|&i| (points[i].address, points[i].end()));
            // best[j]: fewest requests for the first j points
            let mut best = vec![usize::MAX; sorted.len() + 1];
            best[0] = 0;
            for j in 1..=sorted.len() {
                for i in 0..j {
                    if best[i] != usize::MAX && feasible(points, &sorted[i..j], limits) {
                        best[j] = best[j].min(best[i] + 1);
                    }
                }
            }
            best[sorted.len()]
        })
        .sum()
}

/// The fewest requests over every partition of each table's points, runs or not.
fn optimum_by_partitions(points: &[Point], limits: &Limits) -> usize {
    fn search(
        points: &[Point],
        limits: &Limits,
        rest: &[usize],
        groups: &mut Vec<Vec<usize>>,
        best: &mut usize,
    ) {
        if groups.len() >= *best {
            return;
        }
        let Some((&next, rest)) = rest.split_first() else {
            if groups.iter().all(|g| feasible(points, g, limits)) {
                *best = groups.len();
            }
            return;
        };
        for g in 0..groups.len() {
            groups[g].push(next);
            search(points, limits, rest, groups, best);
            groups[g].pop();
        }
        groups.push(vec![next]);
        search(points, limits, rest, groups, best);
        groups.pop();
    }
    RegisterKind::ALL
        .iter()
        .map(|&kind| {
            let of_kind: Vec<usize> = (0..points.len())
                .filter(|&i| points[i].kind == kind)
                .collect();
            let mut best = of_kind.len();
            search(points, limits, &of_kind, &mut Vec::new(), &mut best);
            best
        })
        .sum()
}

fn any_point() -> impl Strategy<Value = Point> {
    let kind = proptest::sample::select(RegisterKind::ALL.to_vec());
    // at most 2 wide: then even overlapping points keep the ends monotone (see `plan`'s doc)
    let data_type = proptest::sample::select(vec![
        DataType::Bool,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::F32,
        DataType::Bits,
    ]);
    let address = prop_oneof![
        4 => 0u16..300,
        // dense: overlaps and adjacency
        2 => 0u16..30,
        // the top of the address space, ending at 65536
        1 => 65_520u16..=65_535,
    ];
    (kind, address, data_type).prop_map(|(kind, address, data_type)| {
        // validation gives bits the bool type; registers may hold any type
        let data_type = if kind.is_bit() {
            DataType::Bool
        } else {
            data_type
        };
        pt(kind, address, data_type)
    })
}

fn any_limits() -> impl Strategy<Value = Limits> {
    (1u16..=20, 1u16..=20, 0u16..20).prop_map(|(max_registers, max_bits, max_gap)| Limits {
        max_registers,
        max_bits,
        max_gap,
    })
}

/// Every structural promise of the module doc.
fn check_plan(points: &[Point], limits: &Limits, reads: &[Read]) -> Result<(), TestCaseError> {
    let mut seen = vec![0usize; points.len()];
    for r in reads {
        prop_assert!(!r.points.is_empty(), "empty read {:?}", r);
        let mut end = u32::from(r.address);
        let mut previous: Option<&Point> = None;
        for &i in &r.points {
            seen[i] += 1;
            let p = &points[i];
            prop_assert_eq!(p.kind, r.kind);
            prop_assert!(r.range_of(p).is_some(), "point {} outside {:?}", i, r);
            if let Some(q) = previous {
                prop_assert!(q.address <= p.address, "points out of order in {:?}", r);
                prop_assert!(
                    u32::from(p.address) <= end + u32::from(limits.max_gap),
                    "gap before point {} in {:?}",
                    i,
                    r
                );
            }
            end = end.max(p.end());
            previous = Some(p);
        }
        // tight: starts at the first point, ends at the furthest end
        prop_assert_eq!(r.address, points[r.points[0]].address);
        prop_assert_eq!(r.end(), end);
        prop_assert!(
            r.count <= limits.max_span(r.kind) || r.points.len() == 1,
            "{:?} over the limit",
            r
        );
    }
    prop_assert!(seen.iter().all(|&n| n == 1), "coverage {:?}", seen);
    let keys: Vec<_> = reads.iter().map(|r| (r.kind, r.address)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    prop_assert_eq!(keys, sorted);
    Ok(())
}

proptest! {
    #[test]
    fn plans_are_valid_and_minimal(
        points in proptest::collection::vec(any_point(), 0..=10),
        limits in any_limits(),
    ) {
        let reads = plan(&points, &limits);
        check_plan(&points, &limits, &reads)?;
        prop_assert_eq!(reads.len(), optimum_by_runs(&points, &limits));
        prop_assert_eq!(requests_per_cycle(&points, &limits), reads.len());
    }

    #[test]
    fn no_partition_beats_the_plan(
        points in proptest::collection::vec(any_point(), 0..=7),
        limits in any_limits(),
    ) {
        // the optimality argument covers requests that skip points, not only runs
        prop_assert_eq!(plan(&points, &limits).len(), optimum_by_partitions(&points, &limits));
    }

    #[test]
    fn wide_points_that_do_not_overlap_plan_minimally(
        layout in proptest::collection::vec((0u16..6, 0u8..8, any::<bool>()), 0..=7),
        kind in proptest::sample::select(vec![Holding, Coil]),
        limits in any_limits(),
    ) {
        // laid end to end: a gap, then a point of width 1..=8 (arrays, strings, 64-bit), or
        // two single-bit points of one register
        let mut points = Vec::new();
        let mut next = 0u16;
        for (gap, width, bits) in layout {
            let address = next + gap;
            if bits && kind == Holding {
                for bit in [0u8, 9] {
                    points.push(Point { bit: Some(bit), ..pt(Holding, address, DataType::Bool) });
                }
                next = address + 1;
            } else {
                let width = u16::from(width) + 1;
                let p = match (kind, width % 3) {
                    (Coil, _) => Point { count: width, ..pt(Coil, address, DataType::Bool) },
                    (_, 0) => Point { length: width, ..pt(Holding, address, DataType::String) },
                    (_, 1) => Point { count: width, ..pt(Holding, address, DataType::U16) },
                    _ if width >= 4 => pt(Holding, address, DataType::U64),
                    _ => Point { count: width, ..pt(Holding, address, DataType::Bits) },
                };
                next = address + p.width();
                points.push(p);
            }
        }
        let reads = plan(&points, &limits);
        check_plan(&points, &limits, &reads)?;
        prop_assert_eq!(reads.len(), optimum_by_runs(&points, &limits));
        prop_assert_eq!(reads.len(), optimum_by_partitions(&points, &limits));
    }

    #[test]
    fn splits_keep_every_point_once_and_stay_inside(
        addresses in proptest::collection::btree_set(0u16..200, 2..20),
        wide in any::<bool>(),
    ) {
        let points: Vec<Point> = addresses
            .iter()
            .map(|&a| if wide { pt(Holding, a * 2, DataType::F32) } else { u16_at(a) })
            .collect();
        let reads = plan(&points, &Limits::with_gap(300));
        for r in &reads {
            if let Some((a, b)) = split(r, &points) {
                prop_assert!(!a.points.is_empty() && !b.points.is_empty());
                let mut all = a.points.clone();
                all.extend(&b.points);
                prop_assert_eq!(&all, &r.points);
                for half in [&a, &b] {
                    prop_assert!(half.address >= r.address && half.end() <= r.end());
                    prop_assert!(half.count < r.count);
                    for &i in &half.points {
                        prop_assert!(half.range_of(&points[i]).is_some());
                    }
                }
            } else {
                prop_assert_eq!(r.points.len(), 1);
            }
        }
    }

    #[test]
    fn protocol_limits_hold_on_large_maps(
        addresses in proptest::collection::vec((0u16..3000, any::<bool>()), 0..60),
        max_gap in 0u16..40,
    ) {
        let points: Vec<Point> = addresses
            .iter()
            .map(|&(a, wide)| if wide { f32_at(a) } else { coil_at(a) })
            .collect();
        let limits = Limits::with_gap(max_gap);
        let reads = plan(&points, &limits);
        check_plan(&points, &limits, &reads)?;
        prop_assert_eq!(reads.len(), optimum_by_runs(&points, &limits));
    }
}

#[test]
fn split_cuts_at_the_largest_hole() {
    // 0, 1, 2, [hole of 7], 10, 11: the refused block is cut at the hole
    let points = [u16_at(0), u16_at(1), u16_at(2), u16_at(10), u16_at(11)];
    let reads = plan(&points, &Limits::with_gap(16));
    assert_eq!(reads, vec![read(Holding, 0, 12, &[0, 1, 2, 3, 4])]);
    let (a, b) = split(&reads[0], &points).expect("splits");
    assert_eq!(a, read(Holding, 0, 3, &[0, 1, 2]));
    assert_eq!(b, read(Holding, 10, 2, &[3, 4]));
    // no hole: the middle
    let (a, b) = split(&a, &points).expect("splits");
    assert_eq!(
        (a, b),
        (read(Holding, 0, 1, &[0]), read(Holding, 1, 2, &[1, 2]))
    );
    // a single point, or bits of one register, cannot be split
    assert_eq!(split(&read(Holding, 0, 1, &[0]), &points), None);
    let bits = [
        Point {
            bit: Some(1),
            ..u16_at(5)
        },
        Point {
            bit: Some(2),
            ..u16_at(5)
        },
    ];
    assert_eq!(split(&read(Holding, 5, 1, &[0, 1]), &bits), None);
}

#[test]
fn classes_group_points_by_poll_interval() {
    use std::time::Duration;
    let fast = Duration::from_millis(100);
    let device = crate::config::Device {
        name: "d".into(),
        transport: crate::config::Transport::Tcp(crate::config::HostPort {
            host: "h".into(),
            port: 502,
        }),
        unit: 1,
        poll: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        heartbeat: Duration::from_secs(60),
        max_gap: 16,
        address_base: 0,
        force_fc16: false,
        points: vec![
            u16_at(0),
            Point {
                poll: Some(fast),
                ..u16_at(1)
            },
            u16_at(2),
            Point {
                poll: Some(fast),
                ..u16_at(3)
            },
        ],
    };
    let classes = classes(&device);
    assert_eq!(
        classes,
        vec![
            Class {
                interval: fast,
                reads: vec![read(Holding, 1, 3, &[1, 3])]
            },
            Class {
                interval: Duration::from_secs(1),
                reads: vec![read(Holding, 0, 3, &[0, 2])]
            },
        ]
    );
}
