//! The binary as a process: startup refusals, `--check`, `--help`, SIGTERM (the proxy's
//! requests and the management API's calls in flight).

use super::*;

#[tokio::test]
async fn startup_refuses_invalid_files_with_one_line() {
    let f = Fixture::start().await;
    let good = f.simple_config();
    let keyless = |status: &str| {
        good.replacen(
            "[[api.plan]]",
            &format!("[[api.plan]]\nid = \"open\"\nsecurity = \"keyless\"\nstatus = \"{status}\"\n\n[[api.plan]]"),
            1,
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown field",
            good.replacen("context_path", "colour = \"blue\"\ncontext_path", 1),
            "unknown field `colour`",
        ),
        ("keyless published", keyless("published"), "keyless"),
        ("keyless deprecated", keyless("deprecated"), "keyless"),
        (
            "duplicate api ids",
            format!("{}{good}", f.api("echo", "/other", "", &f.jwt_plan("x", ""))),
            "duplicate api id `echo`",
        ),
        (
            "duplicate plan ids",
            good.replacen(
                "[[application]]",
                &format!("{}[[application]]", f.jwt_plan("gold", "")),
                1,
            ),
            "duplicate plan id `gold`",
        ),
        (
            "duplicate application ids",
            format!("{good}{}", app("app-1", "client-9")),
            "duplicate application id `app-1`",
        ),
        (
            "duplicate subscription ids",
            format!("{good}{}", sub("sub-1", "echo", "gold", "app-2")),
            "duplicate subscription id `sub-1`",
        ),
        (
            "unknown plan reference",
            format!("{good}{}", sub("sub-2", "echo", "silver", "app-2")),
            "api `echo` has no plan `silver`",
        ),
        (
            "unknown application reference",
            format!("{good}{}", sub("sub-2", "echo", "gold", "app-9")),
            "unknown application `app-9`",
        ),
        (
            "unknown api reference",
            format!("{good}{}", sub("sub-2", "nope", "gold", "app-2")),
            "unknown api `nope`",
        ),
        (
            "two key sources",
            good.replacen(
                "jwks_url",
                "hmac_secret = \"0123456789abcdef0123456789abcdef\"\njwks_url",
                1,
            ),
            "exactly one of",
        ),
        ("syntax error", format!("[[api]\n{good}"), "line 1"),
    ];
    for (what, text, expected) in &cases {
        let path = f.write("bad.toml", text);
        let file = path.to_str().expect("utf-8 path");
        for check in [false, true] {
            let mut args = vec!["--config", file];
            if check {
                args.push("--check");
            } else {
                args.extend(["--listen", "127.0.0.1:0"]);
            }
            let (status, stdout, stderr) = run_to_exit(&args).await;
            assert!(!status.success(), "{what} (check: {check}) was accepted");
            assert!(stdout.is_empty(), "{what}: stdout {stdout:?}");
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{what}: stderr {stderr:?}");
            assert!(
                lines[0].starts_with("gateway: error: ") && lines[0].contains(file),
                "{what}: {stderr:?}"
            );
            assert!(lines[0].contains(expected), "{what}: {stderr:?}");
            assert!(!stderr.contains("panicked"), "{what}: {stderr:?}");
        }
    }

    let missing = f.dir.0.join("missing.toml");
    let (status, _, stderr) = run_to_exit(&["--config", missing.to_str().expect("utf-8")]).await;
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("cannot read the file"), "{stderr:?}");
}

#[tokio::test]
async fn check_accepts_a_valid_file_and_help_documents_every_option() {
    let f = Fixture::start().await;
    let path = f.write("good.toml", &f.simple_config());
    let (status, stdout, stderr) =
        run_to_exit(&["--config", path.to_str().expect("utf-8"), "--check"]).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("ok (1 API, 1 plan, 2 applications, 1 subscription)"), "{stdout}");

    let (status, help, _) = run_to_exit(&["--help"]).await;
    assert!(status.success());
    for option in ["--config", "--listen", "--check", "--log-format", "--help"] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }

    // --check needs a file.
    let (status, _, stderr) = run_to_exit(&["--check"]).await;
    assert!(!status.success());
    assert!(stderr.contains("--config"), "{stderr}");
}

/// Waits until the listener at `base` (`http://ADDR`) refuses connections, as it does once
/// SIGTERM has landed; at most 5 s.
async fn refused_soon(base: &str) {
    let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("address");
    let refused = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("listener closed after SIGTERM");
}

/// Sends a request for the upstream's `/slow` route, answered after `ms`, through the gateway
/// at `base`; returns once it is at the upstream, so it is in flight when a signal lands.
async fn slow_request_in_flight(
    f: &Fixture,
    base: &str,
    ms: u64,
) -> tokio::task::JoinHandle<Reply> {
    let (url, token) = (format!("{base}/echo/slow?ms={ms}"), f.token("client-1"));
    let in_flight = tokio::spawn(async move { get(&url, Some(&token)).await });
    let arrived = async {
        while f.slow_started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(EXCHANGE, arrived).await.expect("the slow request reached the upstream");
    in_flight
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let f = Fixture::start().await;
    let path = f.write("gw.toml", &f.simple_config());
    let mut gw = GatewayProcess::spawn(&["--config", path.to_str().expect("utf-8")]).await;
    let base = gw.base.clone();
    let in_flight = slow_request_in_flight(&f, &base, 2000).await;
    let stopped_at = Instant::now();
    gw.signal("TERM");

    // New connections are refused while the in-flight request finishes.
    refused_soon(&base).await;

    let reply = in_flight.await.expect("request task");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"slow done");
    let status = gw.wait_exit().await;
    assert!(status.success(), "{status}");
    assert!(stopped_at.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn sigterm_lets_a_management_call_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = Fixture::start().await;
    // DB mode, where a write reads its body before it answers (file mode refuses it at once).
    let mut m =
        admin::Managed::start(&format!("sqlite:{}", f.dir.0.join("stop.db").display())).await;
    let admin: SocketAddr = m.admin.trim_start_matches("http://").parse().expect("admin address");

    // One call answered whole on a connection, so the connection is being served; then a
    // second whose body is half sent: the handler is reading it when the signal lands.
    let mut call = tokio::net::TcpStream::connect(admin).await.expect("connect to the admin API");
    let head = |method: &str, path: &str, rest: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {}\r\n{rest}\r\n",
            admin::ADMIN_TOKEN
        )
    };
    call.write_all(head("GET", "/apis", "").as_bytes()).await.expect("first call sent");
    let mut first = Vec::new();
    let mut chunk = [0u8; 4096];
    while !first.ends_with(b"[]") {
        let n = tokio::time::timeout(EXCHANGE, call.read(&mut chunk))
            .await
            .expect("the first call is answered")
            .expect("read");
        assert!(n > 0, "the admin API closed the connection");
        first.extend_from_slice(&chunk[..n]);
    }
    let second = head(
        "POST",
        "/apis",
        "content-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n",
    );
    call.write_all(format!("{second}{{").as_bytes()).await.expect("second call half sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.gw.signal("TERM");

    // The signal has landed once the proxy's listener is closed.
    refused_soon(&m.gw.base).await;
    // The proxy had nothing in flight, so it is done; the process waits for the call.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let exited = m.gw.child.try_wait().expect("child status");
    assert!(exited.is_none(), "the gateway exited mid-call: {:?}", m.gw.lines(Stream::Err));
    call.write_all(b"}").await.expect("the rest of the body is taken");
    let mut answer = String::new();
    tokio::time::timeout(EXCHANGE, call.read_to_string(&mut answer))
        .await
        .expect("the call is answered before the connection closes")
        .expect("read");
    // `{}` lacks every field: the call's own answer, which it could only give with its body.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(answer.contains("INVALID_REQUEST"), "{answer:?}");
    let status = m.gw.wait_exit().await;
    assert!(status.success(), "{status}");
}

/// One grace period, counted from the signal, for both listeners: a management call that never
/// ends holds the process to the end of it and no longer, although the proxy used part of it.
#[tokio::test]
async fn sigterm_grace_is_shared_by_the_proxy_and_the_management_api() {
    use tokio::io::AsyncWriteExt;
    use tower_jwt_plan_gateway::serve::SHUTDOWN_GRACE;
    let f = Fixture::start().await;
    let path = f.write("gw.toml", &f.simple_config());
    let mut gw = GatewayProcess::spawn(&["--config", path.to_str().expect("utf-8")]).await;
    let line = gw.wait_for(Stream::Out, 0, |l| l.starts_with("admin listening on http://")).await;
    let admin: SocketAddr =
        line.trim_start_matches("admin listening on http://").parse().expect("admin address");

    // A management call whose head never ends: it is in flight until the grace period ends.
    let mut stuck = tokio::net::TcpStream::connect(admin).await.expect("connect to the admin API");
    stuck.write_all(b"GET /apis HTTP/1.1\r\nhost: admin\r\n").await.expect("half a head sent");
    // A proxied request that takes 6 s of the 10.
    let in_flight = slow_request_in_flight(&f, &gw.base, 6000).await;
    let stopped_at = Instant::now();
    gw.signal("TERM");

    let status = gw.wait_exit().await;
    let took = stopped_at.elapsed();
    assert!(status.success(), "{status}");
    assert_eq!(&in_flight.await.expect("request task").body[..], b"slow done");
    assert!(took >= SHUTDOWN_GRACE - Duration::from_secs(1), "the call was cut early: {took:?}");
    // Two grace periods one after the other would take 16 s.
    assert!(took < SHUTDOWN_GRACE + Duration::from_secs(3), "the grace was not shared: {took:?}");
    drop(stuck);
}
