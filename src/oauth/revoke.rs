//! Revocation at logout (RFC 7009): the access token, then the refresh token,
//! when the provider has a revocation endpoint. Failures are returned as
//! secret-free messages for the caller to report; they never keep the local record.

use super::client::OAuthHttp;
use super::tokens::{describe, oauth_client, Endpoints};
use crate::providers::Provider;
use crate::vault::{ClientCredentials, Connection};
use oauth2::StandardRevocableToken;

/// What revocation did.
#[derive(Debug, Default)]
pub struct Revocation {
    /// Tokens revoked ("access token", "refresh token").
    pub revoked: Vec<&'static str>,
    /// Problems, each one line.
    pub problems: Vec<String>,
}

/// Revoke `conn`'s tokens at `provider`. Nothing is sent when the provider has
/// no revocation endpoint or the connection holds no tokens.
pub async fn revoke(http: &OAuthHttp, provider: &Provider, creds: Option<&ClientCredentials>, conn: &Connection) -> Revocation {
    let mut out = Revocation::default();
    let ep = match Endpoints::of(provider, conn.base_url.as_deref()) {
        Ok(ep) => ep,
        Err(e) => {
            out.problems.push(e.message);
            return out;
        }
    };
    let Some(url) = ep.revocation.clone() else { return out };
    if conn.access_token.is_none() && conn.refresh_token.is_none() {
        return out;
    }
    let Some(creds) = creds else {
        out.problems.push(format!("no client credentials stored for {}, so the tokens could not be revoked", provider.def.title()));
        return out;
    };
    let client = match oauth_client(&ep, creds, None) {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(e.message);
            return out;
        }
    };
    let host = super::tokens::host_of(&url);
    let tokens = [
        (
            "access token",
            conn.access_token.as_ref().map(|t| StandardRevocableToken::AccessToken(oauth2::AccessToken::new(t.expose().to_owned()))),
        ),
        (
            "refresh token",
            conn.refresh_token.as_ref().map(|t| StandardRevocableToken::RefreshToken(oauth2::RefreshToken::new(t.expose().to_owned()))),
        ),
    ];
    for (what, token) in tokens {
        let Some(token) = token else { continue };
        let req = match client.revoke_token(token) {
            Ok(r) => r,
            Err(e) => {
                out.problems.push(format!("cannot revoke the {what}: {e}"));
                continue;
            }
        };
        match req.request_async(http).await {
            Ok(()) => out.revoked.push(what),
            Err(e) => out.problems.push(describe(&e, &format!("revoking the {what}"), &host, http)),
        }
    }
    out
}
