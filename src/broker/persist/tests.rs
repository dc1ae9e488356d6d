use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn message(topic: &str, payload: &str) -> StoredMessage {
    StoredMessage {
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        qos: 1,
        retain: false,
        dup: false,
        packet_id: None,
        from_client: Some("pub1".into()),
        props: StoredProps {
            expiry_secs: Some(60),
            correlation_data: Some(vec![0, 1, 255]),
            user_properties: vec![("k".into(), "v".into())],
            ..StoredProps::default()
        },
        created_ms: 1_700_000_000_000,
    }
}

fn session(id: &str) -> SessionRow {
    SessionRow {
        client_id: id.into(),
        username: Some("alice".into()),
        v5: true,
        expiry_secs: 3600,
        receive_max: Some(10),
        created_ms: 1,
        disconnected_ms: None,
        listener: 0,
    }
}

fn sub(filter: &str) -> StoredSubscription {
    StoredSubscription {
        filter: filter.into(),
        qos: 2,
        no_local: Some(true),
        retain_as_published: Some(false),
        retain_handling: Some(1),
        sub_id: Some(7),
    }
}

#[test]
fn everything_written_is_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state/broker.db");
    let (store, loaded) = Store::open(&path)?;
    assert!(loaded.retained.is_empty() && loaded.sessions.is_empty());
    let mut retained = message("a/$state", "on");
    retained.retain = true;
    retained.from_client = None;
    store.retain("a/$state".into(), Some(retained.clone()));
    store.retain("gone".into(), Some(message("gone", "x")));
    store.retain("gone".into(), None);
    store.session(session("s1"));
    store.subscribe("s1".into(), sub("a/#"));
    store.subscribe("s1".into(), sub("b/+"));
    store.unsubscribe("s1".into(), "b/+".into());
    store.session(session("s2"));
    store.disconnected("s1".into(), 42, 120);
    store.delete_session("s2".into());
    let mut inflight = message("a/1", "m1");
    inflight.packet_id = Some(3);
    inflight.dup = true;
    store.save_messages(vec![(
        "s1".into(),
        vec![
            (MessageState::AwaitingComp, inflight.clone()),
            (MessageState::Queued, message("a/2", "m2")),
        ],
    )]);
    store.close()?;

    let (store, loaded) = Store::open(&path)?;
    assert_eq!(loaded.retained.len(), 1);
    let mut want = retained;
    want.qos = 1;
    assert_eq!(loaded.retained[0], want);
    assert_eq!(loaded.sessions.len(), 1);
    let s = &loaded.sessions[0];
    let mut row = session("s1");
    row.disconnected_ms = Some(42);
    row.expiry_secs = 120;
    assert_eq!(s.row, row);
    assert_eq!(s.subscriptions, vec![sub("a/#")]);
    assert_eq!(
        s.messages,
        vec![
            (MessageState::AwaitingComp, inflight),
            (MessageState::Queued, message("a/2", "m2")),
        ]
    );
    store.close()?;

    // Messages are read back once: they are in memory again after a start.
    let (store, loaded) = Store::open(&path)?;
    assert!(loaded.sessions[0].messages.is_empty());
    assert_eq!(loaded.sessions[0].subscriptions.len(), 1);
    store.close()?;
    Ok(())
}

#[test]
fn changes_are_committed_without_close_within_the_flush_interval() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.db");
    let (store, _) = Store::open(&path)?;
    store.session(session("s1"));
    // Another connection sees the row once the writer committed (no close).
    let reader = Connection::open(&path)?;
    let found = crate::broker::persist::tests::wait(|| {
        reader
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get::<_, i64>(0))
            .ok()
            .filter(|n| *n == 1)
    });
    assert_eq!(found, Some(1));
    store.close()?;
    Ok(())
}

/// Polls `check` for up to 10 s (the writer commits within FLUSH_INTERVAL).
fn wait<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unreadable_file_is_moved_aside_not_deleted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.db");
    std::fs::write(
        &path,
        b"this is not a database, it is a text file of some length......",
    )?;
    let (store, loaded) = Store::open(&path)?;
    let aside = loaded.moved_aside.expect("moved aside");
    assert_eq!(
        std::fs::read(&aside)?,
        b"this is not a database, it is a text file of some length......"
    );
    assert!(aside
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("broker.db.corrupt-")));
    store.session(session("s"));
    store.close()?;
    let (_, loaded) = Store::open(&path)?;
    assert_eq!(loaded.sessions.len(), 1);
    Ok(())
}
