//! [`JwtSettings`]: one JWT plan's key source, algorithm allowlist and claim rules, each with a
//! strict documented default, and the compile step that checks them once and builds the plan's
//! [`ClaimRules`].

use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::jws::normalize_typ;
use super::key_source::KeySource;
use super::rules::{ClaimRules, ScopeMode};
use crate::confirmation::Confirmation;
use crate::defaults::DEFAULT_LEEWAY;
use crate::error::ConfigError;
use crate::key::AlgSet;
use crate::revocation::RevocationList;

/// The settings of one JWT plan. Every field has a strict default, listed on its setter.
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::Algorithm;
/// use tower_jwt_plan::{JwtSettings, KeySource, ScopeMode};
///
/// let settings = JwtSettings::new(KeySource::hmac_secret([7u8; 32]))
///     .algorithms([Algorithm::HS256])
///     .issuer("https://idp.example")
///     .audience("api://echo")
///     .leeway(Duration::from_secs(30))
///     .required_scopes(["read"], ScopeMode::All)
///     .claim_to_header("sub", "x-user-id");
/// # let _ = settings;
/// ```
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub(crate) keys: KeySource,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    require_exp: bool,
    issuers: Vec<String>,
    /// `issuers` holds only the issuer the key source was discovered from.
    issuers_from_keys: bool,
    audiences: Vec<String>,
    max_lifetime: Option<Duration>,
    token_types: Option<Vec<String>>,
    pub(crate) client_id_claim: Option<String>,
    pub(crate) user_claim: String,
    required_scopes: Vec<String>,
    scope_mode: ScopeMode,
    pub(crate) extract_claims: bool,
    pub(crate) propagate_auth_header: bool,
    pub(crate) claims_to_headers: Vec<(String, String)>,
    pub(crate) revocation: Option<RevocationList>,
    pub(crate) confirmation: Confirmation,
}

impl JwtSettings {
    /// Settings with every default, verifying with these keys.
    pub fn new(keys: KeySource) -> Self {
        let discovered: Vec<String> = keys
            .jwks_cache()
            .and_then(|cache| cache.issuer())
            .map(str::to_owned)
            .into_iter()
            .collect();
        Self {
            issuers_from_keys: !discovered.is_empty(),
            issuers: discovered,
            keys,
            algorithms: vec![Algorithm::RS256],
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            audiences: Vec::new(),
            max_lifetime: None,
            token_types: None,
            client_id_claim: None,
            user_claim: "sub".into(),
            required_scopes: Vec::new(),
            scope_mode: ScopeMode::All,
            extract_claims: true,
            propagate_auth_header: true,
            claims_to_headers: Vec::new(),
            revocation: None,
            confirmation: Confirmation::Off,
        }
    }

    /// Accepted signature algorithms. Default: `[RS256]`. Each must fit the key type: HS* only
    /// with an HMAC secret, never with a JWKS or a public key.
    #[must_use]
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat`. Default: 60 s.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accept tokens without `exp`. Default: `exp` is required. Such tokens never expire, so
    /// this is a relaxation to use only with an IdP that cannot set `exp`.
    #[must_use]
    pub fn danger_allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Add an accepted issuer. Default: none, and `iss` is not checked; with keys from
    /// [`JwksCache::from_issuer`](crate::JwksCache::from_issuer), that issuer (replaced by the
    /// first issuer set here). Once any is set, `iss` is required and must equal one of them
    /// exactly; tokens of other issuers are not even verified against this plan's keys.
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        if std::mem::take(&mut self.issuers_from_keys) {
            self.issuers.clear();
        }
        self.issuers.push(iss.into());
        self
    }

    /// Add an accepted audience. Default: none, and `aud` is not checked (beyond its type).
    /// Once any is set, `aud` is required and (string or array) must contain one of them,
    /// compared exactly.
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Refuse tokens whose `exp` is further than this in the future. Default: no limit.
    #[must_use]
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// Accepted `typ` header values, compared case-insensitively (an `application/` prefix is
    /// ignored, RFC 7515 §4.1.9). Default: `typ` absent, `JWT` or `at+jwt`.
    #[must_use]
    pub fn token_types(mut self, types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.token_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Read the client id from this claim only. Default: `client_id` (RFC 9068), then `azp`.
    #[must_use]
    pub fn client_id_claim(mut self, claim: impl Into<String>) -> Self {
        self.client_id_claim = Some(claim.into());
        self
    }

    /// The claim naming the end user, exposed as [`PlanContext::user`](crate::PlanContext::user).
    /// Default: `sub`.
    #[must_use]
    pub fn user_claim(mut self, claim: impl Into<String>) -> Self {
        self.user_claim = claim.into();
        self
    }

    /// Require scopes, read from `scope` (space separated) or `scp` (array or space separated
    /// string). Default: none. A token missing them gets 403 `JWT_INSUFFICIENT_SCOPE`.
    #[must_use]
    pub fn required_scopes(
        mut self,
        scopes: impl IntoIterator<Item = impl Into<String>>,
        mode: ScopeMode,
    ) -> Self {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_mode = mode;
        self
    }

    /// Whether [`VerifiedClaims`](crate::VerifiedClaims) is put into request extensions.
    /// Default: `true`.
    #[must_use]
    pub fn extract_claims(mut self, on: bool) -> Self {
        self.extract_claims = on;
        self
    }

    /// Whether the `Authorization` header reaches the inner service. Default: `true`.
    #[must_use]
    pub fn propagate_auth_header(mut self, on: bool) -> Self {
        self.propagate_auth_header = on;
        self
    }

    /// Copy a claim into a request header for the inner service. Any header of that name sent
    /// by the client is removed first, whichever plan the request passes under. Default: none.
    /// The header name is checked at build.
    #[must_use]
    pub fn claim_to_header(mut self, claim: impl Into<String>, header: impl Into<String>) -> Self {
        self.claims_to_headers.push((claim.into(), header.into()));
        self
    }

    /// Refuse tokens whose `jti` is on this list (401 `JWT_INVALID_TOKEN`, reason
    /// [`Revoked`](crate::InvalidReason::Revoked)), also when the token is in the token cache.
    /// Default: none. With a list, a token without `jti` is refused, and until a first list is
    /// loaded every request on this plan gets 503 `JWT_REVOCATION_UNAVAILABLE` (fail closed;
    /// see [`RevocationList`]).
    #[must_use]
    pub fn revocation_list(mut self, list: RevocationList) -> Self {
        self.revocation = Some(list);
        self
    }

    /// Certificate-bound tokens (RFC 8705): whether `cnf.x5t#S256` is checked against the
    /// request's [`ClientCertificate`](crate::ClientCertificate). Default:
    /// [`Confirmation::Off`].
    #[must_use]
    pub fn confirmation(mut self, policy: Confirmation) -> Self {
        self.confirmation = policy;
        self
    }

    /// The issuers this plan accepts (empty: any), including the default one taken from a key
    /// source built from an issuer.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// Check the settings and build the per-plan rules, once.
    /// Whether a request under these settings is checked beyond the token and the clock (a
    /// revocation list, a certificate binding): such checks read the claims and the request.
    pub(crate) fn checks_beyond_the_token(&self) -> bool {
        self.revocation.is_some() || self.confirmation != Confirmation::Off
    }

    pub(crate) fn compile(&self, plan: &str) -> Result<ClaimRules, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms(plan.into()));
        }
        let algorithms = AlgSet::from_iter(self.algorithms.iter().copied());
        self.keys.check_algorithms(plan, algorithms)?;
        if self.leeway > Duration::from_secs(600) {
            return Err(ConfigError::InvalidSetting {
                name: "leeway",
                reason: "more than 10 minutes".into(),
            });
        }
        Ok(ClaimRules {
            algorithms,
            leeway: self.leeway.as_secs_f64(),
            require_exp: self.require_exp,
            issuers: self.issuers.clone(),
            audiences: self.audiences.clone(),
            max_lifetime: self.max_lifetime.map(|d| d.as_secs_f64()),
            token_types: self
                .token_types
                .as_ref()
                .map(|t| t.iter().map(|s| normalize_typ(s)).collect()),
            client_id_claim: self.client_id_claim.clone(),
            required_scopes: self.required_scopes.clone(),
            scope_mode: self.scope_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_must_fit_the_key() {
        let hmac = JwtSettings::new(KeySource::hmac_secret([1u8; 32]));
        assert!(matches!(hmac.clone().compile("p"), Err(ConfigError::AlgorithmKeyMismatch { .. })));
        assert!(matches!(
            hmac.algorithms([Algorithm::HS512]).compile("p"),
            Err(ConfigError::WeakHmacSecret { min: 64, .. })
        ));
        let none = JwtSettings::new(KeySource::hmac_secret([1u8; 32])).algorithms([]);
        assert!(matches!(none.compile("p"), Err(ConfigError::NoAlgorithms(_))));
    }
}
