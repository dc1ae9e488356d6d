//! TLS for `mqtts://` and `wss://` uplinks: rustls with the `ring` provider (no aws-lc, for ARM
//! builds).
//!
//! Trust comes from the configured `ca` PEM file, or else the system's root certificates. A
//! client certificate and key (PEM; the key PKCS#8, PKCS#1 or SEC1) make it mutual TLS, as AWS
//! IoT Core, EMQX and HiveMQ use. Every error names the file and what is wrong with it, at
//! start-up, before any connection is tried.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Why the TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate")]
    EmptyCa { path: PathBuf },
    #[error("CA file {path}: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("no system root certificates found (install ca-certificates or set uplink.ca)")]
    NoRoots,
    #[error("cannot read client certificate file {path}: {source}")]
    ReadCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("client certificate file {path} holds no PEM certificate")]
    EmptyCert { path: PathBuf },
    #[error("cannot read private key file {path}: {source}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("private key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("client certificate {cert} with key {key}: {reason}")]
    BadIdentity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client configuration trusting `ca` (PEM) or the system roots, presenting the client
/// certificate and key of `identity` when given.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsError::ReadCa {
                path: path.into(),
                source,
            })?;
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::BadCa {
                    path: path.into(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::EmptyCa { path: path.into() });
            }
            for cert in certs {
                roots.add(cert).map_err(|e| TlsError::BadCa {
                    path: path.into(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A single unparsable system certificate must not disable TLS altogether.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, private) = load_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| TlsError::BadIdentity {
                    cert: cert.into(),
                    key: key.into(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(Arc::new(config))
}

/// The certificate chain and private key of a client identity.
fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let pem = std::fs::read(cert).map_err(|source| TlsError::ReadCert {
        path: cert.into(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::ReadCert {
            path: cert.into(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::EmptyCert { path: cert.into() });
    }
    let pem = std::fs::read(key).map_err(|source| TlsError::ReadKey {
        path: key.into(),
        source,
    })?;
    let private = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::ReadKey {
            path: key.into(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey { path: key.into() })?;
    Ok((chain, private))
}
