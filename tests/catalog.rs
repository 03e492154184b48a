//! The catalog's rule suite, run against every store: in memory, SQLite (a file in a temp dir,
//! feature `sqlite`) and PostgreSQL (a fresh database per test at `TJP_TEST_POSTGRES_URL`,
//! feature `postgres`), plus the live view and the source document's flow through the layer.
//!
//! Run everything with:
//! `TJP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test --features sqlite,postgres --test catalog`

mod common;

use std::future::Future;
use std::path::PathBuf;
#[cfg(feature = "postgres")]
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tower_jwt_plan::catalog::{
    AcceptOptions, Catalog, CatalogError, DeploymentState, LiveCatalog, NewApi, NewApplication,
    NewPlan, NewSubscription, PlanStatus, SubscriptionFilter, SubscriptionStatus, Validation,
};
use tower_jwt_plan::definition::JwtDefinition;
use tower_jwt_plan::{SubscriptionQuery, SubscriptionResolver};

use common::{Jwks, JwksServer, Seen, Signer, bearer, claims, jwks_of, send};

const SECRET: &str = "a shared secret of at least 32 bytes!";

// ---- Stores ------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Memory,
    #[allow(dead_code)]
    Sqlite,
    #[allow(dead_code)]
    Postgres,
}

/// A store for one test, and how to open it again.
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
struct Env {
    kind: Kind,
    catalog: Catalog,
    sqlite: Option<PathBuf>,
    postgres: Option<String>,
}

impl Env {
    /// Another handle on the same store (a new pool), or `None` for memory.
    async fn reopen(&self) -> Option<Catalog> {
        match self.kind {
            Kind::Memory => None,
            #[cfg(feature = "sqlite")]
            Kind::Sqlite => Some(Catalog::open_sqlite(self.sqlite.as_ref()?).await.unwrap()),
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                Some(Catalog::connect_postgres(self.postgres.as_ref()?).await.unwrap())
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// Run `test` against a fresh store of `kind`, then remove the store (also when it panics).
async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match kind {
        Kind::Memory => {
            let env = Env { kind, catalog: Catalog::memory(), sqlite: None, postgres: None };
            test(env).await;
        }
        Kind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("tjp-catalog-{}", random_name()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("catalog.db");
            let catalog = open_sqlite(&path).await;
            let env = Env { kind, catalog, sqlite: Some(path), postgres: None };
            let outcome = tokio::spawn(test(env)).await;
            let _ = std::fs::remove_dir_all(&dir);
            if let Err(err) = outcome {
                std::panic::resume_unwind(err.into_panic());
            }
        }
        Kind::Postgres => {
            let Some(admin) = postgres_url() else { return };
            let (url, db) = create_database(&admin).await;
            let catalog = connect_postgres(&url).await;
            let env = Env { kind, catalog, sqlite: None, postgres: Some(url) };
            let outcome = tokio::spawn(test(env)).await;
            drop_database(&admin, &db).await;
            if let Err(err) = outcome {
                std::panic::resume_unwind(err.into_panic());
            }
        }
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(path: &std::path::Path) -> Catalog {
    Catalog::open_sqlite(path).await.unwrap()
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &std::path::Path) -> Catalog {
    unreachable!("the sqlite suite is compiled with the `sqlite` feature only")
}

#[cfg(feature = "postgres")]
async fn connect_postgres(url: &str) -> Catalog {
    Catalog::connect_postgres(url).await.unwrap()
}

#[cfg(not(feature = "postgres"))]
async fn connect_postgres(_: &str) -> Catalog {
    unreachable!("the postgres suite is compiled with the `postgres` feature only")
}

fn postgres_url() -> Option<String> {
    let url = std::env::var("TJP_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            visible(
                "skipped: set TJP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres to run the catalog's PostgreSQL suite",
            )
        });
    }
    url
}

/// `url` with its database replaced by `db`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TJP_TEST_POSTGRES_URL is a URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

#[cfg(feature = "postgres")]
async fn create_database(admin: &str) -> (String, String) {
    use tower_jwt_plan::catalog::sqlx::{Connection, Executor, PgConnection};
    let db = format!("tjp_test_{}", random_name());
    let mut conn = PgConnection::connect(admin).await.expect("TJP_TEST_POSTGRES_URL is reachable");
    conn.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
    (with_database(admin, &db), db)
}

#[cfg(feature = "postgres")]
async fn drop_database(admin: &str, db: &str) {
    use tower_jwt_plan::catalog::sqlx::{Connection, Executor, PgConnection};
    let mut conn = PgConnection::connect(admin).await.unwrap();
    conn.execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str()).await.unwrap();
}

#[cfg(not(feature = "postgres"))]
async fn create_database(_: &str) -> (String, String) {
    unreachable!()
}

#[cfg(not(feature = "postgres"))]
async fn drop_database(_: &str, _: &str) {}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::run(super::Kind::Memory, super::$name).await })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::run(super::Kind::Sqlite, super::$name).await })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::run(super::Kind::Postgres, super::$name).await })*
        }
    };
}

suite!(
    plan_transitions,
    keyless_plans,
    subscribe_rules,
    subscription_transitions,
    plan_close_cascades,
    applications_and_client_ids,
    delete_rules,
    ids,
    deployment_state,
    context_paths,
    concurrent_client_ids,
    concurrent_context_paths,
    concurrent_subscriptions,
    refused_writes_change_nothing,
    restart_keeps_everything,
    live_view_follows_changes,
    source_document_flow,
    plan_restrictions,
);

/// Written to stderr directly, past the test harness's capture, so a plain `cargo test` shows it.
fn visible(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[test]
fn which_stores_run() {
    if cfg!(not(all(feature = "sqlite", feature = "postgres"))) {
        visible(
            "skipped: build with `--features sqlite,postgres` to run the catalog's SQLite and PostgreSQL suites",
        );
    }
}

// ---- Helpers -----------------------------------------------------------------------------------

fn code<T: std::fmt::Debug>(result: Result<T, CatalogError>) -> &'static str {
    result.expect_err("the operation should be refused").code()
}

fn hmac_plan(name: &str, validation: Validation) -> NewPlan {
    let jwt: JwtDefinition = serde_json::from_value(json!({
        "algorithms": ["HS256"], "hmac_secret": SECRET, "issuer": common::ISS, "audience": common::AUD,
    }))
    .unwrap();
    NewPlan::jwt(name, validation, jwt)
}

async fn api(catalog: &Catalog, id: &str) -> String {
    let input = NewApi::new("Echo", format!("/{id}"), "http://127.0.0.1:9000").with_id(id);
    catalog.create_api(&input).await.unwrap().id
}

async fn published(catalog: &Catalog, api: &str, id: &str, validation: Validation) -> String {
    let plan = catalog.create_plan(api, &hmac_plan(id, validation).with_id(id)).await.unwrap();
    catalog.publish_plan(api, &plan.id).await.unwrap();
    plan.id
}

async fn app(catalog: &Catalog, id: &str, client_id: &str) -> String {
    let input = NewApplication::new(id, client_id).with_id(id);
    catalog.create_application(&input).await.unwrap().id
}

// ---- Rules -------------------------------------------------------------------------------------

async fn plan_transitions(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = c.create_plan(&api, &hmac_plan("Gold", Validation::Auto)).await.unwrap();
    assert_eq!(gold.status, PlanStatus::Staging);
    assert_eq!(code(c.deprecate_plan(&api, &gold.id).await), "INVALID_PLAN_TRANSITION");
    assert_eq!(c.publish_plan(&api, &gold.id).await.unwrap().status, PlanStatus::Published);
    assert_eq!(code(c.publish_plan(&api, &gold.id).await), "INVALID_PLAN_TRANSITION");
    assert_eq!(c.deprecate_plan(&api, &gold.id).await.unwrap().status, PlanStatus::Deprecated);
    assert_eq!(code(c.deprecate_plan(&api, &gold.id).await), "INVALID_PLAN_TRANSITION");
    assert_eq!(code(c.publish_plan(&api, &gold.id).await), "INVALID_PLAN_TRANSITION");
    assert_eq!(c.close_plan(&api, &gold.id).await.unwrap().status, PlanStatus::Closed);
    for refused in [
        c.publish_plan(&api, &gold.id).await,
        c.deprecate_plan(&api, &gold.id).await,
        c.close_plan(&api, &gold.id).await,
        c.update_plan(&api, &gold.id, &hmac_plan("Again", Validation::Auto)).await,
    ] {
        assert_eq!(code(refused), "INVALID_PLAN_TRANSITION");
    }
    // Every non-closed status can be closed, staging included.
    let draft = c.create_plan(&api, &hmac_plan("Draft", Validation::Auto)).await.unwrap();
    assert_eq!(c.close_plan(&api, &draft.id).await.unwrap().status, PlanStatus::Closed);
    let silver = published(c, &api, "silver", Validation::Auto).await;
    assert_eq!(c.close_plan(&api, &silver).await.unwrap().status, PlanStatus::Closed);
    // A plan is addressed through its own API only.
    let other = self::api(c, "other").await;
    assert_eq!(code(c.get_plan(&other, &silver).await), "NOT_FOUND");
    assert_eq!(code(c.publish_plan(&api, "nope").await), "NOT_FOUND");
    assert_eq!(code(c.publish_plan("nope", &silver).await), "NOT_FOUND");
}

async fn keyless_plans(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let open = c.create_plan(&api, &NewPlan::keyless("Default keyless")).await.unwrap();
    assert_eq!(code(c.publish_plan(&api, &open.id).await), "KEYLESS_PLAN_REFUSED");
    assert_eq!(c.get_plan(&api, &open.id).await.unwrap().status, PlanStatus::Staging);
    let gold = published(c, &api, "gold", Validation::Auto).await;
    assert_eq!(
        code(c.update_plan(&api, &gold, &NewPlan::keyless("Open")).await),
        "KEYLESS_PLAN_REFUSED"
    );
    // A staging keyless plan may be deleted.
    c.delete_plan(&api, &open.id).await.unwrap();
    assert_eq!(code(c.get_plan(&api, &open.id).await), "NOT_FOUND");
    // Input checks name the field.
    let mut with_jwt = NewPlan::keyless("Bad");
    with_jwt.jwt = Some(JwtDefinition::jwks_url("https://idp.example/jwks"));
    match c.create_plan(&api, &with_jwt).await {
        Err(CatalogError::InvalidInput { field, .. }) => assert_eq!(field, "jwt"),
        other => panic!("{other:?}"),
    }
    let no_keys = NewPlan::jwt("Bad", Validation::Auto, JwtDefinition::default());
    match c.create_plan(&api, &no_keys).await {
        Err(CatalogError::InvalidInput { field, .. }) => assert_eq!(field, "jwt.jwks_url"),
        other => panic!("{other:?}"),
    }
}

async fn subscribe_rules(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let staging = c.create_plan(&api, &hmac_plan("Staging", Validation::Auto)).await.unwrap();
    let auto = published(c, &api, "auto", Validation::Auto).await;
    let manual = published(c, &api, "manual", Validation::Manual).await;
    let deprecated = published(c, &api, "deprecated", Validation::Auto).await;
    c.deprecate_plan(&api, &deprecated).await.unwrap();
    let closed = published(c, &api, "closed", Validation::Auto).await;
    c.close_plan(&api, &closed).await.unwrap();
    let a = app(c, "a", "client-a").await;

    for plan in [&staging.id, &deprecated, &closed] {
        let refused = c.subscribe(&api, &NewSubscription::new(&a, plan)).await;
        assert_eq!(code(refused), "PLAN_NOT_SUBSCRIBABLE", "{plan}");
    }
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let sub = c.subscribe(&api, &NewSubscription::new(&a, &auto)).await.unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Accepted);
    assert!(
        sub.starting_at.is_some_and(|at| at >= before && at <= time::OffsetDateTime::now_utc())
    );
    // One active subscription per application and API, whatever the plan.
    assert_eq!(
        code(c.subscribe(&api, &NewSubscription::new(&a, &auto)).await),
        "ALREADY_SUBSCRIBED"
    );
    assert_eq!(
        code(c.subscribe(&api, &NewSubscription::new(&a, &manual)).await),
        "ALREADY_SUBSCRIBED"
    );
    // ... but another API is fine.
    let other = self::api(c, "other").await;
    let other_plan = published(c, &other, "other-gold", Validation::Auto).await;
    c.subscribe(&other, &NewSubscription::new(&a, &other_plan)).await.unwrap();

    let b = app(c, "b", "client-b").await;
    let pending = c.subscribe(&api, &NewSubscription::new(&b, &manual)).await.unwrap();
    assert_eq!(pending.status, SubscriptionStatus::Pending);
    assert_eq!(pending.starting_at, None);
    // Closed and rejected ones do not count.
    c.reject_subscription(&api, &pending.id, Some("no")).await.unwrap();
    c.subscribe(&api, &NewSubscription::new(&b, &manual)).await.unwrap();

    let gone = app(c, "gone", "client-gone").await;
    c.archive_application(&gone).await.unwrap();
    assert_eq!(
        code(c.subscribe(&api, &NewSubscription::new(&gone, &auto)).await),
        "INVALID_REQUEST"
    );
    assert_eq!(code(c.subscribe(&api, &NewSubscription::new("nobody", &auto)).await), "NOT_FOUND");
    assert_eq!(code(c.subscribe(&api, &NewSubscription::new(&a, "nothing")).await), "NOT_FOUND");
    // A plan of another API is not found through this one.
    assert_eq!(code(c.subscribe(&api, &NewSubscription::new(&b, &other_plan)).await), "NOT_FOUND");
    let filter =
        SubscriptionFilter { status: Some(SubscriptionStatus::Rejected), ..Default::default() };
    assert_eq!(c.list_subscriptions(&api, &filter).await.unwrap().len(), 1);
}

async fn subscription_transitions(env: Env) {
    use SubscriptionStatus::{Accepted, Closed, Paused, Pending, Rejected};
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let manual = published(c, &api, "manual", Validation::Manual).await;
    let target = published(c, &api, "target", Validation::Auto).await;
    let staging = c.create_plan(&api, &hmac_plan("Staging", Validation::Auto)).await.unwrap();
    let actions = ["accept", "reject", "pause", "resume", "close", "transfer"];
    let allowed = |from: SubscriptionStatus, action: &str| match action {
        "accept" | "reject" => from == Pending,
        "pause" => from == Accepted,
        "resume" => from == Paused,
        "close" => matches!(from, Pending | Accepted | Paused),
        "transfer" => matches!(from, Accepted | Paused),
        _ => unreachable!(),
    };
    let mut n = 0;
    for from in [Pending, Accepted, Paused, Rejected, Closed] {
        for action in actions {
            n += 1;
            let application = app(c, &format!("app-{n}"), &format!("client-{n}")).await;
            let sub =
                c.subscribe(&api, &NewSubscription::new(&application, &manual)).await.unwrap();
            let id = sub.id;
            match from {
                Pending => {}
                Accepted => {
                    drop(c.accept_subscription(&api, &id, &AcceptOptions::default()).await.unwrap())
                }
                Paused => {
                    c.accept_subscription(&api, &id, &AcceptOptions::default()).await.unwrap();
                    c.pause_subscription(&api, &id).await.unwrap();
                }
                Rejected => drop(c.reject_subscription(&api, &id, None).await.unwrap()),
                Closed => drop(c.close_subscription(&api, &id).await.unwrap()),
                other => panic!("no setup for {other:?}"),
            }
            let result = match action {
                "accept" => c.accept_subscription(&api, &id, &AcceptOptions::default()).await,
                "reject" => c.reject_subscription(&api, &id, Some("not now")).await,
                "pause" => c.pause_subscription(&api, &id).await,
                "resume" => c.resume_subscription(&api, &id).await,
                "close" => c.close_subscription(&api, &id).await,
                _ => c.transfer_subscription(&api, &id, &target).await,
            };
            if allowed(from, action) {
                let sub = result.unwrap_or_else(|e| panic!("{from:?} -> {action}: {e}"));
                let expected = match action {
                    "accept" | "resume" => Accepted,
                    "reject" => Rejected,
                    "pause" => Paused,
                    "close" => Closed,
                    _ => from,
                };
                assert_eq!(sub.status, expected, "{from:?} -> {action}");
                if action == "transfer" {
                    assert_eq!(sub.plan, target);
                }
                if action == "reject" {
                    assert_eq!(sub.reason.as_deref(), Some("not now"));
                }
            } else {
                assert_eq!(code(result), "INVALID_SUBSCRIPTION_TRANSITION", "{from:?} -> {action}");
            }
        }
    }
    // Accept with dates; the end must follow the start.
    let application = app(c, "dated", "client-dated").await;
    let sub = c.subscribe(&api, &NewSubscription::new(&application, &manual)).await.unwrap();
    let start = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let bad = AcceptOptions { starting_at: Some(start), ending_at: Some(start) };
    assert_eq!(code(c.accept_subscription(&api, &sub.id, &bad).await), "INVALID_REQUEST");
    let good = AcceptOptions {
        starting_at: Some(start),
        ending_at: Some(start + time::Duration::days(1)),
    };
    let accepted = c.accept_subscription(&api, &sub.id, &good).await.unwrap();
    assert_eq!(accepted.starting_at.map(|t| t.unix_timestamp()), Some(start.unix_timestamp()));
    assert!(accepted.ending_at.is_some());
    // Transfer only to another published plan of the API.
    assert_eq!(
        code(c.transfer_subscription(&api, &sub.id, &staging.id).await),
        "PLAN_NOT_SUBSCRIBABLE"
    );
    assert_eq!(code(c.transfer_subscription(&api, &sub.id, "nothing").await), "NOT_FOUND");
    assert_eq!(code(c.transfer_subscription(&api, &sub.id, &manual).await), "INVALID_REQUEST");
}

async fn plan_close_cascades(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = published(c, &api, "gold", Validation::Manual).await;
    let silver = published(c, &api, "silver", Validation::Auto).await;
    let mut on_gold = Vec::new();
    for (i, state) in ["pending", "accepted", "paused", "rejected"].into_iter().enumerate() {
        let a = app(c, &format!("g{i}"), &format!("client-g{i}")).await;
        let id = c.subscribe(&api, &NewSubscription::new(&a, &gold)).await.unwrap().id;
        match state {
            "accepted" => {
                drop(c.accept_subscription(&api, &id, &AcceptOptions::default()).await.unwrap())
            }
            "paused" => {
                c.accept_subscription(&api, &id, &AcceptOptions::default()).await.unwrap();
                c.pause_subscription(&api, &id).await.unwrap();
            }
            "rejected" => drop(c.reject_subscription(&api, &id, None).await.unwrap()),
            _ => {}
        }
        on_gold.push(id);
    }
    let s = app(c, "s", "client-s").await;
    let on_silver = c.subscribe(&api, &NewSubscription::new(&s, &silver)).await.unwrap().id;

    c.close_plan(&api, &gold).await.unwrap();
    let statuses: Vec<_> = {
        let mut out = Vec::new();
        for id in &on_gold {
            out.push(c.get_subscription(&api, id).await.unwrap().status);
        }
        out
    };
    use SubscriptionStatus::{Accepted, Closed, Rejected};
    assert_eq!(statuses, [Closed, Closed, Closed, Rejected]);
    assert_eq!(c.get_subscription(&api, &on_silver).await.unwrap().status, Accepted);
    // Irreversible: nothing reopens them.
    assert_eq!(
        code(c.resume_subscription(&api, &on_gold[2]).await),
        "INVALID_SUBSCRIPTION_TRANSITION"
    );
}

async fn applications_and_client_ids(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = published(c, &api, "gold", Validation::Auto).await;
    let a = app(c, "a", "client-a").await;
    let sub = c.subscribe(&api, &NewSubscription::new(&a, &gold)).await.unwrap();

    let taken = c.create_application(&NewApplication::new("B", "client-a")).await;
    assert_eq!(code(taken), "CLIENT_ID_TAKEN");
    let b = app(c, "b", "client-b").await;
    assert_eq!(
        code(c.update_application(&b, &NewApplication::new("B", "client-a")).await),
        "CLIENT_ID_TAKEN"
    );
    // Renaming keeps its own client id.
    c.update_application(&a, &NewApplication::new("A renamed", "client-a")).await.unwrap();
    let moved = c.update_application(&a, &NewApplication::new("A", "client-a2")).await.unwrap();
    assert_eq!(moved.client_id, "client-a2");
    // The subscription refers to the application: nothing in it changed.
    assert_eq!(c.get_subscription(&api, &sub.id).await.unwrap(), sub);
    // The old client id is free again.
    app(c, "c", "client-a").await;

    // Archiving closes the subscriptions and frees the client id.
    let archived = c.archive_application(&a).await.unwrap();
    assert_eq!(archived.status, tower_jwt_plan::catalog::ApplicationStatus::Archived);
    assert_eq!(c.get_subscription(&api, &sub.id).await.unwrap().status, SubscriptionStatus::Closed);
    app(c, "d", "client-a2").await;
    for bad in ["", " padded", "tab\there"] {
        let refused = c.create_application(&NewApplication::new("X", bad)).await;
        assert_eq!(code(refused), "INVALID_REQUEST", "{bad:?}");
    }
    assert_eq!(c.list_applications().await.unwrap().len(), 4);
}

async fn delete_rules(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = published(c, &api, "gold", Validation::Auto).await;
    let bare = published(c, &api, "bare", Validation::Auto).await;
    let a = app(c, "a", "client-a").await;
    let sub = c.subscribe(&api, &NewSubscription::new(&a, &gold)).await.unwrap();

    // A published JWT plan is not deleted (close it), even without subscriptions.
    assert_eq!(code(c.delete_plan(&api, &bare).await), "INVALID_PLAN_TRANSITION");
    c.deprecate_plan(&api, &bare).await.unwrap();
    assert_eq!(code(c.delete_plan(&api, &bare).await), "INVALID_PLAN_TRANSITION");
    assert_eq!(code(c.delete_plan(&api, &gold).await), "PLAN_HAS_SUBSCRIPTIONS");
    // A staging plan goes.
    let draft = c.create_plan(&api, &hmac_plan("Draft", Validation::Auto)).await.unwrap();
    c.delete_plan(&api, &draft.id).await.unwrap();

    assert_eq!(code(c.delete_api(&api).await), "API_HAS_ACTIVE_PLANS");
    c.close_plan(&api, &bare).await.unwrap();
    assert_eq!(code(c.delete_api(&api).await), "API_HAS_ACTIVE_PLANS");
    c.close_plan(&api, &gold).await.unwrap();
    assert_eq!(c.get_subscription(&api, &sub.id).await.unwrap().status, SubscriptionStatus::Closed);
    c.delete_plan(&api, &gold).await.unwrap();
    c.deploy(&api, Some("before delete")).await.unwrap();
    c.delete_api(&api).await.unwrap();
    assert_eq!(code(c.get_api(&api).await), "NOT_FOUND");
    assert_eq!(code(c.delete_api(&api).await), "NOT_FOUND");
    // The application survives, and may subscribe elsewhere.
    let other = self::api(c, "other").await;
    let plan = published(c, &other, "p", Validation::Auto).await;
    c.subscribe(&other, &NewSubscription::new(&a, &plan)).await.unwrap();
}

async fn ids(env: Env) {
    let c = &env.catalog;
    let api = api(c, "my-api.v1_2").await;
    assert_eq!(api, "my-api.v1_2");
    let dup = c
        .create_api(&NewApi::new("Again", "/again", "http://127.0.0.1:1").with_id("my-api.v1_2"))
        .await;
    assert_eq!(code(dup), "ALREADY_EXISTS");
    for bad in ["", "a b", "é", "x/y", &"x".repeat(65)] {
        match c.create_api(&NewApi::new("Bad", "/bad", "http://127.0.0.1:1").with_id(bad)).await {
            Err(CatalogError::InvalidInput { field, .. }) => assert_eq!(field, "id", "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for (path, backend, field) in [
        ("echo", "http://127.0.0.1:1", "context_path"),
        ("/a/../b", "http://127.0.0.1:1", "context_path"),
        ("/ok", "ftp://x", "backend"),
        ("/ok", "not a url", "backend"),
    ] {
        match c.create_api(&NewApi::new("Bad", path, backend)).await {
            Err(CatalogError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{path} {backend}: {other:?}"),
        }
    }
    // An update may repeat the id, never change it.
    let same = NewApi::new("Renamed", "/my-api", "http://127.0.0.1:1").with_id(&api);
    assert_eq!(c.update_api(&api, &same).await.unwrap().name, "Renamed");
    let other = NewApi::new("Renamed", "/my-api", "http://127.0.0.1:1").with_id("other");
    assert_eq!(code(c.update_api(&api, &other).await), "INVALID_REQUEST");
    let one = c.create_api(&NewApi::new("One", "/one", "http://127.0.0.1:1")).await.unwrap();
    let two = c.create_api(&NewApi::new("Two", "/two", "http://127.0.0.1:1")).await.unwrap();
    assert_ne!(one.id, two.id);
    assert_eq!(one.id.len(), 32);
    let plan = published(c, &api, "p1", Validation::Auto).await;
    assert_eq!(
        code(c.create_plan(&api, &hmac_plan("Dup", Validation::Auto).with_id(&plan)).await),
        "ALREADY_EXISTS"
    );
    let a = app(c, "app-1", "client-1").await;
    assert_eq!(
        code(c.create_application(&NewApplication::new("Dup", "other").with_id(&a)).await),
        "ALREADY_EXISTS"
    );
    let sub = c.subscribe(&api, &NewSubscription::new(&a, &plan).with_id("sub-1")).await.unwrap();
    assert_eq!(sub.id, "sub-1");
    let b = app(c, "app-2", "client-2").await;
    let moved = NewApplication::new("B", "client-2").with_id("app-3");
    assert_eq!(code(c.update_application(&b, &moved).await), "INVALID_REQUEST");
    let renamed = hmac_plan("P", Validation::Auto).with_id("p2");
    assert_eq!(code(c.update_plan(&api, &plan, &renamed).await), "INVALID_REQUEST");
    assert_eq!(
        code(c.subscribe(&api, &NewSubscription::new(&b, &plan).with_id("sub-1")).await),
        "ALREADY_EXISTS"
    );
    assert_eq!(code(c.delete_plan(&api, &plan).await), "PLAN_HAS_SUBSCRIPTIONS");
}

async fn deployment_state(env: Env) {
    use DeploymentState::{Deployed, NeedRedeploy};
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let state = || async { c.get_api("echo").await.unwrap().deployment_state };
    assert_eq!(state().await, NeedRedeploy);
    assert_eq!(c.get_api(&api).await.unwrap().deployed_at, None);
    let first = c.deploy(&api, Some("first")).await.unwrap();
    assert_eq!(first.revision, 1);
    assert_eq!(state().await, Deployed);
    assert_eq!(c.get_api(&api).await.unwrap().deployed_at, Some(first.deployed_at));

    // Staging plans are not part of the definition.
    let gold = c.create_plan(&api, &hmac_plan("Gold", Validation::Auto)).await.unwrap();
    assert_eq!(state().await, Deployed);
    let open = c.create_plan(&api, &NewPlan::keyless("Open")).await.unwrap();
    c.delete_plan(&api, &open.id).await.unwrap();
    assert_eq!(state().await, Deployed);
    c.publish_plan(&api, &gold.id).await.unwrap();
    assert_eq!(state().await, NeedRedeploy);
    assert_eq!(c.deploy(&api, None).await.unwrap().revision, 2);
    assert_eq!(state().await, Deployed);

    // Subscriptions and applications need no deployment.
    let a = app(c, "a", "client-a").await;
    let sub = c.subscribe(&api, &NewSubscription::new(&a, &gold.id)).await.unwrap();
    c.pause_subscription(&api, &sub.id).await.unwrap();
    c.update_application(&a, &NewApplication::new("A", "client-b")).await.unwrap();
    assert_eq!(state().await, Deployed);

    // Each kind of change to the API or a non-staging plan needs one.
    let mut revision = 2;
    let changes: Vec<&str> = vec!["api", "plan", "deprecate", "close", "delete"];
    for change in changes {
        match change {
            "api" => drop(
                c.update_api(&api, &NewApi::new("Echo 2", "/echo", "http://127.0.0.1:9000"))
                    .await
                    .unwrap(),
            ),
            "plan" => drop(
                c.update_plan(&api, &gold.id, &hmac_plan("Gold 2", Validation::Manual))
                    .await
                    .unwrap(),
            ),
            "deprecate" => drop(c.deprecate_plan(&api, &gold.id).await.unwrap()),
            "close" => drop(c.close_plan(&api, &gold.id).await.unwrap()),
            _ => c.delete_plan(&api, &gold.id).await.unwrap(),
        }
        assert_eq!(state().await, NeedRedeploy, "after {change}");
        revision += 1;
        assert_eq!(c.deploy(&api, None).await.unwrap().revision, revision);
        assert_eq!(state().await, Deployed, "after deploying {change}");
    }
    // Computed from the definition, not from timestamps: a change undone is deployed again.
    c.update_api(&api, &NewApi::new("Renamed", "/echo", "http://127.0.0.1:9000")).await.unwrap();
    assert_eq!(state().await, NeedRedeploy);
    c.update_api(&api, &NewApi::new("Echo 2", "/echo", "http://127.0.0.1:9000")).await.unwrap();
    assert_eq!(state().await, Deployed);
    let last = c.last_deployment(&api).await.unwrap().unwrap();
    assert_eq!(last.revision, revision);
    assert_eq!(last.definition.name, "Echo 2");
    assert!(last.definition.plans.is_empty());
}

fn api_at(id: &str, path: &str) -> NewApi {
    NewApi::new("Echo", path, "http://127.0.0.1:9000").with_id(id)
}

/// The refusal of a context path that another API uses, naming the field and that API.
fn path_taken<T: std::fmt::Debug>(result: Result<T, CatalogError>, by: &str) {
    let err = result.expect_err("a context path another API uses is refused");
    assert_eq!(err.code(), "INVALID_REQUEST", "{err}");
    let message = err.to_string();
    assert!(
        message.contains("context_path") && message.contains(&format!("api `{by}`")),
        "{message}"
    );
}

async fn context_paths(env: Env) {
    let c = &env.catalog;
    let echo = api(c, "echo").await;
    // The same path, a trailing `/` aside, is another API's.
    for path in ["/echo", "/echo/", "/echo//"] {
        path_taken(c.create_api(&api_at("other", path)).await, "echo");
    }
    assert_eq!(code(c.get_api("other").await), "NOT_FOUND");
    // A path that only starts like it is free.
    c.create_api(&api_at("echoes", "/echoes")).await.unwrap();
    c.create_api(&api_at("echo-v2", "/echo/v2")).await.unwrap();
    // An API keeps its own path through an update, spelled either way.
    c.update_api(&echo, &api_at("echo", "/echo/")).await.unwrap();
    // Another API cannot move onto it, and stays where it was.
    path_taken(c.update_api("echoes", &api_at("echoes", "/echo")).await, "echo");
    assert_eq!(c.get_api("echoes").await.unwrap().context_path, "/echoes");
    // Once the API is gone, its path is free.
    c.delete_api(&echo).await.unwrap();
    c.update_api("echoes", &api_at("echoes", "/echo")).await.unwrap();
}

/// The check runs inside the write transaction: of many writers racing for one path, one wins.
async fn concurrent_context_paths(env: Env) {
    let c = env.catalog.clone();
    let won = race(20, "INVALID_REQUEST", |i| {
        let c = c.clone();
        async move { c.create_api(&api_at(&format!("api-{i}"), "/same")).await }
    })
    .await;
    assert_eq!(won.len(), 1);
    let at_same: Vec<_> =
        c.list_apis().await.unwrap().into_iter().filter(|a| a.context_path == "/same").collect();
    assert_eq!(at_same.len(), 1);
}

/// Runs `n` writes at once, write `i` made by `write(i)`: what the winners made; every loser
/// is refused with `code`.
async fn race<T, F, Fut>(n: usize, code: &str, write: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, CatalogError>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(write(i))).collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(made) => won.push(made),
            Err(err) => assert_eq!(err.code(), code, "{err}"),
        }
    }
    won
}

async fn concurrent_client_ids(env: Env) {
    let c = env.catalog.clone();
    let won = race(20, "CLIENT_ID_TAKEN", |i| {
        let c = c.clone();
        async move {
            c.create_application(&NewApplication::new(format!("App {i}"), "same-client")).await
        }
    })
    .await;
    assert_eq!(won.len(), 1);
}

async fn concurrent_subscriptions(env: Env) {
    let c = env.catalog.clone();
    let api = api(&c, "echo").await;
    let gold = published(&c, &api, "gold", Validation::Auto).await;
    let silver = published(&c, &api, "silver", Validation::Manual).await;
    let a = app(&c, "a", "client-a").await;
    let won = race(20, "ALREADY_SUBSCRIBED", |i| {
        let (c, api, a) = (c.clone(), api.clone(), a.clone());
        let plan = if i % 2 == 0 { gold.clone() } else { silver.clone() };
        async move { c.subscribe(&api, &NewSubscription::new(&a, &plan)).await }
    })
    .await;
    assert_eq!(won.len(), 1);
    assert_eq!(c.list_subscriptions(&api, &SubscriptionFilter::default()).await.unwrap().len(), 1);
}

async fn refused_writes_change_nothing(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = published(c, &api, "gold", Validation::Auto).await;
    let a = app(c, "a", "client-a").await;
    c.subscribe(&api, &NewSubscription::new(&a, &gold)).await.unwrap();
    let revision = c.revision().await.unwrap();
    let before = (
        c.list_apis().await.unwrap(),
        c.list_plans(&api).await.unwrap(),
        c.list_applications().await.unwrap(),
    );
    assert_eq!(code(c.delete_plan(&api, &gold).await), "PLAN_HAS_SUBSCRIPTIONS");
    assert_eq!(
        code(c.create_application(&NewApplication::new("B", "client-a")).await),
        "CLIENT_ID_TAKEN"
    );
    assert_eq!(
        code(c.subscribe(&api, &NewSubscription::new(&a, &gold)).await),
        "ALREADY_SUBSCRIBED"
    );
    assert_eq!(c.revision().await.unwrap(), revision, "a refused write leaves no trace");
    let after = (
        c.list_apis().await.unwrap(),
        c.list_plans(&api).await.unwrap(),
        c.list_applications().await.unwrap(),
    );
    assert_eq!(before, after);
    c.pause_subscription(
        &api,
        &c.list_subscriptions(&api, &SubscriptionFilter::default()).await.unwrap()[0].id,
    )
    .await
    .unwrap();
    assert!(c.revision().await.unwrap() > revision);
}

async fn restart_keeps_everything(env: Env) {
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = published(c, &api, "gold", Validation::Auto).await;
    c.create_plan(&api, &NewPlan::keyless("Open")).await.unwrap();
    let a = app(c, "a", "client-a").await;
    c.subscribe(&api, &NewSubscription::new(&a, &gold)).await.unwrap();
    c.deploy(&api, Some("v1")).await.unwrap();
    let before = (
        c.list_apis().await.unwrap(),
        c.list_plans(&api).await.unwrap(),
        c.list_applications().await.unwrap(),
        c.list_subscriptions(&api, &SubscriptionFilter::default()).await.unwrap(),
        c.last_deployment(&api).await.unwrap(),
        c.revision().await.unwrap(),
    );
    let Some(reopened) = env.reopen().await else {
        println!("restart: the memory store does not outlive its process");
        return;
    };
    drop(env.catalog);
    let after = (
        reopened.list_apis().await.unwrap(),
        reopened.list_plans(&api).await.unwrap(),
        reopened.list_applications().await.unwrap(),
        reopened.list_subscriptions(&api, &SubscriptionFilter::default()).await.unwrap(),
        reopened.last_deployment(&api).await.unwrap(),
        reopened.revision().await.unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(after.0[0].deployment_state, DeploymentState::Deployed);
    // And the rules still hold across the restart.
    assert_eq!(
        code(reopened.subscribe(&api, &NewSubscription::new(&a, &gold)).await),
        "ALREADY_SUBSCRIBED"
    );
}

async fn plan_restrictions(env: Env) {
    use tower_jwt_plan::limit::{RateLimit, Restrictions};
    let c = &env.catalog;
    let api = api(c, "echo").await;
    let gold = Restrictions::none().with_rate_limit(RateLimit::new(10, 60).unwrap());
    let input = hmac_plan("gold", Validation::Auto).with_id("gold").with_restrictions(gold);
    let plan = c.create_plan(&api, &input).await.unwrap();
    assert_eq!(plan.restrictions, Some(gold));
    // Empty restrictions read as none; a keyless plan takes none.
    let empty =
        hmac_plan("free", Validation::Auto).with_id("free").with_restrictions(Restrictions::none());
    assert_eq!(c.create_plan(&api, &empty).await.unwrap().restrictions, None);
    let keyless = NewPlan::keyless("Open").with_restrictions(gold);
    assert_eq!(code(c.create_plan(&api, &keyless).await), "INVALID_REQUEST");

    c.publish_plan(&api, "gold").await.unwrap();
    let deployed = c.deploy(&api, None).await.unwrap();
    assert_eq!(deployed.definition.plans[0].restrictions, Some(gold));
    assert_eq!(c.get_api(&api).await.unwrap().deployment_state, DeploymentState::Deployed);

    // Changing only the restrictions makes the API need a redeploy.
    let silver = Restrictions::none().with_rate_limit(RateLimit::new(5, 60).unwrap());
    let changed = hmac_plan("gold", Validation::Auto).with_restrictions(silver);
    assert_eq!(c.update_plan(&api, "gold", &changed).await.unwrap().restrictions, Some(silver));
    assert_eq!(c.get_plan(&api, "gold").await.unwrap().restrictions, Some(silver));
    assert_eq!(c.get_api(&api).await.unwrap().deployment_state, DeploymentState::NeedRedeploy);

    // The live view serves the deployed restrictions, not the current ones.
    let live = LiveCatalog::builder(c.clone()).start().await.unwrap();
    assert_eq!(live.api(&api).unwrap().restrictions.get("gold"), Some(&gold));
    c.deploy(&api, None).await.unwrap();
    live.refresh().await.unwrap();
    assert_eq!(live.api(&api).unwrap().restrictions.get("gold"), Some(&silver));
}

// ---- Live view ---------------------------------------------------------------------------------

fn query(api: &str, plan: &str, client: &str) -> SubscriptionQuery {
    SubscriptionQuery { api: api.into(), plan: plan.into(), client_id: client.into() }
}

/// Wait until `check` holds (at most `within`), or fail with `what`.
async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn resolves(live: &LiveCatalog, q: SubscriptionQuery) -> Option<SubscriptionStatus> {
    live.resolve(q).await.unwrap().map(|s| match s.status {
        tower_jwt_plan::SubscriptionStatus::Accepted => SubscriptionStatus::Accepted,
        tower_jwt_plan::SubscriptionStatus::Pending => SubscriptionStatus::Pending,
        tower_jwt_plan::SubscriptionStatus::Paused => SubscriptionStatus::Paused,
        _ => SubscriptionStatus::Closed,
    })
}

/// Poll `live` until the subscription of `client` resolves to `want` (within 1 s).
async fn served(
    live: &LiveCatalog,
    api: &str,
    plan: &str,
    client: &str,
    want: Option<SubscriptionStatus>,
) {
    let start = Instant::now();
    loop {
        let got = resolves(live, query(api, plan, client)).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{client} on {plan}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn live_view_follows_changes(env: Env) {
    // The view reads through one handle (pool) and the changes go through another, as when a
    // management process and a gateway share a store.
    let view_side = env.catalog.clone();
    let c = &env.reopen().await.unwrap_or_else(|| env.catalog.clone());
    let api = api(c, "echo").await;
    let live = LiveCatalog::builder(view_side).start().await.unwrap();
    assert!(live.apis().is_empty(), "nothing deployed yet");
    let gold = published(c, &api, "gold", Validation::Manual).await;
    let mut changes = live.changes();
    c.deploy(&api, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), changes.changed()).await.unwrap().unwrap();
    eventually(Duration::from_secs(1), "deployed", || live.api(&api).is_some()).await;
    let deployed = live.api(&api).unwrap();
    assert_eq!((deployed.context_path.as_str(), deployed.revision), ("/echo", 1));
    assert_eq!(deployed.layer.plans().serving_plan_ids().collect::<Vec<_>>(), ["gold"]);

    let a = app(c, "a", "client-a").await;
    let sub = c.subscribe(&api, &NewSubscription::new(&a, &gold)).await.unwrap();
    served(&live, &api, &gold, "client-a", Some(SubscriptionStatus::Pending)).await;
    c.accept_subscription(&api, &sub.id, &AcceptOptions::default()).await.unwrap();
    served(&live, &api, &gold, "client-a", Some(SubscriptionStatus::Accepted)).await;
    // A client id change applies to the subscription at once: the old id no longer resolves.
    c.update_application(&a, &NewApplication::new("A", "client-a2")).await.unwrap();
    served(&live, &api, &gold, "client-a2", Some(SubscriptionStatus::Accepted)).await;
    served(&live, &api, &gold, "client-a", None).await;
    // Archiving removes it.
    c.archive_application(&a).await.unwrap();
    served(&live, &api, &gold, "client-a2", None).await;

    // A plan change is served only once deployed.
    let silver = published(c, &api, "silver", Validation::Auto).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(live.api(&api).unwrap().layer.plans().serving_plan_ids().count(), 1);
    c.deploy(&api, None).await.unwrap();
    eventually(Duration::from_secs(1), "redeployed", || {
        live.api(&api).is_some_and(|d| d.revision == 2)
    })
    .await;
    let layer = live.api(&api).unwrap().layer;
    assert_eq!(layer.plans().serving_plan_ids().collect::<Vec<_>>(), ["gold", "silver"]);
    // The same layer was redeployed, not replaced: clones held by a router see the change.
    assert_eq!(deployed.layer.plans().serving_plan_ids().count(), 2);
    let b = app(c, "b", "client-b").await;
    c.subscribe(&api, &NewSubscription::new(&b, &silver)).await.unwrap();
    served(&live, &api, &silver, "client-b", Some(SubscriptionStatus::Accepted)).await;
    c.close_plan(&api, &silver).await.unwrap();
    served(&live, &api, &silver, "client-b", None).await;
    assert_eq!(live.staleness(), None);
}

/// The source document, in code: publisher then consumer, then a call through the layer.
async fn source_document_flow(env: Env) {
    let c = &env.catalog;
    let idp = Signer::rsa();
    let jwks = JwksServer::start(Jwks::Keys(jwks_of(&[(&idp, "k1")]))).await;

    // Publisher: the API, with the default keyless plan left in staging.
    let api =
        c.create_api(&NewApi::new("Echo", "/echo", "http://127.0.0.1:9000")).await.unwrap().id;
    let keyless =
        c.create_plan(&api, &NewPlan::keyless("Default keyless (UNSECURED)")).await.unwrap();
    // A JWT plan with auto validation, keys from the IdP's JWKS URL, claims extracted.
    let mut jwt = JwtDefinition::jwks_url(jwks.url());
    jwt.extract_claims = Some(true);
    jwt.issuer = Some(vec![common::ISS.into()]);
    let plan =
        c.create_plan(&api, &NewPlan::jwt("JWT plan", Validation::Auto, jwt)).await.unwrap().id;
    c.publish_plan(&api, &plan).await.unwrap();
    c.delete_plan(&api, &keyless.id).await.unwrap();
    assert_eq!(c.get_api(&api).await.unwrap().deployment_state, DeploymentState::NeedRedeploy);
    c.deploy(&api, None).await.unwrap();
    assert_eq!(c.get_api(&api).await.unwrap().deployment_state, DeploymentState::Deployed);

    // Consumer: an application with the IdP's client id, subscribed, accepted at once.
    let application =
        c.create_application(&NewApplication::new("My app", common::CLIENT)).await.unwrap();
    let sub = c.subscribe(&api, &NewSubscription::new(&application.id, &plan)).await.unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Accepted);

    // The gateway side.
    let live = LiveCatalog::builder(c.clone()).start().await.unwrap();
    let layer = live.api(&api).expect("deployed").layer;
    let token = idp.token("k1", &claims());
    let seen = Seen::default();
    // `starting_at` is exclusive and to the millisecond: make sure "now" is past it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let answer = send(&layer, &seen, bearer(&token)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let parts = seen.last();
    let claims_seen =
        parts.extensions.get::<tower_jwt_plan::VerifiedClaims>().expect("claims extracted");
    assert_eq!(claims_seen.get("sub"), Some(&json!("alice")));
    let ctx = parts.extensions.get::<tower_jwt_plan::PlanContext>().unwrap();
    assert_eq!((ctx.plan_id(), ctx.client_id()), (plan.as_str(), common::CLIENT));

    // Closing the plan closes the subscription: the same request is refused.
    c.close_plan(&api, &plan).await.unwrap();
    let start = Instant::now();
    loop {
        let answer = send(&layer, &seen, bearer(&token)).await;
        if answer.status == 403 {
            assert_eq!(answer.code(), "GATEWAY_PLAN_UNRESOLVABLE");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "still served: {}", answer.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- PostgreSQL: two live views, a cut connection ----------------------------------------------

/// A TCP proxy in front of PostgreSQL that the test can cut (closing every connection and
/// refusing new ones) and restore.
#[cfg(feature = "postgres")]
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

#[cfg(feature = "postgres")]
impl Proxy {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, conns2) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_live_views() {
    let Some(admin) = postgres_url() else { return };
    let (url, db) = create_database(&admin).await;
    let outcome = tokio::spawn(two_live_views(url)).await;
    drop_database(&admin, &db).await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[cfg(feature = "postgres")]
fn hs256_token(client: &str) -> String {
    let mut claims = claims();
    claims["client_id"] = json!(client);
    Signer::hmac(SECRET.as_bytes()).token_with(tower_jwt_plan::Algorithm::HS256, "k", &claims)
}

/// Send `client`'s token through `live`'s layer for `echo` until it answers `status`.
#[cfg(feature = "postgres")]
async fn answers(live: &LiveCatalog, client: &str, status: u16, within: Duration, what: &str) {
    let start = Instant::now();
    let seen = Seen::default();
    loop {
        let layer = live.api("echo").expect("echo is deployed").layer;
        let got = send(&layer, &seen, bearer(&hs256_token(client))).await.status;
        if got == status {
            return;
        }
        assert!(start.elapsed() < within, "{what}: {client} got {got}, want {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Log lines written while the test runs (WARN and above, plain text).
#[cfg(feature = "postgres")]
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "postgres")]
impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl Logs {
    fn capture() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("only this test sets it");
        logs
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(needle).count()
    }
}

#[cfg(feature = "postgres")]
async fn two_live_views(url: String) {
    let logs = Logs::capture();
    let direct = Catalog::connect_postgres(&url).await.unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    let upstream = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    let mut via = parsed.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(proxy.addr.port())).unwrap();
    // Two pools, two views, as two gateway processes would have. The poll is slow on purpose:
    // changes must arrive within 1 s through LISTEN/NOTIFY.
    let (a, b) = (connect_postgres(via.as_str()).await, connect_postgres(via.as_str()).await);
    let start = |c: &Catalog| {
        LiveCatalog::builder(c.clone())
            .poll_interval(Duration::from_secs(5))
            .warn_interval(Duration::from_secs(60))
            .start()
    };
    let (live_a, live_b) = (start(&a).await.unwrap(), start(&b).await.unwrap());

    let api = api(&a, "echo").await;
    let gold = published(&a, &api, "gold", Validation::Manual).await;
    let silver = published(&a, &api, "silver", Validation::Auto).await;
    a.deploy(&api, None).await.unwrap();
    let app1 = app(&a, "app-1", "client-1").await;
    let app2 = app(&a, "app-2", "client-2").await;
    let pending = a.subscribe(&api, &NewSubscription::new(&app1, &gold)).await.unwrap();
    let on_silver = a.subscribe(&api, &NewSubscription::new(&app2, &silver)).await.unwrap();
    for live in [&live_a, &live_b] {
        eventually(Duration::from_secs(1), "deployed on both", || live.api(&api).is_some()).await;
        answers(live, "client-2", 200, Duration::from_secs(1), "auto-accepted on silver").await;
        answers(live, "client-1", 403, Duration::from_secs(1), "pending is not served").await;
    }

    // Accepted through one: served by the other within 1 s.
    a.accept_subscription(&api, &pending.id, &AcceptOptions::default()).await.unwrap();
    answers(&live_b, "client-1", 200, Duration::from_secs(1), "accept through A, served by B")
        .await;
    // A plan closed through one: no longer served by the other within 1 s.
    b.close_plan(&api, &gold).await.unwrap();
    answers(&live_a, "client-1", 403, Duration::from_secs(1), "close through B, refused by A")
        .await;

    // The connection is cut: both keep serving their last snapshot and report staleness.
    proxy.cut();
    eventually(Duration::from_secs(15), "staleness reported", || {
        live_a.staleness().is_some() && live_b.staleness().is_some()
    })
    .await;
    assert_eq!(code(a.revision().await), "STORE_UNAVAILABLE");
    direct.close_subscription(&api, &on_silver.id).await.unwrap();
    for live in [&live_a, &live_b] {
        answers(live, "client-2", 200, Duration::from_secs(1), "last snapshot serves").await;
    }

    // Each view said so at WARN once, however many checks fail within `warn_interval`. The
    // capture is process-wide, so other tests running beside this one may add WARN lines of
    // their own (a JWKS server going away): count this module's line only.
    let (again_a, again_b) = tokio::join!(live_a.refresh(), live_b.refresh());
    assert_eq!((code(again_a), code(again_b)), ("STORE_UNAVAILABLE", "STORE_UNAVAILABLE"));
    assert_eq!(logs.count("catalog store unreachable; serving the last snapshot"), 2);

    // Restored: both catch up with the change made meanwhile.
    proxy.restore();
    for live in [&live_a, &live_b] {
        answers(live, "client-2", 403, Duration::from_secs(15), "caught up after the outage").await;
        eventually(Duration::from_secs(5), "fresh again", || live.staleness().is_none()).await;
    }
}

// ---- The schema itself enforces the two unique rules -------------------------------------------

/// Rows written behind the catalog's back: the partial unique indexes still refuse a second
/// active client id and a second active subscription per application and API.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn schema_refuses_duplicates<DB>(pool: tower_jwt_plan::catalog::sqlx::Pool<DB>)
where
    DB: tower_jwt_plan::catalog::sqlx::Database,
    for<'c> &'c tower_jwt_plan::catalog::sqlx::Pool<DB>:
        tower_jwt_plan::catalog::sqlx::Executor<'c, Database = DB>,
{
    use tower_jwt_plan::catalog::sqlx::Executor;
    let unique = |result: Result<_, tower_jwt_plan::catalog::sqlx::Error>| match result {
        Err(tower_jwt_plan::catalog::sqlx::Error::Database(db)) => db.is_unique_violation(),
        _ => false,
    };
    pool.execute("INSERT INTO applications VALUES ('x1', 'X', 'dup', 'active', 0, 0)")
        .await
        .unwrap();
    assert!(unique(
        pool.execute("INSERT INTO applications VALUES ('x2', 'X', 'dup', 'active', 0, 0)").await
    ));
    pool.execute("INSERT INTO applications VALUES ('x3', 'X', 'dup', 'archived', 0, 0)")
        .await
        .unwrap();
    pool.execute("INSERT INTO apis VALUES ('api', 'A', '/a', 'http://127.0.0.1:1', 0, 0)")
        .await
        .unwrap();
    pool.execute(
        "INSERT INTO plans (id, api, name, security, validation, status, jwt, created_at, updated_at) \
         VALUES ('p', 'api', 'P', 'jwt', 'auto', 'published', '{}', 0, 0)",
    )
    .await
    .unwrap();
    let sub = |id: &str, status: &str| {
        format!(
            "INSERT INTO subscriptions VALUES ('{id}', 'api', 'p', 'x1', '{status}', NULL, NULL, NULL, 0, 0)"
        )
    };
    pool.execute(sub("s1", "accepted").as_str()).await.unwrap();
    assert!(unique(pool.execute(sub("s2", "pending").as_str()).await));
    assert!(unique(pool.execute(sub("s3", "paused").as_str()).await));
    pool.execute(sub("s4", "closed").as_str()).await.unwrap();
    pool.execute(sub("s5", "rejected").as_str()).await.unwrap();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_schema_refuses_duplicates() {
    run(Kind::Sqlite, |env| async move {
        let path = env.sqlite.clone().unwrap();
        drop(env);
        let url = format!("sqlite://{}", path.display());
        let pool = tower_jwt_plan::catalog::sqlx::SqlitePool::connect(&url).await.unwrap();
        schema_refuses_duplicates(pool).await;
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_schema_refuses_duplicates() {
    run(Kind::Postgres, |env| async move {
        let url = env.postgres.clone().unwrap();
        drop(env);
        let pool = tower_jwt_plan::catalog::sqlx::PgPool::connect(&url).await.unwrap();
        schema_refuses_duplicates(pool).await;
    })
    .await;
}
