//! The combined CA bundle a child trusts: the system roots plus every run CA,
//! in one PEM file of mode 0600 in a private directory the caller chooses. It is rewritten
//! atomically when a CA is added, so a client never reads half a file, and
//! removed when the proxy stops.

use crate::error::{Error, Result};
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bundle file of one proxy.
pub struct BundleFile {
    path: PathBuf,
}

/// The system roots as PEM text (read once per process).
pub fn system_roots_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let mut out = String::new();
        for cert in rustls_native_certs::load_native_certs().certs {
            out.push_str(&der_to_pem(&cert));
        }
        out
    })
}

/// PEM-encode one DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl BundleFile {
    /// A bundle at `path` (nothing is written yet).
    pub fn new(path: PathBuf) -> BundleFile {
        BundleFile { path }
    }

    /// Where the bundle lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write system roots + `ca_pems` atomically, mode 0600, in a private directory.
    pub fn write(&self, ca_pems: &[String]) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::fsutil::ensure_private_dir(dir).map_err(|e| Error::other(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut text = String::from(system_roots_pem());
        for pem in ca_pems {
            text.push_str(pem);
            if !pem.ends_with('\n') {
                text.push('\n');
            }
        }
        crate::fsutil::atomic_write(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| Error::other(format!("cannot write the CA bundle {}: {e}", self.path.display())))
    }

    /// Delete the file (idempotent), and its directory when that is now
    /// empty (a run's own; a shared directory keeps its other files).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
