//! The CONNECT handshake: read the CONNECT (within [`CONNECT_TIMEOUT`]), check it, authenticate
//! the client, open (or take over, or resume) its session, answer CONNACK, and resend what the
//! resumed session had in flight.
//!
//! Refusals always get a CONNACK with the code the specification names (MQTT 3.1.1 return
//! codes, MQTT 5 reason codes) before the connection closes, and a log line; bytes that are not
//! a CONNECT at all close the connection (MQTT-3.1.0-1, 3.1.4-1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::io::{Event, Io};
use super::{Client, ListenerCtx};
use crate::broker::access::Credentials;
use crate::broker::codec::{
    self, reason, topic, ConnAck, ConnAckProps, Connect, DecodeError, ErrorKind, Packet, Protocol,
};
use crate::broker::engine::{ClientInfo, Engine};
use crate::broker::message::{Publication, Publisher};
use crate::broker::session::Stage;
use crate::broker::stats::BrokerStats;

/// How long a new connection has to send its CONNECT.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the CONNECT did not arrive.
enum Missing {
    Closed,
    Malformed(DecodeError),
    Io(std::io::Error),
}

async fn read_connect<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<T>,
    max_packet_size: u32,
) -> Result<Box<Connect>, Missing> {
    loop {
        match codec::decode(io.input(), None, max_packet_size) {
            Ok(Some((Packet::Connect(c), used))) => {
                io.consume(used);
                io.input_done();
                return Ok(c);
            }
            Ok(Some(_)) => {
                return Err(Missing::Malformed(DecodeError::new(
                    ErrorKind::ProtocolError,
                    "the first packet must be CONNECT",
                )))
            }
            Ok(None) => {}
            Err(e) => return Err(Missing::Malformed(e)),
        }
        match io.read_more().await {
            Event::Input => {}
            Event::Failed(e) => return Err(Missing::Io(e)),
            _ => return Err(Missing::Closed),
        }
    }
}

/// A CONNACK refusing the client, in its protocol.
fn refusal(protocol: Protocol, code: u8, why: Option<&str>) -> Packet {
    let props = ConnAckProps {
        reason_string: why.filter(|_| protocol.is_v5()).map(str::to_owned),
        ..ConnAckProps::default()
    };
    Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        props,
    })
}

/// The code a refusal gets: the MQTT 5 reason code, or its 3.x return code.
fn refusal_code(protocol: Protocol, v5: u8, v3: u8) -> u8 {
    if protocol.is_v5() {
        v5
    } else {
        v3
    }
}

/// `auto-` and a random UUID-shaped id, as Mosquitto assigns.
fn assigned_id() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "auto-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Reads the CONNECT and answers it; `None` when the client was refused (or never spoke).
pub(super) async fn handshake<T: AsyncRead + AsyncWrite + Unpin + Send>(
    mut io: Io<T>,
    engine: &Arc<Engine>,
    listener: &Arc<ListenerCtx>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<Client<T>> {
    let settings = engine.settings();
    let read = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut io, settings.max_packet_size)) => r,
        () = shutdown.cancelled() => return None,
    };
    let connect = match read {
        Ok(Ok(c)) => c,
        Ok(Err(Missing::Malformed(e))) => {
            BrokerStats::bump(&engine.stats.connects_malformed);
            warn!(addr = %peer, listener = %listener.name, error = %e, "connection refused: bad CONNECT");
            if let Some((protocol, code)) = e.connack() {
                let why = e.to_string();
                codec::encode(&refusal(protocol, code, Some(&why)), protocol, io.output());
                io.close(true).await;
            }
            return None;
        }
        Ok(Err(Missing::Closed)) => {
            debug!(addr = %peer, "connection closed before CONNECT");
            return None;
        }
        Ok(Err(Missing::Io(e))) => {
            debug!(addr = %peer, error = %e, "connection failed before CONNECT");
            return None;
        }
        Err(_) => {
            BrokerStats::bump(&engine.stats.connect_timeouts);
            info!(addr = %peer, listener = %listener.name, timeout = ?CONNECT_TIMEOUT,
                "connection closed: no CONNECT in time");
            return None;
        }
    };
    let protocol = connect.protocol;
    let refuse = |io: &mut Io<T>, code: u8, why: &str| {
        codec::encode(&refusal(protocol, code, Some(why)), protocol, io.output());
    };

    if let Some(method) = &connect.props.authentication_method {
        let why = format!("authentication method {method:?} is not supported");
        warn!(addr = %peer, client_id = %connect.client_id, "client refused: {why}");
        refuse(&mut io, reason::BAD_AUTHENTICATION_METHOD, &why);
        io.close(true).await;
        return None;
    }
    if connect.client_id.is_empty() && !connect.clean_start && !protocol.is_v5() {
        // MQTT-3.1.3-8: an empty client id needs clean session 1.
        let why = "an empty client id needs clean session";
        warn!(addr = %peer, "client refused: {why}");
        refuse(&mut io, reason::V3_IDENTIFIER_REJECTED, why);
        io.close(true).await;
        return None;
    }
    // Keepalive: an MQTT 5 client asking for none or for more than the limit is told the
    // limit (Server Keep Alive), as Mosquitto does; an MQTT 3.x client above the limit is
    // refused (it has no way to learn it; Mosquitto 2.0.12 and later do the same), while a 3.x
    // keepalive of 0 stays allowed (Mosquitto 2.0.12 refuses it too, which the Paho suite and
    // many sensors would not survive).
    let mut keepalive = connect.keep_alive;
    let mut server_keep_alive = None;
    let max_ka = settings.max_keepalive;
    if keepalive > max_ka || keepalive == 0 {
        if protocol.is_v5() {
            keepalive = max_ka;
            server_keep_alive = Some(max_ka);
        } else if keepalive > max_ka {
            let why = format!("keepalive {keepalive}s is above max_keepalive {max_ka}s");
            warn!(addr = %peer, client_id = %connect.client_id, "client refused: {why}");
            refuse(&mut io, reason::V3_IDENTIFIER_REJECTED, &why);
            io.close(true).await;
            return None;
        }
    }
    let will_topic = connect.will.as_ref().map(|w| w.topic.as_str());
    // A will that is not a valid message: MQTT 5 gets the CONNACK code naming the problem,
    // MQTT 3.x (which has none for it) a closed connection, as from Mosquitto.
    let bad_will = connect.will.as_ref().and_then(|w| {
        if let Err(e) = topic::validate_name(&w.topic) {
            return Some((reason::TOPIC_NAME_INVALID, format!("will topic {:?}: {e}", w.topic)));
        }
        codec::check_payload_format(&w.props, &w.payload)
            .err()
            .map(|e| (reason::PAYLOAD_FORMAT_INVALID, format!("will payload: {e}")))
    });
    if let Some((code, why)) = bad_will {
        BrokerStats::bump(&engine.stats.connects_malformed);
        warn!(addr = %peer, client_id = %connect.client_id, "client refused: {why}");
        if protocol.is_v5() {
            refuse(&mut io, code, &why);
        }
        io.close(true).await;
        return None;
    }
    let access = engine.access();
    let verdict = access.authenticate(
        listener.anonymous(),
        Credentials {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            password: connect.password.as_deref(),
            will_topic,
        },
    );
    if let Err(refused) = verdict {
        BrokerStats::bump(&engine.stats.auth_failures);
        warn!(client_id = %connect.client_id, addr = %peer, user = connect.username.as_deref().unwrap_or(""),
            listener = %listener.name, reason = refused.as_str(),
            "client refused: {}", if refused.is_bad_credentials() { "bad username or password" } else { "not authorised" });
        // MQTT 3.x: 0x05 for every refusal, as Mosquitto answers; MQTT 5 names the cause.
        let code = match (protocol.is_v5(), refused.is_bad_credentials()) {
            (true, true) => reason::BAD_USERNAME_OR_PASSWORD,
            (true, false) => reason::NOT_AUTHORIZED,
            (false, _) => reason::V3_NOT_AUTHORIZED,
        };
        refuse(&mut io, code, refused.as_str());
        io.close(true).await;
        return None;
    }
    if !engine.admit_client(&connect.client_id) {
        BrokerStats::bump(&engine.stats.connects_over_limit);
        warn!(client_id = %connect.client_id, addr = %peer, max_connections = ?settings.max_connections,
            "client refused: max_connections reached");
        refuse(
            &mut io,
            refusal_code(protocol, reason::QUOTA_EXCEEDED, reason::V3_SERVER_UNAVAILABLE),
            "max_connections reached",
        );
        io.close(true).await;
        return None;
    }

    let connect = *connect;
    let assigned = connect.client_id.is_empty().then(assigned_id);
    let client_id: Arc<str> = assigned
        .as_deref()
        .unwrap_or(&connect.client_id)
        .into();
    let username: Option<Arc<str>> = connect.username.as_deref().map(Into::into);
    let expiry = if protocol.is_v5() {
        connect.props.session_expiry_interval
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    };
    let id = engine.connection_id();
    let (session, present) = engine.open_session(
        &client_id,
        connect.clean_start,
        protocol,
        expiry,
        username.clone(),
        id,
    );
    let will = connect.will.map(|w| {
        let delay = w.delay_interval;
        let msg = Arc::new(Publication::new(
            w.topic.into(),
            w.payload,
            w.qos,
            w.retain,
            w.props,
            Publisher::Will {
                client_id: client_id.clone(),
            },
        ));
        engine.keep_will(&client_id, &msg, delay);
        (msg, delay)
    });
    // No wait for the session row's commit before the CONNACK (Mosquitto does not persist it
    // before answering either, and clients reconnect on tight deadlines): the writer commits
    // in order, so every message later stored for this session commits after its row, and a
    // crash can lose only a session that has nothing queued yet.

    let window = usize::from(
        connect
            .props
            .receive_maximum
            .unwrap_or(u16::MAX)
            .min(settings.max_inflight),
    )
    .max(1);
    let mut props = ConnAckProps::default();
    if protocol.is_v5() {
        props.assigned_client_identifier = assigned.clone();
        props.server_keep_alive = server_keep_alive;
        props.receive_maximum = (settings.max_inflight < u16::MAX).then_some(settings.max_inflight);
        props.maximum_packet_size = Some(settings.max_packet_size);
        props.topic_alias_maximum = (settings.max_topic_alias > 0).then_some(settings.max_topic_alias);
    }
    let mut client = Client {
        io,
        engine: engine.clone(),
        settings: settings.clone(),
        id,
        peer,
        session: session.clone(),
        client_id: client_id.clone(),
        username: username.clone(),
        protocol,
        keepalive,
        last_input: Instant::now(),
        window,
        max_out: connect.props.maximum_packet_size.unwrap_or(u32::MAX),
        aliases_in: Vec::new(),
        aliases_out: super::outbound::Aliases::for_client(connect.props.topic_alias_maximum),
        problem_info: connect.props.request_problem_information,
        acks: Default::default(),
        will,
        expiry,
        more: false,
        packets_in: 1,
        packets_out: 0,
    };
    client.send(&Packet::ConnAck(ConnAck {
        session_present: present,
        code: reason::SUCCESS,
        props,
    }));
    engine.stats.connected();
    let info = ClientInfo {
        client_id: client_id.to_string(),
        addr: Some(peer),
        username: username.as_deref().map(str::to_owned),
        protocol: protocol_name(protocol),
        listener: listener.name.clone(),
        keepalive,
        clean_start: connect.clean_start,
        connected_at: std::time::SystemTime::now(),
        subscriptions: Vec::new(),
        queued: 0,
        inflight: 0,
    };
    engine.client_connected(id, info);
    if settings.connection_messages {
        info!(
            client_id = %client_id,
            addr = %peer,
            user = username.as_deref().unwrap_or(""),
            protocol = protocol_name(protocol),
            clean = connect.clean_start,
            keepalive,
            session_present = present,
            listener = %listener.name,
            "new client connected"
        );
    }
    if present {
        client.resend_inflight();
    }
    Some(client)
}

/// The protocol as Mosquitto's logs name it.
pub(super) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V31 => "mqttv31",
        Protocol::V311 => "mqttv311",
        Protocol::V5 => "mqttv5",
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Client<T> {
    /// A resumed session: its unacknowledged messages go again first, in their order, with
    /// DUP set (PUBREL for those whose PUBREC came) (MQTT-4.4.0-1).
    fn resend_inflight(&mut self) {
        let session = self.session.clone();
        let st = session.lock();
        let now = Instant::now();
        for f in &st.inflight {
            match f.stage {
                Stage::Published => {
                    self.write_delivery(&f.delivery, Some(f.packet_id), true, now);
                }
                Stage::Released => self.send(&Packet::PubRel(codec::Ack {
                    packet_id: f.packet_id,
                    code: reason::SUCCESS,
                    reason_string: None,
                    user_properties: Vec::new(),
                })),
            }
        }
    }
}
