//! Test support: keys generated at test time, a token minter that can also build malformed
//! tokens, a real JWKS server on 127.0.0.1, and a layered echo service.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_plan::Algorithm;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A signing key of one kind, with its public JWK.
pub enum Signer {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

impl Signer {
    pub fn rsa() -> Self {
        Signer::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }
    pub fn p256() -> Self {
        Signer::P256(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }
    pub fn p384() -> Self {
        Signer::P384(EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap())
    }
    pub fn ed() -> Self {
        Signer::Ed(Ed25519KeyPair::generate().unwrap())
    }
    pub fn hmac(secret: &[u8]) -> Self {
        Signer::Hmac(secret.to_vec())
    }

    /// The default algorithm for this key.
    pub fn alg(&self) -> Algorithm {
        match self {
            Signer::Rsa(_) => Algorithm::RS256,
            Signer::P256(_) => Algorithm::ES256,
            Signer::P384(_) => Algorithm::ES384,
            Signer::Ed(_) => Algorithm::EdDSA,
            Signer::Hmac(_) => Algorithm::HS256,
        }
    }

    pub fn sign(&self, alg: Algorithm, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Rsa(kp) => {
                let enc: &'static dyn signature::RsaEncoding = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    other => panic!("RSA cannot sign {other:?}"),
                };
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(enc, &rng, msg, &mut sig).unwrap();
                sig
            }
            Signer::P256(kp) | Signer::P384(kp) => kp.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Signer::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
            Signer::Hmac(secret) => {
                let alg = match alg {
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => aws_lc_rs::hmac::HMAC_SHA256,
                };
                aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(alg, secret), msg)
                    .as_ref()
                    .to_vec()
            }
        }
    }

    /// The public JWK, with this `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        match self {
            Signer::Rsa(kp) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::P256(kp) | Signer::P384(kp) => {
                let point = kp.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                let crv = if size == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "kid": kid, "crv": crv,
                       "x": b64(&point[1..1 + size]), "y": b64(&point[1 + size..])})
            }
            Signer::Ed(kp) => {
                json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(kp.public_key().as_ref())})
            }
            Signer::Hmac(secret) => json!({"kty": "oct", "kid": kid, "k": b64(secret)}),
        }
    }

    /// A signed token with this header and payload (both raw JSON text).
    pub fn token_raw(&self, alg: Algorithm, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// A signed token: header `{alg, kid, typ: "JWT"}` plus `claims`.
    pub fn token(&self, kid: &str, claims: &Value) -> String {
        self.token_with(self.alg(), kid, claims)
    }

    pub fn token_with(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": format!("{alg:?}"), "kid": kid, "typ": "JWT"});
        self.token_raw(alg, &header.to_string(), &claims.to_string())
    }
}

/// Keys shared by all tests of a binary (RSA generation is the slow part).
pub fn rsa() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::rsa)
}

pub fn rsa2() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::rsa)
}

pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "api://echo";
pub const CLIENT: &str = "client-1";

/// Claims of a valid token for `CLIENT`.
pub fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "client_id": CLIENT,
           "exp": now() + 600, "iat": now() - 10, "scope": "read write"})
}

/// A store that counts lookups, so tests can prove a refused token never reached it.
#[derive(Clone, Default)]
pub struct CountingStore {
    pub store: tower_jwt_plan::InMemoryResolver,
    pub lookups: Arc<AtomicUsize>,
}

impl tower_jwt_plan::SubscriptionResolver for CountingStore {
    type Future =
        <tower_jwt_plan::InMemoryResolver as tower_jwt_plan::SubscriptionResolver>::Future;
    fn resolve(&self, q: tower_jwt_plan::SubscriptionQuery) -> Self::Future {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.store.resolve(q)
    }
}

impl CountingStore {
    pub fn with(subs: impl IntoIterator<Item = tower_jwt_plan::Subscription>) -> Self {
        Self { store: tower_jwt_plan::InMemoryResolver::new(subs), lookups: Arc::default() }
    }
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

/// API `echo` with one published plan, `gold`, under `settings`, and `CLIENT` subscribed to it
/// in an `InMemoryResolver` (a store that answers at once): finish with `.build()`.
pub fn gold_builder(
    settings: tower_jwt_plan::JwtSettings,
) -> tower_jwt_plan::JwtPlanLayerBuilder<tower_jwt_plan::InMemoryResolver> {
    tower_jwt_plan::JwtPlanLayer::builder("echo")
        .plan(tower_jwt_plan::Plan::jwt("gold", "Gold", settings))
        .resolver(tower_jwt_plan::InMemoryResolver::new([accepted("gold", CLIENT)]))
}

/// An accepted subscription of `client` to `plan` of the API `echo`.
pub fn accepted(plan: &str, client: &str) -> tower_jwt_plan::Subscription {
    tower_jwt_plan::Subscription::new(
        format!("sub-{plan}-{client}"),
        "echo",
        plan,
        "app-1",
        client,
        tower_jwt_plan::SubscriptionStatus::Accepted,
    )
}

/// What the JWKS server answers.
#[derive(Clone)]
pub enum Jwks {
    Keys(Value),
    Status(u16),
    Body(&'static str),
}

/// A real JWKS endpoint on 127.0.0.1, whose answer tests can change, counting its hits.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<JwksState>,
}

pub struct JwksState {
    answer: Mutex<Jwks>,
    hits: AtomicUsize,
    delay_ms: AtomicU64,
}

impl JwksServer {
    pub async fn start(answer: Jwks) -> Self {
        let state = Arc::new(JwksState {
            answer: Mutex::new(answer),
            hits: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn set(&self, answer: Jwks) {
        *self.state.answer.lock().unwrap() = answer;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> axum::response::Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let answer = state.answer.lock().unwrap().clone();
    match answer {
        Jwks::Keys(doc) => axum::Json(doc).into_response(),
        Jwks::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Jwks::Body(text) => text.into_response(),
    }
}

/// A cache of `server`'s keys allowing one on-demand fetch per 200 ms, loaded before returning.
pub async fn jwks_cache(server: &JwksServer) -> tower_jwt_plan::JwksCache {
    let cache = tower_jwt_plan::JwksCache::builder(server.url())
        .min_refetch_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(cache.wait_ready(Duration::from_secs(5)).await, "JWKS never loaded");
    cache
}

pub fn jwks_of(keys: &[(&Signer, &str)]) -> Value {
    json!({"keys": keys.iter().map(|(s, kid)| s.jwk(kid)).collect::<Vec<_>>()})
}

/// What the inner echo service saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub calls: Arc<AtomicUsize>,
    pub last: Arc<Mutex<Option<http::request::Parts>>>,
}

impl Seen {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn last(&self) -> http::request::Parts {
        self.last.lock().unwrap().clone().expect("inner service was called")
    }
}

/// A response as seen by a client.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub error: Option<tower_jwt_plan::AuthError>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub fn challenge(&self) -> Option<&str> {
        self.headers.get("www-authenticate").map(|v| v.to_str().unwrap())
    }
    pub fn reason(&self) -> Option<tower_jwt_plan::InvalidReason> {
        self.error.as_ref().and_then(|e| e.reason())
    }
}

/// Send one request through `layer` in front of an echo service; report what came back.
pub async fn send<R>(
    layer: &tower_jwt_plan::JwtPlanLayer<R>,
    seen: &Seen,
    req: Request<Full<Bytes>>,
) -> Answer
where
    R: tower_jwt_plan::SubscriptionResolver,
{
    let seen2 = seen.clone();
    let inner = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let seen = seen2.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            *seen.last.lock().unwrap() = Some(req.into_parts().0);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}"))))
        }
    });
    let svc = tower::ServiceBuilder::new().layer(layer.clone()).service(inner);
    let res = svc.oneshot(req).await.unwrap();
    let error = res.extensions().get::<tower_jwt_plan::AuthError>().cloned();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status: parts.status.as_u16(), headers: parts.headers, body, error }
}

pub fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/resource")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn no_token() -> Request<Full<Bytes>> {
    Request::builder().uri("/resource").body(Full::new(Bytes::new())).unwrap()
}
