//! Dynamic client registration (RFC 7591) for `dcr_pkce` providers. The
//! registration endpoint comes from the definition, or from the RFC 8414
//! authorization server metadata when the definition does not give it. The
//! registered client is stored like hand-entered credentials and reused.

use super::client::OAuthHttp;
use super::tokens::{host_of, Endpoints};
use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::vault::{ClientCredentials, Secret};

/// The RFC 8414 metadata URL for the server hosting `endpoint`.
pub fn metadata_url(endpoint: &str) -> Result<String> {
    let u = url::Url::parse(endpoint).map_err(|e| Error::bad_input(format!("invalid URL {endpoint}: {e}")))?;
    Ok(format!("{}/.well-known/oauth-authorization-server", u.origin().ascii_serialization()))
}

/// The registration endpoint: the definition's, else the metadata's `registration_endpoint`.
pub async fn registration_endpoint(http: &OAuthHttp, provider: &Provider, ep: &Endpoints, base_url: Option<&str>) -> Result<String> {
    if let Some(r) = provider.def.registration.as_ref().and_then(|r| r.registration_endpoint.as_deref()) {
        return Ok(provider.def.template(r, base_url));
    }
    let anchor = ep.authorization.as_deref().unwrap_or(&ep.token);
    let meta = metadata_url(anchor)?;
    let (status, body) =
        http.get_json(&meta).await.map_err(|e| e.context(format!("discovering {}'s registration endpoint", provider.def.title())))?;
    if status != 200 {
        return Err(Error::login(format!("{} publishes no authorization server metadata at {meta} (HTTP {status})", provider.def.title())));
    }
    let reg = body.get("registration_endpoint").and_then(|v| v.as_str()).ok_or_else(|| {
        Error::login(format!(
            "{}'s metadata at {meta} names no registration_endpoint; it does not offer dynamic registration",
            provider.def.title()
        ))
    })?;
    crate::providers::def::check_endpoint(reg, true).map_err(|e| Error::login(format!("metadata at {meta}: {e}")))?;
    Ok(reg.to_owned())
}

/// Register a public client redirecting to `redirect_uri`.
pub async fn register(
    http: &OAuthHttp,
    provider: &Provider,
    ep: &Endpoints,
    base_url: Option<&str>,
    redirect_uri: &str,
) -> Result<ClientCredentials> {
    let endpoint = registration_endpoint(http, provider, ep, base_url).await?;
    let request = serde_json::json!({
        "client_name": "authsome",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let host = host_of(&endpoint);
    let (status, body) = http.post_json(&endpoint, &request).await.map_err(|e| e.context(format!("registering a client at {host}")))?;
    if status != 200 && status != 201 {
        let err = body.get("error").and_then(|v| v.as_str()).unwrap_or("no error code");
        let mut desc = body.get("error_description").and_then(|v| v.as_str()).map(|d| format!(": {d}")).unwrap_or_default();
        desc.truncate(300);
        return Err(Error::login(format!("client registration at {host} failed (HTTP {status}, {err}{desc})")));
    }
    let client_id = body
        .get("client_id")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::login(format!("client registration at {host} returned no client_id")))?;
    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret: body.get("client_secret").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(Secret::new),
        registered_at: Some(endpoint),
    })
}
