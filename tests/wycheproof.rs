//! Project Wycheproof vectors (`tests/vectors/wycheproof/`, Apache-2.0, commit dac1dd4729fd)
//! against the crate's key handling and signature checks.
//!
//! - `json_web_signature_test.json`: each group's key goes through `KeySource::jwk_set` (public
//!   JWK or JWKS, a single JWK wrapped as `{"keys": [...]}`) or, for `oct` keys, through
//!   `KeySource::hmac_secret` with the raw `k` bytes. Every compact JWS then goes through
//!   `KeySource::verify_jws(jws, algorithms)`, the algorithms coming from the keys' `alg`
//!   members, never from the token. Valid cases must verify, invalid ones must fail; JSON
//!   serializations must fail. Data faults are listed in [`jws_expectation`].
//! - `json_web_key_test.json`: the mapping is documented on [`json_web_key_cases`].
//! - Primitive files (ECDSA P-256/P-384 in P1363 form, RSA PKCS#1 v1.5 and PSS 2048/SHA-256,
//!   Ed25519, HMAC-SHA256 with full-length tags): the primitives sign raw `msg` bytes, not a JWS
//!   signing input, so no token can carry them. Instead each group's key is loaded with
//!   `KeySource::jwk_set` (or `hmac_secret` and a layer build) to prove the crate accepts or
//!   refuses it as its policy says, and each signature is checked with the exact primitive path
//!   the crate calls: `DecodingKey::from_jwk` (or `from_secret`) and
//!   `jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory`, over `msg`. Valid cases
//!   must verify, invalid ones must not, acceptable ones may do either.
//!
//! Every file prints its totals and asserts they match the file, so no test passes vacuously.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};
use tower_jwt_plan::defaults::MIN_RSA_BITS;
use tower_jwt_plan::{ConfigError, InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn groups(doc: &Value) -> &Vec<Value> {
    doc["testGroups"].as_array().unwrap()
}

fn tests(group: &Value) -> &Vec<Value> {
    group["tests"].as_array().unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// What a case must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accept,
    Reject,
    Either,
    Skip,
}

fn from_result(result: &str) -> Expect {
    match result {
        "valid" => Expect::Accept,
        "invalid" => Expect::Reject,
        "acceptable" => Expect::Either,
        other => panic!("unknown result {other}"),
    }
}

/// Counts per file.
#[derive(Default, Debug)]
struct Tally {
    accepted: usize,
    rejected: usize,
    either: usize,
    either_verified: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, id: &str, expect: Expect, ok: bool, detail: &str) {
        match (expect, ok) {
            (Expect::Skip, _) => self.skipped += 1,
            (Expect::Either, ok) => {
                self.either += 1;
                self.either_verified += usize::from(ok);
            }
            (Expect::Accept, true) => self.accepted += 1,
            (Expect::Reject, false) => self.rejected += 1,
            (Expect::Accept, false) => {
                self.failures.push(format!("{id}: valid case refused ({detail})"))
            }
            (Expect::Reject, true) => {
                self.failures.push(format!("{id}: invalid case accepted ({detail})"))
            }
        }
    }

    fn run(&self) -> usize {
        self.accepted + self.rejected + self.either + self.failures.len()
    }

    /// Print the totals and fail on any mismatch or on an empty run.
    fn finish(self, file: &str, total_in_file: usize) {
        eprintln!(
            "{file}: {} cases run ({} valid accepted, {} invalid rejected, {} acceptable either way of which {} verified), {} skipped, {} failures",
            self.run(),
            self.accepted,
            self.rejected,
            self.either,
            self.either_verified,
            self.skipped,
            self.failures.len()
        );
        assert!(self.accepted > 0 && self.rejected > 0, "{file}: a vacuous run");
        assert_eq!(self.run() + self.skipped, total_in_file, "{file}: every case is counted");
        assert!(self.failures.is_empty(), "{file}:\n{}", self.failures.join("\n"));
    }
}

/// A key set as JSON text: a JWKS as is, a single JWK wrapped as `{"keys": [jwk]}`.
fn as_set(keys: &Value) -> String {
    if keys.get("keys").is_some() { keys.to_string() } else { json!({"keys": [keys]}).to_string() }
}

fn members(keys: &Value) -> Vec<&Value> {
    match keys.get("keys") {
        Some(set) => set.as_array().unwrap().iter().collect(),
        None => vec![keys],
    }
}

/// The algorithms the keys name (`alg` members that are JWS algorithms the crate knows).
fn key_algorithms(keys: &Value) -> Vec<Algorithm> {
    members(keys)
        .iter()
        .filter_map(|k| k["alg"].as_str())
        .filter_map(|a| Algorithm::from_str(a).ok())
        .collect()
}

/// A layer build with one HMAC plan: the crate's check of a secret against its algorithm.
fn hmac_plan_builds(secret: &[u8], alg: Algorithm) -> Result<(), ConfigError> {
    let settings = JwtSettings::new(KeySource::hmac_secret(secret)).algorithms([alg]);
    JwtPlanLayer::builder("wycheproof")
        .plan(Plan::jwt("p", "P", settings))
        .resolver(InMemoryResolver::new([]))
        .build()
        .map(drop)
}

// ------------------------------------------------------------------------------------------
// json_web_signature_test.json
// ------------------------------------------------------------------------------------------

/// The expectation for one JWS case, with the file's known data faults:
///
/// - 367, 370: byte-identical to the valid tcId 357 but labelled invalid (C2SP/wycheproof#236):
///   skipped.
/// - 372, 373: insert `?` into a segment and are labelled valid; a strict base64url decoder
///   refuses them: acceptable either way.
/// - 346, 350 (RFC 7520 Figure 20): the token is PS384 but Wycheproof gave the key
///   `"alg": "PS256"` (RFC 7520 §3.4's key has no `alg`). The algorithm comes from the key, so
///   the crate must refuse the token (refusing a key used with another algorithm than its `alg`
///   is the point of that member, RFC 7517 §4.4): asserted as a rejection.
/// - 347, 351 (RFC 7520 Figure 27): ES512 on a P-521 key, which the crate does not support: the
///   key must be refused by `jwk_set` (fail closed), asserted as a rejection.
/// - 259, 264, 268, 272, 320, 325 ("emptyPayload", `h..s`): a JWS may have an empty payload,
///   but the crate refuses an empty segment before any key is touched, by design (corpus row
///   B2, README "exactly three non-empty base64url segments": a JWT's payload is a JSON object,
///   never empty). `verify_jws` applies the layer's structure rules, so these are asserted as
///   rejections ([`EMPTY_PAYLOAD`] checks the reason).
fn jws_expectation(tc_id: u64, result: &str) -> Expect {
    match tc_id {
        367 | 370 => Expect::Skip,
        372 | 373 => Expect::Either,
        346 | 350 | 347 | 351 => Expect::Reject,
        id if EMPTY_PAYLOAD.contains(&id) => Expect::Reject,
        _ => from_result(result),
    }
}

/// The valid cases whose payload is empty (refused by the crate's structure rules).
const EMPTY_PAYLOAD: [u64; 6] = [259, 264, 268, 272, 320, 325];

/// The key source of one JWS group: public keys through `jwk_set`, an `oct` key through
/// `hmac_secret`. `Err` when the crate refuses the keys.
fn jws_source(group: &Value) -> (Result<KeySource, String>, Vec<Algorithm>) {
    if let Some(public) = group.get("public") {
        let source = KeySource::jwk_set(&as_set(public)).map_err(|e| e.to_string());
        return (source, key_algorithms(public));
    }
    let private = &group["private"];
    assert_eq!(private["kty"], "oct", "a group without public keys holds a symmetric key");
    let algorithms = key_algorithms(private);
    (Ok(KeySource::hmac_secret(unb64(private["k"].as_str().unwrap()))), algorithms)
}

#[test]
fn json_web_signature() {
    let doc = load("json_web_signature_test.json");
    let mut tally = Tally::default();
    let mut json_serializations = 0;
    let mut unsupported = Vec::new();
    for group in groups(&doc) {
        let (source, algorithms) = jws_source(group);
        if let Err(e) = &source
            && tests(group).iter().any(|t| t["result"] == "valid")
        {
            unsupported.push(format!("{} ({e})", group["comment"]));
        }
        for case in tests(group) {
            let tc_id = case["tcId"].as_u64().unwrap();
            let expect = jws_expectation(tc_id, case["result"].as_str().unwrap());
            let (ok, detail) = match (&source, case["jws"].as_str()) {
                (_, None) => (false, "not a string".to_string()),
                (Err(e), Some(_)) => (false, format!("keys refused: {e}")),
                (Ok(keys), Some(jws)) => match keys.verify_jws(jws, &algorithms) {
                    Ok(_) => (true, String::new()),
                    Err(e) => (false, e.to_string()),
                },
            };
            if expect == Expect::Either {
                eprintln!("tcId {tc_id} (acceptable either way): verified = {ok} {detail}");
            }
            if EMPTY_PAYLOAD.contains(&tc_id) {
                assert!(case["jws"].as_str().unwrap().contains(".."), "tcId {tc_id}");
                assert_eq!(detail, "JWT_INVALID_TOKEN: malformed token", "tcId {tc_id}");
            }
            let flags = case["flags"].as_array().unwrap();
            if flags.iter().any(|f| f == "JsonSerialization") {
                json_serializations += 1;
                assert!(!ok, "tcId {tc_id}: a JSON serialization verified");
            }
            tally.record(&format!("tcId {tc_id} {}", case["comment"]), expect, ok, &detail);
        }
    }
    eprintln!(
        "json_web_signature_test.json: keys refused for groups with valid cases: {unsupported:?}"
    );
    assert!(json_serializations > 0);
    tally.finish("json_web_signature_test.json", doc["numberOfTests"].as_u64().unwrap() as usize);
}

// ------------------------------------------------------------------------------------------
// json_web_key_test.json
// ------------------------------------------------------------------------------------------

/// The `kid` in a compact JWS header.
fn header_kid(jws: &str) -> Option<String> {
    let header: Value = serde_json::from_slice(&unb64(jws.split('.').next()?)).ok()?;
    header["kid"].as_str().map(str::to_owned)
}

/// Whether the crate accepts one JWK test case, and why not.
///
/// The mapping, precisely:
///
/// 1. The group's key set goes through `KeySource::jwk_set`: its `public` set when there is
///    one, else its `private` set. A set with private members or `oct` keys yields no usable
///    key, so `jwk_set` errors, which refuses the case. Otherwise the case is accepted iff
///    `verify_jws(jws, algorithms named by the keys' alg)` succeeds.
/// 2. Symmetric groups (only a `private` set, every key `oct`) also get the path an operator
///    has for secrets, `KeySource::hmac_secret`, since step 1 never loads them: the secret is
///    the single key whose `kid` is the token's `kid` (none or several: nothing to configure,
///    refused); its `alg` must be an HS* algorithm (an AES key's `A256GCM`/`A256KW`: refused);
///    a layer build with that secret and algorithm must succeed (a secret shorter than the hash
///    is refused with `WeakHmacSecret`); then `verify_jws`.
/// 3. A case is accepted iff step 1 or step 2 accepts it. Valid cases must be accepted, invalid
///    ones refused.
///
/// Independently of the label, `jwk_set` never loads a key with private members or a symmetric
/// key from any group's `private` set: it errors, or holds only the public asymmetric members
/// (the mixed set of tcId 1 keeps its EC public key; its `oct` key is skipped): asserted in
/// [`json_web_key`].
fn json_web_key_case(group: &Value, jws: &str) -> (bool, String) {
    let keys = group.get("public").unwrap_or(&group["private"]);
    let set_path = match KeySource::jwk_set(&as_set(keys)) {
        Err(e) => Err(format!("jwk_set: {e}")),
        Ok(source) => source
            .verify_jws(jws, &key_algorithms(keys))
            .map(drop)
            .map_err(|e| format!("verify_jws: {e}")),
    };
    if set_path.is_ok() {
        return (true, String::new());
    }
    let symmetric =
        group.get("public").is_none() && members(keys).iter().all(|k| k["kty"] == "oct");
    if !symmetric {
        return (false, set_path.unwrap_err());
    }
    let kid = header_kid(jws);
    let all = members(keys);
    let named: Vec<&Value> =
        all.iter().copied().filter(|k| k["kid"].as_str() == kid.as_deref()).collect();
    let [key] = named.as_slice() else {
        return (false, format!("{} keys named {kid:?}", named.len()));
    };
    let Some(alg) = key["alg"].as_str().and_then(|a| Algorithm::from_str(a).ok()) else {
        return (false, format!("alg {} is not a JWS algorithm", key["alg"]));
    };
    let secret = unb64(key["k"].as_str().unwrap());
    if let Err(e) = hmac_plan_builds(&secret, alg) {
        return (false, format!("layer build: {e}"));
    }
    match KeySource::hmac_secret(&secret).verify_jws(jws, &[alg]) {
        Ok(_) => (true, String::new()),
        Err(e) => (false, format!("verify_jws: {e}")),
    }
}

/// tcId 7 (a ROCA-vulnerable RSA key, CVE-2017-15361): the crate has no ROCA check; tested on
/// its own in [`json_web_key_roca`].
const ROCA_TC_ID: u64 = 7;

#[test]
fn json_web_key() {
    let doc = load("json_web_key_test.json");
    let mut tally = Tally::default();
    let mut private_sets = 0;
    for group in groups(&doc) {
        if let Some(private) = group.get("private") {
            private_sets += 1;
            let public_members = members(private)
                .iter()
                .filter(|k| {
                    k["kty"] != "oct" && !["d", "p", "q"].iter().any(|m| k.get(*m).is_some())
                })
                .count();
            let held = KeySource::jwk_set(&as_set(private)).map_or(0, |s| s.key_count());
            assert!(
                held <= public_members,
                "{}: {held} keys held from a private set with {public_members} public members",
                group["comment"]
            );
        }
        for case in tests(group) {
            let tc_id = case["tcId"].as_u64().unwrap();
            let expect = if tc_id == ROCA_TC_ID {
                Expect::Skip
            } else {
                from_result(case["result"].as_str().unwrap())
            };
            let (ok, detail) = json_web_key_case(group, case["jws"].as_str().unwrap());
            tally.record(
                &format!("tcId {tc_id} {} {}", group["comment"], case["comment"]),
                expect,
                ok,
                &detail,
            );
        }
    }
    assert_eq!(private_sets, groups(&doc).len());
    tally.finish("json_web_key_test.json", doc["numberOfTests"].as_u64().unwrap() as usize);
}

#[test]
fn json_web_key_roca() {
    let doc = load("json_web_key_test.json");
    let group =
        groups(&doc).iter().find(|g| tests(g).iter().any(|t| t["tcId"] == ROCA_TC_ID)).unwrap();
    let case = tests(group).iter().find(|t| t["tcId"] == ROCA_TC_ID).unwrap();
    assert_eq!(case["result"], "invalid");
    let (ok, _) = json_web_key_case(group, case["jws"].as_str().unwrap());
    assert!(!ok, "tcId 7: a JWS signed with a ROCA-vulnerable key verified");
}

// ------------------------------------------------------------------------------------------
// Primitive files
// ------------------------------------------------------------------------------------------

/// Check one signature with the crate's primitive path: `DecodingKey` and the aws-lc provider.
fn primitive_verify(alg: Algorithm, key: &DecodingKey, msg: &[u8], sig: &[u8]) -> bool {
    match (DEFAULT_PROVIDER.verifier_factory)(&alg, key) {
        Ok(verifier) => verifier.verify(msg, &sig.to_vec()).is_ok(),
        Err(_) => false,
    }
}

/// The key of a primitive group as a JWK: `publicKeyJwk`/`keyJwk`, or built from the raw EC
/// point when the group has none.
fn group_jwk(group: &Value) -> Value {
    if let Some(jwk) = group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) {
        return jwk.clone();
    }
    let key = &group["publicKey"];
    let point = unhex(key["uncompressed"].as_str().unwrap());
    let size = (point.len() - 1) / 2;
    let crv = match key["curve"].as_str().unwrap() {
        "secp256r1" => "P-256",
        "secp384r1" => "P-384",
        other => panic!("curve {other}"),
    };
    json!({"kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(&point[1..1 + size]),
           "y": URL_SAFE_NO_PAD.encode(&point[1 + size..])})
}

/// Run one asymmetric primitive file. `key_policy` says whether the crate must accept a
/// group's JWK (checked through `KeySource::jwk_set`).
fn asymmetric_file(file: &str, alg: Algorithm, key_policy: impl Fn(&Value) -> bool) {
    let doc = load(file);
    let mut tally = Tally::default();
    let (mut keys_accepted, mut keys_refused) = (0, 0);
    for group in groups(&doc) {
        let jwk = group_jwk(group);
        let loaded = KeySource::jwk_set(&as_set(&jwk));
        let must_load = key_policy(&jwk);
        assert_eq!(loaded.is_ok(), must_load, "{file}: key {jwk}: {:?}", loaded.err());
        if must_load {
            keys_accepted += 1;
        } else {
            keys_refused += 1;
        }
        let parsed: Jwk = serde_json::from_value(jwk.clone()).unwrap();
        let key = DecodingKey::from_jwk(&parsed).unwrap();
        for case in tests(group) {
            let tc_id = case["tcId"].as_u64().unwrap();
            let msg = unhex(case["msg"].as_str().unwrap());
            let sig = unhex(case["sig"].as_str().unwrap());
            let ok = primitive_verify(alg, &key, &msg, &sig);
            let expect = from_result(case["result"].as_str().unwrap());
            tally.record(
                &format!("tcId {tc_id} {} {:?}", case["comment"], case["flags"]),
                expect,
                ok,
                "",
            );
        }
    }
    eprintln!(
        "{file}: {} groups, keys loaded by jwk_set: {keys_accepted}, refused by policy: {keys_refused}",
        groups(&doc).len()
    );
    assert!(keys_accepted > 0);
    tally.finish(file, doc["numberOfTests"].as_u64().unwrap() as usize);
}

/// Every key of these files is one the crate must load.
fn always(_: &Value) -> bool {
    true
}

#[test]
fn ecdsa_p256_p1363() {
    asymmetric_file("ecdsa_secp256r1_sha256_p1363_test.json", Algorithm::ES256, always);
}

#[test]
fn ecdsa_p384_p1363() {
    asymmetric_file("ecdsa_secp384r1_sha384_p1363_test.json", Algorithm::ES384, always);
}

/// RSA keys: loaded iff the modulus is at least MIN_RSA_BITS (all of these are 2048 bits,
/// with e = 65537 or e = 3).
fn rsa_policy(jwk: &Value) -> bool {
    let n = unb64(jwk["n"].as_str().unwrap());
    let n = &n[n.iter().position(|b| *b != 0).unwrap()..];
    n.len() * 8 - n[0].leading_zeros() as usize >= MIN_RSA_BITS
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    asymmetric_file("rsa_signature_2048_sha256_test.json", Algorithm::RS256, rsa_policy);
}

#[test]
fn rsa_pss_2048_sha256_mgf1_32() {
    asymmetric_file("rsa_pss_2048_sha256_mgf1_32_test.json", Algorithm::PS256, rsa_policy);
}

#[test]
fn ed25519() {
    asymmetric_file("ed25519_test.json", Algorithm::EdDSA, always);
}

#[test]
fn hmac_sha256_full_tags() {
    let doc = load("hmac_sha256_test.json");
    let mut tally = Tally::default();
    let (mut keys_accepted, mut keys_refused) = (0, 0);
    for group in groups(&doc) {
        let full_length = group["tagSize"] == 256;
        for case in tests(group) {
            let tc_id = case["tcId"].as_u64().unwrap();
            if !full_length {
                // JWS never truncates a MAC: these groups do not apply.
                tally.record("", Expect::Skip, false, "");
                continue;
            }
            let secret = unhex(case["key"].as_str().unwrap());
            // RFC 7518 §3.2: an HS256 secret of at least 32 bytes, refused at build otherwise.
            let built = hmac_plan_builds(&secret, Algorithm::HS256);
            match (secret.len() >= 32, &built) {
                (true, Ok(())) => keys_accepted += 1,
                (false, Err(ConfigError::WeakHmacSecret { .. })) => keys_refused += 1,
                _ => panic!("tcId {tc_id}: a {}-byte secret: {built:?}", secret.len()),
            }
            let msg = unhex(case["msg"].as_str().unwrap());
            let tag = unhex(case["tag"].as_str().unwrap());
            let ok =
                primitive_verify(Algorithm::HS256, &DecodingKey::from_secret(&secret), &msg, &tag);
            let expect = from_result(case["result"].as_str().unwrap());
            tally.record(&format!("tcId {tc_id} {}", case["comment"]), expect, ok, "");
        }
    }
    eprintln!(
        "hmac_sha256_test.json: secrets loaded: {keys_accepted}, refused as too short: {keys_refused}"
    );
    assert!(keys_accepted > 0 && keys_refused > 0);
    tally.finish("hmac_sha256_test.json", doc["numberOfTests"].as_u64().unwrap() as usize);
}
