//! [`JwtPlan`], the service the layer wraps around yours. It only hands the request to a
//! [`Check`](crate::check::Check), which knows the order of the checks, and wraps the outcome in
//! a [`ResponseFuture`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::check::{Check, Shared, Step};
use crate::future::ResponseFuture;
use crate::response::ResponseBody;
use crate::subscription::SubscriptionResolver;

/// The service produced by [`JwtPlanLayer`](crate::JwtPlanLayer).
pub struct JwtPlan<S, R> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S, R> JwtPlan<S, R> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<R>>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R> Clone for JwtPlan<S, R> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), shared: self.shared.clone() }
    }
}

impl<S: std::fmt::Debug, R> std::fmt::Debug for JwtPlan<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtPlan")
            .field("inner", &self.inner)
            .field("api_id", &self.shared.api_id)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for JwtPlan<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: SubscriptionResolver,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, R, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let mut check = Check::new(&self.shared);
        match check.advance(&parts) {
            Step::Pass(granted) => {
                // Decided without waiting (a token-cache hit, a store that answers at once):
                // the ready inner service is called now, so it is not cloned.
                check.grant(granted, &mut parts);
                ResponseFuture::calling(self.inner.call(Request::from_parts(parts, body)))
            }
            Step::Wait(wait) => {
                // The ready service goes into the future; the clone left behind starts unready.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(check.hold_for_wait(), wait, inner, parts, body)
            }
            Step::Refuse(err) => {
                // As on a wait, the ready service is not kept: whatever it reserved in
                // `poll_ready` is released now, not at the next request.
                let clone = self.inner.clone();
                drop(std::mem::replace(&mut self.inner, clone));
                ResponseFuture::refused(check.refuse(err, &parts))
            }
        }
    }
}
