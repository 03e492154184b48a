//! The in-memory store: the whole catalog behind one async mutex. A transaction works on a
//! copy and replaces the state on commit, so a refused operation leaves nothing behind. It
//! enforces the same unique rules as the SQL schema's indexes.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::CatalogError;
use super::model::{Api, Application, ApplicationStatus, Deployment, Plan, Subscription};
use super::rules::{Tx, WriteError};

#[derive(Clone, Default)]
pub(crate) struct State {
    revision: u64,
    apis: BTreeMap<String, Api>,
    plans: BTreeMap<String, Plan>,
    applications: BTreeMap<String, Application>,
    subscriptions: BTreeMap<String, Subscription>,
    deployments: BTreeMap<(String, u64), Deployment>,
}

#[derive(Clone, Default)]
pub(crate) struct MemoryStore {
    state: Arc<Mutex<State>>,
}

pub(crate) struct MemoryTx {
    guard: OwnedMutexGuard<State>,
    work: State,
}

impl MemoryStore {
    pub(crate) async fn begin(&self, write: bool) -> MemoryTx {
        let guard = self.state.clone().lock_owned().await;
        let mut work = guard.clone();
        if write {
            work.revision += 1;
        }
        MemoryTx { guard, work }
    }
}

impl MemoryTx {
    pub(crate) fn commit(mut self) {
        *self.guard = self.work;
    }
}

fn put<T: Clone>(
    map: &mut BTreeMap<String, T>,
    id: &str,
    row: &T,
    insert: bool,
) -> Result<(), WriteError> {
    if insert && map.contains_key(id) {
        return Err(WriteError::Unique);
    }
    map.insert(id.to_owned(), row.clone());
    Ok(())
}

impl Tx for MemoryTx {
    async fn api(&mut self, id: &str) -> Result<Option<Api>, CatalogError> {
        Ok(self.work.apis.get(id).cloned())
    }

    async fn apis(&mut self) -> Result<Vec<Api>, CatalogError> {
        Ok(self.work.apis.values().cloned().collect())
    }

    async fn put_api(&mut self, api: &Api, insert: bool) -> Result<(), WriteError> {
        put(&mut self.work.apis, &api.id, api, insert)
    }

    async fn delete_api(&mut self, id: &str) -> Result<(), CatalogError> {
        let w = &mut self.work;
        w.subscriptions.retain(|_, s| s.api != id);
        w.plans.retain(|_, p| p.api != id);
        w.deployments.retain(|(api, _), _| api != id);
        w.apis.remove(id);
        Ok(())
    }

    async fn plan(&mut self, id: &str) -> Result<Option<Plan>, CatalogError> {
        Ok(self.work.plans.get(id).cloned())
    }

    async fn plans(&mut self, api: &str) -> Result<Vec<Plan>, CatalogError> {
        Ok(self.work.plans.values().filter(|p| p.api == api).cloned().collect())
    }

    async fn put_plan(&mut self, plan: &Plan, insert: bool) -> Result<(), WriteError> {
        put(&mut self.work.plans, &plan.id, plan, insert)
    }

    async fn delete_plan(&mut self, id: &str) -> Result<(), CatalogError> {
        self.work.subscriptions.retain(|_, s| s.plan != id);
        self.work.plans.remove(id);
        Ok(())
    }

    async fn application(&mut self, id: &str) -> Result<Option<Application>, CatalogError> {
        Ok(self.work.applications.get(id).cloned())
    }

    async fn applications(&mut self) -> Result<Vec<Application>, CatalogError> {
        Ok(self.work.applications.values().cloned().collect())
    }

    async fn put_application(&mut self, app: &Application, insert: bool) -> Result<(), WriteError> {
        // The schema's partial unique index: one active application per client id.
        let clash = app.status == ApplicationStatus::Active
            && self.work.applications.values().any(|a| {
                a.id != app.id
                    && a.status == ApplicationStatus::Active
                    && a.client_id == app.client_id
            });
        if clash {
            return Err(WriteError::Unique);
        }
        put(&mut self.work.applications, &app.id, app, insert)
    }

    async fn subscription(&mut self, id: &str) -> Result<Option<Subscription>, CatalogError> {
        Ok(self.work.subscriptions.get(id).cloned())
    }

    async fn subscriptions(
        &mut self,
        api: Option<&str>,
    ) -> Result<Vec<Subscription>, CatalogError> {
        let subs = self.work.subscriptions.values();
        Ok(subs.filter(|s| api.is_none_or(|api| s.api == api)).cloned().collect())
    }

    async fn put_subscription(
        &mut self,
        sub: &Subscription,
        insert: bool,
    ) -> Result<(), WriteError> {
        // The schema's partial unique index: one active subscription per application and API.
        let clash = sub.status.is_active()
            && self.work.subscriptions.values().any(|s| {
                s.id != sub.id
                    && s.status.is_active()
                    && s.application == sub.application
                    && s.api == sub.api
            });
        if clash {
            return Err(WriteError::Unique);
        }
        put(&mut self.work.subscriptions, &sub.id, sub, insert)
    }

    async fn last_deployment(&mut self, api: &str) -> Result<Option<Deployment>, CatalogError> {
        let deployments = self.work.deployments.values();
        Ok(deployments.filter(|d| d.api == api).max_by_key(|d| d.revision).cloned())
    }

    async fn last_deployments(&mut self) -> Result<Vec<Deployment>, CatalogError> {
        let mut last: BTreeMap<&str, &Deployment> = BTreeMap::new();
        for d in self.work.deployments.values() {
            last.insert(&d.api, d);
        }
        Ok(last.into_values().cloned().collect())
    }

    async fn insert_deployment(&mut self, deployment: &Deployment) -> Result<(), WriteError> {
        let key = (deployment.api.clone(), deployment.revision);
        if self.work.deployments.contains_key(&key) {
            return Err(WriteError::Unique);
        }
        self.work.deployments.insert(key, deployment.clone());
        Ok(())
    }

    async fn revision(&mut self) -> Result<u64, CatalogError> {
        Ok(self.work.revision)
    }
}
