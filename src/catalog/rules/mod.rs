//! The catalog's rules, written once over [`Tx`], the row operations every store provides: one
//! file per kind of record, the shared checks here.
//!
//! Each function runs inside one transaction opened by [`Catalog`](super::Catalog): write
//! transactions are serialised by the store (the first statement of each bumps the catalog's
//! revision row), so a rule's checks and its writes see one consistent state. The schema's
//! unique indexes back the two rules that matter under concurrency (one active client id, one
//! active subscription per application and API); a violation reported by a store is mapped to
//! the same typed error as the check that precedes it.

mod api;
mod application;
mod plan;
mod subscription;

pub(crate) use api::{
    create_api, delete_api, deploy, get_api, last_deployment, list_apis, update_api,
};
pub(crate) use application::{
    archive_application, create_application, get_application, list_applications, update_application,
};
pub(crate) use plan::{
    close_plan, create_plan, delete_plan, deprecate_plan, get_plan, list_plans, publish_plan,
    update_plan,
};
pub(crate) use subscription::{
    SubscriptionAction, act, get_subscription, list_subscriptions, subscribe,
};

use super::CatalogError;
use super::model::{Api, Application, Deployment, Plan, Subscription};

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

pub(super) fn check_name(field: &str, name: &str) -> Result<(), CatalogError> {
    if name.trim().is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(CatalogError::invalid(
            field,
            "must be 1 to 256 characters, no control characters",
        ));
    }
    Ok(())
}

pub(super) async fn api_or_404<T: Tx>(tx: &mut T, id: &str) -> Result<Api, CatalogError> {
    tx.api(id).await?.ok_or_else(|| CatalogError::not_found("api", id))
}

/// The plan `plan` of `api`: a plan of another API is not found.
pub(super) async fn plan_or_404<T: Tx>(
    tx: &mut T,
    api: &str,
    plan: &str,
) -> Result<Plan, CatalogError> {
    match tx.plan(plan).await? {
        Some(p) if p.api == api => Ok(p),
        _ => Err(CatalogError::not_found("plan", plan)),
    }
}

pub(super) async fn put_sub<T: Tx>(tx: &mut T, sub: &Subscription) -> Result<(), CatalogError> {
    tx.put_subscription(sub, false).await.map_err(|e| {
        e.or(|| CatalogError::AlreadySubscribed {
            application: sub.application.clone(),
            api: sub.api.clone(),
        })
    })
}

/// An update may repeat the record's id, never change it.
pub(super) fn same_id(given: Option<&str>, id: &str) -> Result<(), CatalogError> {
    match given {
        Some(other) if other != id => Err(CatalogError::invalid("id", "an id cannot be changed")),
        _ => Ok(()),
    }
}
