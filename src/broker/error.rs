//! [`BrokerError`]: why the embedded broker could not start or apply a section (bind, files,
//! TLS, persistence), each naming the address or the config key.

use std::net::SocketAddr;

use super::acl::AclError;
use super::passwd::PasswdError;
use super::persist::PersistError;
use super::tls::TlsError;

/// Errors of the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: address already in use (is another MQTT broker such as mosquitto running? change broker.listeners[].bind)")]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("broker.password_file: {0}")]
    Passwd(#[from] PasswdError),
    #[error("broker.acl_file: {0}")]
    Acl(#[from] AclError),
    #[error("TLS listener {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: TlsError,
    },
    #[error("broker.persistence: {0}")]
    Persist(#[from] PersistError),
    #[error("cannot start the broker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("message refused on {topic}: {reason}")]
    Refused { topic: String, reason: String },
}
