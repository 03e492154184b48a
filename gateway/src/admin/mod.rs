//! The management API: the source document's console and portal steps over HTTP, on its own
//! listener (never the proxy's).
//!
//! - `routes`: one handler per row of the contract; `wire`: the JSON types (which also make
//!   the OpenAPI document); `error`: refusals and strict body/query parsing; `auth`: the admin
//!   token; `file_view`: file mode's reads.
//! - Every call but `GET /openapi.json` needs `Authorization: Bearer <admin token>` (401
//!   `ADMIN_UNAUTHORIZED`). In file mode every write is 405 `READ_ONLY_CONFIG`. Bodies over
//!   1 MiB are 413; unknown paths 404 `NOT_FOUND`.
//!
//! Imports [`crate::serve`] (file mode reads the configuration it serves) and
//! [`crate::proxy`] (which backends the gateway can forward to).

pub mod auth;
pub mod error;
mod file_view;
mod openapi;
mod routes;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::Method;
use tokio::net::TcpListener;
use tower_jwt_plan::catalog::Catalog;

pub use auth::{AdminToken, TokenOrigin};
pub use openapi::openapi_document;

use error::{ApiError, MAX_BODY_BYTES};
use routes::{AdminState, Source};

use crate::serve::Gateway;

/// The default address of the management API.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);

/// Brings this instance's proxy up to date with the catalog. Run after every successful write
/// in DB mode, before the write is answered, so a client that writes then calls the proxy of
/// the same instance sees its change (other instances follow within a second).
pub type SyncHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What the management API manages.
#[derive(Clone)]
pub enum AdminSource {
    /// DB mode: the catalog, read-write, and the hook that syncs this instance after a write.
    Store(Catalog, Option<SyncHook>),
    /// File mode: the configuration the gateway serves, read-only.
    File(Gateway),
}

async fn sync_after_write(State(sync): State<SyncHook>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    let response = next.run(req).await;
    if write && response.status().is_success() {
        sync().await;
    }
    response
}

async fn read_only(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        next.run(req).await
    } else {
        ApiError::read_only().into_response()
    }
}

/// The management API's router.
pub fn router(source: AdminSource, token: AdminToken) -> Router {
    let read_only_mode = matches!(source, AdminSource::File(_));
    let (source, sync) = match source {
        AdminSource::Store(catalog, sync) => (Source::Store(catalog), sync),
        AdminSource::File(gateway) => (Source::File(gateway), None),
    };
    let state = AdminState { source };
    let mut api = Router::new()
        .route("/apis", post(routes::create_api).get(routes::list_apis))
        .route(
            "/apis/{api}",
            get(routes::get_api).put(routes::update_api).delete(routes::delete_api),
        )
        .route("/apis/{api}/deployments", post(routes::deploy))
        .route("/apis/{api}/plans", post(routes::create_plan).get(routes::list_plans))
        .route(
            "/apis/{api}/plans/{plan}",
            get(routes::get_plan).put(routes::update_plan).delete(routes::delete_plan),
        )
        .route("/apis/{api}/plans/{plan}/_publish", post(routes::publish_plan))
        .route("/apis/{api}/plans/{plan}/_deprecate", post(routes::deprecate_plan))
        .route("/apis/{api}/plans/{plan}/_close", post(routes::close_plan))
        .route("/applications", post(routes::create_application).get(routes::list_applications))
        .route(
            "/applications/{app}",
            get(routes::get_application)
                .put(routes::update_application)
                .delete(routes::archive_application),
        )
        .route("/apis/{api}/subscriptions", post(routes::subscribe).get(routes::list_subscriptions))
        .route("/apis/{api}/subscriptions/{sub}", get(routes::get_subscription))
        .route("/apis/{api}/subscriptions/{sub}/_accept", post(routes::accept_subscription))
        .route("/apis/{api}/subscriptions/{sub}/_reject", post(routes::reject_subscription))
        .route("/apis/{api}/subscriptions/{sub}/_pause", post(routes::pause_subscription))
        .route("/apis/{api}/subscriptions/{sub}/_resume", post(routes::resume_subscription))
        .route("/apis/{api}/subscriptions/{sub}/_close", post(routes::close_subscription))
        .route("/apis/{api}/subscriptions/{sub}/_transfer", post(routes::transfer_subscription))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state);
    if read_only_mode {
        api = api.layer(middleware::from_fn(read_only));
    }
    if let Some(sync) = sync {
        api = api.layer(middleware::from_fn_with_state(sync, sync_after_write));
    }
    // The token is checked before anything else, unknown paths included.
    let protected = Router::new()
        .merge(api)
        .fallback(|| async { ApiError::no_route() })
        .layer(middleware::from_fn_with_state(token, auth::require_token));
    Router::new()
        .route("/openapi.json", get(|| async { axum::Json(openapi_document()) }))
        .merge(protected)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Serve the management API on `listener` until `stop` completes; then accept nothing more and
/// let the calls in flight finish (the caller bounds how long it waits for them).
pub async fn serve_admin(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(err) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
        tracing::error!(target: "gateway::admin", error = %err, "management API stopped");
    }
}
