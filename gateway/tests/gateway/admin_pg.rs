//! Two gateway processes on one PostgreSQL database (its own, dropped after), reached through
//! a TCP proxy this test controls: a change through one is served by the other within a
//! second; with the proxy cut, both keep serving and management calls answer 503
//! `STORE_UNAVAILABLE`; restored, both catch up. Skipped, with a visible line, without
//! `TJP_TEST_POSTGRES_URL`.

use std::sync::atomic::AtomicBool;

use tokio::net::TcpStream;
use tower_jwt_plan::catalog::sqlx::{self, Connection as _};

use super::admin::*;
use super::*;

const ENV: &str = "TJP_TEST_POSTGRES_URL";

/// A database of its own on the shared server, dropped on `drop_now`.
struct Database {
    server: String,
    name: String,
}

impl Database {
    async fn create(server: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let name = format!("tjp_gateway_{}_{nanos}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(server).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create database");
        Self { server: server.to_owned(), name }
    }

    async fn drop_now(self) {
        let mut conn =
            sqlx::PgConnection::connect(&self.server).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await
            .expect("drop database");
    }
}

/// A TCP proxy to PostgreSQL that the test can cut (closing every connection and refusing new
/// ones) and restore.
struct CutProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl CutProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let (stop, _) = tokio::sync::watch::channel(false);
        let (flag, stops) = (cut.clone(), stop.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let mut stopped = stops.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = stopped.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut, stop }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    fn restore(&self) {
        self.stop.send_replace(false);
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn two_gateways_on_one_postgres_share_changes_and_survive_an_outage() {
    let Ok(server) = std::env::var(ENV) else {
        eprintln!(
            "skipped: set {ENV}=postgres://postgres@127.0.0.1:5432/postgres to run the two-gateway PostgreSQL suite"
        );
        return;
    };
    let db = Database::create(&server).await;
    let mut url = url_of(&server);
    let target: SocketAddr = tokio::net::lookup_host(format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    ))
    .await
    .expect("resolve PostgreSQL")
    .next()
    .expect("an address");
    let proxy = CutProxy::start(target).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.addr.port())).expect("port");
    url.set_path(&db.name);
    let store = url.to_string();

    let result = async move {
        let f = Fixture::start().await;
        let a = Managed::start(&store).await;
        let b = Managed::start(&store).await;
        let token = f.token("client-1");

        // Set up through A; B serves it within a second.
        set_up_echo(&a, &f).await;
        served_within(&format!("{}/echo/x", b.gw.base), Some(&token), 200, PROPAGATION).await;
        served_within(&format!("{}/echo/x", a.gw.base), Some(&token), 200, PROPAGATION).await;

        // A subscription made through B is served by A within a second.
        b.expect(
            201,
            "POST",
            "/applications",
            Some(json!({"id": "app-2", "name": "B", "client_id": "client-2"})),
        )
        .await;
        let token2 = f.token("client-2");
        assert_eq!(
            get(&format!("{}/echo/x", a.gw.base), Some(&token2)).await.status,
            StatusCode::FORBIDDEN
        );
        b.expect(
            201,
            "POST",
            "/apis/echo/subscriptions",
            Some(json!({"application": "app-2", "plan": "gold"})),
        )
        .await;
        served_within(&format!("{}/echo/x", a.gw.base), Some(&token2), 200, PROPAGATION).await;

        // PostgreSQL unreachable: both keep serving; management calls answer 503.
        proxy.cut();
        for m in [&a, &b] {
            for _ in 0..3 {
                let reply = get(&format!("{}/echo/x", m.gw.base), Some(&token)).await;
                assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            }
            m.refuse(503, "STORE_UNAVAILABLE", "GET", "/apis", None).await;
            m.refuse(
                503,
                "STORE_UNAVAILABLE",
                "POST",
                "/applications",
                Some(json!({"name": "C", "client_id": "client-3"})),
            )
            .await;
            assert_eq!(
                get(&format!("{}/echo/x", m.gw.base), Some(&token2)).await.status,
                StatusCode::OK
            );
        }

        // Restored: management answers again and changes flow again.
        proxy.restore();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if a.call("GET", "/apis", None).await.status == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "A's management API did not recover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.expect(200, "POST", "/apis/echo/plans/gold/_close", None).await;
        served_within(&format!("{}/echo/x", b.gw.base), Some(&token), 403, Duration::from_secs(10))
            .await;
    };
    // Drop the database whatever happened (a panic is re-raised after).
    let outcome = tokio::spawn(result).await;
    db.drop_now().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

fn url_of(text: &str) -> url::Url {
    url::Url::parse(text).expect("a postgres:// URL")
}
