//! Protected-resource metadata (RFC 9728): the document served over real HTTP next to an API
//! protected by the layer, and `resource_metadata="<URL>"` added to the 401 challenges (and
//! only to those) when the layer is configured with it.

mod common;

use common::*;
use serde_json::{Value, json};
use tower_jwt_plan::*;

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

fn layer(metadata_url: Option<&str>) -> JwtPlanLayer<InMemoryResolver> {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET))
        .algorithms([Algorithm::HS256])
        .required_scopes(["admin"], ScopeMode::All);
    let mut builder = gold_builder(settings);
    if let Some(url) = metadata_url {
        builder = builder.resource_metadata(url);
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn document_served_at_the_well_known_location_beside_the_protected_api() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let metadata = ProtectedResourceMetadata::new(format!("{base}/echo"))
        .authorization_server("https://idp.test")
        .scope("read")
        .scope("admin");
    let well_known = metadata.well_known_url().unwrap();
    assert_eq!(well_known, format!("{base}/.well-known/oauth-protected-resource/echo"));
    let app = axum::Router::new()
        .route("/echo", axum::routing::get(|| async { "hello" }).layer(layer(Some(&well_known))))
        .route_service("/.well-known/oauth-protected-resource/echo", metadata.service());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    let doc = client.get(&well_known).send().await.unwrap();
    assert_eq!(doc.status(), 200);
    assert_eq!(doc.headers()["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(&doc.bytes().await.unwrap()).unwrap();
    assert_eq!(
        doc,
        json!({
            "resource": format!("{base}/echo"),
            "authorization_servers": ["https://idp.test"],
            "scopes_supported": ["read", "admin"],
            "bearer_methods_supported": ["header"],
        })
    );
    let post = client.post(&well_known).send().await.unwrap();
    assert_eq!(post.status(), 405);

    // The protected API points a client without a token to that document.
    let res = client.get(format!("{base}/echo")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!(r#"Bearer resource_metadata="{well_known}""#).as_str()
    );
}

#[tokio::test]
async fn only_401_challenges_carry_the_parameter() {
    let url = "https://api.example/.well-known/oauth-protected-resource/echo";
    let layer = layer(Some(url));
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer("not.a.token")).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.challenge(),
        Some(
            format!(
                r#"Bearer error="invalid_token", error_description="malformed token", resource_metadata="{url}""#
            )
            .as_str()
        )
    );
    // A valid token without the scope: 403, challenge unchanged.
    let token = Signer::hmac(SECRET).token("k", &claims());
    let res = send(&layer, &seen, bearer(&token)).await;
    assert_eq!((res.status, res.challenge()), (403, Some(r#"Bearer error="insufficient_scope""#)));

    // Without the setting, challenges are as before.
    let res = send(&self::layer(None), &seen, no_token()).await;
    assert_eq!(res.challenge(), Some("Bearer"));
}

#[test]
fn the_url_is_checked_at_build() {
    for bad in ["not a url", "ftp://x/y", "https://x/\"y"] {
        let settings =
            JwtSettings::new(KeySource::hmac_secret(SECRET)).algorithms([Algorithm::HS256]);
        let built = JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", settings))
            .resolver(InMemoryResolver::default())
            .resource_metadata(bad)
            .build();
        assert!(
            matches!(built, Err(ConfigError::InvalidSetting { name: "resource_metadata", .. })),
            "{bad}"
        );
    }
}
