//! What a request that passed carries into the inner service: [`VerifiedClaims`] and
//! [`PlanContext`], both in the request extensions.
//!
//! Both are cheap to clone (an `Arc` inside), `Send + Sync + 'static`, and ours: they never
//! expose a foreign type such as `jsonwebtoken::TokenData` as the extension key. With the `axum`
//! feature they are also extractors; without it, use `axum::Extension<PlanContext>`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::cache::Verified;
use crate::subscription::Subscription;
use crate::verify::parse_jws;

/// The claims of a token whose signature and claims were verified.
///
/// ```
/// # use tower_jwt_plan::VerifiedClaims;
/// # let claims = VerifiedClaims::from_map(serde_json::json!({"sub": "alice", "scope": "read"}).as_object().unwrap().clone());
/// #[derive(serde::Deserialize)]
/// struct Mine { sub: String }
///
/// let mine: Mine = claims.deserialize().unwrap();
/// assert_eq!(mine.sub, "alice");
/// assert_eq!(claims.get("scope").and_then(|v| v.as_str()), Some("read"));
/// ```
///
/// On a token-cache hit the claims are decoded from the token when first read (a cache entry
/// keeps the token, not a second copy of its claims): a request that reads none decodes
/// nothing, one that reads them pays one decode of the payload, far below a verification.
#[derive(Clone)]
pub struct VerifiedClaims(Claims);

/// Where the claims come from.
#[derive(Clone)]
enum Claims {
    /// Decoded by this request's verification.
    Decoded(Arc<Map<String, Value>>),
    /// A token-cache hit whose claims were needed before the request passed (a revocation
    /// list, a certificate binding).
    Token(Arc<Lazy>),
    /// A token-cache hit: kept in the [`PlanContext`]'s allocation, one for both.
    Context(Arc<ContextInner>),
}

/// The claims of a verified token, decoded on first read, so that a cache entry holds the
/// token alone and a request that reads no claim decodes nothing.
struct Lazy {
    token: Arc<str>,
    decoded: OnceLock<Map<String, Value>>,
}

impl Lazy {
    fn new(token: Arc<str>) -> Self {
        Self { token, decoded: OnceLock::new() }
    }

    fn get(&self) -> &Map<String, Value> {
        self.decoded.get_or_init(|| decode_verified(&self.token))
    }
}

impl VerifiedClaims {
    /// Wrap a claims map. The layer only builds these from verified tokens; this constructor is
    /// for tests and for handlers that want to fake a context.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self::from_arc(Arc::new(map))
    }

    pub(crate) fn from_arc(map: Arc<Map<String, Value>>) -> Self {
        Self(Claims::Decoded(map))
    }

    /// The claims of `token`, which passed every check before: decoded when first read.
    pub(crate) fn of_verified_token(token: Arc<str>) -> Self {
        Self(Claims::Token(Arc::new(Lazy::new(token))))
    }

    /// One claim, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.as_map().get(name)
    }

    /// One claim as a string, if present and a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        match &self.0 {
            Claims::Decoded(map) => map,
            Claims::Token(lazy) => lazy.get(),
            Claims::Context(context) => match (&context.claims, &context.client) {
                (Some(decoded), Client::Cached(hit)) => {
                    decoded.get_or_init(|| decode_verified(&hit.token))
                }
                // Not reached: built only from a hit's context that holds claims.
                _ => empty_map(),
            },
        }
    }

    /// Deserialize the claims into your own type.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&Value::Object(self.as_map().clone()))
    }
}

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

/// The claims of a token that already decoded once (it is in the token cache only if it did).
fn decode_verified(token: &str) -> Map<String, Value> {
    match parse_jws(token).and_then(|mut jws| jws.claims()) {
        Ok(claims) => Arc::unwrap_or_clone(claims),
        Err(err) => {
            // Not reached: the same bytes decoded when the token was verified.
            tracing::error!(target: "tower_jwt_plan", error = %err, "a cached token no longer decodes; no claims");
            Map::new()
        }
    }
}

impl PartialEq for VerifiedClaims {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

impl fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claim names only: values may be personal data.
        f.debug_set().entries(self.as_map().keys()).finish()
    }
}

/// The ids of one plan of one API, shared by every context granted under it.
pub(crate) struct PlanIds {
    api_id: Arc<str>,
    plan_id: Arc<str>,
    plan_name: Arc<str>,
}

impl PlanIds {
    pub(crate) fn new(api_id: Arc<str>, plan_id: Arc<str>, plan_name: Arc<str>) -> Arc<Self> {
        Arc::new(Self { api_id, plan_id, plan_name })
    }
}

/// Which API, plan, application and subscription a request passed under.
///
/// ```
/// # use tower_jwt_plan::PlanContext;
/// # fn handler(ctx: PlanContext) {
/// println!("{} called {} under plan {}", ctx.client_id(), ctx.api_id(), ctx.plan_id());
/// # }
/// ```
///
/// Two contexts are equal when their ids are.
#[derive(Clone)]
pub struct PlanContext(Arc<ContextInner>);

struct ContextInner {
    plan: Arc<PlanIds>,
    subscription: Held,
    client: Client,
    /// A token-cache hit's claims, decoded from the entry's token when first read through the
    /// request's [`VerifiedClaims`]: the claims and the context take one allocation.
    claims: Option<OnceLock<Map<String, Value>>>,
}

/// Whom the request passed for.
pub(crate) enum Client {
    /// Read from the token by this request.
    Own { client_id: Arc<str>, user: Option<Arc<str>> },
    /// A token-cache entry: its client id, user and token, shared rather than copied.
    Cached(Arc<Verified>),
}

/// The subscription's ids, as the store gave them.
pub(crate) enum Held {
    /// Moved out of an owned answer.
    Ids { application_id: Arc<str>, subscription_id: Arc<str> },
    /// An answer shared by the store ([`SubscriptionResolver::resolve_now`](crate::SubscriptionResolver::resolve_now)).
    Shared(Arc<Subscription>),
}

impl PlanContext {
    /// Build a context. The layer does this; it is public for tests of handlers.
    pub fn new(
        api_id: impl Into<Arc<str>>,
        plan_id: impl Into<Arc<str>>,
        plan_name: impl Into<Arc<str>>,
        application_id: impl Into<String>,
        subscription_id: impl Into<String>,
        client_id: impl Into<String>,
        user: Option<String>,
    ) -> Self {
        Self(Arc::new(ContextInner {
            plan: PlanIds::new(api_id.into(), plan_id.into(), plan_name.into()),
            subscription: Held::Ids {
                application_id: application_id.into().into(),
                subscription_id: subscription_id.into().into(),
            },
            client: Client::Own { client_id: client_id.into().into(), user: user.map(Into::into) },
            claims: None,
        }))
    }

    /// The layer's constructor: the ids it already shares are not copied.
    pub(crate) fn shared(plan: Arc<PlanIds>, subscription: Held, client: Client) -> Self {
        Self(Arc::new(ContextInner { plan, subscription, client, claims: None }))
    }

    /// [`shared`](Self::shared) for a token-cache hit, with the request's claims (decoded from
    /// the entry's token when first read) in the same allocation.
    pub(crate) fn with_claims(
        plan: Arc<PlanIds>,
        subscription: Held,
        hit: Arc<Verified>,
    ) -> (Self, VerifiedClaims) {
        let client = Client::Cached(hit);
        let inner =
            Arc::new(ContextInner { plan, subscription, client, claims: Some(OnceLock::new()) });
        (Self(inner.clone()), VerifiedClaims(Claims::Context(inner)))
    }

    /// The API id the layer protects.
    pub fn api_id(&self) -> &str {
        &self.0.plan.api_id
    }

    /// The id of the plan the request passed under.
    pub fn plan_id(&self) -> &str {
        &self.0.plan.plan_id
    }

    /// The plan's display name.
    pub fn plan_name(&self) -> &str {
        &self.0.plan.plan_name
    }

    /// The application holding the subscription.
    pub fn application_id(&self) -> &str {
        match &self.0.subscription {
            Held::Ids { application_id, .. } => application_id,
            Held::Shared(sub) => &sub.application,
        }
    }

    /// The subscription's id.
    pub fn subscription_id(&self) -> &str {
        match &self.0.subscription {
            Held::Ids { subscription_id, .. } => subscription_id,
            Held::Shared(sub) => &sub.id,
        }
    }

    /// The client id read from the token.
    pub fn client_id(&self) -> &str {
        match &self.0.client {
            Client::Own { client_id, .. } => client_id,
            Client::Cached(hit) => &hit.client_id,
        }
    }

    /// The user claim (default `sub`), when the token has one.
    pub fn user(&self) -> Option<&str> {
        match &self.0.client {
            Client::Own { user, .. } => user.as_deref(),
            Client::Cached(hit) => hit.user.as_deref(),
        }
    }

    fn ids(&self) -> [Option<&str>; 7] {
        [
            Some(self.api_id()),
            Some(self.plan_id()),
            Some(self.plan_name()),
            Some(self.application_id()),
            Some(self.subscription_id()),
            Some(self.client_id()),
            self.user(),
        ]
    }
}

// By ids only: the claims a hit's context carries belong to the request's `VerifiedClaims`.
impl PartialEq for PlanContext {
    fn eq(&self, other: &Self) -> bool {
        self.ids() == other.ids()
    }
}

impl Eq for PlanContext {}

impl fmt::Debug for PlanContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanContext")
            .field("api_id", &self.api_id())
            .field("plan_id", &self.plan_id())
            .field("application_id", &self.application_id())
            .field("subscription_id", &self.subscription_id())
            .field("client_id", &self.client_id())
            .field("user", &self.user())
            .finish()
    }
}

#[cfg(feature = "axum")]
mod extract {
    //! axum 0.8 extractors. Each failure is its own small type that knows its status and its
    //! client-facing text, as axum's own rejections do; both failures mean the server is
    //! misconfigured, never that the client erred, so both are 500.

    use std::convert::Infallible;
    use std::fmt;

    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::StatusCode;
    use http::request::Parts;

    use super::{PlanContext, VerifiedClaims};

    /// Logged at TRACE under a stable target with the rejection's type name, like axum does: a
    /// rejection here is a deployment mistake, reported to the client as a 500.
    fn log(rejection: &'static str, status: StatusCode, body: &str) {
        tracing::trace!(target: "tower_jwt_plan::rejection", rejection_type = rejection, %status, body, "rejecting request");
    }

    /// A handler asked for [`PlanContext`] or [`VerifiedClaims`] but the request carries no
    /// [`PlanContext`]: [`JwtPlanLayer`](crate::JwtPlanLayer) is not in front of this route.
    /// A server bug, so 500. Use `Option<PlanContext>` for a route that may run without it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MissingPlanContext(&'static str);

    impl MissingPlanContext {
        /// The status this rejection answers with: 500.
        pub fn status(&self) -> StatusCode {
            StatusCode::INTERNAL_SERVER_ERROR
        }

        /// The text sent to the client.
        pub fn body_text(&self) -> String {
            format!("missing request extension `{}`: is JwtPlanLayer installed?", self.0)
        }
    }

    /// The request passed [`JwtPlanLayer`](crate::JwtPlanLayer) (it carries a [`PlanContext`])
    /// but has no [`VerifiedClaims`], because the plan that granted it was configured with
    /// [`JwtSettings::extract_claims(false)`](crate::JwtSettings::extract_claims). A server
    /// bug, so 500. Use `Option<VerifiedClaims>` for a handler that can do without the claims.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ClaimsNotExtracted {
        plan_id: String,
    }

    impl ClaimsNotExtracted {
        /// The status this rejection answers with: 500.
        pub fn status(&self) -> StatusCode {
            StatusCode::INTERNAL_SERVER_ERROR
        }

        /// The text sent to the client. It does not name the plan.
        pub fn body_text(&self) -> String {
            "missing request extension `VerifiedClaims`: the plan does not extract claims \
             (JwtSettings::extract_claims(false))"
                .to_owned()
        }

        /// The plan that granted the request without extracting its claims, for server logs.
        pub fn plan_id(&self) -> &str {
            &self.plan_id
        }
    }

    /// Why [`VerifiedClaims`] could not be extracted.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum VerifiedClaimsRejection {
        /// The layer is not in front of this route.
        MissingPlanContext(MissingPlanContext),
        /// The granting plan does not extract claims.
        ClaimsNotExtracted(ClaimsNotExtracted),
    }

    impl VerifiedClaimsRejection {
        /// The status this rejection answers with.
        pub fn status(&self) -> StatusCode {
            match self {
                Self::MissingPlanContext(inner) => inner.status(),
                Self::ClaimsNotExtracted(inner) => inner.status(),
            }
        }

        /// The text sent to the client.
        pub fn body_text(&self) -> String {
            match self {
                Self::MissingPlanContext(inner) => inner.body_text(),
                Self::ClaimsNotExtracted(inner) => inner.body_text(),
            }
        }
    }

    impl From<MissingPlanContext> for VerifiedClaimsRejection {
        fn from(inner: MissingPlanContext) -> Self {
            Self::MissingPlanContext(inner)
        }
    }

    impl From<ClaimsNotExtracted> for VerifiedClaimsRejection {
        fn from(inner: ClaimsNotExtracted) -> Self {
            Self::ClaimsNotExtracted(inner)
        }
    }

    macro_rules! rejection {
        ($ty:ident) => {
            impl fmt::Display for $ty {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(&self.body_text())
                }
            }

            impl std::error::Error for $ty {}

            impl IntoResponse for $ty {
                fn into_response(self) -> Response {
                    let (status, body) = (self.status(), self.body_text());
                    log(stringify!($ty), status, &body);
                    (status, body).into_response()
                }
            }
        };
    }

    rejection!(MissingPlanContext);
    rejection!(ClaimsNotExtracted);
    rejection!(VerifiedClaimsRejection);

    impl<S: Send + Sync> FromRequestParts<S> for PlanContext {
        type Rejection = MissingPlanContext;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts.extensions.get::<PlanContext>().cloned().ok_or(MissingPlanContext("PlanContext"))
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for VerifiedClaims {
        type Rejection = VerifiedClaimsRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            if let Some(claims) = parts.extensions.get::<VerifiedClaims>() {
                return Ok(claims.clone());
            }
            // Tell "no layer" from "the plan keeps its claims to itself".
            match parts.extensions.get::<PlanContext>() {
                Some(ctx) => Err(ClaimsNotExtracted { plan_id: ctx.plan_id().to_owned() }.into()),
                None => Err(MissingPlanContext("VerifiedClaims").into()),
            }
        }
    }

    /// `Option<PlanContext>` never fails: `None` when the layer is not in front of the route.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for PlanContext {
        type Rejection = Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<PlanContext>().cloned())
        }
    }

    /// `Option<VerifiedClaims>` never fails: `None` when the layer is not in front of the route
    /// or the plan does not extract claims.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedClaims {
        type Rejection = Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<VerifiedClaims>().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::{ClaimsNotExtracted, MissingPlanContext, VerifiedClaimsRejection};

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn token(payload: &str) -> Arc<str> {
        let b64 = |text: &str| URL_SAFE_NO_PAD.encode(text);
        format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(payload)).into()
    }

    /// A hit's claims live in its context's allocation; the context still compares, prints and
    /// answers by its ids alone, and the claims read as the token's.
    #[test]
    fn claims_kept_with_the_context_are_the_tokens_and_not_part_of_its_identity() {
        let sub = Arc::new(Subscription::new(
            "sub-1",
            "echo",
            "gold",
            "app-1",
            "c",
            crate::SubscriptionStatus::Accepted,
        ));
        let ids = PlanIds::new("echo".into(), "gold".into(), "Gold".into());
        let entry = Verified {
            plans_id: 1,
            plan: 0,
            keys: Arc::new(crate::key::KeySet::default()),
            token: token(r#"{"sub":"alice","n":1}"#),
            times: crate::verify::TimeClaims::default(),
            client_id: "c".into(),
            user: Some("alice".into()),
        };
        let (hit, claims) = PlanContext::with_claims(ids.clone(), Held::Shared(sub), entry.into());
        let held = Held::Ids { application_id: "app-1".into(), subscription_id: "sub-1".into() };
        let client = Client::Own { client_id: "c".into(), user: Some("alice".into()) };
        let fresh = PlanContext::shared(ids, held, client);
        let public =
            PlanContext::new("echo", "gold", "Gold", "app-1", "sub-1", "c", Some("alice".into()));
        assert_eq!(hit, fresh);
        assert_eq!(hit, public);
        assert_eq!(format!("{hit:?}"), format!("{public:?}"));
        assert_eq!((hit.application_id(), hit.subscription_id()), ("app-1", "sub-1"));
        assert_ne!(hit, PlanContext::new("echo", "gold", "Gold", "app-1", "sub-1", "c", None));

        let map = serde_json::json!({"sub": "alice", "n": 1}).as_object().unwrap().clone();
        assert_eq!(claims, VerifiedClaims::from_map(map));
        assert_eq!(claims.get_str("sub"), Some("alice"));
        // The claims outlive the context they were built with.
        drop((hit, fresh));
        assert_eq!(claims.clone().get("n"), Some(&Value::from(1)));
    }
}
