use std::sync::Arc;

use bytes::Bytes;
use rusqlite::Connection;

use super::*;
use crate::broker::codec::{PublishProps, QoS};
use crate::broker::message::{Delivery, Publication, Publisher, SubIds};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn publication(topic: &str, payload: &str, from: Publisher) -> Arc<Publication> {
    let props = PublishProps {
        correlation_data: Some(Bytes::from_static(&[0, 1, 255])),
        user_properties: vec![("k".into(), "v".into())],
        ..PublishProps::default()
    };
    Arc::new(Publication::new(
        topic.into(),
        Bytes::from(payload.to_owned()),
        QoS::AtLeastOnce,
        false,
        props,
        from,
    ))
}

fn client(id: &str) -> Publisher {
    Publisher::Client {
        client_id: id.into(),
        username: None,
        addr: None,
    }
}

fn delivery(msg: &Arc<Publication>, seq: u64) -> Delivery {
    let mut sub_ids = SubIds::None;
    sub_ids.add(7);
    Delivery {
        msg: msg.clone(),
        qos: QoS::AtLeastOnce,
        retain: false,
        sub_ids,
        seq,
    }
}

fn row(id: &str) -> SessionRow {
    SessionRow {
        client_id: id.into(),
        username: Some("alice".into()),
        protocol: 5,
        expiry: 3600,
        disconnected_ms: None,
    }
}

fn sub(filter: &str) -> SubRow {
    SubRow {
        filter: filter.into(),
        qos: 2,
        no_local: true,
        retain_as_published: false,
        retain_handling: 1,
        sub_id: 7,
    }
}

fn count(path: &std::path::Path, table: &str) -> Result<i64, rusqlite::Error> {
    Connection::open(path)?.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
}

#[test]
fn everything_written_is_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state/broker.db");
    let (store, loaded) = Store::open(&path)?;
    assert!(loaded.retained.is_empty() && loaded.sessions.is_empty());
    let s1: Arc<str> = "s1".into();
    let retained = publication("a/$state", "on", client("pub"));
    store.retain("a/$state".into(), Some(retained), false);
    store.retain("gone".into(), Some(publication("gone", "x", client("pub"))), false);
    store.retain("gone".into(), None, false);
    store.session(row("s1"));
    store.subscribe(&s1, sub("a/#"));
    store.subscribe(&s1, sub("b/+"));
    store.unsubscribe(&s1, "b/+");
    store.session(row("s2"));
    store.delete_session(&"s2".into());
    store.disconnected(&s1, 42, 120);
    let m1 = publication("a/1", "m1", client("pub"));
    let m2 = publication("a/2", "m2", client("pub"));
    store.enqueue(&s1, &delivery(&m1, 1));
    store.sent("s1", 1, 3, true);
    store.enqueue(&s1, &delivery(&m2, 2));
    store.qos2(&s1, 9, true);
    store.will(
        &s1,
        Some(StoredWill {
            msg: publication("will/s1", "gone", Publisher::Will { client_id: s1.clone() }),
            delay: 5,
        }),
    );
    store.close()?;

    let (store, loaded) = Store::open(&path)?;
    assert_eq!(loaded.retained.len(), 1);
    let r = &loaded.retained[0];
    assert_eq!((&*r.topic, &r.payload[..]), ("a/$state", &b"on"[..]));
    assert!(r.retain);
    let props = r.props.as_deref().expect("props kept");
    assert_eq!(props.user_properties, vec![("k".into(), "v".into())]);
    assert_eq!(loaded.sessions.len(), 1, "s2 was deleted");
    let s = &loaded.sessions[0];
    assert_eq!(s.row.disconnected_ms, Some(42));
    assert_eq!(s.row.expiry, 120);
    assert_eq!(s.subs, vec![sub("a/#")]);
    assert_eq!(s.qos2_in, vec![9]);
    assert_eq!(s.entries.len(), 2);
    let first = &s.entries[0];
    assert_eq!(&first.delivery.msg.payload[..], b"m1");
    assert_eq!(first.sent.map(|(id, rel)| (id.get(), rel)), Some((3, true)));
    assert_eq!(first.delivery.sub_ids.as_slice(), &[7]);
    assert_eq!(first.delivery.msg.from.client_id().map(|c| &**c), Some("pub"));
    assert!(s.entries[1].sent.is_none());
    assert_eq!(loaded.wills.len(), 1);
    assert_eq!(loaded.wills[0].will.delay, 5);
    assert!(matches!(loaded.wills[0].will.msg.from, Publisher::Will { .. }));
    store.close()?;
    Ok(())
}

#[test]
fn a_row_queued_and_acknowledged_within_one_batch_is_never_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.db");
    let (store, _) = Store::open(&path)?;
    let c: Arc<str> = "c".into();
    // The writer is idle: hand over a whole batch before it wakes up.
    let m = publication("t", "x", client("p"));
    store.enqueue(&c, &delivery(&m, 1));
    store.sent("c", 1, 1, false);
    store.dequeue("c", 1);
    store.close()?;
    assert_eq!(count(&path, "queue")?, 0);
    assert_eq!(count(&path, "msgs")?, 0);
    Ok(())
}

#[test]
fn a_message_queued_for_two_sessions_is_stored_once_until_both_acknowledge() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.db");
    let (store, _) = Store::open(&path)?;
    let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
    let m = publication("t", "shared", client("p"));
    store.enqueue(&a, &delivery(&m, 1));
    store.enqueue(&b, &delivery(&m, 1));
    store.close()?;
    assert_eq!((count(&path, "queue")?, count(&path, "msgs")?), (2, 1));

    let (store, loaded) = Store::open(&path)?;
    assert_eq!(loaded.sessions.len(), 0, "no session rows: the queue rows are dropped");
    assert_eq!(count(&path, "msgs")?, 0, "and so is the message");
    let m = publication("t", "shared", client("p"));
    store.session(row("a"));
    store.session(row("b"));
    store.enqueue(&a, &delivery(&m, 1));
    store.enqueue(&b, &delivery(&m, 1));
    store.flushed_blocking();
    store.dequeue("a", 1);
    store.flushed_blocking();
    assert_eq!((count(&path, "queue")?, count(&path, "msgs")?), (1, 1));
    store.dequeue("b", 1);
    store.close()?;
    assert_eq!((count(&path, "queue")?, count(&path, "msgs")?), (0, 0));
    Ok(())
}

#[test]
fn the_agents_retained_messages_are_written_at_close_and_tickets_advance() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.db");
    let (store, _) = Store::open(&path)?;
    let lazy = store.retain("p/d/t".into(), Some(publication("p/d/t", "21", Publisher::Agent)), true);
    store.flushed_blocking();
    assert!(store.committed() >= lazy);
    assert_eq!(count(&path, "retained")?, 0, "not yet: written lazily");
    store.close()?;
    assert_eq!(count(&path, "retained")?, 1, "written at close");
    Ok(())
}

#[test]
fn expired_messages_are_not_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.db");
    let (store, _) = Store::open(&path)?;
    let c: Arc<str> = "c".into();
    store.session(row("c"));
    let mut props = PublishProps::default();
    props.message_expiry_interval = Some(1);
    let m = Arc::new(Publication::new(
        "t".into(),
        Bytes::from_static(b"x"),
        QoS::AtLeastOnce,
        false,
        props,
        client("p"),
    ));
    store.enqueue(&c, &delivery(&m, 1));
    store.close()?;
    Connection::open(&path)?.execute("UPDATE msgs SET expires_ms = 1", [])?;
    let (store, loaded) = Store::open(&path)?;
    assert!(loaded.sessions[0].entries.is_empty());
    store.close()?;
    assert_eq!((count(&path, "queue")?, count(&path, "msgs")?), (0, 0));
    Ok(())
}

impl Store {
    /// Waits (blocking) until everything handed over is committed.
    fn flushed_blocking(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), self.flushed())
                .await
                .expect("the writer commits within 10 s");
        });
    }
}
