//! The adversarial corpus (`../shared/reference/attack-corpus.md`, parts B-A to B-F and B-H)
//! through the real layer: a real JWKS server on 127.0.0.1, keys generated at test time, a
//! pinned clock, and an echo service behind the layer.
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

mod common;

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

// ------------------------------------------------------------------------------------------
// B-A. Header and algorithm
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn b_a_header_and_algorithm() {
    let h = harness().await;
    let attacker = JwksServer::start(Jwks::Keys(jwks_of(&[(evil(), "evil")]))).await;
    let claims = good();
    let body = claims.to_string();
    let valid = rs(&claims);
    let (_, _, rs_sig) = split(&valid);
    let unsigned = |header: &str, sig: &str| format!("{}.{}.{sig}", b64(header), b64(&body));

    let Signer::Rsa(kp) = rsa() else { unreachable!() };
    let spki = kp.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, spki.as_ref())
    );
    let Signer::P256(ec_kp) = p256() else { unreachable!() };
    let ec_point = ec_kp.public_key().as_ref().to_vec();
    let n_bytes = aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key()).n;
    let hs_with = |secret: &[u8], kid: &str| {
        Signer::hmac(secret).token_raw(Algorithm::HS256, &hdr("HS256", kid), &body)
    };

    let mut cases = vec![
        tcase("A0 control: RS256 with k1", &valid, Want::Pass),
        tcase(
            "A0 control: PS256 with k1 (no alg on the key)",
            &rsa().token_with(Algorithm::PS256, "k1", &unique(1)),
            Want::Pass,
        ),
        tcase(
            "A0 control: RS256 with rs-pinned",
            &rsa2().token_with(Algorithm::RS256, "rs-pinned", &unique(2)),
            Want::Pass,
        ),
        tcase("A0 control: ES256 with ec1", &p256().token("ec1", &unique(3)), Want::Pass),
        tcase("A0 control: ES384 with ec384", &p384().token("ec384", &unique(4)), Want::Pass),
        // A1-A3: alg none.
        tcase(
            "A1 alg none, empty signature",
            &unsigned(r#"{"alg":"none"}"#, ""),
            invalid(&[R::Malformed, R::AlgorithmNotAllowed]),
        ),
        tcase(
            "A1 alg none + kid, empty signature",
            &unsigned(r#"{"alg":"none","kid":"k1"}"#, ""),
            invalid(&[R::Malformed, R::AlgorithmNotAllowed]),
        ),
    ];
    for alg in ["None", "NONE", "nOnE", "none "] {
        let header = json!({"alg": alg, "kid": "k1"}).to_string();
        cases.push(tcase(
            format!("A2 alg {alg:?}"),
            &unsigned(&header, &rs_sig),
            invalid(&[R::AlgorithmNotAllowed]),
        ));
    }
    cases.push(tcase(
        "A3 alg none with a real RS256 signature",
        &unsigned(r#"{"alg":"none","kid":"k1"}"#, &rs_sig),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    cases.push(tcase(
        "A3 alg none with a non-empty garbage signature",
        &unsigned(r#"{"alg":"none"}"#, "c2ln"),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    // A4: alg missing or not a string.
    for header in [
        r#"{"kid":"k1"}"#,
        r#"{"alg":null,"kid":"k1"}"#,
        r#"{"alg":123,"kid":"k1"}"#,
        r#"{"alg":["RS256"],"kid":"k1"}"#,
        r#"{"alg":{},"kid":"k1"}"#,
        r#"{"alg":"","kid":"k1"}"#,
    ] {
        cases.push(tcase(
            format!("A4 {header}"),
            &rs_header(header, &claims),
            invalid(&[R::AlgorithmNotAllowed]),
        ));
    }
    // A5: unknown, weak or unconfigured algorithms.
    for alg in ["HS1", "RS1", "ES256K", "ES512", "PS1", "RS256 ", "rs256"] {
        cases.push(tcase(
            format!("A5 alg {alg:?}"),
            &rs_header(&hdr(alg, "k1"), &claims),
            invalid(&[R::AlgorithmNotAllowed]),
        ));
    }
    cases.push(tcase(
        "A5 EdDSA (not configured) with the published ed1 key",
        &ed().token_raw(Algorithm::EdDSA, &hdr("EdDSA", "ed1"), &body),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    cases.push(tcase(
        "A5 RS384 (not configured) with k1",
        &rsa().token_with(Algorithm::RS384, "k1", &claims),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    // A6: HS256 keyed with public key bytes.
    let confusions: [(&str, Vec<u8>, &str); 6] = [
        ("A6 HS256 keyed with the RSA public key PEM", pem.clone().into_bytes(), "k1"),
        ("A6 HS256 keyed with the RSA public key DER", spki.as_ref().to_vec(), "k1"),
        ("A6 HS256 keyed with the RSA JWK JSON", rsa().jwk("k1").to_string().into_bytes(), "k1"),
        ("A6 HS256 keyed with the RSA modulus", n_bytes, "k1"),
        ("A6 HS256 keyed with the EC point (Wycheproof tcId 31)", ec_point, "ec1"),
        ("A6 HS256 keyed with the EC JWK JSON", p256().jwk("ec1").to_string().into_bytes(), "ec1"),
    ];
    for (name, secret, kid) in confusions {
        cases.push(tcase(name, &hs_with(&secret, kid), invalid(&[R::AlgorithmNotAllowed])));
    }
    // A7: alg of the wrong family for the key named by kid.
    cases.push(tcase(
        "A7 RS256 header on the EC key ec1",
        &rsa().token_with(Algorithm::RS256, "ec1", &claims),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A7 ES256 header on the RSA key k1",
        &p256().token_with(Algorithm::ES256, "k1", &claims),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A7 PS256 on a JWK pinned to RS256",
        &rsa2().token_with(Algorithm::PS256, "rs-pinned", &claims),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    // A8: curve and alg mismatch.
    cases.push(tcase(
        "A8 ES256 header on the P-384 key",
        &p384().token_raw(Algorithm::ES384, &hdr("ES256", "ec384"), &body),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A8 ES384 header on the P-256 key",
        &p256().token_raw(Algorithm::ES256, &hdr("ES384", "ec1"), &body),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A8 ES512 header on the P-256 key",
        &p256().token_raw(Algorithm::ES256, &hdr("ES512", "ec1"), &body),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    // A9: embedded jwk with the attacker's key.
    for (name, kid) in [
        ("A9 embedded jwk, kid of a real key", Some("ec1")),
        ("A9 embedded jwk, no kid", None),
        ("A9 embedded jwk, kid only in the jwk", Some("attacker")),
    ] {
        let mut header = json!({"alg": "ES256", "jwk": evil().jwk(kid.unwrap_or("attacker"))});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        cases.push(tcase(
            name,
            &evil().token_raw(Algorithm::ES256, &header.to_string(), &body),
            invalid(&[R::BadSignature, R::UnknownKey]),
        ));
    }
    // A10: jku / x5u to an attacker URL: never fetched (the attacker's server counts hits).
    for (member, url, kid) in [
        ("jku", attacker.url(), "evil"),
        ("jku", attacker.url(), "ec1"),
        ("x5u", attacker.url(), "evil"),
        ("jku", "file:///etc/passwd".to_string(), "ec1"),
        ("jku", "http://169.254.169.254/latest/meta-data/".to_string(), "ec1"),
        ("x5u", "http://127.0.0.1:1/redirect".to_string(), "ec1"),
    ] {
        let header = json!({"alg": "ES256", "kid": kid, member: url}).to_string();
        cases.push(tcase(
            format!("A10 {member} {url} kid {kid}"),
            &evil().token_raw(Algorithm::ES256, &header, &body),
            invalid(&[R::BadSignature, R::UnknownKey]),
        ));
    }
    // A11: x5c with the attacker's self-made "chain".
    let Signer::P256(evil_kp) = evil() else { unreachable!() };
    let evil_der = evil_kp.public_key().as_der().unwrap();
    let x5c = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, evil_der.as_ref());
    for kid in [Some("ec1"), None] {
        let mut header = json!({"alg": "ES256", "x5c": [x5c.clone()]});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        cases.push(tcase(
            format!("A11 x5c self-signed, kid {kid:?}"),
            &evil().token_raw(Algorithm::ES256, &header.to_string(), &body),
            invalid(&[R::BadSignature, R::UnknownKey]),
        ));
    }
    // A12-A13: kid is an opaque map key.
    cases.push(tcase(
        "A12 kid path traversal, HS256 with an empty key",
        &hs_with(b"", "../../../../dev/null"),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    for kid in [
        "../../../../dev/null",
        "x' UNION SELECT 'secret'--",
        "|sleep 10",
        "$(sleep 10)",
        "\u{0}k1",
        "k1\u{0}",
        "k1 ",
        "K1",
    ] {
        cases.push(tcase(
            format!("A12/A13 kid {kid:?}"),
            &rsa().token_with(Algorithm::RS256, kid, &claims),
            invalid(&[R::UnknownKey]),
        ));
    }
    // A14: kid size and type.
    cases.push(tcase(
        "A14 kid of 257 bytes",
        &rs_header(&hdr("RS256", &"k".repeat(MAX_KID_BYTES + 1)), &claims),
        invalid(&[R::BadKeyId]),
    ));
    cases.push(tcase(
        "A14 kid of 256 bytes is allowed, but unknown",
        &rs_header(&hdr("RS256", &"k".repeat(MAX_KID_BYTES)), &claims),
        invalid(&[R::UnknownKey]),
    ));
    cases.push(tcase(
        "A14 kid of 1 MB",
        &rs_header(&hdr("RS256", &"k".repeat(1 << 20)), &claims),
        invalid(&[R::TooLarge]),
    ));
    for kid in ["1", "[]", "{}", "null", "true", r#"["k1"]"#] {
        cases.push(tcase(
            format!("A14 kid {kid}"),
            &rs_header(&format!(r#"{{"alg":"RS256","kid":{kid}}}"#), &claims),
            invalid(&[R::BadKeyId]),
        ));
    }
    // A16-A19: crit, b64, zip.
    for (name, header) in [
        ("A16 crit [exp-ext]", r#"{"alg":"RS256","kid":"k1","crit":["exp-ext"],"exp-ext":1}"#),
        ("A17 crit []", r#"{"alg":"RS256","kid":"k1","crit":[]}"#),
        ("A17 crit \"b64\" (not an array)", r#"{"alg":"RS256","kid":"k1","crit":"b64"}"#),
        ("A17 crit [alg] (a registered name)", r#"{"alg":"RS256","kid":"k1","crit":["alg"]}"#),
        ("A17 crit entry absent from the header", r#"{"alg":"RS256","kid":"k1","crit":["x"]}"#),
        ("A17 crit null", r#"{"alg":"RS256","kid":"k1","crit":null}"#),
        ("A18 b64 false with crit", r#"{"alg":"RS256","kid":"k1","b64":false,"crit":["b64"]}"#),
        ("A18 b64 false without crit", r#"{"alg":"RS256","kid":"k1","b64":false}"#),
        ("A18 b64 true", r#"{"alg":"RS256","kid":"k1","b64":true}"#),
        ("A19 zip DEF", r#"{"alg":"RS256","kid":"k1","zip":"DEF"}"#),
        ("A20 cty JWT (nested)", r#"{"alg":"RS256","kid":"k1","cty":"JWT"}"#),
        (
            "A20 cty application/jwt (nested)",
            r#"{"alg":"RS256","kid":"k1","cty":"application/jwt"}"#,
        ),
        ("A20 typ dpop+jwt (default allowlist)", r#"{"alg":"RS256","kid":"k1","typ":"dpop+jwt"}"#),
        ("A20 typ JWE", r#"{"alg":"RS256","kid":"k1","typ":"JWE"}"#),
        ("A20 typ 1 (not a string)", r#"{"alg":"RS256","kid":"k1","typ":1}"#),
    ] {
        cases.push(tcase(name, &rs_header(header, &claims), invalid(&[R::UnsupportedHeader])));
    }
    cases.push(tcase(
        "A20 control: typ application/at+jwt",
        &rs_header(r#"{"alg":"RS256","kid":"k1","typ":"application/at+jwt"}"#, &unique(5)),
        Want::Pass,
    ));
    cases.push(tcase(
        "A20 control: no typ",
        &rs_header(r#"{"alg":"RS256","kid":"k1"}"#, &unique(6)),
        Want::Pass,
    ));

    let started = Instant::now();
    run(&h.layer, &h.store, cases).await;
    assert!(started.elapsed() < Duration::from_secs(20), "kid payloads must not stall");
    assert_eq!(attacker.hits(), 0, "A10: a jku/x5u URL was fetched");
}

/// A6 at configuration time: HS* is never allowed next to a public key or a JWKS.
#[tokio::test]
async fn a6_hmac_algorithms_never_fit_public_keys() {
    let h = harness().await;
    let Signer::Rsa(kp) = rsa() else { unreachable!() };
    let spki = kp.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, spki.as_ref())
    );
    let sources = [
        ("PEM", KeySource::public_key_pem(&pem).unwrap()),
        ("JWK", KeySource::public_key_jwk(&rsa().jwk("k1").to_string()).unwrap()),
        ("JWKS", KeySource::jwks(h.cache.clone())),
    ];
    for (name, source) in sources {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let settings = JwtSettings::new(source.clone()).algorithms([Algorithm::RS256, alg]);
            let built = JwtPlanLayer::builder("echo")
                .plan(Plan::jwt("gold", "Gold", settings))
                .resolver(h.store.clone())
                .build();
            assert!(
                matches!(built, Err(ConfigError::AlgorithmKeyMismatch { .. })),
                "{name} with {alg:?}: {:?}",
                built.err()
            );
        }
    }
}

/// A15: with two issuers, a `kid` of issuer B presented as issuer A is refused (each plan
/// looks keys up in its own issuer's set only).
#[tokio::test]
async fn a15_kid_of_another_issuer() {
    let idp_a = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "a1")]))).await;
    let idp_b = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa2(), "b1")]))).await;
    let (cache_a, cache_b) = (jwks_cache(&idp_a).await, jwks_cache(&idp_b).await);
    let store = CountingStore::with([accepted("gold", CLIENT), accepted("silver", CLIENT)]);
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt(
            "gold",
            "Gold",
            JwtSettings::new(KeySource::jwks(cache_a)).issuer("https://a.test"),
        ))
        .plan(Plan::jwt(
            "silver",
            "Silver",
            JwtSettings::new(KeySource::jwks(cache_b)).issuer("https://b.test"),
        ))
        .resolver(store.clone())
        .clock(|| at(NOW))
        .build()
        .unwrap();
    let token = |signer: &Signer, kid: &str, iss: &str, n: usize| {
        signer.token(
            kid,
            &json!({"iss": iss, "client_id": CLIENT, "exp": NOW + 60, "jti": n.to_string()}),
        )
    };
    let cases = vec![
        tcase(
            "A15 control: issuer A with a1",
            &token(rsa(), "a1", "https://a.test", 1),
            Want::Pass,
        ),
        tcase(
            "A15 control: issuer B with b1",
            &token(rsa2(), "b1", "https://b.test", 2),
            Want::Pass,
        ),
        tcase(
            "A15 issuer A naming issuer B's key",
            &token(rsa2(), "b1", "https://a.test", 3),
            invalid(&[R::UnknownKey]),
        ),
        tcase(
            "A15 issuer B naming issuer A's key",
            &token(rsa(), "a1", "https://b.test", 4),
            invalid(&[R::UnknownKey]),
        ),
        tcase(
            "A15 an unknown issuer naming a real key",
            &token(rsa(), "a1", "https://c.test", 5),
            invalid(&[R::NoMatchingPlan]),
        ),
    ];
    run(&layer, &store, cases).await;
}

/// A20 with `token_types` configured: only those `typ`s pass, and a missing `typ` is refused.
#[tokio::test]
async fn a20_typ_enforcement() {
    let h = harness().await;
    let layer = layer_with(settings(&h.cache).token_types(["at+jwt"]), &h.store, |b| b);
    let header = |typ: Option<&str>| {
        let mut header = json!({"alg": "RS256", "kid": "k1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        header.to_string()
    };
    let cases = vec![
        tcase(
            "A20 control: typ at+jwt",
            &rs_header(&header(Some("at+jwt")), &unique(1)),
            Want::Pass,
        ),
        tcase(
            "A20 control: typ application/AT+JWT",
            &rs_header(&header(Some("application/AT+JWT")), &unique(2)),
            Want::Pass,
        ),
        tcase(
            "A20 an ID token (typ JWT) where at+jwt is required",
            &rs_header(&header(Some("JWT")), &good()),
            invalid(&[R::UnsupportedHeader]),
        ),
        tcase(
            "A20 no typ where at+jwt is required",
            &rs_header(&header(None), &good()),
            invalid(&[R::UnsupportedHeader]),
        ),
    ];
    run(&layer, &h.store, cases).await;
}

// ------------------------------------------------------------------------------------------
// B-B. Encoding and structure
// ------------------------------------------------------------------------------------------

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The same segment with non-zero unused trailing bits: a lenient decoder reads the same bytes.
fn non_canonical(segment: &str) -> String {
    let unused = match segment.len() % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => panic!("segment has no unused bits"),
    };
    let last = *segment.as_bytes().last().unwrap();
    let index = B64URL.iter().position(|c| *c == last).unwrap();
    assert_eq!(index & unused, 0, "canonical encoder");
    let mut out = segment[..segment.len() - 1].to_string();
    out.push(B64URL[index | 1] as char);
    out
}

/// The segment with `=` padding, as standard base64 would write it.
fn padded(segment: &str) -> String {
    format!("{segment}{}", "=".repeat((4 - segment.len() % 4) % 4))
}

/// A valid token whose signature segment uses `-` or `_`, and that segment in the standard
/// alphabet.
fn token_with_url_chars() -> (String, String) {
    for n in 0.. {
        let token = rs(&unique(1000 + n));
        let (h, p, s) = split(&token);
        if s.contains(['-', '_']) {
            let standard = s.replace('-', "+").replace('_', "/");
            return (token, format!("{h}.{p}.{standard}"));
        }
    }
    unreachable!()
}

#[tokio::test]
async fn b_b_encoding_and_structure() {
    let h = harness().await;
    let valid = rs(&good());
    let (hd, pl, sg) = split(&valid);
    let (url_token, standard) = token_with_url_chars();
    let (_, _, url_sig) = split(&url_token);
    let malformed = invalid(&[R::Malformed]);
    let jwe_header = b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
    let mut cases = vec![
        tcase("B0 control", &valid, Want::Pass),
        tcase("B0 control: signature with - or _", &url_token, Want::Pass),
        // B1-B4: segment counts and empty segments.
        tcase("B1 two segments h.p", &format!("{hd}.{pl}"), malformed),
        tcase("B1 one segment", &hd, malformed),
        case("B1 empty string", auth("Bearer "), malformed),
        tcase("B2 h..s", &format!("{hd}..{sg}"), malformed),
        tcase("B2 .p.s", &format!(".{pl}.{sg}"), malformed),
        tcase("B2 .p.", &format!(".{pl}."), malformed),
        tcase("B2 ..", "..", malformed),
        tcase("B3 h.p.s. (extra empty component)", &format!("{valid}."), malformed),
        tcase("B3 h..p.s (double dot)", &format!("{hd}..{pl}.{sg}"), malformed),
        tcase("B3 .h.p.s (leading dot)", &format!(".{valid}"), malformed),
        tcase("B4 h.p.s.foo", &format!("{valid}.Zm9v"), malformed),
        // B5: JWE compact serialization.
        tcase(
            "B5 JWE compact (5 segments)",
            &format!(
                "{jwe_header}.{}.{}.{}.{}",
                b64([1u8; 256]),
                b64([2u8; 12]),
                b64([3u8; 40]),
                b64([4u8; 16])
            ),
            malformed,
        ),
        tcase(
            "B5 JWE header in a 3-segment token",
            &rs_header(r#"{"alg":"RS256","kid":"k1","enc":"A256GCM"}"#, &good()),
            invalid(&[R::UnsupportedHeader]),
        ),
        // B6: dot floods.
        tcase("B6 8000 dots", &".".repeat(8000), malformed),
        tcase("B6 4000 x a.", &"a.".repeat(4000), malformed),
        tcase("B6 100000 dots (over the size cap)", &".".repeat(100_000), invalid(&[R::TooLarge])),
        // B7: JSON serialization in the bearer slot.
        tcase(
            "B7 general JSON serialization",
            &json!({"payload": pl, "signatures": [{"protected": hd, "signature": sg}]}).to_string(),
            malformed,
        ),
        tcase(
            "B7 flattened JSON serialization",
            &json!({"payload": pl, "protected": hd, "header": {"kid": "k1"}, "signature": sg})
                .to_string(),
            malformed,
        ),
        tcase(
            "B7 JSON serialization, base64url-wrapped",
            &b64(json!({"payload": pl, "protected": hd, "signature": sg}).to_string()),
            malformed,
        ),
        // B8: standard alphabet.
        tcase("B8 + and / in the signature", &standard, malformed),
        tcase("B8 + in the header", &format!("{}+.{pl}.{sg}", &hd[..hd.len() - 1]), malformed),
        // B9: padding.
        tcase("B9 padded signature", &format!("{hd}.{pl}.{}", padded(&sg)), malformed),
        tcase("B9 padded header", &format!("{}.{pl}.{sg}", padded(&hd)), malformed),
        tcase("B9 padded payload", &format!("{hd}.{}.{sg}", padded(&pl)), malformed),
        tcase("B9 lone = after the signature", &format!("{valid}="), malformed),
        // B10: non-canonical trailing bits (a lenient decoder would verify the signature).
        tcase(
            "B10 non-canonical signature",
            &format!("{hd}.{pl}.{}", non_canonical(&sg)),
            malformed,
        ),
        tcase(
            "B10 non-canonical signature with - or _",
            &format!("{}.{}", url_token.rsplit_once('.').unwrap().0, non_canonical(&url_sig)),
            malformed,
        ),
    ];
    if hd.len() % 4 >= 2 {
        cases.push(tcase(
            "B10 non-canonical header",
            &format!("{}.{pl}.{sg}", non_canonical(&hd)),
            malformed,
        ));
    }
    if pl.len() % 4 >= 2 {
        cases.push(tcase(
            "B10 non-canonical payload",
            &format!("{hd}.{}.{sg}", non_canonical(&pl)),
            malformed,
        ));
    }
    // B11: stray characters. Through the header where HTTP can carry them ...
    let mid = sg.len() / 2;
    for (name, token) in [
        ("space", format!("{hd}.{pl}.{} {}", &sg[..mid], &sg[mid..])),
        ("tab", format!("{hd}.{pl}.{}\t{}", &sg[..mid], &sg[mid..])),
        ("? in the signature", format!("{hd}.{pl}.{}?{}", &sg[..mid], &sg[mid..])),
        ("? in the header (Wycheproof 372)", format!("{}?{}.{pl}.{sg}", &hd[..4], &hd[4..])),
        ("? in the payload (Wycheproof 373)", format!("{hd}.{}?{}.{sg}", &pl[..4], &pl[4..])),
        ("%2E for the first dot", format!("{hd}%2E{pl}.{sg}")),
        ("* in the payload", format!("{hd}.{}*{}.{sg}", &pl[..4], &pl[4..])),
    ] {
        cases.push(tcase(format!("B11 {name}"), &token, malformed));
    }
    // ... and through the query parameter for what a header value cannot hold.
    for (name, inserted) in
        [("LF", "%0A"), ("CRLF", "%0D%0A"), ("NUL", "%00"), ("space", "%20"), ("tab", "%09")]
    {
        cases.push(case(
            format!("B11 {name} inside the token (query)"),
            query(&format!("{hd}.{pl}.{}{inserted}{}", &sg[..mid], &sg[mid..])),
            malformed,
        ));
    }
    cases.push(case("B11 invalid UTF-8 (query)", query(&format!("{hd}.{pl}.{sg}%FF")), malformed));
    // B12: exactly one SP between scheme and token, nothing after.
    for (name, value) in [
        ("two spaces", format!("Bearer  {valid}")),
        ("trailing space", format!("Bearer {valid} ")),
        ("trailing tab", format!("Bearer {valid}\t")),
        ("tab separator", format!("Bearer\t{valid}")),
        ("space then tab", format!("Bearer \t{valid}")),
        ("comma-joined second credential", format!("Bearer {valid}, Bearer {valid}")),
    ] {
        cases.push(case(format!("B12 {name}"), auth(&value), malformed));
    }
    run(&h.layer, &h.store, cases).await;
}

// ------------------------------------------------------------------------------------------
// B-C. JSON content
// ------------------------------------------------------------------------------------------

/// A payload whose `exp` is this raw JSON text (and otherwise valid).
fn raw_exp(exp: &str) -> String {
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","client_id":"{CLIENT}","scope":"read","exp":{exp}}}"#)
}

fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_object(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[tokio::test]
async fn b_c_json_content() {
    let h = harness().await;
    let malformed = invalid(&[R::Malformed]);
    let body = good().to_string();
    let inner = &body[1..body.len() - 1];
    let mut cases = vec![
        tcase("C0 control", &rs(&good()), Want::Pass),
        tcase(
            "C0 control: nested claim of depth 20",
            &rs_payload(&format!(r#"{{{inner},"jti":"n","x":{}}}"#, nested_object(20))),
            Want::Pass,
        ),
    ];
    // C1: not an object.
    for text in ["123", r#""x""#, "[]", "null", "true", r#"[{"alg":"RS256"}]"#] {
        cases.push(tcase(format!("C1 header {text}"), &rs_header(text, &good()), malformed));
        cases.push(tcase(format!("C1 payload {text}"), &rs_payload(text), malformed));
    }
    // C2-C3: duplicate member names, also via escapes and nested.
    for (name, header) in [
        ("C2 header alg twice", r#"{"alg":"RS256","kid":"k1","alg":"none"}"#),
        ("C2 header kid twice", r#"{"alg":"RS256","kid":"k1","kid":"ec1"}"#),
        ("C3 header \\u0061lg", r#"{"alg":"RS256","kid":"k1","\u0061lg":"RS256"}"#),
    ] {
        cases.push(tcase(name, &rs_header(header, &good()), malformed));
    }
    for (name, payload) in [
        ("C2 payload sub twice", format!(r#"{{{inner},"sub":"mallory"}}"#)),
        ("C2 payload exp twice", format!(r#"{{{inner},"exp":{}}}"#, NOW + 99_999)),
        ("C2 payload client_id twice", format!(r#"{{{inner},"client_id":"other"}}"#)),
        ("C3 payload \\u0065xp", format!(r#"{{{inner},"\u0065xp":{}}}"#, NOW + 99_999)),
        ("C3 payload \\u0073ub", format!(r#"{{{inner},"\u0073ub":"mallory"}}"#)),
        ("C3 duplicate inside a nested object", format!(r#"{{{inner},"x":{{"b":1,"\u0062":2}}}}"#)),
    ] {
        cases.push(tcase(name, &rs_payload(&payload), malformed));
    }
    // C4: nesting deeper than the parser allows (no stack overflow).
    cases.push(tcase(
        "C4 array nested 2500 deep",
        &rs_payload(&format!(r#"{{{inner},"x":{}}}"#, nested_array(2500))),
        malformed,
    ));
    cases.push(tcase(
        "C4 object nested 200 deep",
        &rs_payload(&format!(r#"{{{inner},"x":{}}}"#, nested_object(200))),
        malformed,
    ));
    cases.push(tcase(
        "C4 header nested 1000 deep",
        &rs_header(&format!(r#"{{"alg":"RS256","kid":"k1","x":{}}}"#, nested_array(1000)), &good()),
        malformed,
    ));
    // C5: huge JSON: refused at the size cap, wherever it is carried.
    let huge = rs(&with("pad", json!("x".repeat(200_000))));
    cases.push(tcase("C5 200 KB token (header)", &huge, invalid(&[R::TooLarge])));
    cases.push(case(
        "C5 200 KB token (cookie)",
        cookie(&format!("jwt={huge}")),
        invalid(&[R::TooLarge]),
    ));
    // A URI is capped at 64 KiB by `http`: 40 KB in the query.
    let big = rs(&with("pad", json!("x".repeat(30_000))));
    cases.push(case("C5 40 KB token (query)", query(&big), invalid(&[R::TooLarge])));
    cases.push(tcase(
        "C5 token just over 8 KiB",
        &rs(&with("pad", json!("x".repeat(6200)))),
        invalid(&[R::TooLarge]),
    ));
    // C6: numbers.
    for exp in [
        "1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "0x77359400",
        "02000000600",
        "+2000000600",
        ".5",
        "2000000600.",
    ] {
        cases.push(tcase(format!("C6 exp {exp}"), &rs_payload(&raw_exp(exp)), malformed));
    }
    cases.push(tcase("C6 exp -0", &rs_payload(&raw_exp("-0")), invalid(&[R::Expired])));
    cases.push(tcase("C6 exp -0.0", &rs_payload(&raw_exp("-0.0")), invalid(&[R::Expired])));
    cases.push(tcase(
        "C6 control: exp 9007199254740993",
        &rs_payload(&raw_exp("9007199254740993")),
        Want::Pass,
    ));
    cases.push(tcase(
        "C6 control: exp 2.0000006e9",
        &rs_payload(&raw_exp("2.0000006e9")),
        Want::Pass,
    ));
    // C7: text encodings.
    let utf16: Vec<u8> = body.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut utf16_bom = vec![0xff, 0xfe];
    utf16_bom.extend(&utf16);
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend(body.as_bytes());
    let in_sub = |bytes: &[u8]| {
        let mut p = format!(r#"{{{inner},"name":""#).into_bytes();
        p.extend(bytes);
        p.extend(br#""}"#);
        p
    };
    let header = hdr("RS256", "k1");
    for (name, payload) in [
        ("C7 invalid UTF-8 byte", in_sub(b"\xff")),
        ("C7 overlong encoding of /", in_sub(b"\xc0\xaf")),
        ("C7 CESU-8 surrogate", in_sub(b"\xed\xa0\x80")),
        ("C7 lone surrogate escape", in_sub(br"\ud800")),
        ("C7 lone low surrogate escape", in_sub(br"\udc00x")),
        ("C7 UTF-16LE body", utf16),
        ("C7 UTF-16LE body with BOM", utf16_bom),
        ("C7 UTF-8 BOM", bom),
        ("C7 raw control character in a string", in_sub(b"a\x01b")),
    ] {
        cases.push(tcase(name, &rs_bytes(header.as_bytes(), &payload), malformed));
    }
    cases.push(tcase(
        "C7 invalid UTF-8 in the header",
        &rs_bytes(b"{\"alg\":\"RS256\",\"kid\":\"k1\xff\"}", body.as_bytes()),
        malformed,
    ));
    // C8: not strict JSON.
    for (name, payload) in [
        ("C8 trailing garbage", format!("{body}xyz")),
        ("C8 a second object", format!("{body}{{}}")),
        ("C8 comment", format!("{{/*c*/{inner}}}")),
        ("C8 line comment", format!("{{{inner}//c\n}}")),
        ("C8 single quotes", body.replace('"', "'")),
        ("C8 trailing comma", format!("{{{inner},}}")),
        ("C8 unquoted member name", format!(r#"{{{inner},jti:"x"}}"#)),
    ] {
        cases.push(tcase(name, &rs_payload(&payload), malformed));
    }
    cases.push(tcase(
        "C8 trailing garbage in the header",
        &rs_header(&format!("{}xyz", hdr("RS256", "k1")), &good()),
        malformed,
    ));
    cases.push(tcase(
        "C8 control: whitespace around members",
        &rs_payload(&format!("{{ {} }}\n", inner.replace(',', " ,\n\t"))),
        Want::Pass,
    ));
    run(&h.layer, &h.store, cases).await;
}

// ------------------------------------------------------------------------------------------
// B-D. Signature bytes
// ------------------------------------------------------------------------------------------

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// The order of P-256 and its field prime.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
/// The order of Ed25519's base point, little-endian.
const ED25519_L: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

/// `a - b` for big-endian numbers of one length, `a >= b`.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = a[i] as i16 - b[i] as i16 - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// `a + b` for little-endian numbers of one length (no overflow expected).
fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut carry = 0u16;
    for i in 0..a.len() {
        let s = a[i] as u16 + b[i] as u16 + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    assert_eq!(carry, 0);
    out
}

fn der_integer(x: &[u8]) -> Vec<u8> {
    let start = x.iter().position(|b| *b != 0).unwrap_or(x.len() - 1);
    let mut v = x[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

/// An ECDSA P1363 signature (r‖s) as ASN.1 DER.
fn der_signature(p1363: &[u8]) -> Vec<u8> {
    let (r, s) = p1363.split_at(p1363.len() / 2);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[tokio::test]
async fn b_d_signature_bytes() {
    let h = harness().await;
    let claims = good();
    let bad_sig = invalid(&[R::BadSignature]);
    let es = p256().token_with(Algorithm::ES256, "ec1", &unique(1));
    let es_sig = signature(&es);
    assert_eq!(es_sig.len(), 64);
    let (r, s) = es_sig.split_at(32);
    let n = hex(P256_N);
    let one = {
        let mut v = vec![0u8; 32];
        v[31] = 1;
        v
    };
    let n_minus_1 = sub_be(&n, &one);
    let high_s = [r, &sub_be(&n, s)].concat();
    let es_claims = with("jti", json!("es"));
    let es_forged =
        |sig: &[u8]| with_sig(&p256().token_with(Algorithm::ES256, "ec1", &es_claims), sig);
    let rs_valid = rs(&unique(2));
    let rs_sig = signature(&rs_valid);

    let mut cases = vec![
        tcase("D0 control: ES256", &es, Want::Pass),
        tcase("D7 high-s (n - s) is a valid ECDSA signature", &with_sig(&es, &high_s), Want::Pass),
        tcase("D0 control: RS256", &rs_valid, Want::Pass),
        // D1: empty signatures.
        tcase(
            "D1 RS256 h.p.",
            &format!("{}.", rs(&claims).rsplit_once('.').unwrap().0),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "D1 HS256 h.p.",
            &format!("{}.{}.", b64(hdr("HS256", "k1")), b64(claims.to_string())),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "D1 ES256 h.p.",
            &format!("{}.", es.rsplit_once('.').unwrap().0),
            invalid(&[R::Malformed]),
        ),
        tcase("D1 ES256 one zero byte", &es_forged(&[0]), bad_sig),
        // D3: the psychic signature.
        tcase("D3 ES256 r = s = 0", &es_forged(&[0; 64]), bad_sig),
        tcase(
            "D3 ES256 r = s = 0, no kid",
            &format!(
                "{}.{}.{}",
                b64(r#"{"alg":"ES256"}"#),
                b64(es_claims.to_string()),
                b64([0u8; 64])
            ),
            bad_sig,
        ),
    ];
    // D4: r, s at the edges of [1, n - 1].
    let zero = vec![0u8; 32];
    let max = vec![0xffu8; 32];
    let p = hex(P256_P);
    let values: [(&str, &[u8]); 6] =
        [("0", &zero), ("1", &one), ("n-1", &n_minus_1), ("n", &n), ("p", &p), ("2^256-1", &max)];
    for (rn, rv) in values {
        for (sn, sv) in values {
            if rn == "0" && sn == "0" {
                continue;
            }
            cases.push(tcase(
                format!("D4 ES256 r = {rn}, s = {sn}"),
                &es_forged(&[rv, sv].concat()),
                bad_sig,
            ));
        }
    }
    cases.push(tcase("D4 ES256 valid r, s = n", &es_forged(&[r, &n].concat()), bad_sig));
    cases.push(tcase(
        "D4 ES256 valid r, s + n overflowing",
        &es_forged(&[r, &max].concat()),
        bad_sig,
    ));
    // D5: lengths.
    let zero_padded = [&[0u8][..], r, &[0], s].concat();
    for (name, sig) in [
        ("D5 ES256 63 bytes", es_sig[..63].to_vec()),
        ("D5 ES256 65 bytes (trailing zero)", [&es_sig[..], &[0]].concat()),
        ("D5 ES256 65 bytes (leading zero)", [&[0u8][..], &es_sig].concat()),
        ("D5 ES256 66 bytes (zero-padded halves)", zero_padded),
        ("D5 ES256 96 bytes (ES384 length)", [&es_sig[..], &[0; 32]].concat()),
        ("D5 ES256 128 bytes (doubled)", [&es_sig[..], &es_sig].concat()),
        // D6: DER instead of r‖s.
        ("D6 ES256 DER-encoded", der_signature(&es_sig)),
    ] {
        cases.push(tcase(name, &with_sig(&es, &sig), bad_sig));
    }
    // D8 (layer level; the padding zoo is in d8_d10_padding_variants and tests/wycheproof.rs).
    let mut flipped = rs_sig.clone();
    flipped[128] ^= 1;
    cases.push(tcase("D8 RS256 one bit flipped", &with_sig(&rs_valid, &flipped), bad_sig));
    let input = rs_valid.rsplit_once('.').unwrap().0.to_string();
    for (name, alg) in [
        ("D8 RS256 header, RS384 DigestInfo", Algorithm::RS384),
        ("D8 RS256 header, RS512 DigestInfo", Algorithm::RS512),
        ("D8 RS256 header, PSS padding", Algorithm::PS256),
    ] {
        cases.push(tcase(
            name,
            &format!("{input}.{}", b64(rsa().sign(alg, input.as_bytes()))),
            bad_sig,
        ));
    }
    // D9: RSA signature length != modulus length.
    for (name, sig) in [
        ("D9 RS256 255 bytes", rs_sig[1..].to_vec()),
        ("D9 RS256 257 bytes (leading zero)", [&[0u8][..], &rs_sig].concat()),
        ("D9 RS256 257 bytes (trailing zero)", [&rs_sig[..], &[0]].concat()),
        ("D9 RS256 512 bytes", [&rs_sig[..], &rs_sig].concat()),
        ("D9 RS256 1 byte", vec![1]),
        ("D9 RS256 all zero", vec![0; 256]),
        ("D9 RS256 equal to n", {
            let Signer::Rsa(kp) = rsa() else { unreachable!() };
            aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key()).n
        }),
    ] {
        cases.push(tcase(name, &with_sig(&rs_valid, &sig), bad_sig));
    }
    // D10 (hash / MGF mismatch; salt lengths in d8_d10_padding_variants).
    let ps = rsa().token_with(Algorithm::PS256, "k1", &unique(3));
    let ps_input = ps.rsplit_once('.').unwrap().0.to_string();
    cases.push(tcase("D0 control: PS256", &ps, Want::Pass));
    for (name, alg) in [
        ("D10 PS256 header, PS384 signature (hash and MGF1-SHA384)", Algorithm::PS384),
        ("D10 PS256 header, PS512 signature", Algorithm::PS512),
        ("D10 PS256 header, PKCS#1 v1.5 signature", Algorithm::RS256),
    ] {
        cases.push(tcase(
            name,
            &format!("{ps_input}.{}", b64(rsa().sign(alg, ps_input.as_bytes()))),
            bad_sig,
        ));
    }
    run(&h.layer, &h.store, cases).await;
}

/// D2: HMAC tags of the wrong length, against a plan with an HMAC secret.
#[tokio::test]
async fn d2_hmac_tag_length() {
    let secret = [0x5au8; 32];
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let settings = JwtSettings::new(KeySource::hmac_secret(secret))
        .algorithms([Algorithm::HS256])
        .issuer(ISS)
        .audience(AUD);
    let layer = layer_with(settings, &store, |b| b);
    let hmac = Signer::hmac(&secret);
    let valid = hmac.token_with(Algorithm::HS256, "any", &good());
    let tag = signature(&valid);
    let bad_sig = invalid(&[R::BadSignature]);
    let other = hmac.token_with(Algorithm::HS256, "any", &unique(1));
    let mut cases = vec![tcase("D2 control: HS256", &other, Want::Pass)];
    for (name, sig) in [
        ("D2 1 byte", vec![tag[0]]),
        ("D2 31 bytes (truncated tag)", tag[..31].to_vec()),
        ("D2 16 bytes (half tag)", tag[..16].to_vec()),
        ("D2 33 bytes (tag + 0)", [&tag[..], &[0]].concat()),
        ("D2 64 bytes (tag twice)", [&tag[..], &tag].concat()),
        ("D2 32 zero bytes", vec![0; 32]),
        (
            "D2 HS512-length tag",
            hmac.sign(Algorithm::HS512, valid.rsplit_once('.').unwrap().0.as_bytes()),
        ),
    ] {
        cases.push(tcase(name, &with_sig(&valid, &sig), bad_sig));
    }
    cases.push(tcase(
        "D2 HS384 header on an HS256-only plan",
        &hmac.token_with(Algorithm::HS384, "any", &good()),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    run(&layer, &store, cases).await;
}

/// D11: Ed25519 with S >= L, and a small-order public key with an identity signature.
#[tokio::test]
async fn d11_ed25519_malleability() {
    let h = harness().await;
    let settings =
        JwtSettings::new(KeySource::jwks(h.cache.clone())).algorithms([Algorithm::EdDSA]);
    let layer = layer_with(settings, &h.store, |b| b);
    let valid = ed().token_raw(Algorithm::EdDSA, &hdr("EdDSA", "ed1"), &good().to_string());
    let sig = signature(&valid);
    let (big_r, small_s) = sig.split_at(32);
    let l = hex(ED25519_L);
    let s_plus_l = [big_r, &add_le(small_s, &l)].concat();
    let mut flipped_r = sig.clone();
    flipped_r[0] ^= 1;
    let cases = vec![
        tcase("D11 control: EdDSA", &valid, Want::Pass),
        tcase(
            "D11 S + L (non-canonical S)",
            &with_sig(&valid, &s_plus_l),
            invalid(&[R::BadSignature]),
        ),
        tcase("D11 S = L", &with_sig(&valid, &[big_r, &l].concat()), invalid(&[R::BadSignature])),
        tcase("D11 R modified", &with_sig(&valid, &flipped_r), invalid(&[R::BadSignature])),
        tcase("D11 63 bytes", &with_sig(&valid, &sig[..63]), invalid(&[R::BadSignature])),
        tcase(
            "D11 65 bytes",
            &with_sig(&valid, &[&sig[..], &[0]].concat()),
            invalid(&[R::BadSignature]),
        ),
        tcase("D11 all zero", &with_sig(&valid, &[0; 64]), invalid(&[R::BadSignature])),
    ];
    run(&layer, &h.store, cases).await;
}

/// The identity point of edwards25519 (y = 1), encoded: a public key of small order.
fn ed25519_identity() -> [u8; 32] {
    let mut point = [0u8; 32];
    point[0] = 1;
    point
}

/// D11: a small-order Ed25519 public key in the JWKS must not let the trivial signature
/// (R = identity, S = 0) verify any message.
#[tokio::test]
async fn d11_small_order_ed25519_key() {
    let small =
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "small", "x": b64(ed25519_identity())});
    let h = harness_serving(json!({"keys": [rsa().jwk("k1"), small]})).await;
    let settings =
        JwtSettings::new(KeySource::jwks(h.cache.clone())).algorithms([Algorithm::EdDSA]);
    let layer = layer_with(settings, &h.store, |b| b);
    let input = format!("{}.{}", b64(hdr("EdDSA", "small")), b64(good().to_string()));
    let trivial = [&ed25519_identity()[..], &[0u8; 32]].concat();
    // A non-canonical encoding of the identity (y = p + 1) as R.
    let mut non_canonical_r = [0xffu8; 32];
    non_canonical_r[0] = 0xee;
    non_canonical_r[31] = 0x7f;
    let cases = vec![
        tcase(
            "D11 small-order key, R = identity, S = 0",
            &format!("{input}.{}", b64(&trivial)),
            invalid(&[]),
        ),
        tcase(
            "D11 small-order key, non-canonical R, S = 0",
            &format!("{input}.{}", b64([&non_canonical_r[..], &[0u8; 32]].concat())),
            invalid(&[]),
        ),
    ];
    run(&layer, &h.store, cases).await;
}

// ---- Raw RSA, for the padding rows (D8, D10) and the ROCA key (F3) ------------------------

/// One DER TLV: (contents, rest).
fn der(input: &[u8]) -> (&[u8], &[u8]) {
    let (len, start) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        (input[2..2 + n].iter().fold(0usize, |l, b| l << 8 | *b as usize), 2 + n)
    };
    (&input[start..start + len], &input[start + len..])
}

/// Big-endian bytes as `count` little-endian 32-bit limbs.
fn limbs(be: &[u8], count: usize) -> Vec<u32> {
    let mut out = vec![0u32; count];
    for (i, byte) in be.iter().rev().enumerate() {
        out[i / 4] |= (*byte as u32) << (8 * (i % 4));
    }
    out
}

fn to_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    (0..len).rev().map(|i| (limbs[i / 4] >> (8 * (i % 4))) as u8).collect()
}

/// `a >= n`, where `a` may have more limbs than `n`.
fn geq(a: &[u32], n: &[u32]) -> bool {
    if a.len() > n.len() && a[n.len()..].iter().any(|l| *l != 0) {
        return true;
    }
    for i in (0..n.len()).rev() {
        let ai = a.get(i).copied().unwrap_or(0);
        if ai != n[i] {
            return ai > n[i];
        }
    }
    true
}

/// `a -= n` (wrapping at `a`'s width).
fn sub_assign(a: &mut [u32], n: &[u32]) {
    let mut borrow = 0i64;
    for (i, limb) in a.iter_mut().enumerate() {
        let d = *limb as i64 - n.get(i).copied().unwrap_or(0) as i64 - borrow;
        borrow = i64::from(d < 0);
        *limb = d.rem_euclid(1 << 32) as u32;
    }
}

/// `a += b` (wrapping at `a`'s width).
fn add_assign(a: &mut [u32], b: &[u32]) {
    let mut carry = 0u64;
    for (i, limb) in a.iter_mut().enumerate() {
        let x = *limb as u64 + b.get(i).copied().unwrap_or(0) as u64 + carry;
        *limb = x as u32;
        carry = x >> 32;
    }
}

/// Montgomery arithmetic modulo one odd number, on 32-bit limbs.
struct Mont {
    n: Vec<u32>,
    n0inv: u32,
    r2: Vec<u32>,
}

impl Mont {
    fn new(n_be: &[u8]) -> Self {
        let n = limbs(n_be, n_be.len().div_ceil(4));
        let mut inv = 1u32;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        // R^2 mod n, by doubling 1 as often as R^2 has bits.
        let mut r2 = vec![0u32; n.len()];
        r2[0] = 1;
        for _ in 0..64 * n.len() {
            let mut carry = 0u64;
            for limb in r2.iter_mut() {
                let v = (*limb as u64) << 1 | carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry == 1 || geq(&r2, &n) {
                sub_assign(&mut r2, &n);
            }
        }
        Self { n0inv: inv.wrapping_neg(), n, r2 }
    }

    /// `t * R^-1 mod n` for any `t < n * R` (up to twice as many limbs as `n`).
    fn reduce(&self, t: &[u32]) -> Vec<u32> {
        let k = self.n.len();
        let mut t = t.to_vec();
        t.resize(2 * k + 1, 0);
        for i in 0..k {
            let m = t[i].wrapping_mul(self.n0inv);
            let mut carry = 0u64;
            for j in 0..k {
                let x = t[i + j] as u64 + m as u64 * self.n[j] as u64 + carry;
                t[i + j] = x as u32;
                carry = x >> 32;
            }
            let mut at = i + k;
            while carry != 0 {
                let x = t[at] as u64 + carry;
                t[at] = x as u32;
                carry = x >> 32;
                at += 1;
            }
        }
        let mut r = t[k..].to_vec();
        if geq(&r, &self.n) {
            sub_assign(&mut r, &self.n);
        }
        r.truncate(k);
        r
    }

    /// `a * b * R^-1 mod n`.
    fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        self.reduce(&product(a, b))
    }

    /// `base^exp mod n` for `base < n * R`, in normal form.
    fn pow(&self, base: &[u32], exp: &[u8]) -> Vec<u32> {
        // reduce: base R^-1; times R^2 twice (each with R^-1): base R, the Montgomery form.
        let base = self.mul(&self.mul(&self.reduce(base), &self.r2), &self.r2);
        // A fixed 4-bit window.
        let mut table = vec![self.reduce(&self.r2)];
        for i in 1..16 {
            table.push(self.mul(&table[i - 1], &base));
        }
        let mut acc = table[0].clone();
        for byte in exp {
            for nibble in [byte >> 4, byte & 15] {
                for _ in 0..4 {
                    acc = self.mul(&acc, &acc);
                }
                if nibble != 0 {
                    acc = self.mul(&acc, &table[nibble as usize]);
                }
            }
        }
        self.reduce(&acc)
    }
}

/// Schoolbook product.
fn product(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut t = vec![0u32; a.len() + b.len()];
    for (i, &bi) in b.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &aj) in a.iter().enumerate() {
            let x = t[i + j] as u64 + aj as u64 * bi as u64 + carry;
            t[i + j] = x as u32;
            carry = x >> 32;
        }
        t[i + a.len()] = carry as u32;
    }
    t
}

/// The RSA private operation with the CRT, so the tests can sign encodings no conforming signer
/// produces (`em^d mod n`).
struct RawRsa {
    p: Mont,
    q: Mont,
    dp: Vec<u8>,
    dq: Vec<u8>,
    qi: Vec<u32>,
    bytes: usize,
}

impl RawRsa {
    fn of(signer: &Signer) -> Self {
        let Signer::Rsa(kp) = signer else { panic!("not an RSA key") };
        let pkcs8 = kp.as_der().unwrap();
        // PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey {
        //     version, n, e, d, p, q, dp, dq, qi } } }
        let (info, _) = der(pkcs8.as_ref());
        let (_, rest) = der(info);
        let (_, rest) = der(rest);
        let (octets, _) = der(rest);
        let (mut rest, _) = der(octets);
        let mut fields = Vec::new();
        while !rest.is_empty() {
            let (value, next) = der(rest);
            fields.push(value);
            rest = next;
        }
        Self::new(fields[1], fields[4], fields[5], fields[6], fields[7], fields[8])
    }

    /// From big-endian n, p, q, dp, dq, qi.
    fn new(n: &[u8], p: &[u8], q: &[u8], dp: &[u8], dq: &[u8], qi: &[u8]) -> Self {
        let strip = |x: &[u8]| x[x.iter().position(|b| *b != 0).unwrap()..].to_vec();
        let (p, q) = (Mont::new(&strip(p)), Mont::new(&strip(q)));
        let qi = limbs(&strip(qi), p.n.len());
        Self { p, q, dp: strip(dp), dq: strip(dq), qi, bytes: strip(n).len() }
    }

    /// `em^d mod n`, big-endian, modulus length.
    fn sign_raw(&self, em: &[u8]) -> Vec<u8> {
        assert_eq!(em.len(), self.bytes);
        let c = limbs(em, self.bytes.div_ceil(4));
        let m1 = self.p.pow(&c, &self.dp);
        let mut m2 = self.q.pow(&c, &self.dq);
        // h = qi * (m1 - m2) mod p; m = m2 + h * q.
        let mut m2p = m2.clone();
        m2p.resize(self.p.n.len().max(m2.len()), 0);
        while geq(&m2p, &self.p.n) {
            sub_assign(&mut m2p, &self.p.n);
        }
        let mut diff = m1;
        if !geq(&diff, &m2p[..self.p.n.len()]) {
            add_assign(&mut diff, &self.p.n);
        }
        sub_assign(&mut diff, &m2p);
        let h = self.p.mul(&self.p.mul(&diff, &self.p.r2), &self.qi);
        let hq = product(&h, &self.q.n);
        m2.resize(hq.len(), 0);
        add_assign(&mut m2, &hq);
        to_bytes(&m2, self.bytes)
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

/// The SHA-256 DigestInfo prefix (RFC 8017 §9.2 note 1).
const DIGEST_INFO_SHA256: &str = "3031300d060960864801650304020105000420";

/// `00 || block || filler* || 00 || t`, one modulus long.
fn pkcs1(len: usize, block: u8, filler: u8, t: &[u8]) -> Vec<u8> {
    let mut em = vec![0, block];
    em.extend(std::iter::repeat_n(filler, len - 3 - t.len()));
    em.push(0);
    em.extend(t);
    em
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) for a 2048-bit modulus, SHA-256 message hash, with this
/// salt and MGF1 over SHA-256 (or SHA-1).
fn pss(msg: &[u8], salt: &[u8], mgf_sha1: bool) -> Vec<u8> {
    let em_len = 256;
    let m_prime = [&[0u8; 8][..], &sha256(msg), salt].concat();
    let hash = sha256(&m_prime);
    let db_len = em_len - hash.len() - 1;
    let mut db = vec![0u8; db_len - salt.len() - 1];
    db.push(1);
    db.extend(salt);
    let algorithm = if mgf_sha1 {
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY
    } else {
        &aws_lc_rs::digest::SHA256
    };
    let mut mask: Vec<u8> = Vec::new();
    for counter in 0u32.. {
        if mask.len() >= db_len {
            break;
        }
        let block = [&hash[..], &counter.to_be_bytes()].concat();
        mask.extend(aws_lc_rs::digest::digest(algorithm, &block).as_ref());
    }
    for (byte, m) in db.iter_mut().zip(mask) {
        *byte ^= m;
    }
    db[0] &= 0x7f;
    [db, hash, vec![0xbc]].concat()
}

/// Builds an encoded message from the signing input.
type Encode<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// D8 and D10 through the layer: PKCS#1 v1.5 and PSS encodings a conforming signer never makes,
/// signed with the real private key, with controls proving the raw signer itself is right.
#[tokio::test]
async fn d8_d10_padding_variants() {
    let h = harness().await;
    let raw = RawRsa::of(rsa());
    let bad_sig = invalid(&[R::BadSignature]);
    let mut n = 0;
    let mut token = |alg: &str, encode: &dyn Fn(&[u8]) -> Vec<u8>| {
        n += 1;
        let input = format!("{}.{}", b64(hdr(alg, "k1")), b64(unique(n).to_string()));
        let sig = raw.sign_raw(&encode(input.as_bytes()));
        format!("{input}.{}", b64(sig))
    };
    let info = |prefix: &str, msg: &[u8]| [hex(prefix), sha256(msg)].concat();
    let pkcs1_cases: [(&str, Encode<'_>, Want); 10] = [
        (
            "D8 control: raw PKCS#1 v1.5",
            &|m| pkcs1(256, 1, 0xff, &info(DIGEST_INFO_SHA256, m)),
            Want::Pass,
        ),
        (
            "D8 DigestInfo without NULL",
            &|m| pkcs1(256, 1, 0xff, &info("302f300b06096086480165030402010420", m)),
            bad_sig,
        ),
        (
            "D8 BER long-form length of the DigestInfo",
            &|m| pkcs1(256, 1, 0xff, &info("308131300d060960864801650304020105000420", m)),
            bad_sig,
        ),
        (
            "D8 SHA-384 OID with a SHA-256 hash",
            &|m| pkcs1(256, 1, 0xff, &info("3031300d060960864801650304020205000420", m)),
            bad_sig,
        ),
        (
            "D8 garbage after the hash",
            &|m| {
                pkcs1(
                    256,
                    1,
                    0xff,
                    &[info(DIGEST_INFO_SHA256, m), vec![0xde, 0xad, 0xbe, 0xef]].concat(),
                )
            },
            bad_sig,
        ),
        (
            "D8 garbage before the DigestInfo",
            &|m| pkcs1(256, 1, 0xff, &[vec![0x42; 16], info(DIGEST_INFO_SHA256, m)].concat()),
            bad_sig,
        ),
        ("D8 block type 2", &|m| pkcs1(256, 2, 0xff, &info(DIGEST_INFO_SHA256, m)), bad_sig),
        (
            "D8 padding of zero bytes",
            &|m| pkcs1(256, 1, 0x00, &info(DIGEST_INFO_SHA256, m)),
            bad_sig,
        ),
        (
            "D8 short padding (4 x FF, then garbage)",
            &|m| {
                let t = info(DIGEST_INFO_SHA256, m);
                let mut em = vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0];
                em.extend(std::iter::repeat_n(0x42, 256 - em.len() - t.len()));
                em.extend(t);
                em
            },
            bad_sig,
        ),
        ("D8 bare hash, no DigestInfo", &|m| pkcs1(256, 1, 0xff, &sha256(m)), bad_sig),
    ];
    let salt = |len: usize| vec![0x5c; len];
    let pss_cases: [(&str, Encode<'_>, Want); 6] = [
        ("D10 control: raw PSS, salt 32, MGF1-SHA256", &|m| pss(m, &salt(32), false), Want::Pass),
        ("D10 PSS salt length 0", &|m| pss(m, &salt(0), false), bad_sig),
        ("D10 PSS salt length 20", &|m| pss(m, &salt(20), false), bad_sig),
        ("D10 PSS salt length 64", &|m| pss(m, &salt(64), false), bad_sig),
        ("D10 PSS with MGF1-SHA1", &|m| pss(m, &salt(32), true), bad_sig),
        (
            "D10 PSS trailer 0xbd",
            &|m| {
                let mut em = pss(m, &salt(32), false);
                *em.last_mut().unwrap() = 0xbd;
                em
            },
            bad_sig,
        ),
    ];
    let mut cases = Vec::new();
    for (name, encode, want) in pkcs1_cases {
        cases.push(tcase(name, &token("RS256", encode), want));
    }
    for (name, encode, want) in pss_cases {
        cases.push(tcase(name, &token("PS256", encode), want));
    }
    run(&h.layer, &h.store, cases).await;
}

// ------------------------------------------------------------------------------------------
// B-E. Claims (token level; the clock is pinned at NOW, leeway 60 s)
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn b_e_claims() {
    let h = harness().await;
    let now = NOW as f64;
    let mut cases = vec![tcase("E0 control", &rs(&good()), Want::Pass)];
    let mut n = 0;
    let mut add = |name: &str, claims: Value, want: Want| {
        // A distinct jti per case: no case can hit the verified-token cache of another.
        n += 1;
        let mut claims = claims;
        claims["jti"] = json!(format!("e-{n}"));
        cases.push(tcase(name, &rs(&claims), want));
    };
    // E1, E4: expired.
    add("E1 exp 61 s ago", with("exp", json!(NOW - 61)), invalid(&[R::Expired]));
    add("E1 exp an hour ago", with("exp", json!(NOW - 3600)), invalid(&[R::Expired]));
    add("E4 exp -1", with("exp", json!(-1)), invalid(&[R::Expired]));
    add("E4 exp 0", with("exp", json!(0)), invalid(&[R::Expired]));
    // E2: wrongly typed exp is an error, never "absent".
    for (label, value) in [
        ("\"9999999999\"", json!("9999999999")),
        ("true", json!(true)),
        ("[exp]", json!([NOW + 600])),
        ("{}", json!({})),
        ("null", Value::Null),
    ] {
        add(&format!("E2 exp {label}"), with("exp", value), invalid(&[R::WrongClaimType]));
    }
    // E3: NumericDate may be fractional.
    add("E3 exp fractional, in the future", with("exp", json!(now + 600.5)), Want::Pass);
    add("E3 exp fractional, inside the leeway", with("exp", json!(now - 59.5)), Want::Pass);
    add(
        "E3 exp fractional, past the leeway",
        with("exp", json!(now - 60.5)),
        invalid(&[R::Expired]),
    );
    // E5: far future, accepted with no max_lifetime (see e5_max_lifetime).
    for (label, value) in [
        ("year 9999", json!(253_402_300_799u64)),
        ("2^53 + 1", json!(9_007_199_254_740_993u64)),
        ("u64::MAX", json!(u64::MAX)),
        ("1e19", json!(1e19)),
        ("1.7e308", json!(1.7e308)),
        ("f64::MAX", json!(f64::MAX)),
    ] {
        add(&format!("E5 exp {label} without max_lifetime"), with("exp", value), Want::Pass);
    }
    // E6.
    add("E6 exp missing", without("exp"), invalid(&[R::MissingClaim]));
    // E7.
    add("E7 nbf 61 s ahead", with("nbf", json!(NOW + 61)), invalid(&[R::NotYetValid]));
    add("E7 nbf a day ahead", with("nbf", json!(NOW + 86_400)), invalid(&[R::NotYetValid]));
    add("E7 nbf \"1\"", with("nbf", json!("1")), invalid(&[R::WrongClaimType]));
    add("E7 nbf null", with("nbf", Value::Null), invalid(&[R::WrongClaimType]));
    // E8.
    add("E8 iat 61 s ahead", with("iat", json!(NOW + 61)), invalid(&[R::IssuedInFuture]));
    add("E8 iat \"1\"", with("iat", json!("1")), invalid(&[R::WrongClaimType]));
    add("E8 iat -1", with("iat", json!(-1)), invalid(&[R::WrongClaimType]));
    add("E8 iat [now]", with("iat", json!([NOW])), invalid(&[R::WrongClaimType]));
    // E9: the edges (expired once now >= exp + leeway; nbf/iat fail once beyond now + leeway).
    add("E9 exp == now - leeway (expired)", with("exp", json!(NOW - 60)), invalid(&[R::Expired]));
    add("E9 exp == now - leeway + 1", with("exp", json!(NOW - 59)), Want::Pass);
    add("E9 exp == now", with("exp", json!(NOW)), Want::Pass);
    add("E9 nbf == now + leeway", with("nbf", json!(NOW + 60)), Want::Pass);
    add("E9 nbf == now + leeway + 1", with("nbf", json!(NOW + 61)), invalid(&[R::NotYetValid]));
    add("E9 nbf == now + leeway + 0.5", with("nbf", json!(now + 60.5)), invalid(&[R::NotYetValid]));
    add("E9 iat == now + leeway", with("iat", json!(NOW + 60)), Want::Pass);
    add(
        "E9 iat == now + leeway + 0.5",
        with("iat", json!(now + 60.5)),
        invalid(&[R::IssuedInFuture]),
    );
    // E10: aud shapes.
    add("E10 aud string", with("aud", json!(AUD)), Want::Pass);
    add("E10 aud array containing ours", with("aud", json!(["other", AUD])), Want::Pass);
    add("E10 aud []", with("aud", json!([])), invalid(&[R::AudienceNotAccepted]));
    add("E10 aud [1]", with("aud", json!([1])), invalid(&[R::WrongClaimType]));
    add("E10 aud [null]", with("aud", json!([null])), invalid(&[R::WrongClaimType]));
    add("E10 aud [ours, 1]", with("aud", json!([AUD, 1])), invalid(&[R::WrongClaimType]));
    add("E10 aud \"\"", with("aud", json!("")), invalid(&[R::AudienceNotAccepted]));
    add("E10 aud 123", with("aud", json!(123)), invalid(&[R::WrongClaimType]));
    add("E10 aud {}", with("aud", json!({"aud": AUD})), invalid(&[R::WrongClaimType]));
    add("E10 aud missing", without("aud"), invalid(&[R::MissingClaim]));
    // E11: exact string comparison.
    add("E11 control: configured https://api.example.com", with("aud", json!(API_AUD)), Want::Pass);
    for aud in [
        "http://api.example.com/",
        "https://api.example.com/",
        "HTTPS://api.example.com",
        "https://API.example.com",
        "api://echo/",
        "API://ECHO",
        " api://echo",
    ] {
        add(
            &format!("E11 aud {aud:?}"),
            with("aud", json!(aud)),
            invalid(&[R::AudienceNotAccepted]),
        );
    }
    // E12: issuer (plans listing issuers skip other tokens before any crypto).
    let iss_refused = invalid(&[R::NoMatchingPlan, R::IssuerNotAccepted, R::MissingClaim]);
    add("E12 iss mismatch", with("iss", json!("https://evil.test")), iss_refused);
    add("E12 iss with a trailing slash", with("iss", json!(format!("{ISS}/"))), iss_refused);
    add("E12 iss missing", without("iss"), iss_refused);
    add("E12 iss \"\"", with("iss", json!("")), iss_refused);
    add("E12 iss 123", with("iss", json!(123)), invalid(&[R::WrongClaimType]));
    add("E12 iss [ISS]", with("iss", json!([ISS])), invalid(&[R::WrongClaimType]));
    // E13: scope (the plan requires `read`): 403, and still no store lookup.
    add("E13 scope without read", with("scope", json!("write")), Want::Scope);
    add("E13 scope missing", without("scope"), Want::Scope);
    add("E13 scope \"reader\"", with("scope", json!("reader")), Want::Scope);
    add("E13 scope \"READ\"", with("scope", json!("READ")), Want::Scope);
    let mut scp = without("scope");
    scp["scp"] = json!(["write"]);
    add("E13 scp [write]", scp.clone(), Want::Scope);
    scp["scp"] = json!(["write", "read"]);
    add("E13 control: scp [write, read]", scp.clone(), Want::Pass);
    scp["scp"] = json!("read write");
    add("E13 control: scp \"read write\"", scp, Want::Pass);
    add("E13 scope 7", with("scope", json!(7)), invalid(&[R::WrongClaimType]));
    // E15: sub / jti types (jti is overwritten by `add`, so sub and client_id here).
    add("E15 sub 123", with("sub", json!(123)), invalid(&[R::WrongClaimType]));
    add("E15 sub null", with("sub", Value::Null), invalid(&[R::WrongClaimType]));
    add("E15 client_id []", with("client_id", json!([])), invalid(&[R::WrongClaimType]));
    add("E15 azp {}", with("azp", json!({})), invalid(&[R::WrongClaimType]));
    cases.push(tcase("E15 jti []", &rs(&with("jti", json!([]))), invalid(&[R::WrongClaimType])));
    cases.push(tcase("E15 jti 7", &rs(&with("jti", json!(7))), invalid(&[R::WrongClaimType])));
    run(&h.layer, &h.store, cases).await;
}

/// E5 with `max_lifetime`: far-future `exp` values are refused, whatever their magnitude.
#[tokio::test]
async fn e5_max_lifetime() {
    let h = harness().await;
    let layer =
        layer_with(settings(&h.cache).max_lifetime(Duration::from_secs(86_400)), &h.store, |b| b);
    let mut cases = vec![
        tcase("E5 control: exp in 10 minutes", &rs(&unique(1)), Want::Pass),
        tcase("E5 control: exp in 1 day", &rs(&with("exp", json!(NOW + 86_400))), Want::Pass),
    ];
    for (label, value) in [
        ("1 day + leeway + 1 s", json!(NOW + 86_400 + 61)),
        ("year 9999", json!(253_402_300_799u64)),
        ("2^53 + 1", json!(9_007_199_254_740_993u64)),
        ("u64::MAX", json!(u64::MAX)),
        ("1e19", json!(1e19)),
        ("1.7e308", json!(1.7e308)),
        ("f64::MAX", json!(f64::MAX)),
    ] {
        cases.push(tcase(
            format!("E5 exp {label} with max_lifetime 1 day"),
            &rs(&with("exp", value)),
            invalid(&[R::LifetimeTooLong]),
        ));
    }
    run(&layer, &h.store, cases).await;
}

/// E14 and H5: more than one token in a request, wherever they are.
#[tokio::test]
async fn e14_h5_multiple_tokens() {
    let h = harness().await;
    let a = rs(&unique(1));
    let b = rs(&unique(2));
    let multiple = invalid(&[R::MultipleTokens]);
    let two = |headers: &[(&str, &str)], uri: &str| req(uri, headers);
    let (bearer_a, bearer_b) = (format!("Bearer {a}"), format!("Bearer {b}"));
    let many_cookies: String =
        (0..100).map(|i| format!("jwt={a}{}", if i < 99 { "; " } else { "" })).collect();
    let many_params: String =
        (0..100).map(|_| format!("access_token={a}")).collect::<Vec<_>>().join("&");
    let many_auth: Vec<(&str, &str)> =
        (0..100).map(|_| ("authorization", bearer_a.as_str())).collect();
    let other_cookies: String =
        (0..100).map(|i| format!("c{i}=v; ")).collect::<String>() + &format!("jwt={b}");
    let cases = vec![
        case("E14 control: token in the query alone", query(&a), Want::Pass),
        case(
            "E14 control: token in the cookie alone",
            cookie(&format!("theme=dark; jwt={b}")),
            Want::Pass,
        ),
        case(
            "E14 two Authorization headers, same token",
            two(&[("authorization", &bearer_a), ("authorization", &bearer_a)], "/resource"),
            multiple,
        ),
        case(
            "E14 two Authorization headers, different tokens",
            two(&[("authorization", &bearer_a), ("authorization", &bearer_b)], "/resource"),
            multiple,
        ),
        case(
            "E14 Authorization + query",
            two(&[("authorization", &bearer_a)], &format!("/resource?access_token={b}")),
            multiple,
        ),
        case(
            "E14 Authorization + query, same token",
            two(&[("authorization", &bearer_a)], &format!("/resource?access_token={a}")),
            multiple,
        ),
        case(
            "E14 Authorization + cookie",
            two(&[("authorization", &bearer_a), ("cookie", &format!("jwt={b}"))], "/resource"),
            multiple,
        ),
        case(
            "E14 query + cookie",
            two(&[("cookie", &format!("jwt={b}"))], &format!("/resource?access_token={a}")),
            multiple,
        ),
        case("E14 query twice", query(&format!("{a}&access_token={b}")), multiple),
        case("E14 cookie twice in one header", cookie(&format!("jwt={a}; jwt={b}")), multiple),
        case(
            "E14 cookie in two Cookie headers",
            two(&[("cookie", &format!("jwt={a}")), ("cookie", &format!("jwt={b}"))], "/resource"),
            multiple,
        ),
        case(
            "E14 Authorization + invalid query token",
            two(&[("authorization", &bearer_a)], "/resource?access_token=x.y.z"),
            multiple,
        ),
        case("H5 100 jwt cookies", cookie(&many_cookies), multiple),
        case(
            "H5 100 access_token parameters",
            req(&format!("/resource?{many_params}"), &[]),
            multiple,
        ),
        case("H5 100 Authorization headers", req("/resource", &many_auth), multiple),
        case("H5 control: 100 other cookies and one jwt", cookie(&other_cookies), Want::Pass),
    ];
    run(&h.layer, &h.store, cases).await;
}

// ------------------------------------------------------------------------------------------
// B-F. Key material and JWKS content
// ------------------------------------------------------------------------------------------

/// Log output captured from this thread (the test runtime is single-threaded, so the JWKS
/// worker logs here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("tower_jwt_plan=trace"))
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn modulus(signer: &Signer) -> Vec<u8> {
    let Signer::Rsa(kp) = signer else { panic!("not RSA") };
    aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key()).n
}

/// An odd modulus-shaped number of this many bits (no key has it; it is skipped before use).
fn synthetic_modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xa7u8; bits / 8];
    n[0] = 0xc5;
    n
}

fn rsa_jwk(kid: &str, n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "kid": kid, "n": b64(n), "e": b64(e)})
}

fn jwk_with(mut jwk: Value, member: &str, value: Value) -> Value {
    if value.is_null() {
        jwk.as_object_mut().unwrap().remove(member);
    } else {
        jwk[member] = value;
    }
    jwk
}

/// Marker bytes standing in for private key material: must never be logged.
const PRIVATE_MARKER: &[u8] = b"PRIVATE-EXPONENT-NEVER-LOG-ME-0123456789";

/// Every key the corpus says to skip, next to one good key: only the good key is held, tokens
/// naming the others are refused, and no key material or token reaches the logs.
#[tokio::test]
async fn b_f_jwks_content_skipped_keys() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let n2 = modulus(rsa2());
    let aqab = [1u8, 0, 1];
    let secret = [0x33u8; 32];
    let mut n_even = n2.clone();
    *n_even.last_mut().unwrap() &= 0xfe;
    let rsa2_jwk = |kid: &str| rsa2().jwk(kid);
    let p256_jwk = |kid: &str| p256().jwk(kid);
    let d = json!(b64(PRIVATE_MARKER));
    let mut short_x = p256_jwk("ec-short-x");
    let x = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        short_x["x"].as_str().unwrap(),
    )
    .unwrap();
    short_x["x"] = json!(b64(&x[1..]));
    let mut long_x = p256_jwk("ec-long-x");
    long_x["x"] = json!(b64([&[0u8][..], &x].concat()));
    // (row, kid, JWK). Each kid names exactly one bad key (two for the duplicate).
    let bad: Vec<(&str, &str, Value)> = vec![
        ("F1", "rsa-1024", rsa_jwk("rsa-1024", &synthetic_modulus(1024), &aqab)),
        ("F1", "rsa-512", rsa_jwk("rsa-512", &synthetic_modulus(512), &aqab)),
        ("F1", "rsa-2040", rsa_jwk("rsa-2040", &synthetic_modulus(2040), &aqab)),
        ("F2", "e-1", rsa_jwk("e-1", &n2, &[1])),
        ("F2", "e-2", rsa_jwk("e-2", &n2, &[2])),
        ("F2", "e-65536", rsa_jwk("e-65536", &n2, &[1, 0, 0])),
        ("F2", "e-40-bits", rsa_jwk("e-40-bits", &n2, &[1, 0, 0, 0, 1])),
        ("F2", "e-empty", jwk_with(rsa2_jwk("e-empty"), "e", json!(""))),
        ("F2", "n-even", rsa_jwk("n-even", &n_even, &aqab)),
        ("F2", "n-tiny", rsa_jwk("n-tiny", &[11], &aqab)),
        ("F2", "n-not-base64url", jwk_with(rsa2_jwk("n-not-base64url"), "n", json!("a+b/c="))),
        (
            "F5",
            "oct",
            json!({"kty": "oct", "kid": "oct", "use": "sig", "alg": "HS256", "k": b64(secret)}),
        ),
        ("F6", "rsa-private", jwk_with(rsa2_jwk("rsa-private"), "d", d.clone())),
        ("F6", "rsa-private-p", jwk_with(rsa2_jwk("rsa-private-p"), "p", d.clone())),
        ("F6", "ec-private", jwk_with(p256_jwk("ec-private"), "d", d.clone())),
        ("F6", "ed-private", jwk_with(ed().jwk("ed-private"), "d", d.clone())),
        ("F7", "dup", rsa().jwk("dup")),
        ("F7", "dup", rsa2_jwk("dup")),
        ("F8", "use-enc", jwk_with(rsa2_jwk("use-enc"), "use", json!("enc"))),
        ("F8", "use-empty", jwk_with(rsa2_jwk("use-empty"), "use", json!(""))),
        ("F8", "use-number", jwk_with(rsa2_jwk("use-number"), "use", json!(1))),
        ("F8", "ops-encrypt", jwk_with(rsa2_jwk("ops-encrypt"), "key_ops", json!(["encrypt"]))),
        ("F8", "ops-sign", jwk_with(rsa2_jwk("ops-sign"), "key_ops", json!(["sign"]))),
        ("F8", "ops-string", jwk_with(rsa2_jwk("ops-string"), "key_ops", json!("verify"))),
        ("F9", "rsa-alg-es256", jwk_with(rsa2_jwk("rsa-alg-es256"), "alg", json!("ES256"))),
        ("F9", "rsa-alg-oaep", jwk_with(rsa2_jwk("rsa-alg-oaep"), "alg", json!("RSA-OAEP"))),
        ("F9", "ec-alg-es384", jwk_with(p256_jwk("ec-alg-es384"), "alg", json!("ES384"))),
        ("F9", "ec-alg-none", jwk_with(p256_jwk("ec-alg-none"), "alg", json!("none"))),
        ("F9", "ec-crv-p384", jwk_with(p256_jwk("ec-crv-p384"), "crv", json!("P-384"))),
        ("F9", "ec-crv-p521", jwk_with(p256_jwk("ec-crv-p521"), "crv", json!("P-521"))),
        ("F9", "ed-alg-es256", jwk_with(ed().jwk("ed-alg-es256"), "alg", json!("ES256"))),
        ("F10", "ec-short-x", short_x),
        ("F10", "ec-long-x", long_x),
        ("F10", "ec-no-y", jwk_with(p256_jwk("ec-no-y"), "y", Value::Null)),
        ("F11", "kty-rsa-pss", jwk_with(rsa2_jwk("kty-rsa-pss"), "kty", json!("RSA-PSS"))),
        ("F11", "kty-oct-space", jwk_with(rsa2_jwk("kty-oct-space"), "kty", json!("oct "))),
        ("F11", "kty-rsa-lower", jwk_with(rsa2_jwk("kty-rsa-lower"), "kty", json!("rsa"))),
        ("F11", "kty-missing", jwk_with(rsa2_jwk("kty-missing"), "kty", Value::Null)),
        ("F11", "not-an-object", json!("kid")),
        ("F12", "rsa-16384", rsa_jwk("rsa-16384", &synthetic_modulus(16384), &aqab)),
    ];
    let mut keys = vec![rsa().jwk("k1")];
    keys.extend(bad.iter().map(|(_, _, jwk)| jwk.clone()));
    let h = harness_serving(json!({"keys": keys})).await;
    assert_eq!(h.cache.stats().keys, 1, "only k1 is usable: {:?}", h.cache.key_ids());
    assert_eq!(h.cache.key_ids(), ["k1"]);

    let mut cases = vec![tcase("F0 control: k1", &rs(&unique(1)), Want::Pass)];
    let mut tokens = Vec::new();
    for (row, kid, jwk) in &bad {
        let token = match (jwk["kty"].as_str(), *kid) {
            (_, "oct") => Signer::hmac(&secret).token_with(Algorithm::HS256, kid, &good()),
            (_, "dup") => rsa().token_with(Algorithm::RS256, kid, &good()),
            (Some("EC"), _) => p256().token_with(Algorithm::ES256, kid, &good()),
            (Some("OKP"), _) => p256().token_with(Algorithm::ES256, kid, &good()),
            _ => rsa2().token_with(Algorithm::RS256, kid, &good()),
        };
        let want = if *kid == "oct" {
            invalid(&[R::AlgorithmNotAllowed])
        } else {
            invalid(&[R::UnknownKey])
        };
        tokens.push(token.clone());
        cases.push(tcase(format!("{row} token naming skipped key {kid}"), &token, want));
    }
    run(&h.layer, &h.store, cases).await;

    let text = logs.text();
    assert!(text.contains("JWKS key skipped"), "skips are logged: {text}");
    for (what, secret) in [
        ("a private member", b64(PRIVATE_MARKER)),
        ("an oct key", b64(secret)),
        ("a public modulus", b64(&n2)),
    ] {
        assert!(!text.contains(&secret), "F6: {what} reached the logs");
    }
    for token in &tokens {
        assert!(!text.contains(split(token).2.as_str()), "a token reached the logs");
    }
}

/// A JWKS with `k1` and rsa2's key under `lz`, its `n` given a leading zero octet (not a
/// Base64urlUInt: RFC 7518 §6.3.1.1 asks for the minimum number of octets).
async fn leading_zero_harness() -> Harness {
    let padded = [&[0u8][..], &modulus(rsa2())].concat();
    harness_serving(json!({"keys": [rsa().jwk("k1"), rsa_jwk("lz", &padded, &[1, 0, 1])]})).await
}

/// F2: tokens naming a key whose `n` has a leading zero octet are refused.
#[tokio::test]
async fn f2_leading_zero_modulus_never_verifies() {
    let h = leading_zero_harness().await;
    let token = rsa2().token_with(Algorithm::RS256, "lz", &good());
    run(
        &h.layer,
        &h.store,
        vec![tcase("F2 token naming the key with a zero-padded n", &token, invalid(&[]))],
    )
    .await;
}

/// F2: the corpus says to skip such a key at load.
#[tokio::test]
async fn f2_leading_zero_modulus_is_skipped() {
    let h = leading_zero_harness().await;
    assert_eq!(h.cache.key_ids(), ["k1"]);
}

/// The Wycheproof JWK group of one tcId, as (public set, private set).
fn wycheproof_jwk_group(tc_id: u64) -> (Value, Value) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/wycheproof/json_web_key_test.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let group = doc["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["tests"].as_array().unwrap().iter().any(|t| t["tcId"] == tc_id))
        .unwrap();
    (group["public"].clone(), group["private"].clone())
}

/// F3: a ROCA-vulnerable modulus (Wycheproof JWK tcId 7), signed with its own private key.
#[tokio::test]
async fn f3_roca_key_is_skipped() {
    let (public, private) = wycheproof_jwk_group(7);
    let (public, private) = (&public["keys"][0], &private["keys"][0]);
    let kid = public["kid"].as_str().unwrap();
    let h = harness_serving(json!({"keys": [rsa().jwk("k1"), public]})).await;
    let decode = |v: &Value| {
        base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.as_str().unwrap(),
        )
        .unwrap()
    };
    let field = |name: &str| decode(&private[name]);
    let raw = RawRsa::new(
        &field("n"),
        &field("p"),
        &field("q"),
        &field("dp"),
        &field("dq"),
        &field("qi"),
    );
    let input = format!("{}.{}", b64(hdr("RS256", kid)), b64(good().to_string()));
    let em =
        pkcs1(raw.bytes, 1, 0xff, &[hex(DIGEST_INFO_SHA256), sha256(input.as_bytes())].concat());
    let token = format!("{input}.{}", b64(raw.sign_raw(&em)));
    run(&h.layer, &h.store, vec![tcase("F3 token signed with the ROCA key", &token, invalid(&[]))])
        .await;
    assert_eq!(h.cache.stats().keys, 1, "{:?}", h.cache.key_ids());
}

/// EC keys whose point is not on the curve, out of range, or the point at infinity.
fn invalid_points() -> Vec<(&'static str, Value)> {
    let good = p256().jwk("x");
    let decode = |v: &Value| {
        base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.as_str().unwrap(),
        )
        .unwrap()
    };
    let mut y = decode(&good["y"]);
    y[31] ^= 1;
    let point = |kid: &str, x: Vec<u8>, y: Vec<u8>| json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(x), "y": b64(y)});
    vec![
        ("ec-off-curve", point("ec-off-curve", decode(&good["x"]), y)),
        ("ec-x-is-p", point("ec-x-is-p", hex(P256_P), decode(&good["y"]))),
        ("ec-x-all-ff", point("ec-x-all-ff", vec![0xff; 32], decode(&good["y"]))),
        ("ec-infinity", point("ec-infinity", vec![0; 32], vec![0; 32])),
    ]
}

/// F10: tokens naming an invalid EC point are refused (whatever the loader does with it).
#[tokio::test]
async fn f10_invalid_points_never_verify() {
    let mut keys = vec![rsa().jwk("k1")];
    keys.extend(invalid_points().into_iter().map(|(_, jwk)| jwk));
    let h = harness_serving(json!({"keys": keys})).await;
    let mut cases = vec![tcase("F0 control: k1", &rs(&unique(1)), Want::Pass)];
    for (kid, _) in invalid_points() {
        cases.push(tcase(
            format!("F10 ES256 token naming {kid}"),
            &p256().token_with(Algorithm::ES256, kid, &good()),
            invalid(&[R::UnknownKey, R::BadSignature]),
        ));
        cases.push(tcase(
            format!("F10 r = s = 0 naming {kid}"),
            &with_sig(&p256().token_with(Algorithm::ES256, kid, &unique(2)), &[0; 64]),
            invalid(&[R::UnknownKey, R::BadSignature]),
        ));
    }
    run(&h.layer, &h.store, cases).await;
}

/// F10: such keys are skipped when the set is loaded (the corpus: "skip the key").
#[tokio::test]
async fn f10_invalid_points_are_skipped() {
    let mut keys = vec![rsa().jwk("k1")];
    keys.extend(invalid_points().into_iter().map(|(_, jwk)| jwk));
    let h = harness_serving(json!({"keys": keys})).await;
    assert_eq!(h.cache.key_ids(), ["k1"]);
}

/// F11: a document that is not a key set never becomes the key set: with nothing cached, 503.
#[tokio::test]
async fn f11_not_a_key_set() {
    for (name, doc) in [
        ("keys is an object", json!({"keys": {"kty": "RSA"}})),
        ("keys missing", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        ("keys is null", json!({"keys": null})),
        ("a bare array", json!([rsa().jwk("k1")])),
        ("keys of strings", json!({"keys": ["k1"]})),
    ] {
        let server = JwksServer::start(Jwks::Keys(doc)).await;
        let cache = JwksCache::builder(server.url())
            .min_refetch_interval(Duration::from_millis(200))
            .fetch_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        assert!(!cache.wait_ready(Duration::from_millis(500)).await, "F11 {name}: became ready");
        let store = CountingStore::with([accepted("gold", CLIENT)]);
        let layer = layer_with(settings(&cache), &store, |b| b);
        run(&layer, &store, vec![tcase(format!("F11 {name}"), &rs(&good()), Want::Unavailable)])
            .await;
        assert!(cache.stats().failures >= 1);
    }
}

/// F12: at most MAX_KEYS_PER_SET keys are kept; the rest are skipped.
#[tokio::test]
async fn f12_key_count_is_capped() {
    let keys: Vec<Value> = (0..150).map(|i| rsa().jwk(&format!("c{i}"))).collect();
    let h = harness_serving(json!({"keys": keys})).await;
    assert_eq!(h.cache.stats().keys, MAX_KEYS_PER_SET);
    let cases = vec![
        tcase(
            "F12 control: key 5 of 150",
            &rsa().token_with(Algorithm::RS256, "c5", &unique(1)),
            Want::Pass,
        ),
        tcase(
            "F12 control: key 99 of 150",
            &rsa().token_with(Algorithm::RS256, "c99", &unique(2)),
            Want::Pass,
        ),
        tcase(
            "F12 key 100 of 150 (over the cap)",
            &rsa().token_with(Algorithm::RS256, "c100", &unique(3)),
            invalid(&[R::UnknownKey]),
        ),
        tcase(
            "F12 key 149 of 150 (over the cap)",
            &rsa().token_with(Algorithm::RS256, "c149", &unique(4)),
            invalid(&[R::UnknownKey]),
        ),
    ];
    run(&h.layer, &h.store, cases).await;
}

/// F4: HMAC secrets shorter than the hash output (or empty) are refused at build.
#[tokio::test]
async fn f4_short_hmac_secrets_are_refused_at_build() {
    let store = CountingStore::default();
    let build = |len: usize, alg: Algorithm| {
        let settings = JwtSettings::new(KeySource::hmac_secret(vec![7u8; len])).algorithms([alg]);
        JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", settings))
            .resolver(store.clone())
            .build()
    };
    for (len, alg) in [
        (0, Algorithm::HS256),
        (31, Algorithm::HS256),
        (47, Algorithm::HS384),
        (63, Algorithm::HS512),
        (32, Algorithm::HS512),
    ] {
        let built = build(len, alg);
        assert!(
            matches!(built, Err(ConfigError::WeakHmacSecret { .. })),
            "{len} bytes for {alg:?}: {:?}",
            built.err()
        );
    }
    for (len, alg) in [(32, Algorithm::HS256), (48, Algorithm::HS384), (64, Algorithm::HS512)] {
        assert!(build(len, alg).is_ok(), "{len} bytes for {alg:?}");
    }
}

// ------------------------------------------------------------------------------------------
// B-H. DoS, caching and races
// ------------------------------------------------------------------------------------------

/// The refetch budget of these caches.
const REFETCH: Duration = Duration::from_millis(200);

async fn past_refetch_window() {
    tokio::time::sleep(REFETCH + Duration::from_millis(50)).await;
}

/// H1: a flood of unknown `kid`s costs at most one fetch per refetch interval.
#[tokio::test]
async fn h1_kid_flood_is_rate_limited() {
    let h = harness().await;
    past_refetch_window().await;
    let before = h.server.hits();
    let started = Instant::now();
    let mut cases = Vec::new();
    for i in 0..150 {
        cases.push(tcase(
            format!("H1 random kid #{i}"),
            &rsa().token_with(Algorithm::RS256, &format!("flood-{i}"), &good()),
            invalid(&[R::UnknownKey]),
        ));
    }
    run(&h.layer, &h.store, cases).await;
    // And 100 at once, from concurrent tasks.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let layer = h.layer.clone();
            let token = rsa().token_with(Algorithm::RS256, &format!("burst-{i}"), &good());
            tokio::spawn(async move { send(&layer, &Seen::default(), bearer(&token)).await })
        })
        .collect();
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!((res.status, res.reason()), (401, Some(R::UnknownKey)));
    }
    let elapsed = started.elapsed();
    let fetches = h.server.hits() - before;
    let budget = 1 + (elapsed.as_millis() / REFETCH.as_millis()) as usize;
    eprintln!("H1: 250 unknown kids in {elapsed:?} cost {fetches} fetches (budget {budget})");
    assert!(fetches >= 1, "an unknown kid triggers a refetch");
    assert!(fetches <= budget, "{fetches} fetches in {elapsed:?} (budget {budget})");
    assert_eq!(h.store.lookups(), 0);
}

/// H2: a token without `kid` is tried against at most MAX_CANDIDATE_KEYS keys.
#[tokio::test]
async fn h2_kidless_tokens_try_few_keys() {
    let signers: Vec<Signer> = (0..6).map(|_| Signer::p256()).collect();
    let keys: Vec<Value> =
        signers.iter().enumerate().map(|(i, s)| s.jwk(&format!("p{i}"))).collect();
    let h = harness_serving(json!({"keys": keys})).await;
    assert_eq!(MAX_CANDIDATE_KEYS, 4);
    let kidless = |signer: &Signer, n: usize| {
        signer.token_raw(Algorithm::ES256, r#"{"alg":"ES256"}"#, &unique(n).to_string())
    };
    let cases = vec![
        tcase("H2 control: no kid, first key", &kidless(&signers[0], 1), Want::Pass),
        tcase("H2 control: no kid, fourth key", &kidless(&signers[3], 2), Want::Pass),
        tcase(
            "H2 no kid, fifth key (beyond the candidate cap)",
            &kidless(&signers[4], 3),
            invalid(&[R::BadSignature]),
        ),
        tcase(
            "H2 no kid, sixth key (beyond the candidate cap)",
            &kidless(&signers[5], 4),
            invalid(&[R::BadSignature]),
        ),
        tcase(
            "H2 control: sixth key named by kid",
            &signers[5].token("p5", &unique(5)),
            Want::Pass,
        ),
        tcase("H2 no kid, unknown key", &kidless(evil(), 6), invalid(&[R::BadSignature])),
    ];
    run(&h.layer, &h.store, cases).await;
}

/// H3: unknown issuers are refused with no key lookup, no fetch and no store lookup.
#[tokio::test]
async fn h3_unknown_issuers_cost_nothing() {
    let h = harness().await;
    past_refetch_window().await;
    let before = h.server.hits();
    let cases = (0..100)
        .map(|i| {
            let token = rsa().token_with(
                Algorithm::RS256,
                &format!("kid-{i}"),
                &with("iss", json!(format!("https://idp-{i}.test"))),
            );
            tcase(
                format!("H3 issuer #{i} with an unknown kid"),
                &token,
                invalid(&[R::NoMatchingPlan]),
            )
        })
        .collect();
    run(&h.layer, &h.store, cases).await;
    assert_eq!(h.server.hits(), before, "H3: an unknown issuer caused a JWKS fetch");
}

/// H4: the verified-token cache is bounded, admits only verified tokens, is keyed on the
/// canonical string, and re-checks time and subscription on every hit.
#[tokio::test]
async fn h4_token_cache_cannot_be_polluted() {
    let h = harness().await;
    let clock = Arc::new(AtomicU64::new(NOW));
    let now = clock.clone();
    let layer = layer_with(settings(&h.cache), &h.store, move |b| {
        b.token_cache(TokenCacheConfig::default().max_entries(10))
            .clock(move || at(now.load(Ordering::SeqCst)))
    });
    let many: Vec<Case> = (0..40)
        .map(|i| tcase(format!("H4 distinct valid token #{i}"), &rs(&unique(i)), Want::Pass))
        .collect();
    run(&layer, &h.store, many).await;
    assert!(layer.cached_tokens() <= 10, "H4: {} tokens cached, cap 10", layer.cached_tokens());

    let short = rs(&with("exp", json!(NOW + 100)));
    let (hd, pl, sg) = split(&short);
    let cases = vec![
        tcase("H4 control: short-lived token, first use", &short, Want::Pass),
        tcase("H4 control: same token again (cache hit)", &short, Want::Pass),
        tcase(
            "H4 non-canonical variant of a cached token",
            &format!("{hd}.{pl}.{}", non_canonical(&sg)),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "H4 padded variant of a cached token",
            &format!("{hd}.{pl}.{}", padded(&sg)),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "H4 oversize token",
            &rs(&with("pad", json!("x".repeat(9000)))),
            invalid(&[R::TooLarge]),
        ),
        tcase(
            "H4 forged token",
            &with_sig(&rs(&unique(99)), &[1; 256]),
            invalid(&[R::BadSignature]),
        ),
    ];
    run(&layer, &h.store, cases).await;
    // Time moves past exp + leeway: the cached token must be re-checked, not replayed.
    clock.store(NOW + 161, Ordering::SeqCst);
    run(
        &layer,
        &h.store,
        vec![tcase("H4 cached token after its exp", &short, invalid(&[R::Expired]))],
    )
    .await;
    // A subscription closed after caching takes effect at once.
    clock.store(NOW, Ordering::SeqCst);
    let mut closed = accepted("gold", CLIENT);
    closed.status = SubscriptionStatus::Closed;
    h.store.store.replace_all([closed]);
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer(&short)).await;
    assert_eq!(
        (res.status, res.code(), seen.calls()),
        (403, "GATEWAY_PLAN_UNRESOLVABLE", 0),
        "H4 cached token, closed subscription"
    );
}

/// H6 and H7: rotation. A new `kid` works at once (refetch on miss); a removed key's tokens
/// stop working once the set is refetched, even if they were cached.
#[tokio::test]
async fn h6_h7_rotation_races() {
    let h = harness_serving(jwks_of(&[(rsa(), "k1")])).await;
    let old = rs(&unique(1));
    run(
        &h.layer,
        &h.store,
        vec![tcase("H7 control: old key, before rotation (cached now)", &old, Want::Pass)],
    )
    .await;
    h.server.set(Jwks::Keys(jwks_of(&[(rsa(), "k1"), (rsa2(), "k2")])));
    past_refetch_window().await;
    let before = h.server.hits();
    let new = rsa2().token_with(Algorithm::RS256, "k2", &unique(2));
    run(
        &h.layer,
        &h.store,
        vec![tcase("H6 token with the new kid, before any scheduled refresh", &new, Want::Pass)],
    )
    .await;
    assert_eq!(h.server.hits(), before + 1, "H6: one refetch");
    h.server.set(Jwks::Keys(jwks_of(&[(rsa2(), "k2")])));
    past_refetch_window().await;
    // Any unknown kid triggers the refetch that drops k1.
    let probe = rsa2().token_with(Algorithm::RS256, "k3", &good());
    let cases = vec![
        tcase("H7 unknown kid (triggers the refetch)", &probe, invalid(&[R::UnknownKey])),
        tcase("H7 old key, after removal (was cached)", &old, invalid(&[R::UnknownKey])),
        tcase("H7 old key, fresh token", &rs(&unique(3)), invalid(&[R::UnknownKey])),
        tcase(
            "H7 control: new key still passes",
            &rsa2().token_with(Algorithm::RS256, "k2", &unique(4)),
            Want::Pass,
        ),
    ];
    run(&h.layer, &h.store, cases).await;
    assert_eq!(h.cache.key_ids(), ["k2"]);
}

/// H8: verification racing key-set swaps: a key present in every set always verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h8_concurrent_refresh_and_verification() {
    let h = harness_serving(jwks_of(&[(rsa(), "k1")])).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (server, layer, stop) = (h.server.clone(), h.layer.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let other = if i % 2 == 0 { (p256(), "e2") } else { (p384(), "e3") };
                server.set(Jwks::Keys(jwks_of(&[(rsa(), "k1"), other])));
                let probe = rsa().token_with(Algorithm::RS256, &format!("probe-{i}"), &good());
                let _ = send(&layer, &Seen::default(), bearer(&probe)).await;
                tokio::time::sleep(REFETCH + Duration::from_millis(10)).await;
                i += 1;
            }
            i
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let layer = h.layer.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..40 {
                    let token = rs(&unique(w * 1000 + i));
                    statuses.push(send(&layer, &Seen::default(), bearer(&token)).await.status);
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                statuses
            })
        })
        .collect();
    for worker in workers {
        let statuses = worker.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "H8: {statuses:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let swaps = flipper.await.unwrap();
    eprintln!("H8: 160 verifications across {swaps} key-set swaps, all 200");
    assert!(swaps >= 2, "the set must actually change during the test");
}

/// H9: many requests before the first fetch completes share that fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h9_no_thundering_herd_at_start() {
    let server = JwksServer::start(Jwks::Keys(served_keys())).await;
    server.set_delay(Duration::from_millis(300));
    let cache = JwksCache::builder(server.url()).min_refetch_interval(REFETCH).build().unwrap();
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer_with(settings(&cache), &store, |b| b);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let layer = layer.clone();
            let token = rs(&unique(i));
            tokio::spawn(async move { send(&layer, &Seen::default(), bearer(&token)).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200, "H9: a request that waited for the first fetch");
    }
    assert_eq!(server.hits(), 1, "H9: 64 concurrent cold requests cost {} fetches", server.hits());
}

/// H10: client-sent copies of gateway-owned headers never reach the service.
#[tokio::test]
async fn h10_spoofed_identity_headers() {
    let h = harness().await;
    let token = rs(&good());
    let spoofed = || {
        req(
            "/resource",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-user-id", "admin"),
                ("x-user-id", "root"),
            ],
        )
    };
    let seen = Seen::default();
    let res = send(&h.layer, &seen, spoofed()).await;
    assert_eq!(res.status, 200);
    let values: Vec<_> = seen.last().headers.get_all("x-user-id").iter().cloned().collect();
    assert_eq!(values, ["alice"], "H10: the client's x-user-id survived");
    let bad = req("/resource", &[("authorization", "Bearer x.y.z"), ("x-user-id", "admin")]);
    run(
        &h.layer,
        &h.store,
        vec![case("H10 spoofed header with an invalid token", bad, invalid(&[R::Malformed]))],
    )
    .await;
}

/// H11: a CORS preflight is not waved through.
#[tokio::test]
async fn h11_cors_preflight_is_not_a_bypass() {
    let h = harness().await;
    let preflight = |auth: Option<&str>| {
        let mut builder = Request::builder()
            .method("OPTIONS")
            .uri("/resource")
            .header("origin", "https://evil.test")
            .header("access-control-request-method", "DELETE")
            .header("access-control-request-headers", "authorization");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    };
    let cases = vec![
        case("H11 OPTIONS preflight without a token", preflight(None), Want::Missing),
        case(
            "H11 OPTIONS preflight with a forged token",
            preflight(Some("Bearer a.b.c")),
            invalid(&[R::Malformed]),
        ),
        case(
            "H11 DELETE with preflight headers, no token",
            req(
                "/resource",
                &[("origin", "https://evil.test"), ("access-control-request-method", "DELETE")],
            ),
            Want::Missing,
        ),
    ];
    run(&h.layer, &h.store, cases).await;
}

/// H12: the query parameter is off unless enabled.
#[tokio::test]
async fn h12_query_token_is_off_by_default() {
    let h = harness().await;
    let layer =
        layer_with(settings(&h.cache), &h.store, |b| b.token_source(TokenSource::default()));
    let cases = vec![
        case(
            "H12 ?access_token= with the default token source",
            query(&rs(&good())),
            Want::Missing,
        ),
        case(
            "H12 cookie with the default token source",
            cookie(&format!("jwt={}", rs(&good()))),
            Want::Missing,
        ),
        case(
            "H12 control: header with the default token source",
            bearer(&rs(&unique(1))),
            Want::Pass,
        ),
    ];
    run(&layer, &h.store, cases).await;
}

/// H12: when the query parameter is enabled, the token is stripped before the service.
#[tokio::test]
async fn h12_query_token_is_stripped_before_proxying() {
    let h = harness().await;
    let token = rs(&good());
    let seen = Seen::default();
    let res = send(&h.layer, &seen, query(&format!("{token}&page=2"))).await;
    assert_eq!(res.status, 200);
    let uri = seen.last().uri.to_string();
    assert!(!uri.contains(&token), "H12: the token reached the service in {uri}");
    assert!(uri.contains("page=2"), "other parameters are kept: {uri}");
}

/// H13: scheme and separator syntax.
#[tokio::test]
async fn h13_authorization_syntax() {
    let h = harness().await;
    let token = rs(&good());
    let cases = vec![
        case("H13 control: Bearer", auth(&format!("Bearer {}", rs(&unique(1)))), Want::Pass),
        case("H13 lower-case bearer", auth(&format!("bearer {}", rs(&unique(2)))), Want::Pass),
        case("H13 upper-case BEARER", auth(&format!("BEARER {}", rs(&unique(3)))), Want::Pass),
        case("H13 two spaces", auth(&format!("Bearer  {token}")), invalid(&[R::Malformed])),
        case("H13 tab", auth(&format!("Bearer\t{token}")), invalid(&[R::Malformed])),
        case("H13 Bearer alone", auth("Bearer"), invalid(&[R::Malformed])),
        case("H13 Basic", auth("Basic dXNlcjpwYXNz"), Want::Missing),
        case("H13 Token scheme", auth(&format!("Token {token}")), Want::Missing),
        case("H13 BearerX scheme", auth(&format!("BearerX {token}")), Want::Missing),
        case("H13 no header", req("/resource", &[]), Want::Missing),
        case("H13 empty header", auth(""), Want::Missing),
        case("H13 DPoP scheme", auth(&format!("DPoP {token}")), Want::Missing),
    ];
    run(&h.layer, &h.store, cases).await;
}
