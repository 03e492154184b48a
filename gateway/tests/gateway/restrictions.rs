//! Plan restrictions in the gateway: `PlanLimitLayer` inside each API's `JwtPlanLayer`, from
//! the catalog (DB mode, through the management API) and from `[api.plan.restrictions]` (file
//! mode), with counters shared through Redis by `--rate-limit-store` (with
//! `TJP_TEST_REDIS_URL`, else skipped with a visible line).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::admin::*;
use super::*;

async fn statuses(url: &str, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(url, Some(token)).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn db_mode_enforces_the_deployed_restrictions() {
    let f = Fixture::start().await;
    let m = Managed::start(&format!("sqlite:{}", f.dir.0.join("limits.db").display())).await;
    let backend = format!("http://{}", f.upstream);
    m.expect(
        201,
        "POST",
        "/apis",
        Some(json!({"id": "echo", "name": "Echo", "context_path": "/echo", "backend": backend})),
    )
    .await;
    let mut gold = gold_plan(&f, "gold", "auto");
    gold["restrictions"] = json!({"rate_limit": {"limit": 3, "period_secs": 3600}});
    let plan = m.expect(201, "POST", "/apis/echo/plans", Some(gold.clone())).await;
    assert_eq!(plan["restrictions"]["rate_limit"]["limit"], 3);
    let mut bad = gold_plan(&f, "bad", "auto");
    bad["restrictions"] = json!({"rate_limit": {"limit": 0, "period_secs": 60}});
    let msg = m.refuse(400, "INVALID_REQUEST", "POST", "/apis/echo/plans", Some(bad)).await;
    assert!(msg.starts_with("restrictions"), "{msg}");
    m.expect(200, "POST", "/apis/echo/plans/gold/_publish", None).await;
    m.expect(202, "POST", "/apis/echo/deployments", None).await;
    m.expect(
        201,
        "POST",
        "/applications",
        Some(json!({"id": "app-1", "name": "A", "client_id": "client-1"})),
    )
    .await;
    m.expect(
        201,
        "POST",
        "/apis/echo/subscriptions",
        Some(json!({"application": "app-1", "plan": "gold"})),
    )
    .await;

    let url = format!("{}/echo/x", m.gw.base);
    let token = f.token("client-1");
    served_within(&url, Some(&token), 200, PROPAGATION).await;
    assert_eq!(statuses(&url, &token, 3).await, [200, 200, 429]);
    let refused = get(&url, Some(&token)).await;
    assert_eq!(refused.code(), "RATE_LIMIT_TOO_MANY_REQUESTS");
    assert!(refused.headers.contains_key("retry-after"));

    // A raised limit waits for its deployment.
    gold["restrictions"] = json!({"rate_limit": {"limit": 100, "period_secs": 3600}});
    gold.as_object_mut().expect("object").remove("id");
    m.expect(200, "PUT", "/apis/echo/plans/gold", Some(gold)).await;
    assert_eq!(m.expect(200, "GET", "/apis/echo", None).await["deployment_state"], "need_redeploy");
    assert_eq!(get(&url, Some(&token)).await.status.as_u16(), 429);
    m.expect(202, "POST", "/apis/echo/deployments", None).await;
    served_within(&url, Some(&token), 200, PROPAGATION).await;
}

fn limited_config(f: &Fixture, limit: u32) -> String {
    let restrictions = format!(
        "[api.plan.restrictions]\nrate_limit = {{ limit = {limit}, period_secs = 3600 }}\n"
    );
    format!(
        "{}{}{}",
        f.api("echo", "/echo", "", &f.jwt_plan("gold", &restrictions)),
        app("app-1", "client-1"),
        sub("sub-1", "echo", "gold", "app-1"),
    )
}

#[tokio::test]
async fn file_mode_enforces_plan_restrictions() {
    let f = Fixture::start().await;
    let path = f.write("limits.toml", &limited_config(&f, 2));
    let gw = GatewayProcess::spawn(&["--config", path.to_str().expect("utf-8")]).await;
    let url = format!("{}/echo/x", gw.base);
    let token = f.token("client-1");
    assert_eq!(statuses(&url, &token, 3).await, [200, 200, 429]);
    // Refused by the JWT layer first: no token is never counted, never 429.
    assert_eq!(get(&url, None).await.status, StatusCode::UNAUTHORIZED);

    // A keyless plan takes no restrictions.
    let keyless = f.write(
        "keyless.toml",
        &limited_config(&f, 2).replacen(
            "[[api.plan]]",
            "[[api.plan]]\nid = \"open\"\nsecurity = \"keyless\"\nstatus = \"staging\"\n[api.plan.restrictions]\nrate_limit = { limit = 1, period_secs = 60 }\n\n[[api.plan]]",
            1,
        ),
    );
    let (status, _, stderr) =
        run_to_exit(&["--config", keyless.to_str().expect("utf-8"), "--check"]).await;
    assert!(!status.success());
    assert!(stderr.contains("restrictions"), "{stderr}");
}

/// Delete the Redis keys under `prefix` (a raw RESP exchange: KEYS, then DEL).
async fn delete_keys(redis: &str, prefix: &str) {
    let addr = redis.trim_start_matches("redis://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect to Redis");
    let pattern = format!("{prefix}*");
    let cmd = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
    conn.write_all(cmd.as_bytes()).await.expect("send KEYS");
    let mut buf = vec![0u8; 65536];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = conn.read(&mut buf).await.expect("read KEYS");
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let keys: Vec<&str> = reply.split("\r\n").filter(|l| l.starts_with(prefix)).collect();
    for key in keys {
        let cmd = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len());
        conn.write_all(cmd.as_bytes()).await.expect("send DEL");
        let _ = conn.read(&mut buf).await.expect("read DEL");
    }
}

#[tokio::test]
async fn two_gateways_share_one_budget_through_redis() {
    let Ok(redis) = std::env::var("TJP_TEST_REDIS_URL") else {
        eprintln!(
            "skipped: set TJP_TEST_REDIS_URL=redis://127.0.0.1:6379 to run the gateway's shared-restrictions suite"
        );
        return;
    };
    let f = Fixture::start().await;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let prefix = format!("tjp-gateway-test-{}-{nanos}:", std::process::id());
    let path = f.write("shared.toml", &limited_config(&f, 3));
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--rate-limit-store",
        redis.as_str(),
        "--rate-limit-key-prefix",
        prefix.as_str(),
    ];
    let a = GatewayProcess::spawn(&args).await;
    let b = GatewayProcess::spawn(&args).await;
    let token = f.token("client-1");
    let (ua, ub) = (format!("{}/echo/x", a.base), format!("{}/echo/x", b.base));
    let seen = [
        get(&ua, Some(&token)).await.status.as_u16(),
        get(&ub, Some(&token)).await.status.as_u16(),
        get(&ua, Some(&token)).await.status.as_u16(),
        get(&ub, Some(&token)).await.status.as_u16(),
        get(&ua, Some(&token)).await.status.as_u16(),
    ];
    delete_keys(&redis, &prefix).await;
    assert_eq!(seen, [200, 200, 200, 429, 429]);
}
