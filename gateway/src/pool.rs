//! Connections to the backends: HTTP/1.1 on hyper's connection API, kept alive in one pool per
//! backend (scheme and authority) that every route to that backend holds. Also [`Backend`],
//! the address of a backend. Imports [`crate::body`].
//!
//! hyper-util's pooled client cost the proxy about a sixth of its instructions and two task
//! wake-ups per request: each connection ran in a task of its own, fed through a channel, and
//! another task per response watched the connection become idle. Here nothing is spawned per
//! connection or request: the request's own task drives its backend connection (the send,
//! then the response body), as an event loop such as nginx's does, and the body hands the
//! connection back to the pool the moment its last byte is read. An idle connection is driven
//! by nobody until a request takes it (or the reaper looks at it): a backend that closed it
//! meanwhile is noticed then.
//!
//! Rules, as hyper-util's client kept them:
//! - a connection is reused only after its response was read to the end; a response body
//!   dropped before that takes its connection with it (hyper closes it);
//! - a request that a reused connection could not even start to send (the backend had closed
//!   it) goes out again on another connection; a request that was sent is never repeated;
//! - idle connections close after [`PoolSettings::idle_timeout`], and at most
//!   [`PoolSettings::max_idle`] wait per backend.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http1};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;
use tower_jwt_plan::BoxError;

use crate::body::WatchedBody;

/// The connector of every backend connection: TCP, then TLS for `https://`.
type Connector = HttpsConnector<HttpConnector>;

type Sender = http1::SendRequest<WatchedBody>;
type Connection = http1::Connection<MaybeHttpsStream<TokioIo<TcpStream>>, WatchedBody>;

/// A backend URL: `http://` or `https://host[:port][/base/path]`.
#[derive(Clone)]
pub(crate) struct Backend {
    pub(crate) authority: Authority,
    /// `scheme://authority/`: what the connector dials.
    origin: Uri,
    /// The `Host` header of forwarded requests.
    pub(crate) host: HeaderValue,
    /// Prefixed to each forwarded path; empty, or `/...` without a trailing `/`.
    pub(crate) base_path: String,
}

impl Backend {
    pub(crate) fn parse(url: &str) -> Result<Self, &'static str> {
        let uri: Uri = url.parse().map_err(|_| "not a URL")?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("must be an http:// or https:// URL"),
        };
        let authority = uri.authority().ok_or("has no host")?.clone();
        if authority.as_str().contains('@') {
            return Err("must not contain user info");
        }
        if authority.host().is_empty() {
            return Err("has no host");
        }
        if uri.query().is_some() {
            return Err("must not have a query string");
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "invalid host")?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let origin = Uri::builder()
            .scheme(if https { Scheme::HTTPS } else { Scheme::HTTP })
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| "invalid host")?;
        Ok(Self { authority, origin, host, base_path })
    }
}

/// How long idle connections live and how many wait per backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    /// An idle connection older than this is closed (60 seconds by default).
    pub(crate) idle_timeout: Duration,
    /// Idle connections kept per backend; one more is closed after its response (256 by default).
    pub(crate) max_idle: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { idle_timeout: Duration::from_secs(60), max_idle: 256 }
    }
}

/// The backends' connections: one connector, one [`Pool`] per backend.
///
/// Clones share the pools, so a reload that keeps a backend keeps its idle connections.
#[derive(Clone)]
pub(crate) struct HttpClient {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    settings: PoolSettings,
    /// By origin (`scheme://authority/`). Weak: a backend that no route names any more lets
    /// its pool, and its connections, go.
    pools: Mutex<HashMap<Uri, Weak<Pool>>>,
}

impl HttpClient {
    pub(crate) fn new(connector: Connector, settings: PoolSettings) -> Self {
        Self { shared: Arc::new(Shared { connector, settings, pools: Mutex::default() }) }
    }

    /// The pool of `backend`'s origin, shared with every route to it.
    pub(crate) fn pool(&self, backend: &Backend) -> Arc<Pool> {
        let mut pools = self.shared.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = pools.get(&backend.origin).and_then(Weak::upgrade) {
            return pool;
        }
        pools.retain(|_, pool| pool.strong_count() > 0);
        let pool = Arc::new(Pool {
            connector: self.shared.connector.clone(),
            origin: backend.origin.clone(),
            settings: self.shared.settings,
            idle: Mutex::default(),
            reaper: Once::new(),
        });
        pools.insert(backend.origin.clone(), Arc::downgrade(&pool));
        pool
    }
}

/// The kept-alive connections to one backend.
pub(crate) struct Pool {
    connector: Connector,
    /// `scheme://authority/`, what the connector dials.
    origin: Uri,
    settings: PoolSettings,
    /// Most recently used last.
    idle: Mutex<Vec<Idle>>,
    reaper: Once,
}

struct Idle {
    link: Box<Link>,
    since: Instant,
}

impl Pool {
    /// Sends `request` (origin-form URI, `Host` set) on an idle connection, or a new one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<WatchedBody>,
    ) -> Result<Response<PooledBody>, BoxError> {
        loop {
            let (mut link, reused) = match self.take_idle() {
                Some(link) => (link, true),
                None => (self.connect().await?, false),
            };
            match link.send(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = PooledBody { inner: body, link: Some(link), pool: self.clone() };
                    return Ok(Response::from_parts(parts, body.released_if_empty()));
                }
                // The backend closed the connection before the request could start: it has
                // seen nothing, so another connection may carry it. Each retry uses up an idle
                // connection, so this ends with a new one at the latest.
                Err(Failed::Unsent(unsent, _)) if reused => request = *unsent,
                Err(Failed::Unsent(_, err)) => return Err(err.into()),
                Err(Failed::Error(err)) => return Err(err),
            }
        }
    }

    /// The most recently used idle connection that is still open and ready.
    fn take_idle(&self) -> Option<Box<Link>> {
        loop {
            let Idle { link, since } = self.lock_idle().pop()?;
            // Not driven here: `Link::send` drives it right after. A connection the backend
            // closed while it was idle then gives the request back unsent, and `send` retries.
            if since.elapsed() < self.settings.idle_timeout
                && !link.sender.is_closed()
                && link.sender.is_ready()
            {
                return Some(link);
            }
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<Box<Link>, BoxError> {
        let io = self.connector.clone().oneshot(self.origin.clone()).await?;
        let (sender, connection) = http1::Builder::new().handshake(io).await?;
        self.reaper.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self), self.settings.idle_timeout));
        });
        // Boxed once for its life: hyper's connection state is large, and a link moves from the
        // pool to a request, to its body and back, on every request.
        Ok(Box::new(Link { sender, connection: Some(connection) }))
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, link: Box<Link>) {
        let mut idle = self.lock_idle();
        if idle.len() < self.settings.max_idle {
            idle.push(Idle { link, since: Instant::now() });
        }
    }
}

/// Closes the idle connections of `pool` that are older than `idle_timeout` or that the
/// backend closed, until the pool is gone.
async fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let mut tick = tokio::time::interval(idle_timeout / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        // A no-op waker: the reaper only looks; the request that takes a connection next
        // registers its own.
        let mut cx = quiet();
        pool.lock_idle()
            .retain_mut(|idle| idle.since.elapsed() < idle_timeout && idle.link.poll_idle(&mut cx));
    }
}

/// Why a request got no response.
enum Failed {
    /// Not sent at all: the request, intact, and why.
    Unsent(Box<Request<WatchedBody>>, hyper::Error),
    Error(BoxError),
}

impl From<TrySendError<Request<WatchedBody>>> for Failed {
    fn from(mut err: TrySendError<Request<WatchedBody>>) -> Self {
        match err.take_message() {
            Some(request) => Self::Unsent(Box::new(request), err.into_error()),
            None => Self::Error(err.into_error().into()),
        }
    }
}

/// One backend connection, driven by whichever task holds it.
struct Link {
    sender: Sender,
    /// `None` once the connection has finished (closed by either side, or failed).
    connection: Option<Connection>,
}

impl Link {
    /// Drives the connection's I/O; `true` while it is open.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(connection) = &mut self.connection else { return false };
        match Pin::new(connection).poll(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "backend connection closed");
                }
                self.connection = None;
                false
            }
        }
    }

    /// Drives an idle connection: `true` when it is open and ready for a request.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && self.sender.is_ready()
    }

    /// Sends `request` and drives the connection until the response's head has arrived.
    async fn send(&mut self, request: Request<WatchedBody>) -> Result<Response<Incoming>, Failed> {
        // hyper's future owns what it needs: it does not borrow the sender.
        let mut sent = pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            let open = self.drive(cx);
            // The answer can only come from driving the connection, which this task does:
            // polled with the task's waker, hyper's hand-over would wake this very task once
            // more for nothing.
            match sent.as_mut().poll(&mut quiet()) {
                Poll::Ready(result) => Poll::Ready(result.map_err(Failed::from)),
                Poll::Pending if open => Poll::Pending,
                // A finished connection fails the requests it did not answer before `drive`
                // returns; should hyper ever not, this must not hang.
                Poll::Pending => Poll::Ready(Err(Failed::Error(
                    "the backend connection closed without an answer".into(),
                ))),
            }
        })
        .await
    }
}

/// A context whose waker does nothing, for futures that only what this task drives can
/// complete.
fn quiet() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// A backend's response body. It drives its connection, which goes back to the pool when the
/// body has been read to the end.
pub(crate) struct PooledBody {
    inner: Incoming,
    link: Option<Box<Link>>,
    pool: Arc<Pool>,
}

impl PooledBody {
    /// A body with nothing to read gives its connection back at once.
    fn released_if_empty(mut self) -> Self {
        if self.inner.is_end_stream() {
            self.release();
        }
        self
    }

    /// Gives the connection back, once it has taken in the end of the response.
    fn release(&mut self) {
        if let Some(mut link) = self.link.take() {
            // The connection turns idle on the poll after the one that delivered the last
            // bytes. One that does not (the backend answered before it read the whole request
            // body) is closed: dropped here. A no-op waker: an idle connection wakes nobody;
            // the request that takes it next registers its own.
            if link.poll_idle(&mut quiet()) {
                self.pool.put(link);
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        // As in `Link::send`: the body's bytes only come from driving the connection here, so
        // the body is polled with a no-op waker, first to take what is buffered (and tell the
        // connection to send more), then after the drive.
        let mut polled = Pin::new(&mut this.inner).poll_frame(&mut quiet());
        if polled.is_pending() {
            match &mut this.link {
                Some(link) => {
                    link.drive(cx);
                    polled = Pin::new(&mut this.inner).poll_frame(&mut quiet());
                }
                // Not driven by this body any more (cannot happen before its end): wait as
                // hyper's own client does.
                None => polled = Pin::new(&mut this.inner).poll_frame(cx),
            }
        }
        match &polled {
            // hyper's server stops polling once `is_end_stream` says so, so the last frame of a
            // sized body must release the connection, not only the final `None`.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(None) => this.release(),
            // An error leaves the connection unusable: it closes with the link.
            Poll::Ready(Some(Err(_))) => this.link = None,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A backend that answers one request on its first connection, then reports when the
    /// gateway side closes that connection.
    async fn one_shot_backend() -> (Backend, tokio::sync::oneshot::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let backend = Backend::parse(&format!("http://{}", listener.local_addr().expect("addr")))
            .expect("backend URL");
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).await.expect("request head");
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .expect("answer");
            // Kept alive on this side: only the pool can end the connection.
            let mut rest = [0u8; 64];
            while stream.read(&mut rest).await.is_ok_and(|read| read > 0) {}
            let _ = closed_tx.send(());
        });
        (backend, closed_rx)
    }

    /// Sends one request through `pool` (the body must come from hyper's server) and reads it.
    async fn through(pool: Arc<Pool>) -> Bytes {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let service = service_fn(move |req: Request<Incoming>| {
                let pool = pool.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    parts.headers.insert(http::header::HOST, HeaderValue::from_static("backend"));
                    let (body, _) = WatchedBody::new(body);
                    let response = pool.send(Request::from_parts(parts, body)).await.expect("sent");
                    Ok::<_, Infallible>(response)
                }
            });
            let server = hyper::server::conn::http1::Builder::new();
            let _ = server.serve_connection(TokioIo::new(stream), service).await;
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) =
            http1::handshake::<_, http_body_util::Empty<Bytes>>(TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(connection);
        let response = sender
            .send_request(Request::get("/").body(http_body_util::Empty::new()).expect("request"))
            .await
            .expect("response");
        response.into_body().collect().await.expect("body").to_bytes()
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let (backend, closed) = one_shot_backend().await;
        let connector = crate::tls::backend_connector(None).expect("connector");
        let settings = PoolSettings { idle_timeout: Duration::from_millis(200), max_idle: 8 };
        let pool = HttpClient::new(connector, settings).pool(&backend);
        assert_eq!(&through(pool.clone()).await[..], b"ok");
        assert_eq!(pool.lock_idle().len(), 1, "the answered connection waits in the pool");

        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("the reaper closes the idle connection")
            .expect("the backend saw the close");
        assert_eq!(pool.lock_idle().len(), 0);
    }

    #[tokio::test]
    async fn routes_to_one_backend_share_its_pool() {
        let connector = crate::tls::backend_connector(None).expect("connector");
        let client = HttpClient::new(connector, PoolSettings::default());
        let a = Backend::parse("http://127.0.0.1:9/a").expect("url");
        let b = Backend::parse("http://127.0.0.1:9/b").expect("url");
        let tls = Backend::parse("https://127.0.0.1:9/").expect("url");
        assert!(Arc::ptr_eq(&client.pool(&a), &client.pool(&b)));
        assert!(!Arc::ptr_eq(&client.pool(&a), &client.pool(&tls)));
    }
}
