//! The proxy under load and under a hostile neighbour: connections that never
//! authenticate are bounded and timed out, a descriptor limit is no reason to
//! spin, the vault snapshot still sees logins from another terminal, and the
//! audit log is read across its rotation.

use crate::common::echo::Echo;
use crate::common::proxy::{text, World, ACME_KEY};
use crate::common::proxy_client::{self as client, AcmeProxy, ACME_PROXY_KEY};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOSTS: [&str; 2] = ["api.acme.test", "other.test"];

/// Whether the peer closes `s` within `within` (EOF or reset), discarding anything it sends.
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A half-sent CONNECT head: never finished.
const HALF_HEAD: &[u8] = b"CONNECT api.acme.test:443 HTTP/1.1\r\nHost: api.acme.test:443\r\nX-Slow: ";

#[test]
fn a_thousand_idle_unauthenticated_connections_leave_a_thousand_requests_answered() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let echo = Echo::start(&HOSTS);
        let proxy = AcmeProxy::start(&echo, &HOSTS, authsome::proxy::Limits::default()).await;
        let addr = proxy.handle.addr();
        let mut hostile = Vec::new();
        for i in 0..1000 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                s.write_all(HALF_HEAD).await.unwrap();
            }
            hostile.push(s);
        }
        // 20 clients, 50 requests each, a fresh CONNECT every 10 requests.
        let url = proxy.handle.url();
        let mut clients = Vec::new();
        for _ in 0..20 {
            let (url, cfg) = (url.clone(), proxy.client_offering(&[b"http/1.1"]));
            clients.push(tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..5 {
                    let mut sender = client::h1_sender(&url, "api.acme.test", cfg.clone()).await;
                    for _ in 0..10 {
                        ok += usize::from(client::get(&mut sender, "api.acme.test", "/v1/legit", &[]).await.0 == 200);
                    }
                }
                ok
            }));
        }
        let mut answered = 0;
        for c in clients {
            answered += tokio::time::timeout(Duration::from_secs(120), c).await.expect("legitimate clients were starved").unwrap();
        }
        assert_eq!(answered, 1000, "every legitimate request is answered");
        let with_key = echo.seen().iter().filter(|s| s.header("x-api-key") == [ACME_PROXY_KEY]).count();
        assert_eq!(with_key, 1000, "every one reached the upstream with the real key");
        let injected = proxy.audit.0.lock().unwrap().iter().filter(|e| e.action == authsome::audit::Action::Inject).count();
        assert_eq!(injected, 1000);
        drop(hostile);
        proxy.handle.shutdown().await;
    });
}

#[test]
fn beyond_the_bound_the_oldest_unauthenticated_connections_are_closed() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let echo = Echo::start(&HOSTS);
        let limits = authsome::proxy::Limits { max_unauthenticated: 16, ..authsome::proxy::Limits::default() };
        let proxy = AcmeProxy::start(&echo, &HOSTS, limits).await;
        let addr = proxy.handle.addr();
        let mut idle = Vec::new();
        for i in 0..100 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                s.write_all(HALF_HEAD).await.unwrap();
            }
            idle.push(s);
        }
        // Past their grace period, the next connection pushes the oldest out.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut sender = client::h1_sender(&proxy.handle.url(), "api.acme.test", proxy.client_offering(&[b"http/1.1"])).await;
        for (i, s) in idle.iter_mut().enumerate() {
            let closed = closed_within(s, Duration::from_millis(if i < 85 { 2000 } else { 100 })).await;
            assert_eq!(closed, i < 85, "connection {i}: only the oldest beyond the bound of 16 are closed");
        }
        assert_eq!(client::get(&mut sender, "api.acme.test", "/v1/legit", &[]).await.0, 200);
        assert_eq!(echo.seen().last().unwrap().header("x-api-key"), [ACME_PROXY_KEY]);
        proxy.handle.shutdown().await;
    });
}

#[test]
fn connections_that_never_authenticate_or_go_idle_are_timed_out() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let echo = Echo::start(&HOSTS);
        let limits = authsome::proxy::Limits {
            header_read: Duration::from_millis(300),
            tls_handshake: Duration::from_millis(300),
            idle: Duration::from_millis(500),
            ..authsome::proxy::Limits::default()
        };
        let proxy = AcmeProxy::start(&echo, &HOSTS, limits).await;
        let (addr, url) = (proxy.handle.addr(), proxy.handle.url());

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(HALF_HEAD).await.unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a connection that sends nothing is held forever");
        assert!(closed_within(&mut half, Duration::from_secs(5)).await, "a half-sent request head is held forever");

        // Authenticated, but no TLS handshake after the CONNECT.
        let (status, mut no_tls) = client::connect(&url, "api.acme.test", true).await;
        assert_eq!(status, 200);
        assert!(closed_within(&mut no_tls, Duration::from_secs(5)).await, "a CONNECT without a TLS handshake is held forever");

        // Intercepted connections with nothing in flight, HTTP/1.1 and HTTP/2.
        let mut h1 = client::tls_via(&url, "api.acme.test", proxy.client_offering(&[b"http/1.1"])).await;
        h1.write_all(b"GET /once HTTP/1.1\r\nHost: api.acme.test\r\n\r\n").await.unwrap();
        let head = client::read_head(&mut h1).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(closed_within(&mut h1, Duration::from_secs(5)).await, "an idle keep-alive connection is held forever");
        let mut h2 = client::tls_via(&url, "api.acme.test", proxy.client_offering(&[b"h2"])).await;
        assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
        assert!(closed_within(&mut h2, Duration::from_secs(5)).await, "an idle HTTP/2 connection is held forever");
        proxy.handle.shutdown().await;
    });
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Split `http://user:pass@127.0.0.1:port` into the address and the basic credential.
fn proxy_parts(url: &str) -> (String, String) {
    use base64::Engine as _;
    let (cred, addr) = url.strip_prefix("http://").unwrap().split_once('@').unwrap();
    (addr.to_owned(), base64::engine::general_purpose::STANDARD.encode(cred))
}

#[test]
fn at_its_descriptor_limit_the_proxy_neither_spins_nor_stops_serving() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = format!(
        "printf '%s\\n%s\\n' \"$HTTPS_PROXY\" \"$SSL_CERT_FILE\" > {d}/url.tmp && mv {d}/url.tmp {d}/url; \
         while [ ! -e {d}/go ]; do sleep 0.05; done; \
         curl -sS -o /dev/null -w '%{{http_code}}\\n' https://api.acme.test/after-flood"
    );
    let bin = env!("CARGO_BIN_EXE_authsome");
    let mut cmd = w.cmd(&[]);
    cmd.env_remove("AUTHSOME_SHELL_STATE");
    let child = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" run -- sh -c \"$1\"", bin, &script])
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))))
        .env_remove("HTTPS_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let url_file = dir.path().join("url");
    let start = std::time::Instant::now();
    while !url_file.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "the child never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = std::fs::read_to_string(&url_file).unwrap();
    let (url, bundle) = lines.trim_end().split_once('\n').unwrap();
    let (addr, cred) = proxy_parts(url);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(limits.lines().any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("256")), "{limits}");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // A legitimate connection opened before the flood, with one request done.
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(bundle).unwrap() {
            let _ = roots.add(c.unwrap());
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut sender = client::h1_sender(url, "api.acme.test", std::sync::Arc::new(cfg)).await;
        assert_eq!(client::get(&mut sender, "api.acme.test", "/before", &[]).await.0, 200);

        // 300 hostile connections: 150 from a neighbour without the credential
        // (half of them mid-head), 150 blind tunnels from a process that has it
        // (two descriptors each in the proxy: more than its limit allows).
        let mut hostile = Vec::new();
        for i in 0..150 {
            if let Ok(mut s) = TcpStream::connect(&addr).await {
                if i % 2 == 0 {
                    let _ = s.write_all(HALF_HEAD).await;
                }
                hostile.push(s);
            }
        }
        let mut tunnels = Vec::new();
        for _ in 0..150 {
            let (addr, cred) = (addr.clone(), cred.clone());
            tunnels.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.ok()?;
                let connect =
                    format!("CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\nProxy-Authorization: Basic {cred}\r\n\r\n");
                s.write_all(connect.as_bytes()).await.ok()?;
                let head = tokio::time::timeout(Duration::from_secs(2), client::read_head(&mut s)).await.unwrap_or_default();
                Some((head.starts_with("HTTP/1.1 200"), s))
            }));
        }
        let mut tunnels_open = Vec::new();
        for t in tunnels {
            if let Some((true, s)) = t.await.unwrap() {
                tunnels_open.push(s);
            }
        }
        assert!(tunnels_open.len() < 150, "the proxy must run out of descriptors for this test to mean anything");

        let (t0, before) = (std::time::Instant::now(), cpu_ticks(pid));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let used = (cpu_ticks(pid) - before) as f64 / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as f64;
        let share = used / t0.elapsed().as_secs_f64();
        assert!(share < 0.05, "the proxy used {:.0}% of a core while at its descriptor limit", share * 100.0);

        // What is already open keeps being served.
        let (status, body) = client::get(&mut sender, "api.acme.test", "/during-flood", &[]).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(w.echo.seen().last().unwrap().header("authorization"), [format!("Bearer {ACME_KEY}")]);
        // Once the tunnels end, new clients get in although the neighbour's connections stay.
        drop(tunnels_open);
        std::fs::write(dir.path().join("go"), "").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200", "{}", text(&out));
        drop(hostile);
    });
    assert!(w.echo.seen().iter().any(|s| s.target == "/after-flood" && s.header("authorization") == [format!("Bearer {ACME_KEY}")]));
}

#[test]
fn logins_from_another_terminal_reach_the_next_request() {
    let w = World::new();
    let vault = authsome::paths::Home::at(w.home.path(), "default").vault_file();
    // A vault written long ago: the proxy's snapshot of it is trusted as is.
    std::fs::File::options()
        .write(true)
        .open(&vault)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let step = |n: u32| {
        format!("curl -sS -o /dev/null https://api.acme.test/{n}; touch {d}/done{n}; while [ ! -e {d}/go{n} ]; do sleep 0.05; done; ")
    };
    let script = format!("{}{}curl -sS -o /dev/null https://api.acme.test/3", step(1), step(2));
    let mut child = w
        .cmd(&["run", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |name: String| {
        let start = std::time::Instant::now();
        while !dir.path().join(&name).exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "{name} never came");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let keys = ["acme-second-key-0123456789", "acme-third-key-0123456789"];
    for (n, key) in [1, 2].into_iter().zip(keys) {
        wait_for(format!("done{n}"));
        // Logins one right after the other, within the same clock tick's reach.
        let out = w.run_with_stdin(&["login", "acme", "--force"], key);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(dir.path().join(format!("go{n}")), "").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let seen: Vec<(String, Vec<String>)> = w.echo.seen().into_iter().map(|s| (s.target.clone(), s.header("authorization"))).collect();
    assert_eq!(
        seen,
        vec![
            ("/1".to_owned(), vec![format!("Bearer {ACME_KEY}")]),
            ("/2".to_owned(), vec![format!("Bearer {}", keys[0])]),
            ("/3".to_owned(), vec![format!("Bearer {}", keys[1])]),
        ]
    );
}

#[test]
fn authsome_log_reads_across_the_rotated_generations() {
    use authsome::audit::{Action, AuditSink, Event, FileAudit};
    let w = World::new();
    let log = w.home.path().join("audit.log");
    let _ = std::fs::remove_file(&log);
    let sink = FileAudit::rotating_at(log.clone(), 1_000);
    for i in 0..40 {
        sink.record(&Event::new("r1", Action::Inject, "GET", "api.acme.test", &format!("/n{i}"), 200).route("acme", "default"));
    }
    drop(sink);
    assert!(w.home.path().join("audit.log.1").exists(), "the log rotated");
    let out = w.run(&["--json", "log", "-n", "12"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = events.iter().map(|e| e["path"].as_str().unwrap()).collect();
    let expected: Vec<String> = (28..40).map(|i| format!("/n{i}")).collect();
    assert_eq!(paths, expected, "the newest events, spanning the current file and the previous generation");
    let current = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(current < 12, "the test must span a rotation ({current} lines in the current file)");
}
