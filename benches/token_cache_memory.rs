//! Resident memory of the verified-token cache: fills a default-size cache through real
//! requests with distinct, realistic tokens and reports the growth of the resident set.
//!
//! Run with `cargo bench --bench token_cache_memory` (Linux: reads `/proc/self/statm`).

use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::json;
use tower::{Layer, Service, service_fn};
use tower_jwt_plan::defaults::DEFAULT_TOKEN_CACHE_ENTRIES;
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan, Subscription,
    SubscriptionStatus,
};

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let secret = [9u8; 32];
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let n = DEFAULT_TOKEN_CACHE_ENTRIES as usize;
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}).to_string());
    let tokens: Vec<HeaderValue> = (0..n)
        .map(|i| {
            // A typical access token: ~10 claims, ~700 bytes once encoded.
            let claims = json!({
                "iss": "https://login.example.com/realms/production", "aud": ["api://echo", "account"],
                "sub": format!("f1c3a9d2-4b7e-4c1a-9f3e-{i:012}"), "client_id": "web-portal",
                "azp": "web-portal", "exp": now + 3600, "iat": now, "nbf": now,
                "jti": format!("9b2e6c1d-{i:08}-4a5f-8e7d-3c2b1a0f9e8d"),
                "scope": "openid profile email orders:read orders:write",
                "email": format!("user{i}@example.com"), "name": "Example User",
            });
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
            let sig = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()));
            HeaderValue::from_str(&format!("Bearer {input}.{sig}")).unwrap()
        })
        .collect();
    let token_bytes: usize = tokens.iter().map(|t| t.len() - 7).sum();

    let settings = JwtSettings::new(KeySource::hmac_secret(secret)).algorithms([Algorithm::HS256]);
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(InMemoryResolver::new([Subscription::new(
            "s",
            "echo",
            "gold",
            "app",
            "web-portal",
            SubscriptionStatus::Accepted,
        )]))
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|_req: Request<()>| {
        ready(Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new())))
    }));

    let before = resident_bytes();
    for auth in &tokens {
        let mut req = Request::new(());
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
        let fut = pin!(svc.call(req));
        match fut.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
            _ => panic!("request did not complete"),
        }
    }
    let cached = layer.cached_tokens();
    let after = resident_bytes();
    println!("tokens cached: {cached} (average token {} bytes)", token_bytes / n);
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        println!(
            "resident growth for a full default-size cache: {:.1} MiB",
            grown as f64 / 1048576.0
        );
        println!("resident bytes per cached token: {}", grown / cached.max(1));
    }
}
