//! The vault-backed [`CredentialSource`]: a decrypted [`Snapshot`] of the vault
//! checked at every injection (one `stat`), so a login made while a proxy runs
//! is picked up by the next request without decrypting the vault each time.

use super::{BoxFuture, CredentialSource};
use crate::paths::Home;
use crate::providers::{AuthType, Provider};
use crate::vault::snapshot::Snapshot;
use crate::vault::{Connection, Secret, Status, Vault};
use std::sync::{Arc, Mutex};

/// Credentials from the encrypted vault of one profile.
pub struct VaultCredentials {
    home: Home,
    vault: Mutex<Option<Arc<Snapshot>>>,
}

impl VaultCredentials {
    /// A source for the profile of `home`. The vault (and its key) is opened
    /// at the first injection, so a run that injects nothing never creates a key.
    pub fn new(home: &Home) -> VaultCredentials {
        VaultCredentials { home: home.clone(), vault: Mutex::new(None) }
    }

    fn snapshot(&self) -> Result<Arc<Snapshot>, String> {
        let mut guard = self.vault.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = guard.as_ref() {
            return Ok(v.clone());
        }
        let v = Arc::new(Snapshot::new(Arc::new(Vault::open(&self.home).map_err(|e| e.message)?)));
        *guard = Some(v.clone());
        Ok(v)
    }

    /// The stored connection, as the vault holds it now.
    fn stored(&self, provider: &str, connection: &str) -> Result<Option<Connection>, String> {
        let data = self.snapshot()?.current().map_err(|e| e.message)?;
        Ok(data.connection(provider, Some(connection)).cloned())
    }

    /// The connection with a usable access token. When the snapshot's token
    /// expires within 300 s it is refreshed first, under the lock every
    /// authsome process shares ([`crate::oauth::ensure_fresh_with`], which
    /// reads the vault again), so a run of several hours keeps working.
    async fn fresh_oauth(&self, provider: &Provider, connection: &str) -> Result<Option<Connection>, String> {
        match self.stored(provider.name(), connection)? {
            None => return Ok(None),
            Some(c) if !crate::oauth::needs_refresh(&c, crate::fsutil::now_unix()) => return Ok(Some(c)),
            Some(_) => {}
        }
        let snapshot = self.snapshot()?;
        match crate::oauth::ensure_fresh_with(snapshot.vault(), &self.home, provider, connection).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.code == crate::error::exit::UNKNOWN => Ok(None),
            Err(e) => Err(e.message),
        }
    }
}

impl CredentialSource for VaultCredentials {
    fn credential<'a>(&'a self, provider: &'a Provider, connection: &'a str) -> BoxFuture<'a, Result<Option<Secret>, String>> {
        Box::pin(async move {
            let conn = match provider.def.auth_type {
                AuthType::Oauth2 => self.fresh_oauth(provider, connection).await?,
                AuthType::ApiKey => self.stored(provider.name(), connection)?,
            };
            match conn {
                None => Ok(None),
                Some(c) if c.status == Status::Revoked => {
                    Err(format!("{} ({}) was revoked; run `authsome login {} --force`", provider.name(), connection, provider.name()))
                }
                Some(c) => Ok(c.credential().cloned()),
            }
        })
    }
}
