//! [`CachingResolver`]: a cache in front of any [`SubscriptionResolver`].
//!
//! Answers are kept for a short time-to-live (default 30 s), "no subscription" answers for a
//! shorter one (default 5 s) so a new subscription is seen quickly, and store errors not at all.
//! The cache is bounded in entries. A burst of requests for one (api, plan, client) that misses
//! does one store lookup: the others wait for its answer (single flight).
//!
//! The TTL is the price: a subscription closed in the store keeps serving for up to the TTL.
//! Choose it with that in mind; [`InMemoryResolver`](crate::InMemoryResolver) needs no cache.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::defaults::{
    DEFAULT_RESOLVER_CACHE_ENTRIES, DEFAULT_RESOLVER_NEGATIVE_TTL, DEFAULT_RESOLVER_TTL,
};
use crate::subscription::{
    BoxResolveFuture, ResolveError, Subscription, SubscriptionQuery, SubscriptionResolver,
};

type Answer = Option<Subscription>;

/// Caches another resolver's answers.
///
/// Found subscriptions are reused for `ttl` (default 30 s), "no subscription" answers for the
/// shorter `negative_ttl` (default 5 s) so a new subscription is seen quickly, and store errors
/// are never cached. At most `max_entries` answers are held. A burst of requests for one
/// (api, plan, client) that misses makes one store lookup; the others wait for its answer.
///
/// The TTL is the price: a subscription closed in the store keeps serving for up to `ttl`.
/// [`InMemoryResolver`](crate::InMemoryResolver) needs no cache.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_plan::{CachingResolver, InMemoryResolver};
///
/// let cached = CachingResolver::builder(InMemoryResolver::default())
///     .ttl(Duration::from_secs(10))
///     .negative_ttl(Duration::from_secs(2))
///     .max_entries(1000)
///     .build();
/// # let _ = cached;
/// ```
pub struct CachingResolver<R> {
    inner: Arc<R>,
    answers: moka::future::Cache<SubscriptionQuery, Answer>,
}

impl<R> Clone for CachingResolver<R> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), answers: self.answers.clone() }
    }
}

/// Builder for [`CachingResolver`].
#[must_use]
pub struct CachingResolverBuilder<R> {
    inner: R,
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: u64,
}

impl<R: SubscriptionResolver> CachingResolver<R> {
    /// Start configuring a cache in front of `inner`.
    pub fn builder(inner: R) -> CachingResolverBuilder<R> {
        CachingResolverBuilder {
            inner,
            ttl: DEFAULT_RESOLVER_TTL,
            negative_ttl: DEFAULT_RESOLVER_NEGATIVE_TTL,
            max_entries: DEFAULT_RESOLVER_CACHE_ENTRIES,
        }
    }

    /// Drop every cached answer (for example after a bulk change in the store).
    pub fn invalidate_all(&self) {
        self.answers.invalidate_all();
    }
}

impl<R: SubscriptionResolver> CachingResolverBuilder<R> {
    /// How long a found subscription is reused. Default: 30 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a "no subscription" answer is reused. Default: 5 s.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Most answers held. Default: 10 000.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Build the cache.
    pub fn build(self) -> CachingResolver<R> {
        let answers = moka::future::Cache::builder()
            .max_capacity(self.max_entries)
            .expire_after(Ttl { found: self.ttl, missing: self.negative_ttl })
            .build();
        CachingResolver { inner: Arc::new(self.inner), answers }
    }
}

struct Ttl {
    found: Duration,
    missing: Duration,
}

impl moka::Expiry<SubscriptionQuery, Answer> for Ttl {
    fn expire_after_create(
        &self,
        _: &SubscriptionQuery,
        answer: &Answer,
        _: Instant,
    ) -> Option<Duration> {
        Some(if answer.is_some() { self.found } else { self.missing })
    }
}

/// A store error shared by every request that waited on the same lookup.
#[derive(Debug)]
struct Shared(Arc<ResolveError>);

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl<R: SubscriptionResolver> SubscriptionResolver for CachingResolver<R> {
    type Future = BoxResolveFuture;

    fn resolve(&self, query: SubscriptionQuery) -> BoxResolveFuture {
        let this = self.clone();
        Box::pin(async move {
            let inner = this.inner.clone();
            let lookup = inner.resolve(query.clone());
            this.answers.try_get_with(query, lookup).await.map_err(|e| ResolveError::new(Shared(e)))
        })
    }
}

impl<R> fmt::Debug for CachingResolver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver").field("entries", &self.answers.entry_count()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::SubscriptionStatus;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn query(client: &str) -> SubscriptionQuery {
        SubscriptionQuery { api: "api".into(), plan: "gold".into(), client_id: client.into() }
    }

    fn counting(
        calls: Arc<AtomicUsize>,
        fail: bool,
    ) -> impl SubscriptionResolver<Future = BoxResolveFuture> {
        move |q: SubscriptionQuery| -> BoxResolveFuture {
            let calls = calls.clone();
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if fail {
                    return Err(ResolveError::new("store down"));
                }
                Ok((&*q.client_id == "known").then(|| {
                    Subscription::new(
                        "s",
                        "api",
                        "gold",
                        "app",
                        "known",
                        SubscriptionStatus::Accepted,
                    )
                }))
            })
        }
    }

    #[tokio::test]
    async fn single_flight_ttl_and_negative_ttl() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = CachingResolver::builder(counting(calls.clone(), false))
            .ttl(Duration::from_millis(300))
            .negative_ttl(Duration::from_millis(50))
            .build();
        let burst: Vec<_> = (0..20).map(|_| tokio::spawn(cache.resolve(query("known")))).collect();
        for handle in burst {
            assert!(handle.await.unwrap().unwrap().is_some());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one store lookup for a burst");

        assert!(cache.resolve(query("stranger")).await.unwrap().is_none());
        assert!(cache.resolve(query("stranger")).await.unwrap().is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "negative answer cached");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(cache.resolve(query("stranger")).await.unwrap().is_none());
        assert!(cache.resolve(query("known")).await.unwrap().is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 3, "negative expired, positive still cached");
        cache.invalidate_all();
        assert!(cache.resolve(query("known")).await.unwrap().is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 4, "invalidate_all forgets the positive answer");
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_keep_their_cause() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = CachingResolver::builder(counting(calls.clone(), true)).build();
        let err = cache.resolve(query("known")).await.unwrap_err();
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "subscription store failed"
        );
        assert!(cache.resolve(query("known")).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
