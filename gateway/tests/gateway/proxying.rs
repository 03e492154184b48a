//! Forwarding to the backend: path and query, streamed bodies, hop-by-hop headers, claim
//! headers, `Authorization` removal, 502 and 504, kept-alive backend connections, and the
//! connection of a backend that answers before it has read the request's body.

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
    let (sender, req) = post_with_held_body(format!("{base}/echo/first-chunk"), &token).await;
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

/// A backend on raw sockets that counts the connections it accepts. Every request gets
/// `200` with its path as the body, kept alive, except:
/// - `/close`: the answer, then, 100 ms later, the backend closes the connection (as on its
///   idle timeout, without `Connection: close`), so the gateway has pooled it by then;
/// - `/hold`: a 10-byte body whose second half waits for `release`;
/// - `/empty`: `204 No Content`, no body at all;
/// - `/early`: `413 Payload Too Large` as soon as the head is read, without reading the
///   request's body; then it reads nothing more as a request, only waits for the gateway to
///   close the connection, and notifies `closed_early` when it does.
struct RawBackend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
    closed_early: Arc<tokio::sync::Notify>,
}

impl RawBackend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the raw backend");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let closed_early = Arc::new(tokio::sync::Notify::new());
        let (count, hold, closed) = (accepted.clone(), release.clone(), closed_early.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(Self::serve(stream, hold.clone(), closed.clone()));
            }
        });
        Self { addr, accepted, release, closed_early }
    }

    async fn serve(
        stream: tokio::net::TcpStream,
        release: Arc<tokio::sync::Notify>,
        closed_early: Arc<tokio::sync::Notify>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            // GET requests, and `/early`'s head: the head ends at the first empty line.
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let written = match path.as_str() {
                "/hold" => {
                    let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst";
                    let sent = stream.get_mut().write_all(head.as_bytes()).await;
                    release.notified().await;
                    match sent {
                        Ok(()) => stream.get_mut().write_all(b"-half").await,
                        Err(err) => Err(err),
                    }
                }
                "/empty" => stream.get_mut().write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await,
                "/early" => {
                    let answer = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n";
                    if stream.get_mut().write_all(answer).await.is_err() {
                        return;
                    }
                    // Whatever comes now is the rest of the body, or a request the gateway
                    // should not have sent here: both are read and dropped until the end.
                    let mut sink = [0u8; 4096];
                    while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                    closed_early.notify_one();
                    return;
                }
                _ => {
                    let answer =
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}", path.len());
                    stream.get_mut().write_all(answer.as_bytes()).await
                }
            };
            if path == "/close" {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if written.is_err() || path == "/close" {
                return;
            }
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// A one-API file in front of this backend: `raw` at `/raw`, `client-1` subscribed.
    /// A gateway in this process in front of this backend (API `raw` at `/raw`, `client-1`
    /// subscribed), with a token of that client.
    async fn behind_a_gateway(self) -> RawSetup {
        let f = Fixture::start().await;
        let config = format!(
            "{}{}{}",
            api_with_backend(
                "raw",
                "/raw",
                &format!("http://{}", self.addr),
                &f.jwt_plan("gold", "")
            ),
            app("app-1", "client-1"),
            sub("sub-1", "raw", "gold", "app-1"),
        );
        let (app, base) = start_in_process(&f.write("gw.toml", &config)).await;
        let token = f.token("client-1");
        RawSetup { backend: self, base, token, _app: app, _fixture: f }
    }
}

/// A [`RawBackend`] behind a gateway: what the pool tests send through. Bind every field
/// (`_app`, `_fixture` by name, not `..`): the gateway and its IdP live as long as they do.
struct RawSetup {
    backend: RawBackend,
    base: String,
    token: String,
    _app: Gateway,
    _fixture: Fixture,
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_one_the_backend_closed_is_replaced() {
    let RawSetup { backend, base, token, _app, _fixture } =
        RawBackend::start().await.behind_a_gateway().await;

    for path in ["/a", "/bb", "/ccc"] {
        let reply = get(&format!("{base}/raw{path}"), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(&reply.body[..], path.as_bytes());
    }
    assert_eq!(backend.accepted(), 1, "three requests in a row share one backend connection");

    let reply = get(&format!("{base}/raw/close"), Some(&token)).await;
    assert_eq!(&reply.body[..], b"/close");
    // The backend closes its end 100 ms after answering: the pooled connection is dead by the
    // next request.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = get(&format!("{base}/raw/after"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_eq!(&reply.body[..], b"/after");
    assert_eq!(backend.accepted(), 2, "the closed connection was replaced by one new one");

    let reply = get(&format!("{base}/raw/again"), Some(&token)).await;
    assert_eq!(&reply.body[..], b"/again");
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn a_backend_connection_is_not_lent_while_its_response_is_still_read() {
    let RawSetup { backend, base, token, _app, _fixture } =
        RawBackend::start().await.behind_a_gateway().await;
    // Warm the pool with one idle connection.
    assert_eq!(&get(&format!("{base}/raw/warm"), Some(&token)).await.body[..], b"/warm");

    let held = Request::get(format!("{base}/raw/hold"))
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .expect("request");
    let held = tokio::time::timeout(EXCHANGE, client().request(held))
        .await
        .expect("the held response's head arrives")
        .expect("request sent");
    assert_eq!(held.status(), StatusCode::OK);

    // The only pooled connection is busy with `/hold`: this request needs another one, and
    // must not wait behind the held body.
    let reply = get(&format!("{base}/raw/meanwhile"), Some(&token)).await;
    assert_eq!(&reply.body[..], b"/meanwhile");
    assert_eq!(backend.accepted(), 2);

    backend.release.notify_one();
    let body = tokio::time::timeout(EXCHANGE, held.into_body().collect())
        .await
        .expect("the held body ends")
        .expect("body read")
        .to_bytes();
    assert_eq!(&body[..], b"first-half");

    // Both connections are idle again: no third one.
    for path in ["/x", "/y", "/z"] {
        assert_eq!(
            &get(&format!("{base}/raw{path}"), Some(&token)).await.body[..],
            path.as_bytes()
        );
    }
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn a_response_without_a_body_gives_its_connection_back() {
    let RawSetup { backend, base, token, _app, _fixture } =
        RawBackend::start().await.behind_a_gateway().await;
    // The connection is handed back as the head arrives: there is no body whose end would.
    for _ in 0..3 {
        let reply = get(&format!("{base}/raw/empty"), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert!(reply.body.is_empty());
    }
    assert_eq!(&get(&format!("{base}/raw/after"), Some(&token)).await.body[..], b"/after");
    assert_eq!(backend.accepted(), 1, "every answer, empty or not, reused one connection");
}

#[tokio::test]
async fn a_backend_that_answers_before_reading_the_body_has_its_connection_closed() {
    let RawSetup { backend, base, token, _app, _fixture } =
        RawBackend::start().await.behind_a_gateway().await;
    // A kept-alive connection, which the early answer then comes on. Warming the pool also
    // lets the idle reaper's first sweep, which comes right after the first connection, pass.
    assert_eq!(&get(&format!("{base}/raw/warm"), Some(&token)).await.body[..], b"/warm");

    // The body's first chunk goes out, the rest is held: the backend answers while the
    // gateway is still sending the request.
    let (sender, req) = post_with_held_body(format!("{base}/raw/early"), &token).await;
    let early = tokio::time::timeout(EXCHANGE, client().request(req))
        .await
        .expect("the early answer arrives while the body is held")
        .expect("request sent");
    assert_eq!(early.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // The connection is in the middle of a request body: it cannot carry another request, so
    // the gateway closes it rather than keeping it idle.
    tokio::time::timeout(EXCHANGE, backend.closed_early.notified())
        .await
        .expect("the gateway closes the connection that was answered early");
    let reply = get(&format!("{base}/raw/after"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_eq!(&reply.body[..], b"/after");
    assert_eq!(backend.accepted(), 2, "the next request went out on a new connection");
    drop(sender);
}
