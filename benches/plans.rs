//! What the number of plans, a refused valid token and a cache hit cost, measured in one run:
//!
//! - `decode`: a bare `jsonwebtoken::decode` of the RS256-2048 token (one verification);
//! - `plans_N_off` / `plans_N_hit`: N JWT plans on one IdP (one `JwksCache`), the client
//!   subscribed to the last one, token cache off / hit;
//! - `unsubscribed_off` / `unsubscribed_on`: five plans, a valid token whose client holds no
//!   subscription (403), repeated;
//! - `router_noauth` / `router_hit` / `router_around_hit`: an axum `Router` with no auth
//!   against the same router with the layer inside it (`Router::layer`) and around it (the
//!   layer's service wrapping the router), one plan, cache hit; all sent the same request
//!   (token included) and finalised with `with_state(())` as `axum::serve` does;
//! - `router_layer_floor`: the router with a layer that does nothing but wrap the response
//!   body, through `Router::layer`: what axum itself adds for any such layer (a clone of the
//!   route, a boxed future, a boxed body), which `router_hit` pays too.
//!
//! Run with `cargo bench --bench plans -- --measurement-time 3 --warm-up-time 1`; the ratios of
//! the means are printed after criterion's report (see BENCHMARKS.md). With
//! `TJP_BENCH_LOOP=router_hit|router_noauth|plans_5_off N` it runs that case N times without
//! criterion, for `benches/instructions.sh` (callgrind).

use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, Service};
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwksCache, JwtPlanLayer, JwtSettings, KeySource, Plan,
    Subscription, SubscriptionStatus, TokenCacheConfig,
};

type Empty = http_body_util::Empty<bytes::Bytes>;

const ISS: &str = "https://idp.bench";
const AUD: &str = "api://bench";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RS256-2048 token for `client` and the public JWK that verifies it.
fn token_and_jwk(kp: &RsaKeyPair, client: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": ISS, "aud": AUD, "sub": "alice", "client_id": client,
                        "exp": now + 3600, "iat": now, "scope": "read write"});
    let header = json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let mut sig = vec![0; kp.public_modulus_len()];
    kp.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig)
        .unwrap();
    format!("{input}.{}", b64(sig))
}

fn jwk_of(kp: &RsaKeyPair) -> Value {
    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
    json!({"kty": "RSA", "kid": "k1", "n": b64(&c.n), "e": b64(&c.e)})
}

/// Serve a JWKS on loopback so the layer reads keys through a real `JwksCache`.
fn jwks_cache(rt: &tokio::runtime::Runtime, doc: Value) -> JwksCache {
    rt.block_on(async move {
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(move || ready(axum::Json(doc.clone()))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let cache = JwksCache::builder(format!("http://{addr}/jwks")).build().unwrap();
        assert!(cache.wait_ready(Duration::from_secs(5)).await);
        cache
    })
}

/// `n` plans on one IdP; the client `subscribed` holds a subscription to the last one only.
fn layer(
    jwks: &JwksCache,
    n: usize,
    subscribed: &str,
    cache: TokenCacheConfig,
) -> JwtPlanLayer<InMemoryResolver> {
    let settings = JwtSettings::new(KeySource::jwks(jwks.clone()))
        .algorithms([Algorithm::RS256])
        .issuer(ISS)
        .audience(AUD);
    let plans =
        (0..n).map(|i| Plan::jwt(format!("plan-{i}"), format!("Plan {i}"), settings.clone()));
    let last = format!("plan-{}", n - 1);
    let store = InMemoryResolver::new([Subscription::new(
        "sub-1",
        "bench",
        last,
        "app-1",
        subscribed,
        SubscriptionStatus::Accepted,
    )]);
    JwtPlanLayer::builder("bench").plans(plans).resolver(store).token_cache(cache).build().unwrap()
}

/// Drive one request; everything is ready, so one poll completes it.
fn one<S, B>(svc: &mut S, auth: Option<&HeaderValue>) -> StatusCode
where
    S: Service<Request<Empty>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::new(Empty::new());
    if let Some(auth) = auth {
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
    }
    let future = pin!(svc.call(req));
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(res)) => res.status(),
        _ => panic!("the service should answer without waiting here"),
    }
}

/// A no-op inner service: the layer's own cost is what `plans_*` measure.
type Answer = Result<Response<Empty>, Infallible>;

fn noop() -> impl Service<
    Request<Empty>,
    Response = Response<Empty>,
    Error = Infallible,
    Future = std::future::Ready<Answer>,
> + Clone {
    tower::service_fn(|_: Request<Empty>| ready(Ok(Response::new(http_body_util::Empty::new()))))
}

fn router() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| ready(StatusCode::OK)))
}

type Case = (&'static str, Box<dyn FnMut() -> StatusCode>);

fn cases(rt: &tokio::runtime::Runtime) -> Vec<Case> {
    let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let jwks = jwks_cache(rt, json!({"keys": [jwk_of(&kp)]}));
    let token = token_and_jwk(&kp, "bench-client");
    let stranger = token_and_jwk(&kp, "stranger");
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let unsub = HeaderValue::from_str(&format!("Bearer {stranger}")).unwrap();
    let mut out: Vec<Case> = Vec::new();

    let key =
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk_of(&kp)).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let t = token.clone();
    out.push((
        "decode",
        Box::new(move || {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(&t, &key, &validation) {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::UNAUTHORIZED,
            }
        }),
    ));
    for (name, n, cache) in [
        ("plans_1_off", 1, TokenCacheConfig::disabled()),
        ("plans_5_off", 5, TokenCacheConfig::disabled()),
        ("plans_20_off", 20, TokenCacheConfig::disabled()),
        ("plans_1_hit", 1, TokenCacheConfig::default()),
        ("plans_5_hit", 5, TokenCacheConfig::default()),
        ("plans_20_hit", 20, TokenCacheConfig::default()),
    ] {
        let mut svc = layer(&jwks, n, "bench-client", cache).layer(noop());
        let auth = auth.clone();
        out.push((name, Box::new(move || one(&mut svc, Some(&auth)))));
    }
    for (name, cache) in [
        ("unsubscribed_off", TokenCacheConfig::disabled()),
        ("unsubscribed_on", TokenCacheConfig::default()),
    ] {
        let mut svc = layer(&jwks, 5, "bench-client", cache).layer(noop());
        let unsub = unsub.clone();
        out.push((name, Box::new(move || one(&mut svc, Some(&unsub)))));
    }
    // `with_state(())` turns the handlers into routes once, as `axum::serve` does; without it
    // axum rebuilds them (and re-applies the layer) on every call.
    let mut bare = router().with_state(());
    // The same request, token included: the router alone ignores it.
    let same = auth.clone();
    out.push(("router_noauth", Box::new(move || one(&mut bare, Some(&same)))));
    let mut guarded =
        router().layer(layer(&jwks, 1, "bench-client", TokenCacheConfig::default())).with_state(());
    let same = auth.clone();
    out.push(("router_hit", Box::new(move || one(&mut guarded, Some(&same)))));
    // The layer around the whole router rather than inside it: axum then boxes nothing more
    // per request than it does without the layer.
    let mut around =
        layer(&jwks, 1, "bench-client", TokenCacheConfig::default()).layer(router().with_state(()));
    let same = auth.clone();
    out.push(("router_around_hit", Box::new(move || one(&mut around, Some(&same)))));
    // A layer whose response body is not axum's own, and which does nothing else.
    let mut floor = router()
        .layer(tower::util::MapResponseLayer::new(|res: axum::response::Response| {
            res.map(|body| http_body_util::BodyExt::map_err(body, |e: axum::Error| e))
        }))
        .with_state(());
    out.push(("router_layer_floor", Box::new(move || one(&mut floor, Some(&auth)))));
    out
}

/// The only function `benches/instructions.sh` counts (`--toggle-collect`): N requests.
#[inline(never)]
fn callgrind_loop(run: &mut dyn FnMut() -> StatusCode, n: u64) {
    for _ in 0..n {
        std::hint::black_box(run());
    }
}

fn expected(name: &str) -> StatusCode {
    if name.starts_with("unsubscribed") { StatusCode::FORBIDDEN } else { StatusCode::OK }
}

fn main() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _guard = rt.enter();
    let mut cases = cases(&rt);
    for (name, run) in &mut cases {
        assert_eq!(run(), expected(name), "{name}");
    }
    if let Ok(only) = std::env::var("TJP_BENCH_LOOP") {
        let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
        let (_, run) = cases.iter_mut().find(|(name, _)| *name == only).expect("no such case");
        callgrind_loop(run, n);
        return;
    }
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    {
        let mut group = c.benchmark_group("plans");
        for (name, run) in &mut cases {
            group.bench_function(*name, |b| b.iter(&mut *run));
        }
        group.finish();
    }
    c.final_summary();
    print_ratios(&cases.iter().map(|(name, _)| *name).collect::<Vec<_>>());
}

/// Read criterion's estimates for this run and print the ratios the targets are stated in.
fn print_ratios(names: &[&str]) {
    let root = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mean = |case: &str| -> Option<f64> {
        let path = format!("{root}/criterion/plans/{case}/new/estimates.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        v["mean"]["point_estimate"].as_f64()
    };
    println!("\nmeans (this run):");
    for name in names {
        if let Some(m) = mean(name) {
            println!("  {name:<18} {m:>10.0} ns");
        }
    }
    let ratio = |label: &str, a: &str, b: &str| {
        if let (Some(x), Some(y)) = (mean(a), mean(b)) {
            println!("  {label:<44} {:>8.3}", x / y);
        }
    };
    println!("ratios (this run):");
    ratio("5 plans / 1 plan, cache off", "plans_5_off", "plans_1_off");
    ratio("20 plans / 1 plan, cache off", "plans_20_off", "plans_1_off");
    ratio("1 plan, cache off / bare decode", "plans_1_off", "decode");
    ratio("unsubscribed repeated, off / bare decode", "unsubscribed_off", "decode");
    ratio("unsubscribed repeated, on / bare decode", "unsubscribed_on", "decode");
    ratio("5 plans / 1 plan, cache hit", "plans_5_hit", "plans_1_hit");
    ratio("20 plans / 1 plan, cache hit", "plans_20_hit", "plans_1_hit");
    if let (Some(hit), Some(bare)) = (mean("router_hit"), mean("router_noauth")) {
        println!("  {:<44} {:>8.0} ns", "router with layer (hit) - router, no auth", hit - bare);
    }
    if let (Some(hit), Some(bare)) = (mean("router_around_hit"), mean("router_noauth")) {
        println!("  {:<44} {:>8.0} ns", "layer around router (hit) - router, no auth", hit - bare);
    }
    if let (Some(floor), Some(bare)) = (mean("router_layer_floor"), mean("router_noauth")) {
        println!("  {:<44} {:>8.0} ns", "no-op Router::layer - router, no auth", floor - bare);
    }
    if let (Some(hit), Some(floor)) = (mean("router_hit"), mean("router_layer_floor")) {
        println!(
            "  {:<44} {:>8.0} ns",
            "router with layer (hit) - no-op Router::layer",
            hit - floor
        );
    }
}
