//! [`ResponseFuture`]: `Deciding` (waiting on Redis, which always ends in a verdict) →
//! `Calling` (the inner service, limit headers added to its answer) or `Refused` (ready).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::decision::Decision;
use super::layer::Shared;
use super::store::DecisionFuture;
use crate::ResponseBody;

pin_project! {
    /// The response future of [`PlanLimit`](super::PlanLimit).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, S::Future, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B> {
        Deciding {
            decision: DecisionFuture,
            inner: Option<S>,
            request: Option<Request<B>>,
            shared: Arc<Shared>,
        },
        Calling { #[pin] future: F, decision: Option<Decision> },
        Refused { response: Option<Response<Bytes>> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn calling(future: S::Future, decision: Option<Decision>) -> Self {
        Self { state: State::Calling { future, decision } }
    }

    pub(crate) fn refused(response: Response<Bytes>) -> Self {
        Self { state: State::Refused { response: Some(response) } }
    }

    pub(crate) fn deciding(
        decision: DecisionFuture,
        inner: S,
        request: Request<B>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            state: State::Deciding { decision, inner: Some(inner), request: Some(request), shared },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Deciding { decision, inner, request, shared } => {
                    let decision = ready!(decision.as_mut().poll(cx));
                    let request = request.take().expect("ResponseFuture polled after completion");
                    match decision.refused {
                        None => {
                            let mut service = inner.take().expect("taken once");
                            let future = service.call(request);
                            state.set(State::Calling { future, decision: Some(decision) });
                        }
                        Some((kind, wait)) => {
                            let (parts, _) = request.into_parts();
                            let response = super::response::refuse(
                                &*shared.render,
                                kind,
                                wait,
                                &decision,
                                &parts,
                            );
                            state.set(State::Refused { response: Some(response) });
                        }
                    }
                }
                StateProj::Calling { future, decision } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(decision) = decision.take() {
                        super::response::set_headers(response.headers_mut(), &decision);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::passed)));
                }
                StateProj::Refused { response } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::refused)));
                }
            }
        }
    }
}
