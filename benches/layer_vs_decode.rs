//! The whole layer (token extraction, strict parsing, key lookup through a real `JwksCache`,
//! signature and claims, in-memory subscription lookup, context injection, a no-op inner
//! service) against a bare `jsonwebtoken::decode` of the same token, per algorithm, with the
//! verified-token cache off and on (hit).
//!
//! Run with `cargo bench --bench layer_vs_decode`. After criterion's own report it prints the
//! ratios of the means measured in this run (see BENCHMARKS.md).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, Service};
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwksCache, JwtPlanLayer, JwtSettings, KeySource, Plan,
    Subscription, SubscriptionStatus, TokenCacheConfig,
};

const ISS: &str = "https://idp.bench";
const AUD: &str = "api://bench";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One algorithm's fixture: a token, its public JWK and a signer-side secret for HMAC.
struct Fixture {
    alg: Algorithm,
    token: String,
    jwk: Value,
    hmac: Option<Vec<u8>>,
}

fn fixture(name: &'static str, alg: Algorithm) -> Fixture {
    let rng = SystemRandom::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": ISS, "aud": AUD, "sub": "alice", "client_id": "bench-client",
                        "exp": now + 3600, "iat": now, "scope": "read write"});
    let header = json!({"alg": name, "kid": "k1", "typ": "JWT"});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let (sig, jwk, hmac) = match alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let enc: &'static dyn signature::RsaEncoding = if alg == Algorithm::RS256 {
                &signature::RSA_PKCS1_SHA256
            } else {
                &signature::RSA_PSS_SHA256
            };
            let mut sig = vec![0; kp.public_modulus_len()];
            kp.sign(enc, &rng, input.as_bytes(), &mut sig).unwrap();
            let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            (sig, json!({"kty": "RSA", "kid": "k1", "n": b64(&c.n), "e": b64(&c.e)}), None)
        }
        Algorithm::ES256 => {
            let kp = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
            let sig = kp.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec();
            let p = kp.public_key().as_ref();
            let jwk = json!({"kty": "EC", "kid": "k1", "crv": "P-256",
                             "x": b64(&p[1..33]), "y": b64(&p[33..])});
            (sig, jwk, None)
        }
        Algorithm::EdDSA => {
            let kp = Ed25519KeyPair::generate().unwrap();
            let sig = kp.sign(input.as_bytes()).as_ref().to_vec();
            let jwk = json!({"kty": "OKP", "kid": "k1", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())});
            (sig, jwk, None)
        }
        _ => {
            let secret = vec![7u8; 32];
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref().to_vec();
            (sig, json!({"kty": "oct", "kid": "k1", "k": b64(&secret)}), Some(secret))
        }
    };
    Fixture { alg, token: format!("{input}.{}", b64(sig)), jwk, hmac }
}

/// A no-op inner service: the layer's cost is all that is measured.
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

/// Serve a JWKS on loopback so the layer reads keys through a real `JwksCache`.
fn jwks_server(rt: &tokio::runtime::Runtime, doc: Value) -> String {
    rt.block_on(async move {
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(move || ready(axum::Json(doc.clone()))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/jwks")
    })
}

fn layer_for(
    rt: &tokio::runtime::Runtime,
    f: &Fixture,
    cache: TokenCacheConfig,
) -> JwtPlanLayer<InMemoryResolver> {
    let keys = match &f.hmac {
        Some(secret) => KeySource::hmac_secret(secret),
        None => {
            let url = jwks_server(rt, json!({"keys": [f.jwk.clone()]}));
            let jwks = rt.block_on(async {
                let cache = JwksCache::builder(url).build().unwrap();
                assert!(cache.wait_ready(Duration::from_secs(5)).await);
                cache
            });
            KeySource::jwks(jwks)
        }
    };
    let settings = JwtSettings::new(keys).algorithms([f.alg]).issuer(ISS).audience(AUD);
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
        .token_cache(cache)
        .build()
        .unwrap()
}

/// Drive one request through the layered service. Everything is ready, so one poll completes it.
fn one_request<S>(svc: &mut S, auth: &HeaderValue) -> StatusCode
where
    S: Service<
            Request<()>,
            Response = Response<tower_jwt_plan::ResponseBody<http_body_util::Empty<bytes::Bytes>>>,
        >,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::new(());
    req.headers_mut().insert(AUTHORIZATION, auth.clone());
    let future = pin!(svc.call(req));
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(res)) => res.status(),
        _ => panic!("the layer should answer without waiting here"),
    }
}

fn bare_decode(f: &Fixture) -> impl FnMut() -> bool {
    let key = match &f.hmac {
        Some(secret) => jsonwebtoken::DecodingKey::from_secret(secret),
        None => {
            jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(f.jwk.clone()).unwrap())
                .unwrap()
        }
    };
    let mut validation = jsonwebtoken::Validation::new(f.alg);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let token = f.token.clone();
    move || {
        jsonwebtoken::decode::<serde_json::Map<String, Value>>(&token, &key, &validation).is_ok()
    }
}

const ALGS: [(&str, Algorithm); 5] = [
    ("RS256", Algorithm::RS256),
    ("PS256", Algorithm::PS256),
    ("ES256", Algorithm::ES256),
    ("EdDSA", Algorithm::EdDSA),
    ("HS256", Algorithm::HS256),
];

fn layer_vs_decode(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _guard = rt.enter();
    for (name, alg) in ALGS {
        let f = fixture(name, alg);
        let auth = HeaderValue::from_str(&format!("Bearer {}", f.token)).unwrap();
        let mut group = c.benchmark_group(format!("layer_vs_decode/{name}"));
        let mut decode = bare_decode(&f);
        assert!(decode(), "{name}: bare decode must accept the token");
        group.bench_function("decode", |b| b.iter(&mut decode));

        let mut off = layer_for(&rt, &f, TokenCacheConfig::disabled()).layer(Noop);
        assert_eq!(one_request(&mut off, &auth), StatusCode::OK, "{name}");
        group.bench_function("layer_cache_off", |b| b.iter(|| one_request(&mut off, &auth)));

        let mut hit = layer_for(&rt, &f, TokenCacheConfig::default()).layer(Noop);
        assert_eq!(one_request(&mut hit, &auth), StatusCode::OK, "{name}");
        group.bench_function("layer_cache_hit", |b| b.iter(|| one_request(&mut hit, &auth)));
        group.finish();
    }
}

/// Read criterion's estimates for this run and print layer/decode ratios.
fn print_ratios() {
    let root = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mean = |alg: &str, variant: &str| -> Option<f64> {
        let path = format!("{root}/criterion/layer_vs_decode_{alg}/{variant}/new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["mean"]["point_estimate"].as_f64()
    };
    println!("\nratios of means (this run):");
    println!(
        "{:<6} {:>12} {:>14} {:>14} {:>10} {:>12}",
        "alg", "decode ns", "cache off ns", "cache hit ns", "off/dec", "dec/hit"
    );
    for (name, _) in ALGS {
        if let (Some(d), Some(off), Some(hit)) =
            (mean(name, "decode"), mean(name, "layer_cache_off"), mean(name, "layer_cache_hit"))
        {
            println!(
                "{name:<6} {d:>12.0} {off:>14.0} {hit:>14.0} {:>10.3} {:>12.1}",
                off / d,
                d / hit
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = layer_vs_decode
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
