//! The drain against a real queue (SQLite in a temporary directory) and a scripted upstream
//! ([`Script`]) instead of a broker: what it hands over, in which order, and which rows it
//! deletes when.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Carry, Context, Drain, Outcome};
use crate::config::{Durability, Qos, Sequence};
use crate::store::{Queue, Record};
use crate::uplink::downlink::Downlinks;
use crate::uplink::session::{AckKind, Full, LinkEvent, Subscription, Upstream, Will};
use crate::uplink::status::LinkStatus;

type Error = Box<dyn std::error::Error>;
const WAIT: Duration = Duration::from_secs(10);

/// An upstream whose events the test sends, and which records what it is handed.
struct Script {
    handed: mpsc::UnboundedSender<(String, Bytes)>,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    disconnected: Arc<Mutex<bool>>,
}

impl Upstream for Script {
    fn try_publish(
        &self,
        topic: impl Into<String>,
        _qos: Qos,
        _retain: bool,
        payload: Bytes,
        _sequence: Option<(&str, i64)>,
    ) -> Result<(), Full> {
        self.handed.send((topic.into(), payload)).map_err(|_| Full)
    }

    fn try_subscribe(&self, _subs: &[Subscription]) -> Result<(), Full> {
        Ok(())
    }

    fn try_disconnect(&self) {
        *self
            .disconnected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
    }

    async fn poll(&mut self) -> Result<LinkEvent, String> {
        self.events
            .recv()
            .await
            .ok_or_else(|| "the test ended the connection".to_owned())
    }
}

fn context(queue: Queue) -> Context {
    let (downlink_tx, _) = mpsc::channel(8);
    Context {
        queue,
        status: Arc::new(LinkStatus::default()),
        window: 10,
        max_rate: None,
        sequence: Sequence::Off,
        will: Will {
            topic: "plant1/$agent/uplink".into(),
            offline: "offline",
            online: "online",
        },
        downlinks: Downlinks::new(Vec::new()),
        downlink_tx,
        beat: None,
    }
}

/// The next thing handed to the upstream, within [`WAIT`].
async fn handed(rx: &mut mpsc::UnboundedReceiver<(String, Bytes)>) -> Result<String, Error> {
    let (topic, _) = tokio::time::timeout(WAIT, rx.recv())
        .await?
        .ok_or("the drain stopped")?;
    Ok(topic)
}

/// The topics still queued, in id order, once the queue holds `depth` rows (within [`WAIT`]).
async fn queued_at(queue: &Queue, depth: u64) -> Result<Vec<String>, Error> {
    tokio::time::timeout(WAIT, async {
        while queue.stats().await.map(|s| s.depth).unwrap_or(u64::MAX) != depth {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .map_err(|_| format!("the queue never held {depth} rows"))?;
    let rows = queue.fetch(0, 100).await?;
    Ok(rows.into_iter().map(|r| r.record.topic).collect())
}

/// The upstream acknowledges `pkids` (PUBACK).
fn puback(events: &mpsc::UnboundedSender<LinkEvent>, pkids: [u16; 2]) -> Result<(), Error> {
    for pkid in pkids {
        events.send(LinkEvent::Ack {
            pkid,
            kind: AckKind::PubAck,
            refused: None,
        })?;
    }
    Ok(())
}

#[tokio::test]
async fn hands_rows_over_in_order_and_deletes_only_the_acknowledged_ones() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let queue = Queue::open(&dir.path().join("queue.db"), Durability::Normal)?;
    for t in ["t/1", "t/2", "t/3"] {
        queue
            .enqueue(Record {
                topic: t.into(),
                payload: Bytes::from_static(b"x"),
                qos: 1,
                retain: false,
            })
            .await?;
    }
    let ctx = context(queue.clone());
    let mut carry = Carry::default();
    let (handed_tx, mut handed_rx) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let disconnected = Arc::new(Mutex::new(false));
    let script = Script {
        handed: handed_tx,
        events: events_rx,
        disconnected: disconnected.clone(),
    };
    let cancel = CancellationToken::new();
    let drain = Drain::new(&ctx, &mut carry, script).run(&cancel);

    let test = async {
        events.send(LinkEvent::Connected)?;
        // The agent's `online` state first, then the rows in id order.
        assert_eq!(handed(&mut handed_rx).await?, "plant1/$agent/uplink");
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(handed(&mut handed_rx).await?);
        }
        assert_eq!(order, ["t/1", "t/2", "t/3"]);
        for pkid in 1..=4 {
            events.send(LinkEvent::Written { pkid })?;
        }
        // Written is not acknowledged: nothing is deleted. Acknowledge the birth and the second
        // row only: exactly that row goes.
        puback(&events, [1, 3])?;
        assert_eq!(queued_at(&queue, 2).await?, ["t/1", "t/3"]);
        puback(&events, [2, 4])?;
        assert_eq!(queued_at(&queue, 0).await?, Vec::<String>::new());
        cancel.cancel();
        Ok::<(), Error>(())
    };
    let (outcome, tested) = tokio::join!(drain, test);
    tested?;
    assert!(matches!(outcome, Outcome::Stopped), "{outcome:?}");
    assert!(
        *disconnected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        "a clean DISCONNECT on stop"
    );
    Ok(())
}
