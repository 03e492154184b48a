//! The layer inside real servers: an axum router and a tonic gRPC server, each on a real
//! listener on 127.0.0.1, called over real HTTP. If the layer stops fitting either framework's
//! bounds (Clone + Send + Sync, Send futures, infallible error), this file stops compiling.

mod common;

use std::time::Duration;

use axum::Extension;
use axum::routing::get;
use common::*;
use serde_json::{Value, json};
use tower_jwt_plan::*;

async fn layer() -> (JwksServer, JwtPlanLayer<InMemoryResolver>) {
    layer_with(|settings| settings).await
}

async fn layer_with(
    tune: impl FnOnce(JwtSettings) -> JwtSettings,
) -> (JwksServer, JwtPlanLayer<InMemoryResolver>) {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = JwksCache::builder(server.url()).build().unwrap();
    assert!(cache.wait_ready(Duration::from_secs(5)).await);
    let settings = tune(JwtSettings::new(KeySource::jwks(cache)).issuer(ISS).audience(AUD));
    let layer = gold_builder(settings).build().unwrap();
    (server, layer)
}

#[derive(serde::Deserialize)]
struct MyClaims {
    sub: String,
    scope: String,
}

async fn whoami(
    Extension(ctx): Extension<PlanContext>,
    Extension(claims): Extension<VerifiedClaims>,
) -> axum::Json<Value> {
    let mine: MyClaims = claims.deserialize().unwrap();
    axum::Json(json!({
        "plan": ctx.plan_id(), "app": ctx.application_id(), "client": ctx.client_id(),
        "subscription": ctx.subscription_id(), "sub": mine.sub, "scope": mine.scope,
    }))
}

#[tokio::test]
async fn axum_router_over_real_http() {
    let (_idp, layer) = layer().await;
    let app = axum::Router::new().route("/whoami", get(whoami)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/whoami");
    let res = client.get(&url).bearer_auth(rsa().token("k1", &claims())).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"plan": "gold", "app": "app-1", "client": CLIENT, "subscription": format!("sub-gold-{CLIENT}"),
               "sub": "alice", "scope": "read write"})
    );

    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "JWT_MISSING_TOKEN");

    let res =
        client.get(&url).bearer_auth("a.b.c").header("accept", "text/plain").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().starts_with("JWT_INVALID_TOKEN"));
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_extractors_with_the_feature() {
    let (_idp, layer) = layer().await;
    let app = axum::Router::new()
        .route(
            "/ctx",
            get(|ctx: PlanContext, claims: VerifiedClaims| async move {
                format!("{}:{}", ctx.plan_id(), claims.get_str("sub").unwrap_or(""))
            }),
        )
        .route("/unprotected", get(|ctx: PlanContext| async move { ctx.plan_id().to_owned() }));
    let protected = app.clone().layer(layer);
    let send = |app: axum::Router, uri: &str, token: Option<String>| {
        let mut req = http::Request::builder().uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        tower::ServiceExt::oneshot(app, req.body(axum::body::Body::empty()).unwrap())
    };
    let res = send(protected, "/ctx", Some(rsa().token("k1", &claims()))).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = send(app, "/unprotected", None).await.unwrap();
    assert_eq!(res.status(), 500, "a missing layer is a server error");
}

/// The extractors' rejections, as axum's own: a status, a client text, Display and Error; a
/// distinct rejection when the plan keeps its claims to itself; `Option<_>` never fails.
#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_rejections_and_optional_extractors() {
    use axum::extract::FromRequestParts;
    use http_body_util::BodyExt;

    let (mut parts, ()) = http::Request::new(()).into_parts();
    let missing = PlanContext::from_request_parts(&mut parts, &()).await.unwrap_err();
    assert_eq!(missing.status(), 500);
    assert_eq!(missing.to_string(), missing.body_text());
    assert!(missing.body_text().contains("PlanContext"), "{missing}");
    let as_error: &dyn std::error::Error = &missing;
    assert!(as_error.source().is_none());
    let no_layer = VerifiedClaims::from_request_parts(&mut parts, &()).await.unwrap_err();
    assert!(matches!(no_layer, VerifiedClaimsRejection::MissingPlanContext(_)), "{no_layer:?}");
    assert_eq!(no_layer.status(), 500);

    let (_idp, layer) = layer_with(|settings| settings.extract_claims(false)).await;
    let text = |res: http::Response<axum::body::Body>| async move {
        let status = res.status();
        (
            status,
            String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
                .unwrap(),
        )
    };
    let routes =
        axum::Router::new()
            .route(
                "/claims",
                get(|claims: VerifiedClaims| async move {
                    claims.get_str("sub").unwrap_or("").to_owned()
                }),
            )
            .route(
                "/maybe",
                get(|ctx: Option<PlanContext>, claims: Option<VerifiedClaims>| async move {
                    format!(
                        "{}:{}",
                        ctx.map_or("no context".into(), |c| c.plan_id().to_owned()),
                        claims.is_some()
                    )
                }),
            );
    let protected = routes.clone().layer(layer);
    let send = |app: axum::Router, uri: &str, token: Option<String>| {
        let mut req = http::Request::builder().uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        tower::ServiceExt::oneshot(app, req.body(axum::body::Body::empty()).unwrap())
    };
    let token = || Some(rsa().token("k1", &claims()));

    // Granted by a plan with extract_claims(false): a distinct 500, not "is the layer installed?".
    let (status, body) = text(send(protected.clone(), "/claims", token()).await.unwrap()).await;
    assert_eq!(status, 500);
    assert!(body.contains("extract_claims(false)"), "{body}");
    assert!(!body.contains("gold"), "the client text does not name the plan: {body}");
    assert_eq!(
        text(send(protected, "/maybe", token()).await.unwrap()).await,
        (http::StatusCode::OK, "gold:false".to_owned())
    );

    // No layer at all: the optional extractors give None, the required one the other rejection.
    assert_eq!(
        text(send(routes.clone(), "/maybe", None).await.unwrap()).await,
        (http::StatusCode::OK, "no context:false".to_owned())
    );
    let (status, body) = text(send(routes, "/claims", None).await.unwrap()).await;
    assert_eq!(status, 500);
    assert!(body.contains("is JwtPlanLayer installed?"), "{body}");
}

#[tokio::test]
async fn tonic_health_server_answers_grpc_status() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let (_idp, layer) = layer().await;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(incoming)
            .await
            .unwrap()
    });

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap();
    let mut client = HealthClient::new(channel.connect().await.unwrap());
    let status = client.check(HealthCheckRequest { service: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("bearer token is required"), "{}", status.message());

    let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
    req.metadata_mut().insert("authorization", "Bearer x.y.z".parse().unwrap());
    let status = client.check(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let mut stranger = claims();
    stranger["client_id"] = json!("stranger");
    let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
    let value = format!("Bearer {}", rsa().token("k1", &stranger));
    req.metadata_mut().insert("authorization", value.parse().unwrap());
    assert_eq!(client.check(req).await.unwrap_err().code(), tonic::Code::PermissionDenied);

    let mut req = tonic::Request::new(HealthCheckRequest { service: String::new() });
    let value = format!("Bearer {}", rsa().token("k1", &claims()));
    req.metadata_mut().insert("authorization", value.parse().unwrap());
    let res = client.check(req).await.unwrap().into_inner();
    assert_eq!(res.status, ServingStatus::Serving as i32);
}
