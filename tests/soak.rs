//! Soak: a few hundred thousand mixed requests (repeat valid tokens from a pool larger than the
//! token cache, malformed tokens, forged signatures, unknown `kid`s, missing tokens) through one
//! layer while the IdP rotates its second key and fails every few rounds. Every answer is
//! checked, the IdP sees a bounded number of fetches, the token cache stays within its bound,
//! and resident memory stays flat after warm-up.
//!
//! `SOAK_REQUESTS` sets the number of requests (default 200 000). Bounded in count and time
//! (it stops after 120 s whatever the count), loopback only.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tower_jwt_plan::*;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_traffic_with_rotating_and_failing_idp() {
    let total: usize =
        std::env::var("SOAK_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let deadline = Instant::now() + Duration::from_secs(120);

    let p256 = Arc::new(Signer::p256());
    let rotating = Arc::new(Signer::p256());
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(&p256, "stable")]))).await;
    let cache = JwksCache::builder(server.url())
        .refresh_interval(Duration::from_millis(100))
        .min_refetch_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(cache.wait_ready(Duration::from_secs(5)).await);
    let settings = JwtSettings::new(KeySource::jwks(cache.clone()))
        .algorithms([Algorithm::ES256])
        .issuer(ISS)
        .audience(AUD);
    let layer = gold_builder(settings)
        .token_cache(TokenCacheConfig::default().max_entries(256))
        .build()
        .unwrap();

    // The IdP: the second key comes and goes, and every fourth round the IdP answers 500.
    let stop = Arc::new(AtomicBool::new(false));
    let idp = {
        let (server, p256, rotating, stop) =
            (server.clone(), p256.clone(), rotating.clone(), stop.clone());
        tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let answer = match round % 4 {
                    0 => Jwks::Status(500),
                    1 | 2 => Jwks::Keys(jwks_of(&[(&p256, "stable"), (&rotating, "rotating")])),
                    _ => Jwks::Keys(jwks_of(&[(&p256, "stable")])),
                };
                server.set(answer);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    // 1000 distinct valid tokens: four times the cache size, so entries keep being evicted.
    let pool: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|i| {
                let mut c = claims();
                c["jti"] = json!(format!("jti-{i}"));
                p256.token("stable", &c)
            })
            .collect(),
    );
    let forged = Arc::new(Signer::p256().token("stable", &claims()));
    let unknown_kids: Arc<Vec<String>> =
        Arc::new((0..500).map(|i| p256.token(&format!("kid-{i}"), &claims())).collect());
    let rotating_token = Arc::new(rotating.token("rotating", &claims()));

    let workers = 4;
    let per_worker = total / workers;
    let mut handles = Vec::new();
    let mut baseline = 0;
    for w in 0..workers {
        let (layer, pool, forged, rotating_token, unknown_kids) = (
            layer.clone(),
            pool.clone(),
            forged.clone(),
            rotating_token.clone(),
            unknown_kids.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut counts = [0usize; 6];
            for i in 0..per_worker {
                if Instant::now() > deadline {
                    break;
                }
                let n = i * workers + w;
                let seen = Seen::default();
                let (kind, answer) = match n % 10 {
                    0..=5 => (0, send(&layer, &seen, bearer(&pool[n % pool.len()])).await),
                    6 => (1, send(&layer, &seen, bearer(&format!("garbage.{n}.x"))).await),
                    7 => (2, send(&layer, &seen, bearer(&forged)).await),
                    8 => (
                        3,
                        send(&layer, &seen, bearer(&unknown_kids[n % unknown_kids.len()])).await,
                    ),
                    _ => match n % 20 {
                        9 => (4, send(&layer, &seen, no_token()).await),
                        _ => (5, send(&layer, &seen, bearer(&rotating_token)).await),
                    },
                };
                counts[kind] += 1;
                match kind {
                    0 => assert_eq!(
                        (answer.status, seen.calls()),
                        (200, 1),
                        "valid token refused: {:?}",
                        answer.reason()
                    ),
                    1 => assert_eq!((answer.status, answer.code()), (401, "JWT_INVALID_TOKEN")),
                    2 => assert_eq!(answer.reason(), Some(InvalidReason::BadSignature)),
                    3 => assert_eq!(answer.reason(), Some(InvalidReason::UnknownKey), "{answer:?}"),
                    4 => assert_eq!(answer.code(), "JWT_MISSING_TOKEN"),
                    // The rotating key is present or not at this instant: both answers are right.
                    _ => assert!(
                        answer.status == 200 || answer.reason() == Some(InvalidReason::UnknownKey),
                        "{answer:?}"
                    ),
                }
                if kind != 0 && kind != 5 {
                    assert_eq!(seen.calls(), 0, "refused request reached the service");
                }
            }
            counts
        }));
        if w == 0 {
            baseline = resident_bytes();
        }
    }
    let started = Instant::now();
    let mut counts = [0usize; 6];
    for h in handles {
        for (total, n) in counts.iter_mut().zip(h.await.unwrap()) {
            *total += n;
        }
    }
    stop.store(true, Ordering::Relaxed);
    idp.await.unwrap();
    let elapsed = started.elapsed();
    let sent: usize = counts.iter().sum();
    let grown = resident_bytes().saturating_sub(baseline);
    eprintln!(
        "soak: {sent} requests in {elapsed:?} (valid {}, garbage {}, forged {}, unknown kid {}, no token {}, rotating {}); \
         JWKS fetches {}; cached tokens {}; resident growth {} KiB",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        server.hits(),
        layer.cached_tokens(),
        grown / 1024
    );
    assert!(sent >= total.min(20_000), "only {sent} requests before the time bound");
    assert!(layer.cached_tokens() <= 256, "token cache over its bound");
    // Background refreshes every ~100 ms plus at most one on-demand fetch per 100 ms.
    let budget = 2 * (elapsed.as_millis() as usize / 100 + 2) + 5;
    assert!(server.hits() <= budget, "{} fetches, budget {budget}", server.hits());
    assert!(grown < 32 * 1024 * 1024, "resident memory grew by {grown} bytes");
}
