//! [`ClaimRules`]: one plan's claim checks, compiled once from its
//! [`JwtSettings`](super::JwtSettings): `exp` required, `nbf` and `iat` checked with leeway,
//! issuer and audience exact and required once configured, scopes, and the client id.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::jws::Jws;
use crate::error::{AuthError, AuthErrorKind, InvalidReason};
use crate::key::AlgSet;

/// Whether every required scope must be present, or one is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeMode {
    /// All required scopes must be granted (default).
    #[default]
    All,
    /// At least one required scope must be granted.
    Any,
}

/// A token's `exp`, `nbf` and `iat`, as numbers (the parser already refused other types).
///
/// An absent claim is NaN, which no JSON number can be: 24 bytes rather than 48 for three
/// `Option<f64>`, in every token-cache entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeClaims {
    exp: f64,
    nbf: f64,
    iat: f64,
}

impl Default for TimeClaims {
    fn default() -> Self {
        Self { exp: f64::NAN, nbf: f64::NAN, iat: f64::NAN }
    }
}

impl TimeClaims {
    pub(crate) fn of(claims: &Map<String, Value>) -> Self {
        let number = |name: &str| claims.get(name).and_then(Value::as_f64).unwrap_or(f64::NAN);
        Self { exp: number("exp"), nbf: number("nbf"), iat: number("iat") }
    }

    fn exp(self) -> Option<f64> {
        Some(self.exp).filter(|n| !n.is_nan())
    }

    fn nbf(self) -> Option<f64> {
        Some(self.nbf).filter(|n| !n.is_nan())
    }

    fn iat(self) -> Option<f64> {
        Some(self.iat).filter(|n| !n.is_nan())
    }
}

/// The claim checks of one plan, built once at layer build. The equivalent of jsonwebtoken's
/// `Validation`, with exp required and iss/aud required as soon as they are configured.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) algorithms: AlgSet,
    pub(super) leeway: f64,
    pub(super) require_exp: bool,
    pub(super) issuers: Vec<String>,
    pub(super) audiences: Vec<String>,
    pub(super) max_lifetime: Option<f64>,
    pub(super) token_types: Option<Vec<String>>,
    pub(super) client_id_claim: Option<String>,
    pub(super) required_scopes: Vec<String>,
    pub(super) scope_mode: ScopeMode,
}

impl ClaimRules {
    /// Check header `typ` and the claims against this plan's rules at `now` (the layer calls
    /// [`check_with_times`](Self::check_with_times), with the time claims read once).
    #[cfg(test)]
    pub(crate) fn check(
        &self,
        jws: &Jws<'_>,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        self.check_with_times(jws, claims, TimeClaims::of(claims), now)
    }

    /// [`check`](Self::check) with the time claims read once per request, not once per plan.
    pub(crate) fn check_with_times(
        &self,
        jws: &Jws<'_>,
        claims: &Map<String, Value>,
        times: TimeClaims,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let invalid = AuthError::invalid;
        let typ_ok = match (&self.token_types, jws.typ.as_deref()) {
            (Some(allowed), Some(typ)) => allowed.iter().any(|a| a == typ),
            (Some(allowed), None) => allowed.is_empty(),
            (None, None) => true,
            (None, Some(typ)) => typ == "jwt" || typ == "at+jwt",
        };
        if !typ_ok {
            return Err(invalid(InvalidReason::UnsupportedHeader));
        }
        self.check_time_claims(times, now)?;
        if !self.issuers.is_empty() {
            // `Jws::iss` is the `iss` claim when it is a string, read once per request.
            match jws.iss.as_deref() {
                None => return Err(invalid(InvalidReason::MissingClaim)),
                Some(iss) if !self.issuers.iter().any(|i| i == iss) => {
                    return Err(invalid(InvalidReason::IssuerNotAccepted));
                }
                Some(_) => {}
            }
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match claims.get("aud") {
                None => return Err(invalid(InvalidReason::MissingClaim)),
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
                Some(_) => false,
            };
            if !ok {
                return Err(invalid(InvalidReason::AudienceNotAccepted));
            }
        }
        Ok(())
    }

    /// The time-dependent checks (`exp`, `nbf`, `iat`, lifetime): the only ones that can change
    /// for a token already verified, so the only ones repeated on a token-cache hit. The time
    /// claims are read once per request (and kept by a token-cache entry).
    pub(crate) fn check_time_claims(
        &self,
        times: TimeClaims,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let invalid = AuthError::invalid;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        match times.exp() {
            Some(exp) if now >= exp + self.leeway => return Err(invalid(InvalidReason::Expired)),
            Some(exp) if self.max_lifetime.is_some_and(|max| exp - now > max + self.leeway) => {
                return Err(invalid(InvalidReason::LifetimeTooLong));
            }
            Some(_) => {}
            None if self.require_exp => return Err(invalid(InvalidReason::MissingClaim)),
            None => {}
        }
        if times.nbf().is_some_and(|nbf| now + self.leeway < nbf) {
            return Err(invalid(InvalidReason::NotYetValid));
        }
        if let Some(iat) = times.iat() {
            if iat < 0.0 {
                return Err(invalid(InvalidReason::WrongClaimType));
            }
            if iat > now + self.leeway {
                return Err(invalid(InvalidReason::IssuedInFuture));
            }
        }
        Ok(())
    }

    /// Whether `other` checks a token's claims exactly as this plan does (the algorithms, checked
    /// with the signature, aside): then one token gets the same verdict, client id included,
    /// from both, and a request checks them once.
    pub(crate) fn same_checks(&self, other: &ClaimRules) -> bool {
        // Destructured, so that a new rule cannot be left out of the comparison.
        let ClaimRules {
            algorithms: _,
            leeway,
            require_exp,
            issuers,
            audiences,
            max_lifetime,
            token_types,
            client_id_claim,
            required_scopes,
            scope_mode,
        } = self;
        *leeway == other.leeway
            && *require_exp == other.require_exp
            && *issuers == other.issuers
            && *audiences == other.audiences
            && *max_lifetime == other.max_lifetime
            && *token_types == other.token_types
            && *client_id_claim == other.client_id_claim
            && *required_scopes == other.required_scopes
            && *scope_mode == other.scope_mode
    }

    /// Whether `other` reads the client id from the same claim (so from the same token, the
    /// same client id).
    pub(crate) fn same_client_claim(&self, other: &ClaimRules) -> bool {
        self.client_id_claim == other.client_id_claim
    }

    /// Whether this plan would consider a token of this (unverified) issuer at all.
    pub(crate) fn accepts_issuer(&self, iss: Option<&str>) -> bool {
        self.issuers.is_empty() || iss.is_some_and(|iss| self.issuers.iter().any(|i| i == iss))
    }

    /// Check required scopes: 403 `JWT_INSUFFICIENT_SCOPE` when they are missing.
    pub(crate) fn check_scopes(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        if self.required_scopes.is_empty() {
            return Ok(());
        }
        let granted: Vec<&str> = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => {
                s.split(' ').filter(|s| !s.is_empty()).collect()
            }
            (None, Some(Value::Array(items))) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let has = |s: &String| granted.contains(&s.as_str());
        let ok = match self.scope_mode {
            ScopeMode::All => self.required_scopes.iter().all(has),
            ScopeMode::Any => self.required_scopes.iter().any(has),
        };
        if ok { Ok(()) } else { Err(AuthError::new(AuthErrorKind::InsufficientScope)) }
    }

    /// The client id: the configured claim, else `client_id`, else `azp`.
    pub(crate) fn client_id<'c>(
        &self,
        claims: &'c Map<String, Value>,
    ) -> Result<&'c str, AuthError> {
        let read = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let found = match &self.client_id_claim {
            Some(name) => read(name),
            None => read("client_id").or_else(|| read("azp")),
        };
        found.ok_or_else(|| AuthError::invalid(InvalidReason::MissingClientId))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::verify::jws::parse_jws;
    use crate::verify::{JwtSettings, KeySource};

    fn seg(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", seg(header), seg(payload))
    }

    fn rules() -> ClaimRules {
        JwtSettings::new(KeySource::hmac_secret([1u8; 32]))
            .algorithms([Algorithm::HS256])
            .issuer("https://idp")
            .audience("api://a")
            .compile("p")
            .unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn check(payload: &str, now: u64) -> Result<(), AuthError> {
        let t = token(r#"{"alg":"HS256"}"#, payload);
        let mut jws = parse_jws(&t).unwrap();
        let claims = jws.claims()?;
        rules().check(&jws, &claims, at(now))
    }

    #[test]
    fn time_edges_with_leeway() {
        let base = r#""iss":"https://idp","aud":"api://a""#;
        // exp == now - 60: expired (exclusive); one second later it was still valid.
        assert_eq!(
            check(&format!(r#"{{{base},"exp":1000}}"#), 1060).unwrap_err().reason(),
            Some(InvalidReason::Expired)
        );
        assert!(check(&format!(r#"{{{base},"exp":1000}}"#), 1059).is_ok());
        assert!(check(&format!(r#"{{{base},"exp":2000,"nbf":1060}}"#), 1000).is_ok());
        assert_eq!(
            check(&format!(r#"{{{base},"exp":2000,"nbf":1061}}"#), 1000).unwrap_err().reason(),
            Some(InvalidReason::NotYetValid)
        );
        assert_eq!(
            check(&format!(r#"{{{base},"exp":2000,"iat":1061}}"#), 1000).unwrap_err().reason(),
            Some(InvalidReason::IssuedInFuture)
        );
        assert_eq!(
            check(&format!(r#"{{{base},"exp":0}}"#), 1000).unwrap_err().reason(),
            Some(InvalidReason::Expired)
        );
        assert_eq!(
            check(&format!(r#"{{{base}}}"#), 1000).unwrap_err().reason(),
            Some(InvalidReason::MissingClaim)
        );
        assert!(check(&format!(r#"{{{base},"exp":1.7e300}}"#), 1000).is_ok());
    }

    #[test]
    fn issuer_and_audience_are_exact_and_required() {
        let ok = |p: &str| check(p, 1000);
        assert!(ok(r#"{"exp":2000,"iss":"https://idp","aud":["x","api://a"]}"#).is_ok());
        assert_eq!(
            ok(r#"{"exp":2000,"aud":"api://a"}"#).unwrap_err().reason(),
            Some(InvalidReason::MissingClaim)
        );
        assert_eq!(
            ok(r#"{"exp":2000,"iss":"https://idp/","aud":"api://a"}"#).unwrap_err().reason(),
            Some(InvalidReason::IssuerNotAccepted)
        );
        assert_eq!(
            ok(r#"{"exp":2000,"iss":"https://idp"}"#).unwrap_err().reason(),
            Some(InvalidReason::MissingClaim)
        );
        assert_eq!(
            ok(r#"{"exp":2000,"iss":"https://idp","aud":[]}"#).unwrap_err().reason(),
            Some(InvalidReason::AudienceNotAccepted)
        );
        assert_eq!(
            ok(r#"{"exp":2000,"iss":"https://idp","aud":"API://A"}"#).unwrap_err().reason(),
            Some(InvalidReason::AudienceNotAccepted)
        );
    }

    #[test]
    fn scopes_and_client_id() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let all = JwtSettings::new(KeySource::hmac_secret([1u8; 32]))
            .algorithms([Algorithm::HS256])
            .required_scopes(["read", "write"], ScopeMode::All)
            .compile("p")
            .unwrap();
        assert!(all.check_scopes(&claims(serde_json::json!({"scope": "read write"}))).is_ok());
        assert!(all.check_scopes(&claims(serde_json::json!({"scp": ["write", "read"]}))).is_ok());
        let err = all.check_scopes(&claims(serde_json::json!({"scope": "read"}))).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InsufficientScope);
        assert_eq!(
            all.client_id(&claims(serde_json::json!({"azp": "a", "client_id": "c"}))).unwrap(),
            "c"
        );
        assert_eq!(all.client_id(&claims(serde_json::json!({"azp": "a"}))).unwrap(), "a");
        assert!(all.client_id(&claims(serde_json::json!({"client_id": ""}))).is_err());
    }
}
