//! Login flows: the authorization-code flow with and without PKCE,
//! the device flow (RFC 8628), dynamic client registration (RFC 7591/8414),
//! API-key entry, token refresh under a cross-process lock, and revocation
//! (RFC 7009). The standard grants go through the `oauth2` crate over
//! authsome's own redirect-free HTTP client.
//!
//! One concern per module: [`client`] (transport), [`tokens`] (endpoints and
//! token responses), [`server`] + [`pages`] (the local login server),
//! [`browser`] + [`input`] (how the user is reached), [`creds`] (client
//! credentials), [`authcode`], [`device`], [`dcr`], [`refresh`], [`revoke`],
//! and [`login`], which strings them together for `authsome login`.

pub(crate) mod authcode;
pub(crate) mod browser;
pub mod client;
pub(crate) mod creds;
pub(crate) mod dcr;
pub(crate) mod device;
pub(crate) mod input;
pub mod login;
pub(crate) mod pages;
pub mod refresh;
pub(crate) mod revoke;
pub(crate) mod server;
pub(crate) mod tokens;

pub use browser::Opener;
pub use refresh::{ensure_fresh, ensure_fresh_with, needs_refresh, refresh_connection, RefreshOutcome};

use crate::error::{Error, Result};
use std::net::SocketAddr;

/// Where the login server listens unless `AUTHSOME_CALLBACK_ADDR` moves it; fixed by README.md, never changed.
pub const DEFAULT_CALLBACK_ADDR: &str = "127.0.0.1:7998";

/// Path of the redirect the provider sends the browser back to (README.md).
pub const CALLBACK_PATH: &str = "/auth/callback/oauth";

/// A token expiring within this many seconds is refreshed before use.
pub const REFRESH_MARGIN_SECS: u64 = 300;

/// The login server address: `AUTHSOME_CALLBACK_ADDR`, else `127.0.0.1:7998`.
pub fn callback_addr() -> Result<SocketAddr> {
    match std::env::var("AUTHSOME_CALLBACK_ADDR") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|_| Error::bad_input(format!("AUTHSOME_CALLBACK_ADDR={v:?} is not an address like 127.0.0.1:7998")))
        }
        _ => Ok(DEFAULT_CALLBACK_ADDR.parse().expect("default callback address parses")),
    }
}

/// The redirect URI to register at a provider for the login server at `addr`:
/// `http://127.0.0.1:7998/auth/callback/oauth` by default.
pub fn redirect_uri(addr: SocketAddr) -> String {
    format!("http://{addr}{CALLBACK_PATH}")
}
