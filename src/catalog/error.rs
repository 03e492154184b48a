//! [`CatalogError`]: one variant per refused rule, each with its management API code and status.

use http::StatusCode;

use crate::BoxError;

/// Why a catalog operation was refused. Nothing was changed when an operation returns one.
///
/// ```
/// use tower_jwt_plan::catalog::CatalogError;
///
/// let err = CatalogError::NotFound { kind: "plan", id: "gold".into() };
/// assert_eq!(err.code(), "NOT_FOUND");
/// assert_eq!(err.http_status().as_u16(), 404);
/// assert_eq!(err.to_string(), "plan `gold` not found");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// No such record (or it belongs to another API).
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// `api`, `plan`, `application` or `subscription`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A record with this id already exists.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists {
        /// `api`, `plan`, `application` or `subscription`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// The plan's status does not allow this action.
    #[error("plan `{plan}` is {from}: cannot {action} it")]
    InvalidPlanTransition {
        /// The plan.
        plan: String,
        /// Its status.
        from: &'static str,
        /// `publish`, `deprecate`, `close`, `update` or `delete`.
        action: &'static str,
    },
    /// The subscription's status does not allow this action.
    #[error("subscription `{subscription}` is {from}: cannot {action} it")]
    InvalidSubscriptionTransition {
        /// The subscription.
        subscription: String,
        /// Its status.
        from: &'static str,
        /// `accept`, `reject`, `pause`, `resume`, `close` or `transfer`.
        action: &'static str,
    },
    /// A keyless plan cannot serve traffic next to JWT plans: publishing one is refused.
    #[error(
        "plan `{plan}` is keyless: a published keyless plan would let anyone bypass the JWT plans"
    )]
    KeylessPlanRefused {
        /// The plan.
        plan: String,
    },
    /// Only published plans take new subscriptions (or receive transfers).
    #[error("plan `{plan}` is {status}: only a published JWT plan takes subscriptions")]
    PlanNotSubscribable {
        /// The plan.
        plan: String,
        /// Its status.
        status: &'static str,
    },
    /// The application already holds a pending, accepted or paused subscription to this API.
    #[error("application `{application}` already has an active subscription to api `{api}`")]
    AlreadySubscribed {
        /// The application.
        application: String,
        /// The API.
        api: String,
    },
    /// Another active application uses this client id.
    #[error("client id `{client_id}` is used by another active application")]
    ClientIdTaken {
        /// The client id.
        client_id: String,
    },
    /// The plan still has pending, accepted or paused subscriptions.
    #[error("plan `{plan}` has active subscriptions: close them (or the plan) first")]
    PlanHasSubscriptions {
        /// The plan.
        plan: String,
    },
    /// The API still has published or deprecated plans.
    #[error("api `{api}` has published or deprecated plans: close them first")]
    ApiHasActivePlans {
        /// The API.
        api: String,
    },
    /// A field of the input is not acceptable.
    #[error("`{field}`: {message}")]
    InvalidInput {
        /// The field, as spelled in the input (`jwt.jwks_url` for a nested one).
        field: String,
        /// Why.
        message: String,
    },
    /// The store could not be reached or failed; the cause is kept as `source()`.
    #[error("the catalog store is unavailable")]
    StoreUnavailable(#[source] BoxError),
}

impl CatalogError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput { field: field.into(), message: message.into() }
    }

    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        Self::NotFound { kind, id: id.to_owned() }
    }

    pub(crate) fn store(cause: impl Into<BoxError>) -> Self {
        Self::StoreUnavailable(cause.into())
    }

    /// The management API's error code, e.g. `NOT_FOUND`, `INVALID_PLAN_TRANSITION`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NOT_FOUND",
            Self::AlreadyExists { .. } => "ALREADY_EXISTS",
            Self::InvalidPlanTransition { .. } => "INVALID_PLAN_TRANSITION",
            Self::InvalidSubscriptionTransition { .. } => "INVALID_SUBSCRIPTION_TRANSITION",
            Self::KeylessPlanRefused { .. } => "KEYLESS_PLAN_REFUSED",
            Self::PlanNotSubscribable { .. } => "PLAN_NOT_SUBSCRIBABLE",
            Self::AlreadySubscribed { .. } => "ALREADY_SUBSCRIBED",
            Self::ClientIdTaken { .. } => "CLIENT_ID_TAKEN",
            Self::PlanHasSubscriptions { .. } => "PLAN_HAS_SUBSCRIPTIONS",
            Self::ApiHasActivePlans { .. } => "API_HAS_ACTIVE_PLANS",
            Self::InvalidInput { .. } => "INVALID_REQUEST",
            Self::StoreUnavailable(_) => "STORE_UNAVAILABLE",
        }
    }

    /// The HTTP status the management API answers with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::CONFLICT,
        }
    }
}
