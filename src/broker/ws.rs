//! MQTT over WebSockets (RFC 6455, subprotocol `mqtt`, as MQTT-6.0.0 describes): the HTTP
//! upgrade and a byte stream over binary frames, from the `async-tungstenite` and
//! `ws_stream_tungstenite` crates the uplink's WebSocket client already brings.
//!
//! Invariant: the `Sec-WebSocket-Protocol` answer names the subprotocol the client offered
//! (`mqtt`, or `mqttv3.1` for old clients); a client offering none is served too, like
//! Mosquitto does.

use async_tungstenite::tokio::{accept_hdr_async, TokioAdapter};
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_stream_tungstenite::WsStream;

/// A WebSocket connection as a byte stream.
pub(super) type Ws<S> = WsStream<TokioAdapter<S>>;

const PROTOCOL_HEADER: &str = "Sec-WebSocket-Protocol";

/// The subprotocol to answer with, from the client's offer.
fn chosen(offer: Option<&str>) -> Option<&str> {
    offer?
        .split(',')
        .map(str::trim)
        .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"))
}

/// Completes the HTTP upgrade on `stream`.
pub(super) async fn accept<S>(stream: S) -> Result<Ws<S>, async_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // The error type is tungstenite's callback signature (never returned here).
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offer = req
            .headers()
            .get(PROTOCOL_HEADER)
            .and_then(|v| v.to_str().ok());
        if let Some(value) = chosen(offer).and_then(|p| HeaderValue::from_str(p).ok()) {
            resp.headers_mut().insert(PROTOCOL_HEADER, value);
        }
        Ok(resp)
    };
    let ws = accept_hdr_async(stream, callback).await?;
    Ok(WsStream::new(ws))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mqtt_subprotocol_is_chosen_from_the_offer() {
        assert_eq!(chosen(Some("mqtt")), Some("mqtt"));
        assert_eq!(chosen(Some("chat, MQTT")), Some("MQTT"));
        assert_eq!(chosen(Some("mqttv3.1")), Some("mqttv3.1"));
        assert_eq!(chosen(Some("chat")), None);
        assert_eq!(chosen(None), None);
    }
}
