//! Plan restrictions: rate limit, quota and spike arrest per subscription, counted in memory
//! or shared through Redis (feature `redis`).
//!
//! A plan is a service level as much as an access rule: a Gold and a Silver plan on the same
//! identity provider differ by their [`Restrictions`]. [`PlanLimitLayer`] applies them.
//!
//! # Placement
//!
//! Put [`PlanLimitLayer`] **inside** [`JwtPlanLayer`](crate::JwtPlanLayer) (the JWT layer
//! outermost), so it sees the [`PlanContext`](crate::PlanContext) of the plan that granted the
//! request. A request without a `PlanContext` was not granted by a JWT plan (or the layer is
//! mounted where no JWT layer runs): it passes through unchanged, without headers, because
//! there is no plan whose budget it could use. Likewise a plan without restrictions is not
//! counted.
//!
//! ```
//! use tower::ServiceBuilder;
//! # use std::convert::Infallible;
//! # use http::{Request, Response};
//! # use tower::service_fn;
//! use tower_jwt_plan::{InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan, Algorithm};
//! use tower_jwt_plan::limit::{PlanLimitLayer, PlanLimits, Quota, QuotaPeriod, Restrictions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let settings = JwtSettings::new(KeySource::hmac_secret([7u8; 32])).algorithms([Algorithm::HS256]);
//! let limits = PlanLimits::new();
//! limits.set("echo", "gold", Restrictions::none().with_quota(Quota::new(10_000, QuotaPeriod::Day)?));
//! let jwt = JwtPlanLayer::builder("echo")
//!     .plan(Plan::jwt("gold", "Gold", settings))
//!     .resolver(InMemoryResolver::default())
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(jwt)                          // outside: verifies, puts the PlanContext in
//!     .layer(PlanLimitLayer::new(limits))  // inside: counts against the granting plan
//!     .service(service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) }));
//! # let _ = svc; Ok(()) }
//! ```
//!
//! # Keys
//!
//! A budget belongs to (API, plan, subscription) by default: Gravitee's key, so two
//! applications on one plan never share a budget. With
//! [`key_by_claim`](PlanLimitLayerBuilder::key_by_claim) it belongs to (API, plan, claim
//! value) instead, for example per user with `sub`.
//!
//! # Algorithms and their precision
//!
//! - **Rate limit**: a fixed window of `period_secs`, aligned on the Unix epoch, so every
//!   instance puts a request in the same window. Counts are exact within a window; as with any
//!   fixed window, up to `2 × limit` requests can pass in a `period_secs` span that straddles a
//!   boundary. `X-Rate-Limit-Reset` is the window's end.
//! - **Quota**: a fixed window on UTC calendar boundaries: the hour, the day (from 00:00 UTC),
//!   the ISO week (from Monday 00:00 UTC) or the month (from the 1st, 00:00 UTC). Exact counts,
//!   and the same straddling caveat at the boundary.
//! - **Spike arrest**: GCRA with a burst of one: a request is allowed when at least
//!   `period_secs / limit` has passed since the theoretical arrival time of the previous one.
//!   In memory this is `governor`'s GCRA, driven by the layer's clock (nanosecond precision);
//!   in Redis it is the same algorithm in the script, at microsecond precision.
//!
//! All limits of a plan are judged together: a request passes only if every one has room, and
//! only then is it counted against all of them (a refused request consumes nothing). The clock
//! is injectable ([`PlanLimitLayerBuilder::clock`]).
//!
//! # Answers
//!
//! Every answer for a limited plan, allowed or refused, carries `X-Rate-Limit-Limit`,
//! `X-Rate-Limit-Remaining`, `X-Rate-Limit-Reset` when the plan has a rate limit and
//! `X-Quota-Limit`, `X-Quota-Remaining`, `X-Quota-Reset` when it has a quota (resets in epoch
//! milliseconds). Over a limit the answer is 429 with `Retry-After` (whole seconds, rounded
//! up) and the body `{"error": CODE, "message": "...", "http_status_code": 429}` with `CODE`
//! one of `RATE_LIMIT_TOO_MANY_REQUESTS`, `QUOTA_TOO_MANY_REQUESTS` or
//! `SPIKE_ARREST_TOO_MANY_REQUESTS`; several limits exhausted at once report the one that lasts
//! longest. gRPC requests get a trailers-only answer with `grpc-status: 8`
//! (RESOURCE_EXHAUSTED). Refusals go through the crate's [`RenderRejection`](crate::RenderRejection)
//! hook with an [`AuthError`](crate::AuthError) of kind
//! [`RateLimitExceeded`](crate::AuthErrorKind::RateLimitExceeded),
//! [`QuotaExceeded`](crate::AuthErrorKind::QuotaExceeded) or
//! [`SpikeArrestExceeded`](crate::AuthErrorKind::SpikeArrestExceeded), which is also put in
//! the response extensions.
//!
//! # Counter stores
//!
//! In memory by default ([`MemoryStore`]): bounded, entries expire once idle for their longest
//! window. Each layer counts on its own, so N gateway instances allow N budgets. To share one
//! budget across instances, use Redis (`redis` feature, `RedisStore`): one atomic script
//! per request checks and counts every limit of the plan in one round trip, and keys expire by
//! themselves. When Redis is unreachable or slower than its timeout, each instance falls back to
//! its in-memory counters (every instance still enforces the full limit on its own), logs once
//! per interval, and goes back to Redis when it answers again. Traffic is never let through
//! unlimited, and never refused because of the counter store.

use std::sync::Arc;
use std::time::SystemTime;

mod decision;
mod future;
mod layer;
mod memory;
mod plans;
#[cfg(feature = "redis")]
mod redis;
mod response;
mod restrictions;
mod service;
mod store;
mod window;

pub use decision::LimitKind;
pub use future::ResponseFuture;
pub use layer::{PlanLimitLayer, PlanLimitLayerBuilder};
pub use memory::MemoryStore;
pub use plans::PlanLimits;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
pub use restrictions::{
    Quota, QuotaPeriod, RateLimit, Restrictions, RestrictionsError, SpikeArrest,
};
pub use service::PlanLimit;

/// The source of "now" for windows and the spike arrest.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;
