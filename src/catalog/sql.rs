//! The SQL stores (sqlx): one text of every query, compiled for SQLite and for PostgreSQL.
//!
//! Both dialects accept `$N` parameters and the same statements, so a macro instantiates the
//! row operations once per database. What differs is how a transaction starts: SQLite takes the
//! write lock with `BEGIN IMMEDIATE`; PostgreSQL locks the revision row, and reads a snapshot
//! for the live view under `REPEATABLE READ` so that it never sees half of a change.

use std::time::Duration;

use sqlx::Row as _;
use sqlx::types::Json;

use super::CatalogError;
use super::model::{
    Api, ApiDefinition, Application, ApplicationStatus, Deployment, DeploymentState, Plan,
    PlanSecurity, PlanStatus, Subscription, SubscriptionStatus, Validation, from_millis, to_millis,
};
use super::rules::{Tx, WriteError};
use crate::definition::JwtDefinition;
use crate::limit::Restrictions;

/// How a transaction is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Changes something: serialised with every other write.
    Write,
    /// Reads a few rows.
    Read,
    /// Reads everything the live view needs, as one consistent state.
    Snapshot,
}

const BUMP: &str = "UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1";

fn store(err: sqlx::Error) -> CatalogError {
    CatalogError::store(err)
}

fn write_error(err: sqlx::Error) -> WriteError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => WriteError::Unique,
        _ => WriteError::Store(store(err)),
    }
}

fn corrupt(column: &str, value: &str) -> CatalogError {
    CatalogError::store(format!("unexpected value `{value}` in column `{column}`"))
}

fn security_of(text: &str) -> Result<PlanSecurity, CatalogError> {
    match text {
        "jwt" => Ok(PlanSecurity::Jwt),
        "keyless" => Ok(PlanSecurity::Keyless),
        other => Err(corrupt("security", other)),
    }
}

fn security_str(security: PlanSecurity) -> &'static str {
    match security {
        PlanSecurity::Jwt => "jwt",
        PlanSecurity::Keyless => "keyless",
    }
}

fn validation_of(text: &str) -> Result<Validation, CatalogError> {
    match text {
        "auto" => Ok(Validation::Auto),
        "manual" => Ok(Validation::Manual),
        other => Err(corrupt("validation", other)),
    }
}

fn validation_str(validation: Validation) -> &'static str {
    match validation {
        Validation::Auto => "auto",
        Validation::Manual => "manual",
    }
}

fn revision_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

macro_rules! sql_store {
    ($tx:ident, $db:ty, $row:ty) => {
        pub(crate) struct $tx {
            tx: sqlx::Transaction<'static, $db>,
        }

        impl $tx {
            pub(crate) async fn commit(self) -> Result<(), CatalogError> {
                self.tx.commit().await.map_err(store)
            }

            fn api_of(row: &$row) -> Result<Api, sqlx::Error> {
                Ok(Api {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    context_path: row.try_get("context_path")?,
                    backend: row.try_get("backend")?,
                    deployment_state: DeploymentState::NeedRedeploy,
                    deployed_at: None,
                    created_at: from_millis(row.try_get("created_at")?),
                    updated_at: from_millis(row.try_get("updated_at")?),
                })
            }

            fn plan_of(row: &$row) -> Result<Plan, CatalogError> {
                let text = |c: &str| row.try_get::<String, _>(c).map_err(store);
                let status = text("status")?;
                let jwt: Option<Json<JwtDefinition>> = row.try_get("jwt").map_err(store)?;
                let restrictions: Option<Json<Restrictions>> =
                    row.try_get("restrictions").map_err(store)?;
                Ok(Plan {
                    id: text("id")?,
                    api: text("api")?,
                    name: text("name")?,
                    security: security_of(&text("security")?)?,
                    validation: validation_of(&text("validation")?)?,
                    jwt: jwt.map(|j| j.0),
                    restrictions: restrictions.map(|r| r.0),
                    status: PlanStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                    created_at: from_millis(row.try_get("created_at").map_err(store)?),
                    updated_at: from_millis(row.try_get("updated_at").map_err(store)?),
                })
            }

            fn application_of(row: &$row) -> Result<Application, CatalogError> {
                let text = |c: &str| row.try_get::<String, _>(c).map_err(store);
                let status = text("status")?;
                Ok(Application {
                    id: text("id")?,
                    name: text("name")?,
                    client_id: text("client_id")?,
                    status: ApplicationStatus::parse(&status)
                        .ok_or_else(|| corrupt("status", &status))?,
                    created_at: from_millis(row.try_get("created_at").map_err(store)?),
                    updated_at: from_millis(row.try_get("updated_at").map_err(store)?),
                })
            }

            fn subscription_of(row: &$row) -> Result<Subscription, CatalogError> {
                let text = |c: &str| row.try_get::<String, _>(c).map_err(store);
                let at = |c: &str| row.try_get::<Option<i64>, _>(c).map_err(store);
                let status = text("status")?;
                Ok(Subscription {
                    id: text("id")?,
                    api: text("api")?,
                    plan: text("plan")?,
                    application: text("application")?,
                    status: SubscriptionStatus::parse(&status)
                        .ok_or_else(|| corrupt("status", &status))?,
                    starting_at: at("starting_at")?.map(from_millis),
                    ending_at: at("ending_at")?.map(from_millis),
                    reason: row.try_get("reason").map_err(store)?,
                    created_at: from_millis(row.try_get("created_at").map_err(store)?),
                    updated_at: from_millis(row.try_get("updated_at").map_err(store)?),
                })
            }

            fn deployment_of(row: &$row) -> Result<Deployment, sqlx::Error> {
                let definition: Json<ApiDefinition> = row.try_get("definition")?;
                Ok(Deployment {
                    api: row.try_get("api")?,
                    revision: revision_of(row.try_get("revision")?),
                    label: row.try_get("label")?,
                    deployed_at: from_millis(row.try_get("deployed_at")?),
                    definition: definition.0,
                })
            }
        }

        impl Tx for $tx {
            async fn api(&mut self, id: &str) -> Result<Option<Api>, CatalogError> {
                let row = sqlx::query("SELECT * FROM apis WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(store)?;
                row.as_ref().map(Self::api_of).transpose().map_err(store)
            }

            async fn apis(&mut self) -> Result<Vec<Api>, CatalogError> {
                let rows = sqlx::query("SELECT * FROM apis ORDER BY id")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(store)?;
                rows.iter().map(Self::api_of).collect::<Result<_, _>>().map_err(store)
            }

            async fn put_api(&mut self, api: &Api, insert: bool) -> Result<(), WriteError> {
                let query = if insert {
                    sqlx::query(
                        "INSERT INTO apis (id, name, context_path, backend, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&api.id)
                    .bind(&api.name)
                    .bind(&api.context_path)
                    .bind(&api.backend)
                    .bind(to_millis(api.created_at))
                    .bind(to_millis(api.updated_at))
                } else {
                    sqlx::query(
                        "UPDATE apis SET name = $2, context_path = $3, backend = $4, updated_at = $5 \
                         WHERE id = $1",
                    )
                    .bind(&api.id)
                    .bind(&api.name)
                    .bind(&api.context_path)
                    .bind(&api.backend)
                    .bind(to_millis(api.updated_at))
                };
                query.execute(&mut *self.tx).await.map(drop).map_err(write_error)
            }

            async fn delete_api(&mut self, id: &str) -> Result<(), CatalogError> {
                for sql in [
                    "DELETE FROM subscriptions WHERE api = $1",
                    "DELETE FROM deployments WHERE api = $1",
                    "DELETE FROM plans WHERE api = $1",
                    "DELETE FROM apis WHERE id = $1",
                ] {
                    sqlx::query(sql).bind(id).execute(&mut *self.tx).await.map_err(store)?;
                }
                Ok(())
            }

            async fn plan(&mut self, id: &str) -> Result<Option<Plan>, CatalogError> {
                let row = sqlx::query("SELECT * FROM plans WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(store)?;
                row.as_ref().map(Self::plan_of).transpose()
            }

            async fn plans(&mut self, api: &str) -> Result<Vec<Plan>, CatalogError> {
                let rows = sqlx::query("SELECT * FROM plans WHERE api = $1 ORDER BY id")
                    .bind(api)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(store)?;
                rows.iter().map(Self::plan_of).collect()
            }

            async fn put_plan(&mut self, plan: &Plan, insert: bool) -> Result<(), WriteError> {
                let sql = if insert {
                    "INSERT INTO plans (id, api, name, security, validation, status, jwt, \
                     created_at, updated_at, restrictions) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                } else {
                    "UPDATE plans SET api = $2, name = $3, security = $4, validation = $5, \
                     status = $6, jwt = $7, created_at = $8, updated_at = $9, \
                     restrictions = $10 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(&plan.id)
                    .bind(&plan.api)
                    .bind(&plan.name)
                    .bind(security_str(plan.security))
                    .bind(validation_str(plan.validation))
                    .bind(plan.status.as_str())
                    .bind(plan.jwt.as_ref().map(Json))
                    .bind(to_millis(plan.created_at))
                    .bind(to_millis(plan.updated_at))
                    .bind(plan.restrictions.as_ref().map(Json))
                    .execute(&mut *self.tx)
                    .await
                    .map(drop)
                    .map_err(write_error)
            }

            async fn delete_plan(&mut self, id: &str) -> Result<(), CatalogError> {
                for sql in ["DELETE FROM subscriptions WHERE plan = $1", "DELETE FROM plans WHERE id = $1"] {
                    sqlx::query(sql).bind(id).execute(&mut *self.tx).await.map_err(store)?;
                }
                Ok(())
            }

            async fn application(&mut self, id: &str) -> Result<Option<Application>, CatalogError> {
                let row = sqlx::query("SELECT * FROM applications WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(store)?;
                row.as_ref().map(Self::application_of).transpose()
            }

            async fn applications(&mut self) -> Result<Vec<Application>, CatalogError> {
                let rows = sqlx::query("SELECT * FROM applications ORDER BY id")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(store)?;
                rows.iter().map(Self::application_of).collect()
            }

            async fn put_application(
                &mut self,
                app: &Application,
                insert: bool,
            ) -> Result<(), WriteError> {
                let sql = if insert {
                    "INSERT INTO applications (id, name, client_id, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                } else {
                    "UPDATE applications SET name = $2, client_id = $3, status = $4, \
                     created_at = $5, updated_at = $6 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(&app.id)
                    .bind(&app.name)
                    .bind(&app.client_id)
                    .bind(app.status.as_str())
                    .bind(to_millis(app.created_at))
                    .bind(to_millis(app.updated_at))
                    .execute(&mut *self.tx)
                    .await
                    .map(drop)
                    .map_err(write_error)
            }

            async fn subscription(&mut self, id: &str) -> Result<Option<Subscription>, CatalogError> {
                let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(store)?;
                row.as_ref().map(Self::subscription_of).transpose()
            }

            async fn subscriptions(
                &mut self,
                api: Option<&str>,
            ) -> Result<Vec<Subscription>, CatalogError> {
                let rows = match api {
                    Some(api) => {
                        sqlx::query("SELECT * FROM subscriptions WHERE api = $1 ORDER BY id")
                            .bind(api)
                            .fetch_all(&mut *self.tx)
                            .await
                    }
                    None => {
                        sqlx::query("SELECT * FROM subscriptions ORDER BY id")
                            .fetch_all(&mut *self.tx)
                            .await
                    }
                }
                .map_err(store)?;
                rows.iter().map(Self::subscription_of).collect()
            }

            async fn put_subscription(
                &mut self,
                sub: &Subscription,
                insert: bool,
            ) -> Result<(), WriteError> {
                let sql = if insert {
                    "INSERT INTO subscriptions (id, api, plan, application, status, starting_at, \
                     ending_at, reason, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                } else {
                    "UPDATE subscriptions SET api = $2, plan = $3, application = $4, status = $5, \
                     starting_at = $6, ending_at = $7, reason = $8, created_at = $9, \
                     updated_at = $10 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(&sub.id)
                    .bind(&sub.api)
                    .bind(&sub.plan)
                    .bind(&sub.application)
                    .bind(sub.status.as_str())
                    .bind(sub.starting_at.map(to_millis))
                    .bind(sub.ending_at.map(to_millis))
                    .bind(&sub.reason)
                    .bind(to_millis(sub.created_at))
                    .bind(to_millis(sub.updated_at))
                    .execute(&mut *self.tx)
                    .await
                    .map(drop)
                    .map_err(write_error)
            }

            async fn last_deployment(&mut self, api: &str) -> Result<Option<Deployment>, CatalogError> {
                let row = sqlx::query(
                    "SELECT * FROM deployments WHERE api = $1 ORDER BY revision DESC LIMIT 1",
                )
                .bind(api)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(store)?;
                row.as_ref().map(Self::deployment_of).transpose().map_err(store)
            }

            async fn last_deployments(&mut self) -> Result<Vec<Deployment>, CatalogError> {
                let rows = sqlx::query(
                    "SELECT * FROM deployments d WHERE d.revision = \
                     (SELECT MAX(x.revision) FROM deployments x WHERE x.api = d.api) ORDER BY d.api",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err(store)?;
                rows.iter().map(Self::deployment_of).collect::<Result<_, _>>().map_err(store)
            }

            async fn insert_deployment(&mut self, d: &Deployment) -> Result<(), WriteError> {
                let revision = i64::try_from(d.revision)
                    .map_err(|_| WriteError::Store(CatalogError::store("revision out of range")))?;
                sqlx::query(
                    "INSERT INTO deployments (api, revision, label, deployed_at, definition) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&d.api)
                .bind(revision)
                .bind(&d.label)
                .bind(to_millis(d.deployed_at))
                .bind(Json(&d.definition))
                .execute(&mut *self.tx)
                .await
                .map(drop)
                .map_err(write_error)
            }

            async fn revision(&mut self) -> Result<u64, CatalogError> {
                let revision: i64 =
                    sqlx::query_scalar("SELECT revision FROM catalog_revision WHERE id = 1")
                        .fetch_one(&mut *self.tx)
                        .await
                        .map_err(store)?;
                Ok(revision_of(revision))
            }
        }
    };
}

#[cfg(feature = "sqlite")]
sql_store!(SqliteTx, sqlx::Sqlite, sqlx::sqlite::SqliteRow);

#[cfg(feature = "sqlite")]
impl SqliteTx {
    pub(crate) async fn begin(pool: &sqlx::SqlitePool, mode: Mode) -> Result<Self, CatalogError> {
        let tx = match mode {
            // Take the write lock first: a deferred transaction that reads, then writes, fails
            // at once when another writer got there in between, instead of waiting its turn.
            Mode::Write => pool.begin_with("BEGIN IMMEDIATE").await,
            Mode::Read | Mode::Snapshot => pool.begin().await,
        }
        .map_err(store)?;
        let mut this = Self { tx };
        if mode == Mode::Write {
            sqlx::query(BUMP).execute(&mut *this.tx).await.map_err(store)?;
        }
        Ok(this)
    }
}

#[cfg(feature = "sqlite")]
pub(crate) async fn open_sqlite(path: &std::path::Path) -> Result<sqlx::SqlitePool, CatalogError> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool =
        SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(store)?;
    sqlx::migrate!("migrations/sqlite").run(&pool).await.map_err(CatalogError::store)?;
    Ok(pool)
}

#[cfg(feature = "postgres")]
sql_store!(PgTx, sqlx::Postgres, sqlx::postgres::PgRow);

#[cfg(feature = "postgres")]
impl PgTx {
    pub(crate) async fn begin(pool: &sqlx::PgPool, mode: Mode) -> Result<Self, CatalogError> {
        let tx = match mode {
            Mode::Snapshot => {
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await
            }
            Mode::Write | Mode::Read => pool.begin().await,
        }
        .map_err(store)?;
        let mut this = Self { tx };
        if mode == Mode::Write {
            // Locks the revision row until commit: writes run one at a time, and each one's
            // reads (READ COMMITTED) see everything committed before it.
            sqlx::query(BUMP).execute(&mut *this.tx).await.map_err(store)?;
        }
        Ok(this)
    }
}

#[cfg(feature = "postgres")]
pub(crate) async fn connect_postgres(url: &str) -> Result<sqlx::PgPool, CatalogError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        // An unreachable database answers STORE_UNAVAILABLE quickly instead of after 30 s.
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(store)?;
    migrate_postgres(&pool).await?;
    Ok(pool)
}

#[cfg(feature = "postgres")]
pub(crate) async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<(), CatalogError> {
    sqlx::migrate!("migrations/postgres").run(pool).await.map_err(CatalogError::store)
}
