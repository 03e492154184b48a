//! The verified-token cache: lets a repeat token skip signature verification.
//!
//! Only tokens that passed every check *and* were granted enter, keyed by the exact token
//! string (which the strict parser makes canonical: one token, one spelling). An entry is used
//! only while
//!
//! - the plan set it was verified under is still deployed (a redeploy empties it in effect),
//! - the key set that verified it is still the plan's current one (a key removed from the JWKS
//!   invalidates its tokens at once; an unchanged refresh keeps entries valid),
//! - `exp`, `nbf` and `iat` still pass at the time of the request.
//!
//! The subscription is still resolved on every request, so closing one takes effect at once.
//! The cache is bounded both in entries and in bytes of tokens held, and reads take no lock.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::defaults::{DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TOKEN_CACHE_ENTRIES};
use crate::key::KeySet;

/// Size of the verified-token cache. Default: on, [`DEFAULT_TOKEN_CACHE_ENTRIES`] tokens and
/// at most [`DEFAULT_TOKEN_CACHE_BYTES`] of token text, whichever bound is reached first.
///
/// The cache lets a repeat token skip signature verification. Only tokens that passed every
/// check and were granted enter, keyed by the exact token. A cached result is used only while
/// the plan set is the one it was verified under (a redeploy invalidates it), the key set that
/// verified it is still the plan's current one (a key removed from the JWKS invalidates its
/// tokens at once), and `exp`, `nbf` and `iat` still pass. The subscription is resolved on
/// every request regardless, so closing a subscription takes effect at once.
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
    pub(crate) claims: Arc<Map<String, Value>>,
    pub(crate) client_id: Box<str>,
    pub(crate) user: Option<Box<str>>,
}

pub(crate) struct TokenCache {
    entries: moka::sync::Cache<Arc<str>, Arc<Verified>>,
}

impl TokenCache {
    pub(crate) fn new(config: TokenCacheConfig) -> Option<Self> {
        if !config.is_enabled() {
            return None;
        }
        // One weight bounds both: each entry weighs at least max_bytes / max_entries, so the
        // total weight (<= max_bytes) caps the count at max_entries and the bytes at max_bytes.
        let floor = (config.max_bytes / config.max_entries).max(1);
        let weigh = move |token: &Arc<str>, _: &Arc<Verified>| -> u32 {
            (token.len() as u64).max(floor).min(u64::from(u32::MAX)) as u32
        };
        let entries =
            moka::sync::Cache::builder().max_capacity(config.max_bytes).weigher(weigh).build();
        Some(Self { entries })
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Verified>> {
        self.entries.get(token)
    }

    pub(crate) fn insert(&self, token: &str, verified: Verified) {
        self.entries.insert(token.into(), Arc::new(verified));
    }

    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("TokenCache").field("entries", &self.entries.entry_count()).finish()
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
            claims: Arc::default(),
            client_id: "c".into(),
            user: None,
        }
    }

    #[test]
    fn bounded_by_entries_and_by_bytes() {
        let cache = TokenCache::new(TokenCacheConfig::default().max_entries(10).max_bytes(1 << 20))
            .unwrap();
        for i in 0..100 {
            cache.insert(&format!("token-{i}"), verified());
        }
        assert!(cache.len() <= 10, "{} entries", cache.len());

        let cache =
            TokenCache::new(TokenCacheConfig::default().max_entries(1000).max_bytes(10_000))
                .unwrap();
        for i in 0..100 {
            cache.insert(&format!("{i:01000}"), verified());
        }
        assert!(cache.len() <= 10, "{} entries of 1000 bytes", cache.len());
        assert!(TokenCache::new(TokenCacheConfig::disabled()).is_none());
    }
}
