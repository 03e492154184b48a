//! The OpenID Connect / RFC 8414 metadata-document reader (exact issuer match).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_plan::ProviderMetadata;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = ProviderMetadata::parse(data, "https://idp.example") {
        assert_eq!(meta.issuer(), "https://idp.example");
    }
});
