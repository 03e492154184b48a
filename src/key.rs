//! Verification keys: one key and the algorithms it may verify, a set of keys looked up by
//! `kid`, and the loaders that turn a JWK, a PEM public key or an HMAC secret into one.
//!
//! The key type decides the algorithm family, never the token: an RSA key verifies only
//! RS*/PS*, an EC key only the ES* of its curve, an Ed25519 key only EdDSA, and an HMAC secret
//! only HS*. A JWK's `alg`, when present, narrows that to one algorithm, and a mismatch between
//! `alg`, `kty` and `crv` makes the key unusable. Keys from a remote set are parsed one at a
//! time: a key we cannot use is skipped with a log line (never its material), not the whole set.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::defaults::{
    MAX_CANDIDATE_KEYS, MAX_KEYS_PER_SET, MAX_KID_BYTES, MAX_RSA_BITS, MIN_RSA_BITS,
};
use crate::error::ConfigError;

/// A set of algorithms, as a bit mask over [`Algorithm`].
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgSet(u16);

pub(crate) const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl AlgSet {
    pub(crate) const RSA: AlgSet = AlgSet(0b0000_0001_1111_1000);
    pub(crate) const HMAC: AlgSet = AlgSet(0b0000_0000_0000_0111);

    fn bit(alg: Algorithm) -> u16 {
        let index = ALL_ALGORITHMS.iter().position(|a| *a == alg).unwrap_or(15);
        1 << index
    }

    pub(crate) fn of(alg: Algorithm) -> Self {
        AlgSet(Self::bit(alg))
    }

    pub(crate) fn from_iter(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        algs.into_iter().fold(AlgSet(0), |set, alg| set.with(alg))
    }

    pub(crate) fn with(self, alg: Algorithm) -> Self {
        AlgSet(self.0 | Self::bit(alg))
    }

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & Self::bit(alg) != 0
    }

    pub(crate) fn intersect(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 & other.0)
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        ALL_ALGORITHMS.into_iter().filter(move |a| self.contains(*a))
    }
}

impl fmt::Debug for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The JWS name of an algorithm (`RS256`, `EdDSA`, ...).
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// One key able to verify signatures, with the algorithms it may be used for.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<Box<str>>,
    pub(crate) algorithms: AlgSet,
    pub(crate) key: DecodingKey,
    pub(crate) kind: KeyKind,
}

/// What kind of key this is, for messages and for the HMAC/asymmetric split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyKind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa => "an RSA key",
            KeyKind::EcP256 => "a P-256 key",
            KeyKind::EcP384 => "a P-384 key",
            KeyKind::Ed25519 => "an Ed25519 key",
            KeyKind::Hmac => "an HMAC secret",
        }
    }

    fn algorithms(self) -> AlgSet {
        match self {
            KeyKind::Rsa => AlgSet::RSA,
            KeyKind::EcP256 => AlgSet::of(Algorithm::ES256),
            KeyKind::EcP384 => AlgSet::of(Algorithm::ES384),
            KeyKind::Ed25519 => AlgSet::of(Algorithm::EdDSA),
            KeyKind::Hmac => AlgSet::HMAC,
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, even public: logs get copied to places secrets should not go.
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The keys of one source, as one immutable snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<VerifyingKey>) -> Self {
        Self { keys }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter()
    }

    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    /// Keys that may verify a token with this `kid` and `alg`. A key without a `kid` matches any
    /// `kid` (a static key, or an IdP that does not name its keys); at most
    /// [`MAX_CANDIDATE_KEYS`] keys are returned so a token cannot make us verify against a
    /// whole set.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| match (kid, k.kid.as_deref()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .filter(move |k| k.algorithms.contains(alg))
            .take(MAX_CANDIDATE_KEYS)
    }

    /// Whether any key answers to this `kid` (for deciding on an unknown-`kid` refetch).
    pub(crate) fn knows_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref().is_none_or(|have| have == kid))
    }
}

/// Why a JWK was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Skip {
    NotAnObject,
    PrivateMaterial,
    SymmetricFromRemote,
    NotForSignatures,
    UnsupportedType,
    AlgorithmMismatch,
    BadParameters(&'static str),
    WeakRsa(usize),
    HugeRsa(usize),
    Roca,
    BadPoint,
    BadKid,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotAnObject => f.write_str("not a JSON object"),
            Skip::PrivateMaterial => f.write_str("contains private key members"),
            Skip::SymmetricFromRemote => f.write_str("symmetric (oct) key in a remote set"),
            Skip::NotForSignatures => f.write_str("not for signature verification (use/key_ops)"),
            Skip::UnsupportedType => f.write_str("unsupported kty or crv"),
            Skip::AlgorithmMismatch => f.write_str("alg does not fit kty/crv"),
            Skip::BadParameters(what) => write!(f, "bad key parameters: {what}"),
            Skip::WeakRsa(bits) => write!(f, "RSA modulus of {bits} bits is below {MIN_RSA_BITS}"),
            Skip::HugeRsa(bits) => write!(f, "RSA modulus of {bits} bits is above {MAX_RSA_BITS}"),
            Skip::Roca => f.write_str("RSA modulus has the ROCA fingerprint (CVE-2017-15361)"),
            Skip::BadPoint => f.write_str("public point is not a valid point of prime order"),
            Skip::BadKid => f.write_str("kid is not a string or too long"),
        }
    }
}

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

fn b64(map: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, Skip> {
    let text = map.get(name).and_then(Value::as_str).ok_or(Skip::BadParameters(name))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| Skip::BadParameters(name))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Size bounds, a sane exponent, an odd modulus, and no ROCA fingerprint. `n` and `e` are
/// big-endian without leading zero octets.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), Skip> {
    // An empty modulus (`"n": ""`) would underflow the bit count below (found by fuzzing).
    let Some(first) = n.first() else {
        return Err(Skip::BadParameters("n"));
    };
    let bits = n.len() * 8 - first.leading_zeros() as usize;
    if bits < MIN_RSA_BITS {
        return Err(Skip::WeakRsa(bits));
    }
    if bits > MAX_RSA_BITS {
        return Err(Skip::HugeRsa(bits));
    }
    // e must be odd and at least 3; more than 32 bits is never legitimate.
    if e.is_empty() || e.len() > 4 || e[e.len() - 1] & 1 == 0 || e == [1] {
        return Err(Skip::BadParameters("e"));
    }
    if n[n.len() - 1] & 1 == 0 {
        return Err(Skip::BadParameters("n"));
    }
    if has_roca_fingerprint(n) {
        return Err(Skip::Roca);
    }
    Ok(())
}

/// The ROCA test (Nemec et al., CCS 2017): moduli from the flawed Infineon generator are,
/// modulo every small prime p up to 167, in the subgroup generated by 65537. A random modulus
/// fails that for some prime with overwhelming probability.
fn has_roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % p);
        let generator = 65537 % p;
        let mut power = 1;
        loop {
            if power == residue {
                return true;
            }
            power = power * generator % p;
            if power == 1 {
                return false;
            }
        }
    })
}

/// An uncompressed SEC1 point must lie on its curve (invalid-curve attacks, RFC 8725 §2.5).
fn check_ec_point(kind: KeyKind, point: &[u8]) -> Result<(), Skip> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ParsedPublicKey};
    let alg =
        if kind == KeyKind::EcP256 { &ECDSA_P256_SHA256_FIXED } else { &ECDSA_P384_SHA384_FIXED };
    ParsedPublicKey::new(alg, point).map(|_| ()).map_err(|_| Skip::BadPoint)
}

/// An Ed25519 public key must decode to a point of prime order: a small-order key (or one with
/// a torsion component) lets signatures verify that its owner never made.
fn check_ed25519(x: &[u8]) -> Result<(), Skip> {
    let bytes: [u8; 32] = x.try_into().map_err(|_| Skip::BadParameters("x"))?;
    let point =
        curve25519_dalek::edwards::CompressedEdwardsY(bytes).decompress().ok_or(Skip::BadPoint)?;
    if point.is_small_order() || !point.is_torsion_free() {
        return Err(Skip::BadPoint);
    }
    Ok(())
}

/// Parse one JWK (already a JSON value) into a verification key. `remote` refuses `oct` keys.
pub(crate) fn key_from_jwk(value: &Value, remote: bool) -> Result<VerifyingKey, Skip> {
    let map = value.as_object().ok_or(Skip::NotAnObject)?;
    if PRIVATE_MEMBERS.iter().any(|m| map.contains_key(*m)) {
        return Err(Skip::PrivateMaterial);
    }
    let kid = match map.get("kid") {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_KID_BYTES => Some(s.as_str().into()),
        Some(_) => return Err(Skip::BadKid),
    };
    match map.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err(Skip::NotForSignatures),
    }
    match map.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op == "verify") => {}
        Some(_) => return Err(Skip::NotForSignatures),
    }
    let kty = map.get("kty").and_then(Value::as_str).ok_or(Skip::UnsupportedType)?;
    let kind = match (kty, map.get("crv").and_then(Value::as_str)) {
        ("RSA", _) => {
            let n = b64(map, "n")?;
            let e = b64(map, "e")?;
            // Base64urlUInt uses the minimum number of octets (RFC 7518 §2): a leading zero
            // would also make the key fail every verification without saying why.
            if n.first() == Some(&0) {
                return Err(Skip::BadParameters("n"));
            }
            if e.first() == Some(&0) {
                return Err(Skip::BadParameters("e"));
            }
            check_rsa(&n, &e)?;
            KeyKind::Rsa
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let size = if crv == "P-256" { 32 } else { 48 };
            let (x, y) = (b64(map, "x")?, b64(map, "y")?);
            if x.len() != size {
                return Err(Skip::BadParameters("x"));
            }
            if y.len() != size {
                return Err(Skip::BadParameters("y"));
            }
            let kind = if crv == "P-256" { KeyKind::EcP256 } else { KeyKind::EcP384 };
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            check_ec_point(kind, &point)?;
            kind
        }
        ("OKP", Some("Ed25519")) => {
            check_ed25519(&b64(map, "x")?)?;
            KeyKind::Ed25519
        }
        ("oct", _) if remote => return Err(Skip::SymmetricFromRemote),
        _ => return Err(Skip::UnsupportedType),
    };
    let mut algorithms = kind.algorithms();
    match map.get("alg") {
        None => {}
        Some(Value::String(name)) => {
            let alg = Algorithm::from_str(name).map_err(|_| Skip::AlgorithmMismatch)?;
            if !algorithms.contains(alg) {
                return Err(Skip::AlgorithmMismatch);
            }
            algorithms = AlgSet::of(alg);
        }
        Some(_) => return Err(Skip::AlgorithmMismatch),
    }
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|_| Skip::BadParameters("jwk"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Skip::BadParameters("jwk"))?;
    Ok(VerifyingKey { kid, algorithms, key, kind })
}

/// Parse a JWKS document key by key. Returns the usable keys and how many were skipped.
///
/// Keys sharing a `kid` are all dropped: a `kid` must name one key, or a token could be
/// checked against a key its issuer never meant.
pub(crate) fn parse_jwks(doc: &Value, remote: bool) -> Result<(KeySet, usize), &'static str> {
    let keys = doc
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or("document has no `keys` array")?;
    let mut usable: Vec<VerifyingKey> = Vec::new();
    let mut skipped = 0;
    for (index, value) in keys.iter().enumerate() {
        match key_from_jwk(value, remote) {
            Ok(key) if usable.len() < MAX_KEYS_PER_SET => usable.push(key),
            Ok(_) => {
                skipped += 1;
                tracing::warn!(target: "tower_jwt_plan::jwks", index, "JWKS key skipped: more than {MAX_KEYS_PER_SET} keys");
            }
            Err(reason) => {
                skipped += 1;
                tracing::warn!(target: "tower_jwt_plan::jwks", index, %reason, "JWKS key skipped");
            }
        }
    }
    let mut kept = Vec::with_capacity(usable.len());
    for key in &usable {
        let duplicate =
            key.kid.is_some() && usable.iter().filter(|other| other.kid == key.kid).count() > 1;
        if duplicate {
            skipped += 1;
            tracing::warn!(target: "tower_jwt_plan::jwks", kid = ?key.kid, "JWKS key skipped: kid is not unique");
        } else {
            kept.push(key.clone());
        }
    }
    Ok((KeySet::new(kept), skipped))
}

/// Load a PEM public key (RSA, EC P-256/P-384 or Ed25519, SPKI or PKCS#1).
pub(crate) fn key_from_pem(pem: &[u8]) -> Result<VerifyingKey, ConfigError> {
    let refused = |skip: Skip| ConfigError::InvalidKey(skip.to_string());
    let (key, kind) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        let der = key.try_get_as_bytes().map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let public = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|_| ConfigError::InvalidKey("unreadable RSA public key".into()))?;
        let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&public);
        check_rsa(strip_leading_zeros(&c.n), strip_leading_zeros(&c.e)).map_err(refused)?;
        (key, KeyKind::Rsa)
    } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        let point = key.try_get_as_bytes().map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        let kind = match point.len() {
            65 => KeyKind::EcP256,
            97 => KeyKind::EcP384,
            _ => return Err(ConfigError::InvalidKey("unsupported EC curve".into())),
        };
        check_ec_point(kind, point).map_err(refused)?;
        (key, kind)
    } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        let x = key.try_get_as_bytes().map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        check_ed25519(x).map_err(refused)?;
        (key, KeyKind::Ed25519)
    } else {
        return Err(ConfigError::InvalidKey(
            "not a PEM RSA, EC (P-256/P-384) or Ed25519 public key".into(),
        ));
    };
    Ok(VerifyingKey { kid: None, algorithms: kind.algorithms(), key, kind })
}

/// An HMAC secret, usable for the HS* algorithms its length allows (RFC 7518 §3.2).
pub(crate) fn key_from_secret(secret: &[u8]) -> VerifyingKey {
    let algorithms = AlgSet::from_iter(
        [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            .into_iter()
            .filter(|alg| secret.len() >= hmac_min_len(*alg)),
    );
    VerifyingKey {
        kid: None,
        algorithms,
        key: DecodingKey::from_secret(secret),
        kind: KeyKind::Hmac,
    }
}

pub(crate) fn hmac_min_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_n(bits: usize) -> String {
        let mut n = vec![0xff_u8; bits / 8];
        n[0] = 0xc5;
        URL_SAFE_NO_PAD.encode(n)
    }

    #[test]
    fn rsa_size_bounds() {
        let ok = json!({"kty": "RSA", "n": rsa_n(2048), "e": "AQAB"});
        assert_eq!(key_from_jwk(&ok, true).unwrap().algorithms, AlgSet::RSA);
        let weak = json!({"kty": "RSA", "n": rsa_n(1024), "e": "AQAB"});
        assert_eq!(key_from_jwk(&weak, true).unwrap_err(), Skip::WeakRsa(1024));
        let huge = json!({"kty": "RSA", "n": rsa_n(16384), "e": "AQAB"});
        assert_eq!(key_from_jwk(&huge, true).unwrap_err(), Skip::HugeRsa(16384));
        let e_one = json!({"kty": "RSA", "n": rsa_n(2048), "e": "AQ"});
        assert!(matches!(key_from_jwk(&e_one, true), Err(Skip::BadParameters("e"))));
        // Regression (cargo-fuzz `jwks`): an empty modulus panicked on an underflow.
        let empty_n = json!({"kty": "RSA", "n": "", "e": "AQAB"});
        assert_eq!(key_from_jwk(&empty_n, true).unwrap_err(), Skip::BadParameters("n"));
    }

    #[test]
    fn refused_members_and_uses() {
        let base = json!({"kty": "RSA", "n": rsa_n(2048), "e": "AQAB"});
        let with = |k: &str, v: Value| {
            let mut o = base.clone();
            o[k] = v;
            key_from_jwk(&o, true).unwrap_err()
        };
        assert_eq!(with("d", json!("AQAB")), Skip::PrivateMaterial);
        assert_eq!(with("use", json!("enc")), Skip::NotForSignatures);
        assert_eq!(with("key_ops", json!(["encrypt"])), Skip::NotForSignatures);
        assert_eq!(with("alg", json!("ES256")), Skip::AlgorithmMismatch);
        assert_eq!(with("alg", json!("RSA-OAEP")), Skip::AlgorithmMismatch);
        assert_eq!(with("kid", json!(7)), Skip::BadKid);
        let oct = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode([7u8; 32])});
        assert_eq!(key_from_jwk(&oct, true).unwrap_err(), Skip::SymmetricFromRemote);
    }

    #[test]
    fn alg_narrows_and_duplicate_kids_are_dropped() {
        let doc = json!({"keys": [
            {"kty": "RSA", "n": rsa_n(2048), "e": "AQAB", "kid": "a", "alg": "PS256"},
            {"kty": "RSA", "n": rsa_n(2048), "e": "AQAB", "kid": "b"},
            {"kty": "RSA", "n": rsa_n(2048), "e": "AQAB", "kid": "b"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        ]});
        let (set, skipped) = parse_jwks(&doc, true).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped, 3);
        assert_eq!(set.candidates(Some("a"), Algorithm::PS256).count(), 1);
        assert_eq!(set.candidates(Some("a"), Algorithm::RS256).count(), 0);
        assert!(!set.knows_kid("b"));
    }

    #[test]
    fn hmac_secret_length_limits_algorithms() {
        let short = key_from_secret(&[1; 40]);
        assert!(short.algorithms.contains(Algorithm::HS256));
        assert!(!short.algorithms.contains(Algorithm::HS384));
        assert_eq!(key_from_secret(&[1; 16]).algorithms, AlgSet::default());
    }
}
