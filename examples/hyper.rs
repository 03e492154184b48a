//! A plain hyper 1 server whose tower service is wrapped in `JwtPlanLayer`.
//!
//! Run with:
//!
//! ```sh
//! cargo run --example hyper
//! ```
//!
//! It listens on 127.0.0.1:3001 and prints a curl line with a valid demo token. The plan uses a
//! static Ed25519 public key generated at start (a stand-in for a key you would load from PEM).

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::{EncodingKey, Header, encode};
use tower::ServiceBuilder;
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan, PlanContext,
    Subscription, SubscriptionStatus,
};

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = req.extensions().get::<PlanContext>().map(|c| c.client_id().to_owned());
    let text = format!("hello {}\n", who.unwrap_or_default());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = Ed25519KeyPair::generate()?;
    let spki = key.public_key().as_der()?;
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(spki.as_ref())
    );
    let settings = JwtSettings::new(KeySource::public_key_pem(pem)?).algorithms([Algorithm::EdDSA]);
    let layer = JwtPlanLayer::builder("hello")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(InMemoryResolver::new([Subscription::new(
            "sub-1",
            "hello",
            "gold",
            "app-1",
            "demo-client",
            SubscriptionStatus::Accepted,
        )]))
        .build()?;
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims =
        serde_json::json!({"client_id": "demo-client", "sub": "demo-user", "exp": now + 3600});
    let pkcs8 = key.to_pkcs8()?;
    let token =
        encode(&Header::new(Algorithm::EdDSA), &claims, &EncodingKey::from_ed_der(pkcs8.as_ref()))?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!("curl -H 'Authorization: Bearer {token}' http://{addr}/");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let conn = auto::Builder::new(TokioExecutor::new());
            if let Err(err) = conn.serve_connection(TokioIo::new(stream), service).await {
                eprintln!("connection error: {err}");
            }
        });
    }
}
