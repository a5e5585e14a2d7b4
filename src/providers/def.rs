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
    /// What kind of API this is (one of [`CATEGORIES`]), for `list --category`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Per-connection values (a Shopify shop, a Zendesk subdomain) asked at
    /// login, stored on the connection and substituted for `{name}` in
    /// `api_url` and the OAuth URLs, so one definition serves every tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connection_values: BTreeMap<String, ConnectionValueDef>,
}

/// The categories `list --category` filters on; a closed set so a typo in a
/// definition is an error, not a category of one.
pub const CATEGORIES: &[&str] = &[
    "llm",
    "mcp",
    "devtools",
    "cloud",
    "monitoring",
    "productivity",
    "communication",
    "crm",
    "support",
    "marketing",
    "seo",
    "social",
    "analytics",
    "data",
    "payments",
    "ecommerce",
    "storage",
    "design",
    "hr",
];

/// One per-connection value: how to ask for it and what it may look like.
/// Whatever the pattern, a value is always a single DNS label (letters,
/// digits, inner `-`), so it can never widen a host or add a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionValueDef {
    /// The question asked at login (`Shop name (the part before .myshopify.com)`).
    pub prompt: String,
    /// Regular expression the value must match, checked at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Used when the user gives none (`us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl ConnectionValueDef {
    /// Check `value` (one DNS label, and the definition's pattern); the error names `name`.
    pub fn check(&self, name: &str, value: &str) -> Result<(), String> {
        let label = !value.is_empty()
            && value.len() <= 63
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if !label {
            return Err(format!("{name} {value:?} must be one host-name label (letters, digits and inner '-')"));
        }
        if let Some(p) = &self.pattern {
            let re = regex_lite::Regex::new(p).map_err(|e| format!("invalid pattern for {name}: {e}"))?;
            if !re.is_match(value) {
                return Err(format!("{name} {value:?} does not match {p}"));
            }
        }
        Ok(())
    }
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

    /// The entries a connection injects on. Entries built from `{base_url}`
    /// say where the API lives relative to a deployment's base URL; the
    /// others are the hosts of the definition's own deployment. A connection
    /// logged in with its own `--base-url` (`own_base`) gets only the former,
    /// so a GitHub Enterprise token never reaches api.github.com; a connection
    /// on the default base URL gets the latter (github.com keeps
    /// api.github.com), or the former filled with the default base URL when
    /// the definition lists nothing else.
    pub fn for_connection(&self, own_base: bool) -> Vec<&str> {
        let (templated, fixed): (Vec<&str>, Vec<&str>) = self.entries().into_iter().partition(|e| uses_base_url(e));
        if own_base || fixed.is_empty() {
            templated
        } else {
            fixed
        }
    }
}

/// Whether an `api_url` entry or endpoint is built from `{base_url}`.
pub fn uses_base_url(entry: &str) -> bool {
    entry.contains("{base_url}")
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
    /// How the client authenticates at the token endpoint: `body` (the
    /// default, client_id/client_secret as form fields) or `basic` (HTTP
    /// Basic, which Notion, Reddit and X require).
    #[serde(default, skip_serializing_if = "is_default")]
    pub authorization_method: ClientAuth,
    /// Extra parameters added to the authorization URL (Reddit's
    /// `duration=permanent`, Google's `access_type=offline`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorization_params: BTreeMap<String, String>,
    /// Body of the device-flow token poll: `form` (RFC 8628) or `json` (Postiz).
    #[serde(default, skip_serializing_if = "is_default")]
    pub device_token_request: BodyFormat,
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` as form fields.
    #[default]
    Body,
    /// HTTP Basic with the client credentials.
    Basic,
}

/// Encoding of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    #[default]
    Form,
    /// `application/json`.
    Json,
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
    /// authsome extension: a credential of several parts (Twilio's SID and
    /// secret, Datadog's API and application keys), each asked at login and
    /// injected in its own place. When present, the fields above other than
    /// `env_var` are not used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<KeyPart>,
}

/// One part of a multi-part credential and where it goes in a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPart {
    /// Identifier of the part (`api_key`, `application_key`).
    pub name: String,
    /// What the login prompt calls it (`Application key`).
    pub prompt: String,
    /// `header` (default), `basic` or `query`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub location: KeyLocation,
    /// Header carrying the part when `location` is `header`.
    #[serde(default = "authorization")]
    pub header_name: String,
    /// Text before the part in its header, separated by one space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_prefix: Option<String>,
    /// Query parameter name when `location` is `query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
    /// Basic half holding the part when `location` is `basic`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub basic_position: BasicPosition,
    /// Regular expression a valid part matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pattern: Option<String>,
    /// What to tell a user whose value does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pattern_hint: Option<String>,
}

impl ApiKeyDef {
    /// Where the credential goes: the declared parts, or the single key
    /// described by the top-level fields as one part named `api_key`.
    pub fn effective_parts(&self) -> Vec<KeyPart> {
        if !self.parts.is_empty() {
            return self.parts.clone();
        }
        vec![KeyPart {
            name: "api_key".to_owned(),
            prompt: "API key".to_owned(),
            location: self.location,
            header_name: self.header_name.clone(),
            header_prefix: self.header_prefix.clone(),
            query_param: self.query_param.clone(),
            basic_position: self.basic_position,
            key_pattern: self.key_pattern.clone(),
            key_pattern_hint: self.key_pattern_hint.clone(),
        }]
    }
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

    /// Substitute `{base_url}` (the connection's, else `oauth.base_url`) and
    /// every `{name}` of `values` in `entry`; `None` while a placeholder
    /// is left unfilled (such an entry matches nothing).
    pub fn bind(&self, entry: &str, base_url: Option<&str>, values: &BTreeMap<String, String>) -> Option<String> {
        let mut out = self.template(entry, base_url);
        for (name, value) in values {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        (!out.contains('{')).then_some(out)
    }

    /// Where this definition injects its credential, described for people
    /// ([`super::HostPattern::describe`]): the default deployment's entries,
    /// an entry that needs a login value as written, then the entries a
    /// connection logged in with its own `--base-url` gets instead.
    pub fn injects_on(&self) -> Vec<String> {
        let default_base = self.oauth.as_ref().and_then(|o| o.base_url.as_deref());
        let describe = |e: &str| match self.bind(e, default_base, &BTreeMap::new()) {
            Some(bound) => super::HostPattern::parse(&bound).map(|p| p.describe()).unwrap_or(bound),
            None => format!("{e} (filled in at login)"),
        };
        let default = self.api_url.for_connection(false);
        let mut out: Vec<String> = default.iter().map(|e| describe(e)).collect();
        for e in self.api_url.for_connection(true).into_iter().filter(|e| !default.contains(e)) {
            out.push(format!("{e} (a connection logged in with --base-url, instead)"));
        }
        out
    }

    /// The origins of the OAuth endpoints (and the registration endpoint),
    /// which receive authorization codes, refresh tokens and client secrets:
    /// as much a destination of the credential as `api_url`.
    pub fn oauth_origins(&self) -> Vec<String> {
        let mut urls: Vec<&String> = Vec::new();
        if let Some(o) = &self.oauth {
            urls.extend([&o.authorization_url, &o.token_url, &o.revocation_url, &o.device_authorization_url].into_iter().flatten());
        }
        urls.extend(self.registration.as_ref().and_then(|r| r.registration_endpoint.as_ref()));
        let mut out: Vec<String> = Vec::new();
        for u in urls {
            let origin = match self.bind(u, None, &BTreeMap::new()).and_then(|b| url::Url::parse(&b).ok()) {
                Some(url) => url.origin().ascii_serialization(),
                None => u.clone(),
            };
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
        out
    }

    /// Values used to check templated URLs at load time: each declared
    /// value's default, else a sample label.
    fn sample_values(&self) -> BTreeMap<String, String> {
        self.connection_values.iter().map(|(k, v)| (k.clone(), v.default.clone().unwrap_or_else(|| "sample0".to_owned()))).collect()
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
        self.catalogue_problems(&mut out);
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
            let samples = self.sample_values();
            let base = self.oauth.as_ref().and_then(|o| o.base_url.as_deref());
            if uses_base_url(entry) {
                if base.is_none() {
                    out.bad(&pointer, format!("{entry:?} uses {{base_url}} but oauth.base_url is not set"));
                    continue;
                }
                if !entry.starts_with("{base_url}/") && *entry != "{base_url}" {
                    out.bad(&pointer, format!("{entry:?}: {{base_url}} may only start an entry ({{base_url}}/api/)"));
                    continue;
                }
            }
            match self.bind(entry, base, &samples) {
                None => out.bad(&pointer, format!("{entry:?} uses a {{value}} that connection_values does not declare")),
                Some(bound) => {
                    if let Err(e) = super::hosts::HostPattern::parse(&bound) {
                        out.bad(&pointer, e);
                    }
                }
            }
        }
    }

    fn catalogue_problems(&self, out: &mut Problems) {
        if let Some(c) = &self.category {
            if !CATEGORIES.contains(&c.as_str()) {
                out.bad("/category", format!("unknown category {c:?}; use one of {}", CATEGORIES.join(", ")));
            }
        }
        for (name, v) in &self.connection_values {
            let ok = name != "base_url"
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                out.bad(
                    &format!("/connection_values/{name}"),
                    format!("{name:?} must be lower-case letters, digits or '_' (and not base_url)"),
                );
            }
            if let Some(p) = &v.pattern {
                if let Err(e) = regex_lite::Regex::new(p) {
                    out.bad(&format!("/connection_values/{name}/pattern"), format!("invalid regular expression: {e}"));
                }
            }
            if let Some(d) = &v.default {
                if let Err(e) = v.check(name, d) {
                    out.bad(&format!("/connection_values/{name}/default"), e);
                }
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
        let samples = self.sample_values();
        for (field, url) in urls {
            if let Some(u) = url {
                let templated_ok = o.base_url.is_some() || !u.contains("{base_url}");
                let bound = self.bind(u, None, &samples).unwrap_or_else(|| u.clone());
                if let Err(e) = check_endpoint(&bound, templated_ok) {
                    out.bad(&format!("/oauth/{field}"), e);
                }
            }
        }
        for name in o.authorization_params.keys() {
            if RESERVED_AUTHORIZE_PARAMS.contains(&name.as_str()) || name.is_empty() {
                out.bad(&format!("/oauth/authorization_params/{name}"), format!("{name:?} is set by authsome itself"));
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

/// Authorization-URL parameters authsome sets itself; a definition may not override them.
const RESERVED_AUTHORIZE_PARAMS: &[&str] =
    &["client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method"];

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
    let at = |i: usize, field: &str| if k.parts.is_empty() { format!("/api_key/{field}") } else { format!("/api_key/parts/{i}/{field}") };
    let mut names = std::collections::BTreeSet::new();
    let mut basic = Vec::new();
    for (i, part) in k.effective_parts().iter().enumerate() {
        if !names.insert(part.name.clone()) || !valid_name(&part.name) {
            out.bad(&at(i, "name"), format!("part name {:?} must be unique lower-case letters, digits, '-' or '_'", part.name));
        }
        if let Some(p) = &part.key_pattern {
            if let Err(e) = regex_lite::Regex::new(p) {
                out.bad(&at(i, "key_pattern"), format!("invalid regular expression: {e}"));
            }
        }
        match part.location {
            KeyLocation::Query if part.query_param.as_deref().unwrap_or("").is_empty() => {
                out.bad(&at(i, "query_param"), "location \"query\" needs a query_param".into());
            }
            KeyLocation::Header if !valid_header_name(&part.header_name) => {
                out.bad(&at(i, "header_name"), format!("{:?} is not a valid HTTP header name", part.header_name));
            }
            KeyLocation::Basic => basic.push((i, part.basic_position)),
            _ => {}
        }
    }
    if k.parts.len() == 1 {
        out.bad("/api_key/parts", "a single key is described by the api_key fields themselves, not by one part".into());
    }
    if basic.len() > 2 || (basic.len() == 2 && basic[0].1 == basic[1].1) {
        out.bad(&at(basic[basic.len() - 1].0, "basic_position"), "basic parts need one username and one password at most".into());
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
