//! [`ResponseFuture`]: a hand-written state machine with three states.
//!
//! - `Refused`: the answer is ready; no allocation beyond the response itself.
//! - `Checking`: waiting on the subscription store (its own future type, never boxed) or, on a
//!   cold path, on a key fetch (boxed). Steps between waits run synchronously in `Check`.
//! - `Calling`: the inner service's future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::jwks::KeyWait;
use crate::response::ResponseBody;
use crate::service::{Check, Step};
use crate::subscription::SubscriptionResolver;

pin_project! {
    /// The response future of [`JwtPlan`](crate::JwtPlan).
    pub struct ResponseFuture<S, R, B>
    where
        S: Service<Request<B>>,
        R: SubscriptionResolver,
    {
        #[pin]
        state: State<S, S::Future, R, R::Future, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, R, RF, B> {
        Refused { response: Option<Response<Bytes>> },
        Checking {
            check: Check<R>,
            #[pin]
            resolving: Option<RF>,
            #[pin]
            deadline: Option<tokio::time::Sleep>,
            waiting: Option<KeyWait>,
            inner: Option<S>,
            request: Option<(Parts, B)>,
        },
        Calling { #[pin] future: F },
    }
}

impl<S, R, B> ResponseFuture<S, R, B>
where
    S: Service<Request<B>>,
    R: SubscriptionResolver,
{
    pub(crate) fn refused(response: Response<Bytes>) -> Self {
        Self { state: State::Refused { response: Some(response) } }
    }

    pub(crate) fn checking(
        check: Check<R>,
        step: Step<R::Future>,
        inner: S,
        parts: Parts,
        body: B,
    ) -> Self {
        let (resolving, waiting) = match step {
            Step::Resolve(future) => (Some(future), None),
            Step::WaitKeys(wait) => (None, Some(wait)),
            // `call` only hands over the two waiting steps; a verdict is answered at once.
            Step::Refuse(_) | Step::Pass => (None, None),
        };
        Self {
            state: State::Checking {
                check,
                resolving,
                deadline: None,
                waiting,
                inner: Some(inner),
                request: Some((parts, body)),
            },
        }
    }
}

impl<S, R, B, ResBody> Future for ResponseFuture<S, R, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    R: SubscriptionResolver,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Refused { response } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::refused)));
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::passed)));
                }
                StateProj::Checking {
                    check,
                    mut resolving,
                    mut deadline,
                    waiting,
                    inner,
                    request,
                } => {
                    let (parts, _) =
                        request.as_mut().expect("ResponseFuture polled after completion");
                    let step = if let Some(wait) = waiting.as_mut() {
                        ready!(wait.as_mut().poll(cx));
                        *waiting = None;
                        check.advance(parts)
                    } else if let Some(future) = resolving.as_mut().as_pin_mut() {
                        match future.poll(cx) {
                            Poll::Ready(answer) => {
                                resolving.set(None);
                                deadline.set(None);
                                check.resolved(answer, parts)
                            }
                            Poll::Pending => {
                                // The timer is only armed for a store that actually waits.
                                if deadline.is_none() {
                                    deadline
                                        .set(Some(tokio::time::sleep(check.resolver_timeout())));
                                }
                                let sleep = deadline.as_mut().as_pin_mut().expect("armed above");
                                ready!(sleep.poll(cx));
                                resolving.set(None);
                                deadline.set(None);
                                check.resolver_timed_out(parts)
                            }
                        }
                    } else {
                        unreachable!("Checking state without a wait: a bug in tower-jwt-plan")
                    };
                    match step {
                        Step::Resolve(future) => resolving.set(Some(future)),
                        Step::WaitKeys(wait) => *waiting = Some(wait),
                        Step::Refuse(err) => {
                            let response = check.refuse(err, parts);
                            state.set(State::Refused { response: Some(response) });
                        }
                        Step::Pass => {
                            let (mut parts, body) = request.take().expect("taken once");
                            check.grant(&mut parts);
                            let mut service = inner.take().expect("taken once");
                            let future = service.call(Request::from_parts(parts, body));
                            state.set(State::Calling { future });
                        }
                    }
                }
            }
        }
    }
}
