//! In-process helpers for proxy library tests and benchmarks: a static
//! credential source, an in-memory audit sink, and a client that goes through
//! the proxy (CONNECT with the proxy credential, then TLS trusting given roots).

use authsome::audit::{AuditSink, Event};
use authsome::providers::Provider;
use authsome::proxy::{BoxFuture, CredentialSource, Unavailable};
use authsome::secret::Secret;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Credentials keyed by (provider, connection).
#[derive(Default)]
pub struct StaticCredentials(pub HashMap<(String, String), String>);

impl CredentialSource for StaticCredentials {
    fn credential<'a>(&'a self, provider: &'a Provider, connection: &'a str) -> BoxFuture<'a, Result<Secret, Unavailable>> {
        let v = self.0.get(&(provider.name().to_owned(), connection.to_owned())).map(|s| Secret::new(s.clone()));
        Box::pin(async move { v.ok_or_else(|| Unavailable::NotLoggedIn(format!("no credential for {} ({connection})", provider.name()))) })
    }
}

/// Keeps events in memory.
#[derive(Default)]
pub struct MemoryAudit(pub Mutex<Vec<Event>>);

impl AuditSink for MemoryAudit {
    fn record(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// Split `http://user:pass@addr` into (addr, basic credential).
fn parse_proxy_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (cred, addr) = rest.split_once('@').unwrap();
    (addr.to_owned(), base64::engine::general_purpose::STANDARD.encode(cred))
}

/// Send `CONNECT host:443` through the proxy; returns the status and the stream.
pub async fn connect(proxy_url: &str, host: &str, with_credential: bool) -> (u16, TcpStream) {
    let (addr, cred) = parse_proxy_url(proxy_url);
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let auth = if with_credential { format!("Proxy-Authorization: Basic {cred}\r\n") } else { String::new() };
    tcp.write_all(format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{auth}\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, tcp)
}

/// Read an HTTP response head byte by byte (so nothing after it is consumed).
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if !matches!(s.read(&mut b).await, Ok(1)) {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A TLS client configuration trusting exactly `roots`, offering `alpn`.
pub fn client_config(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// CONNECT + TLS to `host` through the proxy.
pub async fn tls_via(proxy_url: &str, host: &str, cfg: Arc<rustls::ClientConfig>) -> tokio_rustls::client::TlsStream<TcpStream> {
    let (status, tcp) = connect(proxy_url, host, true).await;
    assert_eq!(status, 200);
    tokio_rustls::TlsConnector::from(cfg).connect(ServerName::try_from(host.to_owned()).unwrap(), tcp).await.unwrap()
}

/// An HTTP/1.1 sender over a TLS stream through the proxy.
pub async fn h1_sender(
    proxy_url: &str,
    host: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tls = tls_via(proxy_url, host, cfg).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// GET `path` on `host` with extra headers; returns (status, body).
pub async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Bytes) {
    let mut b = hyper::Request::builder().uri(path).header("host", host);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    sender.ready().await.unwrap();
    let resp = sender.send_request(b.body(Empty::new()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// An in-process proxy injecting `acme` (`x-api-key: <key>`) on
/// `api.acme.test/v1` (other paths are forwarded without it), which `echo`
/// answers for; other hosts `echo` knows are tunnelled blind to it.
pub struct AcmeProxy {
    pub handle: authsome::proxy::ProxyHandle,
    pub audit: Arc<MemoryAudit>,
    _home: tempfile::TempDir,
}

/// The key [`AcmeProxy`] injects.
pub const ACME_PROXY_KEY: &str = "acme-key-in-process";

impl AcmeProxy {
    /// Start one inside the current tokio runtime, with `limits`.
    pub async fn start(echo: &super::echo::Echo, hosts: &[&str], limits: authsome::proxy::Limits) -> AcmeProxy {
        use authsome::proxy::{ProxyOptions, Route, UpstreamSettings};
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("providers")).unwrap();
        std::fs::write(
            home.path().join("providers/acme.json"),
            r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"https://api.acme.test/v1","api_key":{"header_name":"x-api-key"}}"#,
        )
        .unwrap();
        let reg = authsome::providers::Registry::load(&authsome::paths::Home::at(home.path(), "default")).unwrap();
        let route = Route {
            provider: Arc::new(reg.get("acme").unwrap().clone()),
            connection: "default".into(),
            placeholder: authsome::providers::PLACEHOLDER.into(),
            is_default: true,
        };
        let mut creds = StaticCredentials::default();
        creds.0.insert(("acme".into(), "default".into()), ACME_PROXY_KEY.into());
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        roots.add(CertificateDer::from_pem_slice(&std::fs::read(&echo.ca_path).unwrap()).unwrap()).unwrap();
        let resolve = hosts.iter().map(|h| echo.resolve(h)).collect::<Vec<_>>().join(",");
        let audit = Arc::new(MemoryAudit::default());
        let handle = authsome::proxy::start(ProxyOptions {
            routes: vec![route],
            deny_undeclared: false,
            run_id: "in-process".into(),
            audit: audit.clone(),
            credentials: Arc::new(creds),
            bundle_path: None,
            upstream: UpstreamSettings { resolver: authsome::net::Resolver::parse(&resolve).unwrap(), roots: Arc::new(roots).into() },
            limits,
        })
        .await
        .unwrap();
        AcmeProxy { handle, audit, _home: home }
    }

    /// A client configuration trusting the run CA that offers only `alpn`.
    pub fn client_offering(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let cas: Vec<_> = self.handle.cas().iter().map(|c| c.der().clone()).collect();
        client_config(&cas, alpn)
    }
}
