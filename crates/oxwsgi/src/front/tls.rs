//! TLS for listeners with `tls-cert` / `tls-key`: rustls with the `ring`
//! provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
//!
//! A [`CertStore`] holds one certificate and key behind an `ArcSwap`, so
//! [`CertStore::reload`] (on SIGHUP) makes every later handshake use the
//! new files while connections already open keep theirs. A reload that
//! fails (missing file, key not matching the certificate) keeps the
//! current certificate.
//!
//! A listener's rustls certificate resolver is a [`SniResolver`]: the
//! listener's own certificate, and the certificate of each virtual host on
//! the listener that has one, picked by the name the client sends (SNI) as
//! the host router matches `Host` ([`host_names::matches`]); a client that
//! sends no name, or one no host carries, gets the listener's own.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::model::{host_names, TlsFiles};

/// ALPN protocol ids, in preference order.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {message}")]
    Cert { path: String, message: String },
    #[error("cannot read the TLS key {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS certificate {cert} and key {key} do not go together: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One listener's certificate, reloadable.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// Loads the certificate chain and key, checking they match.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = load_certified_key(files)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// Reads the files again; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// A rustls server config answering with this store's certificate
    /// only. `http2`: offer `h2` by ALPN (else only `http/1.1`).
    pub fn server_config(self: &Arc<Self>, http2: bool) -> Result<Arc<ServerConfig>, TlsError> {
        SniResolver::new(Arc::clone(self)).server_config(http2)
    }
}

/// A listener's certificates: its own, and its virtual hosts' by name.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertStore>,
    /// (the host's lowercase names and patterns, its certificate), in
    /// config order: the first match wins.
    named: Vec<(Vec<String>, Arc<CertStore>)>,
}

impl SniResolver {
    pub fn new(default: Arc<CertStore>) -> Self {
        Self {
            default,
            named: Vec::new(),
        }
    }

    /// Serves `store` to clients that name one of `names`.
    pub fn add_host(&mut self, names: Vec<String>, store: Arc<CertStore>) {
        self.named.push((names, store));
    }

    /// The store for a client naming `name` (`None`: no SNI).
    fn store_for(&self, name: Option<&str>) -> &CertStore {
        name.and_then(|name| {
            self.named.iter().find_map(|(patterns, store)| {
                patterns
                    .iter()
                    .any(|p| host_names::matches(p, name))
                    .then_some(store.as_ref())
            })
        })
        .unwrap_or(&self.default)
    }

    /// A rustls server config answering with these certificates.
    /// `http2`: offer `h2` by ALPN (else only `http/1.1`).
    pub fn server_config(self, http2: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = if http2 {
            vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
        } else {
            vec![ALPN_HTTP11.to_vec()]
        };
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.store_for(hello.server_name()).current.load_full())
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_error = |message: String| TlsError::Cert {
        path: shown(&files.cert),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no CERTIFICATE block in the file".to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: shown(&files.key),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: shown(&files.cert),
        key: shown(&files.key),
        message: e.to_string(),
    })
}

/// Reloads every store, logging each outcome; returns how many failed.
pub fn reload_all(stores: &[Arc<CertStore>]) -> usize {
    let mut failed = 0;
    for store in stores {
        match store.reload() {
            Ok(()) => tracing::info!(
                "TLS certificate reloaded from {}",
                store.files().cert.display()
            ),
            Err(error) => {
                failed += 1;
                tracing::error!("{error}; keeping the current certificate");
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let err = CertStore::load(&files).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key: cert,
        };
        let err = CertStore::load(&files).unwrap_err().to_string();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
