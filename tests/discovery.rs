//! OpenID Connect discovery against a real issuer on 127.0.0.1: the metadata document, the
//! RFC 8414 fallback, an issuer mismatch refused, a moved `jwks_uri` followed, and faults in
//! the document survived like JWKS faults (the last good keys keep serving).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::*;
use serde_json::{Value, json};
use tower_jwt_plan::*;

/// What the issuer's OpenID Connect metadata location answers.
#[derive(Clone)]
enum Doc {
    /// A document naming this issuer and this JWKS path on the same server.
    Good {
        issuer_suffix: &'static str,
        jwks: &'static str,
    },
    Status(u16),
    Garbage,
}

struct IssuerState {
    base: Mutex<String>,
    oidc: Mutex<Doc>,
    /// RFC 8414's location: `None` answers 404.
    oauth: Mutex<Option<Doc>>,
    jwks: Mutex<Vec<(&'static str, Value)>>,
    doc_hits: AtomicUsize,
}

#[derive(Clone)]
struct Issuer {
    url: String,
    state: Arc<IssuerState>,
}

impl Issuer {
    async fn start(oidc: Doc) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IssuerState {
            base: Mutex::new(url.clone()),
            oidc: Mutex::new(oidc),
            oauth: Mutex::new(None),
            jwks: Mutex::new(vec![
                ("/keys-a", jwks_of(&[(rsa(), "a")])),
                ("/keys-b", jwks_of(&[(rsa2(), "b")])),
            ]),
            doc_hits: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", axum::routing::get(oidc_doc))
            .route("/.well-known/oauth-authorization-server", axum::routing::get(oauth_doc))
            .route("/{keys}", axum::routing::get(keys))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn set(&self, doc: Doc) {
        *self.state.oidc.lock().unwrap() = doc;
    }
}

fn render(state: &IssuerState, doc: Doc) -> axum::response::Response {
    state.doc_hits.fetch_add(1, Ordering::SeqCst);
    let base = state.base.lock().unwrap().clone();
    match doc {
        Doc::Good { issuer_suffix, jwks } => axum::Json(json!({
            "issuer": format!("{base}{issuer_suffix}"),
            "jwks_uri": format!("{base}{jwks}"),
            "authorization_endpoint": format!("{base}/authorize"),
            "response_types_supported": ["code"],
        }))
        .into_response(),
        Doc::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Doc::Garbage => "<html>not json</html>".into_response(),
    }
}

async fn oidc_doc(State(state): State<Arc<IssuerState>>) -> axum::response::Response {
    let doc = state.oidc.lock().unwrap().clone();
    render(&state, doc)
}

async fn oauth_doc(State(state): State<Arc<IssuerState>>) -> axum::response::Response {
    match state.oauth.lock().unwrap().clone() {
        Some(doc) => render(&state, doc),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn keys(
    State(state): State<Arc<IssuerState>>,
    Path(path): Path<String>,
) -> axum::response::Response {
    let path = format!("/{path}");
    let found = state.jwks.lock().unwrap().iter().find(|(p, _)| *p == path).map(|(_, v)| v.clone());
    match found {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn cache(issuer: &str) -> JwksCache {
    JwksCache::from_issuer(issuer)
        .min_refetch_interval(Duration::from_millis(200))
        .fetch_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn layer(cache: &JwksCache) -> JwtPlanLayer<InMemoryResolver> {
    let settings = JwtSettings::new(KeySource::jwks(cache.clone())).audience(AUD);
    gold_builder(settings).build().unwrap()
}

fn token(signer: &Signer, kid: &str, iss: &str) -> String {
    let mut claims = claims();
    claims["iss"] = json!(iss);
    signer.token(kid, &claims)
}

#[tokio::test]
async fn keys_found_through_the_issuer_and_its_issuer_checked_by_default() {
    let idp = Issuer::start(Doc::Good { issuer_suffix: "", jwks: "/keys-a" }).await;
    let cache = cache(&idp.url);
    assert!(cache.wait_ready(Duration::from_secs(5)).await, "discovery never loaded keys");
    assert_eq!(cache.issuer(), Some(idp.url.as_str()));
    assert_eq!(cache.jwks_uri(), Some(format!("{}/keys-a", idp.url)));
    assert_eq!(cache.url(), format!("{}/.well-known/openid-configuration", idp.url));

    let layer = layer(&cache);
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer(&token(rsa(), "a", &idp.url))).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    // The plan's issuer check defaults to the discovered issuer: another issuer's token,
    // even signed with the right key, is not served.
    let res = send(&layer, &seen, bearer(&token(rsa(), "a", "https://other.example"))).await;
    assert_eq!((res.status, res.code()), (401, "JWT_INVALID_TOKEN"));
    assert_eq!(res.reason(), Some(InvalidReason::NoMatchingPlan));
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn issuer_mismatch_is_refused_and_no_key_is_taken() {
    // The document names the issuer with a trailing slash: not the configured issuer.
    let idp = Issuer::start(Doc::Good { issuer_suffix: "/", jwks: "/keys-a" }).await;
    let cache = cache(&idp.url);
    assert!(!cache.wait_ready(Duration::from_millis(800)).await);
    assert!(cache.stats().failures >= 1);
    assert_eq!(cache.jwks_uri(), None);
    let layer = layer(&cache);
    let res = send(&layer, &Seen::default(), bearer(&token(rsa(), "a", &idp.url))).await;
    assert_eq!((res.status, res.code()), (503, "JWKS_UNAVAILABLE"));
}

#[tokio::test]
async fn rfc8414_location_is_the_fallback_after_a_4xx() {
    let idp = Issuer::start(Doc::Status(404)).await;
    *idp.state.oauth.lock().unwrap() = Some(Doc::Good { issuer_suffix: "", jwks: "/keys-b" });
    let cache = cache(&idp.url);
    assert!(cache.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(cache.jwks_uri(), Some(format!("{}/keys-b", idp.url)));
    let res = send(&layer(&cache), &Seen::default(), bearer(&token(rsa2(), "b", &idp.url))).await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn a_moved_jwks_uri_is_followed_on_the_next_fetch() {
    let idp = Issuer::start(Doc::Good { issuer_suffix: "", jwks: "/keys-a" }).await;
    let cache = cache(&idp.url);
    assert!(cache.wait_ready(Duration::from_secs(5)).await);
    let layer = layer(&cache);
    let seen = Seen::default();
    assert_eq!(send(&layer, &seen, bearer(&token(rsa(), "a", &idp.url))).await.status, 200);

    // The IdP moves its keys; a token with the new kid makes the cache fetch again.
    idp.set(Doc::Good { issuer_suffix: "", jwks: "/keys-b" });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let res = send(&layer, &seen, bearer(&token(rsa2(), "b", &idp.url))).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(cache.jwks_uri(), Some(format!("{}/keys-b", idp.url)));
    assert_eq!(cache.key_ids(), ["b"]);
}

#[tokio::test]
async fn document_faults_keep_the_last_good_keys() {
    let idp = Issuer::start(Doc::Good { issuer_suffix: "", jwks: "/keys-a" }).await;
    let cache = cache(&idp.url);
    assert!(cache.wait_ready(Duration::from_secs(5)).await);
    let layer = layer(&cache);
    let seen = Seen::default();
    for fault in [
        Doc::Status(500),
        Doc::Garbage,
        Doc::Good { issuer_suffix: "/evil", jwks: "/keys-b" },
        Doc::Good { issuer_suffix: "", jwks: "/missing" },
    ] {
        idp.set(fault);
        let failures = cache.stats().failures;
        let hits = idp.state.doc_hits.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(250)).await;
        // An unknown kid forces a refetch, which fails: that token is refused ...
        let res = send(&layer, &seen, bearer(&token(rsa2(), "b", &idp.url))).await;
        assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::UnknownKey)));
        assert!(idp.state.doc_hits.load(Ordering::SeqCst) > hits, "the document was re-read");
        assert!(cache.stats().failures > failures, "the fetch counted as failed");
        // ... and the cached key keeps serving.
        let res = send(&layer, &seen, bearer(&token(rsa(), "a", &idp.url))).await;
        assert_eq!(res.status, 200);
        assert_eq!(cache.key_ids(), ["a"]);
    }
}

#[test]
fn issuer_urls_follow_the_jwks_rules() {
    let err = |u: &str| JwksCache::from_issuer(u).build_with_worker().err();
    assert!(matches!(err("http://idp.example"), Some(ConfigError::InvalidJwksUrl { .. })));
    assert!(matches!(
        err("https://idp.example/?tenant=1"),
        Some(ConfigError::InvalidJwksUrl { .. })
    ));
    assert!(err("https://idp.example/realms/a").is_none());
}
