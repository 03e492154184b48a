//! The no-argument demo, as a process.

use super::*;

#[tokio::test]
async fn demo_without_arguments_prints_working_curl_lines() {
    let mut gw = GatewayProcess::spawn(&[]).await;
    let with_token =
        gw.wait_for(Stream::Out, 0, |l| l.starts_with("curl -i -H 'Authorization: Bearer ")).await;
    let without = gw.wait_for(Stream::Out, 0, |l| l.starts_with("curl -i 'http")).await;
    let token = with_token
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("token in the curl line")
        .to_owned();
    let quoted_url =
        |line: &str| line.rsplit('\'').nth(1).expect("quoted URL at the end").to_owned();
    let url = quoted_url(&with_token);
    assert_eq!(url, quoted_url(&without));
    assert!(url.starts_with(&format!("{}/echo/", gw.base)), "{url}");

    let reply = get(&url, Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let echo = reply.json();
    assert_eq!(echo["path"], "/hello");
    assert_eq!(echo["headers"]["x-user-id"], "demo-user");

    let reply = get(&url, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "JWT_MISSING_TOKEN");

    // One access-log line per request, with plan and client, never the token.
    let access = gw
        .wait_for(Stream::Err, 0, |l| l.contains("gateway::access") && l.contains("status=200"))
        .await;
    assert!(
        access.contains("plan=\"gold\"") && access.contains("client_id=\"demo-client\""),
        "{access}"
    );
    gw.wait_for(Stream::Err, 0, |l| {
        l.contains("gateway::access") && l.contains("JWT_MISSING_TOKEN")
    })
    .await;
    assert!(!gw.lines(Stream::Err).iter().any(|l| l.contains(&token)));

    gw.signal("INT");
    assert!(gw.wait_exit().await.success());
}

/// The load script's baseline: the demo (DB mode) with `--benchmark-without-plans` serves
/// without the layer, and says so at WARN; without the flag the same request is refused.
#[tokio::test]
async fn demo_benchmark_without_plans_bypasses_the_layer() {
    let mut gw = GatewayProcess::spawn(&["--benchmark-without-plans"]).await;
    let without = gw.wait_for(Stream::Out, 0, |l| l.starts_with("curl -i 'http")).await;
    let url = without.rsplit('\'').nth(1).expect("quoted URL at the end").to_owned();
    let reply = get(&url, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.json()["path"], "/hello");
    gw.wait_for(Stream::Err, 0, |l| l.contains("WARN") && l.contains("WITHOUT authentication"))
        .await;
    gw.signal("INT");
    assert!(gw.wait_exit().await.success());
}
