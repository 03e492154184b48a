//! Reload: `Gateway::redeploy` in process, and SIGHUP on the process.

use tower_jwt_plan_gateway::config::parse_config;

use super::*;

#[tokio::test]
async fn redeploy_swaps_apis_plans_and_subscriptions_or_keeps_the_old_config() {
    let f = Fixture::start().await;
    let (app, base) = start_in_process(&f.write("gw.toml", &f.simple_config())).await;
    let one = f.token("client-1");
    let two = f.token("client-2");
    assert_eq!(get(&format!("{base}/other"), Some(&one)).await.status, 404);
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 403);

    // A new API, and a subscription for app-2.
    let grown = format!(
        "{}{}{}",
        f.simple_config(),
        f.api("other", "/other", "/o", &f.jwt_plan("bronze", "")),
        sub("sub-2", "echo", "gold", "app-2") + &sub("sub-3", "other", "bronze", "app-1"),
    );
    let summary = app.redeploy(&parse_config(&grown).expect("parses")).expect("valid");
    assert_eq!(summary.apis, 2);
    assert_eq!(summary.subscriptions, 3);
    // The JWKS cache (and its keys) survived the swap.
    assert!(app.wait_for_keys(Duration::ZERO).await);
    assert_eq!(app.jwks_urls(), std::slice::from_ref(&f.idp.jwks_url));
    let reply = get(&format!("{base}/other/p"), Some(&one)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["path"], "/o/p");
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 200);

    // A keyless published plan: refused whole; the previous config keeps serving.
    let keyless = grown.replacen(
        "[[api.plan]]",
        "[[api.plan]]\nid = \"open\"\nsecurity = \"keyless\"\nstatus = \"published\"\n\n[[api.plan]]",
        1,
    );
    let err = app.redeploy(&parse_config(&keyless).expect("parses")).expect_err("refused");
    assert!(err.contains("keyless"), "{err}");
    assert_eq!(app.summary(), summary);
    assert_eq!(get(&format!("{base}/other/p"), Some(&one)).await.status, 200);
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 200);
    assert_eq!(get(&format!("{base}/echo"), None).await.status, 401);

    // Back to the small file: the API and the subscription are gone.
    app.redeploy(&parse_config(&f.simple_config()).expect("parses")).expect("valid");
    assert_eq!(get(&format!("{base}/other/p"), Some(&one)).await.status, 404);
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 403);
}

#[tokio::test]
async fn sighup_reloads_a_good_file_and_keeps_serving_on_a_bad_one() {
    let f = Fixture::start().await;
    let path = f.write("gw.toml", &f.simple_config());
    let mut gw = GatewayProcess::spawn(&["--config", path.to_str().expect("utf-8")]).await;
    let base = gw.base.clone();
    let (one, two) = (f.token("client-1"), f.token("client-2"));

    assert_eq!(get(&format!("{base}/echo"), Some(&one)).await.status, 200);
    let reply = get(&format!("{base}/echo"), Some(&two)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.code(), "GATEWAY_PLAN_UNRESOLVABLE");
    assert_eq!(get(&format!("{base}/other"), Some(&one)).await.status, 404);

    // Good file: app-2 is now subscribed, and a new API appears.
    let grown = format!(
        "{}{}{}{}",
        f.simple_config(),
        f.api("other", "/other", "", &f.jwt_plan("bronze", "")),
        sub("sub-2", "echo", "gold", "app-2"),
        sub("sub-3", "other", "bronze", "app-1"),
    );
    f.write("gw.toml", &grown);
    let seen = gw.lines(Stream::Err).len();
    gw.signal("HUP");
    gw.wait_for(Stream::Err, seen, |l| l.contains("configuration reloaded")).await;
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 200);
    assert_eq!(get(&format!("{base}/other"), Some(&one)).await.status, 200);

    // Bad file: a keyless published plan. Refused; the previous config keeps serving.
    f.write(
        "gw.toml",
        &grown.replacen(
            "[[api.plan]]",
            "[[api.plan]]\nid = \"open\"\nsecurity = \"keyless\"\nstatus = \"published\"\n\n[[api.plan]]",
            1,
        ),
    );
    let seen = gw.lines(Stream::Err).len();
    gw.signal("HUP");
    let line = gw.wait_for(Stream::Err, seen, |l| l.contains("configuration reload refused")).await;
    assert!(line.contains("keyless"), "{line}");
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 200);
    assert_eq!(get(&format!("{base}/other"), Some(&one)).await.status, 200);
    assert_eq!(get(&format!("{base}/echo"), None).await.status, 401);

    // A file that does not parse: same.
    f.write("gw.toml", "this is not toml");
    let seen = gw.lines(Stream::Err).len();
    gw.signal("HUP");
    gw.wait_for(Stream::Err, seen, |l| l.contains("configuration reload refused")).await;
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 200);

    gw.signal("TERM");
    assert!(gw.wait_exit().await.success());
}
