//! The catalog's records and the inputs that create or change them.
//!
//! Records are plain data (serde, snake_case fields, lower-case enum values, RFC 3339
//! timestamps) returned by [`Catalog`](super::Catalog); they are never changed in place.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::CatalogError;
use crate::definition::JwtDefinition;
use crate::limit::Restrictions;

/// The same lifecycle types the layer enforces: one definition each, shared with the catalog.
pub use crate::{PlanStatus, SubscriptionStatus};

/// Whether the gateway serves the API's current definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// The deployed definition is the current one.
    Deployed,
    /// The API or one of its non-staging plans changed since the last deployment, or it was
    /// never deployed.
    NeedRedeploy,
}

/// An API: what a gateway serves under a context path, protected by its plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Api {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where a gateway serves it, e.g. `/echo`.
    pub context_path: String,
    /// Where a gateway forwards it, e.g. `http://127.0.0.1:9000`.
    pub backend: String,
    /// Computed: the current definition compared with the deployed one.
    pub deployment_state: DeploymentState,
    /// When it was last deployed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deployed_at: Option<OffsetDateTime>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its own fields last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// How a plan secures its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanSecurity {
    /// A verified JWT and an accepted subscription of its client.
    Jwt,
    /// No credential: never publishable.
    Keyless,
}

/// How a plan's new subscriptions are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// Accepted at once, starting now.
    Auto,
    /// Pending until a publisher accepts or rejects them.
    Manual,
}

/// A plan of an API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    /// Its id.
    pub id: String,
    /// The API it belongs to.
    pub api: String,
    /// Display name.
    pub name: String,
    /// `jwt` or `keyless`.
    pub security: PlanSecurity,
    /// `auto` or `manual`.
    pub validation: Validation,
    /// The JWT settings: present exactly for JWT plans.
    pub jwt: Option<JwtDefinition>,
    /// Rate limit, quota and spike arrest of its subscriptions (JWT plans only); `None`:
    /// unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<Restrictions>,
    /// Its status.
    pub status: PlanStatus,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Whether an application may hold subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationStatus {
    /// In use; its client id is reserved.
    Active,
    /// Archived: its subscriptions are closed and its client id is free.
    Archived,
}

impl ApplicationStatus {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Archived].into_iter().find(|s| s.as_str() == text)
    }
}

/// A consumer application, identified in tokens by its client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Application {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The OAuth client id its tokens carry; unique among active applications.
    pub client_id: String,
    /// Active or archived.
    pub status: ApplicationStatus,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An application's subscription to a plan. It refers to the application, never to a copy of
/// its client id, so a client id change applies to every subscription at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// The API.
    pub api: String,
    /// The plan.
    pub plan: String,
    /// The subscribing application.
    pub application: String,
    /// Its status.
    pub status: SubscriptionStatus,
    /// It serves only strictly after this instant, when set.
    #[serde(with = "time::serde::rfc3339::option")]
    pub starting_at: Option<OffsetDateTime>,
    /// It serves only strictly before this instant, when set.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ending_at: Option<OffsetDateTime>,
    /// Why it was rejected, when given.
    pub reason: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A plan as deployed: what the enforcement side serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeployedPlan {
    /// The plan's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `jwt` or `keyless`.
    pub security: PlanSecurity,
    /// `auto` or `manual`.
    pub validation: Validation,
    /// Its status when deployed (never `staging`).
    pub status: PlanStatus,
    /// The JWT settings.
    pub jwt: Option<JwtDefinition>,
    /// Its restrictions, if any (absent in deployments recorded before restrictions existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<Restrictions>,
}

/// An API's definition: the API and its non-staging plans (ordered by id). Comparing the
/// current definition with the deployed one gives the deployment state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiDefinition {
    /// The API's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Context path.
    pub context_path: String,
    /// Backend.
    pub backend: String,
    /// Non-staging plans, ordered by id.
    pub plans: Vec<DeployedPlan>,
}

/// One deployment of an API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Deployment {
    /// The API.
    pub api: String,
    /// 1 for the first deployment of the API, then +1 each time.
    pub revision: u64,
    /// An optional label given by the deployer.
    pub label: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub deployed_at: OffsetDateTime,
    /// What was deployed.
    pub definition: ApiDefinition,
}

/// Creates an API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NewApi {
    /// An id (`[A-Za-z0-9._-]{1,64}`), or `None` for a generated one.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Where a gateway serves it: starts with `/`, no empty, `.` or `..` segments.
    pub context_path: String,
    /// An `http` or `https` URL.
    pub backend: String,
}

impl NewApi {
    /// An API with a generated id.
    pub fn new(
        name: impl Into<String>,
        context_path: impl Into<String>,
        backend: impl Into<String>,
    ) -> Self {
        Self {
            id: None,
            name: name.into(),
            context_path: context_path.into(),
            backend: backend.into(),
        }
    }

    /// Choose the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Creates a plan (in staging), or replaces a plan's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NewPlan {
    /// An id, or `None` for a generated one (updates: `None` or the same id).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// `jwt` or `keyless`.
    pub security: PlanSecurity,
    /// `auto` or `manual`.
    pub validation: Validation,
    /// Required for JWT plans, refused for keyless ones.
    #[serde(default)]
    pub jwt: Option<JwtDefinition>,
    /// Rate limit, quota and spike arrest (JWT plans only); empty restrictions mean `None`.
    #[serde(default)]
    pub restrictions: Option<Restrictions>,
}

impl NewPlan {
    /// A JWT plan.
    pub fn jwt(name: impl Into<String>, validation: Validation, jwt: JwtDefinition) -> Self {
        Self {
            id: None,
            name: name.into(),
            security: PlanSecurity::Jwt,
            validation,
            jwt: Some(jwt),
            restrictions: None,
        }
    }

    /// Restrict the plan's subscriptions (rate limit, quota, spike arrest).
    #[must_use]
    pub fn with_restrictions(mut self, restrictions: Restrictions) -> Self {
        self.restrictions = Some(restrictions);
        self
    }

    /// A keyless plan (it can never be published).
    pub fn keyless(name: impl Into<String>) -> Self {
        Self {
            id: None,
            name: name.into(),
            security: PlanSecurity::Keyless,
            validation: Validation::Auto,
            jwt: None,
            restrictions: None,
        }
    }

    /// Choose the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Creates an application, or replaces its name and client id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NewApplication {
    /// An id, or `None` for a generated one (updates: `None` or the same id).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// The client id its tokens carry (1 to 256 characters, no control characters).
    pub client_id: String,
}

impl NewApplication {
    /// An application with a generated id.
    pub fn new(name: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self { id: None, name: name.into(), client_id: client_id.into() }
    }

    /// Choose the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Subscribes an application to a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NewSubscription {
    /// An id, or `None` for a generated one.
    #[serde(default)]
    pub id: Option<String>,
    /// The application.
    pub application: String,
    /// The plan (a published plan of the API).
    pub plan: String,
}

impl NewSubscription {
    /// A subscription with a generated id.
    pub fn new(application: impl Into<String>, plan: impl Into<String>) -> Self {
        Self { id: None, application: application.into(), plan: plan.into() }
    }

    /// Choose the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Optional dates given when accepting a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptOptions {
    /// Serves only after this instant. Default: now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starting_at: Option<OffsetDateTime>,
    /// Serves only before this instant. Default: no end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ending_at: Option<OffsetDateTime>,
}

/// Which subscriptions of an API to list; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFilter {
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

impl SubscriptionFilter {
    pub(crate) fn matches(&self, sub: &Subscription) -> bool {
        self.status.is_none_or(|s| s == sub.status)
            && self.application.as_ref().is_none_or(|a| *a == sub.application)
            && self.plan.as_ref().is_none_or(|p| *p == sub.plan)
    }
}

/// Check a caller-given id, or make one.
pub(crate) fn id_or_new(given: Option<&str>) -> Result<String, CatalogError> {
    match given {
        Some(id) => {
            let ok = (1..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if ok {
                Ok(id.to_owned())
            } else {
                Err(CatalogError::invalid("id", "must match [A-Za-z0-9._-]{1,64}"))
            }
        }
        None => new_id(),
    }
}

fn new_id() -> Result<String, CatalogError> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CatalogError::StoreUnavailable("no randomness for a new id".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Now, to the millisecond (what every store keeps).
pub(crate) fn now() -> OffsetDateTime {
    from_millis(to_millis(OffsetDateTime::now_utc()))
}

pub(crate) fn to_millis(at: OffsetDateTime) -> i64 {
    // i64 milliseconds cover ±292 million years, beyond `time`'s range, so this cannot truncate.
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
