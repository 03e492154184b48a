//! The management API's JSON: request and answer bodies, with their OpenAPI schemas.
//!
//! These are the types the handlers parse and serialise, and the same types generate the
//! OpenAPI document, so the two cannot drift. Fields are snake_case, enum values lower-case,
//! instants RFC 3339; request bodies refuse unknown fields. Answers are built from the
//! catalog's records (`From` impls below) or, in file mode, from the file.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_jwt_plan::catalog;
use tower_jwt_plan::definition::JwtDefinition;
use tower_jwt_plan::limit::Restrictions;
use utoipa::ToSchema;

/// An error answer: the gateway's body shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code, e.g. `NOT_FOUND`, `INVALID_REQUEST`, `STORE_UNAVAILABLE`.
    pub error: String,
    /// What went wrong, naming the field at fault for `INVALID_REQUEST`.
    pub message: String,
    /// The HTTP status, repeated.
    pub http_status_code: u16,
}

/// Creates an API (`POST /apis`) or replaces its fields (`PUT /apis/{api}`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiInput {
    /// `[A-Za-z0-9._-]{1,64}`; made by the server when absent. On `PUT`: absent or the same.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Where the gateway serves it, e.g. `/echo` (unique among APIs).
    pub context_path: String,
    /// Where the gateway forwards it: an `http://` URL.
    pub backend: String,
}

/// Whether the gateway serves the API's current definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// The deployed definition is the current one.
    Deployed,
    /// Changed since the last deployment, or never deployed.
    NeedRedeploy,
}

/// An API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Api {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where the gateway serves it.
    pub context_path: String,
    /// Where the gateway forwards it.
    pub backend: String,
    /// `deployed` or `need_redeploy`.
    pub deployment_state: DeploymentState,
    /// Its last deployment, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deployed_at: Option<OffsetDateTime>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When its own fields last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<catalog::Api> for Api {
    fn from(api: catalog::Api) -> Self {
        Self {
            id: api.id,
            name: api.name,
            context_path: api.context_path,
            backend: api.backend,
            deployment_state: match api.deployment_state {
                catalog::DeploymentState::Deployed => DeploymentState::Deployed,
                catalog::DeploymentState::NeedRedeploy => DeploymentState::NeedRedeploy,
            },
            deployed_at: api.deployed_at,
            created_at: api.created_at,
            updated_at: api.updated_at,
        }
    }
}

/// Deploys an API's current definition (`POST /apis/{api}/deployments`); the body may be empty.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentInput {
    /// A label kept with the deployment.
    #[serde(default)]
    pub label: Option<String>,
}

/// A deployment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    /// The API.
    pub api: String,
    /// 1 for the API's first deployment, then +1 each time.
    pub revision: u64,
    /// The label given, if any.
    pub label: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deployed_at: OffsetDateTime,
}

impl From<catalog::Deployment> for Deployment {
    fn from(d: catalog::Deployment) -> Self {
        Self { api: d.api, revision: d.revision, label: d.label, deployed_at: d.deployed_at }
    }
}

/// How a plan secures its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// A verified JWT and an accepted subscription of its client id.
    Jwt,
    /// No credential: can never be published.
    Keyless,
}

/// How a plan's new subscriptions are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// Accepted at once.
    Auto,
    /// Pending until accepted or rejected.
    Manual,
}

/// Where a plan is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// Draft: not deployed.
    Staging,
    /// Serving and open to subscriptions.
    Published,
    /// Serving existing subscriptions only.
    Deprecated,
    /// Ended, with its subscriptions.
    Closed,
}

/// Creates a plan (`POST .../plans`, in staging) or replaces its fields (`PUT`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// `[A-Za-z0-9._-]{1,64}`; made by the server when absent. On `PUT`: absent or the same.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// `jwt` or `keyless`.
    pub security: Security,
    /// `auto` or `manual`.
    pub validation: Validation,
    /// The JWT settings (the TOML plan's keys: `algorithms`, exactly one of `jwks_url`,
    /// `public_key_pem`, `hmac_secret`, `issuer`, `audience`, `claims_to_headers`,
    /// `leeway_secs`, ...). Required for `jwt`, refused for `keyless`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwt: Option<JwtDefinition>,
    /// `{rate_limit?: {limit, period_secs}, quota?: {limit, period: "hour" | "day" | "week" |
    /// "month"}, spike_arrest?: {limit, period_secs}}`, enforced per subscription once
    /// deployed (429 past a limit). JWT plans only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub restrictions: Option<Restrictions>,
}

impl PlanInput {
    /// The catalog's input.
    pub(crate) fn to_catalog(&self) -> catalog::NewPlan {
        let validation = match self.validation {
            Validation::Auto => catalog::Validation::Auto,
            Validation::Manual => catalog::Validation::Manual,
        };
        let mut plan = match (&self.security, &self.jwt) {
            (Security::Jwt, jwt) => {
                let mut plan =
                    catalog::NewPlan::jwt(self.name.as_str(), validation, JwtDefinition::default());
                plan.jwt = jwt.clone();
                plan
            }
            (Security::Keyless, jwt) => {
                let mut plan = catalog::NewPlan::keyless(self.name.as_str());
                plan.validation = validation;
                plan.jwt = jwt.clone();
                plan
            }
        };
        plan.id = self.id.clone();
        plan.restrictions = self.restrictions;
        plan
    }
}

/// A plan. An `hmac_secret` is never shown: it reads `[redacted]`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// Its id.
    pub id: String,
    /// The API.
    pub api: String,
    /// Display name.
    pub name: String,
    /// `jwt` or `keyless`.
    pub security: Security,
    /// `auto` or `manual`.
    pub validation: Validation,
    /// The JWT settings (JWT plans only).
    #[schema(value_type = Option<Object>)]
    pub jwt: Option<JwtDefinition>,
    /// Its restrictions, if any.
    #[schema(value_type = Option<Object>)]
    pub restrictions: Option<Restrictions>,
    /// `staging`, `published`, `deprecated` or `closed`.
    pub status: PlanStatus,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

/// What answers show of a plan's JWT settings: everything but the HMAC secret.
pub(crate) fn redacted(jwt: Option<JwtDefinition>) -> Option<JwtDefinition> {
    jwt.map(|mut jwt| {
        if jwt.hmac_secret.is_some() {
            jwt.hmac_secret = Some("[redacted]".to_owned());
        }
        jwt
    })
}

impl From<catalog::Plan> for Plan {
    fn from(p: catalog::Plan) -> Self {
        Self {
            id: p.id,
            api: p.api,
            name: p.name,
            security: match p.security {
                catalog::PlanSecurity::Jwt => Security::Jwt,
                catalog::PlanSecurity::Keyless => Security::Keyless,
            },
            validation: match p.validation {
                catalog::Validation::Auto => Validation::Auto,
                catalog::Validation::Manual => Validation::Manual,
            },
            jwt: redacted(p.jwt),
            restrictions: p.restrictions,
            status: match p.status {
                catalog::PlanStatus::Staging => PlanStatus::Staging,
                catalog::PlanStatus::Published => PlanStatus::Published,
                catalog::PlanStatus::Deprecated => PlanStatus::Deprecated,
                catalog::PlanStatus::Closed => PlanStatus::Closed,
            },
            created_at: Some(p.created_at),
            updated_at: Some(p.updated_at),
        }
    }
}

/// Creates an application (`POST /applications`) or replaces its fields (`PUT`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationInput {
    /// `[A-Za-z0-9._-]{1,64}`; made by the server when absent. On `PUT`: absent or the same.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// The client id its tokens carry, unique among active applications.
    pub client_id: String,
}

impl ApplicationInput {
    pub(crate) fn to_catalog(&self) -> catalog::NewApplication {
        let mut app = catalog::NewApplication::new(self.name.as_str(), self.client_id.as_str());
        app.id = self.id.clone();
        app
    }
}

/// Whether an application may hold subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationStatus {
    /// In use.
    Active,
    /// Archived: subscriptions closed, client id freed.
    Archived,
}

/// An application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Application {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The client id its tokens carry.
    pub client_id: String,
    /// `active` or `archived`.
    pub status: ApplicationStatus,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<catalog::Application> for Application {
    fn from(a: catalog::Application) -> Self {
        Self {
            id: a.id,
            name: a.name,
            client_id: a.client_id,
            status: match a.status {
                catalog::ApplicationStatus::Active => ApplicationStatus::Active,
                catalog::ApplicationStatus::Archived => ApplicationStatus::Archived,
            },
            created_at: Some(a.created_at),
            updated_at: Some(a.updated_at),
        }
    }
}

/// Subscribes an application to a plan of the API (`POST /apis/{api}/subscriptions`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// `[A-Za-z0-9._-]{1,64}`; made by the server when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The application's id.
    pub application: String,
    /// A published plan of the API.
    pub plan: String,
}

impl SubscriptionInput {
    pub(crate) fn to_catalog(&self) -> catalog::NewSubscription {
        let mut sub = catalog::NewSubscription::new(self.application.as_str(), self.plan.as_str());
        sub.id = self.id.clone();
        sub
    }
}

/// Where a subscription is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Waiting for a publisher.
    Pending,
    /// Serving within its dates.
    Accepted,
    /// Suspended.
    Paused,
    /// Refused. Final.
    Rejected,
    /// Ended. Final.
    Closed,
}

impl SubscriptionStatus {
    pub(crate) fn to_catalog(self) -> catalog::SubscriptionStatus {
        match self {
            Self::Pending => catalog::SubscriptionStatus::Pending,
            Self::Accepted => catalog::SubscriptionStatus::Accepted,
            Self::Paused => catalog::SubscriptionStatus::Paused,
            Self::Rejected => catalog::SubscriptionStatus::Rejected,
            Self::Closed => catalog::SubscriptionStatus::Closed,
        }
    }

    pub(crate) fn from_catalog(status: catalog::SubscriptionStatus) -> Self {
        match status {
            catalog::SubscriptionStatus::Pending => Self::Pending,
            catalog::SubscriptionStatus::Accepted => Self::Accepted,
            catalog::SubscriptionStatus::Paused => Self::Paused,
            catalog::SubscriptionStatus::Rejected => Self::Rejected,
            catalog::SubscriptionStatus::Closed => Self::Closed,
            // The library's enum is non-exhaustive; a status this gateway does not know grants
            // nothing, so it is shown as ended rather than guessed at.
            _ => Self::Closed,
        }
    }
}

/// A subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// The API.
    pub api: String,
    /// The plan.
    pub plan: String,
    /// The subscribing application.
    pub application: String,
    /// `pending`, `accepted`, `paused`, `rejected` or `closed`.
    pub status: SubscriptionStatus,
    /// Serves only after this instant, when set.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starting_at: Option<OffsetDateTime>,
    /// Serves only before this instant, when set.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ending_at: Option<OffsetDateTime>,
    /// Why it was rejected, when given.
    pub reason: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<catalog::Subscription> for Subscription {
    fn from(s: catalog::Subscription) -> Self {
        Self {
            id: s.id,
            api: s.api,
            plan: s.plan,
            application: s.application,
            status: SubscriptionStatus::from_catalog(s.status),
            starting_at: s.starting_at,
            ending_at: s.ending_at,
            reason: s.reason,
            created_at: Some(s.created_at),
            updated_at: Some(s.updated_at),
        }
    }
}

/// Filters of `GET /apis/{api}/subscriptions` (query parameters).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// Only this status.
    #[serde(default)]
    pub status: Option<SubscriptionStatus>,
    /// Only this application.
    #[serde(default)]
    pub application: Option<String>,
    /// Only this plan.
    #[serde(default)]
    pub plan: Option<String>,
}

/// Accepts a pending subscription (`_accept`); the body may be empty.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInput {
    /// Serves only after this instant (RFC 3339). Default: now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starting_at: Option<OffsetDateTime>,
    /// Serves only before this instant (RFC 3339). Default: no end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ending_at: Option<OffsetDateTime>,
}

/// Rejects a pending subscription (`_reject`); the body may be empty.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Moves a subscription to another published JWT plan of the API (`_transfer`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    /// The target plan.
    pub plan: String,
}
