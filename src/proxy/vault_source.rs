//! The vault-backed [`CredentialSource`]: reads the vault at every injection,
//! so a login made while a proxy runs is picked up live.

use super::{BoxFuture, CredentialSource};
use crate::paths::Home;
use crate::providers::{AuthType, Provider};
use crate::vault::{Connection, Secret, Status, Vault};
use std::sync::Arc;

/// Credentials from the encrypted vault of one profile.
pub struct VaultCredentials {
    home: Home,
    vault: Arc<Vault>,
}

impl VaultCredentials {
    /// Open the profile's vault (resolving its key once).
    pub fn new(home: &Home) -> crate::Result<VaultCredentials> {
        Ok(VaultCredentials { home: home.clone(), vault: Arc::new(Vault::open(home)?) })
    }

    /// The stored connection, as the vault holds it now.
    async fn stored(&self, provider: &str, connection: &str) -> Result<Option<Connection>, String> {
        let vault = self.vault.clone();
        let (provider, connection) = (provider.to_owned(), connection.to_owned());
        tokio::task::spawn_blocking(move || vault.load().map(|d| d.connection(&provider, Some(&connection)).cloned()))
            .await
            .map_err(|e| format!("vault read failed: {e}"))?
            .map_err(|e| e.message)
    }

    /// The connection with a usable access token.
    ///
    /// LEAD: OAuth refresh hook. Replace the body with
    /// `crate::oauth::ensure_fresh(&self.home, provider, connection).await.map(Some).map_err(|e| e.message)`
    /// (it refreshes within 300 s of expiry under the cross-process lock), keeping
    /// `Ok(None)` for "no such connection" if `ensure_fresh` reports exit code 3.
    async fn fresh_oauth(&self, provider: &Provider, connection: &str) -> Result<Option<Connection>, String> {
        let _ = &self.home;
        self.stored(provider.name(), connection).await
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
