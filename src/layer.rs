//! [`JwtPlanLayer`] and its builder. The layer only holds configuration, all of it in one
//! `Arc`, so `layer()` and `clone()` cost one reference-count increment.
//!
//! The plan set sits behind an `ArcSwap`: [`JwtPlanLayer::redeploy`] validates a new set and
//! swaps it in atomically, for every service built from this layer and its clones. Requests
//! already being checked finish under the set they started with.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::HeaderValue;
use tower_layer::Layer;

use crate::cache::{TokenCache, TokenCacheConfig};
use crate::check::{Clock, Shared};
use crate::defaults::DEFAULT_RESOLVER_TIMEOUT;
use crate::error::ConfigError;
use crate::plan::{Plan, PlanSet};
use crate::response::{DefaultRejection, RenderRejection};
use crate::service::JwtPlan;
use crate::subscription::SubscriptionResolver;
use crate::token::TokenSource;

/// Enforces an API's JWT plans on every request. See the [crate docs](crate) for the checks
/// and their order.
///
/// # Reserved capacity
///
/// The inner service is polled ready before the token is checked, so while the layer waits for
/// keys (first fetch, unknown-`kid` refetch: bounded by the JWKS fetch timeout) or for the
/// subscription store (bounded by [`JwtPlanLayerBuilder::resolver_timeout`]), whatever capacity
/// the inner service reserved in `poll_ready` (a `Buffer` slot, a `ConcurrencyLimit` permit) stays
/// held. Size those limits with that wait in mind. Tokens whose key is cached and a resolver that
/// answers at once never wait.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use jsonwebtoken::Algorithm;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_jwt_plan::{InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let settings = JwtSettings::new(KeySource::hmac_secret([7u8; 32])).algorithms([Algorithm::HS256]);
/// let layer = JwtPlanLayer::builder("echo")
///     .plan(Plan::jwt("gold", "Gold", settings))
///     .resolver(InMemoryResolver::default())
///     .build()?;
///
/// let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::new()))
/// }));
/// let res = svc.oneshot(Request::new(String::new())).await?;
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// # Ok(()) }
/// ```
#[must_use]
pub struct JwtPlanLayer<R> {
    pub(crate) shared: Arc<Shared<R>>,
}

impl<R> Clone for JwtPlanLayer<R> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<R> fmt::Debug for JwtPlanLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtPlanLayer")
            .field("api_id", &self.shared.api_id)
            .field("plans", &**self.shared.plans.load())
            .field("tokens", &self.shared.tokens)
            .finish_non_exhaustive()
    }
}

impl JwtPlanLayer<NoResolver> {
    /// Start configuring the layer for one API.
    pub fn builder(api_id: impl Into<Arc<str>>) -> JwtPlanLayerBuilder<NoResolver> {
        JwtPlanLayerBuilder {
            api_id: api_id.into(),
            plans: Vec::new(),
            resolver: NoResolver,
            tokens: TokenSource::default(),
            render: Box::new(DefaultRejection),
            clock: Arc::new(SystemTime::now),
            resolver_timeout: DEFAULT_RESOLVER_TIMEOUT,
            token_cache: TokenCacheConfig::default(),
            resource_metadata: None,
        }
    }
}

impl<R> JwtPlanLayer<R> {
    /// The API this layer protects.
    pub fn api_id(&self) -> &str {
        &self.shared.api_id
    }

    /// The plan set now serving.
    pub fn plans(&self) -> Arc<PlanSet> {
        self.shared.plans.load_full()
    }

    /// How many verified tokens the token cache holds now (0 when it is disabled).
    pub fn cached_tokens(&self) -> u64 {
        self.shared.token_cache.as_ref().map_or(0, TokenCache::len)
    }

    /// Replace the plans atomically. The new set is validated whole first (keyless rejection
    /// included); if it is refused, the current set keeps serving and the error says why.
    ///
    /// ```
    /// # use tower_jwt_plan::*;
    /// # use jsonwebtoken::Algorithm;
    /// # let settings = JwtSettings::new(KeySource::hmac_secret([7u8; 32])).algorithms([Algorithm::HS256]);
    /// # let layer = JwtPlanLayer::builder("echo").plan(Plan::jwt("gold", "Gold", settings.clone()))
    /// #     .resolver(InMemoryResolver::default()).build().unwrap();
    /// let keyless = Plan::new("free", "Free", PlanStatus::Published, PlanSecurity::Keyless);
    /// assert!(layer.redeploy(vec![keyless]).is_err());
    /// assert_eq!(layer.plans().serving_plan_ids().collect::<Vec<_>>(), ["gold"]);
    /// ```
    pub fn redeploy(&self, plans: Vec<Plan>) -> Result<(), ConfigError> {
        let set = PlanSet::for_api(&self.shared.api_id, plans)?;
        self.shared.plans.store(Arc::new(set));
        Ok(())
    }
}

impl<S, R> Layer<S> for JwtPlanLayer<R> {
    type Service = JwtPlan<S, R>;

    fn layer(&self, inner: S) -> JwtPlan<S, R> {
        JwtPlan::new(inner, self.shared.clone())
    }
}

/// Placeholder until [`JwtPlanLayerBuilder::resolver`] is called: a layer cannot be built
/// without a subscription store.
#[derive(Debug, Clone, Copy)]
pub struct NoResolver;

/// Builder for [`JwtPlanLayer`]; see each setter for its default.
#[must_use]
pub struct JwtPlanLayerBuilder<R> {
    api_id: Arc<str>,
    plans: Vec<Plan>,
    resolver: R,
    tokens: TokenSource,
    render: Box<dyn RenderRejection>,
    clock: Clock,
    resolver_timeout: std::time::Duration,
    token_cache: TokenCacheConfig,
    resource_metadata: Option<String>,
}

impl<R> JwtPlanLayerBuilder<R> {
    /// Add a plan. Plans are tried in the order added.
    pub fn plan(mut self, plan: Plan) -> Self {
        self.plans.push(plan);
        self
    }

    /// Add several plans.
    pub fn plans(mut self, plans: impl IntoIterator<Item = Plan>) -> Self {
        self.plans.extend(plans);
        self
    }

    /// The subscription store. Required.
    pub fn resolver<R2: SubscriptionResolver>(self, resolver: R2) -> JwtPlanLayerBuilder<R2> {
        JwtPlanLayerBuilder {
            api_id: self.api_id,
            plans: self.plans,
            resolver,
            tokens: self.tokens,
            render: self.render,
            clock: self.clock,
            resolver_timeout: self.resolver_timeout,
            token_cache: self.token_cache,
            resource_metadata: self.resource_metadata,
        }
    }

    /// Size of the verified-token cache, or [`TokenCacheConfig::disabled`]. Default: on,
    /// 4096 tokens and 8 MiB of token text. See [`TokenCacheConfig`] for what a hit re-checks.
    pub fn token_cache(mut self, config: TokenCacheConfig) -> Self {
        self.token_cache = config;
        self
    }

    /// Where tokens are read from. Default: the `Authorization: Bearer` header only, 8 KiB cap.
    pub fn token_source(mut self, tokens: TokenSource) -> Self {
        self.tokens = tokens;
        self
    }

    /// Replace the rendering of refusals. Default: [`DefaultRejection`].
    pub fn render_rejection(mut self, render: impl RenderRejection) -> Self {
        self.render = Box::new(render);
        self
    }

    /// Bound on one subscription lookup; past it the request gets 503
    /// `GATEWAY_PLAN_RESOLUTION_FAILURE`. Default: 5 s. A store that answers at once
    /// ([`SubscriptionResolver::resolve_now`], such as `InMemoryResolver`) never waits, so
    /// this bounds only lookups through a future.
    pub fn resolver_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.resolver_timeout = timeout;
        self
    }

    /// Point clients to the API's protected-resource metadata (RFC 9728): every 401 challenge
    /// gets `resource_metadata="<url>"`. Default: none. Usually
    /// [`ProtectedResourceMetadata::well_known_url`](crate::ProtectedResourceMetadata::well_known_url).
    /// Checked at build: an absolute `http(s)` URL without `"` or `\`.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The clock used for `exp`/`nbf`/`iat` and subscription dates. Default:
    /// `SystemTime::now`. Meant for tests that pin time.
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }
}

impl<R: SubscriptionResolver> JwtPlanLayerBuilder<R> {
    /// Validate everything and build the layer.
    pub fn build(self) -> Result<JwtPlanLayer<R>, ConfigError> {
        if self.api_id.is_empty() {
            return Err(ConfigError::EmptyId("api"));
        }
        if self.tokens.max_bytes() == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_token_bytes",
                reason: "must be more than zero".into(),
            });
        }
        let plans = PlanSet::for_api(&self.api_id, self.plans)?;
        if let Some(url) = &self.resource_metadata {
            let parsed = url::Url::parse(url).ok();
            let usable = parsed.is_some_and(|u| matches!(u.scheme(), "https" | "http"))
                && !url.contains(['"', '\\'])
                && HeaderValue::from_str(url).is_ok();
            if !usable {
                return Err(ConfigError::InvalidSetting {
                    name: "resource_metadata",
                    reason: "must be an absolute http(s) URL usable in a header".into(),
                });
            }
        }
        Ok(JwtPlanLayer {
            shared: Arc::new(Shared {
                api_id: self.api_id,
                plans: ArcSwap::from_pointee(plans),
                resolver: self.resolver,
                tokens: self.tokens,
                render: self.render,
                clock: self.clock,
                resolver_timeout: self.resolver_timeout,
                token_cache: TokenCache::new(self.token_cache),
                resource_metadata: self.resource_metadata.map(Arc::from),
            }),
        })
    }
}

impl<R> fmt::Debug for JwtPlanLayerBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtPlanLayerBuilder")
            .field("api_id", &self.api_id)
            .field("plans", &self.plans.len())
            .finish_non_exhaustive()
    }
}
