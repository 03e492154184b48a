//! The adversarial corpus (`CORPUS.md` beside this file says what each row id means; sections A
//! to F and H, one module each) through the real layer: a real JWKS server on 127.0.0.1, keys
//! generated at test time, a pinned clock, and an echo service behind the layer.
//!
//! Every row is one or more named cases ("A1 alg none, empty signature", ...). For a refusal the
//! runner checks the status, the `error` code, the `WWW-Authenticate` challenge, the
//! `InvalidReason` attached to the response (where one answer is meaningful), and that neither
//! the inner service nor the subscription store was reached. Every table also holds controls
//! that must pass, so a harness that refuses everything cannot go green.
//!
//! JWKS-content rows (B-F) serve a crafted set and check that the bad keys are not held
//! (`JwksCache::stats().keys`) and that tokens naming them are refused. The padding rows (D8,
//! D10) sign malformed encodings with the real private key through a small raw-RSA helper, with
//! controls proving the helper right. IdP faults (B-G) live in `tests/idp_faults.rs`; the
//! Wycheproof primitive vectors behind D3-D11 are run in `tests/wycheproof.rs`.
//!
//! Every row passes: the key checks (ROCA, small-order Ed25519, points off the curve, leading
//! zeros) and the query-token stripping were added to the crate after this suite found them.

#[path = "../common/mod.rs"]
mod common;
mod raw_rsa;

mod claims;
mod dos;
mod encoding;
mod header_alg;
mod json;
mod key_material;
mod signature;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::KeyPair as _;
use bytes::Bytes;
use common::*;
use http::{HeaderValue, Request};
use http_body_util::Full;
use serde_json::{Value, json};
use tower_jwt_plan::defaults::{MAX_CANDIDATE_KEYS, MAX_KEYS_PER_SET, MAX_KID_BYTES};
use tower_jwt_plan::*;

use InvalidReason as R;

/// The pinned "now" of every layer here (2033-05-18).
const NOW: u64 = 2_000_000_000;
/// A second accepted audience, for the exact-match rows.
const API_AUD: &str = "https://api.example.com";

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn p256() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::p256)
}

fn p384() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::p384)
}

fn ed() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::ed)
}

/// A P-256 key the IdP never published.
fn evil() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::p256)
}

/// The IdP's set: `k1` (RSA, no `alg`), `rs-pinned` (RSA pinned to RS256), `ec1` (P-256),
/// `ec384` (P-384) and `ed1` (Ed25519).
fn served_keys() -> Value {
    let mut pinned = rsa2().jwk("rs-pinned");
    pinned["alg"] = json!("RS256");
    json!({"keys": [rsa().jwk("k1"), pinned, p256().jwk("ec1"), p384().jwk("ec384"), ed().jwk("ed1")]})
}

/// The plan under attack: RS256, PS256, ES256, ES384 (not EdDSA, never HS*), issuer and two
/// audiences required, scope `read` required, `sub` copied into `x-user-id`.
fn settings(cache: &JwksCache) -> JwtSettings {
    JwtSettings::new(KeySource::jwks(cache.clone()))
        .algorithms([Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384])
        .issuer(ISS)
        .audience(AUD)
        .audience(API_AUD)
        .required_scopes(["read"], ScopeMode::All)
        .claim_to_header("sub", "x-user-id")
}

type Builder = JwtPlanLayerBuilder<CountingStore>;

/// A layer with one plan `gold`, the header, `access_token` query and `jwt` cookie sources,
/// and the clock pinned at [`NOW`].
fn layer_with(
    settings: JwtSettings,
    store: &CountingStore,
    tweak: impl FnOnce(Builder) -> Builder,
) -> JwtPlanLayer<CountingStore> {
    let builder = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", settings))
        .resolver(store.clone())
        .token_source(TokenSource::default().with_query_param("access_token").with_cookie("jwt"))
        .clock(|| at(NOW));
    tweak(builder).build().unwrap()
}

struct Harness {
    server: JwksServer,
    cache: JwksCache,
    store: CountingStore,
    layer: JwtPlanLayer<CountingStore>,
}

async fn harness() -> Harness {
    harness_serving(served_keys()).await
}

async fn harness_serving(keys: Value) -> Harness {
    let server = JwksServer::start(Jwks::Keys(keys)).await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer_with(settings(&cache), &store, |b| b);
    Harness { server, cache, store, layer }
}

// ------------------------------------------------------------------------------------------
// Tokens
// ------------------------------------------------------------------------------------------

/// Claims of a valid token at [`NOW`].
fn good() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "client_id": CLIENT,
           "exp": NOW + 600, "iat": NOW - 10, "scope": "read write"})
}

/// [`good`] with one claim replaced (or added).
fn with(name: &str, value: Value) -> Value {
    let mut claims = good();
    claims[name] = value;
    claims
}

/// [`good`] without one claim.
fn without(name: &str) -> Value {
    let mut claims = good();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// A unique valid claim set (distinct tokens never hit the verified-token cache).
fn unique(n: usize) -> Value {
    with("jti", json!(format!("jti-{n}")))
}

fn hdr(alg: &str, kid: &str) -> String {
    json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string()
}

/// RS256 with `k1`, the everyday token.
fn rs(claims: &Value) -> String {
    rsa().token_with(Algorithm::RS256, "k1", claims)
}

/// A token whose header is this raw JSON text, correctly RS256-signed with `k1`.
fn rs_header(header: &str, claims: &Value) -> String {
    rsa().token_raw(Algorithm::RS256, header, &claims.to_string())
}

/// A token with this raw payload text, correctly RS256-signed with `k1`.
fn rs_payload(payload: &str) -> String {
    rsa().token_raw(Algorithm::RS256, &hdr("RS256", "k1"), payload)
}

/// A token over raw header and payload bytes, correctly RS256-signed with `k1`.
fn rs_bytes(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = rsa().sign(Algorithm::RS256, input.as_bytes());
    format!("{input}.{}", b64(sig))
}

fn split(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

fn signature(token: &str) -> Vec<u8> {
    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, split(token).2)
        .unwrap()
}

fn with_sig(token: &str, sig: &[u8]) -> String {
    let (h, p, _) = split(token);
    format!("{h}.{p}.{}", b64(sig))
}

/// A request with these headers (raw bytes, so tabs and odd values go through as sent).
fn req(uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

fn auth(value: &str) -> Request<Full<Bytes>> {
    req("/resource", &[("authorization", value)])
}

fn query(token: &str) -> Request<Full<Bytes>> {
    req(&format!("/resource?access_token={token}"), &[])
}

fn cookie(value: &str) -> Request<Full<Bytes>> {
    req("/resource", &[("cookie", value)])
}

// ------------------------------------------------------------------------------------------
// Table runner
// ------------------------------------------------------------------------------------------

/// What a case must get.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// 200, inner service called once, store asked once.
    Pass,
    /// 401 `JWT_MISSING_TOKEN`, bare `Bearer` challenge.
    Missing,
    /// 401 `JWT_INVALID_TOKEN`, `invalid_token` challenge, reason one of these (any if empty).
    Invalid(&'static [InvalidReason]),
    /// 403 `JWT_INSUFFICIENT_SCOPE`.
    Scope,
    /// 503 `JWKS_UNAVAILABLE`.
    Unavailable,
}

fn invalid(reasons: &'static [InvalidReason]) -> Want {
    Want::Invalid(reasons)
}

struct Case {
    name: String,
    req: Request<Full<Bytes>>,
    want: Want,
}

fn case(name: impl Into<String>, req: Request<Full<Bytes>>, want: Want) -> Case {
    Case { name: name.into(), req, want }
}

/// A case sending `token` as `Authorization: Bearer <token>`.
fn tcase(name: impl Into<String>, token: &str, want: Want) -> Case {
    case(name, auth(&format!("Bearer {token}")), want)
}

fn judge(res: &Answer, seen: &Seen, lookups: usize, want: Want) -> Result<(), String> {
    let got = format!("got {} {} reason {:?}", res.status, res.code(), res.reason());
    if let Want::Pass = want {
        if res.status != 200 {
            return Err(format!("expected 200, {got}"));
        }
        if seen.calls() != 1 || lookups != 1 {
            return Err(format!("passed, but inner calls {} and lookups {lookups}", seen.calls()));
        }
        return Ok(());
    }
    let (status, code) = match want {
        Want::Missing => (401, "JWT_MISSING_TOKEN"),
        Want::Invalid(_) => (401, "JWT_INVALID_TOKEN"),
        Want::Scope => (403, "JWT_INSUFFICIENT_SCOPE"),
        Want::Unavailable => (503, "JWKS_UNAVAILABLE"),
        Want::Pass => unreachable!(),
    };
    if res.status != status || res.code() != code {
        return Err(format!("expected {status} {code}, {got}"));
    }
    let challenge = res.challenge().unwrap_or("");
    match want {
        Want::Missing if challenge != "Bearer" => {
            return Err(format!("missing-token challenge is {challenge:?}"));
        }
        Want::Invalid(reasons) => {
            if !challenge.starts_with(r#"Bearer error="invalid_token""#) {
                return Err(format!("invalid-token challenge is {challenge:?}"));
            }
            if !reasons.is_empty() && !res.reason().is_some_and(|r| reasons.contains(&r)) {
                return Err(format!("expected a reason in {reasons:?}, {got}"));
            }
        }
        _ => {}
    }
    if seen.calls() != 0 {
        return Err(format!("refused ({got}) but the inner service was called"));
    }
    if lookups != 0 {
        return Err(format!("refused ({got}) but the subscription store was asked {lookups}x"));
    }
    Ok(())
}

/// Run every case through `layer`; fail once at the end with every mismatch, by name.
async fn run(layer: &JwtPlanLayer<CountingStore>, store: &CountingStore, cases: Vec<Case>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for Case { name, req, want } in cases {
        let seen = Seen::default();
        let before = store.lookups();
        let res = send(layer, &seen, req).await;
        if let Err(why) = judge(&res, &seen, store.lookups() - before, want) {
            failures.push(format!("  {name}: {why}"));
        }
    }
    eprintln!("{total} cases, {} failed", failures.len());
    assert!(total > 0);
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}
