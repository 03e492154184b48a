//! The compact JWS parser and its JSON (header and payload), up to the signature check, as the
//! layer runs them: strict structure, base64url, duplicate members, header rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_plan::{Algorithm, KeySource};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let keys = KeySource::hmac_secret([7u8; 32]);
    let _ = keys.verify_jws(token, &[Algorithm::HS256, Algorithm::RS256, Algorithm::ES256]);
});
