//! An in-process fake OAuth 2.0 authorization server for tests: authorization
//! (with or without PKCE), token (code, refresh, device), device authorization
//! (RFC 8628), revocation (RFC 7009), registration (RFC 7591) and metadata
//! (RFC 8414), on 127.0.0.1 with an ephemeral port, plain HTTP (loopback
//! endpoints are allowed in provider files).
//!
//! Behaviour is configurable per provider shape and changeable while running
//! ([`FakeAs::configure`]); every request is recorded ([`FakeAs::requests`]) and
//! every secret it issued or received is listed ([`FakeAs::secrets`]) so tests
//! can assert none of them leaked into output.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server behaves; change it any time with [`FakeAs::configure`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The registered client.
    pub client_id: String,
    /// Its secret; `None` for a public client (no authentication checked).
    pub client_secret: Option<String>,
    /// Reject authorization requests without an S256 `code_challenge` (GitHub-like).
    pub require_pkce: bool,
    /// Answer the authorization request with `error=access_denied`.
    pub deny_consent: bool,
    /// Send this `state` back instead of the one received (wrong-state tests).
    pub state_override: Option<String>,
    /// `scope` in token responses; `None` omits it.
    pub granted_scope: Option<String>,
    /// `expires_in` of issued access tokens; `None` omits it.
    pub expires_in: Option<u64>,
    /// Issue a new refresh token on every refresh (the old one dies).
    pub rotate_refresh: bool,
    /// Answer refresh requests with this status and OAuth `error`.
    pub refresh_error: Option<(u16, String)>,
    /// Answer every token request with this status and a non-JSON body.
    pub token_status: Option<u16>,
    /// Sleep this long before every response.
    pub delay: Duration,
    /// Errors returned by successive device-code polls before tokens are issued
    /// (`authorization_pending`, `slow_down`, `access_denied`, `expired_token`).
    pub device_script: VecDeque<String>,
    /// `interval` in device authorization responses.
    pub device_interval: u64,
    /// Status answered by the revocation endpoint.
    pub revoke_status: u16,
    /// Whether the RFC 8414 metadata names a registration endpoint.
    pub metadata_registration: bool,
    /// Answer token-endpoint errors with HTTP 200 and the error in the JSON
    /// body, as GitHub does (`{"error": "authorization_pending"}`).
    pub errors_as_200: bool,
    /// Strict rotation with reuse detection (OAuth 2.0 Security BCP): a
    /// second use of any refresh token is `invalid_grant` and revokes its
    /// whole family (every token descended from the same login).
    pub strict_rotation: bool,
    /// Sleep this long after a token request was processed (tokens issued,
    /// refresh token rotated) and before answering: a window to kill the client.
    pub token_response_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_id: "test-client-id".into(),
            client_secret: Some(format!("cs-{}", rand_token())),
            require_pkce: false,
            deny_consent: false,
            state_override: None,
            granted_scope: None,
            expires_in: Some(3600),
            rotate_refresh: true,
            refresh_error: None,
            token_status: None,
            delay: Duration::ZERO,
            device_script: VecDeque::new(),
            device_interval: 0,
            revoke_status: 200,
            metadata_registration: true,
            errors_as_200: false,
            strict_rotation: false,
            token_response_delay: Duration::ZERO,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// Form parameters of an urlencoded body.
    pub form: BTreeMap<String, String>,
    /// A JSON body, when it was one.
    pub json: Option<serde_json::Value>,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
}

impl Request {
    /// Which endpoint this request hit (`authorize`, `token`, `device`, `revoke`, `register`, `metadata`).
    pub fn endpoint(&self) -> &'static str {
        endpoint_of(&self.path)
    }
}

struct CodeGrant {
    challenge: Option<(String, String)>,
    redirect_uri: String,
    scope: String,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    codes: HashMap<String, CodeGrant>,
    refresh_tokens: HashSet<String>,
    secrets: Vec<String>,
    access_tokens: Vec<String>,
    registered: Vec<String>,
    family_of: HashMap<String, u64>,
    spent: HashSet<String>,
    next_family: u64,
    reuse_detected: usize,
    /// Access token → (family, when issued, lifetime).
    issued: HashMap<String, (u64, Instant, Option<u64>)>,
    /// Families revoked by reuse detection.
    revoked_families: HashSet<u64>,
    /// Successful rotations in order: (refresh token presented, refresh token issued).
    rotations: Vec<(String, String)>,
}

/// A running fake authorization server; stops when dropped.
pub struct FakeAs {
    addr: SocketAddr,
    ca_pem: Option<String>,
    config: Arc<Mutex<Config>>,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A random URL-safe token.
pub fn rand_token() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 18];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn endpoint_of(path: &str) -> &'static str {
    if path.ends_with("/.well-known/oauth-authorization-server") {
        "metadata"
    } else if path.ends_with("/authorize") {
        "authorize"
    } else if path.ends_with("/revoke") {
        "revoke"
    } else if path.ends_with("/register") {
        "register"
    } else if path.ends_with("/device/code") || path.ends_with("/device") {
        "device"
    } else if path.ends_with("/token") || path.ends_with("/access_token") {
        "token"
    } else {
        "other"
    }
}

impl FakeAs {
    /// Start on 127.0.0.1 with an ephemeral port, on its own thread and runtime.
    pub fn start(config: Config) -> FakeAs {
        Self::spawn(config, None, std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// [`FakeAs::start`] listening on `bind` (all addresses, for hosts in
    /// other network namespaces); its URLs still name 127.0.0.1.
    pub fn start_on(config: Config, bind: std::net::IpAddr) -> FakeAs {
        Self::spawn(config, None, bind)
    }

    /// Start speaking HTTPS with a certificate for `names` (and 127.0.0.1)
    /// issued by a fresh test CA ([`FakeAs::ca_pem`]), so real provider
    /// definitions can be pointed here with `AUTHSOME_RESOLVE` and `AUTHSOME_UPSTREAM_CA`.
    pub fn start_tls(config: Config, names: &[&str]) -> FakeAs {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "authsome fake AS test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        sans.push("127.0.0.1".into());
        let leaf = rcgen::CertificateParams::new(sans).unwrap().signed_by(&leaf_key, &ca).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        Self::spawn(config, Some((tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ca.pem())), std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// PEM of the test CA when started with [`FakeAs::start_tls`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    fn spawn(config: Config, tls: Option<(tokio_rustls::TlsAcceptor, String)>, bind: std::net::IpAddr) -> FakeAs {
        let (acceptor, ca_pem) = match tls {
            Some((a, p)) => (Some(a), Some(p)),
            None => (None, None),
        };
        let config = Arc::new(Mutex::new(config));
        let state = Arc::new(Mutex::new(State::default()));
        if let Some(s) = &config.lock().unwrap().client_secret {
            state.lock().unwrap().secrets.push(s.clone());
        }
        let std_listener = std::net::TcpListener::bind((bind, 0)).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), std_listener.local_addr().unwrap().port());
        let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (c, s) = (config.clone(), state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        acc = listener.accept() => {
                            let Ok((tcp, _)) = acc else { continue };
                            let (c, s, acceptor) = (c.clone(), s.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| handle(c.clone(), s.clone(), addr, req));
                                let http = hyper::server::conn::http1::Builder::new();
                                match acceptor {
                                    Some(a) => {
                                        if let Ok(tls) = a.accept(tcp).await {
                                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(tls), svc).await;
                                        }
                                    }
                                    None => {
                                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc).await;
                                    }
                                }
                            });
                        }
                    }
                }
            });
        });
        FakeAs { addr, ca_pem, config, state, stop: Some(stop) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Change the behaviour.
    pub fn configure(&self, f: impl FnOnce(&mut Config)) {
        let mut c = self.config.lock().unwrap();
        f(&mut c);
        if let Some(s) = &c.client_secret {
            self.state.lock().unwrap().secrets.push(s.clone());
        }
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.config.lock().unwrap().clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests to one endpoint kind (see [`Request::endpoint`]).
    pub fn requests_to(&self, endpoint: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.endpoint() == endpoint).collect()
    }

    /// Token requests with this `grant_type`.
    pub fn token_requests(&self, grant_type: &str) -> Vec<Request> {
        self.requests_to("token").into_iter().filter(|r| r.form.get("grant_type").map(String::as_str) == Some(grant_type)).collect()
    }

    /// Every secret issued or received: client secret, codes, verifiers, tokens.
    pub fn secrets(&self) -> Vec<String> {
        self.state.lock().unwrap().secrets.clone()
    }

    /// Access tokens issued, oldest first.
    pub fn access_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().access_tokens.clone()
    }

    /// How many times a spent refresh token was presented again (strict rotation).
    pub fn reuse_detected(&self) -> usize {
        self.state.lock().unwrap().reuse_detected
    }

    /// A check an API can run on each access token it is sent: one this
    /// server issued that is valid now (not expired, its family not revoked
    /// by reuse detection).
    pub fn access_token_check(&self) -> impl Fn(&str) -> bool + Send + Sync + 'static {
        let state = self.state.clone();
        move |token| {
            let s = state.lock().unwrap();
            s.issued.get(token).is_some_and(|(family, at, life)| {
                !s.revoked_families.contains(family) && life.is_none_or(|l| at.elapsed() < Duration::from_secs(l))
            })
        }
    }

    /// Successful refresh-token rotations in order: (presented, issued).
    pub fn rotations(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().rotations.clone()
    }

    /// Refresh tokens currently valid.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().refresh_tokens.iter().cloned().collect()
    }

    /// Client IDs handed out by the registration endpoint.
    pub fn registered_clients(&self) -> Vec<String> {
        self.state.lock().unwrap().registered.clone()
    }

    /// A Discord-shaped provider definition (plain code flow, no PKCE,
    /// revocation endpoint) pointing at this server.
    pub fn discord_provider(&self) -> serde_json::Value {
        serde_json::json!({
            "schema_version": 1, "name": "discord", "display_name": "Discord", "auth_type": "oauth2", "flow": "pkce",
            "api_url": "discord.com",
            "oauth": {
                "authorization_url": self.url("/oauth2/authorize"),
                "token_url": self.url("/api/oauth2/token"),
                "revocation_url": self.url("/api/oauth2/token/revoke"),
                "scopes": ["identify", "email", "guilds", "connections"],
                "pkce": false, "supports_device_code": false, "supports_dcr": false
            },
            "export": {"DISCORD_ACCESS_TOKEN": "ACCESS_TOKEN", "DISCORD_REFRESH_TOKEN": "REFRESH_TOKEN"},
            "docs_url": "https://discord.com/developers/applications"
        })
    }

    /// A GitHub-shaped provider (PKCE, device flow, `{base_url}` templating,
    /// comma-separated granted scopes) pointing at this server.
    pub fn github_provider(&self) -> serde_json::Value {
        serde_json::json!({
            "schema_version": 1, "name": "github", "display_name": "GitHub", "auth_type": "oauth2", "flow": "pkce",
            "api_url": "api.github.com",
            "oauth": {
                "authorization_url": "{base_url}/login/oauth/authorize",
                "token_url": "{base_url}/login/oauth/access_token",
                "device_authorization_url": "{base_url}/login/device/code",
                "scopes": ["repo", "read:user"],
                "pkce": true, "supports_device_code": true, "supports_dcr": false,
                "base_url": self.origin()
            },
            "export": {"GH_TOKEN": "ACCESS_TOKEN"},
            "docs_url": "https://github.com/settings/developers"
        })
    }

    /// A DCR provider whose definition gives no registration endpoint (found via RFC 8414 metadata).
    pub fn dcr_provider(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "schema_version": 1, "name": name, "auth_type": "oauth2", "flow": "dcr_pkce",
            "api_url": "mcp.example.com",
            "oauth": {
                "authorization_url": self.url("/authorize"),
                "token_url": self.url("/token"),
                "revocation_url": self.url("/revoke"),
                "scopes": [], "pkce": true, "supports_dcr": true
            },
            "export": {"EXAMPLE_ACCESS_TOKEN": "ACCESS_TOKEN"}
        })
    }
}

impl Drop for FakeAs {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

type Resp = http::Response<Full<Bytes>>;

fn json(status: u16, v: serde_json::Value) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn redirect(to: String) -> Resp {
    http::Response::builder().status(302).header("location", to).body(Full::new(Bytes::new())).unwrap()
}

fn oauth_error(status: u16, error: &str) -> Resp {
    json(status, serde_json::json!({"error": error, "error_description": format!("fake server says {error}")}))
}

fn parse_pairs(s: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

/// S256 of a verifier, base64url without padding (RFC 7636).
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

async fn handle(
    config: Arc<Mutex<Config>>,
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    req: http::Request<hyper::body::Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: BTreeMap<String, String> =
        parts.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    let is_form = headers.get("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let record = Request {
        at: Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parse_pairs(parts.uri.query().unwrap_or("")),
        form: if is_form { parse_pairs(&String::from_utf8_lossy(&body)) } else { BTreeMap::new() },
        json: serde_json::from_slice(&body).ok(),
        headers,
    };
    let cfg = config.lock().unwrap().clone();
    {
        let mut st = state.lock().unwrap();
        if let Some(v) = record.form.get("code_verifier") {
            st.secrets.push(v.clone());
        }
        st.requests.push(record.clone());
    }
    if !cfg.delay.is_zero() {
        tokio::time::sleep(cfg.delay).await;
    }
    let resp = match record.endpoint() {
        "authorize" => authorize(&cfg, &state, &record),
        "token" => {
            let mut resp = token(&config, &cfg, &state, &record);
            if !cfg.token_response_delay.is_zero() {
                tokio::time::sleep(cfg.token_response_delay).await;
            }
            if cfg.errors_as_200 && resp.status().is_client_error() {
                *resp.status_mut() = http::StatusCode::OK;
            }
            resp
        }
        "device" => json(
            200,
            serde_json::json!({
                "device_code": format!("dc-{}", rand_token()),
                "user_code": "WDJB-MJHT",
                "verification_uri": format!("http://{addr}/activate"),
                "verification_uri_complete": format!("http://{addr}/activate?user_code=WDJB-MJHT"),
                "expires_in": 600,
                "interval": cfg.device_interval,
            }),
        ),
        "revoke" => http::Response::builder().status(cfg.revoke_status).body(Full::new(Bytes::new())).unwrap(),
        "register" => {
            let id = format!("dcr-{}", rand_token());
            state.lock().unwrap().registered.push(id.clone());
            let redirect_uris = record.json.as_ref().and_then(|j| j.get("redirect_uris").cloned()).unwrap_or_default();
            json(201, serde_json::json!({"client_id": id, "redirect_uris": redirect_uris, "token_endpoint_auth_method": "none"}))
        }
        "metadata" => {
            let mut m = serde_json::json!({
                "issuer": format!("http://{addr}"),
                "authorization_endpoint": format!("http://{addr}/authorize"),
                "token_endpoint": format!("http://{addr}/token"),
                "code_challenge_methods_supported": ["S256"],
            });
            if cfg.metadata_registration {
                m["registration_endpoint"] = serde_json::json!(format!("http://{addr}/register"));
            }
            json(200, m)
        }
        _ => http::Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found"))).unwrap(),
    };
    Ok(resp)
}

fn authorize(cfg: &Config, state: &Mutex<State>, r: &Request) -> Resp {
    let q = &r.query;
    let Some(redirect_uri) = q.get("redirect_uri") else { return oauth_error(400, "invalid_request") };
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let st = cfg.state_override.clone().or_else(|| q.get("state").cloned()).unwrap_or_default();
    let back = |params: Vec<(&str, String)>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, &v);
        }
        s.append_pair("state", &st);
        redirect(format!("{redirect_uri}{sep}{}", s.finish()))
    };
    if cfg.client_id != q.get("client_id").cloned().unwrap_or_default() && !cfg.client_id.is_empty() {
        let registered = state.lock().unwrap().registered.contains(q.get("client_id").unwrap_or(&String::new()));
        if !registered {
            return back(vec![("error", "unauthorized_client".into())]);
        }
    }
    if cfg.deny_consent {
        return back(vec![("error", "access_denied".into()), ("error_description", "The user denied the request".into())]);
    }
    let challenge = q.get("code_challenge").map(|c| (c.clone(), q.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into())));
    if cfg.require_pkce && challenge.as_ref().is_none_or(|(_, m)| m != "S256") {
        return back(vec![("error", "invalid_request".into()), ("error_description", "PKCE S256 required".into())]);
    }
    let code = format!("code-{}", rand_token());
    let mut s = state.lock().unwrap();
    s.secrets.push(code.clone());
    s.codes.insert(
        code.clone(),
        CodeGrant { challenge, redirect_uri: redirect_uri.clone(), scope: q.get("scope").cloned().unwrap_or_default() },
    );
    drop(s);
    back(vec![("code", code)])
}

fn client_ok(cfg: &Config, r: &Request) -> bool {
    let (mut id, mut secret) = (r.form.get("client_id").cloned(), r.form.get("client_secret").cloned());
    if let Some(b) = r.headers.get("authorization").and_then(|h| h.strip_prefix("Basic ")) {
        let dec = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default()).unwrap_or_default();
        if let Some((i, s)) = dec.split_once(':') {
            let d =
                |x: &str| url::form_urlencoded::parse(format!("x={x}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
            id = Some(d(i));
            secret = Some(d(s));
        }
    }
    match &cfg.client_secret {
        None => true,
        Some(expected) => id.as_deref() == Some(cfg.client_id.as_str()) && secret.as_deref() == Some(expected.as_str()),
    }
}

/// Issue an access and a refresh token: a new family, or rotated from the refresh token `from`.
fn issue(cfg: &Config, state: &Mutex<State>, scope: Option<String>, from: Option<String>) -> Resp {
    let at = format!("at-{}", rand_token());
    let rt = format!("rt-{}", rand_token());
    let mut s = state.lock().unwrap();
    let family = match from.as_ref().and_then(|f| s.family_of.get(f).copied()) {
        Some(f) => f,
        None => {
            s.next_family += 1;
            s.next_family
        }
    };
    if let Some(from) = from {
        s.rotations.push((from, rt.clone()));
    }
    s.issued.insert(at.clone(), (family, Instant::now(), cfg.expires_in));
    s.family_of.insert(rt.clone(), family);
    s.secrets.push(at.clone());
    s.secrets.push(rt.clone());
    s.access_tokens.push(at.clone());
    s.refresh_tokens.insert(rt.clone());
    drop(s);
    let mut v = serde_json::json!({"access_token": at, "token_type": "Bearer", "refresh_token": rt});
    if let Some(e) = cfg.expires_in {
        v["expires_in"] = e.into();
    }
    if let Some(sc) = cfg.granted_scope.clone().or(scope) {
        v["scope"] = sc.into();
    }
    json(200, v)
}

/// A token request whose parameters came as a JSON object (Postiz's device
/// poll) is read like the equivalent form.
fn json_as_form(r: &Request) -> Request {
    let mut r = r.clone();
    if let (true, Some(serde_json::Value::Object(m))) = (r.form.is_empty(), &r.json) {
        r.form = m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect();
    }
    r
}

fn token(config: &Mutex<Config>, cfg: &Config, state: &Mutex<State>, r: &Request) -> Resp {
    let r = &json_as_form(r);
    if let Some(status) = cfg.token_status {
        return http::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"<html>Internal Server Error</html>")))
            .unwrap();
    }
    let grant = r.form.get("grant_type").cloned().unwrap_or_default();
    let registered = r.form.get("client_id").is_some_and(|id| state.lock().unwrap().registered.contains(id));
    if !registered && !client_ok(cfg, r) {
        return oauth_error(401, "invalid_client");
    }
    match grant.as_str() {
        "authorization_code" => {
            let code = r.form.get("code").cloned().unwrap_or_default();
            let Some(g) = state.lock().unwrap().codes.remove(&code) else { return oauth_error(400, "invalid_grant") };
            if r.form.get("redirect_uri") != Some(&g.redirect_uri) {
                return oauth_error(400, "invalid_grant");
            }
            if let Some((challenge, method)) = &g.challenge {
                let Some(v) = r.form.get("code_verifier") else { return oauth_error(400, "invalid_grant") };
                let ok = if method == "S256" { s256(v) == *challenge } else { v == challenge };
                if !ok {
                    return oauth_error(400, "invalid_grant");
                }
            }
            issue(cfg, state, Some(g.scope), None)
        }
        "refresh_token" => {
            if let Some((status, err)) = &cfg.refresh_error {
                return oauth_error(*status, err);
            }
            let rt = r.form.get("refresh_token").cloned().unwrap_or_default();
            let mut s = state.lock().unwrap();
            let family = s.family_of.get(&rt).copied();
            if cfg.strict_rotation && s.spent.contains(&rt) {
                // Reuse: treat as theft, revoke the whole family.
                s.reuse_detected += 1;
                let family_of = s.family_of.clone();
                s.refresh_tokens.retain(|t| family_of.get(t) != family.as_ref());
                s.revoked_families.extend(family);
                return oauth_error(400, "invalid_grant");
            }
            if !s.refresh_tokens.contains(&rt) {
                return oauth_error(400, "invalid_grant");
            }
            if cfg.rotate_refresh {
                s.refresh_tokens.remove(&rt);
                s.spent.insert(rt.clone());
                drop(s);
                issue(cfg, state, None, Some(rt))
            } else {
                let at = format!("at-{}", rand_token());
                s.secrets.push(at.clone());
                s.access_tokens.push(at.clone());
                s.issued.insert(at.clone(), (family.unwrap_or_default(), Instant::now(), cfg.expires_in));
                let mut v = serde_json::json!({"access_token": at, "token_type": "Bearer"});
                if let Some(e) = cfg.expires_in {
                    v["expires_in"] = e.into();
                }
                json(200, v)
            }
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let next = config.lock().unwrap().device_script.pop_front();
            match next {
                Some(err) => oauth_error(400, &err),
                None => issue(cfg, state, None, None),
            }
        }
        _ => oauth_error(400, "unsupported_grant_type"),
    }
}

/// A bare HTTP/1.1 GET without following redirects: (status, headers, body).
pub fn http_get(url: &str) -> (u16, BTreeMap<String, String>, String) {
    use std::io::{Read, Write};
    let u = url::Url::parse(url).unwrap();
    let mut s = std::net::TcpStream::connect((u.host_str().unwrap(), u.port_or_known_default().unwrap())).unwrap();
    let target = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        u.host_str().unwrap(),
        u.port_or_known_default().unwrap()
    )
    .unwrap();
    // Read the head, then exactly Content-Length bytes (some servers ignore `Connection: close`).
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: BTreeMap<String, String> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let mut body = raw[head_end + 4..].to_vec();
    match headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    (status, headers, body)
}
