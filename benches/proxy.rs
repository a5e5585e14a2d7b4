//! Proxy benchmarks: leaf minting and an in-process client→proxy→upstream
//! round trip (kept short: small samples, short measurement). Results are
//! recorded in BENCHMARKS.md.

#[path = "../tests/common/echo.rs"]
mod echo;
#[path = "../tests/common/proxy_client.rs"]
mod proxy_client;

use authsome::proxy::{self, ca::RunCa};
use criterion::{criterion_group, criterion_main, Criterion};
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
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let proxy = rt.block_on(proxy_client::AcmeProxy::start(&echo, &["api.acme.test"], proxy::Limits::default()));
    let url = proxy.handle.url();
    let cfg = proxy.client_offering(&[b"http/1.1"]);

    let mut g = c.benchmark_group("proxy");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    let mut sender = rt.block_on(proxy_client::h1_sender(&url, "api.acme.test", cfg.clone()));
    // What is measured is a real injection: the upstream sees the key.
    let (status, _) = rt.block_on(proxy_client::get(&mut sender, "api.acme.test", "/v1/check", &[]));
    assert_eq!(status, 200);
    assert_eq!(echo.seen().last().expect("the upstream was reached").header("x-api-key"), vec![proxy_client::ACME_PROXY_KEY.to_owned()]);
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
    assert!(!proxy.audit.0.lock().unwrap().is_empty(), "the proxy audited the benchmark's requests");
    rt.block_on(proxy.handle.shutdown());
}

/// What fencing a child costs at start-up: building the Landlock ruleset
/// around a home (directory walks, one rule per entry beside the path to it).
fn fence(c: &mut Criterion) {
    if !authsome::fence::Abi::current().available() {
        eprintln!("fence benchmarks skipped: no Landlock");
        return;
    }
    let home_dir = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let home = home_dir.join(".authsome-fence-bench");
    std::fs::create_dir_all(home.join("run/r.1")).unwrap();
    let bundle = home.join("run/r.1/ca.pem");
    std::fs::write(&bundle, "").unwrap();
    let mut g = c.benchmark_group("fence");
    g.sample_size(50).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    g.bench_function("prepare_in_home", |b| b.iter(|| authsome::fence::for_child(&home, &bundle, 1, false).unwrap()));
    g.bench_function("prepare_in_home_deny_tcp", |b| b.iter(|| authsome::fence::for_child(&home, &bundle, 1, true).unwrap()));
    g.finish();
    let _ = std::fs::remove_dir_all(&home);
}

criterion_group!(benches, minting, round_trip, fence);
criterion_main!(benches);
