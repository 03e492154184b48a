//! DB mode: the catalog store named by `--store`, and the proxy serving what the catalog's
//! live view has deployed.
//!
//! `LiveCatalog` (the library) keeps the deployed definitions, applications and subscriptions
//! in memory and follows the store (PostgreSQL `LISTEN/NOTIFY` plus a 200 ms revision poll;
//! SQLite: the poll), so a change made through any gateway on the same store is served by all
//! within a second. Subscription and application changes reach the layers' shared resolver
//! with no routing change; each new revision rebuilds the routing table from the deployed
//! APIs, one route per API over the layer the live view keeps for it. While the store is
//! unreachable the last snapshot keeps serving. Imports [`crate::routing`],
//! [`crate::proxy`], [`crate::serve`], [`crate::redact`] and [`crate::config`].

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tower::Layer;
use tower_jwt_plan::JwksCache;
use tower_jwt_plan::catalog::{Catalog, LiveCatalog};
use tower_jwt_plan::limit::PlanLimitLayer;

use crate::config::DEFAULT_BACKEND_TIMEOUT;
use crate::proxy::{Backend, HttpClient, Proxy};
use crate::redact::redact_userinfo;
use crate::routing::{Route, RoutingTable, Summary};
use crate::serve::Gateway;

/// Where the catalog lives: `sqlite:PATH` or a `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A SQLite file, created if absent.
    Sqlite(PathBuf),
    /// A PostgreSQL database (several gateways may share it).
    Postgres(String),
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => write!(f, "{}", redact_userinfo(url)),
        }
    }
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("`sqlite:` needs a file path, e.g. sqlite:gateway.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_owned()));
        }
        Err("expected sqlite:PATH or postgres://USER@HOST:PORT/DB".into())
    }
}

impl StoreSpec {
    /// Open the store (running its migrations).
    pub async fn open(&self) -> Result<Catalog, String> {
        let opened = match self {
            Self::Sqlite(path) => Catalog::open_sqlite(path).await,
            Self::Postgres(url) => Catalog::connect_postgres(url).await,
        };
        opened.map_err(|err| {
            let cause =
                std::error::Error::source(&err).map(|c| format!(": {c}")).unwrap_or_default();
            redact_userinfo(&format!("cannot open the store {self:?}: {err}{cause}"))
        })
    }
}

/// JWKS caches the live view built, kept so the demo can wait for its keys.
#[derive(Clone, Default)]
pub(crate) struct KnownCaches(Arc<Mutex<Vec<JwksCache>>>);

impl KnownCaches {
    /// Wait until every cache holds keys, or `timeout` passes.
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> bool {
        let caches = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let deadline = Instant::now() + timeout;
        for cache in caches {
            if !cache.wait_ready(deadline.saturating_duration_since(Instant::now())).await {
                return false;
            }
        }
        true
    }
}

/// Start the live view of `catalog`; with `known`, remember the JWKS caches it builds.
pub(crate) async fn start_live(
    catalog: Catalog,
    known: Option<KnownCaches>,
) -> Result<LiveCatalog, String> {
    let mut builder = LiveCatalog::builder(catalog);
    if let Some(known) = known {
        builder = builder.jwks_cache(move |url: &str| {
            let cache = JwksCache::builder(url).build()?;
            known.0.lock().unwrap_or_else(PoisonError::into_inner).push(cache.clone());
            Ok(cache)
        });
    }
    builder.start().await.map_err(|err| {
        let cause = std::error::Error::source(&err).map(|c| format!(": {c}")).unwrap_or_default();
        redact_userinfo(&format!("cannot load the catalog: {err}{cause}"))
    })
}

/// The routing table of what `live` serves now: one route per deployed API.
pub(crate) fn table_of(
    live: &LiveCatalog,
    client: &HttpClient,
    limit: &PlanLimitLayer,
) -> RoutingTable {
    let apis = live.apis();
    let mut routes = Vec::with_capacity(apis.len());
    for api in apis.iter() {
        let backend = match Backend::parse(&api.backend) {
            Ok(backend) => backend,
            Err(why) => {
                // The management API refuses such backends; another writer may not have.
                tracing::error!(
                    api = %api.id,
                    backend = %redact_userinfo(&api.backend),
                    why,
                    "deployed API not routed: its backend cannot be served"
                );
                continue;
            }
        };
        let prefix = api.context_path.trim_end_matches('/').to_owned();
        if routes.iter().any(|r: &Route| r.prefix == prefix) {
            tracing::error!(api = %api.id, context_path = %api.context_path, "deployed API not routed: its context path is served by another API");
            continue;
        }
        limit.limits().replace_api(
            api.id.as_str(),
            api.restrictions.iter().map(|(plan, r)| (plan.as_str(), *r)),
        );
        let proxy = Proxy::new(prefix.len(), backend, DEFAULT_BACKEND_TIMEOUT, client);
        // The restrictions sit inside the JWT layer: they count only authorised requests.
        let service = api.layer.layer(limit.layer(proxy.clone()));
        routes.push(Route { api: api.id.as_str().into(), prefix, service, proxy });
    }
    routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
    let summary = Summary { apis: routes.len(), ..Summary::default() };
    RoutingTable { routes, metadata: Vec::new(), listen: None, summary }
}

/// Rebuild the gateway's routing table on every new revision the live view serves.
pub(crate) async fn follow(live: LiveCatalog, gateway: Gateway) {
    let mut changes = live.changes();
    while changes.changed().await.is_ok() {
        let revision = *changes.borrow_and_update();
        let table = table_of(&live, gateway.client(), gateway.limit());
        let apis = table.summary.apis;
        gateway.install(table);
        tracing::debug!(target: "gateway::store", revision, apis, "catalog revision served");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs() {
        assert_eq!("sqlite:/tmp/g.db".parse(), Ok(StoreSpec::Sqlite("/tmp/g.db".into())));
        assert_eq!("sqlite://g.db".parse(), Ok(StoreSpec::Sqlite("g.db".into())));
        assert!("sqlite:".parse::<StoreSpec>().is_err());
        assert!("mysql://x".parse::<StoreSpec>().is_err());
        let pg: StoreSpec = "postgres://u:secret@h:5432/db".parse().unwrap();
        assert!(!format!("{pg:?}").contains("secret"));
    }
}
