//! [`PlanLimit`], the service the layer wraps around yours.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use super::store::Decided;
use crate::ResponseBody;

/// The service produced by [`PlanLimitLayer`](super::PlanLimitLayer).
pub struct PlanLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> PlanLimit<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
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

impl<S: Clone> Clone for PlanLimit<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), shared: self.shared.clone() }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for PlanLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanLimit").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PlanLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(ask) = self.shared.ask(&req) else {
            return ResponseFuture::calling(self.inner.call(req), None);
        };
        match self.shared.decide(ask) {
            Decided::Now(decision) => match decision.refused {
                None => ResponseFuture::calling(self.inner.call(req), Some(decision)),
                Some((kind, wait)) => {
                    let (parts, _) = req.into_parts();
                    let response = super::response::refuse(
                        &*self.shared.render,
                        kind,
                        wait,
                        &decision,
                        &parts,
                    );
                    ResponseFuture::refused(response)
                }
            },
            Decided::Later(future) => {
                // The ready service goes into the future; the clone left behind starts unready.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::deciding(future, inner, req, self.shared.clone())
            }
        }
    }
}
