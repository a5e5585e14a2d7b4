//! Pooled upstream connections for intercepted traffic.
//!
//! A hyper-util client over our own connector: TCP via [`crate::net::connect`]
//! (so `AUTHSOME_RESOLVE` applies and `TCP_NODELAY` is set), TLS trusting only
//! the upstream roots (system + `AUTHSOME_UPSTREAM_CA`, never a run CA), ALPN
//! h2 and http/1.1. The pool keeps connections per host, h2 ones multiplexed.

use crate::net::{connect, Resolver};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// An idle pooled upstream connection is closed after this long.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many idle connections are kept per upstream host. It must
/// exceed the requests a busy client keeps in flight to one host: every
/// connection returned beyond it is closed, and the next request pays a new
/// TLS handshake upstream (with 32, a client keeping 100 requests in flight
/// had one request in three open a new connection, at a fifth of the
/// throughput; BENCHMARKS.md). Idle ones still close after
/// [`POOL_IDLE_TIMEOUT`].
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// How upstream servers are reached: name overrides and trusted roots.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// `AUTHSOME_RESOLVE`-style overrides.
    pub resolver: Resolver,
    /// Roots trusted for upstream certificates (never a run CA), built at first use.
    pub roots: crate::net::tls::Roots,
}

impl UpstreamSettings {
    /// `AUTHSOME_RESOLVE`, system roots and `AUTHSOME_UPSTREAM_CA`.
    pub fn from_env() -> crate::error::Result<UpstreamSettings> {
        Ok(UpstreamSettings { resolver: Resolver::from_env()?, roots: crate::net::tls::Roots::from_env()? })
    }
}

/// The clients used to reach upstream servers.
#[derive(Clone)]
pub struct Upstream {
    /// General client: ALPN h2 + http/1.1, pooled.
    pub pooled: Client<Connector, UpstreamBody>,
    /// HTTP/1.1-only client for upgrade requests (WebSocket), which need h1.
    pub h1: Client<Connector, UpstreamBody>,
}

/// Request body sent upstream: the client's streamed body, or an empty one
/// for a replayed bodiless request.
pub type UpstreamBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Send `req` through `client`, streaming its body.
///
/// hyper-util's pool can hand out an HTTP/1 connection on a multi-threaded
/// runtime just before it is ready again, failing the request with
/// "connection was not ready" although nothing was sent. A bodiless request
/// (most API calls: GET, HEAD, DELETE) is then replayed once on another
/// connection; a request with a body cannot be replayed, since it is streamed.
pub async fn send(
    client: &Client<Connector, UpstreamBody>,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let (parts, body) = req.into_parts();
    if !body.is_end_stream() {
        return client.request(Request::from_parts(parts, body.boxed_unsync())).await;
    }
    let mut replay = Request::new(empty());
    *replay.method_mut() = parts.method.clone();
    *replay.uri_mut() = parts.uri.clone();
    *replay.version_mut() = parts.version;
    *replay.headers_mut() = parts.headers.clone();
    match client.request(Request::from_parts(parts, empty())).await {
        Err(e) if was_not_sent(&e) => client.request(replay).await,
        other => other,
    }
}

fn empty() -> UpstreamBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync()
}

/// Whether hyper cancelled the request before sending it (the pool race above).
fn was_not_sent(e: &hyper_util::client::legacy::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled) {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Upstream {
    /// Clients for `settings`.
    pub fn new(settings: &UpstreamSettings) -> Upstream {
        let resolver = &settings.resolver;
        let both = LazyTls::new(&settings.roots, &[b"h2", b"http/1.1"]);
        let h1 = LazyTls::new(&settings.roots, &[b"http/1.1"]);
        // The pool only drops idle connections when it has a timer to run
        // its clean-up with; without one they stay open until the upstream
        // closes them, and with many hosts they exhaust the descriptors.
        let build = |tls| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                .build(Connector { resolver: Arc::new(resolver.clone()), tls })
        };
        Upstream { pooled: build(both), h1: build(h1) }
    }
}

/// Connects to `https://` (TLS) and `http://` (plain) URIs.
#[derive(Clone)]
pub struct Connector {
    resolver: Arc<Resolver>,
    tls: LazyTls,
}

/// A TLS client configuration built at the first upstream connection.
#[derive(Clone)]
struct LazyTls {
    roots: crate::net::tls::Roots,
    alpn: &'static [&'static [u8]],
    config: Arc<std::sync::OnceLock<Arc<rustls::ClientConfig>>>,
}

impl LazyTls {
    fn new(roots: &crate::net::tls::Roots, alpn: &'static [&'static [u8]]) -> LazyTls {
        LazyTls { roots: roots.clone(), alpn, config: Arc::default() }
    }

    fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.get_or_init(|| crate::net::tls::client_config(self.roots.store(), self.alpn)).clone()
    }
}

/// A connection made by [`Connector`].
pub enum Conn {
    /// Plain TCP (http:// through the proxy).
    Plain(TokioIo<TcpStream>),
    /// TLS to an upstream server.
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("URI without host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = connect(&this.resolver, &host, port).await?;
            if !https {
                return Ok(Conn::Plain(TokioIo::new(tcp)));
            }
            let name = ServerName::try_from(host.clone()).map_err(|_| format!("invalid server name {host}"))?;
            let tls = tokio_rustls::TlsConnector::from(this.tls.config()).connect(name, tcp).await?;
            Ok(Conn::Tls(Box::new(TokioIo::new(tls))))
        })
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(_) => Connected::new(),
            Conn::Tls(s) => {
                if s.inner().get_ref().1.alpn_protocol() == Some(b"h2") {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: hyper::rt::ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}
