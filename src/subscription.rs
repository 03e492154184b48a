//! Subscriptions: the [`SubscriptionResolver`] trait that users implement against their own
//! store, the [`Subscription`] it returns, and [`InMemoryResolver`].
//!
//! The layer asks the resolver only about tokens whose signature and claims already verified,
//! so a forged token never reaches the store. It then decides itself whether the answer is
//! usable: the subscription must be for the queried plan and client, `accepted`, and the
//! request time strictly inside `(starting_at, ending_at)`. A resolver error is answered with
//! 503 `GATEWAY_PLAN_RESOLUTION_FAILURE`, never with a pass.

use std::collections::HashSet;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::error::BoxError;

/// The lifecycle of a subscription. Only [`Accepted`](Self::Accepted) lets traffic through.
/// Serialised in lower case (`"accepted"`), as in the gateway's files and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SubscriptionStatus {
    /// Requested, waiting for approval.
    Pending,
    /// Approved: serves traffic within its dates.
    Accepted,
    /// Suspended by the publisher.
    Paused,
    /// Refused by the publisher.
    Rejected,
    /// Ended.
    Closed,
}

impl SubscriptionStatus {
    /// The lower-case name used in config files (`accepted`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Paused => "paused",
            Self::Rejected => "rejected",
            Self::Closed => "closed",
        }
    }

    /// Pending, accepted or paused: the statuses that hold an application's one subscription
    /// per API and that closing a plan or archiving an application ends.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Accepted | Self::Paused)
    }

    /// The status named by [`as_str`](Self::as_str), as stored by the catalog.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Paused, Self::Rejected, Self::Closed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// An application's subscription to one plan of one API.
///
/// ```
/// use tower_jwt_plan::{Subscription, SubscriptionStatus};
///
/// let sub = Subscription::new("sub-1", "api", "gold", "app-1", "my-client", SubscriptionStatus::Accepted);
/// assert!(sub.starting_at.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscription {
    /// The subscription's id.
    pub id: Arc<str>,
    /// The API it belongs to.
    pub api: Arc<str>,
    /// The plan it is for.
    pub plan: Arc<str>,
    /// The application holding it.
    pub application: Arc<str>,
    /// The application's OAuth client id, as found in tokens.
    pub client_id: Arc<str>,
    /// Its status.
    pub status: SubscriptionStatus,
    /// It serves only strictly after this instant, when set.
    pub starting_at: Option<SystemTime>,
    /// It serves only strictly before this instant, when set.
    pub ending_at: Option<SystemTime>,
}

impl Subscription {
    /// A subscription with no dates.
    pub fn new(
        id: impl Into<Arc<str>>,
        api: impl Into<Arc<str>>,
        plan: impl Into<Arc<str>>,
        application: impl Into<Arc<str>>,
        client_id: impl Into<Arc<str>>,
        status: SubscriptionStatus,
    ) -> Self {
        Self {
            id: id.into(),
            api: api.into(),
            plan: plan.into(),
            application: application.into(),
            client_id: client_id.into(),
            status,
            starting_at: None,
            ending_at: None,
        }
    }

    /// Set the start date.
    #[must_use]
    pub fn starting_at(mut self, at: SystemTime) -> Self {
        self.starting_at = Some(at);
        self
    }

    /// Set the end date.
    #[must_use]
    pub fn ending_at(mut self, at: SystemTime) -> Self {
        self.ending_at = Some(at);
        self
    }

    /// Whether this subscription lets `query` through at `now`. Both dates are exclusive,
    /// as in Gravitee.
    pub fn serves(&self, query: &SubscriptionQuery, now: SystemTime) -> bool {
        self.serves_client(&query.api, &query.plan, &query.client_id, now)
    }

    /// [`serves`](Self::serves) for a query given by its parts.
    pub(crate) fn serves_client(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
        now: SystemTime,
    ) -> bool {
        self.status == SubscriptionStatus::Accepted
            && *self.api == *api
            && *self.plan == *plan
            && *self.client_id == *client_id
            && self.starting_at.is_none_or(|start| start < now)
            && self.ending_at.is_none_or(|end| now < end)
    }
}

/// What the layer asks the store: the subscription of `client_id` to `plan` of `api`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionQuery {
    /// The API id.
    pub api: Arc<str>,
    /// The plan id.
    pub plan: Arc<str>,
    /// The client id from the verified token.
    pub client_id: Arc<str>,
}

/// The store could not answer. The layer answers 503 `GATEWAY_PLAN_RESOLUTION_FAILURE` and keeps
/// this error as the rejection's `source()`.
#[derive(Debug, thiserror::Error)]
#[error("subscription store failed")]
pub struct ResolveError(#[source] BoxError);

impl ResolveError {
    /// Wrap the store's own error.
    pub fn new(cause: impl Into<BoxError>) -> Self {
        Self(cause.into())
    }
}

/// Looks up subscriptions in the user's store.
///
/// Implement it for your store, or pass a closure `Fn(SubscriptionQuery) -> Future`. The future
/// is an associated type, so an implementation that answers from memory never boxes. It works
/// behind `Arc`, and [`BoxResolver`] erases the type for `dyn` use.
///
/// Return `Ok(None)` when there is no subscription; the layer checks status and dates itself,
/// so returning a paused or expired subscription is fine.
///
/// ```
/// use std::future::{ready, Ready};
/// use tower_jwt_plan::{ResolveError, Subscription, SubscriptionQuery, SubscriptionResolver, SubscriptionStatus};
///
/// struct EveryoneGold;
///
/// impl SubscriptionResolver for EveryoneGold {
///     type Future = Ready<Result<Option<Subscription>, ResolveError>>;
///
///     fn resolve(&self, q: SubscriptionQuery) -> Self::Future {
///         let sub = (&*q.plan == "gold").then(|| {
///             Subscription::new("s", &*q.api, &*q.plan, "app", q.client_id.clone(), SubscriptionStatus::Accepted)
///         });
///         ready(Ok(sub))
///     }
/// }
///
/// // A closure works too:
/// let by_closure = |q: SubscriptionQuery| async move { Ok::<_, ResolveError>(None) };
/// # fn is_resolver<R: SubscriptionResolver>(_: &R) {}
/// # is_resolver(&EveryoneGold);
/// # is_resolver(&by_closure);
/// ```
pub trait SubscriptionResolver: Send + Sync + 'static {
    /// The lookup in flight.
    type Future: Future<Output = Result<Option<Subscription>, ResolveError>> + Send + 'static;

    /// Look up one subscription.
    fn resolve(&self, query: SubscriptionQuery) -> Self::Future;

    /// Answer at once, for a store that holds its subscriptions in memory: the subscription
    /// of `client_id` to `plan` of `api`, without a [`SubscriptionQuery`] or a future, and
    /// shared rather than copied.
    ///
    /// The layer asks this first and calls [`resolve`](Self::resolve) only on `None`, which
    /// the default returns. `Some(None)` means "no subscription". As with `resolve`, the layer
    /// checks the status and dates of what it gets, and asks only about verified tokens. A
    /// store that can fail, or has to wait, leaves the default: this method cannot report an
    /// error, and it runs inside the service's `call`.
    ///
    /// ```
    /// use tower_jwt_plan::{InMemoryResolver, Subscription, SubscriptionResolver, SubscriptionStatus};
    ///
    /// let store = InMemoryResolver::new([Subscription::new(
    ///     "sub-1", "echo", "gold", "app-1", "my-client", SubscriptionStatus::Accepted,
    /// )]);
    /// let found = store.resolve_now("echo", "gold", "my-client").unwrap().unwrap();
    /// assert_eq!(&*found.id, "sub-1");
    /// assert!(store.resolve_now("echo", "gold", "someone-else").unwrap().is_none());
    ///
    /// // A closure resolver has no such answer: the layer calls it.
    /// let by_closure = |_q: tower_jwt_plan::SubscriptionQuery| async { Ok(None) };
    /// assert!(by_closure.resolve_now("echo", "gold", "my-client").is_none());
    /// ```
    fn resolve_now(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
    ) -> Option<Option<Arc<Subscription>>> {
        let _ = (api, plan, client_id);
        None
    }
}

impl<F, Fut> SubscriptionResolver for F
where
    F: Fn(SubscriptionQuery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Subscription>, ResolveError>> + Send + 'static,
{
    type Future = Fut;

    fn resolve(&self, query: SubscriptionQuery) -> Fut {
        self(query)
    }
}

impl<R: SubscriptionResolver + ?Sized> SubscriptionResolver for Arc<R> {
    type Future = R::Future;

    fn resolve(&self, query: SubscriptionQuery) -> R::Future {
        (**self).resolve(query)
    }

    fn resolve_now(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
    ) -> Option<Option<Arc<Subscription>>> {
        (**self).resolve_now(api, plan, client_id)
    }
}

/// A boxed resolver future.
pub type BoxResolveFuture =
    Pin<Box<dyn Future<Output = Result<Option<Subscription>, ResolveError>> + Send + 'static>>;

/// A type-erased resolver, for choosing the store at run time.
///
/// ```
/// use tower_jwt_plan::{BoxResolver, InMemoryResolver};
/// let resolver = BoxResolver::new(InMemoryResolver::default());
/// let shared = resolver.clone();
/// ```
#[derive(Clone)]
pub struct BoxResolver(Arc<dyn SubscriptionResolver<Future = BoxResolveFuture>>);

struct Boxing<R>(R);

impl<R: SubscriptionResolver> SubscriptionResolver for Boxing<R> {
    type Future = BoxResolveFuture;

    fn resolve(&self, query: SubscriptionQuery) -> BoxResolveFuture {
        Box::pin(self.0.resolve(query))
    }

    fn resolve_now(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
    ) -> Option<Option<Arc<Subscription>>> {
        self.0.resolve_now(api, plan, client_id)
    }
}

impl BoxResolver {
    /// Erase a resolver's type.
    pub fn new<R: SubscriptionResolver>(resolver: R) -> Self {
        Self(Arc::new(Boxing(resolver)))
    }
}

impl SubscriptionResolver for BoxResolver {
    type Future = BoxResolveFuture;

    fn resolve(&self, query: SubscriptionQuery) -> BoxResolveFuture {
        self.0.resolve(query)
    }

    fn resolve_now(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
    ) -> Option<Option<Arc<Subscription>>> {
        self.0.resolve_now(api, plan, client_id)
    }
}

impl fmt::Debug for BoxResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxResolver").finish_non_exhaustive()
    }
}

/// foldhash (randomly seeded per map) rather than SipHash: the keys come from the operator's
/// subscriptions, and a lookup hashes three strings on every request. hashbrown rather than
/// std, for a lookup by borrowed ids ([`KeyRef`]). Subscriptions sit behind an `Arc`, so
/// [`InMemoryResolver::resolve_now`] shares one instead of copying five ids.
type Index = hashbrown::HashMap<Key, Arc<Subscription>, foldhash::fast::RandomState>;

/// An index key: (api, plan, client id).
#[derive(Clone)]
struct Key(SubscriptionQuery);

/// A key looked up by the request's borrowed ids, without building a [`SubscriptionQuery`].
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str, &'a str);

impl Key {
    fn ids(&self) -> KeyRef<'_> {
        KeyRef(&self.0.api, &self.0.plan, &self.0.client_id)
    }
}

// A key hashes and compares as its borrowed form, which the lookup requires.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ids().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        hashbrown::Equivalent::equivalent(&self.ids(), other)
    }
}

impl Eq for Key {}

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        let KeyRef(api, plan, client_id) = key.ids();
        self.0 == api && self.1 == plan && self.2 == client_id
    }
}

fn key_of(s: &Subscription) -> Key {
    Key(SubscriptionQuery {
        api: s.api.clone(),
        plan: s.plan.clone(),
        client_id: s.client_id.clone(),
    })
}

/// Subscriptions held in memory, replaceable atomically while serving.
///
/// Clones share the same store. Lookups read a snapshot without taking a lock.
///
/// ```
/// use tower_jwt_plan::{InMemoryResolver, Subscription, SubscriptionStatus};
///
/// let store = InMemoryResolver::default();
/// store.insert(Subscription::new("sub-1", "echo", "gold", "app-1", "my-client", SubscriptionStatus::Accepted));
/// assert_eq!(store.len(), 1);
/// store.replace_all(Vec::new());
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Clone, Default)]
pub struct InMemoryResolver {
    index: Arc<ArcSwap<Index>>,
}

impl InMemoryResolver {
    /// A store holding these subscriptions. A later entry for the same (api, plan, client)
    /// replaces an earlier one.
    pub fn new(subscriptions: impl IntoIterator<Item = Subscription>) -> Self {
        let store = Self::default();
        store.replace_all(subscriptions);
        store
    }

    /// Swap the whole content at once: readers see either the old set or the new one.
    pub fn replace_all(&self, subscriptions: impl IntoIterator<Item = Subscription>) {
        // API and plan ids repeat across subscriptions: the keys share one copy of each.
        let mut names: HashSet<Arc<str>> = HashSet::new();
        let mut intern = |name: &str| -> Arc<str> {
            if let Some(known) = names.get(name) {
                return known.clone();
            }
            let name: Arc<str> = name.into();
            names.insert(name.clone());
            name
        };
        let index: Index = subscriptions
            .into_iter()
            .map(|s| {
                let key = Key(SubscriptionQuery {
                    api: intern(&s.api),
                    plan: intern(&s.plan),
                    client_id: s.client_id.clone(),
                });
                (key, Arc::new(s))
            })
            .collect();
        self.index.store(Arc::new(index));
    }

    /// Add or replace one subscription (copy-on-write: meant for setup and tests, not hot paths).
    pub fn insert(&self, subscription: Subscription) {
        self.index.rcu(|index| {
            let mut index = Index::clone(index);
            index.insert(key_of(&subscription), Arc::new(subscription.clone()));
            index
        });
    }

    /// How many subscriptions are held.
    pub fn len(&self) -> usize {
        self.index.load().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(&self, api: &str, plan: &str, client_id: &str) -> Option<Arc<Subscription>> {
        self.index.load().get(&KeyRef(api, plan, client_id)).cloned()
    }
}

impl fmt::Debug for InMemoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryResolver").field("len", &self.len()).finish()
    }
}

impl SubscriptionResolver for InMemoryResolver {
    type Future = Ready<Result<Option<Subscription>, ResolveError>>;

    fn resolve(&self, query: SubscriptionQuery) -> Self::Future {
        let index = self.index.load();
        let key = KeyRef(&query.api, &query.plan, &query.client_id);
        ready(Ok(index.get(&key).map(|found| Subscription::clone(found))))
    }

    /// Always answers: the layer never builds a query or a future for this store.
    fn resolve_now(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
    ) -> Option<Option<Arc<Subscription>>> {
        Some(self.find(api, plan, client_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn query() -> SubscriptionQuery {
        SubscriptionQuery { api: "api".into(), plan: "gold".into(), client_id: "c".into() }
    }

    #[test]
    fn serves_only_accepted_within_exclusive_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let sub = Subscription::new("s", "api", "gold", "app", "c", SubscriptionStatus::Accepted);
        assert!(sub.serves(&query(), now));
        assert!(!sub.clone().starting_at(now).serves(&query(), now));
        assert!(!sub.clone().ending_at(now).serves(&query(), now));
        assert!(sub.clone().starting_at(now - Duration::from_secs(1)).serves(&query(), now));
        for status in [
            SubscriptionStatus::Pending,
            SubscriptionStatus::Paused,
            SubscriptionStatus::Rejected,
            SubscriptionStatus::Closed,
        ] {
            let mut s = sub.clone();
            s.status = status;
            assert!(!s.serves(&query(), now), "{status:?}");
        }
        let mut other_plan = sub.clone();
        other_plan.plan = "silver".into();
        assert!(!other_plan.serves(&query(), now));
    }

    #[tokio::test]
    async fn in_memory_lookup_and_replace() {
        let store = InMemoryResolver::new([Subscription::new(
            "s",
            "api",
            "gold",
            "app",
            "c",
            SubscriptionStatus::Accepted,
        )]);
        assert_eq!(store.resolve(query()).await.unwrap().unwrap().id.as_ref(), "s");
        let boxed = BoxResolver::new(store.clone());
        store.replace_all([]);
        assert!(boxed.resolve(query()).await.unwrap().is_none());
    }

    #[test]
    fn in_memory_answers_at_once_by_borrowed_ids_through_every_wrapper() {
        fn check(store: &impl SubscriptionResolver, gold: &Subscription) {
            assert_eq!(store.resolve_now("api", "gold", "c").unwrap().as_deref(), Some(gold));
            assert_eq!(store.resolve_now("api", "silver", "c").unwrap().unwrap().id.as_ref(), "t");
            // Every id takes part in the key, each compared whole.
            for (a, p, c) in [("api", "gold", "d"), ("ap", "igold", "c"), ("api", "gol", "dc")] {
                assert_eq!(store.resolve_now(a, p, c), Some(None), "{a} {p} {c}");
            }
        }
        let sub = Subscription::new("s", "api", "gold", "app", "c", SubscriptionStatus::Accepted);
        let store = InMemoryResolver::new([sub.clone()]);
        store.insert(Subscription::new(
            "t",
            "api",
            "silver",
            "app",
            "c",
            SubscriptionStatus::Paused,
        ));
        check(&store, &sub);
        check(&Arc::new(store.clone()), &sub);
        check(&BoxResolver::new(store), &sub);
        let later = |_: SubscriptionQuery| ready(Ok::<_, ResolveError>(None));
        assert!(later.resolve_now("api", "gold", "c").is_none(), "the default asks `resolve`");
    }
}
