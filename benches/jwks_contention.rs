//! Key lookups per second from 1, 2 and 8 threads while the JWKS worker keeps swapping the key
//! set (a loopback IdP that alternates between two documents, refreshed every millisecond).
//!
//! Run with `cargo bench --bench jwks_contention`. Reads go through `ArcSwap::load`, so the
//! figure should scale with threads up to the core count rather than collapse under the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower_jwt_plan::JwksCache;

fn rsa_jwk(kid: &str, seed: u8) -> Value {
    use base64::Engine as _;
    let mut n = vec![seed | 0x80; 256];
    n[255] |= 1;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n);
    json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"})
}

/// A JWKS endpoint whose document changes on every fetch, so every refresh swaps the set.
fn rotating_idp(rt: &tokio::runtime::Runtime) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let url = rt.block_on(async move {
        let app =
            axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let other = format!("rotating-{}", n % 2);
                    async move {
                        axum::Json(json!({"keys": [rsa_jwk("stable", 1), rsa_jwk(&other, 2)]}))
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/jwks")
    });
    (url, fetches)
}

fn jwks_contention(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (url, fetches) = rotating_idp(&rt);
    let cache = rt.block_on(async {
        let cache =
            JwksCache::builder(url).refresh_interval(Duration::from_millis(1)).build().unwrap();
        assert!(cache.wait_ready(Duration::from_secs(5)).await);
        cache
    });
    let mut group = c.benchmark_group("jwks_contention");
    for threads in [1usize, 2, 8] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..per_thread {
                                assert!(cache.contains_kid("stable"));
                            }
                        });
                    }
                });
                // Wall time for all `iters` lookups: criterion divides by iters, so the figure
                // is the inverse of the aggregate throughput across threads.
                start.elapsed()
            })
        });
    }
    group.finish();
    println!("JWKS fetches (set swaps) during the run: {}", fetches.load(Ordering::Relaxed));
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = jwks_contention
}
criterion_main!(benches);
