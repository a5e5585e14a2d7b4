//! The store-backed [`CredentialSource`]: reads the profile's store (its vault
//! file, or a team store kept fresh by notifications) at every injection, so a
//! login made while a proxy runs is picked up live.

use super::{BoxFuture, CredentialSource};
use crate::paths::Home;
use crate::providers::{AuthType, Provider};
use crate::store::Store;
use crate::vault::{Connection, Secret, Status};
use std::sync::{Arc, Mutex};

/// Credentials from the encrypted vault of one profile.
pub struct VaultCredentials {
    home: Home,
    vault: Mutex<Option<Arc<Store>>>,
}

impl VaultCredentials {
    /// A source for the profile of `home`. The vault (and its key) is opened
    /// at the first injection, so a run that injects nothing never creates a key.
    pub fn new(home: &Home) -> VaultCredentials {
        VaultCredentials { home: home.clone(), vault: Mutex::new(None) }
    }

    fn vault(&self) -> Result<Arc<Store>, String> {
        let mut guard = self.vault.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = guard.as_ref() {
            return Ok(v.clone());
        }
        let v = Arc::new(Store::open(&self.home).map_err(|e| e.message)?);
        v.watch();
        *guard = Some(v.clone());
        Ok(v)
    }

    /// The stored connection, as the vault holds it now.
    async fn stored(&self, provider: &str, connection: &str) -> Result<Option<Connection>, String> {
        let vault = self.vault()?;
        let (provider, connection) = (provider.to_owned(), connection.to_owned());
        tokio::task::spawn_blocking(move || vault.load().map(|d| d.connection(&provider, Some(&connection)).cloned()))
            .await
            .map_err(|e| format!("vault read failed: {e}"))?
            .map_err(|e| e.message)
    }

    /// The connection with a usable access token: refreshed first when it
    /// expires within 300 s, under the lock every authsome process shares
    /// ([`crate::oauth::ensure_fresh_with`]), so a run of several hours keeps working.
    async fn fresh_oauth(&self, provider: &Provider, connection: &str) -> Result<Option<Connection>, String> {
        let vault = self.vault()?;
        match crate::oauth::ensure_fresh_with(&vault, &self.home, provider, connection).await {
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
                AuthType::ApiKey => self.stored(provider.name(), connection).await?,
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
