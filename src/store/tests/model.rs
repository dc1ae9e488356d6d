//! The queue against a `VecDeque` model, driven the way the uplink drives it: a cursor that
//! advances with `fetch`, acks of some fetched rows (in any order), restarts, a clock that
//! moves, and random bounds (`max_messages`, `max_bytes`, `max_age`, either `on_full` policy).
//!
//! What it proves, for every sequence: each committed message is, at every moment, exactly one
//! of queued, acknowledged, or dropped by a bound (and counted under that bound's reason);
//! refusals are told to the caller and counted; what stays queued comes back in enqueue order
//! (so per topic too); ids strictly increase; the counters in the file match the model across
//! restarts.

use std::collections::VecDeque;
use std::sync::atomic::AtomicI64;

use proptest::prelude::*;

use super::super::queue::Clock;
use super::*;

const TOPICS: [&str; 3] = ["plant1/a/x", "plant1/b/yy", "plant1/$agent/state"];

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        topic: usize,
    },
    EnqueueMany {
        topics: Vec<usize>,
    },
    /// Fetch up to `limit` rows after the cursor and advance it.
    Fetch {
        limit: usize,
    },
    /// Ack the fetched, unacked rows picked by `mask` (bit `i % 8` for the i-th).
    Ack {
        mask: u8,
    },
    /// The wall clock moves on.
    Tick {
        ms: i64,
    },
    /// Restart: with `close`, cleanly; without, the handle is just dropped.
    Reopen {
        close: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TOPICS.len()).prop_map(|topic| Op::Enqueue { topic }),
        2 => prop::collection::vec(0..TOPICS.len(), 0..6)
            .prop_map(|topics| Op::EnqueueMany { topics }),
        3 => (0usize..6).prop_map(|limit| Op::Fetch { limit }),
        3 => any::<u8>().prop_map(|mask| Op::Ack { mask }),
        2 => (0i64..300).prop_map(|ms| Op::Tick { ms }),
        1 => any::<bool>().prop_map(|close| Op::Reopen { close }),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        prop::option::of(15u64..200),
        prop::option::of(1u64..8),
        prop::option::of(50u64..600),
        prop_oneof![Just(OnFull::DropOldest), Just(OnFull::RejectNew)],
    )
        .prop_map(|(max_bytes, max_messages, age, on_full)| Limits {
            max_bytes,
            max_messages,
            max_age: age.map(Duration::from_millis),
            on_full,
        })
}

/// What the queue must hold.
struct Model {
    limits: Limits,
    /// `(id, enqueued_ms, record)`, oldest first.
    rows: VecDeque<(i64, i64, Record)>,
    /// Every id handed out so far; new ones must be above all of them.
    max_id: i64,
    acked: HashSet<i64>,
    dropped: HashSet<i64>,
    /// The uplink's position: rows with ids up to here were fetched.
    cursor: i64,
    serial: u32,
    now: Arc<AtomicI64>,
    /// What the file's counters must say.
    totals: Totals,
}

impl Model {
    fn record(&mut self, topic: usize) -> Record {
        self.serial += 1;
        let mut r = record(TOPICS[topic], &self.serial.to_be_bytes());
        r.qos = (self.serial % 3) as u8;
        r.retain = self.serial.is_multiple_of(2);
        r
    }

    fn now(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }

    fn level(&self) -> (u64, u64) {
        let bytes = self.rows.iter().map(|(_, _, r)| size(r)).sum();
        (self.rows.len() as u64, bytes)
    }

    /// Every request is a batch of its own: expired rows go first.
    fn expire(&mut self) {
        let Some(cutoff) = self.limits.cutoff_ms(self.now()) else {
            return;
        };
        while self.rows.front().is_some_and(|(_, ms, _)| *ms < cutoff) {
            self.drop_front(Counter::DroppedMaxAge);
        }
    }

    fn drop_front(&mut self, reason: Counter) {
        if let Some((id, _, _)) = self.rows.pop_front() {
            self.dropped.insert(id);
            self.totals.add(reason, 1);
        }
    }

    /// The outcome the queue must give an enqueue of `records`.
    fn admit(&self, records: &[Record]) -> Result<(), Counter> {
        let (depth, bytes) = self.level();
        let sizes: Vec<u64> = records.iter().map(size).collect();
        if let Some(max) = self.limits.max_bytes {
            if sizes.iter().any(|&s| s > max) {
                return Err(Counter::RejectedTooLarge);
            }
        }
        if self.limits.on_full == OnFull::RejectNew {
            let over_count = self
                .limits
                .max_messages
                .is_some_and(|m| depth + sizes.len() as u64 > m);
            let over_bytes = self
                .limits
                .max_bytes
                .is_some_and(|m| bytes + sizes.iter().sum::<u64>() > m);
            if over_count || over_bytes {
                return Err(Counter::RejectedFull);
            }
        }
        Ok(())
    }

    fn enqueued(&mut self, records: Vec<Record>, ids: Vec<i64>) -> Result<(), TestCaseError> {
        prop_assert_eq!(records.len(), ids.len());
        let now = self.now();
        for (record, id) in records.into_iter().zip(ids) {
            prop_assert!(id > self.max_id, "id {} not above {}", id, self.max_id);
            self.max_id = id;
            self.rows.push_back((id, now, record));
            self.totals.add(Counter::Enqueued, 1);
        }
        if self.limits.on_full == OnFull::DropOldest {
            loop {
                let (depth, bytes) = self.level();
                if self.limits.max_messages.is_some_and(|m| depth > m) {
                    self.drop_front(Counter::DroppedMaxMessages);
                } else if self.limits.max_bytes.is_some_and(|m| bytes > m) {
                    self.drop_front(Counter::DroppedMaxBytes);
                } else {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn size(r: &Record) -> u64 {
    (r.topic.len() + r.payload.len()) as u64
}

async fn check_all(queue: &Queue, path: &Path, model: &mut Model) -> Result<(), TestCaseError> {
    model.expire();
    let rows = all_rows(queue).await.map_err(fail)?;
    let got: Vec<(i64, Record)> = rows.into_iter().map(|r| (r.id, r.record)).collect();
    let want: Vec<(i64, Record)> = model
        .rows
        .iter()
        .map(|(id, _, r)| (*id, r.clone()))
        .collect();
    prop_assert_eq!(&got, &want);
    // Nothing acknowledged or dropped comes back.
    prop_assert!(got
        .iter()
        .all(|(id, _)| !model.acked.contains(id) && !model.dropped.contains(id)));
    for topic in TOPICS {
        let of = |rows: &[(i64, Record)]| -> Vec<Bytes> {
            rows.iter()
                .filter(|(_, r)| r.topic == topic)
                .map(|(_, r)| r.payload.clone())
                .collect()
        };
        prop_assert_eq!(of(&got), of(&want));
    }
    let stats = queue.stats().await.map_err(fail)?;
    let (depth, bytes) = model.level();
    prop_assert_eq!((stats.depth, stats.bytes), (depth, bytes));
    prop_assert_eq!(stats.last_id, model.max_id);
    prop_assert_eq!(stats.oldest_ms, model.rows.front().map(|(_, ms, _)| *ms));
    // The file's counters, read as `ferrule queue stats` reads them.
    let snapshot = inspect::snapshot(path).map_err(fail)?;
    prop_assert_eq!(snapshot.totals, model.totals);
    prop_assert_eq!((snapshot.depth, snapshot.bytes), (depth, bytes));
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn open(path: &Path, model: &Model) -> Result<Queue, TestCaseError> {
    let clock = Clock::Fake(Arc::clone(&model.now));
    Queue::open_with_clock(path, Durability::Normal, model.limits, clock).map_err(fail)
}

async fn run(path: &Path, limits: Limits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model {
        limits,
        rows: VecDeque::new(),
        max_id: 0,
        acked: HashSet::new(),
        dropped: HashSet::new(),
        cursor: 0,
        serial: 0,
        now: Arc::new(AtomicI64::new(1_000_000)),
        totals: Totals::default(),
    };
    let mut queue = open(path, &model)?;
    model.max_id = queue.stats().await.map_err(fail)?.last_id;
    for op in ops {
        match op {
            Op::Enqueue { topic } => {
                let r = model.record(topic);
                enqueue(&queue, &mut model, vec![r]).await?;
            }
            Op::EnqueueMany { topics } => {
                let records: Vec<Record> = topics.iter().map(|&t| model.record(t)).collect();
                enqueue(&queue, &mut model, records).await?;
            }
            Op::Fetch { limit } => {
                let rows = queue.fetch(model.cursor, limit).await.map_err(fail)?;
                model.expire();
                let want: Vec<(i64, Record)> = model
                    .rows
                    .iter()
                    .filter(|(id, _, _)| *id > model.cursor)
                    .take(limit)
                    .map(|(id, _, r)| (*id, r.clone()))
                    .collect();
                let got: Vec<(i64, Record)> = rows.into_iter().map(|r| (r.id, r.record)).collect();
                prop_assert_eq!(&got, &want);
                if let Some((last, _)) = got.last() {
                    model.cursor = *last;
                }
            }
            Op::Ack { mask } => {
                model.expire();
                // Fetched rows, including ones dropped meanwhile (the uplink may ack those).
                let fetched: Vec<i64> = (model.rows.iter().map(|(id, _, _)| *id))
                    .chain(model.dropped.iter().copied())
                    .filter(|id| *id <= model.cursor)
                    .collect();
                let picked: Vec<i64> = fetched
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << (i % 8)) != 0)
                    .map(|(_, id)| *id)
                    .collect();
                // Acks may arrive in any order, and twice.
                let mut ids: Vec<i64> = picked.iter().rev().copied().collect();
                ids.extend(picked.first());
                queue.ack(ids).await.map_err(fail)?;
                let before = model.rows.len();
                model.rows.retain(|(id, _, _)| !picked.contains(id));
                let delivered = (before - model.rows.len()) as u64;
                model.totals.add(Counter::Delivered, delivered);
                model
                    .acked
                    .extend(picked.into_iter().filter(|id| !model.dropped.contains(id)));
            }
            Op::Tick { ms } => {
                model.now.fetch_add(ms, Ordering::Relaxed);
            }
            Op::Reopen { close } => {
                if close {
                    queue.close().await.map_err(fail)?;
                } else {
                    drop(queue);
                }
                queue = open(path, &model)?;
                prop_assert_eq!(queue.recovered_from(), None);
                // A restarted uplink starts over: unacked rows are sent again.
                model.cursor = 0;
                check_all(&queue, path, &mut model).await?;
            }
        }
    }
    check_all(&queue, path, &mut model).await?;
    queue.close().await.map_err(fail)?;
    let queue = open(path, &model)?;
    check_all(&queue, path, &mut model).await?;
    queue.close().await.map_err(fail)?;
    Ok(())
}

async fn enqueue(
    queue: &Queue,
    model: &mut Model,
    records: Vec<Record>,
) -> Result<(), TestCaseError> {
    let result = queue.enqueue_many(records.clone()).await;
    model.expire();
    match (model.admit(&records), result) {
        (Ok(()), Ok(ids)) => model.enqueued(records, ids),
        (Err(Counter::RejectedFull), Err(StoreError::Full { .. }))
        | (Err(Counter::RejectedTooLarge), Err(StoreError::TooLarge { .. })) => {
            let reason = match model.admit(&records) {
                Err(c) => c,
                Ok(()) => unreachable!("matched as a refusal"),
            };
            model.totals.add(reason, records.len() as u64);
            Ok(())
        }
        (want, got) => Err(TestCaseError::fail(format!(
            "enqueue of {} record(s): model says {want:?}, queue says {got:?}",
            records.len()
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn queue_behaves_like_the_model(
        limits in limits(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().map_err(fail)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(fail)?;
        runtime.block_on(run(&dir.path().join("queue.db"), limits, ops))?;
    }
}

#[tokio::test]
async fn unbounded_queue_keeps_everything() -> TestResult {
    // The model with no bounds at all (the proptest draws them at random).
    let dir = tempfile::tempdir()?;
    let ops = (0..20)
        .map(|i| Op::Enqueue { topic: i % 3 })
        .chain([Op::Tick { ms: 1 << 40 }, Op::Reopen { close: false }])
        .collect();
    run(&dir.path().join("q.db"), Limits::default(), ops)
        .await
        .map_err(|e| e.to_string().into())
}
