//! Where the proxy's credentials come from: the vault of one profile (a
//! decrypted [`Snapshot`] checked at every injection with one `stat`, so a
//! login made while a proxy runs is picked up by the next request without
//! decrypting the vault each time, and OAuth tokens are refreshed first), and for a project run the CI secrets
//! taken from the environment (`secret_env`) in front of it.

use super::plan::Plan;
use crate::fix::LoginFix;
use crate::paths::Home;
use crate::project::requirements::{Check, State};
use crate::providers::{AuthType, Provider};
use crate::proxy::{BoxFuture, CredentialSource, Unavailable};
use crate::secret::Secret;
use crate::store::Store;
use crate::vault::snapshot::Snapshot;
use crate::vault::{Connection, Status, Vault};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Credentials from the encrypted vault of one profile.
pub struct VaultCredentials {
    home: Home,
    vault: Mutex<Option<Arc<Opened>>>,
}

/// The profile's store as the proxy reads it: the vault file through its
/// snapshot cache, or a team store kept fresh by notifications.
enum Opened {
    File(Snapshot),
    Team(Store),
}

impl VaultCredentials {
    /// A source for the profile of `home`. The vault (and its key) is opened
    /// at the first injection, so a run that injects nothing never creates a key.
    pub fn new(home: &Home) -> VaultCredentials {
        VaultCredentials { home: home.clone(), vault: Mutex::new(None) }
    }

    fn snapshot(&self) -> Result<Arc<Opened>, Unavailable> {
        let mut guard = self.vault.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = guard.as_ref() {
            return Ok(v.clone());
        }
        let failed = |e: crate::error::Error| Unavailable::Failed(e.message);
        let v = Arc::new(if Store::is_team(&self.home).map_err(failed)? {
            let store = Store::open(&self.home).map_err(failed)?;
            // A long-running proxy keeps a team store's records fresh by notifications.
            store.watch();
            Opened::Team(store)
        } else {
            Opened::File(Snapshot::new(Arc::new(Vault::open(&self.home).map_err(failed)?)))
        });
        *guard = Some(v.clone());
        Ok(v)
    }

    /// The stored connection, as the store holds it now, when `provider` (a
    /// route's, bound to the connection as it was when the route was built)
    /// still describes it: a connection logged in again with another base URL
    /// or login values since is refused, never injected (or refreshed) on the
    /// old hosts.
    fn stored(&self, provider: &Provider, connection: &str) -> Result<Option<Connection>, Unavailable> {
        let data = match &*self.snapshot()? {
            Opened::File(s) => s.current().map_err(|e| Unavailable::Failed(e.message))?,
            Opened::Team(t) => Arc::new(t.load().map_err(|e| Unavailable::Failed(e.message))?),
        };
        match data.connection(provider.name(), Some(connection)) {
            Some(c) if !provider.is_bound_like(c.base_url.as_deref(), &c.values) => Err(Unavailable::Failed(format!(
                "{} ({connection}) was logged in again for other hosts since this run started; start it again to use it",
                provider.name()
            ))),
            c => Ok(c.cloned()),
        }
    }

    /// The connection with a usable access token. When the snapshot's token
    /// expires within 300 s it is refreshed first, under the lock every
    /// authsome process shares ([`crate::oauth::ensure_fresh_with`], which
    /// reads the vault again), so a run of several hours keeps working.
    async fn fresh_oauth(&self, provider: &Provider, connection: &str) -> Result<Option<Connection>, Unavailable> {
        match self.stored(provider, connection)? {
            None => return Ok(None),
            Some(c) if !crate::oauth::needs_refresh(&c, crate::fsutil::now_unix()) => return Ok(Some(c)),
            Some(_) => {}
        }
        let opened = self.snapshot()?;
        let fresh = match &*opened {
            Opened::Team(store) => crate::oauth::ensure_fresh_with(store, &self.home, provider, connection).await,
            // The refresh reads the vault file itself (inside the lock), not the snapshot.
            Opened::File(s) => crate::oauth::ensure_fresh_with(&Store::File(s.vault().clone()), &self.home, provider, connection).await,
        };
        fresh.map_err(|e| Unavailable::Failed(e.message))
    }
}

/// The answer for a connection the source does not hold.
fn not_logged_in(home: &Home, provider: &Provider, connection: &str) -> Unavailable {
    let fix = LoginFix::new(provider.name(), Some(connection)).profile(home.profile());
    Unavailable::NotLoggedIn(format!("no credential for {} ({connection}); {}", provider.name(), fix.hint()))
}

impl CredentialSource for VaultCredentials {
    fn credential<'a>(&'a self, provider: &'a Provider, connection: &'a str) -> BoxFuture<'a, Result<Secret, Unavailable>> {
        Box::pin(async move {
            let conn = match provider.def.auth_type {
                AuthType::Oauth2 => self.fresh_oauth(provider, connection).await?,
                AuthType::ApiKey => self.stored(provider, connection)?,
            };
            match conn {
                Some(c) if c.status == Status::Revoked => {
                    let fix = LoginFix::new(provider.name(), Some(connection)).profile(self.home.profile()).force();
                    Err(Unavailable::Failed(format!("{} ({connection}) was revoked; {}", provider.name(), fix.hint())))
                }
                Some(c) => c.credential().cloned().ok_or_else(|| not_logged_in(&self.home, provider, connection)),
                None => Err(not_logged_in(&self.home, provider, connection)),
            }
        })
    }
}

/// CI secrets for the requirements satisfied from the environment, keyed by
/// (provider, connection). The values are read once and live only in memory.
pub fn ci_secrets(checks: &[Check], env: &dyn Fn(&str) -> Option<String>) -> BTreeMap<(String, String), Secret> {
    let mut out = BTreeMap::new();
    for c in checks {
        if let State::FromEnv(var) = &c.state {
            if let Some(v) = env(var) {
                out.insert((c.requirement.provider.clone(), c.connection.clone()), Secret::new(v.trim()));
            }
        }
    }
    out
}

/// Credentials for a project run: CI secrets first, then the vault (read at
/// every injection, so logins made while the run lasts are picked up).
pub struct ProjectCredentials {
    home: Home,
    ci: BTreeMap<(String, String), Secret>,
    vault: Option<VaultCredentials>,
}

impl ProjectCredentials {
    /// CI secrets of `checks` (read through `env`) in front of the vault.
    pub fn new(home: &Home, checks: &[Check], env: &dyn Fn(&str) -> Option<String>) -> ProjectCredentials {
        ProjectCredentials { home: home.clone(), ci: ci_secrets(checks, env), vault: Some(VaultCredentials::new(home)) }
    }

    /// Drop the vault when the CI secrets cover every route of `plan` and the
    /// routes can never change (`exec`): a CI job with every secret in the
    /// environment then needs neither a vault nor a key.
    pub fn fixed(mut self, plan: &Plan) -> ProjectCredentials {
        if plan.routes.iter().all(|r| self.ci.contains_key(&(r.provider.name().to_owned(), r.connection.clone()))) {
            self.vault = None;
        }
        self
    }
}

impl CredentialSource for ProjectCredentials {
    fn credential<'a>(&'a self, provider: &'a Provider, connection: &'a str) -> BoxFuture<'a, Result<Secret, Unavailable>> {
        Box::pin(async move {
            if let Some(s) = self.ci.get(&(provider.name().to_owned(), connection.to_owned())) {
                return Ok(s.clone());
            }
            match &self.vault {
                Some(v) => v.credential(provider, connection).await,
                None => Err(not_logged_in(&self.home, provider, connection)),
            }
        })
    }
}
