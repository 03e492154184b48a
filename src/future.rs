//! [`ResponseFuture`]: a hand-written state machine with three states.
//!
//! - `Refused`: the answer is ready; no allocation beyond the response itself.
//! - `Checking`: waiting on what the [`Check`] asked for: the subscription store (its own
//!   future type, under a deadline) or, on a cold path, a key fetch. The check itself decides
//!   what comes next; this module only polls. The state is boxed (one allocation per request
//!   that waits), so that the future of a request decided at once stays small.
//! - `Calling`: the inner service's future; where a request starts when the check decided
//!   it inside `call` (a token-cache hit and a store that answers at once).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::check::{Check, Step, Wait};
use crate::jwks::KeyWait;
use crate::response::ResponseBody;
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
    enum State<S, F, R, RF, B>
    where
        R: SubscriptionResolver,
    {
        Refused { response: Option<Response<Bytes>> },
        // Boxed: it is large (the check, the request's head, a deadline), and a request
        // decided in `call` (a token-cache hit, a store that answers at once) never builds it,
        // so the future every request carries stays small.
        Checking { checking: Pin<Box<Checking<S, R, RF, B>>> },
        Calling { #[pin] future: F },
    }
}

pin_project! {
    /// A check waiting on keys or on the store, with what it needs to resume.
    #[project = CheckingProj]
    struct Checking<S, R, RF, B>
    where
        R: SubscriptionResolver,
    {
        check: Check<'static, R>,
        #[pin]
        waiting: Waiting<RF>,
        inner: Option<S>,
        request: Option<(Parts, B)>,
    }
}

pin_project! {
    /// A [`Wait`] being polled.
    #[project = WaitingProj]
    enum Waiting<RF> {
        Keys { wait: KeyWait },
        Store {
            #[pin]
            future: RF,
            // Armed only once the store actually makes us wait.
            #[pin]
            deadline: Option<tokio::time::Sleep>,
        },
    }
}

impl<RF> From<Wait<RF>> for Waiting<RF> {
    fn from(wait: Wait<RF>) -> Self {
        match wait {
            Wait::Keys(wait) => Waiting::Keys { wait },
            Wait::Store(future) => Waiting::Store { future, deadline: None },
        }
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

    pub(crate) fn calling(future: S::Future) -> Self {
        Self { state: State::Calling { future } }
    }

    pub(crate) fn checking(
        check: Check<'static, R>,
        wait: Wait<R::Future>,
        inner: S,
        parts: Parts,
        body: B,
    ) -> Self {
        let checking = Checking {
            check,
            waiting: wait.into(),
            inner: Some(inner),
            request: Some((parts, body)),
        };
        Self { state: State::Checking { checking: Box::pin(checking) } }
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
                StateProj::Checking { checking } => {
                    let CheckingProj { check, mut waiting, inner, request } =
                        checking.as_mut().project();
                    let (parts, _) =
                        request.as_mut().expect("ResponseFuture polled after completion");
                    let step = match waiting.as_mut().project() {
                        WaitingProj::Keys { wait } => {
                            ready!(wait.as_mut().poll(cx));
                            check.advance(parts)
                        }
                        WaitingProj::Store { future, mut deadline } => match future.poll(cx) {
                            Poll::Ready(answer) => check.resolved(answer, parts),
                            Poll::Pending => {
                                if deadline.is_none() {
                                    deadline
                                        .set(Some(tokio::time::sleep(check.resolver_timeout())));
                                }
                                if let Some(sleep) = deadline.as_pin_mut() {
                                    ready!(sleep.poll(cx));
                                }
                                check.resolver_timed_out(parts)
                            }
                        },
                    };
                    match step {
                        Step::Wait(wait) => waiting.set(wait.into()),
                        Step::Refuse(err) => {
                            let response = check.refuse(err, parts);
                            state.set(State::Refused { response: Some(response) });
                        }
                        Step::Pass(granted) => {
                            let (mut parts, body) = request.take().expect("taken once");
                            check.grant(granted, &mut parts);
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
