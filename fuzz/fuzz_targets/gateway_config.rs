//! The example gateway's TOML configuration reader (`parse_config`): it must refuse with a
//! one-line error, never panic. (`check_config`, which builds HTTP clients, is too slow per
//! input to fuzz here; its rules are covered by the gateway's config tests.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_plan_gateway::config::parse_config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(message) = parse_config(text) {
        assert!(!message.contains('\n'), "errors are one line");
    }
});
