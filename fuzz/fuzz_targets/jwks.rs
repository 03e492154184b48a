//! The JWK and JWKS readers: a key set parsed key by key (skipping unusable keys) and a single
//! public JWK, exactly as fetched sets are read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_plan::KeySource;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = KeySource::jwk_set(text);
    let _ = KeySource::public_key_jwk(text);
});
