//! One MQTT session with the upstream broker, the same whether it speaks MQTT 3.1.1 or 5:
//! rumqttc's two clients behind one small interface, and their events reduced to what the
//! drain needs ([`LinkEvent`]).
//!
//! Invariants:
//! - every [`Session`] is a fresh rumqttc client and event loop with a clean session: nothing
//!   of an earlier connection is carried over (the queue is the only source of truth);
//! - rumqttc's in-flight limit is the configured window, and the request channel has room for
//!   the window plus the control requests, so a `try_*` call fails only when the window is
//!   overfilled (a caller's bug) or the topic is invalid (checked before, see [`valid_topic`]);
//! - errors are turned into one sentence naming the broker and, when it can be told, the fix
//!   ([`describe`]).

use std::sync::Arc;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{QoS, TlsConfiguration, Transport};

use crate::config::{MqttVersion, Qos, Scheme, Uplink};

/// Largest packet sent: MQTT's own limit (the local broker already accepted the message).
const MAX_OUTGOING_PACKET: usize = 268_435_455;
/// Largest packet accepted from upstream (downlink messages).
const MAX_INCOMING_PACKET: usize = 16 << 20;
/// Requests besides the window: birth, subscribe, disconnect, some slack.
const CONTROL_REQUESTS: usize = 16;

/// The connection options, built once; each [`Options::session`] starts from them.
#[derive(Clone)]
pub(crate) enum Options {
    V4(Box<rumqttc::MqttOptions>),
    V5(Box<rumqttc::v5::MqttOptions>),
}

/// The agent's own will and birth on the upstream.
#[derive(Debug, Clone)]
pub(crate) struct Will {
    pub(crate) topic: String,
    pub(crate) offline: &'static str,
    pub(crate) online: &'static str,
}

impl Options {
    /// Options for `cfg`, with the password already read and the TLS client config built.
    pub(crate) fn new(
        cfg: &Uplink,
        will: &Will,
        password: Option<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Options {
        // WebSocket URLs go whole into rumqttc, which takes host, port and path from them.
        let host = if cfg.url.scheme.websocket() {
            cfg.url.to_string()
        } else {
            cfg.url.host.clone()
        };
        let transport = match (cfg.url.scheme, tls) {
            (Scheme::Mqtts, Some(tls)) => Transport::tls_with_config(TlsConfiguration::Rustls(tls)),
            (Scheme::Wss, Some(tls)) => Transport::wss_with_config(TlsConfiguration::Rustls(tls)),
            (Scheme::Ws, _) => Transport::Ws,
            _ => Transport::Tcp,
        };
        let window = cfg.window;
        let credentials = cfg
            .username
            .clone()
            .map(|user| (user, password.unwrap_or_default()));
        match cfg.protocol {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(cfg.client_id.clone(), host, cfg.url.port);
                o.set_keep_alive(cfg.keepalive)
                    .set_clean_session(true)
                    .set_inflight(window)
                    .set_request_channel_capacity(usize::from(window) + CONTROL_REQUESTS)
                    .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
                    .set_transport(transport)
                    .set_last_will(rumqttc::LastWill::new(
                        will.topic.clone(),
                        will.offline,
                        QoS::AtLeastOnce,
                        true,
                    ));
                if let Some((user, pass)) = credentials {
                    o.set_credentials(user, pass);
                }
                Options::V4(Box::new(o))
            }
            MqttVersion::V5 => {
                let mut o =
                    rumqttc::v5::MqttOptions::new(cfg.client_id.clone(), host, cfg.url.port);
                o.set_keep_alive(cfg.keepalive)
                    .set_clean_start(true)
                    .set_outgoing_inflight_upper_limit(window)
                    .set_request_channel_capacity(usize::from(window) + CONTROL_REQUESTS)
                    .set_max_packet_size(u32::try_from(MAX_INCOMING_PACKET).ok())
                    .set_transport(transport)
                    .set_last_will(p5::LastWill::new(
                        will.topic.clone(),
                        will.offline,
                        QoS5::AtLeastOnce,
                        true,
                        None,
                    ));
                if let Some((user, pass)) = credentials {
                    o.set_credentials(user, pass);
                }
                Options::V5(Box::new(o))
            }
        }
    }

    /// A fresh client and event loop (not connected yet: the first poll connects).
    pub(crate) fn session(&self) -> Session {
        Self::session_from(self)
    }

    /// [`Options::session`] with another will (QoS 1, not retained): the Sparkplug NDEATH,
    /// whose `bdSeq` changes with every connection.
    pub(crate) fn session_with_will(&self, topic: &str, payload: Bytes) -> Session {
        let mut options = self.clone();
        match &mut options {
            Options::V4(o) => {
                o.set_last_will(rumqttc::LastWill::new(
                    topic,
                    payload.to_vec(),
                    QoS::AtLeastOnce,
                    false,
                ));
            }
            Options::V5(o) => {
                o.set_last_will(p5::LastWill::new(
                    topic,
                    payload.to_vec(),
                    QoS5::AtLeastOnce,
                    false,
                    None,
                ));
            }
        }
        Self::session_from(&options)
    }

    fn session_from(options: &Options) -> Session {
        match options {
            Options::V4(o) => {
                let cap = o.request_channel_capacity();
                let (client, events) = rumqttc::AsyncClient::new((**o).clone(), cap);
                Session {
                    client: Client::V4(client),
                    events: Events::V4(Box::new(events)),
                }
            }
            Options::V5(o) => {
                let cap = o.request_channel_capacity();
                let (client, events) = rumqttc::v5::AsyncClient::new((**o).clone(), cap);
                Session {
                    client: Client::V5(client),
                    events: Events::V5(Box::new(events)),
                }
            }
        }
    }
}

pub(crate) struct Session {
    client: Client,
    events: Events,
}

enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

enum Events {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What happened on the link, as far as the drain cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LinkEvent {
    /// The broker accepted the connection.
    Connected,
    /// A PUBLISH was written, with this packet id (0 for QoS 0). Comes in the order the
    /// publishes were handed over.
    Written { pkid: u16 },
    /// An acknowledgement of one of our publishes.
    Ack {
        pkid: u16,
        kind: AckKind,
        /// MQTT 5: the broker refused the message (reason code ≥ 0x80).
        refused: Option<Refused>,
    },
    /// A message from a downlink subscription.
    Message(Incoming),
    /// The answer to the downlink SUBSCRIBE: the filters the broker refused, with why.
    Subscribed { refused: Vec<String> },
    /// Anything else (pings, our own acks of incoming messages...).
    Other,
}

/// Which acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the MQTT packet names
pub(crate) enum AckKind {
    /// PUBACK: the end of a QoS 1 publish.
    PubAck,
    /// PUBREC: the middle of a QoS 2 publish (only its refusal matters).
    PubRec,
    /// PUBCOMP: the end of a QoS 2 publish.
    PubComp,
}

/// A refusal by reason code (MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// e.g. `NotAuthorized`.
    pub(crate) reason: String,
    /// Worth sending again later (quota, packet id in use); otherwise it never will be taken.
    pub(crate) transient: bool,
}

/// A message received from upstream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incoming {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: Qos,
    pub(crate) retain: bool,
    pub(crate) response_topic: Option<String>,
    pub(crate) correlation_data: Option<Bytes>,
}

/// A downlink subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) filter: String,
    pub(crate) qos: Qos,
    /// Whether retained messages are wanted when subscribing.
    pub(crate) retained: bool,
}

/// The request channel is full: the caller overfilled the window.
#[derive(Debug)]
pub(crate) struct Full;

impl Upstream for Session {
    /// Hands a publish to rumqttc; `sequence` is an MQTT 5 user property to add.
    /// The topic is taken by value: rumqttc wants a `String`, and a drained row's can be
    /// moved rather than copied.
    fn try_publish(
        &self,
        topic: impl Into<String>,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        sequence: Option<(&str, i64)>,
    ) -> Result<(), Full> {
        match &self.client {
            Client::V4(c) => c
                .try_publish(topic.into(), qos4(qos), retain, payload)
                .map_err(|_| Full),
            Client::V5(c) => {
                let result = match sequence {
                    Some((key, seq)) => {
                        let props = p5::PublishProperties {
                            user_properties: vec![(key.to_owned(), seq.to_string())],
                            ..Default::default()
                        };
                        c.try_publish_with_properties(
                            topic.into(),
                            qos5(qos),
                            retain,
                            payload,
                            props,
                        )
                    }
                    None => c.try_publish(topic.into(), qos5(qos), retain, payload),
                };
                result.map_err(|_| Full)
            }
        }
    }

    /// Subscribes to the downlink filters in one SUBSCRIBE. MQTT 5 subscriptions are
    /// "no local" (our own publishes never come back down).
    fn try_subscribe(&self, subs: &[Subscription]) -> Result<(), Full> {
        if subs.is_empty() {
            return Ok(());
        }
        match &self.client {
            Client::V4(c) => {
                let filters = subs
                    .iter()
                    .map(|s| rumqttc::SubscribeFilter::new(s.filter.clone(), qos4(s.qos)));
                c.try_subscribe_many(filters).map_err(|_| Full)
            }
            Client::V5(c) => {
                let filters = subs.iter().map(|s| {
                    let mut f = p5::Filter::new(s.filter.clone(), qos5(s.qos));
                    f.nolocal = true;
                    f.preserve_retain = true;
                    f.retain_forward_rule = if s.retained {
                        p5::RetainForwardRule::OnEverySubscribe
                    } else {
                        p5::RetainForwardRule::Never
                    };
                    f
                });
                c.try_subscribe_many(filters).map_err(|_| Full)
            }
        }
    }

    /// Asks for a clean DISCONNECT (the will is not published).
    fn try_disconnect(&self) {
        let _ = match &self.client {
            Client::V4(c) => c.try_disconnect().map_err(|_| Full),
            Client::V5(c) => c.try_disconnect().map_err(|_| Full),
        };
    }

    /// The next event; an error ends the session (its text says why, see [`describe`]).
    async fn poll(&mut self) -> Result<LinkEvent, String> {
        match &mut self.events {
            Events::V4(e) => e.poll().await.map(event4).map_err(|e| describe4(&e)),
            Events::V5(e) => e.poll().await.map(event5).map_err(|e| describe5(&e)),
        }
    }
}

/// What the drain needs of the upstream connection: hand over publishes and the downlink
/// subscription, ask for a clean disconnect, and the next event. [`Session`] (rumqttc) in the
/// agent; a scripted stand-in in the drain's tests.
pub(crate) trait Upstream: Send {
    /// Hands a publish over; `sequence` is an MQTT 5 user property to add. [`Full`] when
    /// the request channel is full.
    fn try_publish(
        &self,
        topic: impl Into<String>,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        sequence: Option<(&str, i64)>,
    ) -> Result<(), Full>;
    /// Subscribes to the downlink filters in one SUBSCRIBE.
    fn try_subscribe(&self, subs: &[Subscription]) -> Result<(), Full>;
    /// Asks for a clean DISCONNECT (the will is not published).
    fn try_disconnect(&self);
    /// The next event; an error ends the session (its text says why).
    fn poll(&mut self) -> impl std::future::Future<Output = Result<LinkEvent, String>> + Send;
}

/// Whether rumqttc will take `topic` as a PUBLISH topic (it refuses wildcards; MQTT refuses
/// an empty topic without an alias).
pub(crate) fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

fn qos4(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos5(q: Qos) -> QoS5 {
    match q {
        Qos::AtMostOnce => QoS5::AtMostOnce,
        Qos::AtLeastOnce => QoS5::AtLeastOnce,
        Qos::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

fn from_qos4(q: QoS) -> Qos {
    match q {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
        QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

fn from_qos5(q: QoS5) -> Qos {
    match q {
        QoS5::AtMostOnce => Qos::AtMostOnce,
        QoS5::AtLeastOnce => Qos::AtLeastOnce,
        QoS5::ExactlyOnce => Qos::ExactlyOnce,
    }
}

fn event4(ev: rumqttc::Event) -> LinkEvent {
    use rumqttc::{Event, Outgoing, Packet, SubscribeReasonCode};
    match ev {
        Event::Incoming(Packet::ConnAck(_)) => LinkEvent::Connected,
        Event::Outgoing(Outgoing::Publish(pkid)) => LinkEvent::Written { pkid },
        Event::Incoming(Packet::PubAck(a)) => ack(a.pkid, AckKind::PubAck, None),
        Event::Incoming(Packet::PubRec(a)) => ack(a.pkid, AckKind::PubRec, None),
        Event::Incoming(Packet::PubComp(a)) => ack(a.pkid, AckKind::PubComp, None),
        Event::Incoming(Packet::Publish(p)) => LinkEvent::Message(Incoming {
            topic: p.topic,
            payload: p.payload,
            qos: from_qos4(p.qos),
            retain: p.retain,
            response_topic: None,
            correlation_data: None,
        }),
        Event::Incoming(Packet::SubAck(s)) => LinkEvent::Subscribed {
            refused: s
                .return_codes
                .iter()
                .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                .map(|c| format!("{c:?}"))
                .collect(),
        },
        _ => LinkEvent::Other,
    }
}

fn event5(ev: rumqttc::v5::Event) -> LinkEvent {
    use p5::{PubAckReason, PubCompReason, PubRecReason, SubscribeReasonCode};
    use rumqttc::v5::{Event, Incoming as In};
    use rumqttc::Outgoing;
    match ev {
        Event::Incoming(In::ConnAck(_)) => LinkEvent::Connected,
        Event::Outgoing(Outgoing::Publish(pkid)) => LinkEvent::Written { pkid },
        Event::Incoming(In::PubAck(a)) => {
            let refused = match a.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                r => Some(refusal(
                    &format!("{r:?}"),
                    matches!(
                        r,
                        PubAckReason::QuotaExceeded | PubAckReason::PacketIdentifierInUse
                    ),
                )),
            };
            ack(a.pkid, AckKind::PubAck, refused)
        }
        Event::Incoming(In::PubRec(a)) => {
            let refused = match a.reason {
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers => None,
                r => Some(refusal(
                    &format!("{r:?}"),
                    matches!(
                        r,
                        PubRecReason::QuotaExceeded | PubRecReason::PacketIdentifierInUse
                    ),
                )),
            };
            ack(a.pkid, AckKind::PubRec, refused)
        }
        Event::Incoming(In::PubComp(a)) => {
            // PUBCOMP can only say the packet id was unknown: the message was delivered
            // (PUBREC) and the broker lost track of the release; nothing to send again.
            let _ = matches!(a.reason, PubCompReason::Success);
            ack(a.pkid, AckKind::PubComp, None)
        }
        Event::Incoming(In::Publish(p)) => {
            let props = p.properties.unwrap_or_default();
            LinkEvent::Message(Incoming {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload,
                qos: from_qos5(p.qos),
                retain: p.retain,
                response_topic: props.response_topic,
                correlation_data: props.correlation_data,
            })
        }
        Event::Incoming(In::SubAck(s)) => LinkEvent::Subscribed {
            refused: s
                .return_codes
                .iter()
                .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                .map(|c| format!("{c:?}"))
                .collect(),
        },
        _ => LinkEvent::Other,
    }
}

fn ack(pkid: u16, kind: AckKind, refused: Option<Refused>) -> LinkEvent {
    LinkEvent::Ack {
        pkid,
        kind,
        refused,
    }
}

fn refusal(reason: &str, transient: bool) -> Refused {
    Refused {
        reason: reason.to_owned(),
        transient,
    }
}

/// One sentence for a 3.1.1 connection error, with the likely fix when there is one.
fn describe4(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    match e {
        E::ConnectionRefused(code) => refused_connect(
            &format!("{code:?}"),
            matches!(code, C::BadUserNamePassword | C::NotAuthorized),
        ),
        E::NetworkTimeout => "no answer from the broker (connect timeout)".to_owned(),
        other => from_chain(other),
    }
}

/// One sentence for an MQTT 5 connection error.
fn describe5(e: &rumqttc::v5::ConnectionError) -> String {
    use p5::ConnectReturnCode as C;
    use rumqttc::v5::{ConnectionError as E, StateError};
    match e {
        E::ConnectionRefused(code) | E::MqttState(StateError::ConnFail { reason: code }) => {
            refused_connect(
                &format!("{code:?}"),
                matches!(
                    code,
                    C::BadUserNamePassword | C::NotAuthorized | C::BadAuthenticationMethod
                ),
            )
        }
        E::Timeout(_) => "no answer from the broker (connect timeout)".to_owned(),
        other => from_chain(other),
    }
}

/// TLS and I/O errors may sit anywhere in rumqttc's error chain (handshake, or a TLS alert
/// read later as a decoding error): the deepest one that says something is used.
fn from_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut io: Option<&std::io::Error> = None;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return tls_text(tls);
        }
        if let Some(i) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = i.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()) {
                return tls_text(tls);
            }
            io = Some(i);
        }
        next = err.source();
    }
    match io {
        Some(io) => io_error(io),
        None => crate::errors::Chain(e).to_string(),
    }
}

fn refused_connect(code: &str, credentials: bool) -> String {
    if credentials {
        format!("the broker refused the connection: {code} (check uplink.username and the password, or the client certificate)")
    } else {
        format!("the broker refused the connection: {code}")
    }
}

fn io_error(io: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    // rustls reports handshake failures as I/O errors wrapping its own error.
    if let Some(tls) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_text(tls);
    }
    match io.kind() {
        K::ConnectionRefused => {
            "connection refused (is the broker running, is the port right?)".to_owned()
        }
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof => {
            format!("the broker closed the connection ({io}); if it requires a client certificate, check uplink.cert and uplink.key")
        }
        _ => format!("network error: {io}"),
    }
}

fn tls_text(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(why) => format!(
            "TLS: the broker's certificate is not trusted ({why:?}); check uplink.ca (the CA that signed the broker's certificate) and that the URL's host is in the certificate"
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "TLS: the broker refused the handshake ({alert:?}); if it requires a client certificate, check uplink.cert and uplink.key"
        ),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_rumqttc_would_refuse_are_caught_first() {
        assert!(valid_topic("plant1/a/$state"));
        assert!(valid_topic("$aws/things/x"));
        for bad in ["", "a/+", "a/#", "a\0b"] {
            assert!(!valid_topic(bad), "{bad:?}");
        }
    }

    #[test]
    fn tls_errors_name_the_setting_to_check() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let text = tls_text(&unknown);
        assert!(
            text.contains("UnknownIssuer") && text.contains("uplink.ca"),
            "{text}"
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        assert_eq!(io_error(&io), text);
        // As rumqttc reports an alert read after the handshake: deep in its error chain.
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let deep = rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                alert,
            )),
        ));
        assert!(
            describe4(&deep).contains("uplink.cert"),
            "{}",
            describe4(&deep)
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert!(tls_text(&alert).contains("uplink.cert"));
    }
}
