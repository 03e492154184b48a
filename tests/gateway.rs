//! End-to-end tests of the example gateway (`examples/gateway.rs`).
//!
//! Two ways in, both against a real JWKS server and a real upstream on 127.0.0.1:0:
//!
//! - in process: the example is compiled into this test as a module, and each test drives its
//!   `build_app` + `serve` over real sockets (routing, forwarding, refusals, redeploy);
//! - as a process: the example binary (built once with `cargo build --example gateway`) is
//!   spawned for what only a process shows: startup refusals, `--check`, `--help`, SIGHUP,
//!   SIGTERM and the no-argument demo.
//!
//! Every wait is bounded, and child processes are killed when their handle is dropped.

#[allow(dead_code)]
#[path = "../examples/gateway.rs"]
mod gateway;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

use gateway::{DemoIdp, DemoKey};

/// Bound on one HTTP exchange.
const EXCHANGE: Duration = Duration::from_secs(15);
/// Bound on a child process reaching a state (listening, reloaded, exited).
const PROCESS: Duration = Duration::from_secs(30);
/// The audience of every test plan.
const AUDIENCE: &str = "api://test";

// ---------------------------------------------------------------------------------------------
// Fixtures: IdP, upstream, configs, HTTP client
// ---------------------------------------------------------------------------------------------

/// A real IdP (JWKS over HTTP) and a real upstream, both on loopback.
struct Fixture {
    idp: DemoIdp,
    upstream: SocketAddr,
    /// A loopback port nothing listens on.
    closed_port: u16,
    /// How many requests reached the upstream's `/slow` route.
    slow_started: Arc<AtomicUsize>,
    dir: TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let idp = DemoIdp::start().await.expect("IdP starts");
        let slow_started = Arc::new(AtomicUsize::new(0));
        let upstream = gateway::serve_router(upstream_router(slow_started.clone()))
            .await
            .expect("upstream starts");
        let closed_port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
            probe.local_addr().expect("probe address").port()
        };
        Self { idp, upstream, closed_port, slow_started, dir: TempDir::new() }
    }

    /// A valid token of the IdP for `client_id`, subject `user-1`, 10 minutes.
    fn token(&self, client_id: &str) -> String {
        self.idp.token(client_id, "user-1", AUDIENCE, Duration::from_secs(600)).expect("token")
    }

    /// A `[[api.plan]]` table: a published ES256 JWT plan of the IdP, plus `extra` lines.
    fn jwt_plan(&self, id: &str, extra: &str) -> String {
        self.jwt_plan_with_jwks(id, &self.idp.jwks_url, extra)
    }

    fn jwt_plan_with_jwks(&self, id: &str, jwks_url: &str, extra: &str) -> String {
        format!(
            "[[api.plan]]\nid = \"{id}\"\nname = \"Plan {id}\"\nsecurity = \"jwt\"\nstatus = \"published\"\n\
             algorithms = [\"ES256\"]\njwks_url = \"{jwks_url}\"\nissuer = \"{}\"\naudience = [\"{AUDIENCE}\"]\n{extra}\n",
            self.idp.issuer
        )
    }

    /// An `[[api]]` table whose backend is the test upstream (with an optional base path).
    fn api(&self, id: &str, context_path: &str, base_path: &str, plans: &str) -> String {
        let backend = format!("http://{}{base_path}", self.upstream);
        api_with_backend(id, context_path, &backend, plans)
    }

    /// A one-API file: `echo` at `/echo`, plan `gold`, application `app-1` (`client-1`) with
    /// an accepted subscription, application `app-2` (`client-2`) without one.
    fn simple_config(&self) -> String {
        format!(
            "{}{}{}{}",
            self.api("echo", "/echo", "", &self.jwt_plan("gold", "")),
            app("app-1", "client-1"),
            app("app-2", "client-2"),
            sub("sub-1", "echo", "gold", "app-1"),
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.0.join(name);
        std::fs::write(&path, text).expect("write config");
        path
    }
}

fn api_with_backend(id: &str, context_path: &str, backend: &str, plans: &str) -> String {
    format!(
        "[[api]]\nid = \"{id}\"\ncontext_path = \"{context_path}\"\nbackend = \"{backend}\"\n\n{plans}\n"
    )
}

fn app(id: &str, client_id: &str) -> String {
    format!("[[application]]\nid = \"{id}\"\nclient_id = \"{client_id}\"\n\n")
}

fn sub(id: &str, api: &str, plan: &str, application: &str) -> String {
    format!(
        "[[subscription]]\nid = \"{id}\"\napi = \"{api}\"\nplan = \"{plan}\"\napplication = \"{application}\"\nstatus = \"accepted\"\n\n"
    )
}

/// The upstream: the example's echo, plus a slow route, a route answering after the first
/// body chunk, and a route answering with hop-by-hop headers.
fn upstream_router(slow_started: Arc<AtomicUsize>) -> axum::Router {
    use axum::routing::{any, get};
    gateway::echo_router()
        .route(
            "/slow",
            get(
                |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, u64>,
                >| async move {
                    slow_started.fetch_add(1, Ordering::SeqCst);
                    let ms = q.get("ms").copied().unwrap_or(1000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "slow done"
                },
            ),
        )
        .route(
            "/first-chunk",
            any(|body: axum::body::Body| async move {
                let mut body = body;
                loop {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                return data;
                            }
                        }
                        _ => return Bytes::new(),
                    }
                }
            }),
        )
        .route(
            "/hop-response",
            get(|| async {
                (
                    [
                        ("connection", "x-secret"),
                        ("x-secret", "1"),
                        ("keep-alive", "timeout=5"),
                        ("proxy-authenticate", "Basic"),
                        ("x-kept", "1"),
                    ],
                    "hop",
                )
            }),
        )
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "gateway-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type ClientBody = UnsyncBoxBody<Bytes, Infallible>;

/// A request body fed chunk by chunk; it ends when the sender is dropped.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl ChannelBody {
    fn new() -> (tokio::sync::mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (tx, Self(rx))
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|data| Ok(http_body::Frame::data(data))))
    }
}

fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn empty() -> ClientBody {
    Full::new(Bytes::new()).boxed_unsync()
}

/// An answer, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    /// The `error` code of a JSON refusal, checking the body's shape on the way.
    fn code(&self) -> String {
        let body = self.json();
        assert_eq!(body["http_status_code"], self.status.as_u16(), "body: {body}");
        assert!(body["message"].is_string(), "body: {body}");
        assert_eq!(self.headers["content-type"], "application/json");
        body["error"].as_str().unwrap_or_default().to_owned()
    }

    /// A request header as the echo upstream saw it.
    fn echoed_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_owned)
    }
}

async fn send(req: Request<ClientBody>) -> Reply {
    let what = format!("{} {}", req.method(), req.uri());
    let exchange = async {
        let response = client().request(req).await.expect("request sent");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    };
    tokio::time::timeout(EXCHANGE, exchange)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {EXCHANGE:?}"))
}

async fn get(url: &str, token: Option<&str>) -> Reply {
    let mut req = Request::get(url);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send(req.body(empty()).expect("request")).await
}

/// Serve `path` in process on 127.0.0.1:0 with the example's `build_app` and `serve`.
async fn start_in_process(path: &Path) -> (gateway::Gateway, String) {
    let config = gateway::load_config(path).expect("config loads");
    let app = gateway::build_app(&config).expect("config is valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(gateway::serve(listener, app.clone(), std::future::pending::<()>()));
    (app, format!("http://{addr}"))
}

// ---------------------------------------------------------------------------------------------
// In process
// ---------------------------------------------------------------------------------------------

/// The file of the in-process tests: several APIs sharing one IdP, one on an unreachable IdP,
/// one on an unreachable backend.
fn many_apis(f: &Fixture) -> String {
    let down_jwks = format!("http://127.0.0.1:{}/.well-known/jwks.json", f.closed_port);
    let mut text = String::from("backend_timeout_secs = 1\n\n");
    text += &f.api(
        "echo",
        "/echo",
        "",
        &f.jwt_plan("gold", "claims_to_headers = { sub = \"x-user-id\" }"),
    );
    text += &f.api("deep", "/echo/deep/", "/deep-base", &f.jwt_plan("gold", ""));
    text += &f.api("noauth", "/noauth", "", &f.jwt_plan("silver", "propagate_auth_header = false"));
    text += &f.api("down", "/down", "", &f.jwt_plan_with_jwks("gold", &down_jwks, ""));
    text += &api_with_backend(
        "dead",
        "/dead",
        &format!("http://127.0.0.1:{}", f.closed_port),
        &f.jwt_plan("gold", ""),
    );
    text += &app("app-1", "client-1");
    text += &app("app-2", "client-2");
    text += &sub("s-echo", "echo", "gold", "app-1");
    text += &sub("s-deep", "deep", "gold", "app-1");
    text += &sub("s-noauth", "noauth", "silver", "app-1");
    text += &sub("s-down", "down", "gold", "app-1");
    text += &sub("s-dead", "dead", "gold", "app-1");
    text
}

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
    let summary = app.redeploy(&gateway::parse_config(&grown).expect("parses")).expect("valid");
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
    let err = app.redeploy(&gateway::parse_config(&keyless).expect("parses")).expect_err("refused");
    assert!(err.contains("keyless"), "{err}");
    assert_eq!(app.summary(), summary);
    assert_eq!(get(&format!("{base}/other/p"), Some(&one)).await.status, 200);
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 200);
    assert_eq!(get(&format!("{base}/echo"), None).await.status, 401);

    // Back to the small file: the API and the subscription are gone.
    app.redeploy(&gateway::parse_config(&f.simple_config()).expect("parses")).expect("valid");
    assert_eq!(get(&format!("{base}/other/p"), Some(&one)).await.status, 404);
    assert_eq!(get(&format!("{base}/echo"), Some(&two)).await.status, 403);
}

#[tokio::test]
async fn config_schema_details() {
    let f = Fixture::start().await;
    // Dates as strings or bare TOML date-times, issuer/audience as string or array, all the
    // optional plan keys.
    let text = format!(
        "listen = \"127.0.0.1:0\"\nbackend_timeout_secs = 5\n{}{}{}",
        f.api(
            "echo",
            "/",
            "",
            &format!(
                "[[api.plan]]\nid = \"gold\"\nsecurity = \"jwt\"\nstatus = \"deprecated\"\n\
                 algorithms = [\"ES256\"]\njwks_url = \"{}\"\nissuer = [\"{}\", \"https://other\"]\n\
                 audience = \"{AUDIENCE}\"\nclient_id_claim = \"client_id\"\nleeway_secs = 30\n\
                 required_scopes = [\"read\"]\nscope_mode = \"any\"\nuser_claim = \"sub\"\n\
                 extract_claims = false\nmax_lifetime_secs = 3600\ntoken_types = [\"JWT\"]\n\
                 claims_to_headers = {{ sub = \"x-user-id\", client_id = \"x-client-id\" }}\n\
                 propagate_auth_header = false\n\n\
                 [[api.plan]]\nid = \"free\"\nsecurity = \"keyless\"\nstatus = \"staging\"\n",
                f.idp.jwks_url, f.idp.issuer
            )
        ),
        app("app-1", "client-1"),
        "[[subscription]]\nid = \"s\"\napi = \"echo\"\nplan = \"gold\"\napplication = \"app-1\"\n\
         status = \"paused\"\nstarting_at = \"2026-01-01T00:00:00Z\"\nending_at = 2027-01-01T00:00:00+01:00\n",
    );
    let config = gateway::parse_config(&text).expect("parses");
    let summary = gateway::check_config(&config).expect("valid");
    assert_eq!(summary.to_string(), "1 API, 2 plans, 1 application, 1 subscription");

    // Errors are one line and name where or what.
    let unknown =
        gateway::parse_config("[[api]]\nid = \"a\"\ncolour = \"blue\"\n").err().expect("refused");
    assert!(unknown.starts_with("line 3, column 1: unknown field `colour`"), "{unknown}");
    let date = gateway::parse_config(&text.replace("2026-01-01T00:00:00Z", "yesterday"))
        .err()
        .expect("refused");
    assert!(date.contains("RFC 3339"), "{date}");
    assert!(!date.contains('\n'));
    let local_date =
        gateway::parse_config(&text.replace("2027-01-01T00:00:00+01:00", "2027-01-01T00:00:00"))
            .err()
            .expect("a date-time without offset is refused");
    assert!(local_date.contains("RFC 3339"), "{local_date}");
}

// ---------------------------------------------------------------------------------------------
// As a process
// ---------------------------------------------------------------------------------------------

/// The example binary, built once per test run with the same profile, target and features as
/// this test.
fn gateway_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(build_example).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn build_example() -> Result<PathBuf, String> {
    // This test runs as <target>[/<triple>]/<profile>/deps/gateway-<hash>.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir =
        exe.parent().and_then(Path::parent).ok_or("unexpected test binary location")?;
    let profile =
        profile_dir.file_name().and_then(|n| n.to_str()).ok_or("unexpected profile directory")?;
    let mut target_dir = profile_dir.parent().ok_or("no target directory")?;
    let mut triple = None;
    if !target_dir.join("CACHEDIR.TAG").exists()
        && let Some(parent) = target_dir.parent()
        && parent.join("CACHEDIR.TAG").exists()
    {
        triple = target_dir.file_name();
        target_dir = parent;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "--example", "gateway", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let mut features = Vec::new();
    if cfg!(feature = "aws-lc-rs") {
        features.push("aws-lc-rs");
    }
    if cfg!(feature = "rust-crypto") {
        features.push("rust-crypto");
    }
    if cfg!(feature = "axum") {
        features.push("axum");
    }
    cmd.arg("--no-default-features");
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("`cargo build --example gateway` took more than 15 minutes".into());
            }
            Err(e) => return Err(format!("waiting for cargo: {e}")),
        }
    };
    let output = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("`cargo build --example gateway` failed:\n{output}"));
    }
    let binary = profile_dir.join("examples").join("gateway");
    if !binary.exists() {
        return Err(format!("{} was not built", binary.display()));
    }
    Ok(binary)
}

/// A running gateway process. Killed on drop.
struct GatewayProcess {
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    base: String,
}

fn collect_lines<R>(reader: R) -> Arc<Mutex<Vec<String>>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(gateway_binary());
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

impl GatewayProcess {
    /// Spawn the binary with `args` (plus `--listen 127.0.0.1:0`) and wait until it listens.
    async fn spawn(args: &[&str]) -> Self {
        let mut all = args.to_vec();
        all.extend(["--listen", "127.0.0.1:0"]);
        let mut child = command(&all).spawn().expect("gateway spawns");
        let stdout = collect_lines(child.stdout.take().expect("stdout"));
        let stderr = collect_lines(child.stderr.take().expect("stderr"));
        let mut gateway = Self { child, stdout, stderr, base: String::new() };
        let line =
            gateway.wait_for(Stream::Out, 0, |l| l.starts_with("listening on http://")).await;
        gateway.base = line.trim_start_matches("listening on ").to_owned();
        gateway
    }

    fn lines(&self, stream: Stream) -> Vec<String> {
        let lines = match stream {
            Stream::Out => &self.stdout,
            Stream::Err => &self.stderr,
        };
        lines.lock().expect("lines").clone()
    }

    /// Wait for a line of `stream`, from line `from` on, that satisfies `pred`.
    async fn wait_for(
        &mut self,
        stream: Stream,
        from: usize,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + PROCESS;
        loop {
            if let Some(line) = self.lines(stream).iter().skip(from).find(|l| pred(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers catch up with the last lines before giving up.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(line) = self.lines(stream).iter().skip(from).find(|l| pred(l)) {
                    return line.clone();
                }
                panic!(
                    "gateway exited ({status}) before the expected line\nstdout: {:?}\nstderr: {:?}",
                    self.lines(Stream::Out),
                    self.lines(Stream::Err)
                );
            }
            assert!(
                Instant::now() < deadline,
                "no expected line within {PROCESS:?}\nstdout: {:?}\nstderr: {:?}",
                self.lines(Stream::Out),
                self.lines(Stream::Err)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), pid.as_str()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid}");
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(PROCESS, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("gateway did not exit within {PROCESS:?}"))
            .expect("wait")
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// Run the binary to completion (bounded) and return (status, stdout, stderr).
async fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let output = tokio::time::timeout(PROCESS, command(args).output())
        .await
        .unwrap_or_else(|_| panic!("gateway {args:?} did not exit within {PROCESS:?}"))
        .expect("gateway runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

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

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let f = Fixture::start().await;
    let path = f.write("gw.toml", &f.simple_config());
    let mut gw = GatewayProcess::spawn(&["--config", path.to_str().expect("utf-8")]).await;
    let base = gw.base.clone();
    let token = f.token("client-1");

    let url = format!("{base}/echo/slow?ms=2000");
    let in_flight = tokio::spawn(async move { get(&url, Some(&token)).await });
    // Wait until the request is at the upstream, so it is in flight when the signal lands.
    let arrived = async {
        while f.slow_started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(EXCHANGE, arrived).await.expect("the slow request reached the upstream");
    let stopped_at = Instant::now();
    gw.signal("TERM");

    // New connections are refused while the in-flight request finishes.
    let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("address");
    let refused = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("listener closed after SIGTERM");

    let reply = in_flight.await.expect("request task");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"slow done");
    let status = gw.wait_exit().await;
    assert!(status.success(), "{status}");
    assert!(stopped_at.elapsed() < Duration::from_secs(10));
}

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
