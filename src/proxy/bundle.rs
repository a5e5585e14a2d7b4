//! The combined CA bundle a child trusts: the system roots plus every run CA,
//! in one PEM file of mode 0600 in a private directory the caller chooses. It is rewritten
//! atomically when a CA is added, so a client never reads half a file, and
//! removed when the proxy stops. The system roots come from
//! [`crate::net::roots`], cached across runs in `<home>/cache`.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The bundle file of one proxy.
pub struct BundleFile {
    path: PathBuf,
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
        let mut parts: Vec<&[u8]> = vec![crate::net::roots::system_pem(None).as_bytes()];
        for pem in ca_pems {
            parts.push(pem.as_bytes());
            if !pem.ends_with('\n') {
                parts.push(b"\n");
            }
        }
        crate::fsutil::atomic_write_volatile_parts(&self.path, &parts, 0o600)
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
