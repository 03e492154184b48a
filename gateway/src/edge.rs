//! The edge: what a client connection may hold before and between requests.
//!
//! - **Admission**: at most `max_connections` client connections are open; beyond it the accept
//!   loop stops accepting, so new connections wait in the listen backlog while the open ones
//!   keep being served. Reaching the limit, and failing to accept (out of file descriptors),
//!   are logged once per [`LOG_INTERVAL`] with a count of what was not logged, never per accept.
//! - **First bytes**: a new connection must send, within `first_bytes_timeout`, enough bytes to
//!   tell HTTP/1 from h2c (up to the 24-byte HTTP/2 preface); otherwise it is closed. The bytes
//!   read are replayed to the HTTP server chosen.
//! - **HTTP/1**: `header_read_timeout` bounds each request head, counted from the end of the
//!   previous response on a kept-alive connection (hyper's timer); a head over
//!   `max_request_head_bytes` is answered 431, exactly: a head of that size is served, one byte
//!   more is refused, however the bytes arrive.
//! - **HTTP/2**: PINGs every `http2_keep_alive_interval`, closed when one is not answered within
//!   `http2_keep_alive_timeout`; closed gracefully (GOAWAY) after `http2_idle_timeout` with no
//!   request in flight; `max_request_head_bytes` is the `SETTINGS_MAX_HEADER_LIST_SIZE`.
//!
//! Imports [`crate::limits`] only; the service it serves is given by [`crate::serve`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower_jwt_plan::BoxError;

use crate::limits::Limits;

/// How often, at most, the same connection-level condition is logged.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The HTTP/2 connection preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A condition logged at most once per [`LOG_INTERVAL`].
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    /// `Some(times not logged since the last line)` when a line is due now.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < LOG_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The accept loop's admission: one permit per open client connection.
pub(crate) struct Admission {
    permits: Arc<Semaphore>,
    max: usize,
    full: Throttled,
    accept_failed: Throttled,
}

impl Admission {
    pub(crate) fn new(max_connections: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
            full: Throttled::default(),
            accept_failed: Throttled::default(),
        }
    }

    /// A permit for the next connection, waiting (and logging, throttled) while the limit is
    /// reached. The connection holds it until it closes.
    pub(crate) async fn admit(&mut self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return permit;
        }
        if let Some(suppressed) = self.full.due() {
            tracing::warn!(
                max_connections = self.max,
                times_not_logged = suppressed,
                "connection limit reached; new connections wait in the listen backlog"
            );
        }
        match self.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Log a failed `accept` (typically: out of file descriptors), throttled.
    pub(crate) fn accept_failed(&mut self, err: &io::Error) {
        if let Some(suppressed) = self.accept_failed.due() {
            tracing::warn!(error = %err, times_not_logged = suppressed, "accept failed");
        }
    }
}

/// A stream whose first bytes, already read, are replayed before the rest.
struct Replayed<T> {
    head: Vec<u8>,
    read: usize,
    stream: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Replayed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(left) = this.head.get(this.read..).filter(|left| !left.is_empty()) {
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Replayed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Read until the bytes tell HTTP/1 from h2c: `Some(true)` for h2c, `None` when the peer
/// closed first.
async fn detect<T: AsyncRead + Unpin>(
    stream: &mut T,
    head: &mut Vec<u8>,
) -> io::Result<Option<bool>> {
    let mut buf = [0u8; 24];
    loop {
        let want = H2_PREFACE.len() - head.len();
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if !H2_PREFACE.starts_with(head) {
            return Ok(Some(false));
        }
        if head.len() == H2_PREFACE.len() {
            return Ok(Some(true));
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

impl Activity {
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.since.lock().unwrap_or_else(PoisonError::into_inner).elapsed())
    }
}

/// Ends one request's activity when its future completes or is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The gateway's service, counting its requests in flight.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<B>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(&self.activity);
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await;
            drop(guard);
            response
        })
    }
}

/// Serve one client connection under `limits` until it ends, it idles out, or `stop` turns
/// true (then it is shut down gracefully). `permit` is released when it closes.
pub(crate) async fn serve_connection<T, S, B>(
    mut stream: T,
    peer: SocketAddr,
    limits: Limits,
    service: S,
    mut stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _permit = permit;
    let mut head = Vec::with_capacity(H2_PREFACE.len());
    let detected = tokio::select! {
        detected = tokio::time::timeout(limits.first_bytes_timeout, detect(&mut stream, &mut head)) => detected,
        _ = stop.wait_for(|stop| *stop) => return,
    };
    let h2 = match detected {
        Ok(Ok(Some(h2))) => h2,
        Ok(Ok(None)) => return,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "connection failed before a request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no request bytes within first_bytes_timeout; closing");
            return;
        }
    };
    let io = TokioIo::new(Replayed { head, read: 0, stream });
    if h2 {
        // Requests in flight matter only to HTTP/2's idle timeout; HTTP/1 connections are
        // bounded by hyper's header read timer and skip the per-request bookkeeping.
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        });
        let service = Tracked { inner: service, activity: activity.clone() };
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.http2_keep_alive_interval)
            .keep_alive_timeout(limits.http2_keep_alive_timeout)
            .max_header_list_size(u32::try_from(limits.max_request_head_bytes).unwrap_or(u32::MAX));
        let connection = builder.serve_connection(io, service);
        let idle = Some((activity, limits.http2_idle_timeout));
        drive(connection, http2::Connection::graceful_shutdown, peer, stop, idle, limits).await;
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(limits.max_request_head_bytes)
            .max_buf_size(limits.max_request_head_bytes);
        let connection = builder.serve_connection(io, service);
        drive(connection, http1::Connection::graceful_shutdown, peer, stop, None, limits).await;
    }
}

/// Poll `connection` to its end; on `stop`, or after `idle` with no request in flight, shut it
/// down gracefully and give it a bounded time to finish.
async fn drive<C>(
    connection: C,
    graceful_shutdown: fn(Pin<&mut C>),
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    idle: Option<(Arc<Activity>, Duration)>,
    limits: Limits,
) where
    C: Future<Output = hyper::Result<()>>,
{
    let connection = std::pin::pin!(connection);
    let mut connection = connection;
    let stopping = loop {
        let wait = idle.as_ref().map_or(Duration::MAX, |(activity, timeout)| {
            activity.idle_for().map_or(*timeout, |idle_for| timeout.saturating_sub(idle_for))
        });
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop) => break true,
            () = tokio::time::sleep(wait.max(Duration::from_millis(50))), if wait != Duration::MAX => {
                if let Some((activity, timeout)) = &idle
                    && activity.idle_for().is_some_and(|idle_for| idle_for >= *timeout)
                {
                    tracing::debug!(%peer, "HTTP/2 connection idle; closing");
                    break false;
                }
            }
        }
    };
    graceful_shutdown(connection.as_mut());
    if stopping {
        // The accept loop bounds the whole drain by its grace period.
        if let Err(err) = connection.await {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
    } else if tokio::time::timeout(limits.http2_keep_alive_timeout, connection).await.is_err() {
        tracing::debug!(%peer, "idle HTTP/2 connection did not close in time; dropped");
    }
}
