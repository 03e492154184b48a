//! [`PlanLimitLayer`] and its builder. The layer holds configuration and the live counters in
//! one `Arc`, so every service built from it (and from its clones) shares one budget.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::Request;
use tower_layer::Layer;

use super::Clock;
use super::decision::Ask;
use super::memory::{MemoryCounters, MemoryStore};
use super::plans::PlanLimits;
#[cfg(feature = "redis")]
use super::redis::{RedisCounters, RedisStore};
use super::service::PlanLimit;
use super::store::Decided;
use crate::{DefaultRejection, PlanContext, RenderRejection, VerifiedClaims};

/// Applies the granting plan's [`Restrictions`](super::Restrictions) to each request. See the
/// [module docs](super) for placement, keys, algorithms and answers.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_jwt_plan::PlanContext;
/// use tower_jwt_plan::limit::{PlanLimitLayer, PlanLimits, RateLimit, Restrictions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limits = PlanLimits::new();
/// limits.set("echo", "silver", Restrictions::none().with_rate_limit(RateLimit::new(1, 60)?));
///
/// let svc = ServiceBuilder::new()
///     // In an app, JwtPlanLayer sits here, outside, and puts the PlanContext in.
///     .map_request(|mut req: Request<String>| {
///         req.extensions_mut().insert(PlanContext::new("echo", "silver", "Silver", "app", "sub-1", "client", None));
///         req
///     })
///     .layer(PlanLimitLayer::new(limits))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
///
/// let first = svc.clone().oneshot(Request::new(String::new())).await?;
/// assert_eq!(first.status(), 200);
/// assert_eq!(first.headers()["x-rate-limit-remaining"], "0");
/// let second = svc.oneshot(Request::new(String::new())).await?;
/// assert_eq!(second.status(), 429);
/// # Ok(()) }
/// ```
#[must_use]
pub struct PlanLimitLayer {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    limits: PlanLimits,
    key_claim: Option<Box<str>>,
    clock: Clock,
    pub(crate) render: Box<dyn RenderRejection>,
    store: Store,
}

enum Store {
    Memory(MemoryCounters),
    #[cfg(feature = "redis")]
    Redis(RedisCounters),
}

impl Clone for PlanLimitLayer {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl fmt::Debug for PlanLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match &self.shared.store {
            Store::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Store::Redis(_) => "redis",
        };
        f.debug_struct("PlanLimitLayer")
            .field("limits", &self.shared.limits)
            .field("key_claim", &self.shared.key_claim)
            .field("store", &store)
            .finish_non_exhaustive()
    }
}

impl PlanLimitLayer {
    /// Limits counted in memory, keyed per subscription, rendered the default way.
    pub fn new(limits: PlanLimits) -> Self {
        Self::builder(limits).build()
    }

    /// Start configuring a layer over `limits`.
    pub fn builder(limits: PlanLimits) -> PlanLimitLayerBuilder {
        PlanLimitLayerBuilder {
            limits,
            key_claim: None,
            clock: Arc::new(SystemTime::now),
            render: Box::new(DefaultRejection),
            memory: MemoryStore::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// The restrictions table this layer reads (a handle: writes to it apply at once).
    pub fn limits(&self) -> &PlanLimits {
        &self.shared.limits
    }
}

impl Shared {
    /// What to count for this request, or `None` when it is not limited: no [`PlanContext`]
    /// (not granted by a JWT plan) or no restrictions for its plan.
    pub(crate) fn ask<B>(&self, req: &Request<B>) -> Option<Ask> {
        let ctx = req.extensions().get::<PlanContext>()?;
        let restrictions = self.limits.get(ctx.api_id(), ctx.plan_id())?;
        if restrictions.is_empty() {
            return None;
        }
        let mut subject = String::with_capacity(64);
        push(&mut subject, ctx.api_id());
        push(&mut subject, ctx.plan_id());
        let claim = self.key_claim.as_deref().and_then(|name| {
            let value = req.extensions().get::<VerifiedClaims>()?.get(name)?;
            match value {
                serde_json::Value::String(s) => Some(s.clone()),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                    Some(v.to_string())
                }
                _ => None,
            }
        });
        match claim {
            Some(value) => {
                subject.push('c');
                push(&mut subject, &value);
            }
            None => {
                if self.key_claim.is_some() {
                    tracing::debug!(target: "tower_jwt_plan::limit", "limit key claim absent: counting per subscription");
                }
                subject.push('s');
                push(&mut subject, ctx.subscription_id());
            }
        }
        Some(Ask::new(subject, &restrictions, (self.clock)()))
    }

    pub(crate) fn decide(&self, ask: Ask) -> Decided {
        match &self.store {
            Store::Memory(memory) => Decided::Now(memory.decide(&ask)),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.decide(ask),
        }
    }
}

/// Append `value` length-prefixed, so no two different id sequences make the same subject.
fn push(subject: &mut String, value: &str) {
    use std::fmt::Write as _;
    let _ = write!(subject, "{}:{value}", value.len());
}

impl<S> Layer<S> for PlanLimitLayer {
    type Service = PlanLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PlanLimit::new(inner, self.shared.clone())
    }
}

/// Configures a [`PlanLimitLayer`].
#[must_use]
pub struct PlanLimitLayerBuilder {
    limits: PlanLimits,
    key_claim: Option<Box<str>>,
    clock: Clock,
    render: Box<dyn RenderRejection>,
    memory: MemoryStore,
    #[cfg(feature = "redis")]
    redis: Option<RedisStore>,
}

impl fmt::Debug for PlanLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanLimitLayerBuilder")
            .field("limits", &self.limits)
            .field("key_claim", &self.key_claim)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl PlanLimitLayerBuilder {
    /// Count per value of this claim (for example `sub`, per user) instead of per
    /// subscription: the budget is then shared by every subscription of the plan that the
    /// same claim value uses. Needs [`VerifiedClaims`] in the request (the JWT layer's
    /// default); a request without the claim (string, number or boolean) is counted per
    /// subscription. Default: per subscription.
    pub fn key_by_claim(mut self, claim: impl Into<Box<str>>) -> Self {
        self.key_claim = Some(claim.into());
        self
    }

    /// The in-memory counters' settings (the store when no Redis is set, the fallback
    /// otherwise). Default: [`MemoryStore::default`].
    pub fn memory(mut self, memory: MemoryStore) -> Self {
        self.memory = memory;
        self
    }

    /// Share counters through Redis. See [`RedisStore`] for the fallback when it is down.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, store: RedisStore) -> Self {
        self.redis = Some(store);
        self
    }

    /// The renderer of refusals: the same hook as
    /// [`JwtPlanLayerBuilder::render_rejection`](crate::JwtPlanLayerBuilder::render_rejection),
    /// so one renderer can serve both layers. The layer adds `Retry-After`, the limit headers
    /// and the [`AuthError`](crate::AuthError) extension after it runs. Default:
    /// [`default_rejection`](crate::default_rejection).
    pub fn render_rejection(mut self, render: impl RenderRejection) -> Self {
        self.render = Box::new(render);
        self
    }

    /// The clock that places requests in windows and drives the spike arrest. Default:
    /// [`SystemTime::now`]. Tests pin it; gateway instances sharing Redis need clocks that
    /// agree (NTP), since each computes its own windows.
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    /// Build the layer. Nothing is connected here: a Redis connection is opened by the first
    /// request (inside the Tokio runtime), and until it answers the in-memory counters decide.
    pub fn build(self) -> PlanLimitLayer {
        let memory = self.memory.build(self.clock.clone());
        #[cfg(feature = "redis")]
        let store = match self.redis {
            Some(redis) => Store::Redis(redis.build(memory)),
            None => Store::Memory(memory),
        };
        #[cfg(not(feature = "redis"))]
        let store = Store::Memory(memory);
        PlanLimitLayer {
            shared: Arc::new(Shared {
                limits: self.limits,
                key_claim: self.key_claim,
                clock: self.clock,
                render: self.render,
                store,
            }),
        }
    }
}
