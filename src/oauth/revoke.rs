//! Revocation at logout (RFC 7009): the access token, then the refresh token,
//! when the provider has a revocation endpoint. Failures are returned as
//! secret-free messages for the caller to report; they never keep the local record.
//!
//! Written directly over [`OAuthHttp`] rather than with the `oauth2` crate,
//! which refuses plain-http revocation endpoints even on loopback (README.md
//! allows those for local providers).

use super::client::OAuthHttp;
use super::tokens::{host_of, Endpoints};
use crate::providers::Provider;
use crate::vault::{ClientCredentials, Connection};
use base64::Engine as _;

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
    let ep = match Endpoints::bound(provider, conn.base_url.as_deref(), &conn.values) {
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
    let tokens = [("access token", "access_token", &conn.access_token), ("refresh token", "refresh_token", &conn.refresh_token)];
    for (what, hint, token) in tokens {
        let Some(token) = token else { continue };
        match revoke_one(http, &url, creds, token.expose(), hint).await {
            Ok(()) => out.revoked.push(what),
            Err(why) => out.problems.push(format!("revoking the {what} at {} failed: {why}", host_of(&url))),
        }
    }
    out
}

/// One RFC 7009 request, authenticating the client the RFC 6749 §2.3.1 way
/// (HTTP Basic with a secret, `client_id` in the body for public clients).
async fn revoke_one(http: &OAuthHttp, url: &str, creds: &ClientCredentials, token: &str, hint: &str) -> Result<(), String> {
    let req = revocation_request(url, creds, token, hint)?;
    let resp = http.send(req).await.map_err(|e| e.0)?;
    let status = resp.status().as_u16();
    if status == 200 {
        return Ok(());
    }
    let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
    let code = body.get("error").and_then(|v| v.as_str()).map(|e| format!(", {e}")).unwrap_or_default();
    Err(format!("HTTP {status}{code}"))
}

/// The request of [`revoke_one`], built outside the async function because
/// the form serializer is not `Send` (the refresh path runs on any worker).
fn revocation_request(url: &str, creds: &ClientCredentials, token: &str, hint: &str) -> Result<http::Request<Vec<u8>>, String> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token).append_pair("token_type_hint", hint);
    let mut req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json");
    match creds.client_secret.as_ref().filter(|s| !s.expose().is_empty()) {
        Some(secret) => {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(&creds.client_id), enc(secret.expose())));
            req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        None => {
            form.append_pair("client_id", &creds.client_id);
        }
    }
    req.body(form.finish().into_bytes()).map_err(|e| format!("invalid revocation URL: {e}"))
}
