//! The request body as forwarded: the client's body, streamed, with a flag that says whether
//! reading it from the client failed (a malformed chunked encoding, a body cut short).
//!
//! When forwarding fails, the flag tells a client's fault (400 `BAD_REQUEST_BODY`) from the
//! backend's (502). A leaf module: imports nothing from the gateway.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The client's body; records a read error in a flag shared with [`BodyFault`].
pub(crate) struct WatchedBody {
    inner: Incoming,
    failed: Arc<AtomicBool>,
}

/// Whether the client's body failed while it was forwarded.
#[derive(Clone)]
pub(crate) struct BodyFault(Arc<AtomicBool>);

impl BodyFault {
    pub(crate) fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl WatchedBody {
    pub(crate) fn new(inner: Incoming) -> (Self, BodyFault) {
        let failed = Arc::new(AtomicBool::new(false));
        (Self { inner, failed: failed.clone() }, BodyFault(failed))
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.failed.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
