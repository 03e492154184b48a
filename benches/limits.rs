//! The added cost per request of `PlanLimitLayer` (rate limit + quota on the plan, never
//! refused), counted in memory and in Redis on loopback, against the JWT layer alone with a
//! token-cache hit, all in one run on one current-thread runtime.
//!
//! Run with `cargo bench --features redis --bench limits` and `TJP_TEST_REDIS_URL` set (the
//! Redis row is skipped, with a message, otherwise). After criterion's report it prints the
//! ratios of the means measured in this run (see BENCHMARKS.md).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_jwt_plan::limit::{
    PlanLimitLayer, PlanLimits, Quota, QuotaPeriod, RateLimit, Restrictions,
};
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan, Subscription,
    SubscriptionStatus, TokenCacheConfig,
};

const SECRET: [u8; 32] = [7u8; 32];

fn token() -> String {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims =
        json!({"sub": "alice", "client_id": "bench-client", "exp": now + 3600, "iat": now});
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

/// A no-op inner service: the layers' cost is all that is measured.
#[derive(Clone)]
struct Noop;

impl Service<Request<()>> for Noop {
    type Response = Response<http_body_util::Empty<bytes::Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(http_body_util::Empty::new())))
    }
}

fn jwt() -> JwtPlanLayer<InMemoryResolver> {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET)).algorithms([Algorithm::HS256]);
    let store = InMemoryResolver::new([Subscription::new(
        "sub-1",
        "bench",
        "gold",
        "app-1",
        "bench-client",
        SubscriptionStatus::Accepted,
    )]);
    JwtPlanLayer::builder("bench")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(store)
        .token_cache(TokenCacheConfig::default())
        .build()
        .unwrap()
}

/// Limits so large that no request of the run is refused: every request is counted twice.
fn limits() -> PlanLimits {
    let limits = PlanLimits::new();
    limits.set(
        "bench",
        "gold",
        Restrictions::none()
            .with_rate_limit(RateLimit::new(1_000_000_000, 1).unwrap())
            .with_quota(Quota::new(1_000_000_000, QuotaPeriod::Month).unwrap()),
    );
    limits
}

fn limits_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let auth = HeaderValue::from_str(&format!("Bearer {}", token())).unwrap();
    let mut group = c.benchmark_group("limits");

    let alone = ServiceBuilder::new().layer(jwt()).service(Noop);
    let status = rt.block_on(async {
        let mut req = Request::new(());
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
        alone.clone().oneshot(req).await.unwrap().status()
    });
    assert_eq!(status, StatusCode::OK);
    group.bench_function("jwt_alone", |b| {
        b.to_async(&rt).iter(|| {
            let mut req = Request::new(());
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
            alone.clone().oneshot(req)
        })
    });

    let memory =
        ServiceBuilder::new().layer(jwt()).layer(PlanLimitLayer::new(limits())).service(Noop);
    group.bench_function("jwt_limit_memory", |b| {
        b.to_async(&rt).iter(|| {
            let mut req = Request::new(());
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
            memory.clone().oneshot(req)
        })
    });

    #[cfg(feature = "redis")]
    match std::env::var("TJP_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
            let prefix = format!("tjp-bench:{}:{nanos}:", std::process::id());
            let store =
                tower_jwt_plan::limit::RedisStore::new(&url).unwrap().key_prefix(prefix.clone());
            let layer = PlanLimitLayer::builder(limits()).redis(store).build();
            let redis = ServiceBuilder::new().layer(jwt()).layer(layer).service(Noop);
            let warm = rt.block_on(async {
                let mut req = Request::new(());
                req.headers_mut().insert(AUTHORIZATION, auth.clone());
                let res = redis.clone().oneshot(req).await.unwrap();
                res.headers().get("x-rate-limit-remaining").cloned()
            });
            assert!(warm.is_some(), "the Redis row must count requests");
            group.bench_function("jwt_limit_redis", |b| {
                b.to_async(&rt).iter(|| {
                    let mut req = Request::new(());
                    req.headers_mut().insert(AUTHORIZATION, auth.clone());
                    redis.clone().oneshot(req)
                })
            });
            rt.block_on(async {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                if !keys.is_empty() {
                    let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
                }
            });
        }
        None => {
            println!("skipped: set TJP_TEST_REDIS_URL=redis://127.0.0.1:6379 for the Redis row")
        }
    }
    #[cfg(not(feature = "redis"))]
    println!("skipped: run with --features redis and TJP_TEST_REDIS_URL set for the Redis row");
    group.finish();
}

/// Read criterion's estimates for this run and print the ratios against the JWT layer alone.
fn print_ratios() {
    let root = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mean = |variant: &str| -> Option<f64> {
        let path = format!("{root}/criterion/limits/{variant}/new/estimates.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        v["mean"]["point_estimate"].as_f64()
    };
    println!("\nratios of means (this run):");
    let Some(alone) = mean("jwt_alone") else { return };
    println!("{:<18} {:>10} {:>10} {:>10}", "row", "ns", "ratio", "added ns");
    for row in ["jwt_alone", "jwt_limit_memory", "jwt_limit_redis"] {
        if let Some(m) = mean(row) {
            println!("{row:<18} {m:>10.0} {:>10.3} {:>10.0}", m / alone, m - alone);
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = limits_bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
