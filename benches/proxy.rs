//! Proxy benchmarks: leaf minting and an in-process client→proxy→upstream
//! round trip (kept short: small samples, short measurement). Results are
//! recorded in BENCHMARKS.md.

#[path = "../tests/common/echo.rs"]
mod echo;
#[path = "../tests/common/proxy_client.rs"]
mod proxy_client;

use authsome::providers::{Registry, PLACEHOLDER};
use authsome::proxy::{self, ca::RunCa, ProxyOptions, Route, UpstreamSettings};
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Duration;

fn minting(c: &mut Criterion) {
    let ca = RunCa::new(&["api.acme.test".to_owned()]).unwrap();
    let mut g = c.benchmark_group("ca");
    g.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    g.bench_function("new_run_ca", |b| b.iter(|| RunCa::new(&["api.acme.test".to_owned()]).unwrap()));
    g.bench_function("mint_leaf", |b| b.iter(|| ca.issue("api.acme.test").unwrap()));
    g.finish();
}

fn round_trip(c: &mut Criterion) {
    let echo = echo::Echo::start(&["api.acme.test"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("providers")).unwrap();
    std::fs::write(
        home.path().join("providers/acme.json"),
        r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":"api.acme.test/v1","api_key":{"header_name":"x-api-key"}}"#,
    )
    .unwrap();
    let reg = Registry::load(&authsome::paths::Home::at(home.path(), "default")).unwrap();
    let route = Route {
        provider: Arc::new(reg.get("acme").unwrap().clone()),
        connection: "default".into(),
        placeholder: PLACEHOLDER.into(),
        is_default: true,
    };
    let mut creds = proxy_client::StaticCredentials::default();
    creds.0.insert(("acme".into(), "default".into()), "bench-key".into());
    // Upstream trust and routing through the documented seams, as a user would set them.
    std::env::set_var("AUTHSOME_UPSTREAM_CA", &echo.ca_path);
    std::env::set_var("AUTHSOME_RESOLVE", echo.resolve("api.acme.test"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handle = rt
        .block_on(proxy::start(ProxyOptions {
            routes: vec![route],
            deny_undeclared: false,
            run_id: "bench".into(),
            audit: Arc::new(proxy_client::MemoryAudit::default()),
            credentials: Arc::new(creds),
            bundle_path: None,
            upstream: UpstreamSettings::from_env().unwrap(),
        }))
        .unwrap();
    let url = handle.url();
    let cas: Vec<_> = handle.cas().iter().map(|c| c.der().clone()).collect();
    let cfg = proxy_client::client_config(&cas, &[b"http/1.1"]);

    let mut g = c.benchmark_group("proxy");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    let mut sender = rt.block_on(proxy_client::h1_sender(&url, "api.acme.test", cfg.clone()));
    // What is measured is a real injection: the upstream sees the key.
    let (status, _) = rt.block_on(proxy_client::get(&mut sender, "api.acme.test", "/check", &[]));
    assert_eq!(status, 200);
    assert_eq!(echo.seen().last().expect("the upstream was reached").header("x-api-key"), vec!["bench-key".to_owned()]);
    g.bench_function("round_trip_keepalive", |b| {
        b.iter(|| {
            let (status, _) = rt.block_on(proxy_client::get(&mut sender, "api.acme.test", "/v1/bench", &[]));
            assert_eq!(status, 200);
        })
    });
    g.bench_function("round_trip_new_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut s = proxy_client::h1_sender(&url, "api.acme.test", cfg.clone()).await;
                let (status, _) = proxy_client::get(&mut s, "api.acme.test", "/v1/bench", &[]).await;
                assert_eq!(status, 200);
            })
        })
    });
    g.finish();
    // The cost of response scrubbing: the same 1 MiB body relayed for a
    // request outside api_url (no injection, no scrubbing) and for an
    // injected one (every byte searched for the key).
    let mut g = c.benchmark_group("body_1mib");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    g.throughput(criterion::Throughput::Bytes(1 << 20));
    for (name, path) in [("relayed", "/big"), ("injected_and_scrubbed", "/v1/big")] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (status, body) = rt.block_on(proxy_client::get(&mut sender, "api.acme.test", path, &[]));
                assert_eq!((status, body.len()), (200, 1 << 20));
            })
        });
    }
    g.finish();
    drop(sender);
    rt.block_on(handle.shutdown());
}

criterion_group!(benches, minting, round_trip);
criterion_main!(benches);
