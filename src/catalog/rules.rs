//! The catalog's rules, written once over [`Tx`], the row operations every store provides.
//!
//! Each function runs inside one transaction opened by [`Catalog`](super::Catalog): write
//! transactions are serialised by the store (the first statement of each bumps the catalog's
//! revision row), so a rule's checks and its writes see one consistent state. The schema's
//! unique indexes back the two rules that matter under concurrency (one active client id, one
//! active subscription per application and API); a violation reported by a store is mapped to
//! the same typed error as the check that precedes it.

use time::OffsetDateTime;

use super::CatalogError;
use super::model::{
    AcceptOptions, Api, ApiDefinition, Application, ApplicationStatus, DeployedPlan, Deployment,
    DeploymentState, NewApi, NewApplication, NewPlan, NewSubscription, Plan, PlanSecurity,
    PlanStatus, Subscription, SubscriptionFilter, SubscriptionStatus, Validation, from_millis,
    id_or_new, now, to_millis,
};

/// A write refused by the store, or a store failure.
pub(crate) enum WriteError {
    /// A unique constraint (primary key or partial unique index) refused the row.
    Unique,
    /// Anything else.
    Store(CatalogError),
}

impl From<CatalogError> for WriteError {
    fn from(err: CatalogError) -> Self {
        Self::Store(err)
    }
}

impl WriteError {
    fn or(self, conflict: impl FnOnce() -> CatalogError) -> CatalogError {
        match self {
            Self::Unique => conflict(),
            Self::Store(err) => err,
        }
    }
}

/// Row operations inside one transaction. Lists are ordered by id.
pub(crate) trait Tx: Send {
    async fn api(&mut self, id: &str) -> Result<Option<Api>, CatalogError>;
    async fn apis(&mut self) -> Result<Vec<Api>, CatalogError>;
    /// Stores the API's own fields (not the computed ones).
    async fn put_api(&mut self, api: &Api, insert: bool) -> Result<(), WriteError>;
    /// Deletes the API with its plans, subscriptions and deployments.
    async fn delete_api(&mut self, id: &str) -> Result<(), CatalogError>;
    async fn plan(&mut self, id: &str) -> Result<Option<Plan>, CatalogError>;
    async fn plans(&mut self, api: &str) -> Result<Vec<Plan>, CatalogError>;
    async fn put_plan(&mut self, plan: &Plan, insert: bool) -> Result<(), WriteError>;
    /// Deletes the plan with its (inactive) subscriptions.
    async fn delete_plan(&mut self, id: &str) -> Result<(), CatalogError>;
    async fn application(&mut self, id: &str) -> Result<Option<Application>, CatalogError>;
    async fn applications(&mut self) -> Result<Vec<Application>, CatalogError>;
    async fn put_application(&mut self, app: &Application, insert: bool) -> Result<(), WriteError>;
    async fn subscription(&mut self, id: &str) -> Result<Option<Subscription>, CatalogError>;
    /// Subscriptions of one API, or of all APIs.
    async fn subscriptions(&mut self, api: Option<&str>)
    -> Result<Vec<Subscription>, CatalogError>;
    async fn put_subscription(
        &mut self,
        sub: &Subscription,
        insert: bool,
    ) -> Result<(), WriteError>;
    async fn last_deployment(&mut self, api: &str) -> Result<Option<Deployment>, CatalogError>;
    /// The last deployment of every API.
    async fn last_deployments(&mut self) -> Result<Vec<Deployment>, CatalogError>;
    async fn insert_deployment(&mut self, deployment: &Deployment) -> Result<(), WriteError>;
    /// The catalog's revision: bumped by every write transaction.
    async fn revision(&mut self) -> Result<u64, CatalogError>;
}

// ---- APIs and deployments ----------------------------------------------------------------------

fn check_name(field: &str, name: &str) -> Result<(), CatalogError> {
    if name.trim().is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(CatalogError::invalid(
            field,
            "must be 1 to 256 characters, no control characters",
        ));
    }
    Ok(())
}

fn check_api_fields(input: &NewApi) -> Result<(), CatalogError> {
    check_name("name", &input.name)?;
    let path = &input.context_path;
    let plain = path.starts_with('/')
        && path.len() <= 1024
        && path.chars().all(|c| c.is_ascii_graphic() && c != '?' && c != '#');
    let prefix = path.trim_end_matches('/');
    if !plain || prefix.split('/').skip(1).any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(CatalogError::invalid(
            "context_path",
            "must start with `/`, be a plain path and have no empty, `.` or `..` segments",
        ));
    }
    let backend = url::Url::parse(&input.backend)
        .map_err(|_| CatalogError::invalid("backend", "must be an http or https URL"))?;
    if !matches!(backend.scheme(), "http" | "https") || backend.host_str().is_none() {
        return Err(CatalogError::invalid("backend", "must be an http or https URL"));
    }
    Ok(())
}

/// The API's current definition: itself and its non-staging plans.
async fn definition_of<T: Tx>(tx: &mut T, api: &Api) -> Result<ApiDefinition, CatalogError> {
    let plans = tx
        .plans(&api.id)
        .await?
        .into_iter()
        .filter(|p| p.status != PlanStatus::Staging)
        .map(|p| DeployedPlan {
            id: p.id,
            name: p.name,
            security: p.security,
            validation: p.validation,
            status: p.status,
            jwt: p.jwt,
        })
        .collect();
    Ok(ApiDefinition {
        id: api.id.clone(),
        name: api.name.clone(),
        context_path: api.context_path.clone(),
        backend: api.backend.clone(),
        plans,
    })
}

/// Fill the computed fields: compare the current definition with the last deployed one.
async fn with_state<T: Tx>(tx: &mut T, mut api: Api) -> Result<Api, CatalogError> {
    let deployed = tx.last_deployment(&api.id).await?;
    let current = definition_of(tx, &api).await?;
    api.deployed_at = deployed.as_ref().map(|d| d.deployed_at);
    api.deployment_state = match deployed {
        Some(d) if d.definition == current => DeploymentState::Deployed,
        _ => DeploymentState::NeedRedeploy,
    };
    Ok(api)
}

async fn api_or_404<T: Tx>(tx: &mut T, id: &str) -> Result<Api, CatalogError> {
    tx.api(id).await?.ok_or_else(|| CatalogError::not_found("api", id))
}

pub(crate) async fn create_api<T: Tx>(tx: &mut T, input: &NewApi) -> Result<Api, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    check_api_fields(input)?;
    if tx.api(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "api", id });
    }
    let at = now();
    let api = Api {
        id,
        name: input.name.clone(),
        context_path: input.context_path.clone(),
        backend: input.backend.clone(),
        deployment_state: DeploymentState::NeedRedeploy,
        deployed_at: None,
        created_at: at,
        updated_at: at,
    };
    tx.put_api(&api, true)
        .await
        .map_err(|e| e.or(|| CatalogError::AlreadyExists { kind: "api", id: api.id.clone() }))?;
    Ok(api)
}

pub(crate) async fn get_api<T: Tx>(tx: &mut T, id: &str) -> Result<Api, CatalogError> {
    let api = api_or_404(tx, id).await?;
    with_state(tx, api).await
}

pub(crate) async fn list_apis<T: Tx>(tx: &mut T) -> Result<Vec<Api>, CatalogError> {
    let mut out = Vec::new();
    for api in tx.apis().await? {
        out.push(with_state(tx, api).await?);
    }
    Ok(out)
}

pub(crate) async fn update_api<T: Tx>(
    tx: &mut T,
    id: &str,
    input: &NewApi,
) -> Result<Api, CatalogError> {
    let mut api = api_or_404(tx, id).await?;
    check_api_fields(input)?;
    api.name.clone_from(&input.name);
    api.context_path.clone_from(&input.context_path);
    api.backend.clone_from(&input.backend);
    api.updated_at = now();
    tx.put_api(&api, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    with_state(tx, api).await
}

pub(crate) async fn delete_api<T: Tx>(tx: &mut T, id: &str) -> Result<(), CatalogError> {
    api_or_404(tx, id).await?;
    let plans = tx.plans(id).await?;
    if plans.iter().any(|p| matches!(p.status, PlanStatus::Published | PlanStatus::Deprecated)) {
        return Err(CatalogError::ApiHasActivePlans { api: id.to_owned() });
    }
    tx.delete_api(id).await
}

pub(crate) async fn deploy<T: Tx>(
    tx: &mut T,
    id: &str,
    label: Option<&str>,
) -> Result<Deployment, CatalogError> {
    let api = api_or_404(tx, id).await?;
    if let Some(label) = label {
        check_name("label", label)?;
    }
    let revision = tx.last_deployment(id).await?.map_or(0, |d| d.revision) + 1;
    let deployment = Deployment {
        api: id.to_owned(),
        revision,
        label: label.map(str::to_owned),
        deployed_at: now(),
        definition: definition_of(tx, &api).await?,
    };
    tx.insert_deployment(&deployment)
        .await
        .map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    Ok(deployment)
}

pub(crate) async fn last_deployment<T: Tx>(
    tx: &mut T,
    api: &str,
) -> Result<Option<Deployment>, CatalogError> {
    api_or_404(tx, api).await?;
    tx.last_deployment(api).await
}

// ---- Plans -------------------------------------------------------------------------------------

fn check_plan_fields(input: &NewPlan) -> Result<(), CatalogError> {
    check_name("name", &input.name)?;
    match (input.security, &input.jwt) {
        (PlanSecurity::Jwt, Some(jwt)) => jwt
            .validate()
            .map_err(|e| CatalogError::invalid(format!("jwt.{}", e.field()), e.message())),
        (PlanSecurity::Jwt, None) => {
            Err(CatalogError::invalid("jwt", "a jwt plan needs its JWT settings"))
        }
        (PlanSecurity::Keyless, Some(_)) => {
            Err(CatalogError::invalid("jwt", "a keyless plan takes no JWT settings"))
        }
        (PlanSecurity::Keyless, None) => Ok(()),
    }
}

/// The plan `plan` of `api`: a plan of another API is not found.
async fn plan_or_404<T: Tx>(tx: &mut T, api: &str, plan: &str) -> Result<Plan, CatalogError> {
    match tx.plan(plan).await? {
        Some(p) if p.api == api => Ok(p),
        _ => Err(CatalogError::not_found("plan", plan)),
    }
}

pub(crate) async fn create_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    input: &NewPlan,
) -> Result<Plan, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    api_or_404(tx, api).await?;
    check_plan_fields(input)?;
    if tx.plan(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "plan", id });
    }
    let at = now();
    let plan = Plan {
        id,
        api: api.to_owned(),
        name: input.name.clone(),
        security: input.security,
        validation: input.validation,
        jwt: input.jwt.clone(),
        status: PlanStatus::Staging,
        created_at: at,
        updated_at: at,
    };
    tx.put_plan(&plan, true)
        .await
        .map_err(|e| e.or(|| CatalogError::AlreadyExists { kind: "plan", id: plan.id.clone() }))?;
    Ok(plan)
}

pub(crate) async fn get_plan<T: Tx>(tx: &mut T, api: &str, id: &str) -> Result<Plan, CatalogError> {
    api_or_404(tx, api).await?;
    plan_or_404(tx, api, id).await
}

pub(crate) async fn list_plans<T: Tx>(tx: &mut T, api: &str) -> Result<Vec<Plan>, CatalogError> {
    api_or_404(tx, api).await?;
    tx.plans(api).await
}

pub(crate) async fn update_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
    input: &NewPlan,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status == PlanStatus::Closed {
        return Err(transition(&plan, "update"));
    }
    check_plan_fields(input)?;
    if input.security == PlanSecurity::Keyless && plan.status != PlanStatus::Staging {
        return Err(CatalogError::KeylessPlanRefused { plan: plan.id });
    }
    plan.name.clone_from(&input.name);
    plan.security = input.security;
    plan.validation = input.validation;
    plan.jwt.clone_from(&input.jwt);
    plan.updated_at = now();
    tx.put_plan(&plan, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    Ok(plan)
}

fn transition(plan: &Plan, action: &'static str) -> CatalogError {
    CatalogError::InvalidPlanTransition {
        plan: plan.id.clone(),
        from: plan.status.as_str(),
        action,
    }
}

pub(crate) async fn publish_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status != PlanStatus::Staging {
        return Err(transition(&plan, "publish"));
    }
    if plan.security == PlanSecurity::Keyless {
        return Err(CatalogError::KeylessPlanRefused { plan: plan.id });
    }
    set_plan_status(tx, &mut plan, PlanStatus::Published).await?;
    Ok(plan)
}

pub(crate) async fn deprecate_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status != PlanStatus::Published {
        return Err(transition(&plan, "deprecate"));
    }
    set_plan_status(tx, &mut plan, PlanStatus::Deprecated).await?;
    Ok(plan)
}

/// Close a plan and, at once and irreversibly, all its active subscriptions.
pub(crate) async fn close_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status == PlanStatus::Closed {
        return Err(transition(&plan, "close"));
    }
    set_plan_status(tx, &mut plan, PlanStatus::Closed).await?;
    let at = plan.updated_at;
    for mut sub in tx.subscriptions(Some(api)).await? {
        if sub.plan == plan.id && sub.status.is_active() {
            sub.status = SubscriptionStatus::Closed;
            sub.updated_at = at;
            put_sub(tx, &sub).await?;
        }
    }
    Ok(plan)
}

async fn set_plan_status<T: Tx>(
    tx: &mut T,
    plan: &mut Plan,
    status: PlanStatus,
) -> Result<(), CatalogError> {
    plan.status = status;
    plan.updated_at = now();
    tx.put_plan(plan, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))
}

pub(crate) async fn delete_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<(), CatalogError> {
    let plan = get_plan(tx, api, id).await?;
    let deletable = matches!(plan.status, PlanStatus::Staging | PlanStatus::Closed)
        || plan.security == PlanSecurity::Keyless;
    if !deletable {
        return Err(transition(&plan, "delete"));
    }
    let subs = tx.subscriptions(Some(api)).await?;
    if subs.iter().any(|s| s.plan == plan.id && s.status.is_active()) {
        return Err(CatalogError::PlanHasSubscriptions { plan: plan.id });
    }
    tx.delete_plan(id).await
}

// ---- Applications ------------------------------------------------------------------------------

fn check_application_fields(input: &NewApplication) -> Result<(), CatalogError> {
    check_name("name", &input.name)?;
    let id = &input.client_id;
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) || id.trim() != id {
        return Err(CatalogError::invalid(
            "client_id",
            "must be 1 to 256 characters, no control characters or surrounding spaces",
        ));
    }
    Ok(())
}

async fn client_id_free<T: Tx>(
    tx: &mut T,
    client_id: &str,
    except: &str,
) -> Result<(), CatalogError> {
    let taken = tx.applications().await?.into_iter().any(|a| {
        a.status == ApplicationStatus::Active && a.client_id == client_id && a.id != except
    });
    if taken {
        return Err(CatalogError::ClientIdTaken { client_id: client_id.to_owned() });
    }
    Ok(())
}

fn client_id_taken(client_id: &str) -> impl FnOnce() -> CatalogError + '_ {
    move || CatalogError::ClientIdTaken { client_id: client_id.to_owned() }
}

pub(crate) async fn create_application<T: Tx>(
    tx: &mut T,
    input: &NewApplication,
) -> Result<Application, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    check_application_fields(input)?;
    if tx.application(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "application", id });
    }
    client_id_free(tx, &input.client_id, &id).await?;
    let at = now();
    let app = Application {
        id,
        name: input.name.clone(),
        client_id: input.client_id.clone(),
        status: ApplicationStatus::Active,
        created_at: at,
        updated_at: at,
    };
    tx.put_application(&app, true).await.map_err(|e| e.or(client_id_taken(&app.client_id)))?;
    Ok(app)
}

pub(crate) async fn get_application<T: Tx>(
    tx: &mut T,
    id: &str,
) -> Result<Application, CatalogError> {
    tx.application(id).await?.ok_or_else(|| CatalogError::not_found("application", id))
}

pub(crate) async fn list_applications<T: Tx>(tx: &mut T) -> Result<Vec<Application>, CatalogError> {
    tx.applications().await
}

/// Rename, or change the client id: every subscription follows at once, since subscriptions
/// refer to the application.
pub(crate) async fn update_application<T: Tx>(
    tx: &mut T,
    id: &str,
    input: &NewApplication,
) -> Result<Application, CatalogError> {
    let mut app = get_application(tx, id).await?;
    check_application_fields(input)?;
    if app.status == ApplicationStatus::Active {
        client_id_free(tx, &input.client_id, id).await?;
    }
    app.name.clone_from(&input.name);
    app.client_id.clone_from(&input.client_id);
    app.updated_at = now();
    tx.put_application(&app, false).await.map_err(|e| e.or(client_id_taken(&app.client_id)))?;
    Ok(app)
}

/// Archive: close the application's active subscriptions and free its client id.
pub(crate) async fn archive_application<T: Tx>(
    tx: &mut T,
    id: &str,
) -> Result<Application, CatalogError> {
    let mut app = get_application(tx, id).await?;
    if app.status == ApplicationStatus::Archived {
        return Ok(app);
    }
    app.status = ApplicationStatus::Archived;
    app.updated_at = now();
    tx.put_application(&app, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    for mut sub in tx.subscriptions(None).await? {
        if sub.application == app.id && sub.status.is_active() {
            sub.status = SubscriptionStatus::Closed;
            sub.updated_at = app.updated_at;
            put_sub(tx, &sub).await?;
        }
    }
    Ok(app)
}

// ---- Subscriptions -----------------------------------------------------------------------------

async fn put_sub<T: Tx>(tx: &mut T, sub: &Subscription) -> Result<(), CatalogError> {
    tx.put_subscription(sub, false).await.map_err(|e| {
        e.or(|| CatalogError::AlreadySubscribed {
            application: sub.application.clone(),
            api: sub.api.clone(),
        })
    })
}

fn subscribable(plan: &Plan) -> Result<(), CatalogError> {
    if plan.status != PlanStatus::Published || plan.security != PlanSecurity::Jwt {
        return Err(CatalogError::PlanNotSubscribable {
            plan: plan.id.clone(),
            status: plan.status.as_str(),
        });
    }
    Ok(())
}

pub(crate) async fn subscribe<T: Tx>(
    tx: &mut T,
    api: &str,
    input: &NewSubscription,
) -> Result<Subscription, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    api_or_404(tx, api).await?;
    let plan = plan_or_404(tx, api, &input.plan).await?;
    let app = get_application(tx, &input.application).await?;
    if app.status != ApplicationStatus::Active {
        return Err(CatalogError::invalid("application", "the application is archived"));
    }
    subscribable(&plan)?;
    if tx.subscription(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "subscription", id });
    }
    let already =
        CatalogError::AlreadySubscribed { application: app.id.clone(), api: api.to_owned() };
    let subs = tx.subscriptions(Some(api)).await?;
    if subs.iter().any(|s| s.application == app.id && s.status.is_active()) {
        return Err(already);
    }
    let at = now();
    let (status, starting_at) = match plan.validation {
        Validation::Auto => (SubscriptionStatus::Accepted, Some(at)),
        Validation::Manual => (SubscriptionStatus::Pending, None),
    };
    let sub = Subscription {
        id,
        api: api.to_owned(),
        plan: plan.id,
        application: app.id,
        status,
        starting_at,
        ending_at: None,
        reason: None,
        created_at: at,
        updated_at: at,
    };
    tx.put_subscription(&sub, true).await.map_err(|e| e.or(|| already))?;
    Ok(sub)
}

pub(crate) async fn get_subscription<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Subscription, CatalogError> {
    api_or_404(tx, api).await?;
    match tx.subscription(id).await? {
        Some(s) if s.api == api => Ok(s),
        _ => Err(CatalogError::not_found("subscription", id)),
    }
}

pub(crate) async fn list_subscriptions<T: Tx>(
    tx: &mut T,
    api: &str,
    filter: &SubscriptionFilter,
) -> Result<Vec<Subscription>, CatalogError> {
    api_or_404(tx, api).await?;
    let subs = tx.subscriptions(Some(api)).await?;
    Ok(subs.into_iter().filter(|s| filter.matches(s)).collect())
}

/// What a subscription action does.
pub(crate) enum SubscriptionAction<'a> {
    Accept(&'a AcceptOptions),
    Reject(Option<&'a str>),
    Pause,
    Resume,
    Close,
    Transfer(&'a str),
}

fn truncate(at: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    at.map(|t| from_millis(to_millis(t)))
}

pub(crate) async fn act<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
    action: SubscriptionAction<'_>,
) -> Result<Subscription, CatalogError> {
    use SubscriptionStatus::{Accepted, Closed, Paused, Pending, Rejected};
    let mut sub = get_subscription(tx, api, id).await?;
    let refuse = |sub: &Subscription, action| CatalogError::InvalidSubscriptionTransition {
        subscription: sub.id.clone(),
        from: sub.status.as_str(),
        action,
    };
    let at = now();
    match action {
        SubscriptionAction::Accept(options) => {
            if sub.status != Pending {
                return Err(refuse(&sub, "accept"));
            }
            let plan = plan_or_404(tx, api, &sub.plan).await?;
            if plan.status == PlanStatus::Closed {
                return Err(refuse(&sub, "accept"));
            }
            let starting_at = truncate(options.starting_at).unwrap_or(at);
            let ending_at = truncate(options.ending_at);
            if ending_at.is_some_and(|end| end <= starting_at) {
                return Err(CatalogError::invalid("ending_at", "must be after starting_at"));
            }
            sub.status = Accepted;
            sub.starting_at = Some(starting_at);
            sub.ending_at = ending_at;
        }
        SubscriptionAction::Reject(reason) => {
            if sub.status != Pending {
                return Err(refuse(&sub, "reject"));
            }
            if reason.is_some_and(|r| r.chars().count() > 1024) {
                return Err(CatalogError::invalid("reason", "must be at most 1024 characters"));
            }
            sub.status = Rejected;
            sub.reason = reason.map(str::to_owned);
        }
        SubscriptionAction::Pause => {
            if sub.status != Accepted {
                return Err(refuse(&sub, "pause"));
            }
            sub.status = Paused;
        }
        SubscriptionAction::Resume => {
            if sub.status != Paused {
                return Err(refuse(&sub, "resume"));
            }
            sub.status = Accepted;
        }
        SubscriptionAction::Close => {
            if !sub.status.is_active() {
                return Err(refuse(&sub, "close"));
            }
            sub.status = Closed;
        }
        SubscriptionAction::Transfer(target) => {
            if !matches!(sub.status, Accepted | Paused) {
                return Err(refuse(&sub, "transfer"));
            }
            let plan = plan_or_404(tx, api, target).await?;
            if plan.id == sub.plan {
                return Err(CatalogError::invalid(
                    "plan",
                    "the subscription is already on this plan",
                ));
            }
            subscribable(&plan)?;
            sub.plan = plan.id;
        }
    }
    sub.updated_at = at;
    put_sub(tx, &sub).await?;
    Ok(sub)
}
