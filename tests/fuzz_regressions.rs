//! Inputs on which `fuzz/run.sh` found a crash, replayed through the public API so the fix
//! cannot regress. Each test names the fuzz target that found it.

use tower_jwt_plan::KeySource;

/// `jwks`: an RSA JWK with an empty modulus (`"n": ""`) underflowed the bit count of the size
/// check (a panic with overflow checks, as in this test's build). Now the key is refused, and a
/// set holding it skips it.
#[test]
fn jwks_rsa_key_with_empty_modulus() {
    let key = r#"{"kty": "RSA", "alg": "RS512", "n": "", "e": "AQAB", "kid": "k"}"#;
    let err = KeySource::public_key_jwk(key).expect_err("an empty modulus is refused");
    assert!(err.to_string().contains('n'), "{err}");
    let set = format!(r#"{{"keys": [{key}]}}"#);
    assert!(KeySource::jwk_set(&set).is_err(), "a set with no usable key is refused");
    // The shape the fuzzer found: "n" given twice, the last one (which wins) empty.
    let found = r#"{"kty": "RSA", "alg": "RS512", "n": "wsSoYCNtPJkc", "e": "ABQA",
        "kid": "ki-rsa-sign", "n": "", "e": "AQAB"}"#;
    assert!(KeySource::public_key_jwk(found).is_err());
    assert!(KeySource::jwk_set(&format!(r#"{{"keys": [{found}]}}"#)).is_err());
}
