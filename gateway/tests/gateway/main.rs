//! End-to-end tests of the gateway (`tower-jwt-plan-gateway`), one test binary with a module
//! per topic.
//!
//! Two ways in, both against a real JWKS server and a real upstream on 127.0.0.1:0:
//!
//! - in process: through the crate's public `build_app` + `serve` over real sockets (routing,
//!   forwarding, refusals, redeploy);
//! - as a process: the `gateway` binary (`CARGO_BIN_EXE_gateway`, built by cargo for these
//!   tests) is spawned for what only a process shows: startup refusals, `--check`, `--help`,
//!   SIGHUP, SIGTERM and the no-argument demo.
//!
//! Every wait is bounded, and child processes are killed when their handle is dropped.

mod admin;
mod admin_pg;
mod config;
mod demo;
mod edge;
mod process;
mod proxying;
mod readme;
mod reload;
mod restrictions;
mod routing;
mod standards;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

use tower_jwt_plan_gateway::config::load_config;
use tower_jwt_plan_gateway::demo::{DemoIdp, echo_router, serve_router};
use tower_jwt_plan_gateway::serve::{Gateway, build_app, serve};

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
        let upstream =
            serve_router(upstream_router(slow_started.clone())).await.expect("upstream starts");
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
    echo_router()
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

/// A bearer-token POST to `url` whose body's first chunk is already sent, and whose rest
/// waits on the sender returned with it (the body ends when the sender is dropped).
async fn post_with_held_body(
    url: String,
    token: &str,
) -> (tokio::sync::mpsc::Sender<Bytes>, Request<ClientBody>) {
    let (sender, body) = ChannelBody::new();
    sender.send(Bytes::from_static(b"first chunk")).await.expect("chunk buffered");
    let request = Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .body(body.boxed_unsync())
        .expect("request");
    (sender, request)
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
async fn start_in_process(path: &Path) -> (Gateway, String) {
    let config = load_config(path).expect("config loads");
    let app = build_app(&config).expect("config is valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(serve(listener, app.clone(), std::future::pending::<()>()));
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
// ---------------------------------------------------------------------------------------------
// As a process
// ---------------------------------------------------------------------------------------------

/// The `gateway` binary of this package, built by cargo before these tests run.
fn gateway_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gateway"))
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
        Self::spawn_env(args, &[]).await
    }

    /// [`GatewayProcess::spawn`] with environment variables.
    async fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = args.to_vec();
        all.extend(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
        let mut cmd = command(&all);
        cmd.env_remove("GATEWAY_ADMIN_TOKEN");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("gateway spawns");
        let stdout = collect_lines(child.stdout.take().expect("stdout"));
        let stderr = collect_lines(child.stderr.take().expect("stderr"));
        let mut gateway = Self { child, stdout, stderr, base: String::new() };
        let line = gateway.wait_for(Stream::Out, 0, |l| l.starts_with("listening on http")).await;
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
