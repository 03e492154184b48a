//! Identity-provider faults (corpus part B-G) against real servers on 127.0.0.1: a raw Tokio
//! TCP server here plays the faulty IdP (error statuses, HTML, empty or invalid sets, bodies
//! over the cap, a slow drip, a redirect loop, garbage, a hang, a closed port), next to the
//! plain-HTTP `JwksServer` of `tests/common`.
//!
//! Each fault is checked three ways:
//!
//! - (a) keys cached first: good keys are served and cached, the IdP turns faulty, an unknown
//!   `kid` forces a refetch past `min_refetch_interval`, and that refetch fails; tokens with
//!   the known `kid` keep passing, the failed fetch is counted, and nothing replaced the set;
//! - (b) no keys ever cached: a valid token gets 503 `JWKS_UNAVAILABLE` (with `Retry-After`)
//!   within `fetch_timeout` + 1 s, and neither the store nor the service is reached;
//! - (c) budget: during a burst of requests the IdP sees at most one on-demand fetch per
//!   `min_refetch_interval` plus the background schedule (see [`budget`]).
//!
//! TLS: no TLS server can be built from this crate's dependencies (no rcgen, and rustls is not
//! a direct dependency), so the untrusted-certificate case is approximated by an `https://`
//! URL pointing at a plain-HTTP server and at a server speaking garbage: both must fail closed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_jwt_plan::*;

/// Short settings so every test is bounded.
const FETCH_TIMEOUT: Duration = Duration::from_millis(500);
const MIN_REFETCH: Duration = Duration::from_millis(200);
const MAX_BODY: usize = 16 * 1024;

// ------------------------------------------------------------------------------------------
// The faulty IdP
// ------------------------------------------------------------------------------------------

/// What the IdP does with a connection.
#[derive(Clone, Debug)]
enum Mode {
    /// 200 with this JSON document.
    Json(Value),
    /// This status, with an empty body (and `Retry-After: 1` for 429 and 503).
    Status(u16),
    /// 200 `text/html`.
    Html,
    /// 200 with a valid key set padded to this many bytes, announced by `Content-Length`
    /// (`chunked: false`) or streamed in chunks with no length (`chunked: true`).
    Big { len: usize, chunked: bool },
    /// 200 with a valid key set, one byte per 100 ms.
    Drip,
    /// 302 to this URL.
    Redirect(String),
    /// 200 claiming `Content-Encoding: gzip` over bytes that are not a key set.
    Gzip,
    /// Bytes that are not HTTP, then close.
    Garbage,
    /// Accept and never answer.
    Hang,
}

/// A raw TCP IdP on 127.0.0.1 whose behaviour tests switch, counting connections (every
/// answer says `Connection: close`, so one connection is one fetch).
struct FaultServer {
    addr: std::net::SocketAddr,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let hits = Arc::new(AtomicUsize::new(0));
        let (m, h) = (mode.clone(), hits.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                let mode = m.lock().unwrap().clone();
                tokio::spawn(serve(stream, mode));
            }
        });
        Self { addr, mode, hits, accept }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stop listening: the port now refuses connections.
    async fn close(&self) {
        self.accept.abort();
        while !self.accept.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}

/// Read the request head (or give up after 200 ms: a TLS client never sends one).
async fn read_head(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
}

async fn head(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await
}

async fn reply(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let headers =
        [("Content-Type", content_type.to_string()), ("Content-Length", body.len().to_string())];
    if head(stream, status, &headers).await.is_ok() {
        let _ = stream.write_all(body).await;
    }
    let _ = stream.shutdown().await;
}

/// The good key set, as served in (a) and inside the faulty bodies.
fn good_keys() -> Value {
    jwks_of(&[(rsa(), "k1")])
}

/// The good key set with a `pad` member making it `len` bytes long.
fn padded_keys(len: usize) -> Vec<u8> {
    let mut doc = good_keys();
    doc["pad"] = json!("");
    let base = doc.to_string().len();
    doc["pad"] = json!("x".repeat(len.saturating_sub(base)));
    doc.to_string().into_bytes()
}

async fn serve(mut stream: TcpStream, mode: Mode) {
    if matches!(mode, Mode::Hang) {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    if matches!(mode, Mode::Garbage) {
        let _ = stream.write_all(b"\x16\x03\x01\x00\x05garbage, not HTTP\r\n\r\n").await;
        let _ = stream.shutdown().await;
        return;
    }
    read_head(&mut stream).await;
    match mode {
        Mode::Json(doc) => {
            reply(&mut stream, "200 OK", "application/json", doc.to_string().as_bytes()).await
        }
        Mode::Status(code) => {
            let status = format!(
                "{code} {}",
                http::StatusCode::from_u16(code).unwrap().canonical_reason().unwrap_or("")
            );
            let mut headers = vec![("Content-Length", "0".to_string())];
            if code == 429 || code == 503 {
                headers.push(("Retry-After", "1".to_string()));
            }
            let _ = head(&mut stream, &status, &headers).await;
        }
        Mode::Html => {
            reply(
                &mut stream,
                "200 OK",
                "text/html",
                b"<html><body>Service temporarily unavailable</body></html>",
            )
            .await
        }
        Mode::Gzip => {
            let headers = [
                ("Content-Type", "application/json".to_string()),
                ("Content-Encoding", "gzip".to_string()),
                ("Content-Length", "20".to_string()),
            ];
            if head(&mut stream, "200 OK", &headers).await.is_ok() {
                let _ = stream
                    .write_all(&[
                        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xed, 0xc1, 1, 1, 0, 0, 0, 0x82, 0x20,
                        0xff,
                    ])
                    .await;
            }
        }
        Mode::Big { len, chunked: false } => {
            reply(&mut stream, "200 OK", "application/json", &padded_keys(len)).await
        }
        Mode::Big { len, chunked: true } => {
            let headers = [
                ("Content-Type", "application/json".to_string()),
                ("Transfer-Encoding", "chunked".to_string()),
            ];
            if head(&mut stream, "200 OK", &headers).await.is_err() {
                return;
            }
            for part in padded_keys(len).chunks(4096) {
                let mut frame = format!("{:x}\r\n", part.len()).into_bytes();
                frame.extend_from_slice(part);
                frame.extend_from_slice(b"\r\n");
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
        Mode::Drip => {
            let body = good_keys().to_string();
            let headers = [
                ("Content-Type", "application/json".to_string()),
                ("Content-Length", body.len().to_string()),
            ];
            if head(&mut stream, "200 OK", &headers).await.is_err() {
                return;
            }
            for byte in body.bytes() {
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Mode::Redirect(location) => {
            let _ = head(
                &mut stream,
                "302 Found",
                &[("Location", location), ("Content-Length", "0".to_string())],
            )
            .await;
        }
        Mode::Hang | Mode::Garbage => unreachable!(),
    }
}

// ------------------------------------------------------------------------------------------
// The gateway
// ------------------------------------------------------------------------------------------

struct Gateway {
    cache: JwksCache,
    store: CountingStore,
    layer: JwtPlanLayer<CountingStore>,
}

/// The cache settings of every test, optionally adjusted.
fn cache_builder(url: &str) -> JwksCacheBuilder {
    JwksCache::builder(url)
        .fetch_timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .min_refetch_interval(MIN_REFETCH)
        .max_body_bytes(MAX_BODY)
}

fn gateway(cache: JwksCache) -> Gateway {
    let store = CountingStore {
        store: InMemoryResolver::new([Subscription::new(
            "s",
            "echo",
            "gold",
            "app",
            CLIENT,
            SubscriptionStatus::Accepted,
        )]),
        lookups: Arc::default(),
    };
    let settings = JwtSettings::new(KeySource::jwks(cache.clone()))
        .algorithms([Algorithm::RS256])
        .issuer(ISS)
        .audience(AUD);
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(store.clone())
        .build()
        .unwrap();
    Gateway { cache, store, layer }
}

/// A fresh valid token for `kid` (a unique `jti`, so the verified-token cache never answers).
fn token(kid: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut claims = claims();
    claims["jti"] = json!(format!("t{}", N.fetch_add(1, Ordering::SeqCst)));
    rsa().token(kid, &claims)
}

/// Fetches the IdP may see in `elapsed`: one initial fetch, one on-demand fetch per
/// `min_refetch_interval` (plus one for a window already open), and the background retries
/// after failures (backing off from 1 s, so at most one per second).
fn budget(elapsed: Duration) -> usize {
    let windows = (elapsed.as_millis() / MIN_REFETCH.as_millis()) as usize;
    let background = elapsed.as_secs() as usize;
    1 + (windows + 1) + background
}

/// (a) Keys cached, then the IdP turns faulty: known keys keep working.
async fn with_keys_cached(name: &str, fault: Mode) {
    let server = FaultServer::start(Mode::Json(good_keys())).await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(gw.cache.wait_ready(Duration::from_secs(5)).await, "{name}: never loaded");
    let res = send(&gw.layer, &Seen::default(), bearer(&token("k1"))).await;
    assert_eq!(res.status, 200, "{name}: control before the fault");
    if let Mode::Hang = fault {
        server.set(Mode::Hang);
    } else {
        server.set(fault);
    }
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(50)).await;
    cause_refetch_and_check(name, &gw, &|| server.hits()).await;
}

/// The part of (a) after the fault is in place. `hits` reads the IdP's counter.
async fn cause_refetch_and_check(name: &str, gw: &Gateway, hits: &dyn Fn() -> usize) {
    let failures = gw.cache.stats().failures;
    let (before, started) = ((hits(), gw.cache.stats().fetches), Instant::now());
    let res = send(&gw.layer, &Seen::default(), bearer(&token("rotated"))).await;
    let waited = started.elapsed();
    assert_eq!(
        (res.status, res.reason()),
        (401, Some(InvalidReason::UnknownKey)),
        "{name}: unknown kid"
    );
    assert!(
        waited <= FETCH_TIMEOUT + Duration::from_secs(1),
        "{name}: the unknown kid waited {waited:?}"
    );
    // The refetch may still be running (a drip or a hang): wait for its failure to be counted.
    let deadline = Instant::now() + FETCH_TIMEOUT + Duration::from_secs(1);
    while gw.cache.stats().failures == failures && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gw.cache.stats().failures > failures,
        "{name}: the refetch did not fail: {:?}",
        gw.cache.stats()
    );
    assert_eq!(gw.cache.key_ids(), ["k1"], "{name}: the good set was replaced");
    for _ in 0..3 {
        let seen = Seen::default();
        let res = send(&gw.layer, &seen, bearer(&token("k1"))).await;
        assert_eq!(
            (res.status, seen.calls()),
            (200, 1),
            "{name}: known key after the fault: {:?}",
            res.reason()
        );
    }
    burst(name, gw, hits, before, started, 401).await;
}

/// (c) 28 requests with unknown kids, 20 concurrent then 8 spread over 160 ms: the fetches
/// seen by the IdP (`hits`) and started by the cache (`JwksStats::fetches`, which also counts
/// attempts that never reach a server) stay within [`budget`] since `started`.
async fn burst(
    name: &str,
    gw: &Gateway,
    hits: &dyn Fn() -> usize,
    before: (usize, u64),
    started: Instant,
    status: u16,
) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let layer = gw.layer.clone();
            let token = token(&format!("burst-{i}"));
            tokio::spawn(async move { send(&layer, &Seen::default(), bearer(&token)).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), status, "{name}: burst");
    }
    for i in 0..8 {
        let res = send(&gw.layer, &Seen::default(), bearer(&token(&format!("spread-{i}")))).await;
        assert_eq!(res.status, status, "{name}: spread");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let fetches = hits() - before.0;
    let started_fetches = (gw.cache.stats().fetches - before.1) as usize;
    eprintln!(
        "{name}: {fetches} fetches seen, {started_fetches} started, in {elapsed:?} (budget {})",
        budget(elapsed)
    );
    assert!(fetches <= budget(elapsed), "{name}: {fetches} fetches in {elapsed:?}");
    assert!(
        started_fetches <= budget(elapsed),
        "{name}: {started_fetches} fetches started in {elapsed:?}"
    );
}

/// (b) No keys ever cached: 503 within fetch_timeout + 1 s, then (c).
async fn never_cached(name: &str, url: &str, hits: &dyn Fn() -> usize) {
    let gw = gateway(cache_builder(url).build().unwrap());
    let (before, started) = ((hits(), 0), Instant::now());
    let seen = Seen::default();
    let res = send(&gw.layer, &seen, bearer(&token("k1"))).await;
    let waited = started.elapsed();
    assert_eq!((res.status, res.code()), (503, "JWKS_UNAVAILABLE"), "{name}: {:?}", res.reason());
    assert_eq!(res.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("5"), "{name}");
    assert!(waited <= FETCH_TIMEOUT + Duration::from_secs(1), "{name}: answered after {waited:?}");
    assert_eq!((seen.calls(), gw.store.lookups.load(Ordering::SeqCst)), (0, 0), "{name}");
    assert!(!gw.cache.is_ready(), "{name}: ready without keys");
    burst(name, &gw, hits, before, started, 503).await;
    assert!(!gw.cache.is_ready(), "{name}");
    assert!(gw.cache.stats().failures >= 1, "{name}: {:?}", gw.cache.stats());
}

/// (a), (b) and (c) for one fault mode.
async fn fault(name: &str, mode: Mode) {
    with_keys_cached(name, mode.clone()).await;
    let server = FaultServer::start(mode).await;
    never_cached(name, &server.url(), &|| server.hits()).await;
}

// ------------------------------------------------------------------------------------------
// G1-G7: one test per fault
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn g1_status_500() {
    fault("G1 500", Mode::Status(500)).await;
}

#[tokio::test]
async fn g1_status_502() {
    fault("G1 502", Mode::Status(502)).await;
}

#[tokio::test]
async fn g1_status_503_retry_after() {
    fault("G1 503", Mode::Status(503)).await;
}

#[tokio::test]
async fn g1_status_429_retry_after() {
    fault("G1 429", Mode::Status(429)).await;
}

#[tokio::test]
async fn g1_status_404() {
    fault("G1 404", Mode::Status(404)).await;
}

#[tokio::test]
async fn g2_html_body() {
    fault("G2 HTML", Mode::Html).await;
}

#[tokio::test]
async fn g2_empty_key_set() {
    fault("G2 {\"keys\":[]}", Mode::Json(json!({"keys": []}))).await;
}

#[tokio::test]
async fn g2_every_key_invalid() {
    let weak = json!({"kty": "RSA", "kid": "weak", "n": b64([0xc5u8; 128]), "e": "AQAB"});
    let oct = json!({"kty": "oct", "kid": "oct", "k": b64([7u8; 32])});
    let private = {
        let mut k = rsa().jwk("k1");
        k["d"] = json!("AQAB");
        k
    };
    let encryption = {
        let mut k = rsa().jwk("k1");
        k["use"] = json!("enc");
        k
    };
    fault("G2 every key invalid", Mode::Json(json!({"keys": [weak, oct, private, encryption]})))
        .await;
}

#[tokio::test]
async fn g2_not_a_key_set() {
    fault("G2 JSON that is not a key set", Mode::Json(json!({"error": "temporarily_unavailable"})))
        .await;
}

#[tokio::test]
async fn g4_body_over_the_cap_with_length() {
    fault("G4 body over the cap (Content-Length)", Mode::Big { len: 256 * 1024, chunked: false })
        .await;
}

#[tokio::test]
async fn g4_body_over_the_cap_chunked() {
    fault("G4 body over the cap (chunked)", Mode::Big { len: 256 * 1024, chunked: true }).await;
}

#[tokio::test]
async fn g4_gzip_encoded_body_is_not_inflated() {
    fault("G4 gzip-encoded body", Mode::Gzip).await;
}

/// Control for G4: a padded set just under the cap is accepted, so the cap is what refuses the
/// big ones.
#[tokio::test]
async fn g4_body_under_the_cap_is_accepted() {
    let server = FaultServer::start(Mode::Big { len: MAX_BODY - 100, chunked: true }).await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(gw.cache.wait_ready(Duration::from_secs(5)).await);
    assert_eq!(send(&gw.layer, &Seen::default(), bearer(&token("k1"))).await.status, 200);
}

#[tokio::test]
async fn g5_slow_drip() {
    fault("G5 one byte per 100 ms", Mode::Drip).await;
}

#[tokio::test]
async fn g5_hanging_server() {
    fault("G5 accept and never answer", Mode::Hang).await;
}

#[tokio::test]
async fn g6_redirect_loop() {
    // A 302 to itself: the redirect is not followed by default.
    let server = FaultServer::start(Mode::Json(good_keys())).await;
    server.set(Mode::Redirect(server.url()));
    never_cached("G6 redirect loop", &server.url(), &|| server.hits()).await;
    // Cached first, then the loop.
    let server = FaultServer::start(Mode::Json(good_keys())).await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(gw.cache.wait_ready(Duration::from_secs(5)).await);
    server.set(Mode::Redirect(server.url()));
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(50)).await;
    cause_refetch_and_check("G6 redirect loop", &gw, &|| server.hits()).await;
}

#[tokio::test]
async fn g6_redirect_loop_with_redirects_followed() {
    // Even with redirects on (at most 2), a loop is a failed fetch, and bounded.
    let server = FaultServer::start(Mode::Json(json!({}))).await;
    server.set(Mode::Redirect(server.url()));
    let gw = gateway(cache_builder(&server.url()).follow_redirects(true).build().unwrap());
    let started = Instant::now();
    let res = send(&gw.layer, &Seen::default(), bearer(&token("k1"))).await;
    assert_eq!(res.status, 503);
    assert!(started.elapsed() <= FETCH_TIMEOUT + Duration::from_secs(1));
    assert!(
        server.hits() <= 3,
        "{} requests for one fetch with 2 redirects allowed",
        server.hits()
    );
}

#[tokio::test]
async fn g6_redirect_to_another_host_is_not_followed() {
    let elsewhere = JwksServer::start(Jwks::Keys(good_keys())).await;
    let server = FaultServer::start(Mode::Redirect(elsewhere.url())).await;
    never_cached("G6 redirect to another host", &server.url(), &|| server.hits()).await;
    assert_eq!(elsewhere.hits(), 0, "the redirect was followed");
}

#[tokio::test]
async fn g7_garbage_instead_of_http() {
    fault("G7 garbage", Mode::Garbage).await;
}

#[tokio::test]
async fn g7_connection_refused() {
    // (a): the IdP goes away after the keys were cached.
    let server = FaultServer::start(Mode::Json(good_keys())).await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(gw.cache.wait_ready(Duration::from_secs(5)).await);
    server.close().await;
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(50)).await;
    cause_refetch_and_check("G7 connection refused (cached)", &gw, &|| server.hits()).await;
    // (b): nothing ever listened there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    never_cached("G7 connection refused", &format!("http://127.0.0.1:{port}/jwks"), &|| 0).await;
}

#[tokio::test]
async fn g7_tls_to_a_plain_http_server() {
    // An https:// URL to a server that answers in plain HTTP: the handshake fails, closed.
    let server = FaultServer::start(Mode::Json(good_keys())).await;
    let url = format!("https://{}/jwks", server.addr);
    never_cached("G7 TLS to plain HTTP", &url, &|| server.hits()).await;
    assert!(server.hits() >= 1, "the client did connect");
}

#[tokio::test]
async fn g7_tls_to_a_garbage_server() {
    let server = FaultServer::start(Mode::Garbage).await;
    let url = format!("https://{}/jwks", server.addr);
    never_cached("G7 TLS to garbage", &url, &|| server.hits()).await;
}

#[tokio::test]
async fn g7_unresolvable_host() {
    // RFC 6761: `.invalid` never resolves. Bounded by the fetch timeout either way.
    never_cached("G7 DNS failure", "https://jwks.idp.invalid/jwks", &|| 0).await;
}

// ------------------------------------------------------------------------------------------
// G3, G8, G9
// ------------------------------------------------------------------------------------------

/// G3: a partially valid set keeps its valid keys; the others are skipped and counted.
#[tokio::test]
async fn g3_partially_valid_set() {
    let weak = json!({"kty": "RSA", "kid": "weak", "n": b64([0xc5u8; 128]), "e": "AQAB"});
    let server =
        FaultServer::start(Mode::Json(json!({"keys": [weak, rsa().jwk("k1"), {"kty": "EC"}]})))
            .await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(gw.cache.wait_ready(Duration::from_secs(5)).await);
    assert_eq!((gw.cache.stats().keys, gw.cache.key_ids()), (1, vec!["k1".to_string()]));
    assert_eq!(send(&gw.layer, &Seen::default(), bearer(&token("k1"))).await.status, 200);
    let res = send(&gw.layer, &Seen::default(), bearer(&token("weak"))).await;
    assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::UnknownKey)));
}

/// G8: unreachable at startup: readiness says so, requests get 503 (never a pass), and the
/// first good answer makes it ready, with no restart.
#[tokio::test]
async fn g8_unreachable_at_startup_then_recovers() {
    let server = FaultServer::start(Mode::Status(503)).await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(!gw.cache.wait_ready(Duration::from_millis(300)).await);
    assert_eq!(send(&gw.layer, &Seen::default(), bearer(&token("k1"))).await.status, 503);
    server.set(Mode::Json(good_keys()));
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(50)).await;
    // The next request's on-demand fetch (or the background retry) loads the keys.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = 0;
    while Instant::now() < deadline {
        status = send(&gw.layer, &Seen::default(), bearer(&token("k1"))).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(MIN_REFETCH).await;
    }
    assert_eq!(status, 200, "never recovered");
    assert!(gw.cache.is_ready());
}

/// G9: same `kid`, new key material: swapped at once, tokens of the old material fail (also
/// ones the verified-token cache had admitted).
#[tokio::test]
async fn g9_same_kid_new_material() {
    let server = FaultServer::start(Mode::Json(jwks_of(&[(rsa(), "k1")]))).await;
    let gw = gateway(cache_builder(&server.url()).build().unwrap());
    assert!(gw.cache.wait_ready(Duration::from_secs(5)).await);
    let old = token("k1");
    assert_eq!(send(&gw.layer, &Seen::default(), bearer(&old)).await.status, 200);
    assert_eq!(send(&gw.layer, &Seen::default(), bearer(&old)).await.status, 200, "cached");
    server.set(Mode::Json(jwks_of(&[(rsa2(), "k1")])));
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(50)).await;
    let _ = send(&gw.layer, &Seen::default(), bearer(&token("unknown"))).await;
    let res = send(&gw.layer, &Seen::default(), bearer(&old)).await;
    assert_eq!(
        (res.status, res.reason()),
        (401, Some(InvalidReason::BadSignature)),
        "old material, cached token"
    );
    let mut claims = claims();
    claims["jti"] = json!("new");
    assert_eq!(
        send(&gw.layer, &Seen::default(), bearer(&rsa2().token("k1", &claims))).await.status,
        200
    );
}
