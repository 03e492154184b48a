//! [`LiveCatalog`]: the catalog's deployed state in memory, kept current, for enforcement.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::model::{ApplicationStatus, Deployment, PlanSecurity};
use super::{Catalog, CatalogError, Snapshot};
use crate::definition::{Remotes, SharedRemotes};
use crate::limit::Restrictions;
use crate::{
    ConfigError, InMemoryResolver, JwksCache, JwtPlanLayer, RevocationList, SubscriptionResolver,
};

const LOG_TARGET: &str = "tower_jwt_plan::catalog";

/// One deployed API, as served now.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeployedApi {
    /// The API's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where a gateway serves it.
    pub context_path: String,
    /// Where a gateway forwards it.
    pub backend: String,
    /// The deployment's revision.
    pub revision: u64,
    /// When it was deployed.
    pub deployed_at: OffsetDateTime,
    /// The layer enforcing its deployed plans, answering subscriptions from the live view.
    pub layer: JwtPlanLayer<InMemoryResolver>,
    /// The deployed restrictions, by plan id (plans without any are absent): what a
    /// [`PlanLimitLayer`](crate::limit::PlanLimitLayer) inside `layer` enforces.
    pub restrictions: BTreeMap<String, Restrictions>,
}

impl fmt::Debug for DeployedApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeployedApi")
            .field("id", &self.id)
            .field("context_path", &self.context_path)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

type JwksFactory = dyn Fn(&str) -> Result<JwksCache, ConfigError> + Send + Sync;

/// Configures a [`LiveCatalog`]; see each setter for its default.
pub struct LiveCatalogBuilder {
    catalog: Catalog,
    poll_interval: Duration,
    warn_interval: Duration,
    jwks: Arc<JwksFactory>,
}

impl fmt::Debug for LiveCatalogBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCatalogBuilder")
            .field("catalog", &self.catalog)
            .field("poll_interval", &self.poll_interval)
            .field("warn_interval", &self.warn_interval)
            .finish_non_exhaustive()
    }
}

impl LiveCatalogBuilder {
    /// How often the store's revision is checked. Default: 200 ms (on PostgreSQL this is the
    /// safety net behind `LISTEN`, for notifications lost with a connection).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// At most one WARN line per this interval while the store is unreachable. Default: 10 s.
    pub fn warn_interval(mut self, every: Duration) -> Self {
        self.warn_interval = every;
        self
    }

    /// How the JWKS cache of a URL is built (once per URL, shared by every plan using it).
    /// Default: `JwksCache::builder(url).build()`.
    pub fn jwks_cache(
        mut self,
        build: impl Fn(&str) -> Result<JwksCache, ConfigError> + Send + Sync + 'static,
    ) -> Self {
        self.jwks = Arc::new(build);
        self
    }

    /// Load the first snapshot and start following the store. Must run inside a Tokio
    /// runtime: the follower task is spawned on it, and ends when the last clone of the
    /// returned view is dropped. Fails if the store cannot be read now.
    pub async fn start(self) -> Result<LiveCatalog, CatalogError> {
        let snapshot = self.catalog.snapshot().await?;
        let (changes, _) = watch::channel(snapshot.revision);
        let inner = Arc::new(Inner {
            catalog: self.catalog,
            resolver: InMemoryResolver::default(),
            apis: ArcSwap::from_pointee(Vec::new()),
            changes,
            health: Mutex::new(Health::default()),
            state: Mutex::new(Applied::default()),
            jwks: self.jwks,
            warn_interval: self.warn_interval,
        });
        inner.apply(snapshot);
        let weak = Arc::downgrade(&inner);
        #[cfg(feature = "postgres")]
        if let Some(pool) = inner.catalog.postgres_pool().cloned() {
            tokio::spawn(follow_postgres(weak, pool, self.poll_interval));
            return Ok(LiveCatalog { inner });
        }
        tokio::spawn(follow(weak, self.poll_interval));
        Ok(LiveCatalog { inner })
    }
}

/// The deployed definitions, applications and subscriptions of a [`Catalog`] held in memory
/// and kept current, for enforcement.
///
/// Requests never reach the store: subscriptions are answered by an [`InMemoryResolver`]
/// (lock-free reads) and each deployed API has a [`JwtPlanLayer`] redeployed when a new
/// deployment appears. A background task follows the store: it checks the catalog's revision
/// every `poll_interval` (200 ms by default) and, on PostgreSQL, also wakes on `LISTEN
/// tjp_catalog`, so a change made by any process is served within a second. A changed revision
/// loads a whole snapshot in one read transaction and applies it at once, so a half-applied
/// change is never served. When the store is unreachable the last snapshot keeps serving,
/// [`LiveCatalog::staleness`] says for how long, and a WARN line is logged once per
/// `warn_interval`; the view catches up as soon as the store answers again.
///
/// ```no_run
/// use tower_jwt_plan::catalog::{Catalog, LiveCatalog};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let live = LiveCatalog::builder(Catalog::memory()).start().await?;
/// let mut changes = live.changes();
/// loop {
///     for api in live.apis().iter() {
///         println!("{} at {} -> {}", api.id, api.context_path, api.backend);
///     }
///     changes.changed().await?; // rebuild the routing table on each new revision
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct LiveCatalog {
    inner: Arc<Inner>,
}

impl fmt::Debug for LiveCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCatalog")
            .field("revision", &self.revision())
            .field("apis", &self.apis().len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    catalog: Catalog,
    resolver: InMemoryResolver,
    apis: ArcSwap<Vec<DeployedApi>>,
    changes: watch::Sender<u64>,
    health: Mutex<Health>,
    /// Only the follower task touches it; never held across an await.
    state: Mutex<Applied>,
    jwks: Arc<JwksFactory>,
    warn_interval: Duration,
}

#[derive(Default)]
struct Health {
    /// Since when checks fail, if they do.
    failing_since: Option<Instant>,
    last_warn: Option<Instant>,
}

#[derive(Default)]
struct Applied {
    layers: HashMap<String, (Deployment, JwtPlanLayer<InMemoryResolver>)>,
    jwks: HashMap<String, JwksCache>,
    /// Caches from an `oidc_issuer` and revocation lists, shared per issuer or URL.
    remotes: SharedRemotes,
}

/// The live view's [`Remotes`]: JWKS URLs through the configured factory, issuers and
/// revocation lists through [`SharedRemotes`] (their workers spawned after the deploy).
struct LiveRemotes<'a> {
    factory: &'a JwksFactory,
    jwks: &'a mut HashMap<String, JwksCache>,
    shared: &'a mut SharedRemotes,
}

impl Remotes for LiveRemotes<'_> {
    fn jwks(&mut self, url: &str) -> Result<JwksCache, ConfigError> {
        if let Some(cache) = self.jwks.get(url) {
            return Ok(cache.clone());
        }
        let cache = (self.factory)(url)?;
        self.jwks.insert(url.to_owned(), cache.clone());
        Ok(cache)
    }

    fn oidc_issuer(&mut self, issuer: &str) -> Result<JwksCache, ConfigError> {
        self.shared.oidc_issuer(issuer)
    }

    fn revocation_list(&mut self, url: &str) -> Result<RevocationList, ConfigError> {
        self.shared.revocation_list(url)
    }
}

impl LiveCatalog {
    /// Start configuring a live view of `catalog`.
    pub fn builder(catalog: Catalog) -> LiveCatalogBuilder {
        LiveCatalogBuilder {
            catalog,
            poll_interval: Duration::from_millis(200),
            warn_interval: Duration::from_secs(10),
            jwks: Arc::new(|url: &str| JwksCache::builder(url).build()),
        }
    }

    /// The deployed APIs now served, ordered by id.
    pub fn apis(&self) -> Arc<Vec<DeployedApi>> {
        self.inner.apis.load_full()
    }

    /// One deployed API.
    pub fn api(&self, id: &str) -> Option<DeployedApi> {
        self.inner.apis.load().iter().find(|a| a.id == id).cloned()
    }

    /// The subscription resolver the layers use (answers from memory).
    pub fn resolver(&self) -> InMemoryResolver {
        self.inner.resolver.clone()
    }

    /// The catalog revision of the snapshot now served.
    pub fn revision(&self) -> u64 {
        *self.inner.changes.borrow()
    }

    /// Receives each new revision once its snapshot is served: rebuild routing tables on it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// `None` while the store answers; otherwise how long the view has been unable to check
    /// it (the last snapshot keeps serving meanwhile).
    pub fn staleness(&self) -> Option<Duration> {
        let health = self.inner.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.failing_since.map(|since| since.elapsed())
    }

    /// Check the store now and apply any change (the follower does this on its own).
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        self.inner.check().await
    }
}

impl SubscriptionResolver for LiveCatalog {
    type Future = <InMemoryResolver as SubscriptionResolver>::Future;

    fn resolve(&self, query: crate::SubscriptionQuery) -> Self::Future {
        self.inner.resolver.resolve(query)
    }

    fn resolve_now(
        &self,
        api: &str,
        plan: &str,
        client_id: &str,
    ) -> Option<Option<Arc<crate::Subscription>>> {
        self.inner.resolver.resolve_now(api, plan, client_id)
    }
}

impl Inner {
    async fn check(&self) -> Result<(), CatalogError> {
        let result = self.check_once().await;
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(()) => {
                if let Some(since) = health.failing_since.take() {
                    tracing::info!(
                        target: LOG_TARGET,
                        outage_ms = since.elapsed().as_millis() as u64,
                        "catalog store reachable again; live view caught up"
                    );
                }
                health.last_warn = None;
            }
            Err(err) => {
                let since = *health.failing_since.get_or_insert_with(Instant::now);
                let due = health.last_warn.is_none_or(|at| at.elapsed() >= self.warn_interval);
                if due {
                    health.last_warn = Some(Instant::now());
                    tracing::warn!(
                        target: LOG_TARGET,
                        error = %err,
                        cause = ?std::error::Error::source(err).map(ToString::to_string),
                        stale_ms = since.elapsed().as_millis() as u64,
                        revision = *self.changes.borrow(),
                        "catalog store unreachable; serving the last snapshot"
                    );
                }
            }
        }
        result
    }

    async fn check_once(&self) -> Result<(), CatalogError> {
        let revision = self.catalog.revision().await?;
        if revision == *self.changes.borrow() {
            return Ok(());
        }
        let snapshot = self.catalog.snapshot().await?;
        self.apply(snapshot);
        Ok(())
    }

    /// Serve a snapshot: layers first, then subscriptions, then the announcement.
    fn apply(&self, snapshot: Snapshot) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Two checks may race (the follower and `refresh`): never go back to an older state.
        if snapshot.revision < *self.changes.borrow() {
            return;
        }
        let state = &mut *state;
        let mut layers = HashMap::new();
        let mut apis = Vec::new();
        for deployment in snapshot.deployments {
            let id = deployment.api.clone();
            let layer = match state.layers.remove(&id) {
                Some((served, layer)) if served == deployment => Some(layer),
                previous => {
                    let mut remotes = LiveRemotes {
                        factory: &*self.jwks,
                        jwks: &mut state.jwks,
                        shared: &mut state.remotes,
                    };
                    self.deploy(&deployment, previous.map(|(_, l)| l), &mut remotes)
                }
            };
            let Some(layer) = layer else { continue };
            let def = &deployment.definition;
            apis.push(DeployedApi {
                id: id.clone(),
                name: def.name.clone(),
                context_path: def.context_path.clone(),
                backend: def.backend.clone(),
                revision: deployment.revision,
                deployed_at: deployment.deployed_at,
                layer: layer.clone(),
                restrictions: def
                    .plans
                    .iter()
                    .filter_map(|p| Some((p.id.clone(), p.restrictions?)))
                    .collect(),
            });
            layers.insert(id, (deployment, layer));
        }
        state.layers = layers;
        // Caches no plan uses any more are dropped, which stops their workers.
        let used: Vec<String> = state
            .layers
            .values()
            .flat_map(|(d, _)| d.definition.plans.iter())
            .filter_map(|p| p.jwt.as_ref().and_then(|j| j.jwks_url.clone()))
            .collect();
        state.jwks.retain(|url, _| used.contains(url));
        // Issuer caches and lists: keep those still used, spawn the workers of new ones.
        let mut kept = SharedRemotes::reusing(&state.remotes);
        for def in state.layers.values().flat_map(|(d, _)| d.definition.plans.iter()) {
            let Some(jwt) = &def.jwt else { continue };
            if let Some(issuer) = &jwt.oidc_issuer {
                let _ = kept.oidc_issuer(issuer);
            }
            if let Some(url) = &jwt.revocation_list_url {
                let _ = kept.revocation_list(url);
            }
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            for worker in state.remotes.take_workers().into_iter().chain(kept.take_workers()) {
                runtime.spawn(worker.run());
            }
        }
        state.remotes = kept;

        let clients: HashMap<&str, &str> = snapshot
            .applications
            .iter()
            .filter(|a| a.status == ApplicationStatus::Active)
            .map(|a| (a.id.as_str(), a.client_id.as_str()))
            .collect();
        // Only active subscriptions of active applications: at most one per (api, client id),
        // so no closed one can shadow the live one.
        let subscriptions =
            snapshot.subscriptions.iter().filter(|s| s.status.is_active()).filter_map(|s| {
                let client_id = clients.get(s.application.as_str())?;
                let mut sub = crate::Subscription::new(
                    s.id.as_str(),
                    s.api.as_str(),
                    s.plan.as_str(),
                    s.application.as_str(),
                    *client_id,
                    s.status,
                );
                if let Some(at) = s.starting_at {
                    sub = sub.starting_at(SystemTime::from(at));
                }
                if let Some(at) = s.ending_at {
                    sub = sub.ending_at(SystemTime::from(at));
                }
                Some(sub)
            });
        self.resolver.replace_all(subscriptions.collect::<Vec<_>>());
        self.apis.store(Arc::new(apis));
        self.changes.send_replace(snapshot.revision);
    }

    /// Build or redeploy the layer of one deployment; on a refused definition keep what served.
    fn deploy(
        &self,
        deployment: &Deployment,
        previous: Option<JwtPlanLayer<InMemoryResolver>>,
        remotes: &mut LiveRemotes<'_>,
    ) -> Option<JwtPlanLayer<InMemoryResolver>> {
        let mut plans = Vec::new();
        for plan in &deployment.definition.plans {
            let status = plan.status;
            let built = match (&plan.security, &plan.jwt) {
                (PlanSecurity::Jwt, Some(jwt)) => {
                    match jwt.compile_plan(&plan.id, &plan.name, status, remotes) {
                        Ok(built) => built,
                        Err(err) => {
                            refused(deployment, &err);
                            return previous;
                        }
                    }
                }
                _ => crate::Plan::new(
                    plan.id.as_str(),
                    plan.name.as_str(),
                    status,
                    crate::PlanSecurity::Keyless,
                ),
            };
            plans.push(built);
        }
        let result = match &previous {
            Some(layer) => layer.redeploy(plans).map(|()| layer.clone()),
            None => JwtPlanLayer::builder(deployment.api.as_str())
                .plans(plans)
                .resolver(self.resolver.clone())
                .build(),
        };
        match result {
            Ok(layer) => Some(layer),
            Err(err) => {
                refused(deployment, &err);
                previous
            }
        }
    }
}

fn refused(deployment: &Deployment, err: &dyn std::error::Error) {
    tracing::error!(
        target: LOG_TARGET,
        api = %deployment.api,
        revision = deployment.revision,
        error = %err,
        "deployment refused by the layer; the previous one keeps serving"
    );
}

/// Poll the revision until the view is dropped.
async fn follow(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        let _ = inner.check().await;
    }
}

#[cfg(feature = "postgres")]
async fn subscribe(pool: &sqlx::PgPool) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.ok()?;
    listener.listen("tjp_catalog").await.ok()?;
    Some(listener)
}

/// Wake on `NOTIFY tjp_catalog`, and poll as a safety net for notifications lost with a
/// connection; until the view is dropped.
#[cfg(feature = "postgres")]
async fn follow_postgres(inner: Weak<Inner>, pool: sqlx::PgPool, every: Duration) {
    let mut listener = None;
    loop {
        if listener.is_none() {
            listener = subscribe(&pool).await;
        }
        let lost = match listener.as_mut() {
            Some(l) => tokio::select! {
                got = l.try_recv() => !matches!(got, Ok(Some(_))),
                () = tokio::time::sleep(every) => false,
            },
            None => {
                tokio::time::sleep(every).await;
                false
            }
        };
        if lost {
            // Reconnected from scratch on the next turn; the check below covers the gap.
            listener = None;
        }
        let Some(inner) = inner.upgrade() else { return };
        let _ = inner.check().await;
    }
}
