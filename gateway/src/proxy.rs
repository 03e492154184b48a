//! The proxy: the service inside each API's `JwtPlanLayer`, which forwards a request to the
//! API's backend (through its pool, `crate::pool`) and answers 502/504 itself when the backend
//! fails.
//!
//! Also the answers the gateway makes itself (`gateway_error`) and the hop-by-hop header
//! rules, shared with [`crate::routing`]. Imports `body`, `headers`, `pool` and
//! [`crate::tls`] (the https connector, the listener's TLS marker).

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_TYPE, EXPECT, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tower::Service;
use tower_jwt_plan::{BoxError, PlanContext};

use crate::body::WatchedBody;
use crate::headers::{Hop, set_forwarded};
pub(crate) use crate::pool::{Backend, HttpClient};
use crate::pool::{Pool, PoolSettings};
use crate::tls::ListenerTls;

/// Response body of everything the gateway answers.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The backends' connections, with verified TLS for https backends (the system's roots, plus
/// the certificates of `extra_ca_file`).
pub(crate) fn http_client_with(extra_ca_file: Option<&Path>) -> Result<HttpClient, String> {
    let connector = crate::tls::backend_connector(extra_ca_file)?;
    Ok(HttpClient::new(connector, PoolSettings::default()))
}

/// The client's connection, for `Forwarded`, `X-Forwarded-For` and `X-Real-IP`.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddr(pub(crate) Arc<Hop>);

/// The tracing target of the access log (one line per request, at INFO), written by
/// [`crate::routing`].
pub(crate) const ACCESS_LOG: &str = "gateway::access";

/// Whether the access log is on (`RUST_LOG`): when it is off, the request path skips what
/// only the log reads.
pub(crate) fn access_log_enabled() -> bool {
    tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO)
}

/// The error code of an answer the gateway itself made, for the access log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GatewayCode(pub(crate) &'static str);

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Drop hop-by-hop headers (RFC 9110 §7.6.1), including those listed in `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const FIXED: [HeaderName; 6] =
        [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, KEEP_ALIVE];
    let is_proxy = |name: &HeaderName| name.as_str().starts_with("proxy-");
    // Runs twice per proxied request, and most messages carry none of these: one pass over the
    // names is cheaper than a removal per name. A name listed in `Connection` can only be
    // there when `Connection` is.
    if !headers.keys().any(|name| FIXED.contains(name) || is_proxy(name)) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in FIXED {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers.keys().filter(|name| is_proxy(name)).cloned().collect();
    for name in proxy {
        headers.remove(name);
    }
}

fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A JSON error answered by the gateway itself, in the crate's format.
pub(crate) fn gateway_error(
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response<Body> {
    let body = json!({
        "error": code,
        "message": message,
        "http_status_code": status.as_u16(),
    });
    let mut response = Response::new(full_body(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.extensions_mut().insert(GatewayCode(code));
    response
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Forwards to one API's backend.
///
/// Cloned for every request (by `oneshot` and by `call`), so everything lives behind one
/// `Arc`: a clone of the client alone is several reference counts plus the connector's.
#[derive(Clone)]
pub(crate) struct Proxy {
    target: Arc<Target>,
}

struct Target {
    prefix_len: usize,
    backend: Backend,
    timeout: Duration,
    pool: Arc<Pool>,
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let target = self.target.clone();
        Box::pin(async move {
            // The layer put the context in the request; hand it to the access log through the
            // response, whatever the backend answers (when the log is on: an extension costs
            // an allocation and a map).
            let context = access_log_enabled()
                .then(|| req.extensions().get::<PlanContext>().cloned())
                .flatten();
            let mut response = target.forward(req).await;
            if let Some(context) = context {
                response.extensions_mut().insert(context);
            }
            Ok(response)
        })
    }
}

impl Proxy {
    /// A proxy to `backend` for an API whose context path is `prefix_len` bytes long.
    pub(crate) fn new(
        prefix_len: usize,
        backend: Backend,
        timeout: Duration,
        client: &HttpClient,
    ) -> Self {
        let pool = client.pool(&backend);
        Self { target: Arc::new(Target { prefix_len, backend, timeout, pool }) }
    }
}

impl Target {
    async fn forward(&self, req: Request<Incoming>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let rest = parts.uri.path().get(self.prefix_len..).unwrap_or("");
        let query = parts.uri.query();
        let mut path = String::with_capacity(
            self.backend.base_path.len() + rest.len() + query.map_or(1, |q| q.len() + 2),
        );
        path.push_str(&self.backend.base_path);
        path.push_str(rest);
        if path.is_empty() {
            path.push('/');
        }
        if let Some(query) = query {
            path.push('?');
            path.push_str(query);
        }
        // Origin form: the connection already goes to the backend.
        let uri = match Uri::builder().path_and_query(path).build() {
            Ok(uri) => uri,
            Err(err) => {
                tracing::warn!(error = %err, "cannot build the backend URI");
                return gateway_error(StatusCode::BAD_REQUEST, "BAD_PATH", "invalid path");
            }
        };

        // The routing table refused several `Host` headers: `insert` hands back the only one.
        let original_host = parts
            .headers
            .insert(HOST, self.backend.host.clone())
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        if let Some(host) = &original_host {
            parts.headers.insert(X_FORWARDED_HOST, host.clone());
        }
        let proto = if parts.extensions.get::<ListenerTls>().is_some() { "https" } else { "http" };
        parts.headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        if let Some(ClientAddr(hop)) = parts.extensions.remove::<ClientAddr>() {
            set_forwarded(&mut parts.headers, &hop, original_host.as_ref());
        } else {
            parts.headers.remove(http::header::FORWARDED);
            parts.headers.remove(crate::headers::X_REAL_IP);
        }
        // hyper's server already answered any `Expect: 100-continue`.
        parts.headers.remove(EXPECT);
        parts.uri = uri;
        parts.version = Version::HTTP_11;

        let (body, body_fault) = WatchedBody::new(body);
        let request = Request::from_parts(parts, body);
        match tokio::time::timeout(self.timeout, self.pool.send(request)).await {
            Ok(Err(_)) if body_fault.happened() => {
                tracing::debug!(backend = %self.backend.authority, "the client's request body is malformed");
                gateway_error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST_BODY",
                    "the request body could not be read",
                )
            }
            Err(_) => {
                tracing::warn!(backend = %self.backend.authority, timeout_secs = self.timeout.as_secs_f64(), "backend timed out");
                gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "BACKEND_TIMEOUT",
                    "the backend did not answer in time",
                )
            }
            Ok(Err(err)) => {
                tracing::warn!(backend = %self.backend.authority, error = %error_chain(&*err), "backend request failed");
                gateway_error(
                    StatusCode::BAD_GATEWAY,
                    "BACKEND_UNAVAILABLE",
                    "the backend could not be reached",
                )
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
            }
        }
    }
}
