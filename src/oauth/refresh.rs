//! Keeping tokens fresh. A token expiring within [`REFRESH_MARGIN_SECS`] is
//! refreshed under a lock shared by every authsome process, one per
//! (profile, provider, connection); the vault is re-read inside the lock, so a
//! process that waited finds the token already refreshed and never spends the
//! same refresh token twice. Rotated refresh tokens are saved. A failed refresh
//! keeps a still-valid token; past expiry the connection is marked `expired`
//! with the reason.

use super::client::OAuthHttp;
use super::tokens::{describe, granted_scopes, oauth_client, token_type_name, Endpoints};
use super::REFRESH_MARGIN_SECS;
use crate::error::{Error, Result};
use crate::fix::LoginFix;
use crate::fsutil::ensure_private_dir;
use crate::fsutil::{now_unix, FileLock};
use crate::paths::Home;
use crate::providers::Provider;
use crate::vault::{Connection, Secret, Status, Vault};
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RequestTokenError, TokenResponse};

/// What [`refresh_connection`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was fresh (or never expires); nothing was sent.
    StillFresh,
    /// This process refreshed the token.
    Refreshed,
    /// Another process refreshed it while this one waited for the lock.
    RefreshedElsewhere,
    /// The token is near expiry but there is no refresh token; it is still valid.
    NotRefreshable,
    /// The refresh failed but the current token is still valid (reason given).
    FailedStillValid(String),
}

/// The connection with a usable token, refreshing first when it expires
/// within 300 s. The fast path (fresh token) takes no lock.
pub async fn ensure_fresh(home: &Home, provider: &Provider, connection: &str) -> Result<Connection> {
    ensure_fresh_with(&Vault::open(home)?, home, provider, connection).await?.ok_or_else(|| not_logged_in(provider, connection))
}

/// [`ensure_fresh`] with a vault the caller keeps open (the proxy opens one per
/// run, so no key lookup happens per request), saying "not logged in" as
/// `None`: what the proxy's credential source calls before each injection.
/// The fast path only decrypts the vault; the HTTP client and the lock exist
/// only when a refresh is due.
pub async fn ensure_fresh_with(vault: &Vault, home: &Home, provider: &Provider, connection: &str) -> Result<Option<Connection>> {
    let Some(conn) = vault.load()?.connection(provider.name(), Some(connection)).cloned() else { return Ok(None) };
    if !needs_refresh(&conn, now_unix()) {
        return Ok(Some(conn));
    }
    let http = OAuthHttp::from_env()?;
    refresh_in(vault, Wanted { home, provider, connection, force: false }, &http).await.map(|(c, _)| Some(c))
}

fn not_logged_in(provider: &Provider, connection: &str) -> Error {
    Error::unknown(format!(
        "no connection {connection:?} for {}; {}",
        provider.name(),
        LoginFix::new(provider.name(), Some(connection)).hint()
    ))
}

fn find(data: &crate::vault::VaultData, provider: &Provider, connection: &str) -> Result<Connection> {
    data.connection(provider.name(), Some(connection)).cloned().ok_or_else(|| not_logged_in(provider, connection))
}

/// Whether `c`'s access token must be refreshed before use at `now`: marked
/// expired, or expiring within the refresh margin.
pub fn needs_refresh(c: &Connection, now: u64) -> bool {
    c.access_token.is_some() && (c.status == Status::Expired || c.expires_at.is_some_and(|e| e <= now + REFRESH_MARGIN_SECS))
}

/// The lock file serialising refreshes of one connection.
pub fn lock_file(home: &Home, provider: &str, connection: &str) -> std::path::PathBuf {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect::<String>();
    home.refresh_lock_dir().join(format!("{}.{}.{}.lock", clean(home.profile()), clean(provider), clean(connection)))
}

/// Refresh `connection` of `provider` if it is near expiry (or always with
/// `force`), returning the current record and what happened.
pub async fn refresh_connection(
    home: &Home,
    provider: &Provider,
    connection: &str,
    force: bool,
    http: &OAuthHttp,
) -> Result<(Connection, RefreshOutcome)> {
    refresh_in(&Vault::open(home)?, Wanted { home, provider, connection, force }, http).await
}

/// The connection a refresh is for, and whether it is forced.
struct Wanted<'a> {
    home: &'a Home,
    provider: &'a Provider,
    connection: &'a str,
    force: bool,
}

/// The refresh itself: take the lock, re-read the record, then either find
/// the work done, give up on a token that cannot be refreshed, or ask the
/// provider and record the answer.
async fn refresh_in(vault: &Vault, wanted: Wanted<'_>, http: &OAuthHttp) -> Result<(Connection, RefreshOutcome)> {
    let Wanted { home, provider, connection, force } = wanted;
    let before = find(&vault.load()?, provider, connection)?;
    if !force && !needs_refresh(&before, now_unix()) {
        return Ok((before, RefreshOutcome::StillFresh));
    }
    let _lock = take_lock(home, provider.name(), connection).await?;

    // Inside the lock: the record may have changed while we waited.
    let conn = find(&vault.load()?, provider, connection)?;
    let now = now_unix();
    // Someone refreshed while we waited: use their token rather than spending theirs again.
    if conn.access_token != before.access_token && conn.status == Status::Connected && conn.expires_at.is_none_or(|e| e > now) {
        return Ok((conn, RefreshOutcome::RefreshedElsewhere));
    }
    if !force && !needs_refresh(&conn, now) {
        return Ok((conn, RefreshOutcome::StillFresh));
    }
    let still_valid = conn.status == Status::Connected && conn.expires_at.is_none_or(|e| e > now);
    let title = provider.def.title();
    let relogin = LoginFix::new(provider.name(), Some(connection)).profile(home.profile()).hint();

    let Some(refresh_token) = conn.refresh_token.clone() else {
        if still_valid {
            return Ok((conn, RefreshOutcome::NotRefreshable));
        }
        let reason = "the access token expired and the provider issued no refresh token".to_owned();
        mark_expired(vault, &conn, &reason, false)?;
        return Err(Error::login(format!("{title} connection {connection:?} has expired: {reason}; {relogin}")));
    };
    match ask_provider(vault, provider, &conn, &refresh_token, http).await {
        Ok(resp) => Ok((store_refreshed(vault, provider, connection, &refresh_token, &resp)?, RefreshOutcome::Refreshed)),
        Err(Failure::Refused { why, dead }) => {
            if still_valid {
                if dead {
                    // The refresh token is dead but the access token works until it expires.
                    mark_dead_refresh(vault, &conn)?;
                }
                return Ok((conn, RefreshOutcome::FailedStillValid(why)));
            }
            mark_expired(vault, &conn, &why, dead)?;
            let fix = if dead {
                relogin
            } else {
                let refresh = LoginFix::new(provider.name(), Some(connection)).profile(home.profile()).refresh();
                format!("run `{refresh}` once the provider answers again, or {relogin}")
            };
            Err(Error::login(format!("{title} connection {connection:?} has expired ({why}); {fix}")))
        }
        Err(Failure::Other(e)) => Err(e),
    }
}

/// The refresh lock of one connection, shared by every authsome process.
async fn take_lock(home: &Home, provider: &str, connection: &str) -> Result<FileLock> {
    let path = lock_file(home, provider, connection);
    tokio::task::spawn_blocking(move || -> std::io::Result<FileLock> {
        ensure_private_dir(path.parent().expect("lock file has a parent"))?;
        FileLock::acquire(&path)
    })
    .await
    .map_err(|e| Error::other(e.to_string()))?
    .map_err(|e| Error::other(format!("cannot take the refresh lock: {e}")))
}

/// What a successful refresh returns.
type Refreshed = oauth2::basic::BasicTokenResponse;

/// The refresh-token grant at the provider's token endpoint.
async fn ask_provider(
    vault: &Vault,
    provider: &Provider,
    conn: &Connection,
    refresh_token: &Secret,
    http: &OAuthHttp,
) -> std::result::Result<Refreshed, Failure> {
    let title = provider.def.title();
    let ep = Endpoints::bound(provider, conn.base_url.as_deref(), &conn.values).map_err(Failure::Other)?;
    let creds = vault
        .load()
        .map_err(Failure::Other)?
        .clients
        .get(provider.name())
        .cloned()
        .ok_or_else(|| Failure::Refused { why: format!("no client credentials are stored for {title}"), dead: false })?;
    let client = oauth_client(&ep, &creds, None).map_err(Failure::Other)?;
    let rt = oauth2::RefreshToken::new(refresh_token.expose().to_owned());
    let req = client.exchange_refresh_token(&rt).map_err(|_| Failure::Other(Error::bad_input(format!("{title} has no token_url"))))?;
    req.request_async(http).await.map_err(|e| {
        let dead = matches!(&e, RequestTokenError::ServerResponse(r) if *r.error() == BasicErrorResponseType::InvalidGrant);
        Failure::Refused { why: describe(&e, "token refresh", &ep.token_host(), http), dead }
    })
}

/// Record the new tokens, unless a new login replaced the record meanwhile.
fn store_refreshed(vault: &Vault, provider: &Provider, connection: &str, refresh_token: &Secret, resp: &Refreshed) -> Result<Connection> {
    let now = now_unix();
    vault.update(|d| {
        let cur = d.connections.get_mut(&(provider.name().to_owned(), connection.to_owned()));
        let Some(cur) = cur else { return Err(Error::unknown(format!("connection {connection:?} was deleted during refresh"))) };
        if cur.refresh_token.as_ref() != Some(refresh_token) {
            // A new login replaced the record while we refreshed: keep it.
            return Ok(cur.clone());
        }
        cur.access_token = Some(Secret::new(resp.access_token().secret().clone()));
        if let Some(r) = resp.refresh_token() {
            cur.refresh_token = Some(Secret::new(r.secret().clone()));
        }
        cur.expires_at = resp.expires_in().map(|d| now + d.as_secs());
        cur.token_type = Some(token_type_name(resp));
        if resp.scopes().is_some() {
            cur.scopes = granted_scopes(resp, &cur.scopes);
        }
        cur.status = Status::Connected;
        cur.status_reason = None;
        cur.obtained_at = now;
        Ok(cur.clone())
    })
}

/// Why a refresh attempt produced no token.
enum Failure {
    /// The provider (or the network) said no; `dead` when the refresh token is invalid for good.
    Refused { why: String, dead: bool },
    /// A local problem (configuration, vault).
    Other(Error),
}

fn mark_expired(vault: &Vault, conn: &Connection, reason: &str, drop_refresh: bool) -> Result<()> {
    vault.update(|d| {
        if let Some(cur) = d.connections.get_mut(&(conn.provider.clone(), conn.name.clone())) {
            if cur.access_token == conn.access_token {
                cur.status = Status::Expired;
                cur.status_reason = Some(reason.to_owned());
                if drop_refresh {
                    cur.refresh_token = None;
                }
            }
        }
        Ok(())
    })
}

fn mark_dead_refresh(vault: &Vault, conn: &Connection) -> Result<()> {
    vault.update(|d| {
        if let Some(cur) = d.connections.get_mut(&(conn.provider.clone(), conn.name.clone())) {
            if cur.refresh_token == conn.refresh_token {
                cur.refresh_token = None;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_fresh_can_run_on_any_tokio_worker() {
        fn is_send<T: Send>(_: &T) {}
        let home = Home::at("/nonexistent-authsome-home", "default");
        let reg = crate::providers::Registry::load(&home).unwrap();
        let fut = ensure_fresh(&home, reg.get("discord").unwrap(), "default");
        is_send(&fut);
    }

    #[test]
    fn near_expiry_means_within_300_seconds() {
        let mut c = Connection::api_key("x", "default", Secret::new("k"));
        assert!(!needs_refresh(&c, 1000), "API keys never refresh");
        c.access_token = Some(Secret::new("t"));
        c.expires_at = Some(1000 + REFRESH_MARGIN_SECS + 1);
        assert!(!needs_refresh(&c, 1000));
        c.expires_at = Some(1000 + REFRESH_MARGIN_SECS);
        assert!(needs_refresh(&c, 1000));
    }
}
