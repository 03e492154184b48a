//! Plan restrictions end to end: the real `JwtPlanLayer` (real JWKS server on 127.0.0.1, real
//! signed tokens) in front, `PlanLimitLayer` inside it, an echo service at the end. Windows are
//! judged on a pinned clock. The Redis tests (feature `redis`) run against the Redis at
//! `TJP_TEST_REDIS_URL`, each with its own key prefix, deleted at the end; the outage test cuts
//! a TCP proxy of its own, never the shared Redis.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_plan::limit::*;
use tower_jwt_plan::*;

const CLIENT2: &str = "client-2";
const SILVER_CLIENT: &str = "client-silver";

/// 2024-02-29T23:00:00Z, a Thursday: an hour before a day, week-day and month boundary.
const T0_MS: u64 = 1_709_247_600_000;

/// A clock the test moves by hand.
#[derive(Clone)]
struct Pinned(Arc<AtomicU64>);

impl Pinned {
    fn at(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }
    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    fn clock(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let ms = self.0.clone();
        move || UNIX_EPOCH + Duration::from_millis(ms.load(Ordering::SeqCst))
    }
}

struct Setup {
    _server: JwksServer,
    jwt: JwtPlanLayer<InMemoryResolver>,
    limits: PlanLimits,
}

/// Gold and Silver plans on one IdP; CLIENT and CLIENT2 hold Gold, SILVER_CLIENT holds Silver.
async fn setup() -> Setup {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let settings = || {
        JwtSettings::new(KeySource::jwks(cache.clone()))
            .algorithms([Algorithm::RS256])
            .issuer(ISS)
            .audience(AUD)
    };
    let store = InMemoryResolver::new([
        accepted("gold", CLIENT),
        accepted("gold", CLIENT2),
        accepted("silver", SILVER_CLIENT),
    ]);
    let jwt = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", settings()))
        .plan(Plan::jwt("silver", "Silver", settings()))
        .resolver(store)
        .build()
        .unwrap();
    Setup { _server: server, jwt, limits: PlanLimits::new() }
}

fn token_for(client: &str, sub: &str) -> String {
    let mut claims = claims();
    claims["client_id"] = json!(client);
    claims["sub"] = json!(sub);
    rsa().token("k1", &claims)
}

fn get(client: &str) -> Request<Full<Bytes>> {
    bearer(&token_for(client, "alice"))
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
    error: Option<AuthError>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name).map(|v| v.to_str().unwrap().parse().unwrap())
    }
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// One request through JWT layer → limit layer → echo.
async fn send(
    jwt: &JwtPlanLayer<InMemoryResolver>,
    limit: &PlanLimitLayer,
    req: Request<Full<Bytes>>,
) -> Reply {
    let echo = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}"))))
    });
    let svc = tower::ServiceBuilder::new().layer(jwt.clone()).layer(limit.clone()).service(echo);
    let res = svc.oneshot(req).await.unwrap();
    let error = res.extensions().get::<AuthError>().cloned();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        error,
    }
}

fn rate(limit: u64, period_secs: u64) -> Restrictions {
    Restrictions::none().with_rate_limit(RateLimit::new(limit, period_secs).unwrap())
}

/// N allowed with the remaining count going down, N+1 refused, a new budget at the window's end.
async fn rate_limit_exact(s: &Setup, layer: &PlanLimitLayer, clock: &Pinned) {
    // One second into a minute window [T0, T0 + 60 s).
    clock.set(T0_MS + 1_000);
    for remaining in (0..3).rev() {
        let r = send(&s.jwt, layer, get(CLIENT)).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-rate-limit-limit"), Some(3));
        assert_eq!(r.header("x-rate-limit-remaining"), Some(remaining));
        assert_eq!(r.header("x-rate-limit-reset"), Some(T0_MS + 60_000));
        assert!(r.headers.get("x-quota-limit").is_none(), "no quota on this plan");
    }
    let r = send(&s.jwt, layer, get(CLIENT)).await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMIT_TOO_MANY_REQUESTS"), "{r:?}");
    assert_eq!(r.body["http_status_code"], 429);
    assert_eq!(r.header("retry-after"), Some(59));
    assert_eq!(r.header("x-rate-limit-remaining"), Some(0));
    assert_eq!(r.header("x-rate-limit-reset"), Some(T0_MS + 60_000));
    assert_eq!(r.error.unwrap().kind(), AuthErrorKind::RateLimitExceeded);
    // The last millisecond of the window is still refused; its end opens a new budget.
    clock.set(T0_MS + 59_999);
    assert_eq!(send(&s.jwt, layer, get(CLIENT)).await.status, 429);
    clock.set(T0_MS + 60_000);
    let r = send(&s.jwt, layer, get(CLIENT)).await;
    assert_eq!((r.status, r.header("x-rate-limit-remaining")), (200, Some(2)));
    assert_eq!(r.header("x-rate-limit-reset"), Some(T0_MS + 120_000));
}

#[tokio::test]
async fn rate_limit_counts_exactly_in_memory() {
    let s = setup().await;
    s.limits.set("echo", "gold", rate(3, 60));
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone()).clock(clock.clock()).build();
    rate_limit_exact(&s, &layer, &clock).await;
}

#[tokio::test]
async fn quota_follows_the_utc_calendar() {
    let s = setup().await;
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone()).clock(clock.clock()).build();
    let midnight = T0_MS + 3_600_000; // 2024-03-01T00:00:00Z
    for (period, reset) in [
        (QuotaPeriod::Hour, midnight),
        (QuotaPeriod::Day, midnight),
        (QuotaPeriod::Month, midnight),
        (QuotaPeriod::Week, midnight + 3 * 86_400_000), // Monday 2024-03-04
    ] {
        s.limits.set(
            "echo",
            "gold",
            Restrictions::none().with_quota(Quota::new(2, period).unwrap()),
        );
        clock.set(T0_MS + 1_500);
        // Each period has its own window bounds, so earlier periods' counts never apply.
        let client = if period == QuotaPeriod::Week { CLIENT2 } else { CLIENT };
        for remaining in [1, 0] {
            let r = send(&s.jwt, &layer, get(client)).await;
            assert_eq!(r.status, 200, "{period:?} {r:?}");
            assert_eq!(
                (
                    r.header("x-quota-limit"),
                    r.header("x-quota-remaining"),
                    r.header("x-quota-reset")
                ),
                (Some(2), Some(remaining), Some(reset)),
                "{period:?}"
            );
            assert!(r.headers.get("x-rate-limit-limit").is_none());
        }
        let r = send(&s.jwt, &layer, get(client)).await;
        assert_eq!((r.status, r.code()), (429, "QUOTA_TOO_MANY_REQUESTS"), "{period:?}");
        assert_eq!(r.header("retry-after"), Some((reset - T0_MS - 1_500).div_ceil(1000)));
        clock.set(reset);
        let r = send(&s.jwt, &layer, get(client)).await;
        assert_eq!((r.status, r.header("x-quota-remaining")), (200, Some(1)), "{period:?}");
    }
}

#[tokio::test]
async fn spike_arrest_spaces_requests() {
    let s = setup().await;
    // 2 per second: one request every 500 ms, no burst.
    s.limits.set(
        "echo",
        "gold",
        Restrictions::none().with_spike_arrest(SpikeArrest::new(2, 1).unwrap()),
    );
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone()).clock(clock.clock()).build();
    spike_arrest_exact(&s, &layer, &clock).await;
}

async fn spike_arrest_exact(s: &Setup, layer: &PlanLimitLayer, clock: &Pinned) {
    clock.set(T0_MS);
    let r = send(&s.jwt, layer, get(CLIENT)).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-rate-limit-limit").is_none(), "spike arrest has no headers");
    let r = send(&s.jwt, layer, get(CLIENT)).await;
    assert_eq!((r.status, r.code()), (429, "SPIKE_ARREST_TOO_MANY_REQUESTS"));
    assert_eq!(r.header("retry-after"), Some(1));
    clock.advance(499);
    assert_eq!(send(&s.jwt, layer, get(CLIENT)).await.status, 429);
    clock.advance(1);
    assert_eq!(send(&s.jwt, layer, get(CLIENT)).await.status, 200);
    assert_eq!(send(&s.jwt, layer, get(CLIENT)).await.status, 429);
    // Over 5 s at one request every 100 ms: exactly 10 allowed (one per 500 ms).
    let mut allowed = 0;
    for _ in 0..50 {
        clock.advance(100);
        allowed += u32::from(send(&s.jwt, layer, get(CLIENT)).await.status == 200);
    }
    assert_eq!(allowed, 10);
}

#[tokio::test]
async fn all_limits_together_and_a_refusal_consumes_nothing() {
    let s = setup().await;
    s.limits.set(
        "echo",
        "gold",
        rate(5, 1)
            .with_quota(Quota::new(3, QuotaPeriod::Day).unwrap())
            .with_spike_arrest(SpikeArrest::new(1, 1).unwrap()),
    );
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone()).clock(clock.clock()).build();
    let r = send(&s.jwt, &layer, get(CLIENT)).await;
    assert_eq!(
        (r.status, r.header("x-rate-limit-remaining"), r.header("x-quota-remaining")),
        (200, Some(4), Some(2))
    );
    // Refused by the spike arrest: neither window counts it.
    let r = send(&s.jwt, &layer, get(CLIENT)).await;
    assert_eq!((r.status, r.code()), (429, "SPIKE_ARREST_TOO_MANY_REQUESTS"));
    assert_eq!(
        (r.header("x-rate-limit-remaining"), r.header("x-quota-remaining")),
        (Some(4), Some(2))
    );
    for quota_left in [1, 0] {
        clock.advance(1_000);
        let r = send(&s.jwt, &layer, get(CLIENT)).await;
        assert_eq!((r.status, r.header("x-quota-remaining")), (200, Some(quota_left)));
    }
    clock.advance(1_000);
    let r = send(&s.jwt, &layer, get(CLIENT)).await;
    assert_eq!((r.status, r.code()), (429, "QUOTA_TOO_MANY_REQUESTS"));
    // Quota and rate limit both exhausted: the longer wait (the quota's) is reported.
    s.limits.set("echo", "gold", rate(1, 1).with_quota(Quota::new(1, QuotaPeriod::Day).unwrap()));
    let r = send(&s.jwt, &layer, get(CLIENT2)).await;
    assert_eq!(r.status, 200);
    let r = send(&s.jwt, &layer, get(CLIENT2)).await;
    assert_eq!(r.code(), "QUOTA_TOO_MANY_REQUESTS");
    assert!(r.header("retry-after").unwrap() > 1);
}

#[tokio::test]
async fn subscriptions_do_not_share_a_budget_and_plans_differ() {
    let s = setup().await;
    s.limits.set("echo", "gold", rate(100, 60));
    s.limits.set("echo", "silver", rate(2, 60));
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone()).clock(clock.clock()).build();
    for _ in 0..2 {
        assert_eq!(send(&s.jwt, &layer, get(SILVER_CLIENT)).await.status, 200);
    }
    assert_eq!(send(&s.jwt, &layer, get(SILVER_CLIENT)).await.status, 429);
    // Gold subscribers have their own, larger budgets, one per subscription.
    let r = send(&s.jwt, &layer, get(CLIENT)).await;
    assert_eq!(
        (r.status, r.header("x-rate-limit-limit"), r.header("x-rate-limit-remaining")),
        (200, Some(100), Some(99))
    );
    let r = send(&s.jwt, &layer, get(CLIENT2)).await;
    assert_eq!((r.status, r.header("x-rate-limit-remaining")), (200, Some(99)));
    // A redeploy changes the restriction at once; the count of the current window is kept.
    s.limits.set("echo", "silver", rate(3, 60));
    let r = send(&s.jwt, &layer, get(SILVER_CLIENT)).await;
    assert_eq!((r.status, r.header("x-rate-limit-remaining")), (200, Some(0)));
    // A plan without restrictions is not counted and gets no headers.
    s.limits.remove("echo", "gold");
    let r = send(&s.jwt, &layer, get(CLIENT)).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-rate-limit-limit").is_none());
}

#[tokio::test]
async fn key_by_claim_counts_per_user_across_subscriptions() {
    let s = setup().await;
    s.limits.set("echo", "gold", rate(2, 60));
    let clock = Pinned::at(T0_MS);
    let layer =
        PlanLimitLayer::builder(s.limits.clone()).key_by_claim("sub").clock(clock.clock()).build();
    // alice through two applications: one budget.
    assert_eq!(send(&s.jwt, &layer, bearer(&token_for(CLIENT, "alice"))).await.status, 200);
    assert_eq!(send(&s.jwt, &layer, bearer(&token_for(CLIENT2, "alice"))).await.status, 200);
    assert_eq!(send(&s.jwt, &layer, bearer(&token_for(CLIENT, "alice"))).await.status, 429);
    // bob through the same application: his own budget.
    let r = send(&s.jwt, &layer, bearer(&token_for(CLIENT, "bob"))).await;
    assert_eq!((r.status, r.header("x-rate-limit-remaining")), (200, Some(1)));
}

#[tokio::test]
async fn grpc_gets_resource_exhausted() {
    let s = setup().await;
    s.limits.set("echo", "gold", rate(1, 60));
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone()).clock(clock.clock()).build();
    let grpc = || {
        let mut req = get(CLIENT);
        req.headers_mut().insert("content-type", "application/grpc+proto".parse().unwrap());
        req
    };
    assert_eq!(send(&s.jwt, &layer, grpc()).await.status, 200);
    let r = send(&s.jwt, &layer, grpc()).await;
    assert_eq!(r.status, 200, "trailers-only gRPC answer");
    assert_eq!(r.headers["grpc-status"], "8");
    assert!(r.headers["grpc-message"].to_str().unwrap().contains("rate%20limit"));
    assert_eq!(r.header("retry-after"), Some(60));
    assert_eq!(r.header("x-rate-limit-remaining"), Some(0));
}

#[tokio::test]
async fn custom_renderer_renders_limit_refusals() {
    let s = setup().await;
    s.limits.set("echo", "gold", rate(1, 60));
    let clock = Pinned::at(T0_MS);
    let layer = PlanLimitLayer::builder(s.limits.clone())
        .clock(clock.clock())
        .render_rejection(|err: &AuthError, req: &http::request::Parts| {
            let mut res = default_rejection(err, req);
            res.headers_mut().insert("x-gateway", "tjp".parse().unwrap());
            res
        })
        .build();
    send(&s.jwt, &layer, get(CLIENT)).await;
    let r = send(&s.jwt, &layer, get(CLIENT)).await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMIT_TOO_MANY_REQUESTS"));
    assert_eq!(r.headers["x-gateway"], "tjp");
    assert_eq!(r.header("retry-after"), Some(60), "added after the renderer");
}

#[tokio::test]
async fn without_a_plan_context_requests_pass_untouched() {
    let limits = PlanLimits::new();
    limits.set("echo", "gold", rate(1, 60));
    let layer = PlanLimitLayer::new(limits);
    let echo = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let svc = tower::ServiceBuilder::new().layer(layer).service(echo);
    for _ in 0..3 {
        let res = svc.clone().oneshot(no_token()).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("x-rate-limit-limit").is_none());
    }
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_limit_tests_need_the_feature() {
    println!(
        "skipped: build with --features redis and set TJP_TEST_REDIS_URL=redis://127.0.0.1:6379 to run the Redis limit tests"
    );
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    fn redis_url() -> Option<String> {
        let url = std::env::var("TJP_TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
        if url.is_none() {
            println!(
                "skipped: set TJP_TEST_REDIS_URL=redis://127.0.0.1:6379 to run the Redis limit tests"
            );
        }
        url
    }

    /// A key prefix of this test's own, whose keys are deleted when it drops.
    struct Prefix {
        url: String,
        prefix: String,
    }

    impl Prefix {
        fn new(url: &str) -> Self {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
            Self {
                url: url.to_owned(),
                prefix: format!("tjp-test:{}:{nanos}:", std::process::id()),
            }
        }
        async fn keys(&self) -> Vec<String> {
            let client = redis::Client::open(self.url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query_async(&mut conn)
                .await
                .unwrap()
        }
        async fn clean(&self) {
            let keys = self.keys().await;
            if !keys.is_empty() {
                let client = redis::Client::open(self.url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
            }
        }
    }

    fn layer(limits: &PlanLimits, url: &str, prefix: &Prefix, clock: &Pinned) -> PlanLimitLayer {
        let store = RedisStore::new(url)
            .unwrap()
            .key_prefix(prefix.prefix.clone())
            .timeout(Duration::from_millis(200))
            .retry_interval(Duration::from_millis(100));
        PlanLimitLayer::builder(limits.clone()).redis(store).clock(clock.clock()).build()
    }

    #[tokio::test]
    async fn redis_counts_exactly_and_keys_expire_by_themselves() {
        let Some(url) = redis_url() else { return };
        let s = setup().await;
        let prefix = Prefix::new(&url);
        let clock = Pinned::at(T0_MS);
        let layer = layer(&s.limits, &url, &prefix, &clock);
        s.limits.set("echo", "gold", rate(3, 60));
        rate_limit_exact(&s, &layer, &clock).await;
        s.limits.set(
            "echo",
            "gold",
            Restrictions::none().with_spike_arrest(SpikeArrest::new(2, 1).unwrap()),
        );
        spike_arrest_exact(&s, &layer, &clock).await;
        // Every key carries a TTL: nothing is left behind for ever.
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys = prefix.keys().await;
        assert!(keys.len() >= 3, "{keys:?}");
        for key in keys {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
            assert!(ttl > 0, "{key} has no expiry");
        }
        prefix.clean().await;
    }

    #[tokio::test]
    async fn two_instances_share_one_budget() {
        let Some(url) = redis_url() else { return };
        let s = setup().await;
        let prefix = Prefix::new(&url);
        let clock = Pinned::at(T0_MS + 5_000);
        s.limits.set("echo", "gold", rate(10, 60));
        // Two layers with their own memory, as two gateway processes would have.
        let a = layer(&s.limits, &url, &prefix, &clock);
        let b = layer(&s.limits, &url, &prefix, &clock);
        let mut allowed = [0, 0];
        for i in 0..20 {
            let (which, layer) = if i % 2 == 0 { (0, &a) } else { (1, &b) };
            let r = send(&s.jwt, layer, get(CLIENT)).await;
            assert!(r.status == 200 || r.status == 429, "{r:?}");
            allowed[which] += usize::from(r.status == 200);
        }
        assert_eq!(allowed[0] + allowed[1], 10, "{allowed:?}");
        assert!(allowed[0] > 0 && allowed[1] > 0);
        prefix.clean().await;
    }

    /// A TCP proxy to Redis that the test can cut (closing every connection and refusing new
    /// ones) and restore.
    struct Proxy {
        addr: std::net::SocketAddr,
        up: watch::Sender<bool>,
    }

    impl Proxy {
        async fn start(target: std::net::SocketAddr) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (up, rx) = watch::channel(true);
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else { return };
                    let mut rx = rx.clone();
                    if !*rx.borrow() {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(target).await else { return };
                        let (mut client, mut server) = (client, server);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = rx.wait_for(|up| !*up) => {}
                        }
                    });
                }
            });
            Self { addr, up }
        }
        fn cut(&self) {
            self.up.send_replace(false);
        }
        fn restore(&self) {
            self.up.send_replace(true);
        }
    }

    #[tokio::test]
    async fn redis_outage_falls_back_to_local_limits_and_recovers() {
        let Some(url) = redis_url() else { return };
        let target = {
            let client = redis::Client::open(url.as_str()).unwrap();
            let info = client.get_connection_info().addr().to_string();
            tokio::net::lookup_host(info).await.unwrap().next().unwrap()
        };
        let proxy = Proxy::start(target).await;
        let proxied = format!("redis://{}/", proxy.addr);
        let s = setup().await;
        let prefix = Prefix::new(&url);
        let clock = Pinned::at(T0_MS + 5_000);
        s.limits.set("echo", "gold", rate(5, 60));
        let layer = layer(&s.limits, &proxied, &prefix, &clock);
        for _ in 0..2 {
            assert_eq!(send(&s.jwt, &layer, get(CLIENT)).await.status, 200);
        }
        proxy.cut();
        // Redis unreachable: this instance enforces the full limit on its own, never a 5xx.
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(send(&s.jwt, &layer, get(CLIENT)).await.status);
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
        proxy.restore();
        // Back on Redis, the shared count (2) resumes: 3 more allowed once a probe gets through.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = send(&s.jwt, &layer, get(CLIENT)).await;
            assert!(r.status == 200 || r.status == 429, "{r:?}");
            if r.status == 200 {
                assert_eq!(r.header("x-rate-limit-remaining"), Some(2), "the count kept in Redis");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never went back to Redis");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        for remaining in [1, 0] {
            let r = send(&s.jwt, &layer, get(CLIENT)).await;
            assert_eq!((r.status, r.header("x-rate-limit-remaining")), (200, Some(remaining)));
        }
        assert_eq!(send(&s.jwt, &layer, get(CLIENT)).await.status, 429);
        prefix.clean().await;
    }
}
