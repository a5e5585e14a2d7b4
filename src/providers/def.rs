//! The provider definition (README.md, `schema/provider.schema.json`) as Rust
//! types, plus the semantic checks the JSON shape alone cannot express.
//!
//! Field names follow the existing provider-file ecosystem so that files written for it load
//! unchanged; authsome's extensions (`api_key.location`, `query_param`,
//! `basic_position`) are optional and default to the reference behaviour.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The placeholder every exported variable holds in a child's environment (README.md).
pub const PLACEHOLDER: &str = "authsome-proxy-managed";

/// Highest `schema_version` this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// A provider definition, exactly as stored in a provider JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDef {
    /// Editor hint (`"$schema": ".../provider.schema.json"`); ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<String>,
    /// Version of this file format; `1` today.
    #[serde(default = "one")]
    pub schema_version: u32,
    /// Lower-case identifier used on the command line (`discord`).
    pub name: String,
    /// Human name (`Discord`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `oauth2` or `api_key`.
    pub auth_type: AuthType,
    /// Default login flow.
    pub flow: Flow,
    /// Hosts (or URL prefixes, or `regex:` patterns) that receive the credential.
    pub api_url: ApiUrl,
    /// OAuth endpoints and options; required when `auth_type` is `oauth2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthDef>,
    /// Dynamic client registration (RFC 7591) settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<RegistrationDef>,
    /// How an API key is presented; required when `auth_type` is `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyDef>,
    /// Variables exported to a child, each holding the placeholder.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub export: BTreeMap<String, ExportSource>,
    /// Where a human registers an app or creates a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
}

fn one() -> u32 {
    1
}

/// Credential kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// OAuth 2.0 access/refresh tokens.
    Oauth2,
    /// A static API key.
    ApiKey,
}

/// Login flow (also the values of `authsome login --flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Flow {
    /// Browser authorization-code flow (with PKCE unless `oauth.pkce` is false).
    Pkce,
    /// RFC 8628 device authorization grant.
    DeviceCode,
    /// RFC 7591 dynamic client registration, then PKCE.
    DcrPkce,
    /// A key typed, pasted or piped in.
    ApiKey,
}

impl Flow {
    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Pkce => "pkce",
            Flow::DeviceCode => "device_code",
            Flow::DcrPkce => "dcr_pkce",
            Flow::ApiKey => "api_key",
        }
    }
}

/// `api_url`: one entry or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiUrl {
    /// A single host, URL prefix or `regex:` pattern.
    One(String),
    /// Several of them.
    Many(Vec<String>),
}

impl ApiUrl {
    /// Every entry, whichever form was written.
    pub fn entries(&self) -> Vec<&str> {
        match self {
            ApiUrl::One(s) => vec![s.as_str()],
            ApiUrl::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// OAuth 2.0 settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthDef {
    /// Authorization endpoint (browser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// Token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// RFC 7009 revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<String>,
    /// RFC 8628 device authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_url: Option<String>,
    /// Default scopes requested at login.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether a PKCE S256 challenge is sent; `false` is the plain code flow.
    #[serde(default = "yes")]
    pub pkce: bool,
    /// Whether the device flow is offered.
    #[serde(default)]
    pub supports_device_code: bool,
    /// Whether dynamic client registration is offered.
    #[serde(default)]
    pub supports_dcr: bool,
    /// Value substituted for `{base_url}` in URLs (GitHub Enterprise and the like).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

fn yes() -> bool {
    true
}

/// RFC 7591 settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationDef {
    /// Registration endpoint; discovered via RFC 8414 metadata when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
}

/// Where an API key goes in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    /// `<header_name>: <header_prefix> <key>` (the reference behaviour).
    #[default]
    Header,
    /// HTTP Basic authentication (`Authorization: Basic base64(user:pass)`).
    Basic,
    /// A query parameter named `query_param`.
    Query,
}

/// Which half of the Basic credentials holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasicPosition {
    /// `key:` (Ashby, Stripe).
    #[default]
    Username,
    /// `:key`.
    Password,
}

/// API key presentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyDef {
    /// Header carrying the key when `location` is `header`.
    #[serde(default = "authorization")]
    pub header_name: String,
    /// Text before the key, separated by one space (`Bearer`); empty for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_prefix: Option<String>,
    /// Regular expression a valid key matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pattern: Option<String>,
    /// What to tell a user whose key does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pattern_hint: Option<String>,
    /// Variable a CI job may hold the key in (`authsome exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
    /// authsome extension: `header` (default), `basic` or `query`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub location: KeyLocation,
    /// authsome extension: query parameter name when `location` is `query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
    /// authsome extension: Basic half holding the key when `location` is `basic`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub basic_position: BasicPosition,
}

fn authorization() -> String {
    "Authorization".to_owned()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What an exported variable stands for. The child only ever sees the placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportSource {
    /// The OAuth access token.
    #[serde(rename = "ACCESS_TOKEN")]
    AccessToken,
    /// The refresh token: accepted in files but never exported (README.md).
    #[serde(rename = "REFRESH_TOKEN")]
    RefreshToken,
    /// The API key.
    #[serde(rename = "API_KEY")]
    ApiKey,
}

/// A semantic problem, located by a JSON pointer into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// RFC 6901 pointer to the offending value (`/oauth/token_url`).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl ProviderDef {
    /// Display name, falling back to the identifier.
    pub fn title(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// Variables exported to a child (refresh tokens excluded).
    pub fn exported_vars(&self) -> impl Iterator<Item = &str> {
        self.export.iter().filter(|(_, s)| **s != ExportSource::RefreshToken).map(|(k, _)| k.as_str())
    }

    /// Replace `{base_url}` in `url` with the effective base URL.
    pub fn template(&self, url: &str, base_override: Option<&str>) -> String {
        match base_override.or(self.oauth.as_ref().and_then(|o| o.base_url.as_deref())) {
            Some(base) => url.replace("{base_url}", base.trim_end_matches('/')),
            None => url.to_owned(),
        }
    }

    /// Checks the serde shape cannot express; empty when the definition is sound.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Problems::default();
        if self.schema_version == 0 || self.schema_version > SCHEMA_VERSION {
            out.bad("/schema_version", format!("unsupported schema_version {} (this build reads 1)", self.schema_version));
        }
        if !valid_name(&self.name) {
            out.bad("/name", format!("name {:?} must be lower-case letters, digits, '-' or '_', starting with a letter", self.name));
        }
        self.api_url_problems(&mut out);
        match (self.auth_type, self.flow) {
            (AuthType::ApiKey, Flow::ApiKey) | (AuthType::Oauth2, Flow::Pkce | Flow::DeviceCode | Flow::DcrPkce) => {}
            (a, f) => out.bad("/flow", format!("flow {:?} does not fit auth_type {:?}", f.as_str(), auth_name(a))),
        }
        match (self.auth_type, &self.oauth, &self.api_key) {
            (AuthType::Oauth2, None, _) => out.bad("/auth_type", "an oauth2 provider needs an \"oauth\" object".into()),
            (AuthType::Oauth2, Some(o), _) => self.oauth_problems(o, &mut out),
            (AuthType::ApiKey, _, None) => out.bad("/auth_type", "an api_key provider needs an \"api_key\" object".into()),
            (AuthType::ApiKey, _, Some(k)) => api_key_problems(k, &mut out),
        }
        for (var, src) in &self.export {
            if !crate::text::valid_env_name(var) {
                out.bad(&format!("/export/{var}"), format!("{var:?} is not a valid environment variable name"));
            }
            let fits = matches!(
                (self.auth_type, src),
                (AuthType::Oauth2, ExportSource::AccessToken | ExportSource::RefreshToken) | (AuthType::ApiKey, ExportSource::ApiKey)
            );
            if !fits {
                out.bad(&format!("/export/{var}"), format!("{} provider cannot export {src:?}", auth_name(self.auth_type)));
            }
        }
        out.0
    }

    fn api_url_problems(&self, out: &mut Problems) {
        let entries = self.api_url.entries();
        if entries.is_empty() {
            out.bad("/api_url", "api_url must name at least one host".into());
        }
        for (i, entry) in entries.iter().enumerate() {
            let pointer = match self.api_url {
                ApiUrl::One(_) => "/api_url".to_owned(),
                ApiUrl::Many(_) => format!("/api_url/{i}"),
            };
            if let Err(e) = super::hosts::HostPattern::parse(entry) {
                out.bad(&pointer, e);
            }
        }
    }

    fn oauth_problems(&self, o: &OAuthDef, out: &mut Problems) {
        let urls = [
            ("authorization_url", &o.authorization_url),
            ("token_url", &o.token_url),
            ("revocation_url", &o.revocation_url),
            ("device_authorization_url", &o.device_authorization_url),
        ];
        for (field, url) in urls {
            if let Some(u) = url {
                if let Err(e) = check_endpoint(&self.template(u, None), o.base_url.is_some() || !u.contains("{base_url}")) {
                    out.bad(&format!("/oauth/{field}"), e);
                }
            }
        }
        if let Some(b) = &o.base_url {
            if let Err(e) = check_endpoint(b, true) {
                out.bad("/oauth/base_url", e);
            }
        }
        if o.token_url.is_none() {
            out.bad("/oauth", "missing token_url".into());
        }
        if matches!(self.flow, Flow::Pkce | Flow::DcrPkce) && o.authorization_url.is_none() {
            out.bad("/oauth", "the browser flow needs authorization_url".into());
        }
        if self.flow == Flow::DeviceCode && o.device_authorization_url.is_none() {
            out.bad("/oauth", "flow device_code needs device_authorization_url".into());
        }
        if let Some(reg) = self.registration.as_ref().and_then(|r| r.registration_endpoint.as_ref()) {
            if let Err(e) = check_endpoint(reg, true) {
                out.bad("/registration/registration_endpoint", e);
            }
        }
    }
}

fn auth_name(a: AuthType) -> &'static str {
    match a {
        AuthType::Oauth2 => "oauth2",
        AuthType::ApiKey => "api_key",
    }
}

/// Problems found so far, each at a JSON pointer.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn bad(&mut self, pointer: &str, message: String) {
        self.0.push(Problem { pointer: pointer.to_owned(), message });
    }
}

fn api_key_problems(k: &ApiKeyDef, out: &mut Problems) {
    if let Some(p) = &k.key_pattern {
        if let Err(e) = regex_lite::Regex::new(p) {
            out.bad("/api_key/key_pattern", format!("invalid regular expression: {e}"));
        }
    }
    if k.location == KeyLocation::Query && k.query_param.as_deref().unwrap_or("").is_empty() {
        out.bad("/api_key/query_param", "location \"query\" needs a query_param".into());
    }
    if k.location == KeyLocation::Header && !valid_header_name(&k.header_name) {
        out.bad("/api_key/header_name", format!("{:?} is not a valid HTTP header name", k.header_name));
    }
}

/// Provider and connection names: a letter, then letters, digits, `-` or `_`.
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.len() <= 64
}

fn valid_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Endpoints are https, except loopback hosts, which may be http (README.md).
pub fn check_endpoint(url: &str, templated_ok: bool) -> Result<(), String> {
    if !templated_ok {
        return Err(format!("{url:?} uses {{base_url}} but oauth.base_url is not set"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::text::is_loopback_host(parsed.host_str().unwrap_or("")) => Ok(()),
        "http" => Err(format!("{url:?} must use https (plain http is only allowed for loopback hosts)")),
        s => Err(format!("{url:?} has unsupported scheme {s:?}")),
    }
}
