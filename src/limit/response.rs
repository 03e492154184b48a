//! How a limit's verdict goes on the wire: the `X-Rate-Limit-*` and `X-Quota-*` headers on
//! every answer, and the 429 (or gRPC status 8) refusal rendered through the crate's
//! [`RenderRejection`] hook.

use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response};

use super::decision::{Decision, LimitKind, WindowReport};
use crate::{AuthError, AuthErrorKind, RenderRejection};

const RATE_LIMIT: HeaderName = HeaderName::from_static("x-rate-limit-limit");
const RATE_REMAINING: HeaderName = HeaderName::from_static("x-rate-limit-remaining");
const RATE_RESET: HeaderName = HeaderName::from_static("x-rate-limit-reset");
const QUOTA_LIMIT: HeaderName = HeaderName::from_static("x-quota-limit");
const QUOTA_REMAINING: HeaderName = HeaderName::from_static("x-quota-remaining");
const QUOTA_RESET: HeaderName = HeaderName::from_static("x-quota-reset");

impl From<LimitKind> for AuthErrorKind {
    fn from(kind: LimitKind) -> Self {
        match kind {
            LimitKind::RateLimit => AuthErrorKind::RateLimitExceeded,
            LimitKind::Quota => AuthErrorKind::QuotaExceeded,
            LimitKind::SpikeArrest => AuthErrorKind::SpikeArrestExceeded,
        }
    }
}

/// Set the headers of the fixed-window limits the plan has (spike arrest has none).
pub(crate) fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    let mut put = |names: [HeaderName; 3], report: &WindowReport| {
        let [limit, remaining, reset] = names;
        headers.insert(limit, HeaderValue::from(report.limit));
        headers.insert(remaining, HeaderValue::from(report.remaining));
        headers.insert(reset, HeaderValue::from(report.reset_ms));
    };
    if let Some(rate) = &decision.rate {
        put([RATE_LIMIT, RATE_REMAINING, RATE_RESET], rate);
    }
    if let Some(quota) = &decision.quota {
        put([QUOTA_LIMIT, QUOTA_REMAINING, QUOTA_RESET], quota);
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Render a refusal with the user's renderer, then add `Retry-After`, the limit headers and
/// the [`AuthError`] (for outer layers), whatever the renderer did.
pub(crate) fn refuse(
    render: &dyn RenderRejection,
    kind: LimitKind,
    wait: Duration,
    decision: &Decision,
    parts: &Parts,
) -> Response<Bytes> {
    let error = AuthError::new(kind.into());
    tracing::debug!(target: "tower_jwt_plan::reject", code = error.code(), "request over a plan limit");
    let mut response = render.render(&error, parts);
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
    set_headers(headers, decision);
    response.extensions_mut().insert(error);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
