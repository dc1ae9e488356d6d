//! Persistent sessions across restarts: converting between rmqtt's session state and the
//! stored form of [`super::persist`], rebuilding stored sessions at start and saving their
//! queues at shutdown.
//!
//! A session is persistent when its client connected with clean session 0 (MQTT 3.1.1) or a
//! session expiry above 0 (MQTT 5). Rebuilt sessions are offline sessions, exactly as if their
//! client had just disconnected: messages published to their subscriptions are queued, and the
//! client's next connect (with clean session 0 / clean start 0) resumes them with
//! `session present`, its queued messages, and the redelivery of what was unacknowledged.
//! The remaining MQTT 5 session expiry counts from the stored disconnect time.
//!
//! Not kept: will messages of disconnected persistent sessions (a will is sent when a client
//! goes away, which ferrule did not see happen for a session rebuilt from the file).

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rmqtt::codec::types::Protocol;
use rmqtt::codec::v5::{PublishProperties, RetainHandling};
use rmqtt::codec::{v3, v5};
use rmqtt::context::ServerContext;
use rmqtt::inflight::{MomentStatus, OutInflightMessage};
use rmqtt::session::{Session, SessionState};
use rmqtt::types::{
    ClientId, CodecPublish, ConnectInfo, DisconnectInfo, From as RFrom, Id, ListenerId, Publish,
    QoS, SessionSubMap, SessionSubs, SubOptionsV3, SubOptionsV5, SubscriptionOptions, TopicFilter,
};
use rmqtt::utils::timestamp_millis;
use tracing::warn;

use super::escape::{escape, unescape};
use super::fitter::NEVER;
use super::persist::{
    MessageState, SessionRow, StoredMessage, StoredProps, StoredSession, StoredSubscription,
};

/// MQTT 3.1.1's protocol level in CONNECT.
const LEVEL_311: u8 = 4;

fn qos_from(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn level(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// The stored form of a message rmqtt holds.
pub fn stored_message(p: &Publish, from: &RFrom) -> StoredMessage {
    let props = p.properties.as_ref().map(|pp| StoredProps {
        payload_format_utf8: pp.is_utf8_payload.then_some(true),
        expiry_secs: pp.message_expiry_interval.map(NonZeroU32::get),
        content_type: pp.content_type.as_ref().map(|c| c.to_string()),
        response_topic: pp.response_topic.as_ref().map(|t| t.to_string()),
        correlation_data: pp.correlation_data.as_ref().map(|c| c.to_vec()),
        user_properties: pp
            .user_properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    let from_client =
        matches!(from.typ(), rmqtt::types::FromType::Custom).then(|| from.id.client_id.to_string());
    StoredMessage {
        topic: unescape(&p.topic).into_owned(),
        payload: p.payload.to_vec(),
        qos: level(p.qos),
        retain: p.retain,
        dup: p.dup,
        packet_id: p.packet_id.map(NonZeroU16::get),
        from_client,
        props: props.unwrap_or_default(),
        created_ms: p.create_time.unwrap_or_else(timestamp_millis),
    }
}

/// The rmqtt form of a stored message (topic escaped for rmqtt).
pub fn rmqtt_publish(m: &StoredMessage) -> Publish {
    let p = &m.props;
    let properties = PublishProperties {
        correlation_data: p.correlation_data.clone().map(Bytes::from),
        message_expiry_interval: p.expiry_secs.and_then(NonZeroU32::new),
        content_type: p.content_type.clone().map(Into::into),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| (k.clone().into(), v.clone().into()))
            .collect(),
        is_utf8_payload: p.payload_format_utf8.unwrap_or(false),
        response_topic: p.response_topic.clone().map(Into::into),
        ..PublishProperties::default()
    };
    let publish = CodecPublish {
        dup: m.dup,
        retain: m.retain,
        qos: qos_from(m.qos),
        topic: escape(&m.topic).into_owned().into(),
        packet_id: m.packet_id.and_then(NonZeroU16::new),
        payload: Bytes::from(m.payload.clone()),
        properties: Some(properties),
    };
    Publish::from(publish).create_time(m.created_ms)
}

/// The stored form of a subscription (`filter` as rmqtt holds it: escaped).
pub fn stored_subscription(filter: &str, opts: &SubscriptionOptions) -> StoredSubscription {
    let v5 = matches!(opts, SubscriptionOptions::V5(_));
    StoredSubscription {
        filter: unescape(filter).into_owned(),
        qos: level(opts.qos()),
        no_local: opts.no_local().filter(|_| v5),
        retain_as_published: opts.retain_as_published().filter(|_| v5),
        retain_handling: opts.retain_handling().map(u8::from),
        sub_id: opts.subscription_identifier().map(NonZeroU32::get),
    }
}

fn rmqtt_options(s: &StoredSubscription) -> SubscriptionOptions {
    if s.no_local.is_none() && s.retain_as_published.is_none() && s.retain_handling.is_none() {
        return SubscriptionOptions::V3(SubOptionsV3 {
            qos: qos_from(s.qos),
        });
    }
    SubscriptionOptions::V5(SubOptionsV5 {
        qos: qos_from(s.qos),
        no_local: s.no_local.unwrap_or(false),
        retain_as_published: s.retain_as_published.unwrap_or(false),
        retain_handling: match s.retain_handling {
            Some(1) => RetainHandling::AtSubscribeNew,
            Some(2) => RetainHandling::NoAtSubscribe,
            _ => RetainHandling::AtSubscribe,
        },
        id: s.sub_id.and_then(NonZeroU32::new),
    })
}

/// The session row of a connected client, `None` when its session is not persistent.
pub fn session_row(connect: &ConnectInfo, listener: u16, created_ms: i64) -> Option<SessionRow> {
    let (client_id, username, v5, expiry, receive_max) = match connect {
        ConnectInfo::V3(id, c) => {
            if c.clean_session {
                return None;
            }
            (&id.client_id, &id.username, false, u32::MAX, None)
        }
        ConnectInfo::V5(id, c) => {
            if c.session_expiry_interval_secs == 0 {
                return None;
            }
            (
                &id.client_id,
                &id.username,
                true,
                c.session_expiry_interval_secs,
                c.receive_max.map(NonZeroU16::get),
            )
        }
    };
    Some(SessionRow {
        client_id: client_id.to_string(),
        username: username.as_ref().map(|u| u.to_string()),
        v5,
        expiry_secs: expiry,
        receive_max,
        created_ms,
        disconnected_ms: None,
        listener,
    })
}

/// A CONNECT standing in for the stored session's last one (for rmqtt's bookkeeping).
fn connect_info(id: Id, row: &SessionRow) -> ConnectInfo {
    if row.v5 {
        ConnectInfo::V5(
            id,
            Box::new(v5::Connect {
                clean_start: false,
                session_expiry_interval_secs: row.expiry_secs,
                receive_max: row.receive_max.and_then(NonZeroU16::new),
                client_id: row.client_id.clone().into(),
                username: row.username.clone().map(Into::into),
                ..v5::Connect::default()
            }),
        )
    } else {
        ConnectInfo::V3(
            id,
            Box::new(v3::Connect {
                protocol: Protocol(LEVEL_311),
                clean_session: false,
                client_id: row.client_id.clone().into(),
                username: row.username.clone().map(Into::into),
                ..v3::Connect::default()
            }),
        )
    }
}

/// Time left before a stored session expires; `None` when it has expired.
pub fn remaining(row: &SessionRow, now_ms: i64) -> Option<Duration> {
    if !row.v5 || row.expiry_secs == u32::MAX {
        return Some(NEVER);
    }
    let since = row
        .disconnected_ms
        .map_or(0, |at| now_ms.saturating_sub(at).max(0));
    let left = i64::from(row.expiry_secs) * 1000 - since;
    (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// Rebuilds the stored sessions as offline sessions; returns the client ids of those that had
/// expired (to delete) and the number rebuilt.
pub async fn restore(
    scx: &ServerContext,
    stored: Vec<StoredSession>,
    listener_count: u16,
) -> (Vec<String>, usize) {
    let now = timestamp_millis();
    let mut expired = Vec::new();
    let mut rebuilt = 0;
    for s in stored {
        let Some(left) = remaining(&s.row, now) else {
            expired.push(s.row.client_id.clone());
            continue;
        };
        let client_id = s.row.client_id.clone();
        match rebuild(scx, s, left, listener_count).await {
            Ok(()) => rebuilt += 1,
            Err(e) => warn!(%client_id, error = %e, "cannot restore a persistent session"),
        }
    }
    (expired, rebuilt)
}

async fn rebuild(
    scx: &ServerContext,
    s: StoredSession,
    left: Duration,
    listener_count: u16,
) -> rmqtt::Result<()> {
    // Listener ids are 1-based; a session from a listener that is gone goes to the first.
    let lid: ListenerId = if s.row.listener < listener_count {
        s.row.listener + 1
    } else {
        1
    };
    let listen_cfg = scx
        .listen_cfgs
        .get(&lid)
        .map(|c| c.value().clone())
        .ok_or_else(|| anyhow_error(format!("no listener {lid}")))?;
    let id = Id::new(
        scx.node.id(),
        lid,
        None,
        None,
        ClientId::from(s.row.client_id.clone()),
        s.row.username.clone().map(Into::into),
    );
    let connect = Arc::new(connect_info(id.clone(), &s.row));
    let fitter =
        scx.extends
            .fitter_mgr()
            .await
            .create(connect.clone(), id.clone(), listen_cfg.clone());
    let mut subs = SessionSubMap::default();
    for sub in &s.subscriptions {
        subs.insert(
            TopicFilter::from(escape(&sub.filter).into_owned()),
            rmqtt_options(sub),
        );
    }
    let disconnected = s.row.disconnected_ms.unwrap_or_else(timestamp_millis);
    let session = Session::new(
        id.clone(),
        scx.clone(),
        fitter.max_mqueue_len(),
        listen_cfg,
        fitter.clone(),
        None,
        fitter.max_inflight(),
        s.row.created_ms,
        connect,
        false,
        false,
        false,
        s.row.created_ms,
        SessionSubs::from(subs.clone()),
        Some(DisconnectInfo::new(disconnected)),
        None,
    )
    .await?;
    let system = RFrom::from_system(id.clone());
    for (state, m) in &s.messages {
        let from = match &m.from_client {
            Some(c) => RFrom::from_custom(Id::new(
                scx.node.id(),
                0,
                None,
                None,
                ClientId::from(c.clone()),
                None,
            )),
            None => system.clone(),
        };
        let publish = rmqtt_publish(m);
        let status = match state {
            MessageState::Queued => None,
            MessageState::AwaitingAck => Some(MomentStatus::UnAck),
            MessageState::AwaitingRec => Some(MomentStatus::UnReceived),
            MessageState::AwaitingComp => Some(MomentStatus::UnComplete),
        };
        match status {
            None => {
                if session.deliver_queue().push((from, publish)).is_err() {
                    warn!(client_id = %id.client_id, "restored queue is over max_queued_messages; message dropped");
                }
            }
            Some(status) => {
                session
                    .out_inflight()
                    .write()
                    .await
                    .push_back(OutInflightMessage::new(status, from, publish));
            }
        }
    }
    let tx = SessionState::offline_restart(session.clone(), left).await?;
    let mut entry = scx.extends.shared().await.entry(id.clone());
    entry.set(session, tx).await?;
    let router = scx.extends.router().await;
    for (filter, opts) in subs {
        router.add(&filter, id.clone(), opts).await?;
    }
    Ok(())
}

fn anyhow_error(message: String) -> rmqtt::Error {
    rmqtt::Error::msg(message)
}

/// Takes the queued and in-flight messages of every persistent session (at shutdown: the
/// queues are emptied).
pub async fn take_messages(
    scx: &ServerContext,
) -> Vec<(String, Vec<(MessageState, StoredMessage)>)> {
    let sessions: Vec<Session> = {
        let shared = scx.extends.shared().await;
        shared.iter().filter_map(|entry| entry.session()).collect()
    };
    let mut out = Vec::new();
    for session in sessions {
        let Ok(connect) = session.connect_info().await else {
            continue;
        };
        if session_row(&connect, 0, 0).is_none() {
            continue;
        }
        let mut messages = Vec::new();
        let inflight = session
            .out_inflight()
            .write()
            .await
            .clone_inflight_messages();
        for m in inflight {
            let state = match m.status {
                MomentStatus::UnAck => MessageState::AwaitingAck,
                MomentStatus::UnReceived => MessageState::AwaitingRec,
                MomentStatus::UnComplete => MessageState::AwaitingComp,
            };
            messages.push((state, stored_message(&m.publish, &m.from)));
        }
        while let Some((from, publish)) = session.deliver_queue().pop() {
            messages.push((MessageState::Queued, stored_message(&publish, &from)));
        }
        if !messages.is_empty() {
            out.push((session.id.client_id.to_string(), messages));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v5: bool, expiry: u32, disconnected: Option<i64>) -> SessionRow {
        SessionRow {
            client_id: "c".into(),
            username: None,
            v5,
            expiry_secs: expiry,
            receive_max: None,
            created_ms: 0,
            disconnected_ms: disconnected,
            listener: 0,
        }
    }

    #[test]
    fn remaining_session_expiry() {
        assert_eq!(
            remaining(&row(false, u32::MAX, Some(0)), 1_000_000),
            Some(NEVER)
        );
        assert_eq!(
            remaining(&row(true, u32::MAX, Some(0)), 1_000_000),
            Some(NEVER)
        );
        assert_eq!(
            remaining(&row(true, 60, Some(100_000)), 130_000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(remaining(&row(true, 60, Some(100_000)), 160_000), None);
        assert_eq!(
            remaining(&row(true, 60, None), 1),
            Some(Duration::from_secs(60)),
            "connected at shutdown: the whole expiry is left"
        );
    }

    #[test]
    fn messages_and_subscriptions_round_trip_through_rmqtt_types() {
        let m = StoredMessage {
            topic: "a/$state".into(),
            payload: b"x".to_vec(),
            qos: 2,
            retain: true,
            dup: true,
            packet_id: Some(9),
            from_client: None,
            props: StoredProps {
                expiry_secs: Some(5),
                response_topic: Some("r".into()),
                correlation_data: Some(vec![1, 2]),
                user_properties: vec![("k".into(), "v".into())],
                content_type: Some("text/plain".into()),
                payload_format_utf8: Some(true),
            },
            created_ms: 77,
        };
        let p = rmqtt_publish(&m);
        assert_eq!(&*p.topic, "a/\u{FF04}$state", "escaped for rmqtt");
        let system = RFrom::from_system(Id::new(1, 0, None, None, ClientId::from("x"), None));
        assert_eq!(stored_message(&p, &system), m);
        for sub in [
            StoredSubscription {
                filter: "a/+/$state".into(),
                qos: 1,
                no_local: None,
                retain_as_published: None,
                retain_handling: None,
                sub_id: None,
            },
            StoredSubscription {
                filter: "b/#".into(),
                qos: 2,
                no_local: Some(true),
                retain_as_published: Some(true),
                retain_handling: Some(2),
                sub_id: Some(12),
            },
        ] {
            let opts = rmqtt_options(&sub);
            assert_eq!(stored_subscription(&escape(&sub.filter), &opts), sub);
        }
    }
}
