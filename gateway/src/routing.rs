//! The routing table: longest-prefix routing of a request to its API, refusals the gateway
//! makes before any API sees the request, and the access log (one line per request).
//!
//! A `RoutingTable` is immutable: [`crate::compile`] builds one from a configuration and
//! [`crate::serve`] swaps it in whole. Routes are matched on the canonical path of
//! `path` (its rule is documented there). Imports [`crate::proxy`], `path`
//! and `headers`.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::ServiceExt;
use tower_jwt_plan::limit::PlanLimit;
use tower_jwt_plan::{AuthError, InMemoryResolver, JwtPlan, PlanContext, ResourceMetadataService};

use crate::headers::{Hop, drop_underscore_names, has_several_hosts};
use crate::path::{BadPath, check_routed, normalize, routing_view};
use crate::proxy::{
    ACCESS_LOG, Body, ClientAddr, GatewayCode, Proxy, access_log_enabled, gateway_error,
    strip_hop_by_hop,
};

/// Counts, for log lines and `--check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// APIs.
    pub apis: usize,
    /// Plans, over all APIs.
    pub plans: usize,
    /// Applications.
    pub applications: usize,
    /// Subscriptions.
    pub subscriptions: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |count: usize, word: &str| {
            let s = if count == 1 { "" } else { "s" };
            format!("{count} {word}{s}")
        };
        write!(
            f,
            "{}, {}, {}, {}",
            n(self.apis, "API"),
            n(self.plans, "plan"),
            n(self.applications, "application"),
            n(self.subscriptions, "subscription")
        )
    }
}

/// One configuration, ready to serve. Immutable: a reload builds a new one.
pub(crate) struct RoutingTable {
    /// Longest prefix first.
    pub(crate) routes: Vec<Route>,
    /// RFC 9728 documents by their exact path (`/.well-known/oauth-protected-resource/echo`),
    /// answered before routing and without a token.
    pub(crate) metadata: Vec<(String, ResourceMetadataService)>,
    /// The configuration's `listen`, to warn when a reload changes it.
    pub(crate) listen: Option<SocketAddr>,
    /// Counts of this configuration.
    pub(crate) summary: Summary,
}

/// One API: its context path and its layered proxy.
pub(crate) struct Route {
    pub(crate) api: Arc<str>,
    /// The context path without its trailing `/` (`""` for `/`).
    pub(crate) prefix: String,
    /// The API's `JwtPlanLayer` over the plans' restrictions over the proxy.
    pub(crate) service: JwtPlan<PlanLimit<Proxy>, InMemoryResolver>,
    /// The same proxy without the layer, used only by `--benchmark-without-plans`.
    pub(crate) proxy: Proxy,
}

impl RoutingTable {
    /// The route of the longest context path that is `path` or a segment-boundary prefix of it.
    fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            path.strip_prefix(route.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Put the request's path in canonical form (`path`) and refuse it when, routed,
    /// it stays ambiguous. A path no API serves is left for the 404.
    fn admit<B>(&self, req: &mut Request<B>) -> Result<(), BadPath> {
        let canonical = normalize(req.uri().path())?;
        if let Some(route) = self.route(&routing_view(&canonical)) {
            check_routed(&canonical, &route.prefix)?;
        }
        // Borrowed: the path is already canonical.
        if let Cow::Owned(canonical) = canonical
            && canonical != req.uri().path()
        {
            let mut parts = req.uri().clone().into_parts();
            let path_and_query = match req.uri().query() {
                Some(query) => format!("{canonical}?{query}"),
                None => canonical,
            };
            parts.path_and_query =
                Some(path_and_query.parse().map_err(|_| BadPath("the path cannot be normalised"))?);
            *req.uri_mut() =
                Uri::from_parts(parts).map_err(|_| BadPath("the path cannot be normalised"))?;
        }
        Ok(())
    }

    /// Answer one request: route, check, forward, log.
    /// With `unprotected` (`--benchmark-without-plans`), the layer is bypassed.
    pub(crate) async fn handle(
        &self,
        mut req: Request<Incoming>,
        hop: &Arc<Hop>,
        unprotected: bool,
    ) -> Response<Body> {
        // For the access log, when it is on: the path as received (a clone of the URI shares
        // its bytes where a copy of the path would allocate for every request).
        let log =
            access_log_enabled().then(|| (Instant::now(), req.method().clone(), req.uri().clone()));
        let mut api = None;
        let response = if req.method() == Method::CONNECT {
            gateway_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "CONNECT is not supported",
            )
        } else if has_several_hosts(req.headers()) {
            gateway_error(StatusCode::BAD_REQUEST, "BAD_HOST", "more than one Host header")
        } else if let Err(BadPath(why)) = self.admit(&mut req) {
            gateway_error(StatusCode::BAD_REQUEST, "BAD_PATH", why)
        } else if let Some((_, document)) =
            self.metadata.iter().find(|(at, _)| at.as_str() == req.uri().path())
        {
            match document.clone().oneshot(req).await {
                Ok(response) => response.map(|text| {
                    Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync()
                }),
                Err(never) => match never {},
            }
        } else if let Some(route) = self.route(&routing_view(req.uri().path())) {
            api = Some(route.api.clone());
            // Before the layer, so that headers it sets cannot be named in `Connection`, and
            // no alias (`x_user_id`) of a header it sets reaches the backend.
            strip_hop_by_hop(req.headers_mut());
            drop_underscore_names(req.headers_mut());
            req.extensions_mut().insert(ClientAddr(hop.clone()));
            let response = if unprotected {
                route.proxy.clone().oneshot(req).await.map(|r| r.map(BodyExt::boxed_unsync))
            } else {
                route.service.clone().oneshot(req).await.map(|r| r.map(BodyExt::boxed_unsync))
            };
            match response {
                Ok(response) => response,
                Err(never) => match never {},
            }
        } else {
            gateway_error(StatusCode::NOT_FOUND, "NO_ROUTE", "no API is served at this path")
        };
        let Some((started, method, received)) = log else { return response };
        let extensions = response.extensions();
        let context = extensions.get::<PlanContext>();
        let error = extensions
            .get::<AuthError>()
            .map(AuthError::code)
            .or_else(|| extensions.get::<GatewayCode>().map(|c| c.0));
        tracing::info!(
            target: ACCESS_LOG,
            method = %method,
            path = %received.path(),
            status = response.status().as_u16(),
            api = api.as_deref().unwrap_or("-"),
            plan = context.map_or("-", PlanContext::plan_id),
            client_id = context.map_or("-", PlanContext::client_id),
            error = error.unwrap_or("-"),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        response
    }
}
