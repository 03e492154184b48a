//! Every default and every hard limit of the crate, in one place.
//!
//! A `DEFAULT_*` constant is the value a setting takes when you do not set it; the setter named
//! under each one overrides it. A `MAX_*`/`MIN_*` constant is a fixed limit that no setting
//! relaxes: it bounds what an attacker (a token) or a misbehaving identity provider (a JWKS)
//! can make the layer do.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_plan::defaults;
//!
//! assert_eq!(defaults::DEFAULT_LEEWAY, Duration::from_secs(60));
//! assert_eq!(defaults::DEFAULT_MAX_TOKEN_BYTES, 8 * 1024);
//! assert_eq!(defaults::MIN_RSA_BITS, 2048);
//! ```

use std::time::Duration;

// Token extraction and claims.

/// Longest token accepted, in bytes; a longer one is refused (401) before it is parsed.
/// Applies to every [`TokenSource`](crate::TokenSource); set with
/// [`TokenSource::with_max_bytes`](crate::TokenSource::with_max_bytes).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Clock leeway granted to `exp`, `nbf` and `iat`. Set per plan with
/// [`JwtSettings::leeway`](crate::JwtSettings::leeway) (at most 10 minutes).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

// Subscription lookups.

/// Bound on one subscription lookup; past it the request gets 503
/// `GATEWAY_PLAN_RESOLUTION_FAILURE`. Set with
/// [`JwtPlanLayerBuilder::resolver_timeout`](crate::JwtPlanLayerBuilder::resolver_timeout).
pub const DEFAULT_RESOLVER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a [`CachingResolver`](crate::CachingResolver) keeps a found subscription.
pub const DEFAULT_RESOLVER_TTL: Duration = Duration::from_secs(30);

/// How long a [`CachingResolver`](crate::CachingResolver) keeps a "no subscription" answer.
pub const DEFAULT_RESOLVER_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// How many answers a [`CachingResolver`](crate::CachingResolver) keeps.
pub const DEFAULT_RESOLVER_CACHE_ENTRIES: u64 = 10_000;

// The verified-token cache.

/// How many verified tokens the layer's token cache holds
/// ([`TokenCacheConfig`](crate::TokenCacheConfig)).
pub const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 4096;

/// Bound on the bytes of token text the layer's token cache holds
/// ([`TokenCacheConfig`](crate::TokenCacheConfig)).
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = 8 * 1024 * 1024;

// JWKS fetching (each set on [`JwksCacheBuilder`](crate::JwksCacheBuilder)).

/// Interval between background refreshes of a [`JwksCache`](crate::JwksCache).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// Shortest time between two on-demand JWKS fetches (unknown `kid`, no keys yet), counted
/// from the start and from the end of the last fetch.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// TCP/TLS connect timeout of a JWKS fetch.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Total time for one JWKS fetch, body included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS body read, in bytes; a larger one fails the fetch.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

// Revocation lists (each set on [`RevocationListBuilder`](crate::RevocationListBuilder)).

/// Interval between refreshes of a [`RevocationList`](crate::RevocationList): how long a newly
/// revoked token may keep passing.
pub const DEFAULT_REVOCATION_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Largest revocation-list body read, in bytes; a larger one fails the fetch.
pub const DEFAULT_REVOCATION_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

// Fixed limits on keys (no setting changes them).

/// Longest `kid` accepted, in bytes: in a token header (longer: 401) and in a JWKS (longer:
/// the key is skipped).
pub const MAX_KID_BYTES: usize = 256;

/// Most usable keys kept from one JWKS (fetched or given to
/// [`KeySource::jwk_set`](crate::KeySource::jwk_set)); the rest are skipped with a warning.
pub const MAX_KEYS_PER_SET: usize = 100;

/// Most keys tried for a token whose header names no `kid`.
pub const MAX_CANDIDATE_KEYS: usize = 4;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3), from a JWKS or a PEM.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits: bounds the cost of one verification.
pub const MAX_RSA_BITS: usize = 8192;
