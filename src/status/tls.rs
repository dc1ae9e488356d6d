//! TLS for the status page: the certificate and key of the broker's first TLS listener (the
//! page has no certificate of its own), read and checked by the broker's own TLS code. Client
//! certificates are not asked for: the page has its own login.

use std::sync::Arc;

use rustls::ServerConfig;

pub use crate::broker::tls::TlsError as PageTlsError;
use crate::config::ListenerTls;

/// The server configuration for the certificate of `tls`, offering HTTP/1.1.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, PageTlsError> {
    crate::broker::tls::server_config_without_clients(tls, b"http/1.1")
}
