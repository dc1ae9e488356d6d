//! Listeners: bind (failing with a clear error), accept, and hand each connection — after TLS
//! and the WebSocket upgrade where configured — to its own task.
//!
//! Invariants:
//! - binding is separate from serving, so a reload can bind every new listener before it
//!   closes any old one, and give up with nothing changed when one cannot bind;
//! - a failed TLS handshake or WebSocket upgrade (bounded by [`HANDSHAKE_TIMEOUT`]) closes that
//!   connection only; accept errors (out of file descriptors) pause the listener briefly
//!   instead of spinning;
//! - connections outlive their listener: closing a listener on reload leaves its clients
//!   connected; they stop with the broker.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::conn::{self, ListenerCtx};
use super::engine::Engine;
use super::error::BrokerError;
use super::ratelog::RateLimit;
use super::stats::BrokerStats;
use crate::config::{BrokerConfig, Listener, ListenerProtocol};

/// How long a client has to complete the TLS handshake and the WebSocket upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `mqtt://…`, `mqtts://…`, `ws://…`, `wss://…` with the address clients connect to.
pub fn name(l: &Listener, addr: SocketAddr) -> String {
    let scheme = match (l.protocol, l.tls.is_some()) {
        (ListenerProtocol::Mqtt, false) => "mqtt",
        (ListenerProtocol::Mqtt, true) => "mqtts",
        (ListenerProtocol::Websockets, false) => "ws",
        (ListenerProtocol::Websockets, true) => "wss",
    };
    format!("{scheme}://{addr}")
}

/// A bound listener, not yet serving.
pub(super) struct Bound {
    pub config: Listener,
    pub socket: Arc<TcpListener>,
    pub addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

fn acceptor(l: &Listener) -> Result<Option<TlsAcceptor>, BrokerError> {
    match &l.tls {
        Some(t) => Ok(Some(TlsAcceptor::from(
            super::tls::server_config(t).map_err(|source| BrokerError::Tls {
                addr: l.bind,
                source,
            })?,
        ))),
        None => Ok(None),
    }
}

/// `l` on the socket of a listener already serving its address (a reload that changed its
/// TLS material or protocol keeps the socket: no moment without a listener).
pub(super) fn rebind(
    l: &Listener,
    socket: Arc<TcpListener>,
    addr: SocketAddr,
) -> Result<Bound, BrokerError> {
    Ok(Bound {
        config: l.clone(),
        socket,
        addr,
        tls: acceptor(l)?,
    })
}

/// Binds `l` (and loads its TLS material).
pub(super) fn bind(l: &Listener) -> Result<Bound, BrokerError> {
    let tls = acceptor(l)?;
    let std = std::net::TcpListener::bind(l.bind).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            BrokerError::AddrInUse { addr: l.bind }
        } else {
            BrokerError::Bind {
                addr: l.bind,
                source,
            }
        }
    })?;
    let bind_err = |source| BrokerError::Bind {
        addr: l.bind,
        source,
    };
    std.set_nonblocking(true).map_err(bind_err)?;
    let socket = TcpListener::from_std(std).map_err(bind_err)?;
    let addr = socket.local_addr().map_err(bind_err)?;
    Ok(Bound {
        config: l.clone(),
        socket: Arc::new(socket),
        addr,
        tls,
    })
}

/// A listener that is serving.
pub(super) struct Running {
    pub config: Listener,
    pub addr: SocketAddr,
    pub socket: Arc<TcpListener>,
    /// Stops accepting (connections go on).
    pub stop: CancellationToken,
}

/// Starts accepting on `bound`, on the broker's `thread`. Connections get `connections` (the broker's stop token) and
/// are tracked by `tracker`.
pub(super) fn serve(
    bound: Bound,
    broker: &BrokerConfig,
    engine: &Arc<Engine>,
    connections: &CancellationToken,
    tracker: &TaskTracker,
    thread: &tokio::runtime::Handle,
) -> Running {
    let ctx = Arc::new(ListenerCtx {
        name: name(&bound.config, bound.addr),
        anonymous: AtomicBool::new(broker.anonymous_allowed(&bound.config)),
    });
    let stop = connections.child_token();
    info!(addr = %bound.addr, listener = %ctx.name, "broker listening");
    let running = Running {
        config: bound.config.clone(),
        addr: bound.addr,
        socket: bound.socket.clone(),
        stop: stop.clone(),
    };
    let accept = Accept {
        ws: bound.config.protocol == ListenerProtocol::Websockets,
        tls: bound.tls,
        ctx,
        engine: engine.clone(),
        connections: connections.clone(),
        tracker: tracker.clone(),
        failures: Arc::new(RateLimit::new(10, Duration::from_secs(60))),
    };
    tracker.spawn_on(accept.run(bound.socket, stop), thread);
    running
}

/// Where a connection failed before MQTT began.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Tls,
    WebSocket,
}

struct Accept {
    ws: bool,
    tls: Option<TlsAcceptor>,
    ctx: Arc<ListenerCtx>,
    engine: Arc<Engine>,
    connections: CancellationToken,
    tracker: TaskTracker,
    failures: Arc<RateLimit>,
}

impl Accept {
    async fn run(self, socket: Arc<TcpListener>, stop: CancellationToken) {
        let this = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = socket.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    BrokerStats::bump(&this.engine.stats.sockets);
                    let _ = stream.set_nodelay(this.engine.settings().tcp_nodelay);
                    let this2 = this.clone();
                    this.tracker
                        .spawn(async move { this2.connection(stream, peer).await });
                }
                Err(e) => {
                    if let Some(suppressed) = this.failures.admit() {
                        warn!(listener = %this.ctx.name, error = %e, suppressed, "accept failed");
                    }
                    // Out of file descriptors and the like: wait instead of spinning.
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        debug!(listener = %this.ctx.name, "listener closed");
    }

    /// A plain MQTT connection is served inline; TLS and WebSocket connections in a box of
    /// their own. A task's future is as large as its largest state, and the TLS handshake
    /// and the stacked streams are several KiB: inline, every plain connection would carry
    /// them (Mosquitto needs under 2 KiB per idle client; so should we).
    async fn connection(&self, stream: TcpStream, peer: SocketAddr) {
        if self.tls.is_none() && !self.ws {
            return self.mqtt(stream, peer).await;
        }
        Box::pin(self.layered(stream, peer)).await;
    }

    /// TLS and/or WebSocket, then MQTT.
    async fn layered(&self, stream: TcpStream, peer: SocketAddr) {
        match &self.tls {
            None => self.upgrade(stream, peer).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                let tls = tokio::select! {
                    () = self.connections.cancelled() => return,
                    r = handshake => r,
                };
                match tls {
                    Ok(Ok(tls)) => self.upgrade(tls, peer).await,
                    Ok(Err(e)) => {
                        self.failed(Stage::Tls, peer, &format!("TLS handshake failed: {e}"))
                    }
                    Err(_) => self.failed(Stage::Tls, peer, "TLS handshake timed out"),
                }
            }
        }
    }

    /// WebSocket upgrade where configured, then MQTT.
    async fn upgrade<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !self.ws {
            return self.mqtt(stream, peer).await;
        }
        let upgrade = tokio::time::timeout(HANDSHAKE_TIMEOUT, super::ws::accept(stream));
        let ws = tokio::select! {
            () = self.connections.cancelled() => return,
            r = upgrade => r,
        };
        match ws {
            Ok(Ok(ws)) => self.mqtt(ws, peer).await,
            Ok(Err(e)) => self.failed(
                Stage::WebSocket,
                peer,
                &format!("WebSocket upgrade failed: {e}"),
            ),
            Err(_) => self.failed(Stage::WebSocket, peer, "WebSocket upgrade timed out"),
        }
    }

    async fn mqtt<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        conn::serve(
            self.engine.clone(),
            self.ctx.clone(),
            stream,
            peer,
            self.connections.clone(),
        )
        .await;
    }

    fn failed(&self, stage: Stage, peer: SocketAddr, why: &str) {
        let Some(suppressed) = self.failures.admit() else {
            return;
        };
        match stage {
            Stage::Tls => {
                info!(listener = %self.ctx.name, addr = %peer, suppressed, error = why, "TLS connection refused");
            }
            Stage::WebSocket => {
                info!(listener = %self.ctx.name, addr = %peer, suppressed, error = why, "WebSocket connection refused");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every idle client costs in its task: the future of a plain connection (TLS and
    /// WebSocket are boxed, the handshake and the goodbye too). Mosquitto needs under 2 KiB
    /// per idle client in all; this keeps the task well below that.
    #[tokio::test]
    async fn a_plain_connection_task_stays_small() {
        let accept = Arc::new(Accept {
            ws: false,
            tls: None,
            ctx: Arc::new(ListenerCtx {
                name: "mqtt://test".to_owned(),
                anonymous: AtomicBool::new(true),
            }),
            engine: crate::broker::engine::test_engine(),
            connections: CancellationToken::new(),
            tracker: TaskTracker::new(),
            failures: Arc::new(RateLimit::new(1, Duration::from_secs(1))),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let task = async move { accept.connection(stream, peer).await };
        let bytes = std::mem::size_of_val(&task);
        // 1,624 bytes in a release build, somewhat more in a debug build.
        assert!(bytes <= 3 * 1024, "a connection task takes {bytes} bytes");
    }
}
