//! TLS for the status page: the certificate and key of the broker's first TLS listener (the
//! page has no certificate of its own). Client certificates are not asked for: the page has
//! its own login.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::ListenerTls;

/// Why the page's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PageTlsError {
    #[error("status page TLS: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("status page TLS: {path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

fn read(path: &Path) -> Result<Vec<u8>, PageTlsError> {
    std::fs::read(path).map_err(|source| PageTlsError::Read {
        path: path.into(),
        source,
    })
}

/// The server configuration for the certificate of `tls`.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, PageTlsError> {
    let bad = |path: &Path, reason: String| PageTlsError::Bad {
        path: path.into(),
        reason,
    };
    let pem = read(&tls.cert)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(&tls.cert, "no PEM certificate".into()));
    }
    let pem = read(&tls.key)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| bad(&tls.key, e.to_string()))?
        .ok_or_else(|| bad(&tls.key, "no PEM private key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
