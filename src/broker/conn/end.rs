//! How a connection ends: the DISCONNECT an MQTT 5 client is sent (with the reason code the
//! specification names), the will, the session's fate, and the log line.
//!
//! Log lines follow Mosquitto's wording so that people who grep for "disconnected" or
//! "exceeded timeout" find them; each names the client id, its address and user.

use std::borrow::Cow;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::Client;
use crate::broker::codec::{self, reason, DecodeError};
use crate::broker::engine::WillAction;

/// Why a connection ended.
#[derive(Debug)]
pub(in crate::broker) enum End {
    /// DISCONNECT (0x00): the will is discarded.
    Disconnected,
    /// DISCONNECT 0x04: disconnect with will message.
    DisconnectedWithWill,
    /// The client closed the connection without DISCONNECT.
    Closed,
    Io(std::io::Error),
    /// Nothing from the client within one and a half keepalives.
    KeepAlive,
    /// Another connection took the session over.
    TakenOver,
    /// The broker is stopping.
    Shutdown,
    /// Bytes that are not a valid packet.
    Malformed(DecodeError),
    /// A valid packet the specification forbids here.
    Violation { code: u8, why: Cow<'static, str> },
}

impl End {
    pub fn protocol(why: impl Into<Cow<'static, str>>) -> End {
        End::Violation {
            code: reason::PROTOCOL_ERROR,
            why: why.into(),
        }
    }

    pub fn violation(code: u8, why: impl Into<Cow<'static, str>>) -> End {
        End::Violation {
            code,
            why: why.into(),
        }
    }

    /// The reason code of the DISCONNECT the server sends (MQTT 5), if it sends one.
    fn server_reason(&self) -> Option<(u8, Cow<'_, str>)> {
        match self {
            End::KeepAlive => Some((reason::KEEP_ALIVE_TIMEOUT, "keep alive timeout".into())),
            End::TakenOver => Some((reason::SESSION_TAKEN_OVER, "session taken over".into())),
            End::Shutdown => Some((
                reason::SERVER_SHUTTING_DOWN,
                "the broker is stopping".into(),
            )),
            End::Malformed(e) => Some((e.reason_code(), e.to_string().into())),
            End::Violation { code, why } => Some((*code, Cow::Borrowed(why))),
            End::Disconnected | End::DisconnectedWithWill | End::Closed | End::Io(_) => None,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Client<T> {
    /// Sends what is owed, closes the socket, settles the will and the session, logs.
    pub(super) async fn finish(mut self, end: End) {
        if let (true, Some((code, why))) = (self.protocol.is_v5(), end.server_reason()) {
            let why = self.problem_info.then_some(&*why);
            codec::encode_disconnect(self.io.output(), self.protocol, code, why);
        }
        // A client cut off for what it sent may still be sending.
        let drain = matches!(end, End::Malformed(_) | End::Violation { .. });
        self.io.close(drain).await;
        self.log(&end);
        let engine = self.engine.clone();
        // At shutdown the session and the will stay as stored: the next start finds the
        // client disconnected and publishes its will (it did lose its connection), unless
        // the client is back first.
        if !matches!(end, End::Shutdown) {
            let will = match (&end, self.will.take()) {
                (End::Disconnected, _) | (_, None) => WillAction::Drop,
                (_, Some((msg, delay))) => WillAction::Publish(msg, delay),
            };
            engine.closed(&self.session, self.id, will, self.expiry).await;
        }
        engine.client_gone(self.id);
        engine.stats.disconnected();
        engine.release();
    }

    fn log(&self, end: &End) {
        let user = self.username.as_deref().unwrap_or("");
        let (client_id, addr) = (&*self.client_id, self.peer);
        let quiet = !self.settings.connection_messages;
        match end {
            End::Malformed(e) => {
                warn!(client_id, %addr, user, error = %e, "client disconnected: malformed packet");
            }
            End::Violation { why, .. } => {
                warn!(client_id, %addr, user, error = %why, "client disconnected: protocol error");
            }
            _ if quiet => {}
            End::Disconnected | End::DisconnectedWithWill => {
                info!(client_id, %addr, user, "client disconnected");
            }
            End::Closed => info!(client_id, %addr, user, "client closed its connection"),
            End::Io(e) => {
                info!(client_id, %addr, user, error = %e, "socket error on client, disconnecting");
            }
            End::KeepAlive => info!(
                client_id,
                %addr,
                user,
                keepalive = self.keepalive,
                "client has exceeded timeout, disconnecting"
            ),
            End::TakenOver => info!(
                client_id,
                %addr,
                user,
                "client already connected, closing old connection"
            ),
            End::Shutdown => info!(client_id, %addr, user, "client disconnected: broker stopping"),
        }
    }
}
