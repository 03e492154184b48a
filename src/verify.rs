//! Token verification: [`JwtSettings`] (one JWT plan's key source, algorithm allowlist and claim
//! rules, each with a strict documented default), [`KeySource`], and the checks themselves.
//!
//! The compact JWS is parsed strictly before any key is touched: exactly three non-empty
//! base64url segments with no padding and canonical trailing bits, JSON objects with no
//! duplicate member names, `alg` a string in the plan's allowlist (so `none` never gets near a
//! key), no `crit`, `b64`, `zip` or nested `cty`. The key is chosen by the plan and the `kid`;
//! `jku`, `jwk`, `x5u` and `x5c` are never used. The algorithm must be allowed by both the plan
//! and the key. Signatures are checked by `jsonwebtoken`'s crypto backend, chosen at compile
//! time (see the crate docs), and claims by rules built once per plan: `exp` required,
//! `nbf` and `iat` checked, 60 s leeway, registered claims of the wrong type rejected.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::CryptoProvider;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{AuthError, AuthErrorKind, ConfigError, InvalidReason};
use crate::jwks::{JwksCache, KeyWait};
use crate::key::{self, AlgSet, KeyKind, KeySet, MAX_KID_BYTES, VerifyingKey, alg_name};

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "tower-jwt-plan needs a crypto backend: enable the `aws-lc-rs` (default) or `rust-crypto` feature"
);

/// The backend that checks signatures. With both features on, aws-lc-rs is used. We never
/// rely on jsonwebtoken's process-wide default, which panics when both of its features are on.
fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        unreachable!("no crypto backend: see the compile_error above")
    }
}

/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Where a plan's verification keys come from.
///
/// ```
/// use tower_jwt_plan::KeySource;
///
/// let hmac = KeySource::hmac_secret(b"a shared secret of at least 32 bytes!");
/// assert!(format!("{hmac:?}").contains("redacted"));
/// assert!(KeySource::public_key_pem("not a key").is_err());
/// ```
#[derive(Clone)]
pub struct KeySource(Source);

#[derive(Clone)]
enum Source {
    Jwks(JwksCache),
    Static(Arc<KeySet>),
}

impl KeySource {
    /// Keys fetched from a JWKS URL and kept fresh by a [`JwksCache`] (which may be shared by
    /// several plans and layers).
    pub fn jwks(cache: JwksCache) -> Self {
        Self(Source::Jwks(cache))
    }

    /// One PEM public key: RSA (SPKI or PKCS#1), EC P-256/P-384, or Ed25519. It matches tokens
    /// with any `kid`.
    pub fn public_key_pem(pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self::single(key::key_from_pem(pem.as_ref())?))
    }

    /// One public JWK, as JSON text. `oct` (symmetric) keys are refused here; use
    /// [`hmac_secret`](Self::hmac_secret).
    pub fn public_key_jwk(json: &str) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let key = key::key_from_jwk(&value, true)
            .map_err(|skip| ConfigError::InvalidKey(skip.to_string()))?;
        Ok(Self::single(key))
    }

    /// A shared HMAC secret (the raw bytes, not base64). Its length must be at least the hash
    /// output of every HS algorithm the plan allows (32 bytes for HS256): checked at build.
    pub fn hmac_secret(secret: impl AsRef<[u8]>) -> Self {
        Self::single(key::key_from_secret(secret.as_ref()))
    }

    /// A fixed set of public keys from a JWKS document (JSON text), parsed exactly as a fetched
    /// JWKS is: key by key, skipping keys that cannot verify signatures (including `oct` keys).
    /// Fails if no usable key is left.
    ///
    /// ```
    /// use tower_jwt_plan::KeySource;
    /// assert!(KeySource::jwk_set(r#"{"keys": []}"#).is_err());
    /// ```
    pub fn jwk_set(json: &str) -> Result<Self, ConfigError> {
        let doc: Value =
            serde_json::from_str(json).map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let (set, skipped) =
            key::parse_jwks(&doc, true).map_err(|e| ConfigError::InvalidKey(e.into()))?;
        if set.is_empty() {
            return Err(ConfigError::InvalidKey(format!("no usable key ({skipped} skipped)")));
        }
        Ok(Self(Source::Static(Arc::new(set))))
    }

    /// How many usable keys a static source holds (a JWKS source: how many are cached now).
    pub fn key_count(&self) -> usize {
        match &self.0 {
            Source::Static(set) => set.len(),
            Source::Jwks(cache) => cache.snapshot().map_or(0, |set| set.len()),
        }
    }

    /// Verify a compact JWS against this source and return its payload, without reading the
    /// payload as claims: the strict structure and header rules, the algorithm allowlist, the
    /// key lookup by `kid` and the signature check, exactly as the layer does them. A JWKS
    /// source is read from its cache, never fetched from here.
    ///
    /// ```
    /// use tower_jwt_plan::{Algorithm, KeySource};
    /// let keys = KeySource::hmac_secret([7u8; 32]);
    /// assert!(keys.verify_jws("e30.e30.c2ln", &[Algorithm::HS256]).is_err());
    /// ```
    pub fn verify_jws(&self, token: &str, algorithms: &[Algorithm]) -> Result<Vec<u8>, AuthError> {
        let jws = parse_jws(token)?;
        // Decoded first, as the layer does, so a malformed payload is "malformed" here too.
        let payload = decode_segment(jws.payload)?;
        match self.check(&jws, AlgSet::from_iter(algorithms.iter().copied()), false) {
            SignatureCheck::Valid(_) => Ok(payload),
            SignatureCheck::Invalid(err) => Err(err),
            SignatureCheck::Wait(_) => Err(AuthError::new(AuthErrorKind::JwksUnavailable)),
        }
    }

    fn single(key: VerifyingKey) -> Self {
        Self(Source::Static(Arc::new(KeySet::new(vec![key]))))
    }

    /// The JWKS cache behind this source, if any.
    pub fn jwks_cache(&self) -> Option<&JwksCache> {
        match &self.0 {
            Source::Jwks(cache) => Some(cache),
            Source::Static(_) => None,
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Jwks(cache) => f.debug_tuple("Jwks").field(&cache.url()).finish(),
            Source::Static(set) => {
                let kinds: Vec<_> = set.keys().map(|k| k.kind.describe()).collect();
                f.debug_tuple("Static").field(&kinds).field(&"[redacted]").finish()
            }
        }
    }
}

/// Whether every required scope must be present, or one is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeMode {
    /// All required scopes must be granted (default).
    #[default]
    All,
    /// At least one required scope must be granted.
    Any,
}

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
}

impl JwtSettings {
    /// Settings with every default, verifying with these keys.
    pub fn new(keys: KeySource) -> Self {
        Self {
            keys,
            algorithms: vec![Algorithm::RS256],
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            issuers: Vec::new(),
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

    /// Add an accepted issuer. Default: none, and `iss` is not checked. Once any is set, `iss`
    /// is required and must equal one of them exactly; tokens of other issuers are not even
    /// verified against this plan's keys.
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
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

    /// The issuers this plan accepts (empty: any).
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// Check the settings and build the per-plan rules, once.
    pub(crate) fn compile(&self, plan: &str) -> Result<ClaimRules, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms(plan.into()));
        }
        let algorithms = AlgSet::from_iter(self.algorithms.iter().copied());
        let mismatch = |alg: Algorithm, key: &'static str| ConfigError::AlgorithmKeyMismatch {
            plan: plan.into(),
            alg: alg_name(alg).into(),
            key,
        };
        match &self.keys.0 {
            Source::Jwks(_) => {
                if let Some(alg) = algorithms.intersect(AlgSet::HMAC).iter().next() {
                    return Err(mismatch(
                        alg,
                        "a JWKS (symmetric keys are never taken from a remote set)",
                    ));
                }
            }
            Source::Static(set) => {
                for key in set.keys() {
                    let missing = algorithms.iter().find(|alg| !key.algorithms.contains(*alg));
                    if let Some(alg) = missing {
                        let hmac = alg.family() == jsonwebtoken::AlgorithmFamily::Hmac;
                        if key.kind == KeyKind::Hmac && hmac {
                            // The secret's length, never its bytes, goes into the message.
                            let len = key.key.try_get_as_bytes().map_or(0, <[u8]>::len);
                            let (alg, min) = (alg_name(alg).into(), key::hmac_min_len(alg));
                            return Err(ConfigError::WeakHmacSecret { len, alg, min });
                        }
                        return Err(mismatch(alg, key.kind.describe()));
                    }
                }
            }
        }
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

fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// The claim checks of one plan, built once at layer build. The equivalent of jsonwebtoken's
/// `Validation`, with exp required and iss/aud required as soon as they are configured.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) algorithms: AlgSet,
    leeway: f64,
    require_exp: bool,
    issuers: Vec<String>,
    audiences: Vec<String>,
    max_lifetime: Option<f64>,
    token_types: Option<Vec<String>>,
    client_id_claim: Option<String>,
    required_scopes: Vec<String>,
    scope_mode: ScopeMode,
}

/// A compact JWS, parsed but not verified. Borrows the token.
pub(crate) struct Jws<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    typ: Option<String>,
    pub(crate) iss: Option<String>,
    signing_input: &'a str,
    payload: &'a str,
    signature: Vec<u8>,
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, AuthError> {
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
        self.iss = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        Ok(Arc::new(claims))
    }

    /// The raw `alg` as a key-independent string, for logs.
    pub(crate) fn alg_name(&self) -> &'static str {
        alg_name(self.alg)
    }
}

/// Result of looking for a key and checking the signature with one plan's keys.
pub(crate) enum SignatureCheck {
    /// Verified with a key of this snapshot of the source's keys.
    Valid(Arc<KeySet>),
    Invalid(AuthError),
    /// The keys must be (re)fetched first; call again with `may_wait = false` once it resolves.
    Wait(KeyWait),
}

impl KeySource {
    /// Whether `set` is still this source's current key set (so a token it verified still
    /// verifies). Lock-free; no reference count is taken.
    pub(crate) fn is_current(&self, set: &Arc<KeySet>) -> bool {
        match &self.0 {
            Source::Static(own) => Arc::ptr_eq(own, set),
            Source::Jwks(cache) => cache.is_current(set),
        }
    }

    /// Check the token's signature against this source, for a plan allowing `algorithms`.
    pub(crate) fn check(
        &self,
        jws: &Jws<'_>,
        algorithms: AlgSet,
        may_wait: bool,
    ) -> SignatureCheck {
        if !algorithms.contains(jws.alg) {
            return SignatureCheck::Invalid(AuthError::invalid(InvalidReason::AlgorithmNotAllowed));
        }
        match &self.0 {
            Source::Static(set) => verify_with(set, jws),
            Source::Jwks(cache) => {
                let Some(set) = cache.snapshot() else {
                    return match (may_wait, cache.request_refresh()) {
                        (true, Some(wait)) => SignatureCheck::Wait(wait),
                        _ => {
                            SignatureCheck::Invalid(AuthError::new(AuthErrorKind::JwksUnavailable))
                        }
                    };
                };
                if let Some(kid) = jws.kid.as_deref()
                    && !set.knows_kid(kid)
                    && may_wait
                    && let Some(wait) = cache.request_refresh()
                {
                    return SignatureCheck::Wait(wait);
                }
                verify_with(&set, jws)
            }
        }
    }
}

fn verify_with(set: &Arc<KeySet>, jws: &Jws<'_>) -> SignatureCheck {
    let mut tried = false;
    for key in set.candidates(jws.kid.as_deref(), jws.alg) {
        tried = true;
        if verify_signature(key, jws.alg, jws.signing_input.as_bytes(), &jws.signature) {
            return SignatureCheck::Valid(set.clone());
        }
    }
    let reason = if tried { InvalidReason::BadSignature } else { InvalidReason::UnknownKey };
    SignatureCheck::Invalid(AuthError::invalid(reason))
}

/// One signature check with one key. `false` for a key that cannot do `alg`.
pub(crate) fn verify_signature(
    key: &VerifyingKey,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    if !key.algorithms.contains(alg) {
        return false;
    }
    match (provider().verifier_factory)(&alg, &key.key) {
        Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
        Err(_) => false,
    }
}

impl ClaimRules {
    /// Check header `typ` and the claims against this plan's rules at `now`.
    pub(crate) fn check(
        &self,
        jws: &Jws<'_>,
        claims: &Map<String, Value>,
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
        self.check_times(claims, now)?;
        if !self.issuers.is_empty() {
            match claims.get("iss").and_then(Value::as_str) {
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
    /// for a token already verified, so the only ones repeated on a token-cache hit.
    pub(crate) fn check_times(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let invalid = AuthError::invalid;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let number = |name: &str| claims.get(name).and_then(Value::as_f64);
        match number("exp") {
            Some(exp) if now >= exp + self.leeway => return Err(invalid(InvalidReason::Expired)),
            Some(exp) if self.max_lifetime.is_some_and(|max| exp - now > max + self.leeway) => {
                return Err(invalid(InvalidReason::LifetimeTooLong));
            }
            Some(_) => {}
            None if self.require_exp => return Err(invalid(InvalidReason::MissingClaim)),
            None => {}
        }
        if number("nbf").is_some_and(|nbf| now + self.leeway < nbf) {
            return Err(invalid(InvalidReason::NotYetValid));
        }
        if let Some(iat) = number("iat") {
            if iat < 0.0 {
                return Err(invalid(InvalidReason::WrongClaimType));
            }
            if iat > now + self.leeway {
                return Err(invalid(InvalidReason::IssuedInFuture));
            }
        }
        Ok(())
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
