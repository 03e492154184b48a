//! The command line and the main flow: parse the arguments, load the file (or start the
//! demo), validate it whole, listen, print the address (and the demo's curl lines), then serve
//! until a stop signal. Imports every other module of the gateway.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;

use crate::compile::check_config;
use crate::config::{DEFAULT_LISTEN, load_config, one_line, parse_config};
use crate::demo::{DemoIdp, demo_config_text, echo_router, serve_router};
use crate::redact::redact_userinfo;
use crate::serve::{Signals, build_app, build_app_with};

const LONG_ABOUT: &str = "\
An example API gateway: a reverse proxy protecting each API with tower-jwt-plan's JwtPlanLayer.

Without --config it runs a self-contained demo (echo upstream, demo IdP, one API `echo` at \
/echo) and prints curl lines to try it. With --config it serves the APIs of a TOML file; the \
schema is documented at the top of gateway/src/lib.rs. SIGHUP reloads the file (a refused \
file keeps the previous configuration serving); SIGTERM/SIGINT stop gracefully.

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
    #[arg(long)]
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
    let file = cli.config.clone();
    let (config, demo) = match &file {
        Some(path) => {
            let config = load_config(path).map_err(|e| format!("{}: {e}", path.display()))?;
            (config, None)
        }
        None => {
            let upstream = serve_router(echo_router()).await?;
            let idp = DemoIdp::start().await?;
            let config = parse_config(&demo_config_text(upstream, &idp))?;
            (config, Some((upstream, idp)))
        }
    };
    let in_file = |e: String| match &file {
        Some(path) => format!("{}: {e}", path.display()),
        None => e,
    };
    let summary = check_config(&config).map_err(in_file)?;
    if cli.check {
        let shown = file.as_deref().map(Path::display);
        println!("{}: ok ({summary})", shown.map(|s| s.to_string()).unwrap_or_default());
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
    let gateway = if cli.benchmark_without_plans {
        build_app_with(&config, true)
    } else {
        build_app(&config)
    }
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
        file = %file.as_deref().map_or("-".into(), |p| p.display().to_string()),
        "gateway started"
    );

    if let Some((upstream, idp)) = &demo {
        gateway.wait_for_keys(Duration::from_secs(5)).await;
        let token =
            idp.token("demo-client", "demo-user", "api://echo", Duration::from_secs(3600))?;
        let url = format!("http://{}/echo/hello?name=world", reachable(local));
        println!("demo: echo upstream at http://{upstream}, IdP keys at {}", idp.jwks_url);
        println!(
            "demo: 200 from the echo upstream (token valid for 1 hour: client_id=demo-client, sub=demo-user):"
        );
        println!("curl -i -H 'Authorization: Bearer {token}' '{url}'");
        println!("demo: 401 JWT_MISSING_TOKEN without a token:");
        println!("curl -i '{url}'");
    }

    signals.serve(listener, gateway, file).await;
    tracing::info!("stopped");
    Ok(())
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
