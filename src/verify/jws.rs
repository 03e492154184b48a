//! Strict parsing of a compact JWS and of its JSON: exactly three non-empty base64url segments
//! with no padding and canonical trailing bits, JSON objects with no duplicate member names,
//! `alg` a string (checked against the plan's allowlist later, so `none` never gets near a key),
//! no `crit`, `b64`, `zip` or nested `cty`, and registered claims of their registered types.
//! Nothing here touches a key.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::defaults::MAX_KID_BYTES;
use crate::error::{AuthError, InvalidReason};
use crate::key::alg_name;

/// A compact JWS, parsed but not verified. Borrows the token.
pub(crate) struct Jws<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(super) typ: Option<String>,
    pub(crate) iss: Option<String>,
    pub(super) signing_input: &'a str,
    pub(super) payload: &'a str,
    pub(super) signature: Vec<u8>,
}

pub(super) fn decode_segment(segment: &str) -> Result<Vec<u8>, AuthError> {
    // The engine refuses padding and non-zero trailing bits, so each token has one spelling.
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| AuthError::invalid(InvalidReason::Malformed))
}

/// Parse a compact JWS. Cheap checks come first: segment count before any allocation.
pub(crate) fn parse_jws(token: &str) -> Result<Jws<'_>, AuthError> {
    let malformed = || AuthError::invalid(InvalidReason::Malformed);
    if token.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(malformed());
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or_else(malformed)?;
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed());
    }
    let header = parse_object(&decode_segment(header)?)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Algorithm::from_str(name)
            .map_err(|_| AuthError::invalid(InvalidReason::AlgorithmNotAllowed))?,
        _ => return Err(AuthError::invalid(InvalidReason::AlgorithmNotAllowed)),
    };
    // We implement no JWS extension, so any `crit` must be refused (RFC 7515 §4.1.11); `b64`
    // and `zip` change how the payload is read and `cty: JWT` nests tokens: none are supported.
    let unsupported = ["crit", "b64", "zip", "enc"].iter().any(|h| header.contains_key(*h))
        || header.get("cty").and_then(Value::as_str).is_some_and(|c| normalize_typ(c) == "jwt");
    if unsupported {
        return Err(AuthError::invalid(InvalidReason::UnsupportedHeader));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
        Some(_) => return Err(AuthError::invalid(InvalidReason::BadKeyId)),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(normalize_typ(typ)),
        Some(_) => return Err(AuthError::invalid(InvalidReason::UnsupportedHeader)),
    };
    let signature = decode_segment(signature)?;
    // `iss` only routes the token to candidate plans; it is trusted after verification.
    Ok(Jws { alg, kid, typ, iss: None, signing_input, payload, signature })
}

impl Jws<'_> {
    /// Decode the payload into claims, checking the types of registered claims.
    pub(crate) fn claims(&mut self) -> Result<Arc<Map<String, Value>>, AuthError> {
        let claims = parse_object(&decode_segment(self.payload)?)?;
        check_claim_types(&claims)?;
        let claims = Arc::new(claims);
        self.use_claims(&claims);
        Ok(claims)
    }

    /// Take claims already decoded from this same token (earlier in the request, or from the
    /// token cache) instead of decoding them again.
    pub(crate) fn use_claims(&mut self, claims: &Map<String, Value>) {
        self.iss = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
    }

    /// The raw `alg` as a key-independent string, for logs.
    pub(crate) fn alg_name(&self) -> &'static str {
        alg_name(self.alg)
    }
}

pub(super) fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// Registered claims must have their registered types; a wrongly typed claim is an error, never
/// "absent" (CVE-2026-25537 was exactly that mistake).
fn check_claim_types(claims: &Map<String, Value>) -> Result<(), AuthError> {
    let wrong = || AuthError::invalid(InvalidReason::WrongClaimType);
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !v.is_number()) {
            return Err(wrong());
        }
    }
    for name in ["iss", "sub", "jti", "azp", "client_id", "scope"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(wrong());
        }
    }
    let strings = |v: &Value| match v {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    };
    if claims.get("aud").is_some_and(|v| !strings(v))
        || claims.get("scp").is_some_and(|v| !strings(v))
    {
        return Err(wrong());
    }
    Ok(())
}

/// Parse a JSON object, refusing duplicate member names at any depth (RFC 7515 §4 allows
/// "reject", and rejecting leaves no room for two parsers to disagree).
fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, AuthError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        _ => Err(AuthError::invalid(InvalidReason::Malformed)),
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", seg(header), seg(payload))
    }

    fn reason(r: Result<Jws<'_>, AuthError>) -> Option<InvalidReason> {
        r.err().and_then(|e| e.reason())
    }

    #[test]
    fn structure_is_strict() {
        let good = token(r#"{"alg":"RS256"}"#, "{}");
        assert!(parse_jws(&good).is_ok());
        for bad in [
            String::new(),
            "a.b".into(),
            format!("{good}."),
            format!(".{good}"),
            good.replacen('.', "..", 1),
            format!("{good}.x.y"),
            format!("{}.{}.", seg(r#"{"alg":"RS256"}"#), seg("{}")),
            format!("{}=.{}.c2ln", seg(r#"{"alg":"RS256"}"#), seg("{}")),
            ".".repeat(10_000),
        ] {
            assert_eq!(reason(parse_jws(&bad)), Some(InvalidReason::Malformed), "{bad:.40}");
        }
    }

    #[test]
    fn header_rules() {
        let cases = [
            (r#"{"alg":"none"}"#, InvalidReason::AlgorithmNotAllowed),
            (r#"{"alg":"rs256"}"#, InvalidReason::AlgorithmNotAllowed),
            (r#"{"alg":["RS256"]}"#, InvalidReason::AlgorithmNotAllowed),
            (r#"{}"#, InvalidReason::AlgorithmNotAllowed),
            (r#"{"alg":"RS256","crit":["exp"]}"#, InvalidReason::UnsupportedHeader),
            (r#"{"alg":"RS256","b64":false}"#, InvalidReason::UnsupportedHeader),
            (r#"{"alg":"RS256","zip":"DEF"}"#, InvalidReason::UnsupportedHeader),
            (r#"{"alg":"RS256","cty":"JWT"}"#, InvalidReason::UnsupportedHeader),
            (r#"{"alg":"RS256","kid":1}"#, InvalidReason::BadKeyId),
            (r#"{"alg":"RS256","alg":"none"}"#, InvalidReason::Malformed),
            (r#"{"alg":"RS256","\u0061lg":"RS256"}"#, InvalidReason::Malformed),
            ("[1]", InvalidReason::Malformed),
            (r#"{"alg":"RS256"}x"#, InvalidReason::Malformed),
        ];
        for (header, want) in cases {
            assert_eq!(reason(parse_jws(&token(header, "{}"))), Some(want), "{header}");
        }
        let long_kid = format!(r#"{{"alg":"RS256","kid":"{}"}}"#, "k".repeat(MAX_KID_BYTES + 1));
        assert_eq!(reason(parse_jws(&token(&long_kid, "{}"))), Some(InvalidReason::BadKeyId));
    }

    #[test]
    fn claim_types_are_checked() {
        for payload in [
            r#"{"exp":"9999999999"}"#,
            r#"{"exp":true}"#,
            r#"{"exp":null}"#,
            r#"{"nbf":"1"}"#,
            r#"{"iss":123}"#,
            r#"{"aud":[1]}"#,
            r#"{"aud":[null]}"#,
            r#"{"sub":{}}"#,
        ] {
            let t = token(r#"{"alg":"RS256"}"#, payload);
            let mut jws = parse_jws(&t).unwrap();
            let err = jws.claims().unwrap_err();
            assert_eq!(err.reason(), Some(InvalidReason::WrongClaimType), "{payload}");
        }
        let t = token(r#"{"alg":"RS256"}"#, r#"{"sub":"a","sub":"b"}"#);
        assert_eq!(
            parse_jws(&t).unwrap().claims().unwrap_err().reason(),
            Some(InvalidReason::Malformed)
        );
    }
}
