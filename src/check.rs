//! The decision for one request: the one place that implements the order of the checks, read
//! top to bottom in [`Check::advance`] (token, structure, plan by plan: keys, signature, claims,
//! scopes, client id, then the [`SubscriptionResolver`]) and [`Check::resolved`] (the store's
//! answer, then [`Check::grant`]). The order is documented once, for users, in the crate docs
//! ("What is checked, in order"); if no plan passes, the most telling refusal is answered
//! (an outage outranks "no subscription", which outranks "invalid token").
//!
//! [`Check`] runs synchronously up to the next [`Wait`] (keys being fetched, or the store being
//! asked) and hands that wait to the response future, which polls it and resumes the check.
//! This module imports neither the layer, the service nor the future.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderValue, Response};
use serde_json::{Map, Value};

use crate::cache::{TokenCache, Verified};
use crate::confirmation::{self, ClientCertificate};
use crate::context::{PlanContext, VerifiedClaims};
use crate::error::{AuthError, AuthErrorKind, InvalidReason};
use crate::jwks::KeyWait;
use crate::plan::{PlanSet, ServedPlan};
use crate::response::{RenderRejection, point_to_metadata};
use crate::revocation;
use crate::subscription::{ResolveError, Subscription, SubscriptionQuery, SubscriptionResolver};
use crate::token::TokenSource;
use crate::verify::{SignatureCheck, parse_jws};

/// The checks that depend on more than the token and the clock, so they run on token-cache
/// hits too: the plan's revocation list, then the certificate binding (RFC 8705).
fn beyond_the_token(
    plan: &ServedPlan,
    claims: &Map<String, Value>,
    parts: &Parts,
) -> Result<(), AuthError> {
    if let Some(list) = &plan.settings.revocation {
        revocation::check(list, claims)?;
    }
    let certificate = parts.extensions.get::<ClientCertificate>();
    confirmation::check(plan.settings.confirmation, claims, certificate)
}

/// The source of "now" for claim and subscription date checks.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Everything a layer's services share: built once by the layer's builder.
pub(crate) struct Shared<R> {
    pub(crate) api_id: Arc<str>,
    pub(crate) plans: ArcSwap<PlanSet>,
    pub(crate) resolver: R,
    pub(crate) tokens: TokenSource,
    pub(crate) render: Box<dyn RenderRejection>,
    pub(crate) clock: Clock,
    pub(crate) resolver_timeout: Duration,
    pub(crate) token_cache: Option<TokenCache>,
    /// RFC 9728: the metadata URL added to every 401 challenge.
    pub(crate) resource_metadata: Option<Arc<str>>,
}

/// What the check waits on before it can go on. Only waits: a verdict is a [`Step`].
pub(crate) enum Wait<F> {
    /// The plan's keys are being fetched (first fetch, or a refetch for an unknown `kid`).
    Keys(KeyWait),
    /// The subscription store is answering for the pending plan.
    Store(F),
}

/// Where the check stands after the store answered.
pub(crate) enum Step<F> {
    Wait(Wait<F>),
    Refuse(AuthError),
    Pass(Granted),
}

impl<F> From<Result<Wait<F>, AuthError>> for Step<F> {
    fn from(result: Result<Wait<F>, AuthError>) -> Self {
        result.map_or_else(Step::Refuse, Step::Wait)
    }
}

/// The decision for one request, plan by plan. Owns no borrowed data: the token is re-read
/// from the request parts whenever verification resumes after a wait.
pub(crate) struct Check<R> {
    shared: Arc<Shared<R>>,
    plans: Arc<PlanSet>,
    now: SystemTime,
    next: usize,
    waited_for: Option<usize>,
    best: Option<AuthError>,
    pending: Option<Pending>,
    bypass_cache: bool,
}

/// A plan whose checks passed, waiting on the subscription store.
struct Pending {
    plan: usize,
    query: SubscriptionQuery,
    claims: Arc<Map<String, Value>>,
    user: Option<String>,
    /// The verification result to cache once the request is granted.
    remember: Option<(Box<str>, Verified)>,
}

/// A request the check lets through: what [`Check::grant`] puts into it.
pub(crate) struct Granted {
    plan: usize,
    claims: Arc<Map<String, Value>>,
    context: PlanContext,
}

impl<R: SubscriptionResolver> Check<R> {
    pub(crate) fn new(shared: Arc<Shared<R>>) -> Self {
        let plans = shared.plans.load_full();
        let now = (shared.clock)();
        Self {
            shared,
            plans,
            now,
            next: 0,
            waited_for: None,
            best: None,
            pending: None,
            bypass_cache: false,
        }
    }

    fn note(&mut self, err: AuthError) {
        if self.best.as_ref().is_none_or(|best| err.kind().rank() > best.kind().rank()) {
            self.best = Some(err);
        }
    }

    /// Run the synchronous checks up to the next wait (keys or store) or a refusal. A grant
    /// always comes from the store's answer, so it is never returned here.
    pub(crate) fn advance(&mut self, parts: &Parts) -> Result<Wait<R::Future>, AuthError> {
        let token = self.shared.tokens.extract(&parts.headers, parts.uri.query())?;
        if !self.bypass_cache
            && self.next == 0
            && let Some(step) = self.cached_step(&token, parts)
        {
            return step;
        }
        let mut jws = parse_jws(&token)?;
        let claims = jws.claims()?;
        while let Some(index) = self.plans.next_candidate(self.next, jws.iss.as_deref()) {
            self.next = index + 1;
            let plan = &self.plans.served[index];
            let may_wait = self.waited_for != Some(index);
            let keys = match plan.settings.keys.check(&jws, plan.rules.algorithms, may_wait) {
                SignatureCheck::Valid(keys) => keys,
                SignatureCheck::Wait(wait) => {
                    self.next = index;
                    self.waited_for = Some(index);
                    return Ok(Wait::Keys(wait));
                }
                SignatureCheck::Invalid(err) => {
                    tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, alg = jws.alg_name(), error = %err, "plan refused token");
                    self.note(err);
                    continue;
                }
            };
            let verdict = plan
                .rules
                .check(&jws, &claims, self.now)
                .and_then(|()| beyond_the_token(plan, &claims, parts))
                .and_then(|()| plan.rules.check_scopes(&claims))
                .and_then(|()| plan.rules.client_id(&claims));
            let client_id = match verdict {
                Ok(client_id) => client_id.to_owned(),
                Err(err) => {
                    tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, error = %err, "plan refused token");
                    self.note(err);
                    continue;
                }
            };
            let user =
                claims.get(&plan.settings.user_claim).and_then(Value::as_str).map(str::to_owned);
            let remember = self.shared.token_cache.as_ref().map(|_| {
                let verified = Verified {
                    plans_id: self.plans.id(),
                    plan: index,
                    keys,
                    claims: claims.clone(),
                    client_id: client_id.as_str().into(),
                    user: user.as_deref().map(Into::into),
                };
                (Box::<str>::from(&*token), verified)
            });
            return self.look_up(index, client_id, claims.clone(), user, remember);
        }
        Err(self.best.take().unwrap_or_else(|| AuthError::invalid(InvalidReason::NoMatchingPlan)))
    }

    /// A repeat token: skip verification if the cached result still holds (same plan set, same
    /// key set, times still valid). The subscription is looked up as always.
    fn cached_step(
        &mut self,
        token: &str,
        parts: &Parts,
    ) -> Option<Result<Wait<R::Future>, AuthError>> {
        let hit = self.shared.token_cache.as_ref()?.get(token)?;
        let plan = self.plans.served.get(hit.plan).filter(|_| hit.plans_id == self.plans.id())?;
        // A hit that fails a check is verified again in full, which gives the precise refusal.
        if !plan.settings.keys.is_current(&hit.keys)
            || plan.rules.check_times(&hit.claims, self.now).is_err()
            || beyond_the_token(plan, &hit.claims, parts).is_err()
        {
            return None;
        }
        let user = hit.user.as_deref().map(str::to_owned);
        Some(self.look_up(hit.plan, hit.client_id.to_string(), hit.claims.clone(), user, None))
    }

    /// Ask the store about `client_id` under plan `index`; the decision waits on the answer.
    /// `remember` is the verification to cache if the answer grants the request; `None` means
    /// the verification itself came from the cache.
    fn look_up(
        &mut self,
        index: usize,
        client_id: String,
        claims: Arc<Map<String, Value>>,
        user: Option<String>,
        remember: Option<(Box<str>, Verified)>,
    ) -> Result<Wait<R::Future>, AuthError> {
        let query = SubscriptionQuery {
            api: self.shared.api_id.clone(),
            plan: self.plans.served[index].id.clone(),
            client_id,
        };
        let future = self.shared.resolver.resolve(query.clone());
        self.pending = Some(Pending { plan: index, query, claims, user, remember });
        Ok(Wait::Store(future))
    }

    /// Take the store's answer for the pending plan; go on with the next plan if it is no.
    pub(crate) fn resolved(
        &mut self,
        answer: Result<Option<Subscription>, ResolveError>,
        parts: &Parts,
    ) -> Step<R::Future> {
        let Some(pending) = self.pending.take() else {
            return Step::Refuse(AuthError::new(AuthErrorKind::ResolutionFailure));
        };
        // With the cache on, only a verification that came from the cache has nothing to remember.
        let from_cache = pending.remember.is_none() && self.shared.token_cache.is_some();
        let plan = &self.plans.served[pending.plan];
        match answer {
            Ok(Some(sub)) if sub.serves(&pending.query, self.now) => {
                if let (Some(cache), Some((token, verified))) =
                    (&self.shared.token_cache, pending.remember)
                {
                    cache.insert(&token, verified);
                }
                let context = PlanContext::new(
                    self.shared.api_id.clone(),
                    plan.id.clone(),
                    plan.name.clone(),
                    sub.application,
                    sub.id,
                    pending.query.client_id,
                    pending.user,
                );
                return Step::Pass(Granted { plan: pending.plan, claims: pending.claims, context });
            }
            Ok(_) => {
                tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, "no usable subscription");
                self.note(AuthError::new(AuthErrorKind::PlanUnresolvable));
            }
            Err(err) => {
                tracing::warn!(target: "tower_jwt_plan", plan = %plan.id, error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "subscription store failed");
                self.note(AuthError::new(AuthErrorKind::ResolutionFailure).with_source(err));
            }
        }
        if from_cache {
            // The cached plan no longer serves this client: decide again from scratch.
            self.bypass_cache = true;
            self.next = 0;
        }
        self.advance(parts).into()
    }

    /// The store did not answer in time.
    pub(crate) fn resolver_timed_out(&mut self, parts: &Parts) -> Step<R::Future> {
        let err =
            std::io::Error::new(std::io::ErrorKind::TimedOut, "subscription lookup timed out");
        self.resolved(Err(ResolveError::new(err)), parts)
    }

    pub(crate) fn resolver_timeout(&self) -> Duration {
        self.shared.resolver_timeout
    }

    /// Put the context into the request and fix up its headers for the inner service.
    pub(crate) fn grant(&self, granted: Granted, parts: &mut Parts) {
        let plan: &ServedPlan = &self.plans.served[granted.plan];
        for name in &self.plans.owned_headers {
            parts.headers.remove(name);
        }
        for (claim, header) in &plan.claims_to_headers {
            let text = match granted.claims.get(claim) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                _ => continue,
            };
            match HeaderValue::from_str(&text) {
                Ok(value) => {
                    parts.headers.insert(header.clone(), value);
                }
                Err(_) => {
                    tracing::debug!(target: "tower_jwt_plan", %claim, "claim value cannot be a header value; header not set");
                }
            }
        }
        if plan.settings.propagate_auth_header {
            // Logging layers further in honour this and print the value as "Sensitive".
            if let Some(value) = parts.headers.get_mut(AUTHORIZATION) {
                value.set_sensitive(true);
            }
        } else {
            parts.headers.remove(AUTHORIZATION);
        }
        if let Some(uri) = self.shared.tokens.strip_query_token(&parts.uri) {
            parts.uri = uri;
        }
        if plan.settings.extract_claims {
            parts.extensions.insert(VerifiedClaims::from_arc(granted.claims));
        }
        tracing::debug!(target: "tower_jwt_plan", plan = %plan.id, client_id = granted.context.client_id(), "request authorized");
        parts.extensions.insert(granted.context);
    }

    /// Render a refusal, with the error in the response extensions for outer layers.
    pub(crate) fn refuse(&self, err: AuthError, parts: &Parts) -> Response<Bytes> {
        tracing::debug!(target: "tower_jwt_plan::reject", code = err.code(), reason = ?err.reason(), "request refused");
        let mut response = self.shared.render.render(&err, parts);
        if let Some(url) = &self.shared.resource_metadata {
            point_to_metadata(&mut response, url);
        }
        response.extensions_mut().insert(err);
        response
    }
}
