//! The handlers of the management API, one per row of its contract, each with its OpenAPI
//! description. Writes go to the catalog; reads come from the catalog (DB mode) or from the
//! configuration file now serving (file mode, where writes never reach a handler).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tower_jwt_plan::catalog::{AcceptOptions, Catalog, NewApi, SubscriptionFilter};

use super::error::{ApiError, JsonBody, StrictQuery};
use super::file_view::FileView;
use super::wire::{
    AcceptInput, Api, ApiInput, Application, ApplicationInput, Deployment, DeploymentInput,
    ErrorBody, Plan, PlanInput, RejectInput, Subscription, SubscriptionInput, SubscriptionQuery,
    TransferInput,
};
use crate::proxy::Backend;
use crate::serve::Gateway;

/// Where the management API reads and writes.
#[derive(Clone)]
pub(crate) enum Source {
    /// DB mode: the catalog, read-write.
    Store(Catalog),
    /// File mode: the file the gateway serves, read-only.
    File(Gateway),
}

/// The management API's state.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) source: Source,
}

type Answer<T> = Result<Json<T>, ApiError>;

fn created<T: serde::Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

impl AdminState {
    fn store(&self) -> Result<&Catalog, ApiError> {
        match &self.source {
            Source::Store(catalog) => Ok(catalog),
            Source::File(_) => Err(ApiError::read_only()),
        }
    }

    /// Answer a read from the catalog or from the file.
    async fn read<T, F, Fut>(
        &self,
        from_store: F,
        from_file: impl FnOnce(&FileView<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(Catalog) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        match &self.source {
            Source::Store(catalog) => from_store(catalog.clone()).await,
            Source::File(gateway) => {
                let served = gateway.served_config().ok_or_else(|| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "STORE_UNAVAILABLE",
                        "no configuration is loaded",
                    )
                })?;
                from_file(&FileView { config: &served.0, loaded_at: served.1 })
            }
        }
    }
}

/// The gateway forwards over `http://` or `https://` only: refuse a backend it could not serve
/// before the catalog records it. (A context path another API uses is refused by the catalog
/// itself, inside its write transaction.)
fn check_servable(input: &ApiInput) -> Result<(), ApiError> {
    Backend::parse(&input.backend).map_err(|why| ApiError::invalid(format!("backend: {why}")))?;
    Ok(())
}

fn new_api(input: &ApiInput) -> NewApi {
    let mut api =
        NewApi::new(input.name.as_str(), input.context_path.as_str(), input.backend.as_str());
    api.id = input.id.clone();
    api
}

// ---- APIs ----

/// Create an API (`need_redeploy` until deployed).
#[utoipa::path(post, path = "/apis", tag = "apis", request_body = ApiInput,
    responses((status = 201, body = Api), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_api(
    State(s): State<AdminState>,
    JsonBody(input): JsonBody<ApiInput>,
) -> Result<Response, ApiError> {
    let catalog = s.store()?;
    check_servable(&input)?;
    Ok(created(Api::from(catalog.create_api(&new_api(&input)).await?)))
}

/// Every API.
#[utoipa::path(get, path = "/apis", tag = "apis", responses((status = 200, body = Vec<Api>)))]
pub(crate) async fn list_apis(State(s): State<AdminState>) -> Answer<Vec<Api>> {
    s.read(
        |c| async move { Ok(c.list_apis().await?.into_iter().map(Api::from).collect()) },
        |f| Ok(f.apis()),
    )
    .await
    .map(Json)
}

/// One API, with its deployment state.
#[utoipa::path(get, path = "/apis/{api}", tag = "apis", params(("api" = String, Path)),
    responses((status = 200, body = Api), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_api(State(s): State<AdminState>, Path(api): Path<String>) -> Answer<Api> {
    let id = api.clone();
    s.read(|c| async move { Ok(c.get_api(&id).await?.into()) }, |f| f.api(&api)).await.map(Json)
}

/// Replace an API's name, context path and backend (the API becomes `need_redeploy`).
#[utoipa::path(put, path = "/apis/{api}", tag = "apis", params(("api" = String, Path)), request_body = ApiInput,
    responses((status = 200, body = Api), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_api(
    State(s): State<AdminState>,
    Path(api): Path<String>,
    JsonBody(input): JsonBody<ApiInput>,
) -> Answer<Api> {
    let catalog = s.store()?;
    catalog.get_api(&api).await?;
    check_servable(&input)?;
    Ok(Json(catalog.update_api(&api, &new_api(&input)).await?.into()))
}

/// Delete an API; refused while a plan is published or deprecated.
#[utoipa::path(delete, path = "/apis/{api}", tag = "apis", params(("api" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn delete_api(
    State(s): State<AdminState>,
    Path(api): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.store()?.delete_api(&api).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deploy the API's current definition: the gateway serves it from now on.
#[utoipa::path(post, path = "/apis/{api}/deployments", tag = "apis", params(("api" = String, Path)),
    request_body(content = DeploymentInput, description = "may be empty"),
    responses((status = 202, body = Deployment), (status = 404, body = ErrorBody)))]
pub(crate) async fn deploy(
    State(s): State<AdminState>,
    Path(api): Path<String>,
    JsonBody(input): JsonBody<DeploymentInput>,
) -> Result<Response, ApiError> {
    let deployment = s.store()?.deploy(&api, input.label.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(Deployment::from(deployment))).into_response())
}

// ---- Plans ----

/// Create a plan, in staging.
#[utoipa::path(post, path = "/apis/{api}/plans", tag = "plans", params(("api" = String, Path)), request_body = PlanInput,
    responses((status = 201, body = Plan), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_plan(
    State(s): State<AdminState>,
    Path(api): Path<String>,
    JsonBody(input): JsonBody<PlanInput>,
) -> Result<Response, ApiError> {
    Ok(created(Plan::from(s.store()?.create_plan(&api, &input.to_catalog()).await?)))
}

/// The plans of an API.
#[utoipa::path(get, path = "/apis/{api}/plans", tag = "plans", params(("api" = String, Path)),
    responses((status = 200, body = Vec<Plan>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_plans(
    State(s): State<AdminState>,
    Path(api): Path<String>,
) -> Answer<Vec<Plan>> {
    let id = api.clone();
    s.read(
        |c| async move {
            c.get_api(&id).await?;
            Ok(c.list_plans(&id).await?.into_iter().map(Plan::from).collect())
        },
        |f| f.plans(&api),
    )
    .await
    .map(Json)
}

/// One plan.
#[utoipa::path(get, path = "/apis/{api}/plans/{plan}", tag = "plans", params(("api" = String, Path), ("plan" = String, Path)),
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_plan(
    State(s): State<AdminState>,
    Path((api, plan)): Path<(String, String)>,
) -> Answer<Plan> {
    let (a, p) = (api.clone(), plan.clone());
    s.read(|c| async move { Ok(c.get_plan(&a, &p).await?.into()) }, |f| f.plan(&api, &plan))
        .await
        .map(Json)
}

/// Replace a plan's fields (not its status).
#[utoipa::path(put, path = "/apis/{api}/plans/{plan}", tag = "plans", params(("api" = String, Path), ("plan" = String, Path)), request_body = PlanInput,
    responses((status = 200, body = Plan), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn update_plan(
    State(s): State<AdminState>,
    Path((api, plan)): Path<(String, String)>,
    JsonBody(input): JsonBody<PlanInput>,
) -> Answer<Plan> {
    Ok(Json(s.store()?.update_plan(&api, &plan, &input.to_catalog()).await?.into()))
}

/// Delete a staging, closed or keyless plan without active subscriptions.
#[utoipa::path(delete, path = "/apis/{api}/plans/{plan}", tag = "plans", params(("api" = String, Path), ("plan" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn delete_plan(
    State(s): State<AdminState>,
    Path((api, plan)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.store()?.delete_plan(&api, &plan).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// staging → published (a keyless plan is refused).
#[utoipa::path(post, path = "/apis/{api}/plans/{plan}/_publish", tag = "plans", params(("api" = String, Path), ("plan" = String, Path)),
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn publish_plan(
    State(s): State<AdminState>,
    Path((api, plan)): Path<(String, String)>,
) -> Answer<Plan> {
    Ok(Json(s.store()?.publish_plan(&api, &plan).await?.into()))
}

/// published → deprecated.
#[utoipa::path(post, path = "/apis/{api}/plans/{plan}/_deprecate", tag = "plans", params(("api" = String, Path), ("plan" = String, Path)),
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn deprecate_plan(
    State(s): State<AdminState>,
    Path((api, plan)): Path<(String, String)>,
) -> Answer<Plan> {
    Ok(Json(s.store()?.deprecate_plan(&api, &plan).await?.into()))
}

/// staging, published or deprecated → closed, closing its subscriptions at once.
#[utoipa::path(post, path = "/apis/{api}/plans/{plan}/_close", tag = "plans", params(("api" = String, Path), ("plan" = String, Path)),
    responses((status = 200, body = Plan), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn close_plan(
    State(s): State<AdminState>,
    Path((api, plan)): Path<(String, String)>,
) -> Answer<Plan> {
    Ok(Json(s.store()?.close_plan(&api, &plan).await?.into()))
}

// ---- Applications ----

/// Create an application.
#[utoipa::path(post, path = "/applications", tag = "applications", request_body = ApplicationInput,
    responses((status = 201, body = Application), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_application(
    State(s): State<AdminState>,
    JsonBody(input): JsonBody<ApplicationInput>,
) -> Result<Response, ApiError> {
    Ok(created(Application::from(s.store()?.create_application(&input.to_catalog()).await?)))
}

/// Every application.
#[utoipa::path(get, path = "/applications", tag = "applications", responses((status = 200, body = Vec<Application>)))]
pub(crate) async fn list_applications(State(s): State<AdminState>) -> Answer<Vec<Application>> {
    s.read(
        |c| async move { Ok(c.list_applications().await?.into_iter().map(Application::from).collect()) },
        |f| Ok(f.applications()),
    )
    .await
    .map(Json)
}

/// One application.
#[utoipa::path(get, path = "/applications/{app}", tag = "applications", params(("app" = String, Path)),
    responses((status = 200, body = Application), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_application(
    State(s): State<AdminState>,
    Path(app): Path<String>,
) -> Answer<Application> {
    let id = app.clone();
    s.read(|c| async move { Ok(c.get_application(&id).await?.into()) }, |f| f.application(&app))
        .await
        .map(Json)
}

/// Replace an application's name and client id (its subscriptions follow at once).
#[utoipa::path(put, path = "/applications/{app}", tag = "applications", params(("app" = String, Path)), request_body = ApplicationInput,
    responses((status = 200, body = Application), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn update_application(
    State(s): State<AdminState>,
    Path(app): Path<String>,
    JsonBody(input): JsonBody<ApplicationInput>,
) -> Answer<Application> {
    Ok(Json(s.store()?.update_application(&app, &input.to_catalog()).await?.into()))
}

/// Archive an application: its subscriptions close, its client id is freed.
#[utoipa::path(delete, path = "/applications/{app}", tag = "applications", params(("app" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn archive_application(
    State(s): State<AdminState>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.store()?.archive_application(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Subscriptions ----

/// Subscribe an application to a published plan: `accepted` (auto) or `pending` (manual).
#[utoipa::path(post, path = "/apis/{api}/subscriptions", tag = "subscriptions", params(("api" = String, Path)), request_body = SubscriptionInput,
    responses((status = 201, body = Subscription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn subscribe(
    State(s): State<AdminState>,
    Path(api): Path<String>,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> Result<Response, ApiError> {
    Ok(created(Subscription::from(s.store()?.subscribe(&api, &input.to_catalog()).await?)))
}

/// The subscriptions of an API, optionally filtered.
#[utoipa::path(get, path = "/apis/{api}/subscriptions", tag = "subscriptions", params(("api" = String, Path), SubscriptionQuery),
    responses((status = 200, body = Vec<Subscription>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_subscriptions(
    State(s): State<AdminState>,
    Path(api): Path<String>,
    StrictQuery(query): StrictQuery<SubscriptionQuery>,
) -> Answer<Vec<Subscription>> {
    let (id, q) = (api.clone(), query.clone());
    s.read(
        |c| async move {
            c.get_api(&id).await?;
            let filter = SubscriptionFilter {
                status: q.status.map(|st| st.to_catalog()),
                application: q.application,
                plan: q.plan,
            };
            Ok(c.list_subscriptions(&id, &filter)
                .await?
                .into_iter()
                .map(Subscription::from)
                .collect())
        },
        |f| f.subscriptions(&api, &query),
    )
    .await
    .map(Json)
}

/// One subscription.
#[utoipa::path(get, path = "/apis/{api}/subscriptions/{sub}", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
) -> Answer<Subscription> {
    let (a, i) = (api.clone(), sub.clone());
    s.read(
        |c| async move { Ok(c.get_subscription(&a, &i).await?.into()) },
        |f| f.subscription(&api, &sub),
    )
    .await
    .map(Json)
}

/// pending → accepted, optionally with dates.
#[utoipa::path(post, path = "/apis/{api}/subscriptions/{sub}/_accept", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    request_body(content = AcceptInput, description = "may be empty"),
    responses((status = 200, body = Subscription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn accept_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
    JsonBody(input): JsonBody<AcceptInput>,
) -> Answer<Subscription> {
    let options = AcceptOptions { starting_at: input.starting_at, ending_at: input.ending_at };
    Ok(Json(s.store()?.accept_subscription(&api, &sub, &options).await?.into()))
}

/// pending → rejected, with an optional reason.
#[utoipa::path(post, path = "/apis/{api}/subscriptions/{sub}/_reject", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    request_body(content = RejectInput, description = "may be empty"),
    responses((status = 200, body = Subscription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn reject_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
    JsonBody(input): JsonBody<RejectInput>,
) -> Answer<Subscription> {
    Ok(Json(s.store()?.reject_subscription(&api, &sub, input.reason.as_deref()).await?.into()))
}

/// accepted → paused.
#[utoipa::path(post, path = "/apis/{api}/subscriptions/{sub}/_pause", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn pause_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
) -> Answer<Subscription> {
    Ok(Json(s.store()?.pause_subscription(&api, &sub).await?.into()))
}

/// paused → accepted.
#[utoipa::path(post, path = "/apis/{api}/subscriptions/{sub}/_resume", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn resume_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
) -> Answer<Subscription> {
    Ok(Json(s.store()?.resume_subscription(&api, &sub).await?.into()))
}

/// pending, accepted or paused → closed.
#[utoipa::path(post, path = "/apis/{api}/subscriptions/{sub}/_close", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn close_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
) -> Answer<Subscription> {
    Ok(Json(s.store()?.close_subscription(&api, &sub).await?.into()))
}

/// Move an accepted or paused subscription to another published JWT plan of the API.
#[utoipa::path(post, path = "/apis/{api}/subscriptions/{sub}/_transfer", tag = "subscriptions", params(("api" = String, Path), ("sub" = String, Path)),
    request_body = TransferInput,
    responses((status = 200, body = Subscription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn transfer_subscription(
    State(s): State<AdminState>,
    Path((api, sub)): Path<(String, String)>,
    JsonBody(input): JsonBody<TransferInput>,
) -> Answer<Subscription> {
    Ok(Json(s.store()?.transfer_subscription(&api, &sub, &input.plan).await?.into()))
}
