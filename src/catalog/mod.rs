//! The catalog: APIs, plans, applications, subscriptions and deployments, managed by rules kept
//! in one place and persisted in memory, in SQLite (feature `sqlite`) or in PostgreSQL (feature
//! `postgres`); and [`LiveCatalog`], the in-memory view that a gateway enforces from.
//!
//! - **APIs** each have a context path of their own (a trailing `/` aside), checked inside the
//!   write transaction, so concurrent writers cannot both take one.
//! - **Plans** move staging → published → deprecated, and any of these → closed. Publishing
//!   a keyless plan is refused. Closing a plan closes its subscriptions at once, irreversibly.
//! - **Applications** carry a client id, unique among active applications (the store enforces
//!   it). Subscriptions refer to the application, so a client id change applies at once.
//! - **Subscriptions** are made to published JWT plans only, at most one pending, accepted or
//!   paused per application and API (the store enforces it); auto validation accepts at once.
//! - **Deployments** record an API's definition (the API and its non-staging plans). An API is
//!   `need_redeploy` when its current definition differs from the deployed one. Subscription
//!   and application changes need no deployment.
//!
//! Every operation is one transaction: it either applies whole or returns a [`CatalogError`]
//! and changes nothing.
//!
//! ```
//! use tower_jwt_plan::catalog::{Catalog, CatalogError, NewApi, NewApplication, NewPlan, NewSubscription, Validation, SubscriptionStatus};
//! use tower_jwt_plan::definition::JwtDefinition;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CatalogError> {
//! let catalog = Catalog::memory();
//! let api = catalog.create_api(&NewApi::new("Echo", "/echo", "http://127.0.0.1:9000")).await?;
//! let jwt = JwtDefinition::jwks_url("https://idp.example/.well-known/jwks.json");
//! let gold = catalog.create_plan(&api.id, &NewPlan::jwt("Gold", Validation::Auto, jwt)).await?;
//! catalog.publish_plan(&api.id, &gold.id).await?;
//! catalog.deploy(&api.id, None).await?;
//!
//! let app = catalog.create_application(&NewApplication::new("My app", "my-client")).await?;
//! let sub = catalog.subscribe(&api.id, &NewSubscription::new(&app.id, &gold.id)).await?;
//! assert_eq!(sub.status, SubscriptionStatus::Accepted);
//!
//! let again = catalog.subscribe(&api.id, &NewSubscription::new(&app.id, &gold.id)).await;
//! assert_eq!(again.unwrap_err().code(), "ALREADY_SUBSCRIBED");
//! # Ok(()) }
//! ```

mod error;
mod live;
mod memory;
mod model;
mod rules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use std::fmt;

pub use error::CatalogError;
pub use live::{DeployedApi, LiveCatalog, LiveCatalogBuilder};
pub use model::{
    AcceptOptions, Api, ApiDefinition, Application, ApplicationStatus, DeployedPlan, Deployment,
    DeploymentState, NewApi, NewApplication, NewPlan, NewSubscription, Plan, PlanSecurity,
    PlanStatus, Subscription, SubscriptionFilter, SubscriptionStatus, Validation,
};

use rules::SubscriptionAction;

/// The sqlx version the SQL stores use (for [`Catalog::from_postgres_pool`] and direct access).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;

/// Everything the live view loads, read in one transaction.
pub(crate) struct Snapshot {
    pub(crate) revision: u64,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) applications: Vec<Application>,
    pub(crate) subscriptions: Vec<Subscription>,
}

async fn load_snapshot<T: rules::Tx>(tx: &mut T) -> Result<Snapshot, CatalogError> {
    Ok(Snapshot {
        revision: tx.revision().await?,
        deployments: tx.last_deployments().await?,
        applications: tx.applications().await?,
        subscriptions: tx.subscriptions(None).await?,
    })
}

#[derive(Clone)]
enum Backend {
    Memory(memory::MemoryStore),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Which kind of store a [`Catalog`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// In memory, in this process.
    Memory,
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// The catalog's operations over one store. Cheap to clone: clones share the store.
///
/// See the [module docs](self) for the rules and an example.
#[derive(Clone)]
pub struct Catalog {
    backend: Backend,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog").field("store", &self.store_kind()).finish()
    }
}

/// Run `$body` in a transaction of the catalog's store, with `$tx` bound to it; commit when it
/// returns `Ok`, roll back otherwise. `$mode` is `write`, `read` or `snapshot`.
macro_rules! in_tx {
    ($self:ident, $mode:ident, |$tx:ident| $body:expr) => {
        match &$self.backend {
            Backend::Memory(store) => {
                let mut $tx = store.begin(in_tx!(@is_write $mode)).await;
                let out = $body;
                if out.is_ok() {
                    $tx.commit();
                }
                out
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(pool) => {
                let mut $tx = sql::SqliteTx::begin(pool, sql::Mode::$mode).await?;
                match $body {
                    Ok(value) => $tx.commit().await.map(|()| value),
                    Err(err) => Err(err),
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(pool) => {
                let mut $tx = sql::PgTx::begin(pool, sql::Mode::$mode).await?;
                match $body {
                    Ok(value) => $tx.commit().await.map(|()| value),
                    Err(err) => Err(err),
                }
            }
        }
    };
    (@is_write Write) => { true };
    (@is_write Read) => { false };
    (@is_write Snapshot) => { false };
}

impl Catalog {
    /// A catalog held in this process's memory (nothing persists).
    pub fn memory() -> Self {
        Self { backend: Backend::Memory(memory::MemoryStore::default()) }
    }

    /// Open (creating it if absent) the SQLite database at `path` and run the migrations.
    ///
    /// Several processes may open the same file; their writes are serialised by SQLite.
    ///
    /// ```
    /// use tower_jwt_plan::catalog::{Catalog, NewApplication};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("tjp-doc-{}.db", std::process::id()));
    /// let catalog = Catalog::open_sqlite(&path).await?;
    /// catalog.create_application(&NewApplication::new("My app", "my-client")).await?;
    /// drop(catalog);
    ///
    /// let reopened = Catalog::open_sqlite(&path).await?; // a restart keeps everything
    /// assert_eq!(reopened.list_applications().await?.len(), 1);
    /// # drop(reopened);
    /// # for end in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{end}", path.display())); }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub async fn open_sqlite(path: impl AsRef<std::path::Path>) -> Result<Self, CatalogError> {
        Ok(Self { backend: Backend::Sqlite(sql::open_sqlite(path.as_ref()).await?) })
    }

    /// Connect to PostgreSQL at `url` (`postgres://user@host:port/db`) and run the migrations.
    #[cfg(feature = "postgres")]
    pub async fn connect_postgres(url: &str) -> Result<Self, CatalogError> {
        Ok(Self { backend: Backend::Postgres(sql::connect_postgres(url).await?) })
    }

    /// Use an existing PostgreSQL pool (migrations are run on it).
    #[cfg(feature = "postgres")]
    pub async fn from_postgres_pool(pool: sqlx::PgPool) -> Result<Self, CatalogError> {
        sql::migrate_postgres(&pool).await?;
        Ok(Self { backend: Backend::Postgres(pool) })
    }

    /// The kind of store.
    pub fn store_kind(&self) -> StoreKind {
        match &self.backend {
            Backend::Memory(_) => StoreKind::Memory,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => StoreKind::Sqlite,
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => StoreKind::Postgres,
        }
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.backend {
            Backend::Postgres(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The catalog's revision: it changes with every successful write, whoever made it.
    pub async fn revision(&self) -> Result<u64, CatalogError> {
        in_tx!(self, Read, |tx| rules::Tx::revision(&mut tx).await)
    }

    pub(crate) async fn snapshot(&self) -> Result<Snapshot, CatalogError> {
        in_tx!(self, Snapshot, |tx| load_snapshot(&mut tx).await)
    }

    // ---- APIs ----

    /// Create an API (`need_redeploy` until its first deployment). Refused
    /// ([`CatalogError::InvalidInput`] on `context_path`) when another API has the same context
    /// path, a trailing `/` aside.
    pub async fn create_api(&self, input: &NewApi) -> Result<Api, CatalogError> {
        in_tx!(self, Write, |tx| rules::create_api(&mut tx, input).await)
    }

    /// One API, with its deployment state.
    pub async fn get_api(&self, id: &str) -> Result<Api, CatalogError> {
        in_tx!(self, Read, |tx| rules::get_api(&mut tx, id).await)
    }

    /// Every API, ordered by id.
    pub async fn list_apis(&self) -> Result<Vec<Api>, CatalogError> {
        in_tx!(self, Read, |tx| rules::list_apis(&mut tx).await)
    }

    /// Replace an API's name, context path and backend. `input.id`, if given, must be `id`; the
    /// context path must not be another API's, as for [`create_api`](Self::create_api).
    pub async fn update_api(&self, id: &str, input: &NewApi) -> Result<Api, CatalogError> {
        in_tx!(self, Write, |tx| rules::update_api(&mut tx, id, input).await)
    }

    /// Delete an API with its plans, subscriptions and deployments. Refused while a plan is
    /// published or deprecated.
    pub async fn delete_api(&self, id: &str) -> Result<(), CatalogError> {
        in_tx!(self, Write, |tx| rules::delete_api(&mut tx, id).await)
    }

    /// Record the API's current definition as deployed, with the next revision number.
    pub async fn deploy(&self, api: &str, label: Option<&str>) -> Result<Deployment, CatalogError> {
        in_tx!(self, Write, |tx| rules::deploy(&mut tx, api, label).await)
    }

    /// The API's last deployment, if any.
    pub async fn last_deployment(&self, api: &str) -> Result<Option<Deployment>, CatalogError> {
        in_tx!(self, Read, |tx| rules::last_deployment(&mut tx, api).await)
    }

    // ---- Plans ----

    /// Create a plan, in staging.
    pub async fn create_plan(&self, api: &str, input: &NewPlan) -> Result<Plan, CatalogError> {
        in_tx!(self, Write, |tx| rules::create_plan(&mut tx, api, input).await)
    }

    /// One plan of an API.
    pub async fn get_plan(&self, api: &str, id: &str) -> Result<Plan, CatalogError> {
        in_tx!(self, Read, |tx| rules::get_plan(&mut tx, api, id).await)
    }

    /// The plans of an API, ordered by id.
    pub async fn list_plans(&self, api: &str) -> Result<Vec<Plan>, CatalogError> {
        in_tx!(self, Read, |tx| rules::list_plans(&mut tx, api).await)
    }

    /// Replace a plan's name, security, validation and JWT settings (not its status; `input.id`,
    /// if given, must be `id`). Refused
    /// for a closed plan; turning a published or deprecated plan keyless is refused.
    pub async fn update_plan(
        &self,
        api: &str,
        id: &str,
        input: &NewPlan,
    ) -> Result<Plan, CatalogError> {
        in_tx!(self, Write, |tx| rules::update_plan(&mut tx, api, id, input).await)
    }

    /// staging → published. Refused for keyless plans.
    pub async fn publish_plan(&self, api: &str, id: &str) -> Result<Plan, CatalogError> {
        in_tx!(self, Write, |tx| rules::publish_plan(&mut tx, api, id).await)
    }

    /// published → deprecated: no new subscriptions, existing ones keep serving.
    pub async fn deprecate_plan(&self, api: &str, id: &str) -> Result<Plan, CatalogError> {
        in_tx!(self, Write, |tx| rules::deprecate_plan(&mut tx, api, id).await)
    }

    /// staging, published or deprecated → closed, closing all its subscriptions at once.
    pub async fn close_plan(&self, api: &str, id: &str) -> Result<Plan, CatalogError> {
        in_tx!(self, Write, |tx| rules::close_plan(&mut tx, api, id).await)
    }

    /// Delete a staging, closed or keyless plan without active subscriptions.
    pub async fn delete_plan(&self, api: &str, id: &str) -> Result<(), CatalogError> {
        in_tx!(self, Write, |tx| rules::delete_plan(&mut tx, api, id).await)
    }

    // ---- Applications ----

    /// Create an active application. Its client id must be free among active applications.
    pub async fn create_application(
        &self,
        input: &NewApplication,
    ) -> Result<Application, CatalogError> {
        in_tx!(self, Write, |tx| rules::create_application(&mut tx, input).await)
    }

    /// One application.
    pub async fn get_application(&self, id: &str) -> Result<Application, CatalogError> {
        in_tx!(self, Read, |tx| rules::get_application(&mut tx, id).await)
    }

    /// Every application, ordered by id.
    pub async fn list_applications(&self) -> Result<Vec<Application>, CatalogError> {
        in_tx!(self, Read, |tx| rules::list_applications(&mut tx).await)
    }

    /// Replace an application's name and client id; all its subscriptions follow at once.
    /// `input.id`, if given, must be `id`.
    pub async fn update_application(
        &self,
        id: &str,
        input: &NewApplication,
    ) -> Result<Application, CatalogError> {
        in_tx!(self, Write, |tx| rules::update_application(&mut tx, id, input).await)
    }

    /// Archive an application: its active subscriptions are closed and its client id freed.
    pub async fn archive_application(&self, id: &str) -> Result<Application, CatalogError> {
        in_tx!(self, Write, |tx| rules::archive_application(&mut tx, id).await)
    }

    // ---- Subscriptions ----

    /// Subscribe an application to a published JWT plan: `accepted` (from now) with auto
    /// validation, `pending` with manual validation.
    pub async fn subscribe(
        &self,
        api: &str,
        input: &NewSubscription,
    ) -> Result<Subscription, CatalogError> {
        in_tx!(self, Write, |tx| rules::subscribe(&mut tx, api, input).await)
    }

    /// One subscription of an API.
    pub async fn get_subscription(
        &self,
        api: &str,
        id: &str,
    ) -> Result<Subscription, CatalogError> {
        in_tx!(self, Read, |tx| rules::get_subscription(&mut tx, api, id).await)
    }

    /// The subscriptions of an API matching `filter`, ordered by id.
    pub async fn list_subscriptions(
        &self,
        api: &str,
        filter: &SubscriptionFilter,
    ) -> Result<Vec<Subscription>, CatalogError> {
        in_tx!(self, Read, |tx| rules::list_subscriptions(&mut tx, api, filter).await)
    }

    /// pending → accepted, optionally with dates (default: from now, no end).
    pub async fn accept_subscription(
        &self,
        api: &str,
        id: &str,
        options: &AcceptOptions,
    ) -> Result<Subscription, CatalogError> {
        self.act(api, id, SubscriptionAction::Accept(options)).await
    }

    /// pending → rejected, with an optional reason.
    pub async fn reject_subscription(
        &self,
        api: &str,
        id: &str,
        reason: Option<&str>,
    ) -> Result<Subscription, CatalogError> {
        self.act(api, id, SubscriptionAction::Reject(reason)).await
    }

    /// accepted → paused.
    pub async fn pause_subscription(
        &self,
        api: &str,
        id: &str,
    ) -> Result<Subscription, CatalogError> {
        self.act(api, id, SubscriptionAction::Pause).await
    }

    /// paused → accepted.
    pub async fn resume_subscription(
        &self,
        api: &str,
        id: &str,
    ) -> Result<Subscription, CatalogError> {
        self.act(api, id, SubscriptionAction::Resume).await
    }

    /// pending, accepted or paused → closed.
    pub async fn close_subscription(
        &self,
        api: &str,
        id: &str,
    ) -> Result<Subscription, CatalogError> {
        self.act(api, id, SubscriptionAction::Close).await
    }

    /// Move an accepted or paused subscription to another published JWT plan of the same API.
    pub async fn transfer_subscription(
        &self,
        api: &str,
        id: &str,
        plan: &str,
    ) -> Result<Subscription, CatalogError> {
        self.act(api, id, SubscriptionAction::Transfer(plan)).await
    }

    async fn act(
        &self,
        api: &str,
        id: &str,
        action: SubscriptionAction<'_>,
    ) -> Result<Subscription, CatalogError> {
        in_tx!(self, Write, |tx| rules::act(&mut tx, api, id, action).await)
    }
}
