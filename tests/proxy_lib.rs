//! The proxy as a library (what project mode and the daemon build on): name
//! constraints, live route changes with a new CA, connection selection by
//! placeholder, WebSocket pass-through, deny_undeclared.

use crate::common::echo::Echo;
use crate::common::proxy_client::{self as client, MemoryAudit, StaticCredentials};
use authsome::providers::{Registry, PLACEHOLDER};
use authsome::proxy::{self, ca::RunCa, ProxyOptions, Route, UpstreamSettings};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACME: &str =
    r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"api.acme.test","api_key":{"header_name":"x-api-key"}}"#;
const OCTO: &str = r#"{"name":"octo","auth_type":"oauth2","flow":"pkce","api_url":"api.octo.test",
 "oauth":{"authorization_url":"https://api.octo.test/oauth/authorize","token_url":"https://api.octo.test/oauth/token"}}"#;

fn registry() -> (tempfile::TempDir, Registry) {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("providers")).unwrap();
    std::fs::write(home.path().join("providers/acme.json"), ACME).unwrap();
    std::fs::write(home.path().join("providers/octo.json"), OCTO).unwrap();
    let reg = Registry::load(&authsome::paths::Home::at(home.path(), "default")).unwrap();
    (home, reg)
}

fn route(reg: &Registry, provider: &str, connection: &str, placeholder: &str, is_default: bool) -> Route {
    Route {
        provider: Arc::new(reg.get(provider).unwrap().clone()),
        connection: connection.into(),
        placeholder: placeholder.into(),
        is_default,
    }
}

struct Setup {
    echo: Echo,
    audit: Arc<MemoryAudit>,
    dir: tempfile::TempDir,
    reg: Registry,
    _home: tempfile::TempDir,
}

fn setup() -> Setup {
    let echo = Echo::start(&["api.acme.test", "api.octo.test", "other.test"]);
    let (home, reg) = registry();
    Setup { echo, audit: Arc::new(MemoryAudit::default()), dir: tempfile::tempdir().unwrap(), reg, _home: home }
}

impl Setup {
    fn options(&self, routes: Vec<Route>, deny: bool) -> ProxyOptions {
        let mut creds = StaticCredentials::default();
        creds.0.insert(("acme".into(), "default".into()), "acme-key-default".into());
        creds.0.insert(("acme".into(), "work".into()), "acme-key-work".into());
        creds.0.insert(("octo".into(), "default".into()), "octo-token".into());
        let resolve = ["api.acme.test", "api.octo.test", "other.test"].iter().map(|h| self.echo.resolve(h)).collect::<Vec<_>>().join(",");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_der(&std::fs::read_to_string(&self.echo.ca_path).unwrap())).unwrap();
        ProxyOptions {
            routes,
            deny_undeclared: deny,
            run_id: "test-run".into(),
            audit: self.audit.clone(),
            credentials: Arc::new(creds),
            bundle_path: Some(self.dir.path().join("run").join("bundle.pem")),
            upstream: UpstreamSettings { resolver: authsome::net::Resolver::parse(&resolve).unwrap(), roots: Arc::new(roots).into() },
            limits: proxy::Limits::default(),
        }
    }
}

fn pem_der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn verifier(ca: &RunCa) -> Arc<rustls::client::WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::new(rustls::crypto::ring::default_provider()))
        .build()
        .unwrap()
}

#[test]
fn a_client_trusting_the_run_ca_rejects_names_outside_its_constraints() {
    let ca = RunCa::new(&["api.acme.test".to_owned()]).unwrap();
    let v = verifier(&ca);
    let check = |name: &str| {
        let (chain, _) = ca.issue(name).unwrap();
        let server = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(&chain[0], &chain[1..], &server, &[], UnixTime::now())
    };
    assert!(check("api.acme.test").is_ok(), "control: a covered name verifies");
    assert!(check("eu.api.acme.test").is_ok(), "subdomains of a permitted subtree are covered");
    for outside in ["evil.test", "api.acme.test.evil.test", "acme.test", "xapi.acme.test", "127.0.0.1"] {
        let err = check(outside).expect_err(outside);
        let msg = format!("{err:?}");
        assert!(msg.contains("NameConstraintViolation"), "{outside}: {msg}");
    }
}

#[test]
fn set_routes_adds_a_ca_for_new_hosts_and_rewrites_the_bundle() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = setup();
        let handle = proxy::start(s.options(vec![route(&s.reg, "acme", "default", PLACEHOLDER, true)], false)).await.unwrap();
        let bundle = handle.bundle_path().unwrap().to_owned();
        let before = std::fs::read_to_string(&bundle).unwrap();
        assert_eq!(handle.cas().len(), 1);
        assert!(before.contains(&handle.ca_pems()[0]));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o600);

        handle
            .set_routes(vec![route(&s.reg, "acme", "default", PLACEHOLDER, true), route(&s.reg, "octo", "default", PLACEHOLDER, true)])
            .unwrap();
        assert_eq!(handle.cas().len(), 2, "api.octo.test is outside the first CA's constraints");
        assert_eq!(handle.cas()[1].constraints(), ["api.octo.test"]);
        let after = std::fs::read_to_string(&bundle).unwrap();
        assert!(after.contains(&handle.ca_pems()[0]) && after.contains(&handle.ca_pems()[1]));

        let roots: Vec<_> = handle.cas().iter().map(|c| c.der().clone()).collect();
        let mut sender = client::h1_sender(&handle.url(), "api.octo.test", client::client_config(&roots, &[b"http/1.1"])).await;
        let (status, _) = client::get(&mut sender, "api.octo.test", "/me", &[]).await;
        assert_eq!(status, 200);
        let seen = s.echo.seen();
        assert_eq!(seen.last().unwrap().header("authorization"), vec!["Bearer octo-token".to_owned()]);
        let addr = handle.addr();
        handle.shutdown().await;
        assert!(!bundle.exists(), "the bundle is removed on shutdown");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed on shutdown");
    });
}

#[test]
fn the_placeholder_in_the_request_selects_the_connection() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = setup();
        let routes =
            vec![route(&s.reg, "acme", "default", PLACEHOLDER, true), route(&s.reg, "acme", "work", "authsome-proxy-managed-work", false)];
        let handle = proxy::start(s.options(routes, false)).await.unwrap();
        let roots: Vec<_> = handle.cas().iter().map(|c| c.der().clone()).collect();
        let mut sender = client::h1_sender(&handle.url(), "api.acme.test", client::client_config(&roots, &[b"http/1.1"])).await;
        client::get(&mut sender, "api.acme.test", "/a", &[("x-api-key", "authsome-proxy-managed-work")]).await;
        client::get(&mut sender, "api.acme.test", "/b", &[("x-api-key", PLACEHOLDER)]).await;
        client::get(&mut sender, "api.acme.test", "/c", &[]).await;
        let keys: Vec<Vec<String>> = s.echo.seen().iter().map(|r| r.header("x-api-key")).collect();
        assert_eq!(keys, vec![vec!["acme-key-work".to_owned()], vec!["acme-key-default".to_owned()], vec!["acme-key-default".to_owned()]]);
        let audit = s.audit.0.lock().unwrap().clone();
        let conns: Vec<_> = audit.iter().map(|e| e.connection.clone().unwrap()).collect();
        assert_eq!(conns, ["work", "default", "default"]);
        handle.shutdown().await;
    });
}

#[test]
fn websocket_upgrades_pass_through_with_the_credential() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = setup();
        let handle = proxy::start(s.options(vec![route(&s.reg, "octo", "default", PLACEHOLDER, true)], false)).await.unwrap();
        let roots: Vec<_> = handle.cas().iter().map(|c| c.der().clone()).collect();
        let mut tls = client::tls_via(&handle.url(), "api.octo.test", client::client_config(&roots, &[b"http/1.1"])).await;
        tls.write_all(b"GET /ws HTTP/1.1\r\nHost: api.octo.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer authsome-proxy-managed\r\n\r\n")
            .await
            .unwrap();
        let head = client::read_head(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        tls.write_all(b"ping-through-the-tunnel").await.unwrap();
        let mut buf = [0u8; 23];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping-through-the-tunnel");
        let seen = s.echo.seen();
        assert_eq!(seen[0].target, "/ws");
        assert_eq!(seen[0].header("authorization"), vec!["Bearer octo-token".to_owned()]);
        handle.shutdown().await;
    });
}

#[test]
fn h2_clients_are_served_over_h2() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = setup();
        let handle = proxy::start(s.options(vec![route(&s.reg, "octo", "default", PLACEHOLDER, true)], false)).await.unwrap();
        let roots: Vec<_> = handle.cas().iter().map(|c| c.der().clone()).collect();
        let tls = client::tls_via(&handle.url(), "api.octo.test", client::client_config(&roots, &[b"h2"])).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::builder().uri("https://api.octo.test/h2").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let seen = s.echo.seen();
        assert_eq!(seen[0].version, "HTTP/2.0", "the upstream leg negotiates h2 too");
        assert_eq!(seen[0].header("authorization"), vec!["Bearer octo-token".to_owned()]);
        handle.shutdown().await;
    });
}

#[test]
fn deny_undeclared_refuses_other_hosts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = setup();
        let handle = proxy::start(s.options(vec![route(&s.reg, "acme", "default", PLACEHOLDER, true)], true)).await.unwrap();
        let (status, _) = client::connect(&handle.url(), "other.test", true).await;
        assert_eq!(status, 403);
        let (status, _) = client::connect(&handle.url(), "api.acme.test", true).await;
        assert_eq!(status, 200);
        let audit = s.audit.0.lock().unwrap().clone();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].status, 403);
        assert_eq!(audit[0].host, "other.test");
        assert!(s.echo.seen().is_empty());
        handle.shutdown().await;
    });
}
