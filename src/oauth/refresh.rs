//! Keeping tokens fresh. A token expiring within [`REFRESH_MARGIN_SECS`] is
//! refreshed under a lock shared by every authsome process, one per
//! (profile, provider, connection); the vault is re-read inside the lock, so a
//! process that waited finds the token already refreshed and never spends the
//! same refresh token twice. Rotated refresh tokens are saved. A failed refresh
//! keeps a still-valid token; past expiry the connection is marked `expired`
//! with the reason.
//!
//! With a team store the machine-wide lock is the first layer, and a lease in
//! the store (granted by the database clock, fenced by an epoch) makes the
//! refresh single-flight across hosts: no token request is started with less
//! lease left than its timeout plus a margin, and the result is written with a
//! compare-and-set, so a holder whose lease lapsed can never bury a newer token
//! (its orphan tokens are revoked instead, RFC 7009). See README, "Team store".

use super::client::OAuthHttp;
use super::tokens::{describe, granted_scopes, oauth_client, token_type_name, Endpoints};
use super::REFRESH_MARGIN_SECS;
use crate::error::{Error, Result};
use crate::fix::LoginFix;
use crate::fsutil::ensure_private_dir;
use crate::fsutil::{now_unix, FileLock};
use crate::paths::Home;
use crate::providers::Provider;
use crate::store::{pg, RefreshLease, Store};
use crate::vault::{Connection, Secret, Status};
use oauth2::basic::BasicErrorResponseType;
use oauth2::{RequestTokenError, TokenResponse};
use std::time::{Duration, Instant};

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
    ensure_fresh_with(&Store::open(home)?, home, provider, connection).await?.ok_or_else(|| not_logged_in(provider, connection))
}

/// [`ensure_fresh`] with a vault the caller keeps open (the proxy opens one per
/// run, so no key lookup happens per request), saying "not logged in" as
/// `None`: what the proxy's credential source calls before each injection.
/// The fast path only decrypts the vault; the HTTP client and the lock exist
/// only when a refresh is due.
pub async fn ensure_fresh_with(vault: &Store, home: &Home, provider: &Provider, connection: &str) -> Result<Option<Connection>> {
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
    refresh_in(&Store::open(home)?, Wanted { home, provider, connection, force }, http).await
}

/// The connection a refresh is for, and whether it is forced.
struct Wanted<'a> {
    home: &'a Home,
    provider: &'a Provider,
    connection: &'a str,
    force: bool,
}

/// The refresh itself: take the lock (and a team store's lease), re-read the
/// record, then either find the work done or go on in [`refresh_holding`].
async fn refresh_in(store: &Store, wanted: Wanted<'_>, http: &OAuthHttp) -> Result<(Connection, RefreshOutcome)> {
    let Wanted { home, provider, connection, force } = wanted;
    let before = find(&store.load()?, provider, connection)?;
    if !force && !needs_refresh(&before, now_unix()) {
        return Ok((before, RefreshOutcome::StillFresh));
    }
    let _lock = take_lock(home, provider.name(), connection).await?;
    loop {
        let lease = match store {
            Store::File(_) => RefreshLease::Local,
            Store::Pg(p) => match shared_lease(p, store, provider, connection, &before).await? {
                Ok(l) => RefreshLease::Shared(l),
                Err(theirs) => return Ok((theirs, RefreshOutcome::RefreshedElsewhere)),
            },
        };
        let mut guard = LeaseGuard::new(store, lease);
        if let Some(pause) = test_pause_after_lease() {
            tokio::time::sleep(pause).await;
        }
        // Inside the lock: the record may have changed while we waited.
        let conn = find(&store.load_fresh()?, provider, connection)?;
        let now = now_unix();
        // Someone refreshed while we waited: use their token rather than spending theirs again.
        if conn.access_token != before.access_token && conn.status == Status::Connected && conn.expires_at.is_none_or(|e| e > now) {
            return Ok((conn, RefreshOutcome::RefreshedElsewhere));
        }
        if !force && !needs_refresh(&conn, now) {
            return Ok((conn, RefreshOutcome::StillFresh));
        }
        // Never start a request that could outlive the lease: it is sent only
        // with its whole timeout plus a margin of lease left; otherwise the
        // lease is given back and a fresh one taken.
        let http = match guard.lease_timing(http.timeout()) {
            None => http.clone(),
            Some((_, needed)) if guard.remaining() < needed => {
                guard.finish("not_started");
                continue;
            }
            Some((timeout, _)) => http.clone().with_timeout(timeout),
        };
        let wanted = Wanted { home, provider, connection, force };
        return refresh_holding(store, &mut guard, wanted, conn, &http).await;
    }
}

/// The refresh under the lock (and lease): give up on a token that cannot be
/// refreshed, or ask the provider and record the answer.
async fn refresh_holding(
    store: &Store,
    guard: &mut LeaseGuard<'_>,
    wanted: Wanted<'_>,
    conn: Connection,
    http: &OAuthHttp,
) -> Result<(Connection, RefreshOutcome)> {
    let Wanted { home, provider, connection, .. } = wanted;
    let now = now_unix();
    let still_valid = conn.status == Status::Connected && conn.expires_at.is_none_or(|e| e > now);
    let title = provider.def.title();
    let relogin = LoginFix::new(provider.name(), Some(connection)).profile(home.profile()).hint();

    let Some(refresh_token) = conn.refresh_token.clone() else {
        if still_valid {
            return Ok((conn, RefreshOutcome::NotRefreshable));
        }
        let reason = "the access token expired and the provider issued no refresh token".to_owned();
        mark_expired(store, &conn, &reason, false)?;
        return Err(Error::login(format!("{title} connection {connection:?} has expired: {reason}; {relogin}")));
    };
    let creds = store.load_fresh()?.clients.get(provider.name()).cloned();
    let lease = guard.shared().cloned();
    match ask_provider(creds.as_ref(), provider, &conn, &refresh_token, http).await {
        Ok(resp) => {
            let (stored, ours) = store_refreshed(store, provider, connection, &refresh_token, &resp)?;
            let Some(orphan) = ours else {
                guard.finish("ok");
                store.audit("refresh", provider.name(), connection, None, lease.as_ref());
                return Ok((stored, RefreshOutcome::Refreshed));
            };
            guard.finish("discarded");
            // Our tokens lost the race: revoke them so no stray valid token is left (RFC 7009).
            let revoked = super::revoke::revoke(http, provider, creds.as_ref(), &orphan).await;
            let note =
                if revoked.revoked.is_empty() { "not revoked (no revocation endpoint or it failed)" } else { "revoked at the provider" };
            let why = format!("a newer record was already stored; our tokens were {note}");
            store.audit("refresh_discarded", provider.name(), connection, Some(why), lease.as_ref());
            // The newer record may say the connection is dead (another host's
            // refresh failed meanwhile): that is the outcome, not a success.
            if stored.status != Status::Connected {
                let reason = stored.status_reason.clone().unwrap_or_else(|| "marked expired by another host".into());
                return Err(Error::login(format!("{title} connection {connection:?} has expired ({reason}); {relogin}")));
            }
            Ok((stored, RefreshOutcome::RefreshedElsewhere))
        }
        Err(Failure::Refused { why, dead }) => {
            guard.finish(if http.last_status().is_some() { "failed" } else { "unknown" });
            // After taking over from a holder that never finished, an invalid_grant
            // most likely means that holder spent the token: say so.
            let took_over = lease.as_ref().and_then(|l| l.took_over.clone());
            let why = match (&took_over, dead) {
                (Some(prev), true) => format!("{why}; the lease was taken over from {prev}, which may have spent the refresh token"),
                _ => why,
            };
            store.audit("refresh_failed", provider.name(), connection, Some(why.clone()), lease.as_ref());
            if still_valid {
                if dead && took_over.is_none() {
                    // The refresh token is dead but the access token works until it expires.
                    mark_dead_refresh(store, &conn)?;
                }
                return Ok((conn, RefreshOutcome::FailedStillValid(why)));
            }
            mark_expired(store, &conn, &why, dead)?;
            let fix = if dead {
                relogin
            } else {
                let refresh = LoginFix::new(provider.name(), Some(connection)).profile(home.profile()).refresh();
                format!("run `{refresh}` once the provider answers again, or {relogin}")
            };
            Err(Error::login(format!("{title} connection {connection:?} has expired ({why}); {fix}")))
        }
        Err(Failure::Other(e)) => {
            guard.finish("not_started");
            Err(e)
        }
    }
}

/// Take the team store's refresh lease, waiting while another host holds it.
/// `Err(conn)` when that host refreshed meanwhile (its token is the answer).
async fn shared_lease(
    p: &pg::PgStore,
    store: &Store,
    provider: &Provider,
    connection: &str,
    before: &Connection,
) -> Result<std::result::Result<pg::Lease, Connection>> {
    let length = crate::store::lease_length();
    let deadline = Instant::now() + length * 2 + Duration::from_secs(5);
    let mut wait = 0u32;
    loop {
        match p.try_lease(provider.name(), connection, length)? {
            pg::LeaseTry::Granted(l) => {
                if let Some(prev) = &l.took_over {
                    store.audit("lease_expired_takeover", provider.name(), connection, Some(format!("took over from {prev}")), Some(&l));
                }
                return Ok(Ok(l));
            }
            pg::LeaseTry::Busy(who) => {
                if Instant::now() > deadline {
                    return Err(Error::other(format!(
                        "the refresh of {} ({connection}) is held by {who} in {}; try again later",
                        provider.name(),
                        store.describe()
                    )));
                }
                wait += 1;
                let jitter = u64::from(std::process::id() % 7) * 15 + u64::from(wait % 5) * 10;
                tokio::time::sleep(Duration::from_millis(150 + jitter)).await;
                let conn = find(&store.load_fresh()?, provider, connection)?;
                let now = now_unix();
                if conn.access_token != before.access_token && conn.status == Status::Connected && !needs_refresh(&conn, now) {
                    return Ok(Err(conn));
                }
            }
        }
    }
}

/// `AUTHSOME_TEST_PAUSE_AFTER_LEASE` (milliseconds): a test seam that lets a
/// test kill a lease holder before it sends anything.
fn test_pause_after_lease() -> Option<Duration> {
    std::env::var("AUTHSOME_TEST_PAUSE_AFTER_LEASE").ok()?.parse().ok().map(Duration::from_millis)
}

/// A held refresh lease, released when dropped (fenced by its epoch) with
/// the outcome recorded by [`LeaseGuard::finish`], else `not_started`.
struct LeaseGuard<'a> {
    store: &'a Store,
    lease: RefreshLease,
    released: bool,
}

impl<'a> LeaseGuard<'a> {
    fn new(store: &'a Store, lease: RefreshLease) -> LeaseGuard<'a> {
        LeaseGuard { store, lease, released: false }
    }

    /// Under a shared lease: the token request's timeout (the HTTP timeout,
    /// shortened only when the configured lease is too short to hold it with
    /// two margins) and the lease that must be left to start it (timeout +
    /// margin). `None` for the machine-local lock, which never lapses.
    fn lease_timing(&self, http_timeout: Duration) -> Option<(Duration, Duration)> {
        let RefreshLease::Shared(l) = &self.lease else { return None };
        Some(lease_timing(l.length, http_timeout))
    }

    fn remaining(&self) -> Duration {
        match &self.lease {
            RefreshLease::Shared(l) => l.remaining(),
            RefreshLease::Local => Duration::MAX,
        }
    }

    fn shared(&self) -> Option<&pg::Lease> {
        match &self.lease {
            RefreshLease::Shared(l) => Some(l),
            RefreshLease::Local => None,
        }
    }

    fn finish(&mut self, outcome: &str) {
        if self.released {
            return;
        }
        self.released = true;
        if let (Store::Pg(p), RefreshLease::Shared(l)) = (self.store, &self.lease) {
            if let Err(e) = p.release(l, outcome) {
                eprintln!("authsome: could not release the refresh lease ({}); it lapses on its own", e.message);
            }
        }
    }
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        self.finish("not_started");
    }
}

/// (request timeout, lease needed to start it) for a lease of `length`.
fn lease_timing(length: Duration, http_timeout: Duration) -> (Duration, Duration) {
    let margin = crate::store::lease_margin(length);
    let timeout = http_timeout.min(length.saturating_sub(margin * 2));
    (timeout, timeout + margin)
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
    creds: Option<&crate::vault::ClientCredentials>,
    provider: &Provider,
    conn: &Connection,
    refresh_token: &Secret,
    http: &OAuthHttp,
) -> std::result::Result<Refreshed, Failure> {
    let title = provider.def.title();
    let ep = Endpoints::bound(provider, conn.base_url.as_deref(), &conn.values).map_err(Failure::Other)?;
    let creds = creds.ok_or_else(|| Failure::Refused { why: format!("no client credentials are stored for {title}"), dead: false })?;
    let client = oauth_client(&ep, creds, None).map_err(Failure::Other)?;
    let rt = oauth2::RefreshToken::new(refresh_token.expose().to_owned());
    let req = client.exchange_refresh_token(&rt).map_err(|_| Failure::Other(Error::bad_input(format!("{title} has no token_url"))))?;
    req.request_async(http).await.map_err(|e| {
        let dead = matches!(&e, RequestTokenError::ServerResponse(r) if *r.error() == BasicErrorResponseType::InvalidGrant);
        Failure::Refused { why: describe(&e, "token refresh", &ep.token_host(), http), dead }
    })
}

/// Record the new tokens with a compare-and-set on the refresh token this
/// refresh started from. When another writer got there first (a new login,
/// or a holder whose lease lapsed), their record stays and ours comes back
/// as the orphan to revoke.
fn store_refreshed(
    store: &Store,
    provider: &Provider,
    connection: &str,
    refresh_token: &Secret,
    resp: &Refreshed,
) -> Result<(Connection, Option<Connection>)> {
    let now = now_unix();
    store.update(|d| {
        let cur = d.connections.get_mut(&(provider.name().to_owned(), connection.to_owned()));
        let Some(cur) = cur else { return Err(Error::unknown(format!("connection {connection:?} was deleted during refresh"))) };
        let mut ours = cur.clone();
        ours.access_token = Some(Secret::new(resp.access_token().secret().clone()));
        if let Some(r) = resp.refresh_token() {
            ours.refresh_token = Some(Secret::new(r.secret().clone()));
        }
        ours.expires_at = resp.expires_in().map(|d| now + d.as_secs());
        ours.token_type = Some(token_type_name(resp));
        if resp.scopes().is_some() {
            ours.scopes = granted_scopes(resp, &cur.scopes);
        }
        ours.status = Status::Connected;
        ours.status_reason = None;
        ours.obtained_at = now;
        if cur.refresh_token.as_ref() != Some(refresh_token) {
            return Ok((cur.clone(), Some(ours)));
        }
        *cur = ours;
        Ok((cur.clone(), None))
    })
}

/// Why a refresh attempt produced no token.
enum Failure {
    /// The provider (or the network) said no; `dead` when the refresh token is invalid for good.
    Refused { why: String, dead: bool },
    /// A local problem (configuration, vault).
    Other(Error),
}

/// Mark `conn` expired, only if the record is still exactly what this refresh
/// read: a newer record (a login, or another host's outcome written while a
/// stalled holder's lease had lapsed) is never overwritten by a stale verdict.
fn mark_expired(vault: &Store, conn: &Connection, reason: &str, drop_refresh: bool) -> Result<()> {
    vault.update(|d| {
        if let Some(cur) = d.connections.get_mut(&(conn.provider.clone(), conn.name.clone())) {
            if *cur == *conn {
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

fn mark_dead_refresh(vault: &Store, conn: &Connection) -> Result<()> {
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
    fn a_token_request_is_started_only_with_its_timeout_plus_a_margin_of_lease_left() {
        let s = Duration::from_secs;
        // Defaults: a 120 s lease, the 30 s HTTP timeout, a 15 s margin.
        assert_eq!(lease_timing(s(120), s(30)), (s(30), s(45)));
        // A lease too short for the timeout: the request is shortened so a fresh lease can hold it.
        let (timeout, needed) = lease_timing(s(3), s(30));
        assert_eq!(timeout, Duration::from_millis(2250));
        assert!(needed < s(3), "a fresh 3 s lease is enough to start");
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
