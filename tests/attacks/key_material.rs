//! Corpus section F: Key material and JWKS content.
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;
use crate::raw_rsa::*;
use crate::signature::P256_P;

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
