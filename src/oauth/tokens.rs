//! What every grant shares: the provider's endpoints after `{base_url}`
//! templating, the configured `oauth2` client, turning a token response into a
//! stored [`Connection`], and describing failures without leaking secrets.

use super::client::OAuthHttp;
use crate::error::{Error, Result};
use crate::fsutil::now_unix;
use crate::providers::def::{BodyFormat, ClientAuth};
use crate::providers::Provider;
use crate::vault::{ClientCredentials, Connection, Secret};
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{EndpointMaybeSet, EndpointNotSet, RequestTokenError, TokenResponse};
use std::collections::BTreeMap;

/// The `oauth2` client type used by every flow: each endpoint may or may not be configured.
pub type OClient = BasicClient<EndpointMaybeSet, EndpointMaybeSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A provider's endpoints with `{base_url}` substituted.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Browser authorization endpoint.
    pub authorization: Option<String>,
    /// Token endpoint.
    pub token: String,
    /// RFC 7009 revocation endpoint.
    pub revocation: Option<String>,
    /// RFC 8628 device authorization endpoint.
    pub device: Option<String>,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// Extra parameters of the authorization URL.
    pub authorize_params: BTreeMap<String, String>,
    /// Whether the device-flow poll sends a JSON body.
    pub device_json: bool,
}

impl Endpoints {
    /// Resolve the endpoints of `provider`, `base_url` overriding
    /// `oauth.base_url`, filling the connection's `{name}` values.
    pub fn bound(provider: &Provider, base_url: Option<&str>, values: &BTreeMap<String, String>) -> Result<Endpoints> {
        let o =
            provider.def.oauth.as_ref().ok_or_else(|| Error::bad_input(format!("{} is not an OAuth provider", provider.def.title())))?;
        let t = |u: &Option<String>| -> Result<Option<String>> {
            match u {
                None => Ok(None),
                Some(u) => {
                    let Some(url) = provider.def.bind(u, base_url, values) else {
                        let what = if u.contains("{base_url}") {
                            "a base URL: pass --base-url https://your-host"
                        } else {
                            "its login values (--value name=VALUE)"
                        };
                        return Err(Error::bad_input(format!("{} needs {what}", provider.def.title())));
                    };
                    crate::providers::def::check_endpoint(&url, true).map_err(Error::bad_input)?;
                    Ok(Some(url))
                }
            }
        };
        Ok(Endpoints {
            authorization: t(&o.authorization_url)?,
            token: t(&o.token_url)?.ok_or_else(|| Error::bad_input(format!("{} has no token_url", provider.def.title())))?,
            revocation: t(&o.revocation_url)?,
            device: t(&o.device_authorization_url)?,
            client_auth: o.authorization_method,
            authorize_params: o.authorization_params.clone(),
            device_json: o.device_token_request == BodyFormat::Json,
        })
    }

    /// Host of the token endpoint, for messages.
    pub fn token_host(&self) -> String {
        host_of(&self.token)
    }
}

/// The host part of a URL, for messages (`?` when unparsable).
pub fn host_of(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| "?".to_owned())
}

/// An `oauth2` client for `creds` against `ep`, redirecting to `redirect` when given.
pub fn oauth_client(ep: &Endpoints, creds: &ClientCredentials, redirect: Option<&str>) -> Result<OClient> {
    let bad = |what: &str, e: url::ParseError| Error::bad_input(format!("invalid {what} URL: {e}"));
    let mut c = BasicClient::new(oauth2::ClientId::new(creds.client_id.clone()))
        .set_auth_uri_option(ep.authorization.clone().map(oauth2::AuthUrl::new).transpose().map_err(|e| bad("authorization", e))?)
        .set_device_authorization_url_option(
            ep.device.clone().map(oauth2::DeviceAuthorizationUrl::new).transpose().map_err(|e| bad("device authorization", e))?,
        )
        .set_revocation_url_option(ep.revocation.clone().map(oauth2::RevocationUrl::new).transpose().map_err(|e| bad("revocation", e))?)
        .set_token_uri_option(Some(oauth2::TokenUrl::new(ep.token.clone()).map_err(|e| bad("token", e))?));
    if let Some(s) = &creds.client_secret {
        if !s.expose().is_empty() {
            c = c.set_client_secret(oauth2::ClientSecret::new(s.expose().to_owned()));
        }
    }
    c = c.set_auth_type(match ep.client_auth {
        ClientAuth::Basic => oauth2::AuthType::BasicAuth,
        ClientAuth::Body => oauth2::AuthType::RequestBody,
    });
    if let Some(r) = redirect {
        c = c.set_redirect_uri(oauth2::RedirectUrl::new(r.to_owned()).map_err(|e| bad("redirect", e))?);
    }
    Ok(c)
}

/// Scopes from a token response's `scope` (space- or comma-separated; GitHub
/// uses commas), else the ones requested.
pub fn granted_scopes(resp: &BasicTokenResponse, requested: &[String]) -> Vec<String> {
    match resp.scopes() {
        Some(s) => s.iter().flat_map(|s| s.as_str().split([',', ' '])).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None => requested.to_vec(),
    }
}

/// A connected record built from a fresh token response.
pub fn new_connection(provider: &str, name: &str, resp: &BasicTokenResponse, requested: &[String], base_url: Option<&str>) -> Connection {
    let now = now_unix();
    Connection {
        scopes: granted_scopes(resp, requested),
        refresh_token: resp.refresh_token().map(|r| Secret::new(r.secret().clone())),
        token_type: Some(token_type_name(resp)),
        expires_at: resp.expires_in().map(|d| now + d.as_secs()),
        obtained_at: now,
        base_url: base_url.map(str::to_owned),
        ..Connection::oauth(provider, name, Secret::new(resp.access_token().secret().clone()))
    }
}

/// `Bearer` (or whatever the provider called it), capitalised the usual way.
pub fn token_type_name(resp: &BasicTokenResponse) -> String {
    match resp.token_type() {
        oauth2::basic::BasicTokenType::Bearer => "Bearer".to_owned(),
        oauth2::basic::BasicTokenType::Mac => "MAC".to_owned(),
        oauth2::basic::BasicTokenType::Extension(s) => s.clone(),
    }
}

/// Human text for a failed token-endpoint exchange: the provider's error code
/// and description, the HTTP status, or the transport error. Never a body.
pub fn describe<T: oauth2::ErrorResponse + std::fmt::Display>(
    err: &RequestTokenError<super::client::HttpError, T>,
    what: &str,
    host: &str,
    http: &OAuthHttp,
) -> String {
    let status = http.last_status().map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    match err {
        RequestTokenError::ServerResponse(r) => {
            let mut text = r.to_string();
            text.truncate(300);
            format!("{what} refused by {host}{status}: {text}")
        }
        RequestTokenError::Request(e) => format!("{what} failed: {e}"),
        RequestTokenError::Parse(_, _) => format!("{what} failed: {host} sent an unexpected response{status}"),
        RequestTokenError::Other(s) => format!("{what} failed: {host}{status}: {s}"),
    }
}
