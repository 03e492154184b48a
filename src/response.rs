//! How a refusal goes on the wire: the mapping from [`AuthErrorKind`] to HTTP status,
//! RFC 6750 challenge, `Retry-After` and gRPC code, the JSON (or plain-text) body, and the
//! [`ResponseBody`] that carries either the inner service's body or ours. The response table
//! itself is documented once, on [`default_rejection`].
//!
//! Nothing here ever includes the token or key material: the texts are fixed per reason.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::{AuthError, AuthErrorKind};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "5";

struct Row {
    status: StatusCode,
    grpc: &'static str,
    message: &'static str,
}

fn row(kind: AuthErrorKind) -> Row {
    use AuthErrorKind::*;
    let (status, grpc, message) = match kind {
        MissingToken => {
            (StatusCode::UNAUTHORIZED, "16", "Unauthorized: a bearer token is required")
        }
        InvalidToken => (StatusCode::UNAUTHORIZED, "16", "Unauthorized: invalid token"),
        InsufficientScope => (StatusCode::FORBIDDEN, "7", "Forbidden: insufficient scope"),
        PlanUnresolvable => {
            (StatusCode::FORBIDDEN, "7", "Forbidden: no usable subscription to a plan of this API")
        }
        JwksUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "14",
            "Temporarily Unavailable: signing keys cannot be obtained",
        ),
        ResolutionFailure => (StatusCode::SERVICE_UNAVAILABLE, "14", "Temporarily Unavailable"),
        RevocationUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "14",
            "Temporarily Unavailable: the revocation list cannot be obtained",
        ),
        RateLimitExceeded => (
            StatusCode::TOO_MANY_REQUESTS,
            "8",
            "Too Many Requests: the plan's rate limit is reached",
        ),
        QuotaExceeded => {
            (StatusCode::TOO_MANY_REQUESTS, "8", "Too Many Requests: the plan's quota is reached")
        }
        SpikeArrestExceeded => (
            StatusCode::TOO_MANY_REQUESTS,
            "8",
            "Too Many Requests: the plan's spike arrest allows no request this soon",
        ),
    };
    Row { status, grpc, message }
}

/// The HTTP status for an error.
pub fn status_of(error: &AuthError) -> StatusCode {
    row(error.kind()).status
}

/// The gRPC status code for an error (16, 7, 14 or 8).
pub fn grpc_code_of(error: &AuthError) -> u8 {
    row(error.kind()).grpc.parse().unwrap_or(2)
}

fn challenge(error: &AuthError) -> Option<HeaderValue> {
    match error.kind() {
        AuthErrorKind::MissingToken => Some(HeaderValue::from_static("Bearer")),
        AuthErrorKind::InvalidToken => {
            let description = error.reason().map_or("invalid token", |r| r.description());
            // Descriptions are fixed ASCII strings, so this cannot fail; fall back regardless.
            let value =
                format!(r#"Bearer error="invalid_token", error_description="{description}""#);
            Some(
                HeaderValue::from_str(&value)
                    .unwrap_or(HeaderValue::from_static(r#"Bearer error="invalid_token""#)),
            )
        }
        AuthErrorKind::InsufficientScope => {
            Some(HeaderValue::from_static(r#"Bearer error="insufficient_scope""#))
        }
        _ => None,
    }
}

fn message(error: &AuthError) -> String {
    let base = row(error.kind()).message;
    match error.reason() {
        Some(reason) => format!("{base}: {reason}"),
        None => base.to_owned(),
    }
}

/// RFC 9728 §5.1: add `resource_metadata="<url>"` to the `Bearer` challenge of a 401 (adding
/// a bare `Bearer` challenge if the renderer set none). Other statuses are left alone.
pub(crate) fn point_to_metadata(response: &mut Response<Bytes>, url: &str) {
    if response.status() != StatusCode::UNAUTHORIZED {
        return;
    }
    let param = format!(r#"resource_metadata="{url}""#);
    let value = match response.headers().get(WWW_AUTHENTICATE).map(HeaderValue::to_str) {
        None => format!("Bearer {param}"),
        Some(Ok("Bearer")) => format!("Bearer {param}"),
        Some(Ok(challenge)) if challenge.starts_with("Bearer ") => format!("{challenge}, {param}"),
        // Another scheme from a custom renderer: not ours to extend.
        Some(_) => return,
    };
    // The URL was checked at build to be usable in a header.
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
}

/// Whether the request is gRPC (`content-type: application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn accepts_json(headers: &HeaderMap) -> bool {
    let mut any = false;
    for value in headers.get_all(ACCEPT) {
        any = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if media == "*/*"
                || media == "application/*"
                || media == "application/json"
                || media.ends_with("+json")
            {
                return true;
            }
        }
    }
    !any
}

/// Render a refusal the default way. This is the crate's response table; every other document
/// links here.
///
/// # Response table
///
/// | case | `error` code | HTTP | `WWW-Authenticate` | gRPC |
/// |---|---|---|---|---|
/// | no bearer token (no `Authorization`, or another scheme) | `JWT_MISSING_TOKEN` | 401 | `Bearer` | 16 UNAUTHENTICATED |
/// | invalid token (malformed, signature, alg, claims, unknown key) | `JWT_INVALID_TOKEN` | 401 | `Bearer error="invalid_token", error_description="..."` | 16 UNAUTHENTICATED |
/// | required scope missing | `JWT_INSUFFICIENT_SCOPE` | 403 | `Bearer error="insufficient_scope"` | 7 PERMISSION_DENIED |
/// | valid token, no usable subscription to a servable plan | `GATEWAY_PLAN_UNRESOLVABLE` | 403 | none | 7 PERMISSION_DENIED |
/// | keys cannot be obtained (no cached keys, IdP unreachable) | `JWKS_UNAVAILABLE` | 503, `Retry-After: 5` | none | 14 UNAVAILABLE |
/// | subscription store failed or timed out | `GATEWAY_PLAN_RESOLUTION_FAILURE` | 503, `Retry-After: 5` | none | 14 UNAVAILABLE |
/// | the plan checks revocation and no list has been loaded yet | `JWT_REVOCATION_UNAVAILABLE` | 503, `Retry-After: 5` | none | 14 UNAVAILABLE |
/// | a plan restriction exhausted (set by [`PlanLimitLayer`](crate::limit::PlanLimitLayer)) | `RATE_LIMIT_TOO_MANY_REQUESTS`, `QUOTA_TOO_MANY_REQUESTS`, `SPIKE_ARREST_TOO_MANY_REQUESTS` | 429, `Retry-After` | none | 8 RESOURCE_EXHAUSTED |
///
/// A revoked token, and a certificate-bound token whose binding fails, is an invalid token
/// (401 `JWT_INVALID_TOKEN`, with its own [`InvalidReason`](crate::InvalidReason)). With
/// [`JwtPlanLayerBuilder::resource_metadata`](crate::JwtPlanLayerBuilder::resource_metadata),
/// every 401 challenge also carries `resource_metadata="<URL>"` (RFC 9728), after the others.
///
/// The body is `{"error": CODE, "message": "...", "http_status_code": N}`, or plain text when
/// the client's `Accept` excludes JSON. gRPC requests (`content-type: application/grpc*`) get
/// a trailers-only answer: HTTP 200 with `grpc-status` and a percent-encoded `grpc-message`.
/// Messages and descriptions are fixed per reason: never the token, a claim value or key
/// material.
///
/// Custom renderers can call this and adjust the result.
///
/// ```
/// use http::Request;
/// use tower_jwt_plan::{AuthError, default_rejection};
/// # fn render(err: &AuthError) {
/// let req = Request::builder().header("accept", "application/json").body(()).unwrap();
/// let (parts, _) = req.into_parts();
/// let response = default_rejection(err, &parts);
/// assert!(response.status().is_client_error() || response.status().is_server_error());
/// # }
/// ```
pub fn default_rejection(error: &AuthError, request: &Parts) -> Response<Bytes> {
    let row = row(error.kind());
    let mut response = Response::new(Bytes::new());
    if !is_grpc(&request.headers) {
        *response.status_mut() = row.status;
    }
    let headers = response.headers_mut();
    if let Some(challenge) = challenge(error) {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    if row.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    let message = message(error);
    if is_grpc(&request.headers) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(row.grpc));
        let encoded =
            percent_encoding::utf8_percent_encode(&message, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            headers.insert("grpc-message", value);
        }
        return response;
    }
    if accepts_json(&request.headers) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = serde_json::json!({
            "error": error.code(),
            "message": message,
            "http_status_code": row.status.as_u16(),
        });
        let body = Bytes::from(body.to_string());
        *response.body_mut() = body;
    } else {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        *response.body_mut() = Bytes::from(format!("{}: {message}\n", error.code()));
    }
    response
}

/// Replaces how refusals are rendered (as Gravitee's response templates do).
///
/// Implemented for closures. The layer still adds the [`AuthError`] to the response
/// extensions after your renderer runs.
///
/// ```
/// use bytes::Bytes;
/// use http::{request::Parts, Response};
/// use tower_jwt_plan::{AuthError, RenderRejection, default_rejection};
///
/// let teapot = |err: &AuthError, req: &Parts| -> Response<Bytes> {
///     let mut res = default_rejection(err, req);
///     res.headers_mut().insert("x-gateway", "tower-jwt-plan".parse().unwrap());
///     res
/// };
/// # fn is_renderer<R: RenderRejection>(_: R) {}
/// # is_renderer(teapot);
/// ```
pub trait RenderRejection: Send + Sync + 'static {
    /// Build the response for a refused request.
    fn render(&self, error: &AuthError, request: &Parts) -> Response<Bytes>;
}

impl<F> RenderRejection for F
where
    F: Fn(&AuthError, &Parts) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError, request: &Parts) -> Response<Bytes> {
        self(error, request)
    }
}

/// The default renderer: [`default_rejection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl RenderRejection for DefaultRejection {
    fn render(&self, error: &AuthError, request: &Parts) -> Response<Bytes> {
        default_rejection(error, request)
    }
}

pin_project! {
    /// The response body of a [`JwtPlan`](crate::JwtPlan) service: the inner service's body, or
    /// the layer's own refusal.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Passed { #[pin] body: B },
        Refused { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn passed(body: B) -> Self {
        Self { inner: Inner::Passed { body } }
    }

    pub(crate) fn refused(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self { inner: Inner::Refused { data } }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Passed { body } => body.poll_frame(cx),
            InnerProj::Refused { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Passed { body } => body.is_end_stream(),
            Inner::Refused { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Passed { body } => body.size_hint(),
            Inner::Refused { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Passed { .. } => f.write_str("ResponseBody::Passed"),
            Inner::Refused { .. } => f.write_str("ResponseBody::Refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidReason;
    use http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder();
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn table_rows() {
        let cases = [
            (AuthError::new(AuthErrorKind::MissingToken), 401, Some("Bearer"), "16"),
            (
                AuthError::invalid(InvalidReason::Expired),
                401,
                Some(r#"Bearer error="invalid_token", error_description="token expired""#),
                "16",
            ),
            (
                AuthError::new(AuthErrorKind::InsufficientScope),
                403,
                Some(r#"Bearer error="insufficient_scope""#),
                "7",
            ),
            (AuthError::new(AuthErrorKind::PlanUnresolvable), 403, None, "7"),
            (AuthError::new(AuthErrorKind::JwksUnavailable), 503, None, "14"),
            (AuthError::new(AuthErrorKind::ResolutionFailure), 503, None, "14"),
        ];
        for (err, status, challenge, grpc) in cases {
            let res = default_rejection(&err, &parts(&[]));
            assert_eq!(res.status(), status, "{err}");
            assert_eq!(res.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap()), challenge);
            assert_eq!(res.headers().contains_key(RETRY_AFTER), status == 503);
            let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
            assert_eq!(body["error"], err.code());
            assert_eq!(body["http_status_code"], status);
            let res = default_rejection(&err, &parts(&[("content-type", "application/grpc")]));
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["grpc-status"], grpc);
            assert!(res.body().is_empty());
        }
    }

    #[test]
    fn plain_text_when_json_not_accepted() {
        let err = AuthError::new(AuthErrorKind::MissingToken);
        let res = default_rejection(&err, &parts(&[("accept", "text/html")]));
        assert!(res.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
        assert!(std::str::from_utf8(res.body()).unwrap().starts_with("JWT_MISSING_TOKEN"));
        let res =
            default_rejection(&err, &parts(&[("accept", "text/html, application/json;q=0.9")]));
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    }
}
