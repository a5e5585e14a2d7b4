//! The injection rule (README.md, ARCHITECTURE.md) as pure functions over request parts,
//! so every branch is unit-testable without sockets.
//!
//! The caller has already checked that CONNECT authority, SNI and Host agree;
//! here we decide *which* route a request belongs to, whether it may carry a
//! credential at all (never on the provider's own OAuth endpoints), and how
//! the credential is written (Bearer, API-key header, Basic, query parameter).

use super::Route;
use crate::error::{Error, Result};
use crate::providers::def::BasicPosition;
use crate::providers::hosts::{path_forms, under_prefix};
use crate::providers::{AuthType, KeyLocation, Provider};
use crate::secret::Secret;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What to do with one request on an intercepted connection.
#[derive(Debug)]
pub enum Decision<'a> {
    /// No declared route covers this host and path: forward untouched.
    NoRoute,
    /// A route covers it, but no credential may be added (`reason` says why).
    Skip {
        /// The route concerned.
        route: &'a Route,
        /// Why nothing is injected.
        reason: &'static str,
    },
    /// Add the credential of this route.
    Inject {
        /// The route whose credential is used.
        route: &'a Route,
    },
}

/// Pick the route for a request to `host:port` + `path` (no query).
///
/// The shared-host rule (README, "Providers"): a route is *named* by the
/// request when its own placeholder sits in its own credential position
/// (`x-goog-api-key: authsome-proxy-managed` names Gemini, `Authorization:
/// Bearer authsome-proxy-managed` names Google). The route named most exactly
/// wins; among equals, the most specific `api_url` entry (longest path prefix,
/// then exact host, then regex); then the default connection; then the
/// provider name, so the choice never depends on the order of routes.
pub fn decide<'a>(routes: &'a [Route], host: &str, port: u16, path: &str, parts: &http::request::Parts) -> Decision<'a> {
    let best = routes
        .iter()
        .filter_map(|r| {
            let spec = r.provider.hosts.iter().filter(|h| h.matches_request(host, port, path)).map(|h| h.specificity()).max()?;
            Some((naming(r, parts), spec, r.is_default, std::cmp::Reverse(r.provider.name()), r))
        })
        .max_by(|a, b| (a.0, a.1, a.2, &a.3).cmp(&(b.0, b.1, b.2, &b.3)));
    let Some((.., route)) = best else {
        return Decision::NoRoute;
    };
    if is_oauth_endpoint(&route.provider, host, port, path) {
        return Decision::Skip { route, reason: "the provider's own OAuth endpoint never receives an injected credential" };
    }
    Decision::Inject { route }
}

/// How exactly the request names `route`: 2 when its placeholder is written
/// in the route's own credential format (`Bearer <placeholder>`, the
/// provider's header prefix, its query parameter, a Basic half), 1 when it
/// is only the last word of that header (`token <placeholder>`, as gh
/// sends), 0 when absent.
fn naming(route: &Route, parts: &http::request::Parts) -> u8 {
    let ph = route.placeholder.as_str();
    // Runs for every matching route of every request: no allocation.
    let in_header = |name: &str, prefix: Option<&str>| -> u8 {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .map(|v| if is_prefixed(v, prefix, ph) { 2 } else { u8::from(v.rsplit(' ').next() == Some(ph)) })
            .max()
            .unwrap_or(0)
    };
    match (route.provider.def.auth_type, route.provider.def.api_key.as_ref()) {
        (AuthType::ApiKey, Some(k)) => k
            .effective_parts()
            .iter()
            .map(|part| match part.location {
                KeyLocation::Header => in_header(&part.header_name, part.header_prefix.as_deref()),
                KeyLocation::Basic => {
                    let named = parts
                        .headers
                        .get_all(AUTHORIZATION)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .filter_map(|v| parse_basic(v.trim()))
                        .any(|(u, p)| u == ph || p == ph);
                    if named {
                        2
                    } else {
                        0
                    }
                }
                KeyLocation::Query => {
                    let (Some(q), Some(name)) = (parts.uri.query(), part.query_param.as_deref()) else { return 0 };
                    if url::form_urlencoded::parse(q.as_bytes()).any(|(n, v)| n == name && v == ph) {
                        2
                    } else {
                        0
                    }
                }
            })
            .max()
            .unwrap_or(0),
        _ => in_header("authorization", Some("Bearer")),
    }
}

/// Whether `v` is [`prefixed`]`(prefix, value)`, the prefix compared without
/// regard to case and the value exactly (without building the string).
fn is_prefixed(v: &str, prefix: Option<&str>, value: &str) -> bool {
    let Some(head) = v.strip_suffix(value) else { return false };
    let head = head.as_bytes();
    match prefix.filter(|p| !p.is_empty()) {
        Some(p) if p.ends_with('=') => head.eq_ignore_ascii_case(p.as_bytes()),
        Some(p) => head.len() == p.len() + 1 && head[p.len()] == b' ' && head[..p.len()].eq_ignore_ascii_case(p.as_bytes()),
        None => head.is_empty(),
    }
}

/// `<prefix> <value>`, or `<prefix><value>` when the prefix ends in `=`
/// (PagerDuty's `Token token=`); the bare value without a prefix.
pub fn prefixed(prefix: Option<&str>, value: &str) -> String {
    match prefix.filter(|p| !p.is_empty()) {
        Some(p) if p.ends_with('=') => format!("{p}{value}"),
        Some(p) => format!("{p} {value}"),
        None => value.to_owned(),
    }
}

/// Whether `host:port` + `path` is, or lies below, one of the provider's
/// token, authorization, revocation, device or registration endpoints under
/// any reading of the path (escapes, dot segments, case, version segments).
pub fn is_oauth_endpoint(provider: &Provider, host: &str, port: u16, path: &str) -> bool {
    let def = &provider.def;
    let mut urls: Vec<&String> = Vec::new();
    if let Some(o) = &def.oauth {
        urls.extend([&o.authorization_url, &o.token_url, &o.revocation_url, &o.device_authorization_url].into_iter().flatten());
    }
    if let Some(r) = def.registration.as_ref().and_then(|r| r.registration_endpoint.as_ref()) {
        urls.push(r);
    }
    if urls.is_empty() {
        return false;
    }
    let host = host.trim_end_matches('.');
    let bound = |u: &String| def.bind(u, provider.binding.base_url.as_deref(), &provider.binding.values);
    // The request's path forms are only worked out once an endpoint is on its host.
    let mut requested: Option<Vec<String>> = None;
    urls.iter().filter_map(|u| bound(u)).filter_map(|u| url::Url::parse(&u).ok()).any(|u| {
        if !(u.host_str().is_some_and(|h| h.eq_ignore_ascii_case(host)) && u.port_or_known_default() == Some(port)) {
            return false;
        }
        let endpoint = endpoint_key(&path_forms(u.path())[0]);
        requested
            .get_or_insert_with(|| path_forms(path).iter().map(|p| endpoint_key(p)).collect())
            .iter()
            .any(|r| under_prefix(r, &endpoint))
    })
}

/// `v1`, `v10`: an API version, which lenient servers route like no segment.
fn is_version_segment(s: &str) -> bool {
    s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

/// A normalised path reduced to what identifies an endpoint to lenient
/// servers: lower case, no `;parameters`, no version segments (`/v10`), so
/// `/API/v10/oauth2/token;x` and `/api/oauth2/token` are the same endpoint.
fn endpoint_key(path: &str) -> String {
    let segs: Vec<String> = path
        .split('/')
        .map(|s| s.split(';').next().unwrap_or("").to_ascii_lowercase())
        .filter(|s| !s.is_empty() && !is_version_segment(s))
        .collect();
    format!("/{}", segs.join("/"))
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(rest.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
    Some((u.to_owned(), p.to_owned()))
}

/// Every value `apply` writes into a request for `secret`: the secret itself,
/// or each part of a multi-part credential (its stored form is never sent).
/// The response scrubber hides each of them.
pub fn injected_secrets(provider: &Provider, secret: &Secret) -> Vec<String> {
    match (provider.def.auth_type, provider.def.api_key.as_ref()) {
        (AuthType::ApiKey, Some(k)) if !k.parts.is_empty() => {
            crate::providers::parts::decode(k, secret.expose()).map(|parts| parts.into_iter().map(|(_, v)| v).collect()).unwrap_or_default()
        }
        _ => vec![secret.expose().to_owned()],
    }
}

/// Write `secret` into the request the way `provider` expects, replacing
/// whatever the client sent there, and drop every other header that still
/// carries one of `placeholders` (never forwarded). A multi-part credential
/// puts each part in its own place. The error never contains the secret.
pub fn apply(provider: &Provider, parts: &mut http::request::Parts, secret: &Secret, placeholders: &[&str]) -> Result<()> {
    let invalid = || Error::other(format!("the stored {} credential is not a valid HTTP header value", provider.name()));
    let sensitive = |v: String| -> Result<HeaderValue> {
        let mut value = HeaderValue::from_str(&v).map_err(|_| invalid())?;
        value.set_sensitive(true);
        Ok(value)
    };
    let mut injected: Vec<HeaderName> = Vec::new();
    match (provider.def.auth_type, provider.def.api_key.as_ref()) {
        (AuthType::ApiKey, Some(k)) => {
            let mut basic: (Option<String>, Option<String>) = (None, None);
            for (part, value) in crate::providers::parts::decode(k, secret.expose()).map_err(Error::other)? {
                match part.location {
                    KeyLocation::Header => {
                        let name = HeaderName::from_bytes(part.header_name.as_bytes())
                            .map_err(|_| Error::other(format!("invalid header name {:?}", part.header_name)))?;
                        let value = prefixed(part.header_prefix.as_deref(), &value);
                        parts.headers.remove(&name);
                        parts.headers.insert(name.clone(), sensitive(value)?);
                        injected.push(name);
                    }
                    KeyLocation::Basic => match part.basic_position {
                        BasicPosition::Username => basic.0 = Some(value),
                        BasicPosition::Password => basic.1 = Some(value),
                    },
                    KeyLocation::Query => {
                        let name = part.query_param.as_deref().unwrap_or("key");
                        set_query_param(&mut parts.uri, name, &value)?;
                    }
                }
            }
            if basic != (None, None) {
                // A half the credential does not fill keeps what the client sent (Mailchimp's "anystring").
                let sent = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(parse_basic);
                let keep = |s: String| if placeholders.contains(&s.as_str()) { String::new() } else { s };
                let (sent_u, sent_p) = sent.map(|(u, p)| (keep(u), keep(p))).unwrap_or_default();
                let pair = format!("{}:{}", basic.0.unwrap_or(sent_u), basic.1.unwrap_or(sent_p));
                parts.headers.remove(AUTHORIZATION);
                parts.headers.insert(AUTHORIZATION, sensitive(format!("Basic {}", B64.encode(pair)))?);
                injected.push(AUTHORIZATION);
            }
        }
        _ => {
            parts.headers.remove(AUTHORIZATION);
            parts.headers.insert(AUTHORIZATION, sensitive(format!("Bearer {}", secret.expose()))?);
            injected.push(AUTHORIZATION);
        }
    }
    strip_all_but(&mut parts.headers, &injected.iter().collect::<Vec<_>>(), placeholders);
    Ok(())
}

/// Remove every header (other than `keep`) whose value contains a placeholder.
pub fn strip_placeholder_headers(headers: &mut http::HeaderMap, keep: Option<&HeaderName>, placeholders: &[&str]) {
    strip_all_but(headers, keep.as_slice(), placeholders)
}

/// [`strip_placeholder_headers`] keeping every header in `keep`.
fn strip_all_but(headers: &mut http::HeaderMap, keep: &[&HeaderName], placeholders: &[&str]) {
    let doomed: Vec<HeaderName> = headers
        .iter()
        .filter(|(n, v)| !keep.contains(n) && placeholders.iter().any(|p| v.as_bytes().windows(p.len()).any(|w| w == p.as_bytes())))
        .map(|(n, _)| n.clone())
        .collect();
    for n in doomed {
        headers.remove(n);
    }
}

/// Replace (or add) query parameter `name` with `value` in `uri`.
fn set_query_param(uri: &mut http::Uri, name: &str, value: &str) -> Result<()> {
    let path = uri.path().to_owned();
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    if let Some(q) = uri.query() {
        for (n, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if n != name {
                ser.append_pair(&n, &v);
            }
        }
    }
    ser.append_pair(name, value);
    let pq = format!("{path}?{}", ser.finish());
    let mut p = std::mem::take(uri).into_parts();
    p.path_and_query = Some(pq.parse().map_err(|_| Error::other("cannot rewrite the query string"))?);
    *uri = http::Uri::from_parts(p).map_err(|_| Error::other("cannot rewrite the query string"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::PLACEHOLDER;
    use std::sync::Arc;

    fn provider(json: &str) -> Arc<Provider> {
        let def = crate::providers::parse(json, "t.json").unwrap();
        let name = def.name.clone();
        let mut reg = crate::providers::Registry::bundled().unwrap();
        reg.add_project(def, "t.json".into());
        Arc::new(reg.get(&name).unwrap().clone())
    }

    fn oauth() -> Arc<Provider> {
        provider(
            r#"{"name":"acme","auth_type":"oauth2","flow":"pkce","api_url":["api.acme.test","https://files.acme.test/v1"],
            "oauth":{"authorization_url":"https://api.acme.test/oauth/authorize","token_url":"https://api.acme.test/oauth/token"}}"#,
        )
    }

    fn req(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn route(p: &Arc<Provider>, conn: &str, placeholder: &str, default: bool) -> Route {
        Route { provider: p.clone(), connection: conn.into(), placeholder: placeholder.into(), is_default: default }
    }

    #[test]
    fn oauth_endpoints_and_foreign_paths_are_never_injected() {
        let p = oauth();
        let routes = vec![route(&p, "default", PLACEHOLDER, true)];
        let r = req("/oauth/token", &[]);
        assert!(matches!(decide(&routes, "api.acme.test", 443, "/oauth/token", &r), Decision::Skip { .. }));
        assert!(matches!(decide(&routes, "api.acme.test", 443, "/user", &r), Decision::Inject { .. }));
        assert!(matches!(decide(&routes, "files.acme.test", 443, "/v2/x", &r), Decision::NoRoute));
        assert!(matches!(decide(&routes, "files.acme.test", 443, "/v1/x", &r), Decision::Inject { .. }));
        assert!(matches!(decide(&routes, "api.acme.test", 8443, "/user", &r), Decision::NoRoute));
        for evil in [
            "/oauth//token",
            "/./oauth/token",
            "/OAUTH/TOKEN",
            "/oauth/%74oken",
            "/v10/oauth/token",
            "/oauth/token/revoke",
            "/x/../oauth/token",
        ] {
            assert!(matches!(decide(&routes, "api.acme.test", 443, evil, &r), Decision::Skip { .. }), "{evil}");
        }
    }

    #[test]
    fn the_placeholder_selects_the_connection_else_the_default() {
        let p = oauth();
        let routes = vec![route(&p, "work", "authsome-proxy-managed-work", false), route(&p, "default", PLACEHOLDER, true)];
        let r = req("/x", &[("authorization", "Bearer authsome-proxy-managed-work")]);
        let Decision::Inject { route } = decide(&routes, "api.acme.test", 443, "/x", &r) else { panic!() };
        assert_eq!(route.connection, "work");
        let r = req("/x", &[("authorization", "token something-else")]);
        let Decision::Inject { route } = decide(&routes, "api.acme.test", 443, "/x", &r) else { panic!() };
        assert_eq!(route.connection, "default");
    }

    #[test]
    fn bearer_replaces_the_placeholder_and_strays_are_dropped() {
        let p = oauth();
        let mut r =
            req("/x", &[("authorization", "Bearer authsome-proxy-managed"), ("x-token", "authsome-proxy-managed"), ("accept", "*/*")]);
        apply(&p, &mut r, &Secret::new("tok-1"), &[PLACEHOLDER]).unwrap();
        assert_eq!(r.headers["authorization"], "Bearer tok-1");
        assert!(r.headers.get("x-token").is_none());
        assert_eq!(r.headers["accept"], "*/*");
    }

    #[test]
    fn api_key_header_basic_and_query_rules() {
        let hdr = provider(
            r#"{"name":"k1","auth_type":"api_key","flow":"api_key","api_url":"api.k1.test","api_key":{"header_name":"x-api-key"}}"#,
        );
        let mut r = req("/x", &[("x-api-key", PLACEHOLDER)]);
        apply(&hdr, &mut r, &Secret::new("key1"), &[PLACEHOLDER]).unwrap();
        assert_eq!(r.headers["x-api-key"], "key1");

        let basic =
            provider(r#"{"name":"k2","auth_type":"api_key","flow":"api_key","api_url":"api.k2.test","api_key":{"location":"basic"}}"#);
        let mut r = req("/x", &[("authorization", &format!("Basic {}", B64.encode(format!("{PLACEHOLDER}:"))))]);
        apply(&basic, &mut r, &Secret::new("key2"), &[PLACEHOLDER]).unwrap();
        assert_eq!(r.headers["authorization"], format!("Basic {}", B64.encode("key2:")));

        let q = provider(
            r#"{"name":"k3","auth_type":"api_key","flow":"api_key","api_url":"api.k3.test","api_key":{"location":"query","query_param":"api_key"}}"#,
        );
        let mut r = req("/x?a=1&api_key=authsome-proxy-managed", &[]);
        apply(&q, &mut r, &Secret::new("k&3"), &[PLACEHOLDER]).unwrap();
        assert_eq!(r.uri.to_string(), "/x?a=1&api_key=k%263");
    }
}
