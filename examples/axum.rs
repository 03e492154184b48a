//! An axum router behind `JwtPlanLayer`, with a handler that reads the plan context and the
//! verified claims.
//!
//! Run with:
//!
//! ```sh
//! cargo run --example axum
//! ```
//!
//! It listens on 127.0.0.1:3000, uses an HMAC-signed demo plan (so it needs no identity
//! provider) and prints two curl lines: one with a valid token (200), one without (401).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Extension, Json, Router, routing::get};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan, PlanContext,
    Subscription, SubscriptionStatus, VerifiedClaims,
};

const SECRET: &[u8] = b"demo secret: never use a constant secret in production";

/// The app, built apart from `main` so it can be tested with `oneshot`.
fn app() -> Result<Router, tower_jwt_plan::ConfigError> {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET))
        .algorithms([Algorithm::HS256])
        .issuer("https://demo-idp.local")
        .claim_to_header("sub", "x-user-id");
    let subscriptions = InMemoryResolver::new([Subscription::new(
        "sub-1",
        "hello",
        "gold",
        "app-1",
        "demo-client",
        SubscriptionStatus::Accepted,
    )]);
    let layer = JwtPlanLayer::builder("hello")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(subscriptions)
        .build()?;
    Ok(Router::new().route("/hello", get(hello)).layer(layer))
}

async fn hello(
    Extension(ctx): Extension<PlanContext>,
    Extension(claims): Extension<VerifiedClaims>,
) -> Json<Value> {
    Json(json!({
        "hello": ctx.user(),
        "client_id": ctx.client_id(),
        "plan": ctx.plan_id(),
        "application": ctx.application_id(),
        "claims": claims.as_map(),
    }))
}

fn demo_token() -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = json!({
        "iss": "https://demo-idp.local", "sub": "demo-user", "client_id": "demo-client",
        "iat": now, "exp": now + 3600,
    });
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!("curl -H 'Authorization: Bearer {}' http://{addr}/hello", demo_token()?);
    println!("curl -i http://{addr}/hello");
    axum::serve(listener, app()?).await?;
    Ok(())
}
