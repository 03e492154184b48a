//! Revocation lists against a real list server on 127.0.0.1: fail closed before the first
//! load, a listed `jti` refused (also a token already in the token cache, right after the
//! refresh that lists it), a token without `jti` refused, and a failed refresh keeping the
//! last list.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::*;
use serde_json::json;
use tower_jwt_plan::*;

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

/// A revocation list endpoint whose answer (status, body) tests change.
struct ListServer {
    url: String,
    answer: Arc<Mutex<(u16, String)>>,
}

impl ListServer {
    async fn start(status: u16, body: &str) -> Self {
        let answer = Arc::new(Mutex::new((status, body.to_owned())));
        let app = axum::Router::new()
            .route("/revoked", axum::routing::get(serve))
            .with_state(answer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/revoked", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, answer }
    }

    fn set(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }
}

async fn serve(State(answer): State<Arc<Mutex<(u16, String)>>>) -> axum::response::Response {
    let (status, body) = answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

fn list(server: &ListServer) -> RevocationList {
    RevocationList::builder(&server.url)
        .refresh_interval(Duration::from_millis(150))
        .fetch_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn layer(list: &RevocationList, store: &CountingStore) -> JwtPlanLayer<CountingStore> {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET))
        .algorithms([Algorithm::HS256])
        .revocation_list(list.clone());
    JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(store.clone())
        .build()
        .unwrap()
}

fn token(jti: Option<&str>) -> String {
    let mut claims = claims();
    if let Some(jti) = jti {
        claims["jti"] = json!(jti);
    }
    Signer::hmac(SECRET).token("k", &claims)
}

#[tokio::test]
async fn fails_closed_until_a_first_list_is_loaded() {
    let server = ListServer::start(500, "").await;
    let list = list(&server);
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer(&list, &store);
    let seen = Seen::default();
    assert!(!list.wait_for_fetch(Duration::from_secs(2)).await);
    let res = send(&layer, &seen, bearer(&token(Some("t-1")))).await;
    assert_eq!((res.status, res.code()), (503, "JWT_REVOCATION_UNAVAILABLE"));
    assert_eq!(res.headers.get("retry-after").unwrap(), "5");
    assert_eq!((seen.calls(), store.lookups()), (0, 0));

    // A first list arrives: the same token passes.
    server.set(200, "other\n");
    assert!(list.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(send(&layer, &seen, bearer(&token(Some("t-1")))).await.status, 200);
}

#[tokio::test]
async fn listed_tokens_and_tokens_without_jti_are_refused() {
    let server = ListServer::start(200, r#"{"revoked": ["t-bad"]}"#).await;
    let list = list(&server);
    assert!(list.wait_ready(Duration::from_secs(5)).await);
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer(&list, &store);
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer(&token(Some("t-bad")))).await;
    assert_eq!((res.status, res.code()), (401, "JWT_INVALID_TOKEN"));
    assert_eq!(res.reason(), Some(InvalidReason::Revoked));
    assert!(res.challenge().unwrap().contains("token revoked"));
    let res = send(&layer, &seen, bearer(&token(None))).await;
    assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::MissingClaim)));
    assert_eq!(store.lookups(), 0, "refused tokens never reach the store");
    assert_eq!(send(&layer, &seen, bearer(&token(Some("t-good")))).await.status, 200);
}

#[tokio::test]
async fn a_cached_token_is_refused_right_after_the_refresh_that_lists_it() {
    let server = ListServer::start(200, "").await;
    let list = list(&server);
    assert!(list.wait_ready(Duration::from_secs(5)).await);
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer(&list, &store);
    let seen = Seen::default();
    let t = token(Some("t-1"));
    assert_eq!(send(&layer, &seen, bearer(&t)).await.status, 200);
    assert_eq!(send(&layer, &seen, bearer(&t)).await.status, 200);
    assert_eq!(layer.cached_tokens(), 1, "the token is served from the token cache");

    server.set(200, "# revoked today\nt-1\n");
    assert!(list.wait_for_fetch(Duration::from_secs(2)).await);
    assert_eq!(list.is_revoked("t-1"), Some(true));
    let res = send(&layer, &seen, bearer(&t)).await;
    assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::Revoked)));
    assert_eq!(seen.calls(), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_list() {
    let server = ListServer::start(200, "[\"t-bad\"]").await;
    let list = list(&server);
    assert!(list.wait_ready(Duration::from_secs(5)).await);
    let layer = layer(&list, &CountingStore::with([accepted("gold", CLIENT)]));
    let seen = Seen::default();
    for (status, body) in [(500, ""), (200, "[1, 2]"), (200, "{\"revoked\": \"x\"}")] {
        server.set(status, body);
        let failures = list.stats().failures;
        assert!(list.wait_for_fetch(Duration::from_secs(2)).await);
        assert!(list.stats().failures > failures, "{status} {body}: counted as failed");
        assert_eq!(list.stats().entries, 1);
        let res = send(&layer, &seen, bearer(&token(Some("t-bad")))).await;
        assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::Revoked)));
        assert_eq!(send(&layer, &seen, bearer(&token(Some("t-ok")))).await.status, 200);
    }
}
