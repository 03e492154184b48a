//! The plan keys of issue 14 through the gateway: `oidc_issuer` (discovery against a real
//! issuer), `revocation_list_url` (a real list server) and `confirmation`, plus their schema
//! errors.

use std::time::{SystemTime, UNIX_EPOCH};

use tower_jwt_plan_gateway::compile::check_config;
use tower_jwt_plan_gateway::config::parse_config;

use super::*;

/// An issuer on loopback whose metadata points at the fixture IdP's JWKS. The issuer is
/// `http://<Host>`, so the document names the address it is reached at.
async fn discovery_issuer(jwks_url: String) -> String {
    let router = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move |headers: HeaderMap| {
            let jwks_url = jwks_url.clone();
            async move {
                let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
                axum::Json(json!({ "issuer": format!("http://{host}"), "jwks_uri": jwks_url }))
            }
        }),
    );
    let addr = serve_router(router).await.expect("issuer starts");
    format!("http://{addr}")
}

/// A revocation list server answering `revoked`.
async fn list_server(revoked: &'static str) -> String {
    let router =
        axum::Router::new().route("/revoked", axum::routing::get(move || async move { revoked }));
    let addr = serve_router(router).await.expect("list server starts");
    format!("http://{addr}/revoked")
}

/// A token of `iss` signed by the fixture IdP's key, with a `jti`.
fn token_with(f: &Fixture, iss: &str, jti: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    f.idp
        .key
        .sign(&json!({
            "iss": iss, "aud": AUDIENCE, "sub": "user-1", "client_id": "client-1",
            "iat": now, "exp": now + 600, "jti": jti,
        }))
        .expect("token")
}

#[tokio::test]
async fn oidc_issuer_and_revocation_list_through_the_gateway() {
    let f = Fixture::start().await;
    let issuer = discovery_issuer(f.idp.jwks_url.clone()).await;
    let list = list_server("# revoked\njti-revoked\n").await;
    let plan = format!(
        "[[api.plan]]\nid = \"gold\"\nsecurity = \"jwt\"\nstatus = \"published\"\n\
         algorithms = [\"ES256\"]\noidc_issuer = \"{issuer}\"\naudience = \"{AUDIENCE}\"\n\
         revocation_list_url = \"{list}\"\nconfirmation = \"off\"\n"
    );
    let text = format!(
        "{}{}{}",
        f.api("echo", "/echo", "", &plan),
        app("app-1", "client-1"),
        sub("sub-1", "echo", "gold", "app-1")
    );
    let (gateway, base) = start_in_process(&f.write("oidc.toml", &text)).await;
    assert!(gateway.wait_for_keys(PROCESS).await, "keys found through discovery");
    let url = format!("{base}/echo/x");

    // The list may still be loading: fail closed (503) until it is, then serve.
    let good = token_with(&f, &issuer, "jti-good");
    let deadline = Instant::now() + PROCESS;
    loop {
        let reply = get(&url, Some(&good)).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", reply.body);
        assert_eq!(reply.code(), "JWT_REVOCATION_UNAVAILABLE");
        assert!(Instant::now() < deadline, "the revocation list never loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revoked = get(&url, Some(&token_with(&f, &issuer, "jti-revoked"))).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.code(), "JWT_INVALID_TOKEN");
    // The issuer defaults to the discovered one: the IdP's own `iss` is another issuer.
    let other_iss = get(&url, Some(&token_with(&f, &f.idp.issuer, "jti-good"))).await;
    assert_eq!(other_iss.status, StatusCode::UNAUTHORIZED, "{:?}", other_iss.body);
}

#[test]
fn new_plan_keys_schema() {
    let base = "[[api]]\nid = \"a\"\ncontext_path = \"/a\"\nbackend = \"http://127.0.0.1:1\"\n\
                [[api.plan]]\nid = \"p\"\nsecurity = \"jwt\"\nstatus = \"published\"\n";
    let check = |extra: &str| {
        parse_config(&format!("{base}{extra}")).and_then(|config| check_config(&config))
    };
    check(
        "oidc_issuer = \"https://idp.example\"\nrevocation_list_url = \"https://idp.example/r\"\n\
         confirmation = \"required\"\n",
    )
    .expect("valid");
    check("jwks_url = \"https://idp.example/j\"\nconfirmation = \"optional\"\n").expect("valid");
    let both =
        check("oidc_issuer = \"https://idp.example\"\njwks_url = \"https://idp.example/j\"\n")
            .expect_err("two key sources");
    assert!(both.contains("exactly one of") && both.contains("`oidc_issuer`"), "{both}");
    let scheme = check("oidc_issuer = \"ftp://idp.example\"\n").expect_err("bad issuer");
    assert!(scheme.contains("oidc_issuer"), "{scheme}");
    let list = check(
        "jwks_url = \"https://idp.example/j\"\nrevocation_list_url = \"http://idp.example/r\"\n",
    )
    .expect_err("plain http list off loopback");
    assert!(list.contains("revocation_list_url"), "{list}");
    let mode = check("jwks_url = \"https://idp.example/j\"\nconfirmation = \"maybe\"\n")
        .expect_err("unknown mode");
    assert!(mode.contains("unknown variant `maybe`"), "{mode}");
    let keyless = parse_config(&format!(
        "{}confirmation = \"required\"\n",
        base.replace("\"jwt\"", "\"keyless\"").replace("\"published\"", "\"staging\"")
    ))
    .and_then(|config| check_config(&config))
    .expect_err("keyless");
    assert!(keyless.contains("`confirmation` does not apply to a keyless plan"), "{keyless}");
}

#[tokio::test]
async fn protected_resource_metadata_through_the_binary() {
    let f = Fixture::start().await;
    let metadata = format!(
        "resource_metadata = {{ resource = \"https://api.example/echo\", authorization_servers = [\"{}\"], scopes_supported = [\"read\"] }}\n",
        f.idp.issuer
    );
    let api = f.api("echo", "/echo", "", &f.jwt_plan("gold", "")).replacen(
        "\n\n",
        &format!("\n{metadata}\n"),
        1,
    );
    let text =
        [api, f.api("root", "/", "", &f.jwt_plan("gold", "")), app("app-1", "client-1")].concat();
    let config = f.write("metadata.toml", &text);
    let gateway = GatewayProcess::spawn(&["--config", config.to_str().expect("utf-8")]).await;

    // The document, without a token, even with an API at `/`.
    let doc =
        get(&format!("{}/.well-known/oauth-protected-resource/echo", gateway.base), None).await;
    assert_eq!(doc.status, StatusCode::OK, "{:?}", doc.body);
    assert_eq!(doc.headers["content-type"], "application/json");
    assert_eq!(
        doc.json(),
        json!({
            "resource": "https://api.example/echo",
            "authorization_servers": [f.idp.issuer],
            "scopes_supported": ["read"],
            "bearer_methods_supported": ["header"],
        })
    );
    // 401 challenges point to it.
    let refused = get(&format!("{}/echo/x", gateway.base), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let challenge = refused.headers["www-authenticate"].to_str().expect("ascii");
    assert!(
        challenge.contains(
            "resource_metadata=\"https://api.example/.well-known/oauth-protected-resource/echo\""
        ),
        "{challenge}"
    );
    // An API without the table: no document (the `/` API answers), no parameter.
    let other = get(&format!("{}/x", gateway.base), None).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    let plain = other.headers["www-authenticate"].to_str().expect("ascii");
    assert!(!plain.contains("resource_metadata"), "{plain}");
}

#[test]
fn resource_metadata_schema() {
    let api = |table: &str| {
        format!(
            "[[api]]\nid = \"a\"\ncontext_path = \"/a\"\nbackend = \"http://127.0.0.1:1\"\n\
             resource_metadata = {table}\n"
        )
    };
    let check = |text: &str| parse_config(text).and_then(|config| check_config(&config));
    check(&api("{ resource = \"https://api.example/a/\" }")).expect("valid");
    let path = check(&api("{ resource = \"https://api.example/b\" }")).expect_err("other path");
    assert!(path.contains("must be the context path"), "{path}");
    let scheme = check(&api("{ resource = \"urn:x\" }")).expect_err("not https");
    assert!(scheme.contains("resource_metadata"), "{scheme}");
    let unknown = check(&api("{ resource = \"https://api.example/a\", colour = 1 }"))
        .expect_err("unknown key");
    assert!(unknown.contains("unknown field `colour`"), "{unknown}");
}
