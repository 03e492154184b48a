//! Error types: [`ConfigError`] for everything refused at build or redeploy time, and
//! [`AuthError`] for a request the layer turned away.
//!
//! `AuthError` is an opaque struct: match on [`AuthError::kind`], read the stable machine
//! code with [`AuthError::code`], and walk [`std::error::Error::source`] for the underlying
//! cause (a `reqwest` or store error). It knows nothing about HTTP: the mapping to statuses,
//! challenges and gRPC codes lives in `response.rs`, documented once on
//! [`default_rejection`](crate::default_rejection).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed error from a user's store or from the network, kept as the `source()` of our errors.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A configuration the crate refuses to build (or to redeploy).
///
/// Returned by the builders' `build()` methods and by [`JwtPlanLayer::redeploy`]; a refused
/// redeploy leaves the previous plan set serving.
///
/// [`JwtPlanLayer::redeploy`]: crate::JwtPlanLayer::redeploy
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A keyless plan is published or deprecated next to JWT plans: it would let anyone bypass them.
    #[error(
        "plan `{plan}` is keyless and {status}: a keyless plan that serves traffic lets anyone bypass JWT plans; close it or move it to staging"
    )]
    KeylessPlanServing {
        /// The offending plan's id.
        plan: String,
        /// Its status, as written in configs (`published` or `deprecated`).
        status: &'static str,
    },
    /// Two plans share an id.
    #[error("duplicate plan id `{0}`")]
    DuplicatePlan(String),
    /// An id (API or plan) is empty.
    #[error("{0} id must not be empty")]
    EmptyId(&'static str),
    /// A JWT plan allows no algorithm.
    #[error("plan `{0}` allows no signature algorithm")]
    NoAlgorithms(String),
    /// An algorithm does not fit the plan's key (for example HS256 with an RSA key).
    #[error("plan `{plan}`: algorithm {alg} cannot be used with {key}")]
    AlgorithmKeyMismatch {
        /// The plan.
        plan: String,
        /// The algorithm, as in a JWS header.
        alg: String,
        /// What kind of key the plan has.
        key: &'static str,
    },
    /// A key could not be loaded.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// An HMAC secret is shorter than the hash output of an algorithm it would be used with.
    #[error("HMAC secret of {len} bytes is too short for {alg} (needs at least {min})")]
    WeakHmacSecret {
        /// The secret length in bytes.
        len: usize,
        /// The algorithm.
        alg: String,
        /// The minimum length.
        min: usize,
    },
    /// A JWKS URL is not acceptable.
    #[error("invalid JWKS URL `{url}`: {reason}")]
    InvalidJwksUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A setting is out of its allowed range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// `JwksCache::build` was called outside a Tokio runtime.
    #[error(
        "JwksCache::build must run inside a Tokio runtime (or use JwksCache::build_with_worker)"
    )]
    NoRuntime,
    /// The HTTP client could not be built.
    #[error("cannot build the JWKS HTTP client")]
    HttpClient(#[source] BoxError),
}

/// Why a request was refused. Stable: each kind has a machine code and one rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No bearer token was sent (`JWT_MISSING_TOKEN`, 401).
    MissingToken,
    /// The token is malformed, badly signed, expired or otherwise unacceptable
    /// (`JWT_INVALID_TOKEN`, 401). See [`AuthError::reason`].
    InvalidToken,
    /// The token is valid but lacks a required scope (`JWT_INSUFFICIENT_SCOPE`, 403).
    InsufficientScope,
    /// The token is valid but its client holds no usable subscription to a servable plan
    /// (`GATEWAY_PLAN_UNRESOLVABLE`, 403).
    PlanUnresolvable,
    /// The keys needed to verify the token cannot be obtained (`JWKS_UNAVAILABLE`, 503).
    JwksUnavailable,
    /// The subscription store failed (`GATEWAY_PLAN_RESOLUTION_FAILURE`, 503).
    ResolutionFailure,
    /// The plan checks revocation and no revocation list has been loaded yet
    /// (`JWT_REVOCATION_UNAVAILABLE`, 503).
    RevocationUnavailable,
    /// The plan's rate limit is used up (`RATE_LIMIT_TOO_MANY_REQUESTS`, 429). Only
    /// [`PlanLimitLayer`](crate::limit::PlanLimitLayer) answers this.
    RateLimitExceeded,
    /// The plan's quota is used up (`QUOTA_TOO_MANY_REQUESTS`, 429).
    QuotaExceeded,
    /// The plan's spike arrest refuses a request this soon (`SPIKE_ARREST_TOO_MANY_REQUESTS`, 429).
    SpikeArrestExceeded,
}

impl AuthErrorKind {
    /// The stable machine code sent in the `error` field of the JSON body.
    pub const fn code(self) -> &'static str {
        match self {
            Self::MissingToken => "JWT_MISSING_TOKEN",
            Self::InvalidToken => "JWT_INVALID_TOKEN",
            Self::InsufficientScope => "JWT_INSUFFICIENT_SCOPE",
            Self::PlanUnresolvable => "GATEWAY_PLAN_UNRESOLVABLE",
            Self::JwksUnavailable => "JWKS_UNAVAILABLE",
            Self::ResolutionFailure => "GATEWAY_PLAN_RESOLUTION_FAILURE",
            Self::RevocationUnavailable => "JWT_REVOCATION_UNAVAILABLE",
            Self::RateLimitExceeded => "RATE_LIMIT_TOO_MANY_REQUESTS",
            Self::QuotaExceeded => "QUOTA_TOO_MANY_REQUESTS",
            Self::SpikeArrestExceeded => "SPIKE_ARREST_TOO_MANY_REQUESTS",
        }
    }

    /// When several plans each refuse a request, the refusal with the highest rank is reported:
    /// an outage outranks a verdict, since the request might have passed without it.
    pub(crate) const fn rank(self) -> u8 {
        match self {
            Self::MissingToken => 0,
            Self::InvalidToken => 1,
            Self::PlanUnresolvable => 2,
            Self::InsufficientScope => 3,
            Self::JwksUnavailable | Self::RevocationUnavailable => 4,
            Self::ResolutionFailure => 5,
            // Limits are judged after a plan is chosen, never while choosing one.
            Self::RateLimitExceeded | Self::QuotaExceeded | Self::SpikeArrestExceeded => 6,
        }
    }
}

/// Why a token was judged invalid. Safe to show to the client: it names the check that failed,
/// never the token, a claim value or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidReason {
    /// Not a well-formed compact JWS (segments, base64url, JSON, size).
    Malformed,
    /// More than one token was sent (several `Authorization` headers, or header and query/cookie).
    MultipleTokens,
    /// The token is larger than the configured cap.
    TooLarge,
    /// `alg` is missing, not a string, `none`, or not in the plan's allowlist.
    AlgorithmNotAllowed,
    /// A header the crate does not support (`crit`, `b64`, `zip`, nested `cty`) or a refused `typ`.
    UnsupportedHeader,
    /// `kid` is not a string or is too long.
    BadKeyId,
    /// No key of the plan matches the token's `kid` (after a refetch, when allowed).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond leeway).
    Expired,
    /// `nbf` is in the future (beyond leeway).
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    IssuedInFuture,
    /// The token lives longer than the plan's `max_lifetime`.
    LifetimeTooLong,
    /// A required claim is missing.
    MissingClaim,
    /// A registered claim has the wrong JSON type.
    WrongClaimType,
    /// `iss` is not an accepted issuer.
    IssuerNotAccepted,
    /// `aud` contains no accepted audience.
    AudienceNotAccepted,
    /// The token carries no client id claim.
    MissingClientId,
    /// No servable JWT plan accepts tokens of this issuer.
    NoMatchingPlan,
    /// The token's `jti` is on the plan's revocation list.
    Revoked,
    /// The token is bound to a certificate (`cnf.x5t#S256`) other than the client's (RFC 8705).
    CertificateMismatch,
    /// The token is bound to a certificate, and the connection presented none.
    NoClientCertificate,
    /// The plan requires certificate-bound tokens and this one has no `cnf.x5t#S256`.
    NotCertificateBound,
}

impl InvalidReason {
    /// Short client-safe text, used as RFC 6750 `error_description`.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token",
            Self::MultipleTokens => "more than one token in the request",
            Self::TooLarge => "token too large",
            Self::AlgorithmNotAllowed => "signature algorithm not allowed",
            Self::UnsupportedHeader => "unsupported token header",
            Self::BadKeyId => "invalid key id",
            Self::UnknownKey => "unknown signing key",
            Self::BadSignature => "invalid signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::IssuedInFuture => "token issued in the future",
            Self::LifetimeTooLong => "token lifetime too long",
            Self::MissingClaim => "required claim missing",
            Self::WrongClaimType => "claim has the wrong type",
            Self::IssuerNotAccepted => "issuer not accepted",
            Self::AudienceNotAccepted => "audience not accepted",
            Self::MissingClientId => "token has no client id",
            Self::NoMatchingPlan => "no plan accepts this token",
            Self::Revoked => "token revoked",
            Self::CertificateMismatch => "client certificate does not match the token",
            Self::NoClientCertificate => "token requires a client certificate",
            Self::NotCertificateBound => "token is not certificate-bound",
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A refused request: what the layer rendered, and why.
///
/// The layer puts a clone of it into the rejection response's extensions, so outer layers
/// (logging, metrics) can read the precise reason without parsing the body.
#[derive(Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    reason: Option<InvalidReason>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind) -> Self {
        Self { kind, reason: None, source: None }
    }

    pub(crate) fn invalid(reason: InvalidReason) -> Self {
        Self { kind: AuthErrorKind::InvalidToken, reason: Some(reason), source: None }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// The kind of refusal.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The stable machine code (`JWT_INVALID_TOKEN`, ...).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// For [`AuthErrorKind::InvalidToken`], which check failed.
    pub fn reason(&self) -> Option<InvalidReason> {
        self.reason
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Some(reason) => write!(f, "{}: {}", self.kind.code(), reason),
            None => f.write_str(self.kind.code()),
        }
    }
}

impl StdError for AuthError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_code_and_reason_and_keeps_source() {
        let io = std::io::Error::other("store down");
        let err = AuthError::new(AuthErrorKind::ResolutionFailure).with_source(io);
        assert_eq!(err.to_string(), "GATEWAY_PLAN_RESOLUTION_FAILURE");
        assert_eq!(err.source().unwrap().to_string(), "store down");
        let err = AuthError::invalid(InvalidReason::Expired);
        assert_eq!(err.to_string(), "JWT_INVALID_TOKEN: token expired");
        assert_eq!(err.reason(), Some(InvalidReason::Expired));
    }

    #[test]
    fn outages_outrank_verdicts() {
        use AuthErrorKind::*;
        assert!(ResolutionFailure.rank() > JwksUnavailable.rank());
        assert!(JwksUnavailable.rank() > InsufficientScope.rank());
        assert!(PlanUnresolvable.rank() > InvalidToken.rank());
    }
}
