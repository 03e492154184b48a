//! The decision for one request: the one place that implements the order of the checks, read
//! top to bottom in [`Check::advance`] (token, structure, plan by plan: keys, signature, claims,
//! scopes, client id, then the [`SubscriptionResolver`]) and [`Check::resolved`] (the store's
//! answer, then [`Check::grant`]). The order is documented once, for users, in the crate docs
//! ("What is checked, in order"); if no plan passes, the most telling refusal is answered
//! (an outage outranks "no subscription", which outranks "invalid token").
//!
//! [`Check`] runs synchronously up to a decision or the next [`Wait`] (keys being fetched, or
//! the store being asked) and hands that wait to the response future, which polls it and
//! resumes the check. A store that answers at once ([`SubscriptionResolver::resolve_now`]) is
//! no wait: with it and the keys at hand, the service's `call` gets the decision itself.
//! This module imports neither the layer, the service nor the future.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderValue, Response};
use serde_json::{Map, Value};

use crate::cache::{TokenCache, Verdict, Verified};
use crate::confirmation::{self, ClientCertificate, Confirmation};
use crate::context::{Client, Held, PlanContext, VerifiedClaims};
use crate::error::{AuthError, AuthErrorKind, InvalidReason};
use crate::jwks::KeyWait;
use crate::key::KeySet;
use crate::plan::{PlanSet, ServedPlan};
use crate::response::{RenderRejection, point_to_metadata};
use crate::revocation;
use crate::subscription::{ResolveError, Subscription, SubscriptionQuery, SubscriptionResolver};
use crate::token::{TokenSource, checked};
use crate::verify::{Jws, KeysAt, SignatureCheck, TimeClaims, Verdicts, parse_jws};

/// The user claim's value as a string, when the token has one.
fn user_of(claims: &Map<String, Value>, user_claim: &str) -> Option<Arc<str>> {
    claims.get(user_claim).and_then(Value::as_str).map(Into::into)
}

/// The checks that depend on more than the token and the clock, so they run on token-cache
/// hits too: the plan's revocation list, then the certificate binding (RFC 8705).
fn beyond_the_token(
    plan: &ServedPlan,
    claims: &VerifiedClaims,
    parts: &Parts,
) -> Result<(), AuthError> {
    if let Some(list) = &plan.settings.revocation {
        revocation::check(list, claims.as_map())?;
    }
    if plan.settings.confirmation == Confirmation::Off {
        return Ok(());
    }
    let certificate = parts.extensions.get::<ClientCertificate>();
    confirmation::check(plan.settings.confirmation, claims.as_map(), certificate)
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

/// Where the synchronous checks stopped: a wait, a store that answered at once
/// ([`SubscriptionResolver::resolve_now`]) for the pending plan, or a grant.
enum Stop<F> {
    Wait(Wait<F>),
    Answered(Candidate, Option<Arc<Subscription>>),
    Granted(Granted),
}

/// One plan's verdict on the token's claims, scopes and client id in this request; a plan that
/// checks them as it does ([`ServedPlan::same_checks_as`]) takes the same verdict.
struct Checked {
    plan: usize,
    /// The client id and user, or the refusal (already noted).
    verdict: Result<(Arc<str>, Option<Arc<str>>), AuthError>,
}

/// A subscription as the store gave it: owned (a future's answer) or shared (an answer at once).
enum Found {
    Owned(Subscription),
    Shared(Arc<Subscription>),
}

impl Found {
    fn get(&self) -> &Subscription {
        match self {
            Found::Owned(sub) => sub,
            Found::Shared(sub) => sub,
        }
    }

    /// What the context keeps: the ids moved out of an owned answer, or the shared one.
    fn into_held(self) -> Held {
        match self {
            Found::Owned(sub) => {
                Held::Ids { application_id: sub.application, subscription_id: sub.id }
            }
            Found::Shared(sub) => Held::Shared(sub),
        }
    }
}

/// The decision for one request, plan by plan. Borrows nothing from the request: the token is
/// re-read from the request parts whenever verification resumes after a wait.
pub(crate) struct Check<'s, R> {
    /// Borrowed from the service while the check runs in `call` (no reference count, two
    /// atomic operations fewer per request); a check that waits holds its own reference
    /// ([`Check::hold_for_wait`]).
    shared: Cow<'s, Arc<Shared<R>>>,
    /// Borrowed from the layer's `ArcSwap` (no reference count) while the check runs inside
    /// `call`; a check that waits holds it as a full reference ([`Check::hold_for_wait`]).
    plans: Guard<Arc<PlanSet>>,
    now: SystemTime,
    next: usize,
    waited_for: Option<usize>,
    best: Option<AuthError>,
    pending: Option<Candidate>,
    bypass_cache: bool,
    /// The token's claims, decoded once per request (or taken from the token cache).
    claims: Option<VerifiedClaims>,
    /// The token as shared text, for the token cache: made once per verified request.
    token: Option<Arc<str>>,
    /// Signature verdicts by key source: plans sharing a source share one signature check.
    verdicts: Verdicts,
    /// A plan already refused by the store for this request (the cached plan of a hit).
    skip: Option<usize>,
    /// The first plan whose checks all passed but whose client the store refused: remembered
    /// in the token cache if the request is refused, so a repeat costs no signature check.
    refused: Option<Arc<Verified>>,
    /// The request started from a token-cache entry: nothing new to remember.
    cached: bool,
    /// Plans whose checks passed, after the one at the store, in plan order.
    queue: VecDeque<Candidate>,
    /// No plan is left beyond the queue: once it is empty, the request is refused.
    exhausted: bool,
    /// The last plan whose claims were checked in this request, and its verdict.
    last: Option<Checked>,
    /// The token's `exp`, `nbf` and `iat`, read once per request.
    times: Option<TimeClaims>,
}

/// A plan whose checks passed: waiting for its turn at the store, or on the store.
struct Candidate {
    plan: usize,
    /// `None` on a token-cache hit whose claims no check read: if the request passes, they
    /// are built with the context, in one allocation, and decoded from the entry's token only
    /// when read.
    claims: Option<VerifiedClaims>,
    origin: Origin,
}

/// Where a candidate's verification came from, and so its client id and user.
enum Origin {
    /// Verified in this request, with these keys; its cache entry is built only if it is kept.
    Fresh { keys: Arc<KeySet>, client_id: Arc<str>, user: Option<Arc<str>> },
    /// A token-cache entry, which holds the client id, the user and the token.
    Cached(Arc<Verified>, Verdict),
}

impl Candidate {
    fn client_id(&self) -> &Arc<str> {
        match &self.origin {
            Origin::Fresh { client_id, .. } => client_id,
            Origin::Cached(hit, _) => &hit.client_id,
        }
    }

    /// The claims, decoded when read.
    fn into_claims(self) -> VerifiedClaims {
        match (self.claims, self.origin) {
            (Some(claims), _) => claims,
            (None, Origin::Cached(hit, _)) => VerifiedClaims::of_verified_token(hit.token.clone()),
            // Not reached: a fresh verification always has its claims.
            (None, Origin::Fresh { .. }) => VerifiedClaims::from_map(Map::new()),
        }
    }
}

/// A request the check lets through: what [`Check::grant`] puts into it.
pub(crate) struct Granted {
    plan: usize,
    /// `None` only for a plan that neither extracts claims nor copies any to a header.
    claims: Option<VerifiedClaims>,
    context: PlanContext,
}

impl<'s, R: SubscriptionResolver> Check<'s, R> {
    pub(crate) fn new(shared: &'s Arc<Shared<R>>) -> Self {
        let plans = shared.plans.load();
        let now = (shared.clock)();
        Self {
            shared: Cow::Borrowed(shared),
            plans,
            now,
            next: 0,
            waited_for: None,
            best: None,
            pending: None,
            bypass_cache: false,
            claims: None,
            token: None,
            verdicts: Verdicts::default(),
            skip: None,
            refused: None,
            cached: false,
            queue: VecDeque::new(),
            exhausted: false,
            last: None,
            times: None,
        }
    }

    /// Ready the check to wait in the response future: the shared state and the plan set are
    /// held by reference counts rather than borrowed from the service and from one of the
    /// thread's few `arc_swap` borrow slots.
    pub(crate) fn hold_for_wait(self) -> Check<'static, R> {
        // Every field is carried over by name: a field added to `Check` must be added here.
        Check {
            shared: Cow::Owned(self.shared.into_owned()),
            plans: Guard::from_inner(Arc::clone(&self.plans)),
            now: self.now,
            next: self.next,
            waited_for: self.waited_for,
            best: self.best,
            pending: self.pending,
            bypass_cache: self.bypass_cache,
            claims: self.claims,
            token: self.token,
            verdicts: self.verdicts,
            skip: self.skip,
            refused: self.refused,
            cached: self.cached,
            queue: self.queue,
            exhausted: self.exhausted,
            last: self.last,
            times: self.times,
        }
    }

    fn note(&mut self, err: AuthError) {
        if self.best.as_ref().is_none_or(|best| err.kind().rank() > best.kind().rank()) {
            self.best = Some(err);
        }
    }

    /// Run the checks up to the next wait (keys or store), a refusal, or a grant: a store that
    /// answers at once ([`SubscriptionResolver::resolve_now`]) is decided here, plan after
    /// plan, so such a request never waits.
    pub(crate) fn advance(&mut self, parts: &Parts) -> Step<R::Future> {
        loop {
            match self.verify(parts) {
                Ok(Stop::Wait(wait)) => return Step::Wait(wait),
                Ok(Stop::Granted(granted)) => return Step::Pass(granted),
                Err(err) => return Step::Refuse(err),
                Ok(Stop::Answered(pending, found)) => {
                    if let Some(granted) = self.decide(pending, Ok(found.map(Found::Shared))) {
                        return Step::Pass(granted);
                    }
                }
            }
        }
    }

    /// The synchronous checks, up to the next wait, refusal, or answer from the store.
    fn verify(&mut self, parts: &Parts) -> Result<Stop<R::Future>, AuthError> {
        if let Some(next) = self.queue.pop_front() {
            return Ok(self.look_up(next));
        }
        let token = self.shared.tokens.locate(&parts.headers, parts.uri.query())?;
        if self.exhausted {
            return Err(self.refusal());
        }
        // Only tokens that passed every check are cached, so a hit needs no character check.
        if !self.bypass_cache
            && self.next == 0
            && let Some(step) = self.cached_step(&token, parts)
        {
            return step;
        }
        let token = checked(token)?;
        let mut jws = parse_jws(&token)?;
        let claims = match &self.claims {
            Some(claims) => {
                jws.use_claims(claims.as_map());
                claims.clone()
            }
            None => {
                let claims = VerifiedClaims::from_arc(jws.claims()?);
                self.claims = Some(claims.clone());
                claims
            }
        };
        while let Some(index) = self.plans.next_candidate(self.next, jws.iss.as_deref()) {
            self.next = index + 1;
            if self.skip == Some(index) {
                continue;
            }
            let plan = &self.plans.served[index];
            let may_wait = self.waited_for != Some(index);
            let keys = match self.verdicts.check(
                &plan.settings.keys,
                &jws,
                plan.rules.algorithms,
                may_wait,
            ) {
                SignatureCheck::Valid(keys) => keys,
                SignatureCheck::Wait(wait) => {
                    self.next = index;
                    self.waited_for = Some(index);
                    return Ok(Stop::Wait(Wait::Keys(wait)));
                }
                SignatureCheck::Invalid(err) => {
                    tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, alg = jws.alg_name(), error = %err, "plan refused token");
                    self.note(err);
                    continue;
                }
            };
            if !self.passes(index, &jws, &claims, parts) {
                continue;
            }
            // A store that answers at once is asked here, by reference: most plans of a
            // request are answered "no subscription", which then costs no candidate.
            let answer = match &self.last {
                Some(Checked { verdict: Ok((client_id, _)), .. }) => {
                    let plan = &self.plans.served[index].id;
                    self.shared.resolver.resolve_now(&self.shared.api_id, plan, client_id)
                }
                _ => continue, // Not reached: `passes` left this plan's verdict.
            };
            match answer {
                Some(None) => self.unsubscribed(index, &token, keys),
                Some(found) => {
                    if let Some(pending) = self.candidate(index, &token, &claims, keys)
                        && let Some(granted) = self.decide(pending, Ok(found.map(Found::Shared)))
                    {
                        return Ok(Stop::Granted(granted));
                    }
                }
                None => {
                    let Some(first) = self.candidate(index, &token, &claims, keys) else {
                        continue;
                    };
                    self.queue_shared(&token, &jws, &claims, parts);
                    self.exhausted =
                        self.plans.next_candidate(self.next, jws.iss.as_deref()).is_none();
                    return Ok(self.wait_for_store(first));
                }
            }
        }
        Err(self.refusal())
    }

    /// The store answered at once that plan `index` serves no subscription of the client: the
    /// refusal is noted, and the first such plan kept for the token cache (as in `decide`).
    fn unsubscribed(&mut self, index: usize, token: &str, keys: KeysAt) {
        tracing::trace!(target: "tower_jwt_plan::reject", plan = %self.plans.served[index].id, "no usable subscription");
        if self.refused.is_none()
            && !self.cached
            && self.shared.token_cache.is_some()
            && let Some(Checked { verdict: Ok((client_id, user)), .. }) = &self.last
            && let Some(keys) = self.verdicts.keys(keys)
        {
            let (keys, client_id, user) = (keys.clone(), client_id.clone(), user.clone());
            self.keep_token(token);
            self.refused = self.fresh_entry(index, keys, client_id, user);
        }
        self.note(AuthError::new(AuthErrorKind::PlanUnresolvable));
    }

    /// No plan is left: the most telling refusal.
    fn refusal(&mut self) -> AuthError {
        if let (Some(cache), Some(verified)) = (&self.shared.token_cache, self.refused.take()) {
            // A valid token whose client holds no usable subscription: its next request skips
            // the signature check but still asks the store, so a new subscription counts at once.
            cache.insert(verified, Verdict::Refused);
        }
        self.best.take().unwrap_or_else(|| AuthError::invalid(InvalidReason::NoMatchingPlan))
    }

    /// Plan `index`'s claim rules, scopes and client id, its signature having verified: whether
    /// they pass (`self.last` then holds the client id and user); a refusal is noted. A plan
    /// that checks as the last one checked takes its verdict without checking again.
    fn passes(
        &mut self,
        index: usize,
        jws: &Jws<'_>,
        claims: &VerifiedClaims,
        parts: &Parts,
    ) -> bool {
        let plan = &self.plans.served[index];
        if let Some(last) = &self.last
            && self.plans.served[last.plan].same_checks_as == plan.same_checks_as
        {
            return match &last.verdict {
                Ok(_) => true,
                Err(err) => {
                    // Noted once, for the first plan: it cannot outrank itself.
                    tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, error = %err, "plan refused token");
                    false
                }
            };
        }
        let map = claims.as_map();
        let times = *self.times.get_or_insert_with(|| TimeClaims::of(map));
        // Plans usually read the client id and user from the same claims: then the last
        // plan's are this one's, with no lookup and no copy.
        let same_ids = self.last.as_ref().and_then(|last| {
            let other = &self.plans.served[last.plan];
            let same = other.rules.same_client_claim(&plan.rules)
                && other.settings.user_claim == plan.settings.user_claim;
            last.verdict.as_ref().ok().filter(|_| same)
        });
        let verdict = plan
            .rules
            .check_with_times(jws, map, times, self.now)
            .and_then(|()| beyond_the_token(plan, claims, parts))
            .and_then(|()| plan.rules.check_scopes(map))
            .and_then(|()| match same_ids {
                Some((client_id, user)) => Ok((client_id.clone(), user.clone())),
                None => plan.rules.client_id(map).map(|client_id| {
                    (Arc::<str>::from(client_id), user_of(map, &plan.settings.user_claim))
                }),
            });
        if let Err(err) = &verdict {
            tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, error = %err, "plan refused token");
            self.note(err.clone());
        }
        let passed = verdict.is_ok();
        self.last = Some(Checked { plan: index, verdict });
        passed
    }

    /// The candidate for plan `index`, which [`passes`](Self::passes) just accepted, its
    /// signature verified with `keys` (`None` otherwise).
    fn candidate(
        &mut self,
        index: usize,
        token: &str,
        claims: &VerifiedClaims,
        keys: KeysAt,
    ) -> Option<Candidate> {
        let (Some(Checked { verdict: Ok((client_id, user)), .. }), Some(keys)) =
            (&self.last, self.verdicts.keys(keys))
        else {
            return None;
        };
        let (keys, client_id, user) = (keys.clone(), client_id.clone(), user.clone());
        self.keep_token(token);
        Some(Candidate {
            plan: index,
            claims: Some(claims.clone()),
            origin: Origin::Fresh { keys, client_id, user },
        })
    }

    /// The token as shared text, made once, for the token cache's entry.
    fn keep_token(&mut self, token: &str) {
        if self.shared.token_cache.is_some() && self.token.is_none() {
            self.token = Some(token.into());
        }
    }

    /// After a plan passed: check at once the following plans whose key source already has a
    /// verdict in this request (no cryptography, no wait), and queue those that pass for the
    /// store, so a refusal by the store moves to the next plan without parsing the token again.
    /// The scan stops at the first plan whose keys are not checked yet, which stays lazy.
    fn queue_shared(&mut self, token: &str, jws: &Jws<'_>, claims: &VerifiedClaims, parts: &Parts) {
        while let Some(index) = self.plans.next_candidate(self.next, jws.iss.as_deref()) {
            let plan = &self.plans.served[index];
            if !self.verdicts.knows(&plan.settings.keys) {
                return;
            }
            self.next = index + 1;
            if self.skip == Some(index) {
                continue;
            }
            match self.verdicts.check(&plan.settings.keys, jws, plan.rules.algorithms, false) {
                SignatureCheck::Valid(keys) => {
                    if self.passes(index, jws, claims, parts)
                        && let Some(next) = self.candidate(index, token, claims, keys)
                    {
                        self.queue.push_back(next);
                    }
                }
                SignatureCheck::Invalid(err) => {
                    tracing::trace!(target: "tower_jwt_plan::reject", plan = %plan.id, alg = jws.alg_name(), error = %err, "plan refused token");
                    self.note(err);
                }
                // Not reached: a source with a verdict never waits.
                SignatureCheck::Wait(_) => return,
            }
        }
    }

    /// A repeat token: skip verification if the cached result still holds (same plan set, same
    /// key set, times still valid). The subscription is looked up as always.
    fn cached_step(
        &mut self,
        token: &[u8],
        parts: &Parts,
    ) -> Option<Result<Stop<R::Future>, AuthError>> {
        let (hit, verdict) = self.shared.token_cache.as_ref()?.get(token)?;
        let plan = self.plans.served.get(hit.plan).filter(|_| hit.plans_id == self.plans.id())?;
        // A hit that fails a check is verified again in full, which gives the precise refusal.
        if !plan.settings.keys.is_current(&hit.keys)
            || plan.rules.check_time_claims(hit.times, self.now).is_err()
        {
            return None;
        }
        // Only checks beyond the token read the claims before the store is asked.
        let claims = if plan.settings.checks_beyond_the_token() {
            let claims = VerifiedClaims::of_verified_token(hit.token.clone());
            beyond_the_token(plan, &claims, parts).ok()?;
            Some(claims)
        } else {
            None
        };
        self.cached = true;
        Some(Ok(self.look_up(Candidate {
            plan: hit.plan,
            claims,
            origin: Origin::Cached(hit, verdict),
        })))
    }

    /// Ask the store about `client_id` under plan `index`: answered at once by a store that
    /// can (no query, no future), else the decision waits on the answer.
    fn look_up(&mut self, pending: Candidate) -> Stop<R::Future> {
        let (api, plan) = (&self.shared.api_id, &self.plans.served[pending.plan].id);
        if let Some(found) = self.shared.resolver.resolve_now(api, plan, pending.client_id()) {
            return Stop::Answered(pending, found);
        }
        self.wait_for_store(pending)
    }

    /// Ask the store about `pending` by a query, and wait for its answer.
    fn wait_for_store(&mut self, pending: Candidate) -> Stop<R::Future> {
        let query = SubscriptionQuery {
            api: self.shared.api_id.clone(),
            plan: self.plans.served[pending.plan].id.clone(),
            client_id: pending.client_id().clone(),
        };
        let future = self.shared.resolver.resolve(query);
        self.pending = Some(pending);
        Stop::Wait(Wait::Store(future))
    }

    /// Take the store's answer for the pending plan: the grant, or the checks go on with the
    /// next plan.
    pub(crate) fn resolved(
        &mut self,
        answer: Result<Option<Subscription>, ResolveError>,
        parts: &Parts,
    ) -> Step<R::Future> {
        let Some(pending) = self.pending.take() else {
            return Step::Refuse(AuthError::new(AuthErrorKind::ResolutionFailure));
        };
        match self.decide(pending, answer.map(|found| found.map(Found::Owned))) {
            Some(granted) => Step::Pass(granted),
            None => self.advance(parts),
        }
    }

    /// The store's answer for `pending`: a grant if the subscription serves it now; otherwise
    /// the refusal is noted and the state made ready for the next plan (`None`).
    fn decide(
        &mut self,
        pending: Candidate,
        answer: Result<Option<Found>, ResolveError>,
    ) -> Option<Granted> {
        let plan = &self.plans.served[pending.plan];
        match answer {
            Ok(Some(found))
                if found.get().serves_client(
                    &self.shared.api_id,
                    &plan.id,
                    pending.client_id(),
                    self.now,
                ) =>
            {
                let remember = match &pending.origin {
                    Origin::Fresh { keys, .. } => self.entry(&pending, keys),
                    // A refused token now granted (a new subscription): keep it with the granted.
                    Origin::Cached(hit, Verdict::Refused) => Some(hit.clone()),
                    Origin::Cached(_, Verdict::Granted) => None,
                };
                if let (Some(cache), Some(verified)) = (&self.shared.token_cache, remember) {
                    cache.insert(verified, Verdict::Granted);
                }
                let (ids, held) = (plan.ids.clone(), found.into_held());
                let (context, claims) = match (pending.claims, pending.origin) {
                    (Some(claims), Origin::Fresh { client_id, user, .. }) => {
                        let client = Client::Own { client_id, user };
                        (PlanContext::shared(ids, held, client), Some(claims))
                    }
                    (Some(claims), Origin::Cached(hit, _)) => {
                        (PlanContext::shared(ids, held, Client::Cached(hit)), Some(claims))
                    }
                    (None, Origin::Cached(hit, _)) if plan.settings.extract_claims => {
                        let (context, claims) = PlanContext::with_claims(ids, held, hit);
                        (context, Some(claims))
                    }
                    (None, Origin::Cached(hit, _)) => {
                        let claims = (!plan.claims_to_headers.is_empty())
                            .then(|| VerifiedClaims::of_verified_token(hit.token.clone()));
                        (PlanContext::shared(ids, held, Client::Cached(hit)), claims)
                    }
                    // Not reached: a fresh verification always has its claims.
                    (None, Origin::Fresh { client_id, user, .. }) => {
                        (PlanContext::shared(ids, held, Client::Own { client_id, user }), None)
                    }
                };
                return Some(Granted { plan: pending.plan, claims, context });
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
        let plan = pending.plan;
        match pending.origin {
            Origin::Cached(ref hit, _) => {
                // The cached plan does not serve this client now: try the other plans, reusing
                // the cached verification for every plan that shares its key source.
                self.bypass_cache = true;
                self.exhausted = false;
                self.next = 0;
                self.skip = Some(plan);
                let source = &self.plans.served[plan].settings.keys;
                self.verdicts.remember(source, hit.keys.clone());
                self.claims = Some(pending.into_claims());
            }
            Origin::Fresh { ref keys, .. } => {
                if self.refused.is_none() && !self.cached {
                    self.refused = self.entry(&pending, keys);
                }
            }
        }
        None
    }

    /// The token-cache entry for `pending`, verified in this request with `keys` (`None` when
    /// the cache is off). Built only for the entry kept: the granted plan, or the first refused.
    fn entry(&self, pending: &Candidate, keys: &Arc<KeySet>) -> Option<Arc<Verified>> {
        let Origin::Fresh { client_id, user, .. } = &pending.origin else {
            return None;
        };
        self.fresh_entry(pending.plan, keys.clone(), client_id.clone(), user.clone())
    }

    /// The token-cache entry for plan `index`, verified in this request with `keys`.
    fn fresh_entry(
        &self,
        plan: usize,
        keys: Arc<KeySet>,
        client_id: Arc<str>,
        user: Option<Arc<str>>,
    ) -> Option<Arc<Verified>> {
        self.shared.token_cache.as_ref()?;
        Some(Arc::new(Verified {
            plans_id: self.plans.id(),
            plan,
            keys,
            token: self.token.clone()?,
            times: self.times?,
            client_id,
            user,
        }))
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
        // `None` only when there is nothing to copy.
        if let Some(claims) = &granted.claims {
            for (claim, header) in &plan.claims_to_headers {
                let text = match claims.get(claim) {
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
        if plan.settings.extract_claims
            && let Some(claims) = granted.claims
        {
            parts.extensions.insert(claims);
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use http::Request;
    use jsonwebtoken::Algorithm;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::{InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan};

    const SECRET: [u8; 32] = [7; 32];

    /// A store that answers only by a future: the layer then queues the plans that passed.
    struct ByFuture(InMemoryResolver);

    impl SubscriptionResolver for ByFuture {
        type Future = <InMemoryResolver as SubscriptionResolver>::Future;
        fn resolve(&self, query: SubscriptionQuery) -> Self::Future {
            self.0.resolve(query)
        }
    }

    fn token(client: &str) -> String {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
        let claims = format!(r#"{{"client_id":"{client}","exp":{exp}}}"#);
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &SECRET);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Three plans that check alike, none subscribed by the token's client: what the token
    /// cache remembers of the token after one request.
    async fn remembered<R: SubscriptionResolver>(resolver: R) -> Option<(usize, Verdict)> {
        let settings =
            JwtSettings::new(KeySource::hmac_secret(SECRET)).algorithms([Algorithm::HS256]);
        let plans = ["a", "b", "c"].map(|id| Plan::jwt(id, id, settings.clone()));
        let layer = JwtPlanLayer::builder("api").plans(plans).resolver(resolver).build().unwrap();
        let inner = service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let token = token("stranger");
        let request =
            Request::builder().header(AUTHORIZATION, format!("Bearer {token}")).body(()).unwrap();
        let response = layer.layer(inner).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 403);
        let cache = layer.shared.token_cache.as_ref().unwrap();
        cache.get(token.as_bytes()).map(|(verified, verdict)| (verified.plan, verdict))
    }

    /// A granted token's next request is decided from its token-cache entry, with no signature
    /// check: what the cache is for, and what no answer shows from outside.
    #[tokio::test]
    async fn a_granted_token_is_decided_from_the_cache_next_time() {
        let settings =
            JwtSettings::new(KeySource::hmac_secret(SECRET)).algorithms([Algorithm::HS256]);
        let subscription = crate::Subscription::new(
            "sub",
            "api",
            "a",
            "app",
            "client",
            crate::SubscriptionStatus::Accepted,
        );
        let layer = JwtPlanLayer::builder("api")
            .plan(Plan::jwt("a", "a", settings))
            .resolver(InMemoryResolver::new([subscription]))
            .build()
            .unwrap();
        let token = token("client");
        let (parts, ()) = Request::builder()
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(())
            .unwrap()
            .into_parts();
        for (round, from_cache) in [("first", false), ("repeat", true)] {
            let mut check = Check::new(&layer.shared);
            assert!(matches!(check.advance(&parts), Step::Pass(_)), "{round}");
            assert_eq!(check.cached, from_cache, "{round}");
        }
    }

    #[tokio::test]
    async fn a_valid_unsubscribed_token_is_remembered_whichever_way_the_store_answers() {
        let at_once = remembered(InMemoryResolver::default()).await;
        let by_future = remembered(ByFuture(InMemoryResolver::default())).await;
        // The first plan the store refused, as a refusal: its next request skips the signature.
        assert_eq!(at_once, Some((0, Verdict::Refused)));
        assert_eq!(by_future, Some((0, Verdict::Refused)));
    }
}
