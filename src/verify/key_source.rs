//! [`KeySource`]: where a plan's verification keys come from, and the signature check itself.
//! The key is chosen by the plan and the `kid`; `jku`, `jwk`, `x5u` and `x5c` are never used.
//! The algorithm must be allowed by both the plan and the key. Signatures are checked by
//! `jsonwebtoken`'s crypto backend, chosen at compile time (see the crate docs).

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::CryptoProvider;
use serde_json::Value;

use super::jws::{Jws, decode_segment, parse_jws};
use crate::error::{AuthError, AuthErrorKind, ConfigError, InvalidReason};
use crate::jwks::{JwksCache, KeyWait};
use crate::key::{self, AlgSet, KeyKind, KeySet, VerifyingKey, alg_name};

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

    /// Whether `set` is still this source's current key set (so a token it verified still
    /// verifies). Lock-free; no reference count is taken.
    pub(crate) fn is_current(&self, set: &Arc<KeySet>) -> bool {
        match &self.0 {
            Source::Static(own) => Arc::ptr_eq(own, set),
            Source::Jwks(cache) => cache.is_current(set),
        }
    }

    /// Whether `other` reads the same keys: a clone of this source (the same [`JwksCache`], or
    /// the same static key set). Plans whose sources are the same share one signature check.
    pub(crate) fn same_source(&self, other: &KeySource) -> bool {
        match (&self.0, &other.0) {
            (Source::Jwks(a), Source::Jwks(b)) => a.same_cache(b),
            (Source::Static(a), Source::Static(b)) => Arc::ptr_eq(a, b),
            _ => false,
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

    /// Check at build that every algorithm `plan` allows fits every key of this source: HMAC
    /// never with a JWKS, and an HMAC secret long enough for each HS algorithm.
    pub(crate) fn check_algorithms(
        &self,
        plan: &str,
        algorithms: AlgSet,
    ) -> Result<(), ConfigError> {
        let mismatch = |alg: Algorithm, key: &'static str| ConfigError::AlgorithmKeyMismatch {
            plan: plan.into(),
            alg: alg_name(alg).into(),
            key,
        };
        match &self.0 {
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
        Ok(())
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

/// Result of looking for a key and checking the signature with one plan's keys.
pub(crate) enum SignatureCheck<K = Arc<KeySet>> {
    /// Verified with a key of this snapshot of the source's keys (from [`Verdicts`]: where the
    /// snapshot is kept, [`KeysAt`]).
    Valid(K),
    Invalid(AuthError),
    /// The keys must be (re)fetched first; call again with `may_wait = false` once it resolves.
    Wait(KeyWait),
}

/// The signature verdicts reached so far in one request, one per key source, so that plans
/// sharing a source share one signature check. The verdict of a source does not depend on the
/// plan (the key is chosen by `kid` and `alg` only); the plan's algorithm allowlist does, so it is
/// checked before any verdict is reused. A wait is never remembered.
#[derive(Default)]
pub(crate) struct Verdicts(Vec<(KeySource, Result<Arc<KeySet>, AuthError>)>);

/// Where [`Verdicts`] keeps the keys that verified the token: read with [`Verdicts::keys`], so
/// that a plan reusing a verdict costs no reference count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeysAt(usize);

impl Verdicts {
    /// [`KeySource::check`], answered from this request's earlier verdict for the same source
    /// when there is one.
    pub(crate) fn check(
        &mut self,
        source: &KeySource,
        jws: &Jws<'_>,
        algorithms: AlgSet,
        may_wait: bool,
    ) -> SignatureCheck<KeysAt> {
        if !algorithms.contains(jws.alg) {
            return SignatureCheck::Invalid(AuthError::invalid(InvalidReason::AlgorithmNotAllowed));
        }
        if let Some(at) = self.0.iter().position(|(known, _)| known.same_source(source)) {
            return match &self.0[at].1 {
                Ok(_) => SignatureCheck::Valid(KeysAt(at)),
                Err(err) => SignatureCheck::Invalid(err.clone()),
            };
        }
        match source.check(jws, algorithms, may_wait) {
            SignatureCheck::Valid(keys) => SignatureCheck::Valid(self.remember(source, keys)),
            SignatureCheck::Invalid(err) => {
                self.0.push((source.clone(), Err(err.clone())));
                SignatureCheck::Invalid(err)
            }
            SignatureCheck::Wait(wait) => SignatureCheck::Wait(wait),
        }
    }

    /// The keys of a verdict that [`check`](Self::check) or [`remember`](Self::remember) gave
    /// as valid (`None` for any other place).
    pub(crate) fn keys(&self, at: KeysAt) -> Option<&Arc<KeySet>> {
        self.0.get(at.0)?.1.as_ref().ok()
    }

    /// Whether `source` has a verdict in this request.
    pub(crate) fn knows(&self, source: &KeySource) -> bool {
        self.0.iter().any(|(known, _)| known.same_source(source))
    }

    /// Record that `keys`, a set `source` holds now, verified the token (here, or for a
    /// token-cache entry).
    pub(crate) fn remember(&mut self, source: &KeySource, keys: Arc<KeySet>) -> KeysAt {
        self.0.push((source.clone(), Ok(keys)));
        KeysAt(self.0.len() - 1)
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn hs256(secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"a"}"#)
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    #[test]
    fn plans_sharing_a_source_share_one_verdict() {
        let source = KeySource::hmac_secret([7u8; 32]);
        let twin = KeySource::hmac_secret([7u8; 32]);
        let (good, forged) = (hs256(&[7u8; 32]), hs256(&[8u8; 32]));
        let (good, forged) = (parse_jws(&good).unwrap(), parse_jws(&forged).unwrap());
        let hs256 = AlgSet::from_iter([Algorithm::HS256]);
        let mut verdicts = Verdicts::default();
        assert!(matches!(verdicts.check(&source, &good, hs256, false), SignatureCheck::Valid(_)));
        // A clone of the source is answered from the verdict: a second check would refuse the
        // forged signature, so passing it proves no second check ran.
        let again = verdicts.check(&source.clone(), &forged, hs256, false);
        assert!(matches!(again, SignatureCheck::Valid(_)));
        // A distinct source with the same secret is checked on its own.
        assert!(matches!(verdicts.check(&twin, &forged, hs256, false), SignatureCheck::Invalid(_)));
        // Each plan's algorithm allowlist still applies before any verdict is reused.
        let hs384 = AlgSet::from_iter([Algorithm::HS384]);
        match verdicts.check(&source, &good, hs384, false) {
            SignatureCheck::Invalid(err) => {
                assert_eq!(err.reason(), Some(InvalidReason::AlgorithmNotAllowed));
            }
            _ => panic!("HS256 is not in this plan's allowlist"),
        }
    }
}
