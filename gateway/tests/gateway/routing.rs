//! Routing: longest context path on a segment boundary, 404 and 400 refusals, and the
//! layer's refusals in front of each API.

use tower_jwt_plan_gateway::demo::DemoKey;

use super::*;

#[tokio::test]
async fn routing_longest_prefix_on_segment_boundary_and_404() {
    let f = Fixture::start().await;
    let (app, base) = start_in_process(&f.write("gw.toml", &many_apis(&f))).await;
    let token = f.token("client-1");

    // (request path, upstream path, upstream query)
    let routed = [
        ("/echo", "/", None),
        ("/echo/", "/", None),
        ("/echo?x=1&y=2", "/", Some("x=1&y=2")),
        ("/echo/x/y?q=%20a", "/x/y", Some("q=%20a")),
        ("/echo/deeper", "/deeper", None),
        ("/echo/deep", "/deep-base", None),
        ("/echo/deep/z?q=1", "/deep-base/z", Some("q=1")),
    ];
    for (path, upstream_path, query) in routed {
        let reply = get(&format!("{base}{path}"), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
        let echo = reply.json();
        assert_eq!(echo["path"], upstream_path, "{path}");
        assert_eq!(echo["query"].as_str(), query, "{path}");
    }

    for path in ["/echoes", "/", "/ech", "/deep", "/echo%2Fx"] {
        let reply = get(&format!("{base}{path}"), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.code(), "NO_ROUTE", "{path}");
    }
    let reply = get(&format!("{base}/echo/../noauth"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "BAD_PATH");

    // Five plans, two JWKS URLs: one cache each.
    assert_eq!(app.jwks_urls().len(), 2, "{:?}", app.jwks_urls());
    assert!(app.jwks_urls().contains(&f.idp.jwks_url));
    assert_eq!(app.summary().apis, 5);
}

#[tokio::test]
async fn refusals_missing_invalid_unsubscribed_and_jwks_unavailable() {
    let f = Fixture::start().await;
    let (_app, base) = start_in_process(&f.write("gw.toml", &many_apis(&f))).await;
    let url = format!("{base}/echo/x");

    let missing = get(&url, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    assert_eq!(missing.code(), "JWT_MISSING_TOKEN");

    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let claims = |exp: u64| json!({"iss": f.idp.issuer, "aud": AUDIENCE, "sub": "u", "client_id": "client-1", "iat": now - 10, "exp": exp});
    // Same kid, other key: the signature does not verify.
    let forged =
        DemoKey::generate("demo-key-1").expect("key").sign(&claims(now + 600)).expect("sign");
    let expired = f.idp.key.sign(&claims(now - 3600)).expect("sign");
    for (what, token) in
        [("garbage", "not.a.token".to_owned()), ("foreign key", forged), ("expired", expired)]
    {
        let reply = get(&url, Some(&token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        let challenge = reply.headers["www-authenticate"].to_str().expect("ascii");
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{what}: {challenge}");
        assert_eq!(reply.code(), "JWT_INVALID_TOKEN", "{what}");
    }

    // A valid token of a client without a subscription.
    let reply = get(&url, Some(&f.token("client-2"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "GATEWAY_PLAN_UNRESOLVABLE");

    // The plan's IdP cannot be reached: an outage, never a pass.
    let reply = get(&format!("{base}/down/x"), Some(&f.token("client-1"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers["retry-after"], "5");
    assert_eq!(reply.code(), "JWKS_UNAVAILABLE");

    // And the valid case, for contrast.
    let reply = get(&url, Some(&f.token("client-1"))).await;
    assert_eq!(reply.status, StatusCode::OK);
}
