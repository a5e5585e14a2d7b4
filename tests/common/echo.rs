//! A local HTTPS echo upstream for proxy tests: its own test CA, h2 and
//! http/1.1, and a record of every request it received (headers, path, the
//! SNI it was reached with). The response body is that record as JSON.
//!
//! Special paths: `/redirect?to=URL` answers 302 to URL; `…/info/refs`
//! answers a minimal git smart-HTTP advertisement (one ref) so `git ls-remote`
//! succeeds; `/ws` accepts a WebSocket-style upgrade and echoes bytes.
//! Paths starting with `/reflect` answer 302 with the request URL (query
//! included) in `Location` and a `Link` pagination header, as real APIs do;
//! paths starting with `/gzip` gzip the record when the client accepts it;
//! paths ending in `/big` answer a 1 MiB body (benchmarks).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One request as the upstream saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seen {
    pub sni: Option<String>,
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// All values of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }
}

/// Decides whether a request is let through (else the echo answers 401).
pub type Gate = Arc<dyn Fn(&Seen) -> bool + Send + Sync>;

/// A running echo server.
pub struct Echo {
    pub port: u16,
    /// The test CA that issued its certificate (PEM file): what `AUTHSOME_UPSTREAM_CA` names.
    pub ca_path: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
    _stop: std::sync::mpsc::Sender<()>,
}

pub const GIT_REF: &str = "1111111111111111111111111111111111111111";

impl Echo {
    /// Start on 127.0.0.1:0 with a certificate for `names`, issued by a fresh test CA.
    pub fn start(names: &[&str]) -> Echo {
        Self::start_gated(names, std::net::Ipv4Addr::LOCALHOST.into(), None)
    }

    /// [`Echo::start`] listening on `bind` (all addresses, for hosts in other
    /// network namespaces), answering 401 to every request `gate` refuses
    /// (an API that checks the access token it was sent).
    pub fn start_gated(names: &[&str], bind: std::net::IpAddr, gate: Option<Gate>) -> Echo {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name.push(DnType::CommonName, "authsome test upstream CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        leaf_params.distinguished_name.push(DnType::CommonName, "authsome test upstream");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))
            .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);

        let listener = std::net::TcpListener::bind((bind, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let stop = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                tokio::pin!(stop);
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let acceptor = acceptor.clone();
                            let seen = seen2.clone();
                            let gate = gate.clone();
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(tcp).await else { return };
                                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                                let svc = service_fn(move |req| respond(req, sni.clone(), seen.clone(), gate.clone()));
                                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Echo { port, ca_path, seen, _dir: dir, _stop: stop_tx }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// An `AUTHSOME_RESOLVE` entry sending `host:443` here.
    pub fn resolve(&self, host: &str) -> String {
        format!("{host}:443:127.0.0.1:{}", self.port)
    }
}

async fn respond(
    req: hyper::Request<hyper::body::Incoming>,
    sni: Option<String>,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Option<Gate>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let record = Seen {
        sni,
        method: req.method().to_string(),
        target: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        version: format!("{:?}", req.version()),
        headers: req.headers().iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
    };
    seen.lock().unwrap().push(record.clone());
    if gate.is_some_and(|g| !g(&record)) {
        return Ok(hyper::Response::builder().status(401).body(Full::new(Bytes::from_static(b"invalid token"))).unwrap());
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path == "/ws" && req.headers().contains_key("upgrade") {
        let mut req = req;
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Ok(hyper::Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let _ = req.into_body().collect().await;
    if path == "/redirect" {
        let to = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "to").map(|(_, v)| v.into_owned()).unwrap_or_default();
        return Ok(hyper::Response::builder().status(302).header("location", to).body(Full::new(Bytes::new())).unwrap());
    }
    if path.ends_with("/info/refs") {
        let pkt = |s: &str| format!("{:04x}{s}", s.len() + 4);
        let body = format!(
            "{}0000{}{}0000",
            pkt("# service=git-upload-pack\n"),
            pkt(&format!("{GIT_REF} HEAD\0multi_ack symref=HEAD:refs/heads/main\n")),
            pkt(&format!("{GIT_REF} refs/heads/main\n")),
        );
        return Ok(hyper::Response::builder()
            .header("content-type", "application/x-git-upload-pack-advertisement")
            .header("cache-control", "no-cache")
            .body(Full::new(Bytes::from(body)))
            .unwrap());
    }
    if path.ends_with("/big") {
        return Ok(hyper::Response::builder().header("content-type", "application/json").body(Full::new(big_body())).unwrap());
    }
    let body = serde_json::to_vec(&record).unwrap();
    if path.starts_with("/reflect") {
        let url = format!("https://{}{}", record.sni.clone().unwrap_or_default(), record.target);
        return Ok(hyper::Response::builder()
            .status(302)
            .header("location", &url)
            .header("link", format!("<{url}&page=2>; rel=\"next\""))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap());
    }
    let gzip_ok = record.header("accept-encoding").iter().any(|v| v.contains("gzip"));
    if path.starts_with("/gzip") && gzip_ok {
        return Ok(hyper::Response::builder()
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(gzip(&body))))
            .unwrap());
    }
    Ok(hyper::Response::builder().header("content-type", "application/json").body(Full::new(Bytes::from(body))).unwrap())
}

/// A 1 MiB JSON-like body (a page of items quoting URLs), built once.
fn big_body() -> Bytes {
    static BODY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        let mut s = String::from("[");
        let mut i = 0u64;
        while s.len() < (1 << 20) {
            s.push_str(&format!("{{\"id\":{i},\"name\":\"bench item {i}\",\"url\":\"https://api.acme.test/v1/items/{i}?page=2\"}},"));
            i += 1;
        }
        s.truncate((1 << 20) - 1);
        s.push(']');
        Bytes::from(s)
    })
    .clone()
}

/// `data` compressed by the system's `gzip`.
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}
