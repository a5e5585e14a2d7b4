//! The bundled catalogue, checked provider by provider in data-driven loops:
//! sound definitions (https endpoints, host patterns that cannot widen,
//! unique variables), current documentation pages, every OAuth provider
//! logging in end to end against the in-process fake authorization server
//! with its own flags, every API-key provider's key reaching an echo upstream
//! through the real proxy in the right place, and the shared-host rule.

use crate::common::echo::Echo;
use crate::common::fake_as::{Config, FakeAs};
use crate::common::proxy_client::{self as client, MemoryAudit, StaticCredentials};
use authsome::providers::def::{AuthType, BasicPosition, ClientAuth, Flow, KeyLocation, ProviderDef};
use authsome::providers::{self, HostPattern, Provider, Registry, PLACEHOLDER};
use authsome::proxy::{self, inject, ProxyOptions, Route, UpstreamSettings};
use base64::Engine as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn bundled() -> Vec<ProviderDef> {
    providers::bundled_files().iter().map(|(n, t)| providers::parse(t, n).unwrap()).collect()
}

fn registry() -> Registry {
    Registry::load(&authsome::paths::Home::at("/nonexistent-authsome-home", "default")).unwrap()
}

/// Sample values for templated definitions (checked against their patterns).
fn sample_values(def: &ProviderDef) -> BTreeMap<String, String> {
    def.connection_values.iter().map(|(k, v)| (k.clone(), v.default.clone().unwrap_or_else(|| "acme-1".to_owned()))).collect()
}

// ---------------------------------------------------------------- definitions

#[test]
fn the_catalogue_is_broad_and_every_definition_is_sound() {
    let defs = bundled();
    assert!(defs.len() >= 130, "only {} bundled providers", defs.len());
    for d in &defs {
        let at = &d.name;
        let cat = d.category.as_deref().unwrap_or_else(|| panic!("{at}: no category"));
        assert!(authsome::providers::def::CATEGORIES.contains(&cat), "{at}: category {cat}");
        let docs = d.docs_url.as_deref().unwrap_or_else(|| panic!("{at}: no docs_url"));
        assert!(docs.starts_with("https://"), "{at}: docs_url {docs}");
        assert!(d.display_name.is_some(), "{at}: no display_name");
        if let Some(o) = &d.oauth {
            let values = sample_values(d);
            for u in [&o.authorization_url, &o.token_url, &o.revocation_url, &o.device_authorization_url].into_iter().flatten() {
                let bound = d.bind(u, None, &values).unwrap_or_else(|| panic!("{at}: {u} cannot be bound"));
                assert!(bound.starts_with("https://"), "{at}: endpoint {bound} is not https");
            }
            if let Some(r) = d.registration.as_ref().and_then(|r| r.registration_endpoint.as_ref()) {
                assert!(r.starts_with("https://"), "{at}: registration endpoint {r}");
            }
        }
        assert!(d.exported_vars().count() >= 1, "{at}: exports nothing");
        for v in d.exported_vars() {
            assert!(v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'), "{at}: variable {v}");
        }
        for entry in d.api_url.entries() {
            check_host_rule(d, entry);
        }
    }
}

/// A host pattern is a plain host, a URL on one host, or an anchored regex (or
/// `{value}` template) whose literal suffix has three labels or more, or two
/// for a registrable domain listed in `REGISTRABLE_DOMAINS`.
fn check_host_rule(d: &ProviderDef, entry: &str) {
    let at = &d.name;
    let bound = d.bind(entry, None, &sample_values(d)).unwrap_or_else(|| panic!("{at}: {entry} cannot be bound"));
    let pattern = HostPattern::parse(&bound).unwrap_or_else(|e| panic!("{at}: {entry}: {e}"));
    assert!(!entry.starts_with("http://"), "{at}: {entry} is not https");
    let ok_suffix = |suffix: &str| {
        let labels = suffix.split('.').filter(|l| !l.is_empty()).count();
        labels >= 3 || (labels == 2 && providers::REGISTRABLE_DOMAINS.contains(&suffix))
    };
    let host_part = entry.trim_start_matches("https://").split('/').next().unwrap_or("");
    match &pattern {
        HostPattern::Regex { .. } => {
            let suffix = pattern.dns_constraint().unwrap_or_else(|| panic!("{at}: {entry} has no literal domain suffix"));
            assert!(ok_suffix(&suffix), "{at}: {entry} may match any host under {suffix}");
            assert!(!pattern.matches_host(&format!("x.{suffix}.evil.test"), 443), "{at}: {entry} is not anchored");
            assert!(!pattern.matches_host(&format!("evil{suffix}"), 443), "{at}: {entry} matches a look-alike domain");
        }
        // The connection's own --base-url: the host the user logged in to, never a wildcard.
        _ if providers::def::uses_base_url(entry) => {}
        _ if host_part.contains('{') => {
            let literal: Vec<&str> = host_part.split('.').filter(|l| !l.contains('{')).collect();
            let suffix = literal.join(".");
            assert!(ok_suffix(&suffix), "{at}: templated host {entry} leaves too little literal ({suffix})");
        }
        _ => {}
    }
}

#[test]
fn no_two_providers_export_a_variable_unless_documented_as_alternatives() {
    let mut by_var: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in bundled() {
        for v in d.exported_vars() {
            by_var.entry(v.to_owned()).or_default().insert(d.name.clone());
        }
    }
    let documented: BTreeMap<&str, BTreeSet<String>> =
        providers::SHARED_VARIABLES.iter().map(|(v, ps)| (*v, ps.iter().map(|p| p.to_string()).collect())).collect();
    for (var, owners) in &by_var {
        if owners.len() > 1 {
            assert_eq!(documented.get(var.as_str()), Some(owners), "{var} is exported by {owners:?} without being documented");
        }
    }
    for (var, owners) in &documented {
        assert_eq!(by_var.get(*var), Some(owners), "SHARED_VARIABLES lists {var} for {owners:?}, which is stale");
    }
}

#[test]
fn api_key_env_vars_are_exported_by_their_provider() {
    for d in bundled() {
        if let Some(k) = &d.api_key {
            let var = k.env_var.as_deref().unwrap_or_else(|| panic!("{}: no api_key.env_var", d.name));
            assert!(d.export.contains_key(var), "{}: env_var {var} is not exported", d.name);
        }
    }
}

// ---------------------------------------------------------------- pages

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/providers")
}

/// `docs/providers/` is exactly what the definitions generate. Run with
/// `UPDATE_PAGES=1` to rewrite it after changing a definition.
#[test]
fn pages_are_current() {
    let defs = bundled();
    let mut want: BTreeMap<String, String> = defs.iter().map(|d| (format!("{}.md", d.name), providers::page::page(d))).collect();
    want.insert("README.md".into(), providers::page::index(&defs.iter().collect::<Vec<_>>()));
    let dir = docs_dir();
    if std::env::var_os("UPDATE_PAGES").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, text) in &want {
            std::fs::write(dir.join(f), text).unwrap();
        }
    }
    let have: BTreeSet<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let expected: BTreeSet<String> = want.keys().cloned().collect();
    assert_eq!(
        have, expected,
        "docs/providers/ has stale or missing pages; run UPDATE_PAGES=1 cargo test --test tests catalogue::pages_are_current"
    );
    for (f, text) in &want {
        let on_disk = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            on_disk == *text,
            "docs/providers/{f} is out of date; run UPDATE_PAGES=1 cargo test --test tests catalogue::pages_are_current"
        );
    }
}

#[test]
fn the_discord_page_keeps_the_seed_page_facts() {
    let reg = registry();
    let page = providers::page::page(&reg.get("discord").unwrap().def);
    for needle in [
        "| Default flow | pkce, PKCE browser flow |",
        "| PKCE supported | No |",
        "| Default scopes | identify, email, guilds, connections |",
        "| Proxy host | discord.com |",
        "| Env var (access_token) | `DISCORD_ACCESS_TOKEN` |",
        "| Env var (refresh_token) | `DISCORD_REFRESH_TOKEN` |",
        "http://127.0.0.1:7998/auth/callback/oauth",
        "Discord's OAuth2 endpoint does not require PKCE. Authsome runs the standard authorization-code flow.",
        "authsome login discord --connection work",
        "DISCORD_ACCESS_TOKEN=authsome-proxy-managed",
        "Refresh tokens are never exported.",
        "authsome inspect discord > ~/.authsome/providers/discord.json",
        "authsome list   # source now shows \"custom\" for discord",
    ] {
        assert!(page.contains(needle), "the discord page lacks {needle:?}:\n{page}");
    }
}

// ---------------------------------------------------------------- OAuth logins

/// A `BROWSER` that follows the authorization redirect to the login server, like a person approving.
fn curl_browser(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("browser.sh");
    // Like a real browser it returns at once (the page loads after it exits).
    let script = "#!/bin/sh\nfor url; do :; done\ncurl -sS -o /dev/null -L --max-redirs 3 --noproxy '*' \"$url\" >/dev/null 2>&1 &\n";
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `def` with every OAuth endpoint moved onto the fake server, under `/<name>/`.
fn on_fake(def: &ProviderDef, fake: &FakeAs) -> ProviderDef {
    let mut d = def.clone();
    let o = d.oauth.as_mut().unwrap();
    let at = |p: &str| Some(fake.url(&format!("/{}/{p}", def.name)));
    o.authorization_url = o.authorization_url.as_ref().and(at("authorize"));
    o.token_url = at("token");
    o.revocation_url = o.revocation_url.as_ref().and(at("revoke"));
    o.device_authorization_url = o.device_authorization_url.as_ref().and(at("device/code"));
    o.base_url = None;
    if let Some(r) = d.registration.as_mut() {
        r.registration_endpoint = at("register");
    }
    d
}

#[test]
fn every_oauth_provider_logs_in_end_to_end_with_its_own_flags() {
    crate::common::process_env();
    let tmp = tempfile::tempdir().unwrap();
    // The browser and the login server's address go in the options: the
    // process environment is shared by every test of the suite.
    let browser = authsome::oauth::Opener::Command(vec![curl_browser(tmp.path()).display().to_string()]);
    let seams = Some((browser, crate::common::login_env::free_addr()));
    let fake = FakeAs::start(Config::default());
    let home = authsome::paths::Home::at(tmp.path().join("home"), "default");
    let vault = authsome::vault::Vault::open(&home).unwrap();
    let ui = authsome::ui::Ui::new(false, true, true);
    let http = authsome::oauth::client::OAuthHttp::from_env().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut reg = registry();
    let mut logins = 0;
    for def in bundled().into_iter().filter(|d| d.auth_type == AuthType::Oauth2) {
        let name = def.name.clone();
        let o = def.oauth.clone().unwrap();
        let test_def = on_fake(&def, &fake);
        reg.add_project(test_def, tmp.path().join(format!("{name}.json")));
        let provider = reg.get(&name).unwrap().clone();
        let secret = format!("cs-{name}");
        fake.configure(|c| {
            c.client_id = format!("id-{name}");
            c.client_secret = Some(secret.clone());
            c.require_pkce = o.pkce || def.flow == Flow::DcrPkce;
        });
        if def.flow != Flow::DcrPkce {
            let creds = authsome::vault::ClientCredentials {
                client_id: format!("id-{name}"),
                client_secret: Some(authsome::vault::Secret::new(secret.clone())),
                registered_at: None,
            };
            vault
                .update(|d| {
                    d.clients.insert(name.clone(), creds);
                    Ok(())
                })
                .unwrap();
        }
        let mut flows = vec![def.flow];
        if o.supports_device_code && def.flow != Flow::DeviceCode {
            flows.push(Flow::DeviceCode);
        }
        for flow in flows {
            let before = fake.requests().len();
            let opts = authsome::oauth::login::LoginOptions {
                connection: "default".into(),
                scopes: None,
                flow,
                force: false,
                no_browser: false,
                base_url: None,
                values: sample_values(&def),
                seams: seams.clone(),
            };
            let conn = rt
                .block_on(authsome::oauth::login::oauth_login(&home, &ui, &provider, &opts, &http))
                .unwrap_or_else(|e| panic!("{name} ({}): {}", flow.as_str(), e.message));
            logins += 1;
            let reqs: Vec<_> = fake.requests()[before..].iter().filter(|r| r.path.starts_with(&format!("/{name}/"))).cloned().collect();
            let tokens: Vec<_> = reqs.iter().filter(|r| r.endpoint() == "token").collect();
            assert_eq!(tokens.len(), 1, "{name} ({}): one token request expected", flow.as_str());
            let token = tokens[0];
            let issued = conn.access_token.as_ref().map(|t| t.expose().to_owned()).unwrap();
            assert!(fake.access_tokens().contains(&issued), "{name}: the stored token is the issued one");
            assert_eq!(conn.values, sample_values(&def), "{name}: login values are stored on the connection");
            if def.flow != Flow::DcrPkce {
                let basic = token.headers.get("authorization").is_some_and(|h| h.starts_with("Basic "));
                let in_body =
                    token.form.contains_key("client_secret") || token.json.as_ref().is_some_and(|j| j.get("client_secret").is_some());
                match o.authorization_method {
                    ClientAuth::Basic => assert!(basic && !in_body, "{name}: client credentials must go as HTTP Basic"),
                    ClientAuth::Body => assert!(in_body && !basic, "{name}: client credentials must go in the body"),
                }
            }
            match flow {
                Flow::DeviceCode => {
                    assert_eq!(reqs.iter().filter(|r| r.endpoint() == "device").count(), 1, "{name}: device authorization");
                    let json = o.device_token_request == authsome::providers::def::BodyFormat::Json;
                    assert_eq!(token.json.is_some(), json, "{name}: device poll body format");
                    assert_eq!(token.form.is_empty(), json, "{name}: device poll body format");
                }
                _ => {
                    let auth: Vec<_> = reqs.iter().filter(|r| r.endpoint() == "authorize").collect();
                    assert_eq!(auth.len(), 1, "{name}: one authorization request");
                    let q = &auth[0].query;
                    let pkce = o.pkce || def.flow == Flow::DcrPkce;
                    assert_eq!(q.contains_key("code_challenge"), pkce, "{name}: PKCE {pkce}");
                    assert_eq!(token.form.contains_key("code_verifier"), pkce, "{name}: verifier iff PKCE");
                    for (k, v) in &o.authorization_params {
                        assert_eq!(q.get(k), Some(v), "{name}: authorize parameter {k}");
                    }
                    let scope = q.get("scope").cloned().unwrap_or_default();
                    assert_eq!(scope, o.scopes.join(" "), "{name}: requested scopes");
                }
            }
        }
    }
    assert!(logins >= 60, "only {logins} OAuth logins ran");
}

// ---------------------------------------------------------------- API keys

/// A concrete host and path where `provider` injects, and a host name for a regex-only one.
fn target(p: &Provider) -> (String, String) {
    let samples = [("mailchimp", "us21.api.mailchimp.com")];
    let pick = p.hosts.iter().find(|h| !matches!(h, HostPattern::Regex { .. })).or(p.hosts.first()).unwrap();
    match pick {
        HostPattern::Host { host, .. } => (host.clone(), "/authsome-check".to_owned()),
        HostPattern::Prefix { host, path, .. } => (host.clone(), format!("{path}/authsome-check")),
        HostPattern::Regex { .. } => {
            let host = samples.iter().find(|(n, _)| *n == p.name()).map(|(_, h)| h.to_string()).expect("a sample host");
            assert!(pick.matches_host(&host, 443), "{}: sample {host}", p.name());
            (host, "/authsome-check".to_owned())
        }
    }
}

/// Headers and query a real client of this provider sends, holding the placeholder.
fn client_request(p: &Provider, path: &str) -> (String, Vec<(String, String)>) {
    let mut headers = Vec::new();
    let mut query = Vec::new();
    let mut basic = (false, false);
    for part in p.def.api_key.as_ref().unwrap().effective_parts() {
        match part.location {
            KeyLocation::Header => headers.push((part.header_name.clone(), inject::prefixed(part.header_prefix.as_deref(), PLACEHOLDER))),
            KeyLocation::Query => query.push(format!("{}={PLACEHOLDER}", part.query_param.unwrap())),
            KeyLocation::Basic => match part.basic_position {
                BasicPosition::Username => basic.0 = true,
                BasicPosition::Password => basic.1 = true,
            },
        }
    }
    if basic != (false, false) {
        let user = if basic.0 { PLACEHOLDER } else { "anystring" };
        let pass = if basic.1 { PLACEHOLDER } else { "X" };
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        headers.push(("Authorization".into(), format!("Basic {b}")));
    }
    query.push("keep=1".into());
    (format!("{path}?{}", query.join("&")), headers)
}

/// The stored credential for `p`: one key, or a JSON object of parts.
fn credential(p: &Provider) -> (String, BTreeMap<String, String>) {
    let k = p.def.api_key.as_ref().unwrap();
    let parts: BTreeMap<String, String> =
        k.effective_parts().iter().map(|part| (part.name.clone(), format!("{}-{}-secret-0123456789", p.name(), part.name))).collect();
    let stored = if k.parts.is_empty() { parts["api_key"].clone() } else { providers::parts::encode(&parts) };
    (stored, parts)
}

#[test]
fn every_api_key_reaches_the_upstream_in_its_place() {
    let reg = registry();
    let providers: Vec<Provider> =
        reg.iter().filter(|p| p.def.auth_type == AuthType::ApiKey).map(|p| p.bound(None, &sample_values(&p.def))).collect();
    assert!(providers.len() >= 80, "{} API-key providers", providers.len());
    let targets: Vec<(String, String)> = providers.iter().map(target).collect();
    let hosts: BTreeSet<&str> = targets.iter().map(|(h, _)| h.as_str()).collect();
    let echo = Echo::start(&hosts.iter().copied().collect::<Vec<_>>());
    let mut creds = StaticCredentials::default();
    let mut expected = Vec::new();
    for p in &providers {
        let (stored, parts) = credential(p);
        creds.0.insert((p.name().to_owned(), "default".into()), stored);
        expected.push(parts);
    }
    let routes: Vec<Route> = providers
        .iter()
        .map(|p| Route { provider: Arc::new(p.clone()), connection: "default".into(), placeholder: PLACEHOLDER.into(), is_default: true })
        .collect();
    let resolve = hosts.iter().map(|h| echo.resolve(h)).collect::<Vec<_>>().join(",");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(std::fs::read_to_string(&echo.ca_path).unwrap().as_bytes()).unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let options = ProxyOptions {
            routes,
            deny_undeclared: false,
            run_id: "catalogue".into(),
            audit: Arc::new(MemoryAudit::default()),
            credentials: Arc::new(creds),
            bundle_path: Some(dir.path().join("bundle.pem")),
            upstream: UpstreamSettings { resolver: authsome::net::Resolver::parse(&resolve).unwrap(), roots: Arc::new(roots).into() },
            limits: authsome::proxy::Limits::default(),
        };
        let handle = proxy::start(options).await.unwrap();
        let ca_roots: Vec<_> = handle.cas().iter().map(|c| c.der().clone()).collect();
        let cfg = client::client_config(&ca_roots, &[b"http/1.1"]);
        for ((p, (host, path)), parts) in providers.iter().zip(&targets).zip(&expected) {
            let name = p.name();
            let (target, headers) = client_request(p, path);
            let mut sender = client::h1_sender(&handle.url(), host, cfg.clone()).await;
            let hdrs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let (status, body) = client::get(&mut sender, host, &target, &hdrs).await;
            assert_eq!(status, 200, "{name}: {host}{target}");
            // The echo quotes the request back; no part of the credential may reach the child.
            let body = String::from_utf8_lossy(&body);
            for value in parts.values() {
                assert!(!body.contains(value.as_str()), "{name}: a credential part came back in the response: {body}");
            }
            let seen = echo.seen().into_iter().rev().find(|s| s.sni.as_deref() == Some(host.as_str())).unwrap();
            let all = format!("{} {:?}", seen.target, seen.headers);
            assert!(!all.contains(PLACEHOLDER), "{name}: the placeholder reached the upstream: {all}");
            assert!(seen.target.contains("keep=1"), "{name}: other query parameters are kept: {}", seen.target);
            let mut basic = (None, None);
            for part in p.def.api_key.as_ref().unwrap().effective_parts() {
                let value = &parts[&part.name];
                match part.location {
                    KeyLocation::Header => {
                        let want = inject::prefixed(part.header_prefix.as_deref(), value);
                        assert_eq!(seen.header(&part.header_name), vec![want], "{name}: header {}", part.header_name);
                    }
                    KeyLocation::Query => {
                        let q = seen.target.split_once('?').map(|(_, q)| q).unwrap_or("");
                        let got: Vec<String> = url::form_urlencoded::parse(q.as_bytes())
                            .filter(|(n, _)| Some(n.as_ref()) == part.query_param.as_deref())
                            .map(|(_, v)| v.into_owned())
                            .collect();
                        assert_eq!(got, vec![value.clone()], "{name}: query parameter");
                    }
                    KeyLocation::Basic => match part.basic_position {
                        BasicPosition::Username => basic.0 = Some(value.clone()),
                        BasicPosition::Password => basic.1 = Some(value.clone()),
                    },
                }
            }
            if basic != (None, None) {
                let auth = seen.header("authorization");
                let b64 = auth[0].strip_prefix("Basic ").unwrap_or_else(|| panic!("{name}: {auth:?}"));
                let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
                let want = format!("{}:{}", basic.0.unwrap_or_else(|| "anystring".into()), basic.1.unwrap_or_else(|| "X".into()));
                assert_eq!(decoded, want, "{name}: HTTP Basic credentials");
            }
        }
        handle.shutdown().await;
    });
}

// ---------------------------------------------------------------- shared hosts

fn route(reg: &Registry, provider: &str, connection: &str, placeholder: &str) -> Route {
    Route {
        provider: Arc::new(reg.get(provider).unwrap().clone()),
        connection: connection.into(),
        placeholder: placeholder.into(),
        is_default: connection == "default",
    }
}

fn chosen(routes: &[Route], host: &str, path: &str, headers: &[(&str, &str)]) -> Option<(String, String)> {
    let mut b = http::Request::builder().uri(path);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let parts = b.body(()).unwrap().into_parts().0;
    match inject::decide(routes, host, 443, path.split('?').next().unwrap(), &parts) {
        inject::Decision::Inject { route } => Some((route.provider.name().to_owned(), route.connection.clone())),
        inject::Decision::Skip { .. } | inject::Decision::NoRoute => None,
    }
}

fn owned(p: &str, c: &str) -> Option<(String, String)> {
    Some((p.to_owned(), c.to_owned()))
}

#[test]
fn on_a_shared_host_the_named_route_then_the_most_specific_prefix_wins() {
    let reg = registry();
    let bearer = "Bearer authsome-proxy-managed";
    // Google's umbrella regex and its per-service prefixes, plus Gemini's key on a host of its own.
    let google = vec![
        route(&reg, "google", "default", PLACEHOLDER),
        route(&reg, "google-drive", "default", PLACEHOLDER),
        route(&reg, "google-calendar", "default", PLACEHOLDER),
        route(&reg, "gemini", "default", PLACEHOLDER),
    ];
    // Route order never matters.
    let mut reversed = google.clone();
    reversed.reverse();
    for routes in [&google, &reversed] {
        assert_eq!(chosen(routes, "www.googleapis.com", "/drive/v3/files", &[("authorization", bearer)]), owned("google-drive", "default"));
        assert_eq!(chosen(routes, "www.googleapis.com", "/calendar/v3/x", &[]), owned("google-calendar", "default"));
        assert_eq!(chosen(routes, "www.googleapis.com", "/drive/v2/files", &[("authorization", bearer)]), owned("google", "default"));
        assert_eq!(chosen(routes, "sheets.googleapis.com", "/v4/x", &[("authorization", bearer)]), owned("google", "default"));
        let key = [("x-goog-api-key", PLACEHOLDER)];
        assert_eq!(chosen(routes, "generativelanguage.googleapis.com", "/v1beta/models", &key), owned("gemini", "default"));
        assert_eq!(
            chosen(routes, "generativelanguage.googleapis.com", "/v1beta/models", &[("authorization", bearer)]),
            owned("google", "default"),
            "an OAuth bearer placeholder names Google even on Gemini's host"
        );
    }
    // Klaviyo's key and OAuth forms on one host: the credential format names the route.
    let klaviyo = vec![route(&reg, "klaviyo", "default", PLACEHOLDER), route(&reg, "klaviyo-oauth", "default", PLACEHOLDER)];
    let key = [("authorization", "Klaviyo-API-Key authsome-proxy-managed")];
    assert_eq!(chosen(&klaviyo, "a.klaviyo.com", "/api/profiles", &key), owned("klaviyo", "default"));
    assert_eq!(chosen(&klaviyo, "a.klaviyo.com", "/api/profiles", &[("authorization", bearer)]), owned("klaviyo-oauth", "default"));
    // Atlassian: the whole host vs /ex/jira and /ex/confluence; a named connection wins over specificity.
    let atl = vec![
        route(&reg, "atlassian", "default", PLACEHOLDER),
        route(&reg, "jira", "default", PLACEHOLDER),
        route(&reg, "confluence", "default", PLACEHOLDER),
        route(&reg, "atlassian", "work", "authsome-proxy-managed-work"),
    ];
    assert_eq!(chosen(&atl, "api.atlassian.com", "/ex/jira/1/rest/api/3/issue", &[]), owned("jira", "default"));
    assert_eq!(chosen(&atl, "api.atlassian.com", "/ex/confluence/1/wiki", &[("authorization", bearer)]), owned("confluence", "default"));
    assert_eq!(chosen(&atl, "api.atlassian.com", "/oauth/token/accessible-resources", &[]), owned("atlassian", "default"));
    let work = [("authorization", "Bearer authsome-proxy-managed-work")];
    assert_eq!(chosen(&atl, "api.atlassian.com", "/ex/jira/1/rest/api/3/issue", &work), owned("atlassian", "work"));
    // Microsoft Graph and its sub-providers.
    let graph = vec![route(&reg, "microsoft", "default", PLACEHOLDER), route(&reg, "microsoft-outlook", "default", PLACEHOLDER)];
    assert_eq!(
        chosen(&graph, "graph.microsoft.com", "/v1.0/me/messages/1", &[("authorization", bearer)]),
        owned("microsoft-outlook", "default")
    );
    assert_eq!(chosen(&graph, "graph.microsoft.com", "/v1.0/me/messagesX", &[("authorization", bearer)]), owned("microsoft", "default"));
    // Linear's regex and its MCP server's exact host.
    let linear = vec![route(&reg, "linear", "default", PLACEHOLDER), route(&reg, "linear-mcp", "default", PLACEHOLDER)];
    assert_eq!(chosen(&linear, "mcp.linear.app", "/sse", &[]), owned("linear-mcp", "default"));
    assert_eq!(chosen(&linear, "api.linear.app", "/graphql", &[]), owned("linear", "default"));
}

#[test]
fn templated_hosts_belong_to_the_connection_that_filled_them() {
    let reg = registry();
    let shopify = reg.get("shopify").unwrap();
    assert!(shopify.hosts.is_empty(), "an unbound template matches nothing");
    let bind = |shop: &str| shopify.bound(None, &BTreeMap::from([("shop".to_owned(), shop.to_owned())]));
    let routes = vec![
        Route { provider: Arc::new(bind("acme")), connection: "default".into(), placeholder: PLACEHOLDER.into(), is_default: true },
        Route {
            provider: Arc::new(bind("other")),
            connection: "other".into(),
            placeholder: "authsome-proxy-managed-other".into(),
            is_default: false,
        },
    ];
    assert_eq!(chosen(&routes, "acme.myshopify.com", "/admin/api/2025-01/shop.json", &[]), owned("shopify", "default"));
    assert_eq!(chosen(&routes, "other.myshopify.com", "/admin/api/2025-01/shop.json", &[]), owned("shopify", "other"));
    assert_eq!(chosen(&routes, "evil.myshopify.com", "/admin/x", &[]), None);
    assert_eq!(chosen(&routes, "acme.myshopify.com", "/storefront", &[]), None, "only the /admin prefix");
    // A --base-url connection keeps only the hosts built from its own base URL.
    let github = reg.get("github").unwrap();
    let ghe = github.bound(Some("https://github.example.com"), &BTreeMap::new());
    assert!(!ghe.matches_host("api.github.com", 443), "a GitHub Enterprise token never reaches api.github.com");
    assert!(ghe.hosts.iter().any(|h| h.matches_request("github.example.com", 443, "/api/v3/user")), "its own host's API");
    assert!(!ghe.hosts.iter().any(|h| h.matches_request("github.example.com", 443, "/login")), "only under /api/");
    let public = github.bound(Some("https://github.com/"), &BTreeMap::new());
    assert!(public.matches_host("api.github.com", 443));
    assert!(!public.matches_host("github.com", 443), "the default connection keeps the hosts it had");
}

// ---------------------------------------------------------------- CLI

#[test]
fn list_filters_by_category_and_inspect_prints_pages() {
    let h = crate::common::cli::Home::new();
    let v: serde_json::Value = serde_json::from_str(&h.run(&["list", "--json", "--category", "llm"]).ok().stdout).unwrap();
    let names: Vec<&str> = v["providers"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in ["openai", "anthropic", "gemini", "azure-openai", "cohere", "deepseek", "xai", "mistral"] {
        assert!(names.contains(&n), "{n} missing from --category llm: {names:?}");
    }
    assert!(v["providers"].as_array().unwrap().iter().all(|p| p["category"] == "llm"));
    assert!(!names.contains(&"github"));
    let table = h.run(&["list", "--category", "devtools"]).ok().stdout;
    assert!(table.contains("CATEGORY") && table.contains("github") && !table.contains("openai"), "{table}");
    let err = h.run(&["list", "--category", "nonsense"]).expect_code(2);
    assert!(err.stderr.contains("llm"), "the error lists the categories");
    let page = h.run(&["inspect", "stripe", "--page"]).ok().stdout;
    assert_eq!(page, std::fs::read_to_string(docs_dir().join("stripe.md")).unwrap());
    // An override's page is generated from the override.
    let mut custom: serde_json::Value = serde_json::from_str(&h.run(&["inspect", "stripe"]).ok().stdout).unwrap();
    custom["display_name"] = serde_json::json!("Stripe (staging)");
    std::fs::create_dir_all(h.path().join("providers")).unwrap();
    std::fs::write(h.path().join("providers/stripe.json"), custom.to_string()).unwrap();
    let page = h.run(&["inspect", "stripe", "--page"]).ok().stdout;
    assert!(page.starts_with("# Stripe (staging)\n\nStripe (staging) is a custom API-key provider"), "{page}");
}

/// The whole path for the new shapes, through the real binary: a login value
/// given with `--value`, a two-part key piped one part per line, both reaching
/// an upstream through `authsome run` in their places, with nothing secret in
/// `get` and placeholders only in the child.
#[test]
fn login_values_and_multi_part_keys_work_through_login_and_run() {
    let h = crate::common::cli::Home::with_key_file();
    let echo = Echo::start(&["acme.myshopify.com", "api.datadoghq.com"]);
    let shop_key = "shpat_0123456789abcdef0123456789abcdef";
    let (dd_api, dd_app) = ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef01234567");
    h.run_stdin(&["login", "shopify", "--value", "shop=acme"], shop_key).ok();
    let err = h.run_stdin(&["login", "shopify", "--value", "shop=evil.com/x"], shop_key).expect_code(2);
    assert!(err.stderr.contains("one host-name label"), "{}", err.stderr);
    let err = h.run_stdin(&["login", "datadog"], dd_api).expect_code(2);
    assert!(err.stderr.contains("one per line"), "{}", err.stderr);
    h.run_stdin(&["login", "datadog"], &format!("{dd_api}\n{dd_app}\n")).ok();
    let got = h.run(&["get", "shopify", "--json"]).ok().stdout;
    assert!(got.contains("\"shop\": \"acme\"") || got.contains("\"shop\":\"acme\""), "{got}");
    for secret in [shop_key, dd_api, dd_app] {
        assert!(!h.run(&["get", "datadog", "--json"]).ok().stdout.contains(secret));
        assert!(!got.contains(secret));
    }
    let script = "echo \"child: $SHOPIFY_ACCESS_TOKEN $DD_API_KEY $DD_APP_KEY\"; \
        curl -sS -f -o /dev/null -H \"X-Shopify-Access-Token: $SHOPIFY_ACCESS_TOKEN\" https://acme.myshopify.com/admin/api/2025-01/shop.json && \
        curl -sS -f -o /dev/null -H \"DD-API-KEY: $DD_API_KEY\" -H \"DD-APPLICATION-KEY: $DD_APP_KEY\" https://api.datadoghq.com/api/v1/validate";
    let resolve = ["acme.myshopify.com", "api.datadoghq.com"].iter().map(|h| echo.resolve(h)).collect::<Vec<_>>().join(",");
    let out = h
        .cmd(&["run", "--", "sh", "-c", script])
        .env("AUTHSOME_RESOLVE", resolve)
        .env("AUTHSOME_UPSTREAM_CA", &echo.ca_path)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("child: {PLACEHOLDER} {PLACEHOLDER} {PLACEHOLDER}")), "{stdout}");
    let seen = echo.seen();
    let shop = seen.iter().find(|s| s.sni.as_deref() == Some("acme.myshopify.com")).expect("the shop was reached");
    assert_eq!(shop.header("x-shopify-access-token"), vec![shop_key.to_owned()]);
    let dd = seen.iter().find(|s| s.sni.as_deref() == Some("api.datadoghq.com")).expect("Datadog was reached");
    assert_eq!(dd.header("dd-api-key"), vec![dd_api.to_owned()]);
    assert_eq!(dd.header("dd-application-key"), vec![dd_app.to_owned()]);
}

// ---------------------------------------------------------------- reference facts

/// Where a bundled definition deliberately differs from the Python reference
/// 0.7.2 (`tests/data/providers-upstream-0.7.2.tsv`), and why. Every other fact
/// of its 86 non-cookie providers must match.
const DIFFERENCES: &[(&str, &str, &str)] = &[
    ("ashby", "api_key", "HTTP Basic with the key as user name (the reference sent the raw key after 'Basic')"),
    ("bedrock", "*", "Bedrock API keys (Authorization: Bearer, AWS_BEARER_TOKEN_BEDROCK) on a per-region host; the reference injected an access key ID as a security token, which AWS rejects"),
    ("github", "api_url", "the githubusercontent regex is anchored on a dot (the reference's also matched evilgithubusercontent.com); {base_url}/api/ for an Enterprise connection's own host"),
    ("google", "api_url", "googleapis.com and its subdomains only (the reference's .*googleapis.* also matched googleapis.evil.test)"),
    ("hubspot", "revocation_url", "HubSpot's refresh-token endpoint is not an RFC 7009 revocation endpoint"),
    ("mailchimp", "api_key", "the key as the HTTP Basic password, as Mailchimp documents"),
    ("mailchimp", "api_url", "<dc>.api.mailchimp.com, where the API is (api.mailchimp.com serves nothing)"),
    ("microsoft-calendar", "api_url", "also /me/calendar, /me/events and /me/calendarView, where Graph's calendar API is"),
    ("microsoft-outlook", "api_url", "also /me/mailFolders and /me/sendMail, where Graph's mail API is"),
    ("reddit", "scopes", "Reddit requires a scope; identity and read"),
    ("semrush", "api_key", "the key as the 'key' query parameter, as SEMrush documents"),
    ("todoist", "api_url", "also /api/v1, Todoist's current API (its revocation endpoint is there too)"),
    ("x", "api_url", "also api.x.com, X's current API host"),
    ("zoom", "authorization_method", "Zoom's token endpoint takes the client credentials as HTTP Basic"),
    // Additions the reference lacks (nothing of it changed):
    ("google", "authorization_params", "access_type=offline and prompt=consent, without which Google issues no refresh token (all google-*)"),
    ("atlassian", "authorization_params", "audience=api.atlassian.com and prompt=consent, which Atlassian's 3LO requires (jira, confluence too)"),
    ("notion", "authorization_params", "owner=user, which Notion's authorization URL requires"),
    ("discord", "export", "DISCORD_REFRESH_TOKEN is declared as on the seed page (never exported)"),
];

fn differs(name: &str, field: &str) -> bool {
    DIFFERENCES.iter().any(|(n, f, _)| *n == name && (*f == field || *f == "*"))
}

#[test]
fn the_reference_providers_keep_their_facts_or_document_why_not() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/providers-upstream-0.7.2.tsv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let reg = registry();
    let mut checked = 0;
    for line in lines {
        let row: BTreeMap<&str, &str> = head.iter().copied().zip(line.split('\t')).collect();
        if row["auth_type"] == "browser" {
            continue;
        }
        let name = row["name"];
        let d = &reg.get(name).unwrap_or_else(|_| panic!("{name} from the reference is missing")).def;
        checked += 1;
        if differs(name, "*") {
            continue;
        }
        assert_eq!(serde_json::to_value(d.auth_type).unwrap(), row["auth_type"], "{name}: auth_type");
        assert_eq!(d.flow.as_str(), row["flow"], "{name}: flow");
        assert_eq!(d.title(), row["display_name"], "{name}: display_name");
        if !differs(name, "api_url") {
            let want: Vec<&str> = row["api_host"].split(' ').collect();
            assert_eq!(d.api_url.entries(), want, "{name}: api_url");
        }
        let exported: BTreeSet<&str> = d.exported_vars().collect();
        for pair in row["env_vars"].split(' ') {
            let var = pair.split("<-").next().unwrap();
            assert!(exported.contains(var), "{name}: exports {var}");
        }
        if let Some(o) = &d.oauth {
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            assert_eq!(o.authorization_url, opt(row["authorization_url"]), "{name}: authorization_url");
            assert_eq!(o.token_url, opt(row["token_url"]), "{name}: token_url");
            assert_eq!(o.device_authorization_url, opt(row["device_authorization_url"]), "{name}: device_authorization_url");
            if !differs(name, "revocation_url") {
                assert_eq!(o.revocation_url, opt(row["revocation_url"]), "{name}: revocation_url");
            }
            if !differs(name, "scopes") {
                let want: Vec<&str> = row["default_scopes"].split(' ').filter(|s| !s.is_empty()).collect();
                assert_eq!(o.scopes, want, "{name}: scopes");
            }
            assert_eq!(o.pkce, row["pkce"] == "True", "{name}: pkce");
            assert_eq!(o.supports_device_code, row["device_code"] == "True", "{name}: device code");
            assert_eq!(o.supports_dcr, row["dcr"] == "True", "{name}: dcr");
            assert_eq!(d.registration.as_ref().and_then(|r| r.registration_endpoint.clone()), opt(row["registration_endpoint"]));
            if !differs(name, "authorization_method") {
                let basic = row["notes"].contains("authorization_method=basic");
                assert_eq!(o.authorization_method == ClientAuth::Basic, basic, "{name}: client authentication");
            }
            let json = row["notes"].contains("device_token_request=json");
            assert_eq!(o.device_token_request == authsome::providers::def::BodyFormat::Json, json, "{name}: device poll body");
            if row["notes"].contains("duration=permanent") {
                assert_eq!(o.authorization_params.get("duration").map(String::as_str), Some("permanent"), "{name}");
            }
        }
        if let (Some(k), false) = (&d.api_key, differs(name, "api_key")) {
            assert_eq!(k.header_name, row["header_name"], "{name}: header_name");
            assert_eq!(k.header_prefix.as_deref().unwrap_or(""), row["header_prefix"], "{name}: header_prefix");
            if !row["key_pattern"].is_empty() {
                assert_eq!(k.key_pattern.as_deref(), Some(row["key_pattern"]), "{name}: key_pattern");
            }
        }
    }
    assert_eq!(checked, 86, "the reference has 86 non-cookie providers");
}
