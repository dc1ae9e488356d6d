//! TLS termination in front of rmqtt, for `tls` listeners (MQTT over TLS, and secure
//! WebSockets).
//!
//! rmqtt can only serve connections its own listeners accept, and its own TLS pulls in aws-lc
//! (which ferrule avoids for ARM builds). So a TLS listener is two parts: this front, bound to
//! the configured address, which completes the TLS handshake with rustls and `ring` (checking
//! client certificates when configured), and a private rmqtt listener on `127.0.0.1:<random>`
//! that the front connects to for each client and copies bytes to and from.
//!
//! Invariants:
//! - every connection on a private listener was opened by a front: the front records the local
//!   port of its connection in the [`FrontTable`] *before* sending the first byte, and the
//!   broker refuses any CONNECT arriving on a private listener from a port not in the table
//!   (another local process connecting there directly gets CONNACK "not authorized");
//! - the table maps that port to the real client address, which logs and `$SYS` use;
//! - a failed handshake closes that connection only; the front keeps accepting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use super::ratelog::RateLimit;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections the fronts opened to the private listeners: local port → real client.
#[derive(Debug, Default)]
pub struct FrontTable {
    peers: Mutex<HashMap<u16, SocketAddr>>,
}

impl FrontTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<u16, SocketAddr>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The real client behind a connection from `127.0.0.1:<port>` to a private listener.
    pub fn peer(&self, port: u16) -> Option<SocketAddr> {
        self.lock().get(&port).copied()
    }
}

/// Removes a connection from the table when it ends.
struct Registration {
    table: Arc<FrontTable>,
    port: u16,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.lock().remove(&self.port);
    }
}

/// One TLS front: its listener and where it forwards to.
pub struct Front {
    pub listener: TcpListener,
    pub acceptor: TlsAcceptor,
    /// The private rmqtt listener.
    pub upstream: SocketAddr,
    pub table: Arc<FrontTable>,
    /// For logs: the listener's name.
    pub name: String,
    /// TCP_NODELAY on client connections (`broker.tcp_nodelay`).
    pub nodelay: bool,
}

impl Front {
    /// Accepts connections until the task is aborted.
    pub fn spawn(self) -> JoinHandle<()> {
        let failures = Arc::new(RateLimit::new(10, Duration::from_secs(60)));
        tokio::spawn(async move {
            loop {
                match self.listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(self.nodelay);
                        let conn = Connection {
                            acceptor: self.acceptor.clone(),
                            upstream: self.upstream,
                            table: self.table.clone(),
                            failures: failures.clone(),
                            listener: self.name.clone(),
                        };
                        tokio::spawn(conn.run(stream, peer));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        if failures.admit().is_some() {
                            info!(listener = %self.name, error = %e, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    table: Arc<FrontTable>,
    failures: Arc<RateLimit>,
    listener: String,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let mut tls =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return self.failed(peer, &e.to_string()),
                Err(_) => return self.failed(peer, "handshake timed out"),
            };
        let mut up = match TcpStream::connect(self.upstream).await {
            Ok(up) => up,
            Err(e) => return self.failed(peer, &format!("private listener unreachable: {e}")),
        };
        // The loopback hop adds no latency of its own; coalescing happens on the client side.
        let _ = up.set_nodelay(true);
        let port = match up.local_addr() {
            Ok(addr) => addr.port(),
            Err(e) => return self.failed(peer, &e.to_string()),
        };
        self.table.lock().insert(port, peer);
        let _registered = Registration {
            table: self.table.clone(),
            port,
        };
        if let Err(e) = tokio::io::copy_bidirectional(&mut tls, &mut up).await {
            debug!(%peer, error = %e, "TLS connection ended");
        }
    }

    fn failed(&self, peer: SocketAddr, why: &str) {
        if let Some(suppressed) = self.failures.admit() {
            info!(listener = %self.listener, addr = %peer, suppressed, error = why, "TLS connection refused");
        }
    }
}
