//! The TLS server configuration of a broker listener: rustls with the `ring` provider (no
//! aws-lc, for ARM builds), from PEM files.
//!
//! With `ca`, client certificates signed by it are verified; with `require_certificate` a client
//! without one fails the handshake (mutual TLS), otherwise a certificate is optional (checked
//! when presented), as with Mosquitto's `cafile` and `require_certificate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::ListenerTls;

/// Why a listener's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path} holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{what} {path}: {reason}")]
    Bad {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS setup for {cert} failed: {source}")]
    Rustls {
        cert: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.into(),
        source,
    })
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Bad {
            what,
            path: path.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.into(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "TLS key file";
    let pem = read(what, path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Bad {
            what,
            path: path.into(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Empty {
            what,
            path: path.into(),
            expected: "private key",
        })
}

/// A server configuration with the certificate of `tls` and no client certificates, for
/// another service on the gateway that shows the broker's certificate (the status page),
/// offering `alpn` (e.g. `http/1.1`).
pub fn server_config_without_clients(
    tls: &ListenerTls,
    alpn: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rustls_err = |source| TlsError::Rustls {
        cert: tls.cert.clone(),
        source,
    };
    let chain = certs("TLS certificate file", &tls.cert)?;
    let key = key(&tls.key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls_err)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The rustls server configuration of a listener.
pub fn server_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rustls_err = |source| TlsError::Rustls {
        cert: tls.cert.clone(),
        source,
    };
    let chain = certs("TLS certificate file", &tls.cert)?;
    let key = key(&tls.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match &tls.ca {
        Some(ca) => {
            let what = "TLS CA file";
            let mut roots = RootCertStore::empty();
            for cert in certs(what, ca)? {
                roots.add(cert).map_err(|e| TlsError::Bad {
                    what,
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = if tls.require_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| TlsError::Bad {
                what,
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(rustls_err)?;
    Ok(Arc::new(config))
}
