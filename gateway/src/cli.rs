//! The command line and the main flow: parse the arguments, load the file (or start the
//! demo), validate it whole, listen, print the address (and the demo's curl lines), then serve
//! until a stop signal. Imports every other module of the gateway.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{
    AdminSource, AdminToken, DEFAULT_ADMIN_LISTEN, SyncHook, TokenOrigin, router, serve_admin,
};
use crate::compile::check_config;
use crate::config::{DEFAULT_LISTEN, load_config, one_line};
use crate::demo::{DemoIdp, echo_router, serve_router, set_up_catalog};
use crate::limits::Limits;
use crate::redact::redact_userinfo;
use crate::serve::{SHUTDOWN_GRACE, Signals, build_app_limited, gateway_for_tables};
use crate::store::{KnownCaches, StoreSpec, follow, start_live, table_of};
use tower_jwt_plan::limit::{PlanLimitLayer, PlanLimits, RedisStore};

const LONG_ABOUT: &str = "\
An example API gateway: a reverse proxy protecting each API with tower-jwt-plan's JwtPlanLayer.

With --store (sqlite:PATH or postgres://...) it serves what its catalog has deployed, managed \
through the management API on --admin-listen. With --config it serves the APIs of a TOML file \
(schema at the top of gateway/src/lib.rs; the management API is then read-only); SIGHUP \
reloads the file (a refused file keeps the previous configuration serving). With neither it \
runs a self-contained demo (echo upstream, demo IdP, one API `echo` at /echo, on a temporary \
SQLite catalog) and prints curl lines to try it. SIGTERM/SIGINT stop gracefully.

Logs go to stderr; set RUST_LOG (default `info`) to filter them.";

/// The command line.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about = "An example API gateway built on tower-jwt-plan", long_about = LONG_ABOUT)]
pub(crate) struct Cli {
    /// Serve the APIs of this TOML file. Without it, run the self-contained demo.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Listen on this address instead of the file's `listen` (default 127.0.0.1:8080).
    /// Port 0 picks a free port; the actual address is printed as `listening on http://ADDR` (`https://` with `[tls]`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,

    /// DB mode: keep APIs, plans, applications and subscriptions in this store, managed
    /// through the management API: `sqlite:PATH` (created if absent) or `postgres://...`
    /// (several gateways may share it).
    #[arg(long, value_name = "SPEC", conflicts_with = "config")]
    pub(crate) store: Option<StoreSpec>,

    /// Serve the management API on this address (never on the proxy's). Port 0 picks a free
    /// port; the actual address is printed as `admin listening on http://ADDR`.
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_ADMIN_LISTEN)]
    pub(crate) admin_listen: SocketAddr,

    /// Read the admin token from this file (GATEWAY_ADMIN_TOKEN wins over it). With neither,
    /// a random token is generated and printed once.
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,

    /// Share the plans' restriction counters (rate limit, quota) through Redis at this URL
    /// (`redis://HOST:PORT[/DB]`), so every gateway using it counts against one budget. Default:
    /// counters in this process's memory.
    #[arg(long, value_name = "URL")]
    pub(crate) rate_limit_store: Option<String>,

    /// Prefix of the Redis keys of the restriction counters (default: the library's).
    #[arg(long, value_name = "PREFIX", requires = "rate_limit_store")]
    pub(crate) rate_limit_key_prefix: Option<String>,

    /// Validate FILE and exit: 0 if it is valid, 1 with a one-line reason on stderr otherwise.
    /// Nothing is fetched and nothing listens.
    #[arg(long, requires = "config")]
    pub(crate) check: bool,

    /// Format of the log lines written to stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// For benchmarks only: forward routed requests WITHOUT the JwtPlanLayer, so the cost of
    /// the layer can be measured against the same proxy. Anyone can then call every API: never
    /// use it to serve traffic.
    #[arg(long, conflicts_with = "store")]
    pub(crate) benchmark_without_plans: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable `key=value` lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A loopback address for curl when the gateway listens on every interface.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            (std::net::Ipv6Addr::LOCALHOST, addr.port()).into()
        }
        _ => addr,
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match (&cli.config, &cli.store) {
        (Some(_), _) => run_file(cli).await,
        (None, Some(spec)) => {
            let catalog = spec.open().await?;
            run_store(cli, catalog, None).await
        }
        (None, None) => run_demo(cli).await,
    }
}

/// File mode: the TOML file, reloaded on SIGHUP; the management API reads it.
async fn run_file(cli: Cli) -> Result<(), String> {
    let Some(file) = cli.config.clone() else { return Err("no --config file".into()) };
    let config = load_config(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let in_file = |e: String| format!("{}: {e}", file.display());
    let summary = check_config(&config).map_err(in_file)?;
    if cli.check {
        println!("{}: ok ({summary})", file.display());
        return Ok(());
    }

    let signals = Signals::install()?;
    let listen = match cli.listen {
        Some(addr) => addr,
        None => config.listen_addr().map_err(in_file)?.unwrap_or(DEFAULT_LISTEN),
    };
    let listener =
        TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    let gateway = build_app_limited(&config, cli.benchmark_without_plans, limit_layer(&cli)?)
        .map_err(in_file)?;
    if cli.benchmark_without_plans {
        tracing::warn!("--benchmark-without-plans: APIs are served WITHOUT authentication");
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{local}");
    tracing::info!(
        %local,
        summary = %gateway.summary(),
        jwks_urls = ?gateway.jwks_urls().iter().map(|url| redact_userinfo(url)).collect::<Vec<_>>(),
        file = %file.display(),
        "gateway started"
    );
    let (stop_admin, admin_stops) = watch::channel(None);
    let admin = start_admin(&cli, AdminSource::File(gateway.clone()), admin_stops).await?;
    signals.serve(listener, gateway, Some(file), stop_admin).await;
    admin.finish().await;
    tracing::info!("stopped");
    Ok(())
}

/// The plans' restrictions layer: counters in memory, or in Redis with `--rate-limit-store`.
fn limit_layer(cli: &Cli) -> Result<PlanLimitLayer, String> {
    let builder = PlanLimitLayer::builder(PlanLimits::new());
    let Some(url) = &cli.rate_limit_store else { return Ok(builder.build()) };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("--rate-limit-store: expected redis://HOST:PORT".into());
    }
    let mut store = RedisStore::new(url)
        .map_err(|e| redact_userinfo(&format!("--rate-limit-store {url}: {e}")))?;
    if let Some(prefix) = &cli.rate_limit_key_prefix {
        store = store.key_prefix(prefix.as_str());
    }
    Ok(builder.redis(store).build())
}

/// The management API, serving until the proxy's signal to stop.
struct Admin {
    local: SocketAddr,
    token: AdminToken,
    task: JoinHandle<()>,
    /// When the signal to stop landed.
    stops: watch::Receiver<Option<Instant>>,
}

impl Admin {
    /// Once the proxy has drained: the management calls still in flight have what is left of
    /// the same [`SHUTDOWN_GRACE`], counted from the signal.
    async fn finish(self) {
        let stopped_at = self.stops.borrow().unwrap_or_else(Instant::now);
        let deadline = tokio::time::Instant::from_std(stopped_at + SHUTDOWN_GRACE);
        if tokio::time::timeout_at(deadline, self.task).await.is_err() {
            tracing::warn!(target: "gateway::admin", "grace period over; closing the remaining management connections");
        }
    }
}

/// Bind the management API, print its address (and a generated token, once), serve it until
/// `stops` says so.
async fn start_admin(
    cli: &Cli,
    source: AdminSource,
    stops: watch::Receiver<Option<Instant>>,
) -> Result<Admin, String> {
    let (token, origin) = AdminToken::resolve(cli.admin_token_file.as_deref())?;
    let listener = TcpListener::bind(cli.admin_listen)
        .await
        .map_err(|e| format!("cannot listen on {} (--admin-listen): {e}", cli.admin_listen))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    println!("admin listening on http://{local}");
    if origin == TokenOrigin::Generated {
        println!("admin token: {}", token.expose());
    }
    tracing::info!(target: "gateway::admin", %local, token = ?origin, "management API started");
    // A dropped sender stops it too: nothing could tell it to stop any more.
    let mut stop_signal = stops.clone();
    let stop = async move {
        let _ = stop_signal.wait_for(Option::is_some).await;
    };
    let task = tokio::spawn(serve_admin(listener, router(source, token.clone()), stop));
    Ok(Admin { local, token, task, stops })
}

/// DB mode: serve what the catalog's live view has deployed; the management API writes to
/// the catalog. The demo passes its servers and IdP to print its curl lines.
async fn run_store(
    cli: Cli,
    catalog: tower_jwt_plan::catalog::Catalog,
    demo: Option<(SocketAddr, DemoIdp)>,
) -> Result<(), String> {
    let signals = Signals::install()?;
    let known = KnownCaches::default();
    let live = start_live(catalog.clone(), Some(known.clone())).await?;
    let listen = cli.listen.unwrap_or(DEFAULT_LISTEN);
    let listener =
        TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    let gateway = gateway_for_tables(
        |client, limit| table_of(&live, client, limit),
        Limits::default(),
        limit_layer(&cli)?,
        cli.benchmark_without_plans,
    )?;
    if cli.benchmark_without_plans {
        tracing::warn!("--benchmark-without-plans: APIs are served WITHOUT authentication");
    }
    tokio::spawn(follow(live.clone(), gateway.clone()));
    println!("listening on http://{local}");
    tracing::info!(
        %local,
        store = ?cli.store,
        apis = gateway.summary().apis,
        revision = live.revision(),
        "gateway started"
    );
    let sync: SyncHook = {
        let (live, gateway) = (live.clone(), gateway.clone());
        Arc::new(move || {
            let (live, gateway) = (live.clone(), gateway.clone());
            Box::pin(async move {
                // A failed refresh leaves the follower and its poll to catch up.
                if live.refresh().await.is_ok() {
                    gateway.install(table_of(&live, gateway.client(), gateway.limit()));
                }
            })
        })
    };
    let (stop_admin, admin_stops) = watch::channel(None);
    let admin = start_admin(&cli, AdminSource::Store(catalog, Some(sync)), admin_stops).await?;

    if let Some((upstream, idp)) = &demo {
        known.wait_ready(Duration::from_secs(5)).await;
        let token_line =
            idp.token("demo-client", "demo-user", "api://echo", Duration::from_secs(3600))?;
        let url = format!("http://{}/echo/hello?name=world", reachable(local));
        println!("demo: echo upstream at http://{upstream}, IdP keys at {}", idp.jwks_url);
        println!(
            "demo: 200 from the echo upstream (token valid for 1 hour: client_id=demo-client, sub=demo-user):"
        );
        println!("curl -i -H 'Authorization: Bearer {token_line}' '{url}'");
        println!("demo: 401 JWT_MISSING_TOKEN without a token:");
        println!("curl -i '{url}'");
        println!("demo: management API at http://{}", reachable(admin.local));
        println!("demo: list the APIs through the management API:");
        println!(
            "curl -i -H 'Authorization: Bearer {}' 'http://{}/apis'",
            admin.token.expose(),
            reachable(admin.local)
        );
        let tutorial =
            idp.token("my-client", "my-user", "api://shop", Duration::from_secs(3600))?;
        println!("demo: the README's tutorial, step by step, starts from these variables:");
        println!(
            "export GW=http://{} ADMIN=http://{} ADMIN_TOKEN={} BACKEND=http://{upstream} JWKS_URL={} ISSUER={} TOKEN={tutorial}",
            reachable(local),
            reachable(admin.local),
            admin.token.expose(),
            idp.jwks_url,
            idp.issuer,
        );
    }

    signals.serve(listener, gateway, None, stop_admin).await;
    admin.finish().await;
    drop(live);
    tracing::info!("stopped");
    Ok(())
}

/// The demo: an echo upstream and an IdP on loopback, and a temporary SQLite catalog set up
/// by the source document's steps.
async fn run_demo(cli: Cli) -> Result<(), String> {
    let upstream = serve_router(echo_router()).await?;
    let idp = DemoIdp::start().await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let path = std::env::temp_dir().join(format!("gateway-demo-{}-{nanos}.db", std::process::id()));
    let spec = StoreSpec::Sqlite(path.clone());
    let result = async {
        let catalog = spec.open().await?;
        set_up_catalog(&catalog, upstream, &idp).await.map_err(|e| format!("demo set-up: {e}"))?;
        run_store(cli, catalog, Some((upstream, idp))).await
    }
    .await;
    for end in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{end}", path.display()));
    }
    result
}

/// The gateway's `main`: parse the command line, run, and report a failure as one line on
/// stderr (`gateway: error: ...`) with exit code 1. Both the `gateway` binary and the root
/// package's `gateway` example call this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gateway: error: cannot start the Tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Background tasks (JWKS workers, idle connections) are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}
