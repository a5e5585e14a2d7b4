//! The injecting HTTPS proxy: an engine that knows nothing of the application.
//!
//! [`start`] runs a proxy on a loopback ephemeral port, independent of any
//! child process. It takes [`Route`]s (which can be replaced while it runs,
//! [`ProxyHandle::set_routes`]), a [`CredentialSource`], an audit sink and
//! upstream settings, and imports nothing from the vault, OAuth, projects,
//! shells, daemons, paths or the CLI: the launch layer (`crate::launch`)
//! assembles those for it. `.ci/proxy-is-an-engine` enforces this.
//!
//! Modules, one concern each: [`ca`] (constrained in-memory CAs and leaves),
//! [`server`] (listener, proxy credential, CONNECT, blind tunnels),
//! [`intercept`] (TLS termination and forwarding for declared hosts),
//! [`inject`] (the injection rule), [`upstream`] (pooled upstream clients),
//! [`bundle`] (the CA bundle file clients trust), [`scrub`] (response
//! scrubbing), [`limits`] (timeouts and bounds against clients that hold
//! connections), with `admission` (the bound on unauthenticated connections)
//! and `idle` (idle intercepted connections).

mod admission;
pub(crate) mod bundle;
pub mod ca;
mod idle;
pub mod inject;
pub(crate) mod intercept;
pub mod limits;
pub mod scrub;
pub(crate) mod server;
pub(crate) mod upstream;

use crate::audit::AuditSink;
use crate::error::{Error, Result};
use crate::providers::{HostPattern, Provider};
use crate::secret::Secret;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

pub use limits::Limits;
pub use upstream::UpstreamSettings;

/// A boxed, sendable future (what trait objects return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the proxy gets the real credential of a connection, at injection time.
///
/// Called for every injected request, so a source that reads the vault picks
/// up new logins and refreshed tokens without restarting the proxy.
pub trait CredentialSource: Send + Sync {
    /// The credential to inject for `connection` of `provider`.
    fn credential<'a>(&'a self, provider: &'a Provider, connection: &'a str) -> BoxFuture<'a, std::result::Result<Secret, Unavailable>>;
}

/// Why a [`CredentialSource`] has nothing to inject. The proxy answers the
/// request itself (511 Network Authentication Required) with the message, so it must be secret-free and, where
/// there is one, name the fix; the source knows it, the engine does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// No credential is stored for the connection.
    NotLoggedIn(String),
    /// The source failed (storage unreadable, refresh rejected, revoked).
    Failed(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NotLoggedIn(m) | Unavailable::Failed(m) => f.write_str(m),
        }
    }
}

/// One connection the proxy may inject.
#[derive(Debug, Clone)]
pub struct Route {
    /// The provider (hosts, OAuth endpoints, key rule).
    pub provider: Arc<Provider>,
    /// The connection's name.
    pub connection: String,
    /// What the child holds instead of the secret; a request carrying it in
    /// the credential position selects this connection.
    pub placeholder: String,
    /// Whether this is the provider's default connection (used when a request
    /// carries no recognisable placeholder).
    pub is_default: bool,
}

/// Everything [`start`] needs.
pub struct ProxyOptions {
    /// Connections to serve (may be empty; see [`ProxyHandle::set_routes`]).
    pub routes: Vec<Route>,
    /// Refuse (403) CONNECTs to undeclared hosts instead of tunnelling them.
    pub deny_undeclared: bool,
    /// Identifies this proxy in the audit log.
    pub run_id: String,
    /// Receives one event per injection and per refusal.
    pub audit: Arc<dyn AuditSink>,
    /// Supplies real credentials at injection time.
    pub credentials: Arc<dyn CredentialSource>,
    /// Where to keep the combined CA bundle (system roots + run CAs), mode
    /// 0600, rewritten atomically when a CA is added and removed on shutdown.
    pub bundle_path: Option<PathBuf>,
    /// Upstream name overrides and trust (usually [`UpstreamSettings::from_env`]).
    pub upstream: UpstreamSettings,
    /// Timeouts and bounds against clients that hold connections ([`Limits::default`]).
    pub limits: Limits,
}

/// A fresh random run identifier (16 hex digits).
pub fn new_run_id() -> String {
    crate::text::hex(&random_bytes::<8>())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("system randomness");
    b
}

/// The DNS name constraints needed to intercept every host of `routes`.
fn constraints_of(routes: &[Route]) -> Vec<String> {
    let mut out: Vec<String> = routes.iter().flat_map(|r| r.provider.hosts.iter().filter_map(HostPattern::dns_constraint)).collect();
    out.sort();
    out.dedup();
    out
}

/// Human notes on `api_url` entries that cannot be intercepted (a regex with
/// no literal domain suffix cannot be put into a name constraint): traffic to
/// such hosts is tunnelled blind and never receives a credential.
pub fn uninterceptable(routes: &[Route]) -> Vec<String> {
    let mut out = Vec::new();
    for r in routes {
        for h in &r.provider.hosts {
            if h.dns_constraint().is_none() {
                if let HostPattern::Regex { source, .. } = h {
                    out.push(format!(
                        "{}: api_url regex:{source} has no literal domain suffix to constrain the run CA to; such hosts are tunnelled without injection",
                        r.provider.name()
                    ));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The per-run proxy credential (user name and secret password).
#[derive(Clone)]
pub struct ProxyAuth {
    user: String,
    password: Secret,
}

impl ProxyAuth {
    fn random() -> ProxyAuth {
        ProxyAuth { user: "authsome".into(), password: Secret::new(crate::text::hex(&random_bytes::<16>())) }
    }

    /// Whether `headers` carry this credential in `Proxy-Authorization: Basic`.
    pub fn check(&self, headers: &http::HeaderMap) -> bool {
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password.expose()));
        headers.get_all(http::header::PROXY_AUTHORIZATION).iter().any(|v| {
            let v = v.as_bytes();
            v.len() > 6 && v[..6].eq_ignore_ascii_case(b"basic ") && ct_eq(v[6..].trim_ascii(), expected.as_bytes())
        })
    }
}

/// Constant-time equality (the proxy credential must not leak through timing).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// State shared by every connection of one proxy.
pub(crate) struct Shared {
    routes: RwLock<Arc<Vec<Route>>>,
    cas: ca::CaSet,
    deny_undeclared: bool,
    run_id: String,
    audit: Arc<dyn AuditSink>,
    credentials: Arc<dyn CredentialSource>,
    bundle: Option<bundle::BundleFile>,
    auth: ProxyAuth,
    upstream: upstream::Upstream,
    resolver: crate::net::Resolver,
    limits: Limits,
    /// Turns true when the proxy stops; long-lived tasks (tunnels, WebSocket
    /// splices) watch it so nothing outlives [`ProxyHandle::shutdown`].
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    fn routes(&self) -> Arc<Vec<Route>> {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, event: crate::audit::Event) {
        self.audit.record(&event);
    }

    /// Placeholders of every route (never forwarded upstream).
    fn placeholders(routes: &[Route]) -> Vec<&str> {
        let mut v: Vec<&str> = routes.iter().map(|r| r.placeholder.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// A running proxy. Dropping it stops the listener and removes the bundle.
pub struct ProxyHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Start a proxy on `127.0.0.1:0`. Must be called inside a tokio runtime.
/// Raises the process's soft descriptor limit to the hard one first.
pub async fn start(options: ProxyOptions) -> Result<ProxyHandle> {
    limits::raise_fd_limit();
    let resolver = options.upstream.resolver.clone();
    let upstream = upstream::Upstream::new(&options.upstream);
    let cas = ca::CaSet::default();
    cas.cover(&constraints_of(&options.routes))?;
    let bundle = match options.bundle_path {
        Some(path) => {
            let b = bundle::BundleFile::new(path);
            b.write(&cas.pems())?;
            Some(b)
        }
        None => None,
    };
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| Error::other(format!("cannot listen on loopback: {e}")))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        routes: RwLock::new(Arc::new(options.routes)),
        cas,
        deny_undeclared: options.deny_undeclared,
        run_id: options.run_id,
        audit: options.audit,
        credentials: options.credentials,
        bundle,
        auth: ProxyAuth::random(),
        upstream,
        resolver,
        limits: options.limits,
        stopped: stopped.clone(),
    });
    let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
    Ok(ProxyHandle { addr, shared, stop, task: Some(task) })
}

impl ProxyHandle {
    /// The loopback address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://authsome:<secret>@127.0.0.1:<port>`: the value of `HTTPS_PROXY`.
    /// It contains the per-run credential, so treat it like one.
    pub fn url(&self) -> String {
        format!("http://{}:{}@{}", self.shared.auth.user, self.shared.auth.password.expose(), self.addr)
    }

    /// The run id written to the audit log.
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// PEM of every run CA, oldest first.
    pub fn ca_pems(&self) -> Vec<String> {
        self.shared.cas.pems()
    }

    /// The CA set (tests and benchmarks mint leaves from it).
    pub fn cas(&self) -> Vec<Arc<ca::RunCa>> {
        self.shared.cas.cas()
    }

    /// The bundle file, when one was requested.
    pub fn bundle_path(&self) -> Option<&std::path::Path> {
        self.shared.bundle.as_ref().map(|b| b.path())
    }

    /// The current routes.
    pub fn routes(&self) -> Arc<Vec<Route>> {
        self.shared.routes()
    }

    /// Replace the routes of the running proxy. Hosts outside every existing
    /// CA's constraints get a new CA, and the bundle file is rewritten
    /// atomically so processes started afterwards trust it. Connections
    /// already open keep their TLS session; their requests use the new routes.
    pub fn set_routes(&self, routes: Vec<Route>) -> Result<()> {
        if self.shared.cas.cover(&constraints_of(&routes))? {
            if let Some(b) = &self.shared.bundle {
                b.write(&self.shared.cas.pems())?;
            }
        }
        *self.shared.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
        Ok(())
    }

    /// Stop accepting, close every connection, remove the bundle file.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let Some(b) = &self.shared.bundle {
            b.remove();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(b) = &self.shared.bundle {
            b.remove();
        }
    }
}
