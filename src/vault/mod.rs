//! The encrypted credential store of one profile.
//!
//! On disk a vault is a small JSON document: every record (a connection, a
//! provider's client credentials, a provider's default connection) is sealed
//! separately with its record key as associated data, and the whole document
//! carries an HMAC. Any flipped byte therefore fails loudly as "corrupted or
//! tampered", never as a silently empty vault. Writers hold an flock and replace
//! the file atomically, so concurrent processes never lose each other's records.

pub(crate) mod crypto;
pub(crate) mod key;
pub(crate) mod snapshot;

use crate::error::{Error, Result};
use crate::fsutil::ensure_private_dir;
use crate::fsutil::{atomic_write, now_unix, FileLock};
use crate::paths::Home;
use base64::Engine as _;
use crypto::{Sealer, Tampered};
pub use key::KeySource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Name of a provider's connection when none is given.
pub const DEFAULT_CONNECTION: &str = "default";

pub use crate::secret::Secret;

/// State of a connection, as `get --field status` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Usable.
    Connected,
    /// Token past expiry and refresh failed or impossible.
    Expired,
    /// The provider rejected the credential.
    Revoked,
}

impl Status {
    /// The bare word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "connected",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

/// One logged-in account of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Provider name.
    pub provider: String,
    /// Connection name (`default`, `work`, …).
    pub name: String,
    /// Current state.
    pub status: Status,
    /// Why the status is not `connected`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Scopes actually granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// OAuth access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    /// OAuth refresh token (never exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Token type reported by the provider (`Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Unix time the access token expires, when the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Unix time the credential was obtained.
    pub obtained_at: u64,
    /// Account identity, when known (login, e-mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Base URL used at login (`--base-url`), for templated providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The provider's `connection_values` given at login (a Shopify shop):
    /// they decide which hosts this connection's credential may reach.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

impl Connection {
    /// A connected API-key connection.
    pub fn api_key(provider: &str, name: &str, key: Secret) -> Connection {
        Connection {
            provider: provider.to_owned(),
            name: name.to_owned(),
            status: Status::Connected,
            status_reason: None,
            scopes: Vec::new(),
            access_token: None,
            refresh_token: None,
            api_key: Some(key),
            token_type: None,
            expires_at: None,
            obtained_at: now_unix(),
            account: None,
            base_url: None,
            values: BTreeMap::new(),
        }
    }

    /// A connected OAuth record holding a bearer `access_token` (the login
    /// flows fill in the rest from the token response).
    pub fn oauth(provider: &str, name: &str, access_token: Secret) -> Connection {
        Connection {
            access_token: Some(access_token),
            api_key: None,
            token_type: Some("Bearer".to_owned()),
            ..Connection::api_key(provider, name, Secret::new(String::new()))
        }
    }

    /// The credential the proxy injects: the access token or the API key.
    pub fn credential(&self) -> Option<&Secret> {
        self.access_token.as_ref().or(self.api_key.as_ref())
    }

    /// The status as of `now`: a `connected` token past its expiry is
    /// `expired` (the stored status changes only when a refresh is tried).
    pub fn status_at(&self, now: u64) -> Status {
        match self.status {
            Status::Connected if self.access_token.is_some() && self.expires_at.is_some_and(|e| e <= now) => Status::Expired,
            s => s,
        }
    }

    /// The record as shown by `get`: every secret replaced by a marker.
    pub fn redacted(&self) -> serde_json::Value {
        let mark = |s: &Option<Secret>| s.as_ref().map(|_| "<redacted>");
        serde_json::json!({
            "provider": self.provider,
            "connection": self.name,
            "status": self.status_at(now_unix()).as_str(),
            "status_reason": self.status_reason,
            "scopes": self.scopes,
            "account": self.account,
            "token_type": self.token_type,
            "expires_at": self.expires_at.map(crate::fmt_time),
            "obtained_at": crate::fmt_time(self.obtained_at),
            "access_token": mark(&self.access_token),
            "refresh_token": mark(&self.refresh_token),
            "api_key": mark(&self.api_key),
            "base_url": self.base_url,
            "values": self.values,
        })
    }
}

/// OAuth client credentials of a provider (entered once, or registered by DCR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCredentials {
    /// Public client identifier.
    pub client_id: String,
    /// Client secret, absent for public clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Registration endpoint when the client came from DCR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
}

/// Everything one profile stores, decrypted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VaultData {
    /// Connections keyed by (provider, connection name).
    pub connections: BTreeMap<(String, String), Connection>,
    /// Client credentials keyed by provider.
    pub clients: BTreeMap<String, ClientCredentials>,
    /// Default connection name per provider, when not `default`.
    pub defaults: BTreeMap<String, String>,
}

/// The content of `home`'s vault, or an empty one when the profile has none
/// yet: reading (listing, status, planning a run) never creates a key or a vault.
pub fn snapshot(home: &Home) -> Result<VaultData> {
    if home.vault_file().exists() {
        Vault::open(home)?.load()
    } else {
        Ok(VaultData::default())
    }
}

impl VaultData {
    /// The default connection name of a provider.
    ///
    /// The one set by `login --default` (or the first login under another
    /// name), else `default`; when neither exists but exactly one connection
    /// does, that one, so logging out of the default never strands the other.
    pub fn default_connection<'a>(&'a self, provider: &str) -> &'a str {
        if let Some(d) = self.defaults.get(provider) {
            return d;
        }
        if self.connections.contains_key(&(provider.to_owned(), DEFAULT_CONNECTION.to_owned())) {
            return DEFAULT_CONNECTION;
        }
        let mut conns = self.connections.values().filter(|c| c.provider == provider);
        match (conns.next(), conns.next()) {
            (Some(only), None) => &only.name,
            _ => DEFAULT_CONNECTION,
        }
    }

    /// A connection, `name` defaulting to the provider's default connection.
    pub fn connection(&self, provider: &str, name: Option<&str>) -> Option<&Connection> {
        let name = name.unwrap_or_else(|| self.default_connection(provider));
        self.connections.get(&(provider.to_owned(), name.to_owned()))
    }

    /// Insert or replace a connection.
    pub fn put_connection(&mut self, c: Connection) {
        self.connections.insert((c.provider.clone(), c.name.clone()), c);
    }

    /// Connections of one provider.
    pub fn connections_of<'a>(&'a self, provider: &'a str) -> impl Iterator<Item = &'a Connection> + 'a {
        self.connections.values().filter(move |c| c.provider == provider)
    }
}

/// On-disk layout; `mac` authenticates `version` and `records`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    records: BTreeMap<String, String>,
    mac: String,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Handle on the vault of one profile.
pub struct Vault {
    path: PathBuf,
    lock_path: PathBuf,
    profile: String,
    sealer: Sealer,
    source: KeySource,
    /// Bumped after every write through this handle, so a [`snapshot::Snapshot`]
    /// sees this process's own writes without relying on file timestamps.
    generation: std::sync::atomic::AtomicU64,
}

impl Vault {
    /// Resolve the key (creating one on first use) and prepare the paths.
    /// Nothing is read until [`Vault::load`] or [`Vault::update`].
    pub fn open(home: &Home) -> Result<Vault> {
        let (master, source) = key::resolve(home)?;
        Ok(Vault {
            path: home.vault_file(),
            lock_path: home.vault_lock_file(),
            profile: home.profile().to_owned(),
            sealer: Sealer::new(&master),
            source,
            generation: Default::default(),
        })
    }

    /// Where the key came from.
    pub fn key_source(&self) -> &KeySource {
        &self.source
    }

    /// The vault file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A consistent snapshot (writers replace the file atomically, so no lock).
    pub fn load(&self) -> Result<VaultData> {
        match std::fs::read(&self.path) {
            Ok(bytes) => self.decode(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VaultData::default()),
            Err(e) => Err(Error::other(format!("cannot read vault {}: {e}", self.path.display()))),
        }
    }

    /// A consistent snapshot together with the identity of the file it was
    /// read from (`None`: no vault yet), taken from the open file itself so
    /// the two always match.
    pub fn load_identified(&self) -> Result<(VaultData, Option<crate::fsutil::FileId>)> {
        use std::io::Read as _;
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((VaultData::default(), None)),
            Err(e) => return Err(Error::other(format!("cannot read vault {}: {e}", self.path.display()))),
        };
        let read_err = |e: std::io::Error| Error::other(format!("cannot read vault {}: {e}", self.path.display()));
        let identity = crate::fsutil::FileId::from_metadata(&file.metadata().map_err(read_err)?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read_err)?;
        Ok((self.decode(&bytes)?, Some(identity)))
    }

    /// How many writes this handle has made (see [`snapshot::Snapshot`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Read-modify-write under the cross-process lock. `f` sees the latest data;
    /// its changes are written atomically only if it returns `Ok`.
    pub fn update<T>(&self, f: impl FnOnce(&mut VaultData) -> Result<T>) -> Result<T> {
        let dir = self.path.parent().expect("vault file has a parent");
        ensure_private_dir(dir).map_err(|e| Error::other(format!("cannot create {}: {e}", dir.display())))?;
        let _lock = FileLock::acquire(&self.lock_path).map_err(|e| Error::other(format!("cannot lock vault: {e}")))?;
        let mut data = self.load()?;
        let before = data.clone();
        let out = f(&mut data)?;
        if data != before {
            let bytes = self.encode(&data);
            let written = atomic_write(&self.path, &bytes, 0o600);
            self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            written.map_err(|e| Error::other(format!("cannot write vault {}: {e}", self.path.display())))?;
        }
        Ok(out)
    }

    /// Encrypt sample data with the real key into a scratch file beside the
    /// vault, read it back and compare: proves the key, the cipher and the
    /// directory all work without touching the real vault (`doctor`).
    pub fn probe_round_trip(&self) -> Result<()> {
        let dir = self.path.parent().expect("vault file has a parent");
        ensure_private_dir(dir)?;
        let probe = dir.join(format!(".doctor-probe.{}", std::process::id()));
        let mut sample = VaultData::default();
        sample.put_connection(Connection::api_key("doctor", "probe", Secret::new("probe-value")));
        let result = atomic_write(&probe, &self.encode(&sample), 0o600)
            .map_err(|e| Error::other(format!("cannot write {}: {e}", probe.display())))
            .and_then(|_| std::fs::read(&probe).map_err(Error::from))
            .and_then(|bytes| self.decode(&bytes))
            .and_then(|back| if back == sample { Ok(()) } else { Err(Error::other("vault round trip returned different data")) });
        let _ = std::fs::remove_file(&probe);
        result
    }

    fn aad(&self, record: &str) -> String {
        format!("authsome/v1/{}/{record}", self.profile)
    }

    fn mac_body(version: u32, records: &BTreeMap<String, String>) -> Vec<u8> {
        serde_json::to_vec(&(version, records)).expect("serializable")
    }

    fn encode(&self, data: &VaultData) -> Vec<u8> {
        let mut records = BTreeMap::new();
        let mut put = |key: String, plain: Vec<u8>| {
            let sealed = self.sealer.seal(&self.aad(&key), &plain);
            records.insert(key, B64.encode(sealed));
        };
        for ((p, n), c) in &data.connections {
            put(format!("connection/{p}/{n}"), serde_json::to_vec(c).expect("serializable"));
        }
        for (p, c) in &data.clients {
            put(format!("client/{p}"), serde_json::to_vec(c).expect("serializable"));
        }
        for (p, n) in &data.defaults {
            put(format!("default/{p}"), serde_json::to_vec(n).expect("serializable"));
        }
        let mac = B64.encode(self.sealer.mac(&Self::mac_body(1, &records)));
        let mut out = serde_json::to_vec_pretty(&FileFormat { version: 1, records, mac }).expect("serializable");
        out.push(b'\n');
        out
    }

    fn tampered(&self) -> Error {
        Error::other(format!(
            "vault {} is corrupted or was tampered with (or was written with another key: `authsome doctor` shows which key is in use)",
            self.path.display()
        ))
    }

    fn decode(&self, bytes: &[u8]) -> Result<VaultData> {
        let file: FileFormat = serde_json::from_slice(bytes).map_err(|_| self.tampered())?;
        let tag = B64.decode(&file.mac).map_err(|_| self.tampered())?;
        self.sealer.verify(&Self::mac_body(file.version, &file.records), &tag).map_err(|_: Tampered| self.tampered())?;
        if file.version != 1 {
            return Err(Error::other(format!("vault {} has unsupported version {}", self.path.display(), file.version)));
        }
        let mut data = VaultData::default();
        for (key, value) in &file.records {
            let sealed = B64.decode(value).map_err(|_| self.tampered())?;
            let plain = self.sealer.open(&self.aad(key), &sealed).map_err(|_| self.tampered())?;
            let mut parts = key.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("connection"), Some(_), Some(_)) => {
                    let c: Connection = serde_json::from_slice(&plain).map_err(|_| self.tampered())?;
                    data.put_connection(c);
                }
                (Some("client"), Some(p), None) => {
                    data.clients.insert(p.to_owned(), serde_json::from_slice(&plain).map_err(|_| self.tampered())?);
                }
                (Some("default"), Some(p), None) => {
                    data.defaults.insert(p.to_owned(), serde_json::from_slice(&plain).map_err(|_| self.tampered())?);
                }
                _ => return Err(self.tampered()),
            }
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(dir: &std::path::Path) -> Vault {
        let home = Home::at(dir, "default");
        let (k, _) = (crypto::MasterKey::generate(), ());
        Vault {
            path: home.vault_file(),
            lock_path: home.vault_lock_file(),
            profile: "default".into(),
            sealer: Sealer::new(&k),
            source: KeySource::Env,
            generation: Default::default(),
        }
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        v.update(|d| {
            d.put_connection(Connection::api_key("openai", "default", Secret::new("sk-test-aaaaaaaaaaaaaaaaaaaaaaaa")));
            Ok(())
        })
        .unwrap();
        let data = v.load().unwrap();
        assert_eq!(data.connection("openai", None).unwrap().api_key.as_ref().unwrap().expose(), "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa");
        let raw = std::fs::read(v.path()).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("sk-test"));
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let err = v.decode(&bad).expect_err(&format!("flip at byte {i} went unnoticed"));
            assert!(err.message.contains("corrupted or was tampered with"), "{}", err.message);
        }
    }

    #[test]
    fn swapped_records_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        v.update(|d| {
            d.put_connection(Connection::api_key("openai", "a", Secret::new("k1")));
            d.put_connection(Connection::api_key("openai", "b", Secret::new("k2")));
            Ok(())
        })
        .unwrap();
        let mut file: FileFormat = serde_json::from_slice(&std::fs::read(v.path()).unwrap()).unwrap();
        let a = file.records["connection/openai/a"].clone();
        let b = file.records["connection/openai/b"].clone();
        file.records.insert("connection/openai/a".into(), b);
        file.records.insert("connection/openai/b".into(), a);
        // Even with a valid MAC over the swapped records, the AEAD binding refuses them.
        file.mac = B64.encode(v.sealer.mac(&Vault::mac_body(1, &file.records)));
        assert!(v.decode(&serde_json::to_vec(&file).unwrap()).is_err());
    }
}
