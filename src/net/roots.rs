//! The system's root certificates as PEM text, read once per process and
//! cached across processes.
//!
//! Reading them means opening the system bundle and every file of the
//! certificate directories (about 150 on Debian, more with `SSL_CERT_DIR`) and
//! decoding each certificate: a third of the cost of `authsome run -- true`.
//! The first process writes the result to a cache file whose first line names
//! the identity of every source it came from (paths and `stat` identities of
//! the bundle file and of the directories, whose modification time changes when
//! a certificate is added or removed); later processes read that one file as
//! long as the identity still matches.

use crate::fsutil::FileId;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Name of the cache file inside the directory given to [`system_pem`].
pub const CACHE_FILE: &str = "system-roots.pem";

const HEADER: &str = "# authsome system roots cache, sources ";

/// The system roots as PEM text. `cache_dir` (created private if missing)
/// holds the cache between processes; within a process the first call's
/// answer is kept, so the first caller decides where the cache is.
pub fn system_pem(cache_dir: Option<&Path>) -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| match cache_dir {
        Some(dir) => cached(&dir.join(CACHE_FILE)),
        None => load(),
    })
}

/// Read the roots as `rustls-native-certs` finds them, PEM-encoded.
fn load() -> String {
    rustls_native_certs::load_native_certs().certs.iter().map(|c| der_to_pem(c)).collect()
}

/// The cached text at `path` when its sources are unchanged, else freshly
/// loaded and written back.
fn cached(path: &Path) -> String {
    let key = sources_key();
    if let Ok(mut text) = std::fs::read_to_string(path) {
        let pem = text.strip_prefix(HEADER).and_then(|t| t.strip_prefix(key.as_str())).and_then(|t| t.strip_prefix('\n'));
        if let Some(start) = pem.map(|pem| text.len() - pem.len()) {
            // The header is dropped in place: a copy of a few hundred KiB
            // costs a page fault per 4 KiB at every run.
            text.replace_range(..start, "");
            return text;
        }
    }
    let pem = load();
    if let Some(dir) = path.parent() {
        let _ = crate::fsutil::ensure_private_dir(dir)
            .and_then(|_| crate::fsutil::atomic_write_volatile(path, format!("{HEADER}{key}\n{pem}").as_bytes(), 0o600));
    }
    pem
}

/// Where `rustls-native-certs` looks: `SSL_CERT_FILE` and `SSL_CERT_DIR` when
/// either is set, else the locations OpenSSL would probe.
fn sources() -> (Option<PathBuf>, Vec<PathBuf>) {
    let file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let dirs: Vec<PathBuf> = std::env::var_os("SSL_CERT_DIR")
        .map(|d| std::env::split_paths(&d).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if file.is_some() || !dirs.is_empty() {
        return (file, dirs);
    }
    let probed = openssl_probe::probe();
    (probed.cert_file, probed.cert_dir)
}

/// A digest of every source's path and identity (one line, hex).
fn sources_key() -> String {
    let (file, dirs) = sources();
    let mut described = String::new();
    for p in file.iter().chain(&dirs) {
        described.push_str(&format!("{}\0{:?}\0", p.display(), FileId::of(p)));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, described.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// PEM-encode one DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_used_while_its_sources_are_unchanged_and_rebuilt_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        let first = cached(&path);
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(on_disk.starts_with(HEADER) && on_disk.ends_with(&first));
        // A cache file with the same key is trusted as is (this is what saves the work).
        let marked = on_disk.replacen("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\n# marked", 1);
        std::fs::write(&path, &marked).unwrap();
        assert!(cached(&path).contains("# marked"), "an up-to-date cache is read, not rebuilt");
        // Another key (the sources changed) means a rebuild.
        std::fs::write(&path, marked.replacen(&sources_key(), &"0".repeat(64), 1)).unwrap();
        assert_eq!(cached(&path), first);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("# marked"));
    }
}
