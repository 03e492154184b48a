//! Property tests over the crate's parsers and the whole layer decision, standing in for
//! cargo-fuzz (which needs a nightly toolchain that cannot be installed here). proptest keeps any
//! failing input it finds in `tests/proptest-regressions/properties.txt` (created on the first
//! failure; commit it), and replays those inputs first on every `cargo test`.
//!
//! Entry points: the token as sent in `Authorization` (arbitrary text, and mutations of a valid
//! token), arbitrary signed JSON headers and payloads through the real layer, and JWKS
//! documents (the gateway's config parser has its own in `gateway/tests/gateway/config.rs`).
//! The properties: no panic, no token accepted that is not exactly a valid one, a refused
//! request never reaches the inner service.
//! `PROPTEST_CASES` raises the number of cases (default here: 256 per property).

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};
use tower_jwt_plan::defaults::MAX_KEYS_PER_SET;
use tower_jwt_plan::*;

const SECRET: [u8; 32] = [5u8; 32];

fn hmac() -> Signer {
    Signer::hmac(&SECRET)
}

fn layer() -> JwtPlanLayer<InMemoryResolver> {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET))
        .algorithms([Algorithm::HS256])
        .issuer(ISS)
        .audience(AUD);
    gold_builder(settings).build().unwrap()
}

/// 256 per property, or `PROPTEST_CASES` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Send `authorization` (raw header bytes) through the layer; `None` if not a valid header value.
fn decide(
    rt: &tokio::runtime::Runtime,
    layer: &JwtPlanLayer<InMemoryResolver>,
    authorization: &[u8],
) -> Option<(u16, usize)> {
    let value = http::HeaderValue::from_bytes(authorization).ok()?;
    let mut req = no_token();
    req.headers_mut().insert("authorization", value);
    let seen = Seen::default();
    let answer = rt.block_on(send(layer, &seen, req));
    Some((answer.status, seen.calls()))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z:/._-]{0,12}".prop_map(Value::String),
        Just(json!(ISS)),
        Just(json!(AUD)),
        Just(json!(CLIENT)),
        Just(json!(now() + 600)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("exp".to_string()),
                    Just("iss".to_string()),
                    Just("aud".to_string()),
                    Just("client_id".to_string()),
                    Just("nbf".to_string()),
                    Just("iat".to_string()),
                    Just("alg".to_string()),
                    Just("kid".to_string()),
                    Just("crit".to_string()),
                    "[a-z]{1,5}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Integration tests have no lib.rs for proptest to find: name the file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Any header text: refused (401), never passed, never a panic.
    #[test]
    fn arbitrary_authorization_is_refused(raw in prop::collection::vec(any::<u8>(), 0..300), bearer in any::<bool>()) {
        let rt = runtime();
        let layer = layer();
        let mut value = if bearer { b"Bearer ".to_vec() } else { Vec::new() };
        value.extend_from_slice(&raw);
        if let Some((status, calls)) = decide(&rt, &layer, &value) {
            prop_assert_eq!(status, 401);
            prop_assert_eq!(calls, 0);
        }
    }

    /// Any single-character change to a valid token: never accepted.
    #[test]
    fn mutated_token_is_never_accepted(position in any::<prop::sample::Index>(), replacement in prop::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".chars().collect::<Vec<_>>()
    ), insert in any::<bool>()) {
        let rt = runtime();
        let layer = layer();
        let token = hmac().token("k", &claims());
        prop_assert_eq!(decide(&rt, &layer, format!("Bearer {token}").as_bytes()).unwrap().0, 200);
        let mut chars: Vec<char> = token.chars().collect();
        let at = position.index(chars.len());
        if insert { chars.insert(at, replacement) } else { chars[at] = replacement }
        let mutated: String = chars.into_iter().collect();
        if mutated == token {
            return Ok(());
        }
        if let Some((status, calls)) = decide(&rt, &layer, format!("Bearer {mutated}").as_bytes()) {
            prop_assert_ne!(status, 200, "mutated token accepted: {}", mutated);
            prop_assert_eq!(calls, 0);
        }
    }

    /// Correctly signed tokens with arbitrary JSON: no panic, and a pass only when the claims
    /// really satisfy the plan.
    #[test]
    fn signed_arbitrary_json_passes_only_when_valid(header in json_value(), payload in json_value(), alg_hs256 in any::<bool>()) {
        let rt = runtime();
        let layer = layer();
        let mut header = header;
        if alg_hs256 && let Value::Object(map) = &mut header {
            map.insert("alg".into(), json!("HS256"));
        }
        let token = hmac().token_raw(Algorithm::HS256, &header.to_string(), &payload.to_string());
        let (status, calls) = decide(&rt, &layer, format!("Bearer {token}").as_bytes()).unwrap();
        prop_assert!(matches!(status, 200 | 401 | 403), "status {}", status);
        if status == 200 {
            prop_assert_eq!(calls, 1);
            prop_assert_eq!(&header["alg"], "HS256");
            prop_assert!(header.get("crit").is_none());
            prop_assert_eq!(&payload["iss"], ISS);
            prop_assert_eq!(&payload["client_id"], CLIENT);
            let exp = payload["exp"].as_f64().unwrap();
            prop_assert!(exp + 60.0 > now() as f64);
            let aud_ok = payload["aud"] == json!(AUD)
                || payload["aud"].as_array().is_some_and(|a| a.contains(&json!(AUD)));
            prop_assert!(aud_ok);
        } else {
            prop_assert_eq!(calls, 0);
        }
    }

    /// JWKS documents: parsed key by key, never a panic, never more than the key cap.
    #[test]
    fn jwks_parsing_never_panics(doc in json_value(), keys in prop::collection::vec(json_value(), 0..8)) {
        let _ = KeySource::jwk_set(&doc.to_string());
        let with_keys = json!({"keys": keys});
        if let Ok(source) = KeySource::jwk_set(&with_keys.to_string()) {
            prop_assert!((1..=MAX_KEYS_PER_SET).contains(&source.key_count()));
        }
    }
}
