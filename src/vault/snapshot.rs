//! A decrypted vault kept in memory and re-read only when the vault changes.
//!
//! A proxy needs the credential of a connection for every injected request.
//! Reading the file means opening it, checking its MAC and decrypting every
//! record: costly with many connections, and one descriptor per request. A
//! [`Snapshot`] instead checks the file's identity with one `stat` and reuses
//! the decrypted data while it is unchanged, so a login or a token refresh from
//! another terminal still reaches the very next request.
//!
//! Writers replace the vault atomically (a new inode each time), so a change of
//! device, inode, size, modification or change time means new contents. File
//! times are coarse (a clock tick), so a file modified less than
//! [`RACY_WINDOW`] before it was read could be replaced again within the same
//! tick by a file that looks identical; like git's "racily clean" index entries,
//! such a snapshot is not trusted and the next use reads the file again. Writes
//! through the same [`Vault`] handle are seen through its write counter.

use super::{Vault, VaultData};
use crate::error::Result;
use crate::fsutil::FileId;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A snapshot read less than this long after the file's modification time is
/// re-read at the next use.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The decrypted contents of one vault, refreshed when the file changes.
pub struct Snapshot {
    vault: Arc<Vault>,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    identity: Option<FileId>,
    generation: u64,
    /// Whether the file was older than [`RACY_WINDOW`] when read.
    settled: bool,
    data: Arc<VaultData>,
}

impl Snapshot {
    /// A snapshot of `vault`; nothing is read before the first [`Snapshot::current`].
    pub fn new(vault: Arc<Vault>) -> Snapshot {
        Snapshot { vault, cached: Mutex::new(None) }
    }

    /// The vault handle the snapshot reads (for writers such as token refresh).
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The vault as it is on disk now: the cached data when the file is
    /// unchanged (one `stat`), otherwise freshly read and decrypted.
    pub fn current(&self) -> Result<Arc<VaultData>> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.vault.generation();
        let mut looks_unchanged = None;
        if let Some(c) = cached.as_ref() {
            if c.generation == generation && c.identity == self.identity_now() {
                if c.settled {
                    return Ok(c.data.clone());
                }
                looks_unchanged = Some(c.data.clone());
            }
        }
        let (data, identity) = match self.vault.load_identified() {
            Ok(loaded) => loaded,
            // A file that looks unchanged but was too recent to be sure about:
            // when it cannot be read now (out of descriptors), what it held is
            // still the best answer.
            Err(e) => return looks_unchanged.ok_or(e),
        };
        let settled = identity.is_none_or(|id| id.modified() + RACY_WINDOW <= SystemTime::now());
        let data = Arc::new(data);
        *cached = Some(Cached { identity, generation, settled, data: data.clone() });
        Ok(data)
    }

    fn identity_now(&self) -> Option<FileId> {
        FileId::of(self.vault.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{Connection, Secret};

    fn key(s: &Snapshot) -> String {
        s.current().unwrap().connection("acme", None).and_then(|c| c.api_key.clone()).map(|k| k.expose().to_owned()).unwrap_or_default()
    }

    fn settle(path: &std::path::Path) {
        let old = SystemTime::now() - 2 * RACY_WINDOW;
        std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn a_settled_snapshot_is_reused_and_any_replacement_of_the_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::paths::Home::at(dir.path(), "default");
        let master = crate::vault::crypto::MasterKey::generate();
        let handle = || Vault {
            path: home.vault_file(),
            lock_path: home.vault_lock_file(),
            profile: "default".into(),
            sealer: crate::vault::crypto::Sealer::new(&master),
            source: crate::vault::KeySource::Env,
            generation: Default::default(),
        };
        let writer = handle();
        let put = |v: &Vault, k: &str| {
            v.update(|d| {
                d.put_connection(Connection::api_key("acme", "default", Secret::new(k)));
                Ok(())
            })
            .unwrap()
        };
        let snap = Snapshot::new(Arc::new(handle()));
        assert_eq!(key(&snap), "", "no vault yet");
        put(&writer, "first");
        assert_eq!(key(&snap), "first", "a vault that appears is read");
        settle(writer.path());
        let a = snap.current().unwrap();
        assert!(Arc::ptr_eq(&a, &snap.current().unwrap()), "an unchanged, settled file is not read again");
        put(&writer, "second");
        settle(writer.path());
        assert_eq!(key(&snap), "second", "another handle's write (a new file) is seen at once");
        put(snap.vault(), "third");
        assert_eq!(key(&snap), "third", "this handle's own write is seen at once");
        std::fs::remove_file(writer.path()).unwrap();
        assert_eq!(key(&snap), "", "a removed vault is empty");
    }
}
