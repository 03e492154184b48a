//! The verified-token cache: lets a repeat token skip signature verification.
//!
//! Tokens that passed every check of a plan enter, keyed by the exact token string (which the
//! strict parser makes canonical: one token, one spelling): granted ones in one map, and, in a
//! separate map a quarter of the size, ones the store refused (a valid token whose client holds
//! no usable subscription), so that repeating such a token costs no signature check and can
//! never evict a granted one. An entry is used only while
//!
//! - the plan set it was verified under is still deployed (a redeploy empties it in effect),
//! - the key set that verified it is still the plan's current one (a key removed from the JWKS
//!   invalidates its tokens at once; an unchanged refresh keeps entries valid),
//! - `exp`, `nbf` and `iat` still pass at the time of the request.
//!
//! The subscription is still resolved on every request, so closing one, or opening one for a
//! refused token, takes effect at once.
//!
//! An entry holds the token, its time claims and the ids a hit needs, not its claims: a hit's
//! `VerifiedClaims` decodes them from the token when a request reads them. About 1,000 bytes per
//! 600-byte token rather than 4,000 with a parsed copy (`benches/token_cache_memory.rs`).
//! The cache is bounded both in entries and in bytes of tokens held (approximately: it is
//! sharded, and each shard keeps its share of the bounds); a read takes one shard's read lock.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::defaults::{DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TOKEN_CACHE_ENTRIES};
use crate::key::KeySet;
use crate::verify::TimeClaims;

/// Size of the verified-token cache. Default: on, [`DEFAULT_TOKEN_CACHE_ENTRIES`] tokens and
/// at most [`DEFAULT_TOKEN_CACHE_BYTES`] of token text, whichever bound is reached first.
///
/// The cache lets a repeat token skip signature verification. Tokens that passed every check
/// of a plan enter, keyed by the exact token; those the subscription store refused are held
/// apart, within a quarter of these bounds, so they never evict granted ones. A cached result is used only while
/// the plan set is the one it was verified under (a redeploy invalidates it), the key set that
/// verified it is still the plan's current one (a key removed from the JWKS invalidates its
/// tokens at once), and `exp`, `nbf` and `iat` still pass. The subscription is resolved on
/// every request regardless, so closing a subscription, or opening one, takes effect at once.
///
/// An entry holds the token and what a hit needs, not the parsed claims: about 1,000 bytes of
/// memory for a 600-byte token, so a full default cache takes about 4 MiB.
///
/// ```
/// use tower_jwt_plan::TokenCacheConfig;
/// let small = TokenCacheConfig::default().max_entries(1000).max_bytes(1 << 20);
/// let off = TokenCacheConfig::disabled();
/// assert!(!off.is_enabled());
/// # let _ = small;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheConfig {
    max_entries: u64,
    max_bytes: u64,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self { max_entries: DEFAULT_TOKEN_CACHE_ENTRIES, max_bytes: DEFAULT_TOKEN_CACHE_BYTES }
    }
}

impl TokenCacheConfig {
    /// No cache: every request verifies its token's signature.
    pub fn disabled() -> Self {
        Self { max_entries: 0, max_bytes: 0 }
    }

    /// Most tokens held.
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Most bytes of token text held.
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Whether the cache is on.
    pub fn is_enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }
}

/// What a successful verification established, minus the subscription.
pub(crate) struct Verified {
    pub(crate) plans_id: u64,
    pub(crate) plan: usize,
    pub(crate) keys: Arc<KeySet>,
    /// The token, also the entry's key: a hit decodes its claims from it when they are read,
    /// so the entry holds no parsed copy of them.
    pub(crate) token: Arc<str>,
    /// Read from the claims once, for the checks and the context of a hit.
    pub(crate) times: TimeClaims,
    pub(crate) client_id: Arc<str>,
    pub(crate) user: Option<Arc<str>>,
}

/// quick_cache rather than moka: a hit is one shard's read lock, a hash and one comparison of
/// the whole token (moka's SipHash of the whole token alone took about 2,500 instructions for
/// 600 bytes; `benches/instructions.sh`).
type Entries = quick_cache::sync::Cache<Key, Arc<Verified>, TokenWeight>;

/// How many trailing bytes of a token are hashed.
const HASHED_TAIL: usize = 16;

/// A cached token. Hashes only its length and last [`HASHED_TAIL`] bytes (the signature's, in
/// a JWS): equality still compares every byte, so the hash only places the entry. Colliding on
/// purpose would take many tokens with valid signatures, as only those enter.
#[derive(Clone, PartialEq, Eq)]
struct Key(Arc<str>);

/// A token looked up as the request's bytes, before they are known to be text.
struct Lookup<'a>(&'a [u8]);

fn hash_token<H: Hasher>(token: &[u8], state: &mut H) {
    // The tail as one number: one step of the hasher, not a pass over a slice (a third of
    // the instructions of a hit's lookup went to hashing 32 bytes).
    let tail = match token.last_chunk::<HASHED_TAIL>() {
        Some(tail) => u128::from_le_bytes(*tail),
        None => token.iter().fold(0, |tail, &b| tail << 8 | u128::from(b)),
    };
    state.write_u128(tail);
    state.write_usize(token.len());
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_token(self.0.as_bytes(), state);
    }
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_token(self.0, state);
    }
}

impl quick_cache::Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0.as_bytes()
    }
}

/// An entry weighs its token's length, and at least `floor`.
#[derive(Clone)]
struct TokenWeight {
    floor: u64,
}

impl quick_cache::Weighter<Key, Arc<Verified>> for TokenWeight {
    fn weight(&self, token: &Key, _: &Arc<Verified>) -> u64 {
        (token.0.len() as u64).max(self.floor)
    }
}

/// Whether a cache entry's token was granted, or verified but refused by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Granted,
    Refused,
}

pub(crate) struct TokenCache {
    /// Tokens that were granted: what [`TokenCache::len`] counts.
    granted: Entries,
    /// Tokens that verified but whose client held no usable subscription, apart so that they
    /// never evict granted ones. A quarter of the configured bounds.
    refused: Entries,
}

fn bounded(max_entries: u64, max_bytes: u64) -> Entries {
    // One weight bounds both: each entry weighs at least max_bytes / max_entries, so the
    // total weight (<= max_bytes) caps the count at max_entries and the bytes at max_bytes.
    let floor = (max_bytes / max_entries.max(1)).max(1);
    let estimated = usize::try_from(max_entries).unwrap_or(usize::MAX);
    quick_cache::sync::Cache::with_weighter(estimated, max_bytes, TokenWeight { floor })
}

impl TokenCache {
    pub(crate) fn new(config: TokenCacheConfig) -> Option<Self> {
        if !config.is_enabled() {
            return None;
        }
        let granted = bounded(config.max_entries, config.max_bytes);
        let refused = bounded(config.max_entries.div_ceil(4), config.max_bytes.div_ceil(4));
        Some(Self { granted, refused })
    }

    pub(crate) fn get(&self, token: &[u8]) -> Option<(Arc<Verified>, Verdict)> {
        if let Some(hit) = self.granted.get(&Lookup(token)) {
            return Some((hit, Verdict::Granted));
        }
        self.refused.get(&Lookup(token)).map(|hit| (hit, Verdict::Refused))
    }

    pub(crate) fn insert(&self, verified: Arc<Verified>, verdict: Verdict) {
        let token = Key(verified.token.clone());
        match verdict {
            Verdict::Granted => {
                self.refused.remove(&Lookup(token.0.as_bytes()));
                self.granted.insert(token, verified);
            }
            Verdict::Refused => self.refused.insert(token, verified),
        }
    }

    /// How many granted tokens are held.
    pub(crate) fn len(&self) -> u64 {
        self.granted.len() as u64
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("TokenCache")
            .field("granted", &self.granted.len())
            .field("refused", &self.refused.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Verified {
        Verified {
            plans_id: 1,
            plan: 0,
            keys: Arc::new(KeySet::default()),
            token: "t".into(),
            times: TimeClaims::default(),
            client_id: "c".into(),
            user: None,
        }
    }

    #[test]
    fn bounded_by_entries_and_by_bytes() {
        let cache = TokenCache::new(TokenCacheConfig::default().max_entries(10).max_bytes(1 << 20))
            .unwrap();
        for i in 0..100 {
            let token = format!("token-{i}").into();
            cache.insert(Arc::new(Verified { token, ..verified() }), Verdict::Granted);
        }
        assert!(cache.len() <= 10, "{} entries", cache.len());

        let cache =
            TokenCache::new(TokenCacheConfig::default().max_entries(1000).max_bytes(10_000))
                .unwrap();
        for i in 0..100 {
            let token = format!("{i:01000}").into();
            cache.insert(Arc::new(Verified { token, ..verified() }), Verdict::Granted);
        }
        assert!(cache.len() <= 10, "{} entries of 1000 bytes", cache.len());
        assert!(TokenCache::new(TokenCacheConfig::disabled()).is_none());
    }

    #[test]
    fn tokens_sharing_their_hashed_tail_stay_apart() {
        let cache = TokenCache::new(TokenCacheConfig::default()).unwrap();
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (format!("aaaa.{tail}"), format!("bbbb.{tail}"));
        cache.insert(
            Arc::new(Verified { token: a.as_str().into(), plan: 1, ..verified() }),
            Verdict::Granted,
        );
        cache.insert(
            Arc::new(Verified { token: b.as_str().into(), plan: 2, ..verified() }),
            Verdict::Refused,
        );
        let found = |t: &str| cache.get(t.as_bytes()).map(|(hit, verdict)| (hit.plan, verdict));
        assert_eq!(found(&a), Some((1, Verdict::Granted)));
        assert_eq!(found(&b), Some((2, Verdict::Refused)));
        assert_eq!(found(&format!("cccc.{tail}")), None);
        assert_eq!(found(&tail), None);
    }

    #[test]
    fn tokens_shorter_than_the_hashed_tail_are_found() {
        let cache = TokenCache::new(TokenCacheConfig::default()).unwrap();
        for (plan, token) in ["a.b.c", "a.b.d", "b.a.c", ""].into_iter().enumerate() {
            cache.insert(
                Arc::new(Verified { token: token.into(), plan, ..verified() }),
                Verdict::Granted,
            );
        }
        let found = |t: &str| cache.get(t.as_bytes()).map(|(hit, _)| hit.plan);
        assert_eq!(found("a.b.c"), Some(0));
        assert_eq!(found("a.b.d"), Some(1));
        assert_eq!(found("b.a.c"), Some(2));
        assert_eq!(found(""), Some(3));
        assert_eq!(found("a.b.e"), None);
    }
}
