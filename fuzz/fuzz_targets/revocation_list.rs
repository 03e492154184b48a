//! The revocation-list reader (JSON array, `{"revoked": [...]}`, or one `jti` per line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_plan::RevocationList;

fuzz_target!(|data: &[u8]| {
    let _ = RevocationList::parse(data);
});
