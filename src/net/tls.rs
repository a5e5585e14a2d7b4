//! Upstream TLS trust: the system roots plus `AUTHSOME_UPSTREAM_CA` (a PEM file
//! path, or PEM text). authsome's own per-run CA is never added here, so the
//! proxy cannot be tricked into trusting a certificate it minted itself.

use crate::error::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::sync::{Arc, OnceLock};

/// The ring crypto provider; the only one authsome uses (no aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// PEM text of `AUTHSOME_UPSTREAM_CA`, read from the file it names or taken inline.
pub fn upstream_ca_pem() -> Result<Option<Vec<u8>>> {
    match std::env::var("AUTHSOME_UPSTREAM_CA") {
        Ok(v) if v.trim_start().starts_with("-----BEGIN") => Ok(Some(v.into_bytes())),
        Ok(v) if !v.is_empty() => {
            std::fs::read(&v).map(Some).map_err(|e| Error::bad_input(format!("AUTHSOME_UPSTREAM_CA: cannot read {v}: {e}")))
        }
        _ => Ok(None),
    }
}

/// System roots (read once per process) plus `AUTHSOME_UPSTREAM_CA`.
pub fn upstream_roots() -> Result<Arc<RootCertStore>> {
    Ok(Roots::from_env()?.store())
}

/// Roots trusted for upstream servers, built at first use: a proxy that never
/// connects upstream (`authsome run -- true`) never parses the system roots.
#[derive(Clone)]
pub struct Roots {
    extra: Arc<Vec<CertificateDer<'static>>>,
    system: bool,
    store: Arc<OnceLock<Arc<RootCertStore>>>,
}

impl Roots {
    /// The system roots plus `AUTHSOME_UPSTREAM_CA`, which is read and checked now.
    pub fn from_env() -> Result<Roots> {
        let mut extra = Vec::new();
        if let Some(pem) = upstream_ca_pem()? {
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| Error::bad_input(format!("AUTHSOME_UPSTREAM_CA: invalid PEM: {e}")))?;
                RootCertStore::empty()
                    .add(cert.clone())
                    .map_err(|e| Error::bad_input(format!("AUTHSOME_UPSTREAM_CA: unusable certificate: {e}")))?;
                extra.push(cert);
            }
            if extra.is_empty() {
                return Err(Error::bad_input("AUTHSOME_UPSTREAM_CA holds no certificate"));
            }
        }
        Ok(Roots { extra: Arc::new(extra), system: true, store: Arc::default() })
    }

    /// The store, built on the first call.
    pub fn store(&self) -> Arc<RootCertStore> {
        self.store
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                if self.system {
                    let pem = super::roots::system_pem(None);
                    roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(|c| c.ok()));
                }
                roots.add_parsable_certificates(self.extra.iter().cloned());
                Arc::new(roots)
            })
            .clone()
    }
}

impl From<Arc<RootCertStore>> for Roots {
    /// Exactly these roots (tests, benchmarks).
    fn from(store: Arc<RootCertStore>) -> Roots {
        Roots { extra: Arc::default(), system: false, store: Arc::new(OnceLock::from(store)) }
    }
}

/// A client configuration trusting [`upstream_roots`], offering `alpn`.
pub fn client_config(roots: Arc<RootCertStore>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}
