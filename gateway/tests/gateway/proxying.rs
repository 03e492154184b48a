//! Forwarding to the backend: path and query, streamed bodies, hop-by-hop headers, claim
//! headers, `Authorization` removal, 502 and 504.

use super::*;

#[tokio::test]
async fn forwarding_strips_context_keeps_query_and_body_and_drops_hop_by_hop() {
    let f = Fixture::start().await;
    let (_app, base) = start_in_process(&f.write("gw.toml", &many_apis(&f))).await;
    let token = f.token("client-1");
    let gateway_authority = base.trim_start_matches("http://").to_owned();

    let req = Request::post(format!("{base}/echo/a/b?x=1&y=two"))
        .header("authorization", format!("Bearer {token}"))
        .header("connection", "x-drop-me, keep-alive")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("x-keep-me", "2")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hello body")).boxed_unsync())
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["body"], "hello body");
    let headers = echo["headers"].as_object().expect("headers");
    for dropped in [
        "connection",
        "x-drop-me",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(!headers.contains_key(dropped), "{dropped} reached the upstream: {echo}");
    }
    assert_eq!(echo["headers"]["x-keep-me"], "2");
    assert_eq!(echo["headers"]["content-type"], "text/plain");
    assert_eq!(echo["headers"]["host"], f.upstream.to_string());
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-host"], gateway_authority);
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert_eq!(
        echo["headers"]["authorization"],
        format!("Bearer {token}"),
        "propagate_auth_header defaults to true"
    );

    // Other methods and a larger body.
    let big = "x".repeat(256 * 1024);
    let req = Request::put(format!("{base}/echo/upload"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(big.clone())).boxed_unsync())
        .expect("request");
    let echo = send(req).await.json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["body"].as_str().map(str::len), Some(big.len()));

    // Hop-by-hop headers of the response are dropped too.
    let reply = get(&format!("{base}/echo/hop-response"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-kept"], "1");
    for dropped in ["x-secret", "keep-alive", "proxy-authenticate"] {
        assert!(!reply.headers.contains_key(dropped), "{dropped} reached the client");
    }
}

#[tokio::test]
async fn request_body_is_streamed_not_buffered() {
    let f = Fixture::start().await;
    let (_app, base) = start_in_process(&f.write("gw.toml", &f.simple_config())).await;
    let token = f.token("client-1");

    // The upstream answers after the first chunk. If the gateway buffered the body, no answer
    // could come while the rest of the body is still unsent.
    let (sender, body) = ChannelBody::new();
    sender.send(Bytes::from_static(b"first chunk")).await.expect("chunk buffered");
    let req = Request::post(format!("{base}/echo/first-chunk"))
        .header("authorization", format!("Bearer {token}"))
        .body(body.boxed_unsync())
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(&reply.body[..], b"first chunk");
    drop(sender);
}

#[tokio::test]
async fn claims_to_headers_replace_client_sent_values() {
    let f = Fixture::start().await;
    let (_app, base) = start_in_process(&f.write("gw.toml", &many_apis(&f))).await;
    let token = f.token("client-1");

    let req = Request::get(format!("{base}/echo/me"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-id", "admin")
        .header("x-user-id", "root")
        .body(empty())
        .expect("request");
    let reply = send(req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echoed_header("x-user-id").as_deref(), Some("user-1"));
}

#[tokio::test]
async fn propagate_auth_header_false_removes_authorization() {
    let f = Fixture::start().await;
    let (_app, base) = start_in_process(&f.write("gw.toml", &many_apis(&f))).await;
    let token = f.token("client-1");

    let reply = get(&format!("{base}/noauth/x"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echoed_header("authorization"), None);

    let reply = get(&format!("{base}/echo/x"), Some(&token)).await;
    assert_eq!(reply.echoed_header("authorization"), Some(format!("Bearer {token}")));
}

#[tokio::test]
async fn unreachable_backend_is_502_and_slow_backend_is_504() {
    let f = Fixture::start().await;
    let (_app, base) = start_in_process(&f.write("gw.toml", &many_apis(&f))).await;
    let token = f.token("client-1");

    let reply = get(&format!("{base}/dead/x"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.code(), "BACKEND_UNAVAILABLE");

    // backend_timeout_secs = 1 in this file.
    let started = Instant::now();
    let reply = get(&format!("{base}/echo/slow?ms=3000"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.code(), "BACKEND_TIMEOUT");
    assert!(started.elapsed() < Duration::from_millis(2900));

    let reply = get(&format!("{base}/echo/slow?ms=10"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"slow done");
}
