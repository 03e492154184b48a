//! API-gateway **JWT plans** as a [tower] layer.
//!
//! An API is protected by plans. A JWT plan lets a request through only if it carries a JWT
//! whose signature verifies against the plan's keys (usually fetched from the identity
//! provider's JWKS URL), whose claims are valid, and whose client id belongs to an application
//! holding an *accepted* subscription to that plan. [`JwtPlanLayer`] enforces this in front of
//! any tower service: an axum router, a hyper service or a tonic server.
//!
//! # Quick start
//!
//! ```
//! use axum::{Router, routing::get};
//! use jsonwebtoken::Algorithm;
//! use tower_jwt_plan::{
//!     InMemoryResolver, JwksCache, JwtPlanLayer, JwtSettings, KeySource, Plan, PlanContext,
//!     Subscription, SubscriptionStatus,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = JwksCache::builder("https://idp.example/.well-known/jwks.json").build()?;
//! let gold = JwtSettings::new(KeySource::jwks(jwks))
//!     .algorithms([Algorithm::RS256, Algorithm::ES256])
//!     .issuer("https://idp.example")
//!     .audience("api://echo");
//!
//! let subscriptions = InMemoryResolver::new([Subscription::new(
//!     "sub-1", "echo", "gold", "app-1", "my-client", SubscriptionStatus::Accepted,
//! )]);
//!
//! let layer = JwtPlanLayer::builder("echo")
//!     .plan(Plan::jwt("gold", "Gold", gold))
//!     .resolver(subscriptions)
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|axum::Extension(ctx): axum::Extension<PlanContext>| async move {
//!         format!("hello {} on plan {}", ctx.client_id(), ctx.plan_id())
//!     }))
//!     .layer(layer);
//! # let _ = app; Ok(()) }
//! ```
//!
//! # What is checked, in order
//!
//! 1. **Token**: `Authorization: Bearer <token>` (scheme case-insensitive, exactly one token
//!    in the request, at most 8 KiB). Query parameter and cookie sources are opt-in
//!    ([`TokenSource`]). No token: 401 `JWT_MISSING_TOKEN`.
//! 2. **Structure**: three base64url segments, canonical, JSON objects without duplicate
//!    members; `alg` in the plan's allowlist (never `none`); no `crit`/`b64`/`zip`; `jku`,
//!    `jwk`, `x5u`, `x5c` ignored. Registered claims of the wrong type are refused.
//! 3. **Plan and signature**: servable plans (published or deprecated) in order; the key
//!    comes from the plan's [`KeySource`] by `kid`, and the key type decides the algorithm
//!    family. An unknown `kid` triggers one rate-limited refetch of the JWKS.
//! 4. **Claims**: `exp` required, `nbf`/`iat` checked, 60 s leeway; issuer and audience exact
//!    and required once configured; then, when the plan has them, the revocation list
//!    ([`RevocationList`]: a listed `jti` is 401, no list yet is 503) and the certificate
//!    binding ([`Confirmation`], RFC 8705), both repeated on token-cache hits; required scopes
//!    (403 `JWT_INSUFFICIENT_SCOPE`).
//! 5. **Subscription** (only now, so a forged token never reaches the store): the
//!    [`SubscriptionResolver`] is asked for (api, plan, client id); the subscription must be
//!    accepted and within its dates, or 403 `GATEWAY_PLAN_UNRESOLVABLE`.
//! 6. **Context**: [`PlanContext`] and [`VerifiedClaims`] go into the request extensions.
//!
//! If no plan passes, the most telling refusal is answered: an outage outranks "no
//! subscription", which outranks "invalid token". Outages are never a pass: keys that cannot be
//! obtained give 503 `JWKS_UNAVAILABLE`, a store failure 503 `GATEWAY_PLAN_RESOLUTION_FAILURE`.
//! The [response table](default_rejection#response-table) gives every status, challenge, body
//! and gRPC code.
//!
//! This list is the crate's one description of the order of the checks; the code that follows
//! it is private (`src/check.rs`, see `ARCHITECTURE.md`).
//!
//! # Crypto backend
//!
//! Signatures are checked by `jsonwebtoken`'s crypto providers. The `aws-lc-rs` feature
//! (default) uses aws-lc-rs; `rust-crypto` (with `default-features = false`) uses the RustCrypto
//! crates. With neither, the crate does not compile; with both, aws-lc-rs is used. The crate
//! calls the chosen provider directly and never depends on jsonwebtoken's process-wide default,
//! so enabling both features cannot cause a panic at run time.
//!
//! # Features
//!
//! - `aws-lc-rs` (default), `rust-crypto`: see above.
//! - `axum`: [`PlanContext`] and [`VerifiedClaims`] implement axum 0.8's `FromRequestParts`
//!   and `OptionalFromRequestParts`, with the rejections `MissingPlanContext`,
//!   `ClaimsNotExtracted` and `VerifiedClaimsRejection`.
//! - `sqlite`, `postgres`: the [`catalog`]'s SQLite and PostgreSQL stores (sqlx, migrations
//!   embedded). Without them the catalog has its in-memory store only, and no database driver
//!   is compiled.
//! - `redis`: plan restriction counters shared through Redis (`limit::RedisStore`).
//!
//! # Plan restrictions
//!
//! [`limit::PlanLimitLayer`], placed inside [`JwtPlanLayer`], applies each plan's rate limit,
//! quota and spike arrest per subscription; see [`limit`].
//!
//! [tower]: https://docs.rs/tower

#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod catalog;
mod check;
mod confirmation;
mod context;
pub mod defaults;
pub mod definition;
mod discovery;
mod error;
mod fetch;
mod future;
mod jwks;
mod key;
mod layer;
pub mod limit;
mod plan;
mod resolver_cache;
mod resource_metadata;
mod response;
mod revocation;
mod service;
mod subscription;
mod token;
mod verify;

pub use cache::TokenCacheConfig;
pub use confirmation::{ClientCertificate, Confirmation};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use context::{ClaimsNotExtracted, MissingPlanContext, VerifiedClaimsRejection};
pub use context::{PlanContext, VerifiedClaims};
pub use discovery::{DiscoveryError, ProviderMetadata};
pub use error::{AuthError, AuthErrorKind, BoxError, ConfigError, InvalidReason};
pub use future::ResponseFuture;
pub use jwks::{JwksCache, JwksCacheBuilder, JwksStats, JwksWorker};
pub use layer::{JwtPlanLayer, JwtPlanLayerBuilder, NoResolver};
pub use plan::{Plan, PlanSecurity, PlanSet, PlanStatus};
pub use resolver_cache::{CachingResolver, CachingResolverBuilder};
pub use resource_metadata::{ProtectedResourceMetadata, ResourceMetadataService};
pub use response::{
    DefaultRejection, RenderRejection, ResponseBody, default_rejection, grpc_code_of, is_grpc,
    status_of,
};
pub use revocation::{RevocationList, RevocationListBuilder, RevocationStats, RevocationWorker};
pub use service::JwtPlan;
pub use subscription::{
    BoxResolveFuture, BoxResolver, InMemoryResolver, ResolveError, Subscription, SubscriptionQuery,
    SubscriptionResolver, SubscriptionStatus,
};
pub use token::TokenSource;
pub use verify::{JwtSettings, KeySource, ScopeMode};

/// Re-exported so users name algorithms without a direct `jsonwebtoken` dependency.
pub use jsonwebtoken::Algorithm;

/// The README's Rust examples, compiled as doc tests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
