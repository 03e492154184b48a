//! `gateway`: an example API gateway built on `tower-jwt-plan`.
//!
//! A reverse proxy that serves several APIs, each under its own context path, each protected by
//! the crate's `JwtPlanLayer`: a request reaches an API's backend only with a verified JWT whose
//! client holds an accepted subscription to one of the API's serving plans. APIs, plans,
//! applications and subscriptions come from a TOML file that is re-read on `SIGHUP`.
//!
//! # Run with
//!
//! ```text
//! # Self-contained demo: built-in echo upstream, demo IdP (JWKS), one API `echo` at /echo.
//! # It prints a ready-to-paste curl line with a valid one-hour token.
//! cargo run --release --example gateway
//!
//! # Your own APIs, from a file; --listen overrides the file's `listen`.
//! cargo run --release --example gateway -- --config gateway.toml [--listen 127.0.0.1:8080]
//!
//! # Validate a file and exit (0: valid; 1 and a one-line reason on stderr otherwise).
//! cargo run --release --example gateway -- --config gateway.toml --check
//!
//! # Reload the file without dropping traffic; stop gracefully.
//! kill -HUP <pid>
//! kill -TERM <pid>
//! ```
//!
//! # Try it
//!
//! ```text
//! $ curl -i -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8080/echo/hello?name=world'
//! HTTP/1.1 200 OK          (the echo upstream's JSON: method, path "/hello", query, headers)
//! $ curl -i 'http://127.0.0.1:8080/echo/hello'
//! HTTP/1.1 401 Unauthorized
//! www-authenticate: Bearer
//! {"error":"JWT_MISSING_TOKEN","message":"Unauthorized: a bearer token is required","http_status_code":401}
//! $ curl -i 'http://127.0.0.1:8080/nothing-here'
//! HTTP/1.1 404 Not Found
//! {"error":"NO_ROUTE","message":"no API is served at this path","http_status_code":404}
//! ```
//!
//! # Configuration file
//!
//! Unknown keys are errors. A file is validated whole before it is used, at startup and on
//! every `SIGHUP`.
//!
//! ```toml
//! listen = "127.0.0.1:8080"        # optional; default 127.0.0.1:8080; --listen overrides it
//! backend_timeout_secs = 30        # optional; time to the backend's response headers
//!
//! [[api]]
//! id = "echo"
//! context_path = "/echo"           # serves /echo and /echo/..., not /echoes; removed upstream
//! backend = "http://127.0.0.1:9000"  # http:// only; a path here is prefixed upstream
//!
//! [[api.plan]]
//! id = "gold"
//! name = "Gold"                    # optional, defaults to the id
//! security = "jwt"                 # "jwt" or "keyless"
//! status = "published"             # staging | published | deprecated | closed
//! algorithms = ["RS256", "ES256"]  # optional, default ["RS256"]
//! jwks_url = "https://idp.example/.well-known/jwks.json"  # exactly one of jwks_url,
//! # public_key_pem = "-----BEGIN PUBLIC KEY-----..."      # public_key_pem, hmac_secret
//! # hmac_secret = "at least 32 bytes of shared secret...."
//! issuer = "https://idp.example"   # optional, string or array
//! audience = ["api://echo"]        # optional, string or array
//! client_id_claim = "client_id"    # optional; default client_id, then azp
//! claims_to_headers = { sub = "x-user-id" }  # optional; client-sent copies are removed
//! propagate_auth_header = true     # optional; false removes Authorization upstream
//! # leeway_secs = 60, required_scopes = ["read"], scope_mode = "all" | "any",
//! # user_claim = "sub", extract_claims = true, max_lifetime_secs = 3600, token_types = ["JWT"]
//!
//! [[application]]
//! id = "app-1"
//! client_id = "my-client"
//!
//! [[subscription]]
//! id = "sub-1"
//! api = "echo"
//! plan = "gold"
//! application = "app-1"
//! status = "accepted"              # pending | accepted | paused | rejected | closed
//! starting_at = "2026-01-01T00:00:00Z"  # optional, RFC 3339, exclusive
//! ending_at = "2027-01-01T00:00:00Z"    # optional, RFC 3339, exclusive
//! ```
//!
//! A keyless plan that serves traffic (published or deprecated) is refused: it would let anyone
//! bypass the JWT plans. Plans sharing a JWKS URL share one `JwksCache`. The gateway starts even
//! when an IdP is unreachable: that IdP's plans answer 503 `JWKS_UNAVAILABLE` until keys arrive.
//!
//! # Behaviour
//!
//! - Routing: longest `context_path` on a path-segment boundary; no match is 404 `NO_ROUTE`.
//!   Paths with `.` or `..` segments are refused with 400 `BAD_PATH`.
//! - Forwarding (hyper-util's client): method, path without the context path, query, headers
//!   and a streamed body. Hop-by-hop headers (`connection` and the names it lists,
//!   `keep-alive`, `proxy-*`, `te`, `trailer`, `transfer-encoding`, `upgrade`) are dropped both
//!   ways, `Host` is the backend's, `x-forwarded-for`/`-host`/`-proto` are set. An unreachable
//!   backend is 502 `BACKEND_UNAVAILABLE`; no response headers within `backend_timeout_secs` is
//!   504 `BACKEND_TIMEOUT` (a response body already streaming is not cut). WebSocket upgrades
//!   and `CONNECT` are not supported.
//! - Reload (`SIGHUP`): the file is re-read and validated whole; a new routing table (routes,
//!   one `JwtPlanLayer` per API, one `InMemoryResolver`) replaces the old one behind a single
//!   `ArcSwap`, so each request sees the old configuration or the new one, never a mix, and
//!   APIs may be added or removed. JWKS caches are kept per URL across reloads. A refused file
//!   is logged and the previous configuration keeps serving. `listen` changes need a restart.
//! - Shutdown (`SIGTERM`/`SIGINT`): stop accepting, let in-flight requests finish (at most
//!   10 s), exit 0.
//! - Logs (stderr, `RUST_LOG`, `--log-format json`): one line per request with method, path,
//!   status, api, plan, client id, error code and latency to response headers; never a token.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::header::{
    CONNECTION, CONTENT_TYPE, EXPECT, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tower::{Layer, Service, ServiceExt};
use tower_jwt_plan::{
    Algorithm, AuthError, BoxError, InMemoryResolver, JwksCache, JwksWorker, JwtPlan, JwtPlanLayer,
    JwtSettings, KeySource, Plan, PlanContext, PlanSecurity, PlanStatus, ScopeMode, Subscription,
    SubscriptionStatus,
};

/// Listen address when neither `--listen` nor the file's `listen` says otherwise.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Default `backend_timeout_secs`.
pub(crate) const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Where the demo IdP serves its keys.
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const LONG_ABOUT: &str = "\
An example API gateway: a reverse proxy protecting each API with tower-jwt-plan's JwtPlanLayer.

Without --config it runs a self-contained demo (echo upstream, demo IdP, one API `echo` at \
/echo) and prints curl lines to try it. With --config it serves the APIs of a TOML file; the \
schema is documented at the top of examples/gateway.rs. SIGHUP reloads the file (a refused \
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
    /// Port 0 picks a free port; the actual address is printed as `listening on http://ADDR`.
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

// ---------------------------------------------------------------------------------------------
// Configuration file
// ---------------------------------------------------------------------------------------------

/// The whole configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Listen address, e.g. `127.0.0.1:8080`.
    #[serde(default)]
    pub(crate) listen: Option<String>,
    /// Bound on the wait for a backend's response headers.
    #[serde(default)]
    pub(crate) backend_timeout_secs: Option<u64>,
    /// The APIs.
    #[serde(default)]
    pub(crate) api: Vec<ApiConfig>,
    /// The applications (OAuth clients).
    #[serde(default)]
    pub(crate) application: Vec<ApplicationConfig>,
    /// Who may use which plan.
    #[serde(default)]
    pub(crate) subscription: Vec<SubscriptionConfig>,
}

/// One `[[api]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiConfig {
    pub(crate) id: String,
    pub(crate) context_path: String,
    pub(crate) backend: String,
    #[serde(default)]
    pub(crate) plan: Vec<PlanConfig>,
}

/// One `[[api.plan]]`. Not `Debug`: it may hold an HMAC secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanConfig {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    pub(crate) security: SecurityConfig,
    pub(crate) status: PlanStatusConfig,
    #[serde(default)]
    pub(crate) algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) jwks_url: Option<String>,
    #[serde(default)]
    pub(crate) public_key_pem: Option<String>,
    #[serde(default)]
    pub(crate) hmac_secret: Option<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) issuer: Option<Vec<String>>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) audience: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) client_id_claim: Option<String>,
    #[serde(default)]
    pub(crate) claims_to_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(crate) propagate_auth_header: Option<bool>,
    #[serde(default)]
    pub(crate) leeway_secs: Option<u64>,
    #[serde(default)]
    pub(crate) required_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) scope_mode: Option<ScopeModeConfig>,
    #[serde(default)]
    pub(crate) user_claim: Option<String>,
    #[serde(default)]
    pub(crate) extract_claims: Option<bool>,
    #[serde(default)]
    pub(crate) max_lifetime_secs: Option<u64>,
    #[serde(default)]
    pub(crate) token_types: Option<Vec<String>>,
}

/// `security = "jwt" | "keyless"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SecurityConfig {
    Jwt,
    Keyless,
}

/// A plan's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PlanStatusConfig {
    Staging,
    Published,
    Deprecated,
    Closed,
}

/// `scope_mode = "all" | "any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeModeConfig {
    All,
    Any,
}

/// One `[[application]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplicationConfig {
    pub(crate) id: String,
    pub(crate) client_id: String,
}

/// One `[[subscription]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionConfig {
    pub(crate) id: String,
    pub(crate) api: String,
    pub(crate) plan: String,
    pub(crate) application: String,
    pub(crate) status: SubscriptionStatusConfig,
    #[serde(default, deserialize_with = "rfc3339")]
    pub(crate) starting_at: Option<SystemTime>,
    #[serde(default, deserialize_with = "rfc3339")]
    pub(crate) ending_at: Option<SystemTime>,
}

/// A subscription's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SubscriptionStatusConfig {
    Pending,
    Accepted,
    Paused,
    Rejected,
    Closed,
}

impl From<PlanStatusConfig> for PlanStatus {
    fn from(status: PlanStatusConfig) -> Self {
        match status {
            PlanStatusConfig::Staging => PlanStatus::Staging,
            PlanStatusConfig::Published => PlanStatus::Published,
            PlanStatusConfig::Deprecated => PlanStatus::Deprecated,
            PlanStatusConfig::Closed => PlanStatus::Closed,
        }
    }
}

impl From<SubscriptionStatusConfig> for SubscriptionStatus {
    fn from(status: SubscriptionStatusConfig) -> Self {
        match status {
            SubscriptionStatusConfig::Pending => SubscriptionStatus::Pending,
            SubscriptionStatusConfig::Accepted => SubscriptionStatus::Accepted,
            SubscriptionStatusConfig::Paused => SubscriptionStatus::Paused,
            SubscriptionStatusConfig::Rejected => SubscriptionStatus::Rejected,
            SubscriptionStatusConfig::Closed => SubscriptionStatus::Closed,
        }
    }
}

/// `"x"` or `["x", "y"]`.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct StringOrList;

    impl<'de> Visitor<'de> for StringOrList {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_owned()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    d.deserialize_any(StringOrList).map(Some)
}

/// An RFC 3339 date-time, written as a string or as a TOML offset date-time.
fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    struct DateTime;

    const EXPECTING: &str = "an RFC 3339 date-time such as \"2026-01-01T00:00:00Z\"";

    fn parse<E: de::Error>(text: &str) -> Result<SystemTime, E> {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(SystemTime::from)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &EXPECTING))
    }

    impl<'de> Visitor<'de> for DateTime {
        type Value = SystemTime;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTING)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<SystemTime, E> {
            parse(v)
        }

        // A bare TOML date-time arrives as toml's private one-entry map.
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SystemTime, A::Error> {
            let datetime =
                toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
            parse(&datetime.to_string())
        }
    }

    d.deserialize_any(DateTime).map(Some)
}

/// Read and parse a configuration file. Errors are one line, without the file name.
pub(crate) fn load_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    parse_config(&text)
}

/// Parse configuration text. Syntax and schema errors name the line and column.
pub(crate) fn parse_config(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|err| {
        let place = err
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        one_line(&format!("{place}{}", err.message()))
    })
}

/// Collapse a message onto one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Validation: a configuration compiled into a routing table
// ---------------------------------------------------------------------------------------------

/// Counts, for log lines and `--check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) apis: usize,
    pub(crate) plans: usize,
    pub(crate) applications: usize,
    pub(crate) subscriptions: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |count: usize, word: &str| {
            let s = if count == 1 { "" } else { "s" };
            format!("{count} {word}{s}")
        };
        write!(
            f,
            "{}, {}, {}, {}",
            n(self.apis, "API"),
            n(self.plans, "plan"),
            n(self.applications, "application"),
            n(self.subscriptions, "subscription")
        )
    }
}

type HttpClient = Client<HttpConnector, Incoming>;

/// One configuration, ready to serve. Immutable: a reload builds a new one.
struct Generation {
    /// Longest prefix first.
    routes: Vec<Route>,
    listen: Option<SocketAddr>,
    summary: Summary,
}

struct Route {
    api: Arc<str>,
    /// The context path without its trailing `/` (`""` for `/`).
    prefix: String,
    service: JwtPlan<Proxy, InMemoryResolver>,
    /// The same proxy without the layer, used only by `--benchmark-without-plans`.
    proxy: Proxy,
}

impl Generation {
    fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            path.strip_prefix(route.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

struct Compiled {
    generation: Generation,
    caches: HashMap<String, JwksCache>,
    workers: Vec<JwksWorker>,
}

/// A backend URL: `http://host[:port][/base/path]`.
#[derive(Clone)]
struct Backend {
    authority: Authority,
    host: HeaderValue,
    base_path: String,
}

impl Backend {
    fn parse(url: &str) -> Result<Self, &'static str> {
        let uri: Uri = url.parse().map_err(|_| "not a URL")?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https backends are not supported by this example (no TLS client)");
            }
            _ => return Err("must be an http:// URL"),
        }
        let authority = uri.authority().ok_or("has no host")?.clone();
        if authority.as_str().contains('@') {
            return Err("must not contain user info");
        }
        if authority.host().is_empty() {
            return Err("has no host");
        }
        if uri.query().is_some() {
            return Err("must not have a query string");
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "invalid host")?;
        Ok(Self { authority, host, base_path: uri.path().trim_end_matches('/').to_owned() })
    }
}

fn context_prefix(context_path: &str) -> Result<String, &'static str> {
    if !context_path.starts_with('/') {
        return Err("must start with `/`");
    }
    let plain = context_path.chars().all(|c| c.is_ascii_graphic() && c != '?' && c != '#');
    if !plain {
        return Err("must be a plain path (no spaces, `?` or `#`)");
    }
    let prefix = context_path.trim_end_matches('/');
    if prefix.split('/').skip(1).any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err("must not have empty, `.` or `..` segments");
    }
    Ok(prefix.to_owned())
}

fn check_id(kind: &str, id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err(format!("{kind} id must not be empty"));
    }
    Ok(())
}

/// The JWKS cache for `url`: one per URL, reused from the previous generation when possible.
fn jwks_cache(
    url: &str,
    known: &HashMap<String, JwksCache>,
    caches: &mut HashMap<String, JwksCache>,
    workers: &mut Vec<JwksWorker>,
) -> Result<JwksCache, String> {
    if let Some(cache) = caches.get(url) {
        return Ok(cache.clone());
    }
    let cache = match known.get(url) {
        Some(cache) => cache.clone(),
        None => {
            let (cache, worker) =
                JwksCache::builder(url).build_with_worker().map_err(|e| e.to_string())?;
            workers.push(worker);
            cache
        }
    };
    caches.insert(url.to_owned(), cache.clone());
    Ok(cache)
}

fn build_plan(
    plan: &PlanConfig,
    known: &HashMap<String, JwksCache>,
    caches: &mut HashMap<String, JwksCache>,
    workers: &mut Vec<JwksWorker>,
) -> Result<Plan, String> {
    let name = plan.name.clone().unwrap_or_else(|| plan.id.clone());
    let status = PlanStatus::from(plan.status);
    if plan.security == SecurityConfig::Keyless {
        let jwt_only = [
            ("algorithms", plan.algorithms.is_some()),
            ("jwks_url", plan.jwks_url.is_some()),
            ("public_key_pem", plan.public_key_pem.is_some()),
            ("hmac_secret", plan.hmac_secret.is_some()),
            ("issuer", plan.issuer.is_some()),
            ("audience", plan.audience.is_some()),
            ("client_id_claim", plan.client_id_claim.is_some()),
            ("claims_to_headers", plan.claims_to_headers.is_some()),
            ("propagate_auth_header", plan.propagate_auth_header.is_some()),
            ("leeway_secs", plan.leeway_secs.is_some()),
            ("required_scopes", plan.required_scopes.is_some()),
            ("scope_mode", plan.scope_mode.is_some()),
            ("user_claim", plan.user_claim.is_some()),
            ("extract_claims", plan.extract_claims.is_some()),
            ("max_lifetime_secs", plan.max_lifetime_secs.is_some()),
            ("token_types", plan.token_types.is_some()),
        ];
        if let Some((field, _)) = jwt_only.iter().find(|(_, set)| *set) {
            return Err(format!("`{field}` does not apply to a keyless plan"));
        }
        return Ok(Plan::new(plan.id.as_str(), name, status, PlanSecurity::Keyless));
    }
    let keys = match (&plan.jwks_url, &plan.public_key_pem, &plan.hmac_secret) {
        (Some(url), None, None) => KeySource::jwks(jwks_cache(url, known, caches, workers)?),
        (None, Some(pem), None) => {
            KeySource::public_key_pem(pem).map_err(|e| format!("public_key_pem: {e}"))?
        }
        (None, None, Some(secret)) => KeySource::hmac_secret(secret.as_bytes()),
        _ => {
            return Err(
                "a jwt plan needs exactly one of `jwks_url`, `public_key_pem`, `hmac_secret`"
                    .into(),
            );
        }
    };
    let mut settings = JwtSettings::new(keys);
    if let Some(names) = &plan.algorithms {
        let algorithms = names
            .iter()
            .map(|name| {
                Algorithm::from_str(name).map_err(|_| format!("unknown algorithm `{name}`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        settings = settings.algorithms(algorithms);
    }
    for issuer in plan.issuer.iter().flatten() {
        settings = settings.issuer(issuer.as_str());
    }
    for audience in plan.audience.iter().flatten() {
        settings = settings.audience(audience.as_str());
    }
    if let Some(claim) = &plan.client_id_claim {
        settings = settings.client_id_claim(claim.as_str());
    }
    for (claim, header) in plan.claims_to_headers.iter().flatten() {
        settings = settings.claim_to_header(claim.as_str(), header.as_str());
    }
    if let Some(on) = plan.propagate_auth_header {
        settings = settings.propagate_auth_header(on);
    }
    if let Some(secs) = plan.leeway_secs {
        settings = settings.leeway(Duration::from_secs(secs));
    }
    if plan.scope_mode.is_some() && plan.required_scopes.is_none() {
        return Err("`scope_mode` needs `required_scopes`".into());
    }
    if let Some(scopes) = &plan.required_scopes {
        let mode = match plan.scope_mode {
            Some(ScopeModeConfig::Any) => ScopeMode::Any,
            Some(ScopeModeConfig::All) | None => ScopeMode::All,
        };
        settings = settings.required_scopes(scopes.iter().map(String::as_str), mode);
    }
    if let Some(claim) = &plan.user_claim {
        settings = settings.user_claim(claim.as_str());
    }
    if let Some(on) = plan.extract_claims {
        settings = settings.extract_claims(on);
    }
    if let Some(secs) = plan.max_lifetime_secs {
        settings = settings.max_lifetime(Duration::from_secs(secs));
    }
    if let Some(types) = &plan.token_types {
        settings = settings.token_types(types.iter().map(String::as_str));
    }
    Ok(Plan::jwt(plan.id.as_str(), name, settings).with_status(status))
}

/// Validate a configuration whole and build its routing table. Nothing is spawned: JWKS
/// workers of new URLs are returned, to be spawned only if the generation is used.
fn compile(
    config: &Config,
    known: &HashMap<String, JwksCache>,
    client: &HttpClient,
) -> Result<Compiled, String> {
    let timeout = match config.backend_timeout_secs {
        None => DEFAULT_BACKEND_TIMEOUT,
        Some(0) => return Err("`backend_timeout_secs` must be more than zero".into()),
        Some(secs) => Duration::from_secs(secs),
    };
    let listen = config_listen(config)?;
    if config.api.is_empty() {
        return Err("no [[api]] is defined".into());
    }

    let resolver = InMemoryResolver::default();
    let mut caches = HashMap::new();
    let mut workers = Vec::new();
    let mut routes = Vec::new();
    let mut prefixes: HashMap<String, &str> = HashMap::new();
    let mut plans_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut summary = Summary::default();

    for api in &config.api {
        check_id("api", &api.id)?;
        if plans_of.contains_key(api.id.as_str()) {
            return Err(format!("duplicate api id `{}`", api.id));
        }
        let prefix = context_prefix(&api.context_path)
            .map_err(|r| format!("api `{}`: context_path `{}` {r}", api.id, api.context_path))?;
        if let Some(other) = prefixes.insert(prefix.clone(), &api.id) {
            return Err(format!(
                "api `{}`: context_path `{}` is already used by api `{other}`",
                api.id, api.context_path
            ));
        }
        let backend = Backend::parse(&api.backend)
            .map_err(|r| format!("api `{}`: backend `{}` {r}", api.id, api.backend))?;
        let mut plans = Vec::with_capacity(api.plan.len());
        for plan in &api.plan {
            let built = build_plan(plan, known, &mut caches, &mut workers)
                .map_err(|e| format!("api `{}`, plan `{}`: {e}", api.id, plan.id))?;
            plans.push(built);
        }
        // Checks plan ids (empty, duplicate), keyless plans that would serve, algorithms
        // against keys, claim header names.
        let layer = JwtPlanLayer::builder(api.id.as_str())
            .plans(plans)
            .resolver(resolver.clone())
            .build()
            .map_err(|e| format!("api `{}`: {e}", api.id))?;
        plans_of.insert(&api.id, api.plan.iter().map(|p| p.id.as_str()).collect());
        summary.plans += api.plan.len();
        let proxy = Proxy {
            target: Arc::new(Target { prefix_len: prefix.len(), backend, timeout }),
            client: client.clone(),
        };
        let service = layer.layer(proxy.clone());
        routes.push(Route { api: api.id.as_str().into(), prefix, service, proxy });
    }
    routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
    summary.apis = routes.len();

    let mut client_of: HashMap<&str, &str> = HashMap::new();
    let mut app_of_client: HashMap<&str, &str> = HashMap::new();
    for app in &config.application {
        check_id("application", &app.id)?;
        if client_of.contains_key(app.id.as_str()) {
            return Err(format!("duplicate application id `{}`", app.id));
        }
        if app.client_id.is_empty() {
            return Err(format!("application `{}`: client_id must not be empty", app.id));
        }
        if let Some(other) = app_of_client.insert(&app.client_id, &app.id) {
            return Err(format!(
                "application `{}`: client_id `{}` is already used by application `{other}`",
                app.id, app.client_id
            ));
        }
        client_of.insert(&app.id, &app.client_id);
    }
    summary.applications = client_of.len();

    let mut subscriptions = Vec::with_capacity(config.subscription.len());
    let mut sub_ids = HashSet::new();
    let mut holder: HashMap<(&str, &str, &str), &str> = HashMap::new();
    for sub in &config.subscription {
        check_id("subscription", &sub.id)?;
        if !sub_ids.insert(sub.id.as_str()) {
            return Err(format!("duplicate subscription id `{}`", sub.id));
        }
        let Some(plans) = plans_of.get(sub.api.as_str()) else {
            return Err(format!("subscription `{}`: unknown api `{}`", sub.id, sub.api));
        };
        if !plans.contains(sub.plan.as_str()) {
            return Err(format!(
                "subscription `{}`: api `{}` has no plan `{}`",
                sub.id, sub.api, sub.plan
            ));
        }
        let Some(client_id) = client_of.get(sub.application.as_str()) else {
            return Err(format!(
                "subscription `{}`: unknown application `{}`",
                sub.id, sub.application
            ));
        };
        if let (Some(start), Some(end)) = (sub.starting_at, sub.ending_at)
            && start >= end
        {
            return Err(format!("subscription `{}`: starting_at is not before ending_at", sub.id));
        }
        let key = (sub.api.as_str(), sub.plan.as_str(), sub.application.as_str());
        if let Some(other) = holder.insert(key, &sub.id) {
            return Err(format!(
                "subscription `{}`: application `{}` already holds subscription `{other}` to plan `{}` of api `{}`",
                sub.id, sub.application, sub.plan, sub.api
            ));
        }
        let mut subscription = Subscription::new(
            sub.id.as_str(),
            sub.api.as_str(),
            sub.plan.as_str(),
            sub.application.as_str(),
            *client_id,
            sub.status.into(),
        );
        if let Some(at) = sub.starting_at {
            subscription = subscription.starting_at(at);
        }
        if let Some(at) = sub.ending_at {
            subscription = subscription.ending_at(at);
        }
        subscriptions.push(subscription);
    }
    summary.subscriptions = subscriptions.len();
    resolver.replace_all(subscriptions);

    Ok(Compiled { generation: Generation { routes, listen, summary }, caches, workers })
}

/// The file's `listen`, parsed.
pub(crate) fn config_listen(config: &Config) -> Result<Option<SocketAddr>, String> {
    config
        .listen
        .as_deref()
        .map(|text| {
            text.parse()
                .map_err(|_| format!("listen `{text}` is not an address such as 127.0.0.1:8080"))
        })
        .transpose()
}

/// Validate a configuration whole, as `--check` does: nothing is fetched or spawned.
pub(crate) fn check_config(config: &Config) -> Result<Summary, String> {
    compile(config, &HashMap::new(), &http_client()).map(|c| c.generation.summary)
}

fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

// ---------------------------------------------------------------------------------------------
// The gateway: routing, logging, reload
// ---------------------------------------------------------------------------------------------

/// Response body of everything the gateway answers.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The running gateway. Clones share everything.
#[derive(Clone)]
pub(crate) struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Generation>,
    /// JWKS caches of the current generation, by URL; kept across reloads.
    caches: Mutex<HashMap<String, JwksCache>>,
    client: HttpClient,
    /// `--benchmark-without-plans`: bypass the layer.
    unprotected: bool,
}

/// Build a gateway from a configuration: validate it whole, then start the JWKS workers.
/// Must run inside a Tokio runtime.
pub(crate) fn build_app(config: &Config) -> Result<Gateway, String> {
    build_app_with(config, false)
}

/// [`build_app`], optionally without the layer (`--benchmark-without-plans`).
pub(crate) fn build_app_with(config: &Config, unprotected: bool) -> Result<Gateway, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "build_app must run inside a Tokio runtime".to_owned())?;
    let client = http_client();
    let compiled = compile(config, &HashMap::new(), &client)?;
    for worker in compiled.workers {
        runtime.spawn(worker.run());
    }
    Ok(Gateway {
        inner: Arc::new(Inner {
            current: ArcSwap::from_pointee(compiled.generation),
            caches: Mutex::new(compiled.caches),
            client,
            unprotected,
        }),
    })
}

/// Remote address of the client, for `x-forwarded-for`.
#[derive(Debug, Clone, Copy)]
struct ClientAddr(SocketAddr);

/// The error code of an answer the gateway itself made, for the access log.
#[derive(Debug, Clone, Copy)]
struct GatewayCode(&'static str);

impl Gateway {
    /// Validate `config` whole and swap it in atomically. On error nothing changes.
    pub(crate) fn redeploy(&self, config: &Config) -> Result<Summary, String> {
        let mut caches = self.inner.caches.lock().unwrap_or_else(PoisonError::into_inner);
        let compiled = compile(config, &caches, &self.inner.client)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "redeploy must run inside a Tokio runtime".to_owned())?;
        for worker in compiled.workers {
            runtime.spawn(worker.run());
        }
        let summary = compiled.generation.summary;
        let old = self.inner.current.swap(Arc::new(compiled.generation));
        // Caches no longer used stop their workers once the old generation is gone.
        *caches = compiled.caches;
        let new = self.inner.current.load();
        if old.listen != new.listen {
            tracing::warn!("the `listen` address changed; it takes effect only after a restart");
        }
        Ok(summary)
    }

    /// Counts of the configuration now serving.
    pub(crate) fn summary(&self) -> Summary {
        self.inner.current.load().summary
    }

    /// The JWKS URLs in use, one cache each, sorted.
    pub(crate) fn jwks_urls(&self) -> Vec<String> {
        let caches = self.inner.caches.lock().unwrap_or_else(PoisonError::into_inner);
        let mut urls: Vec<String> = caches.keys().cloned().collect();
        urls.sort();
        urls
    }

    /// Wait until every JWKS cache holds keys, or `timeout` passes. Returns whether all do.
    pub(crate) async fn wait_for_keys(&self, timeout: Duration) -> bool {
        let caches: Vec<JwksCache> = {
            let caches = self.inner.caches.lock().unwrap_or_else(PoisonError::into_inner);
            caches.values().cloned().collect()
        };
        let deadline = Instant::now() + timeout;
        for cache in caches {
            let left = deadline.saturating_duration_since(Instant::now());
            if !cache.wait_ready(left).await {
                return false;
            }
        }
        true
    }

    /// Answer one request: route, check, forward, log.
    pub(crate) async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let generation = self.inner.current.load_full();
        let mut api = None;
        let response = if method == Method::CONNECT {
            gateway_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "CONNECT is not supported",
            )
        } else if has_dot_segment(&path) {
            gateway_error(
                StatusCode::BAD_REQUEST,
                "BAD_PATH",
                "paths with `.` or `..` segments are refused",
            )
        } else if let Some(route) = generation.route(&path) {
            api = Some(route.api.clone());
            // Before the layer, so that headers it sets cannot be named in `Connection`.
            strip_hop_by_hop(req.headers_mut());
            req.extensions_mut().insert(ClientAddr(peer));
            let response = if self.inner.unprotected {
                route.proxy.clone().oneshot(req).await.map(|r| r.map(BodyExt::boxed_unsync))
            } else {
                route.service.clone().oneshot(req).await.map(|r| r.map(BodyExt::boxed_unsync))
            };
            match response {
                Ok(response) => response,
                Err(never) => match never {},
            }
        } else {
            gateway_error(StatusCode::NOT_FOUND, "NO_ROUTE", "no API is served at this path")
        };
        let extensions = response.extensions();
        let context = extensions.get::<PlanContext>();
        let error = extensions
            .get::<AuthError>()
            .map(AuthError::code)
            .or_else(|| extensions.get::<GatewayCode>().map(|c| c.0));
        tracing::info!(
            target: "gateway::access",
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            api = api.as_deref().unwrap_or("-"),
            plan = context.map_or("-", PlanContext::plan_id),
            client_id = context.map_or("-", PlanContext::client_id),
            error = error.unwrap_or("-"),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        response
    }
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// Drop hop-by-hop headers (RFC 9110 §7.6.1), including those listed in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    let proxy: Vec<HeaderName> =
        headers.keys().filter(|name| name.as_str().starts_with("proxy-")).cloned().collect();
    for name in proxy {
        headers.remove(name);
    }
}

fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A JSON error answered by the gateway itself, in the crate's format.
fn gateway_error(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    let body = json!({
        "error": code,
        "message": message,
        "http_status_code": status.as_u16(),
    });
    let mut response = Response::new(full_body(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.extensions_mut().insert(GatewayCode(code));
    response
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The proxy: the service inside each API's JwtPlanLayer
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Proxy {
    target: Arc<Target>,
    client: HttpClient,
}

struct Target {
    prefix_len: usize,
    backend: Backend,
    timeout: Duration,
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            // The layer put the context in the request; hand it to the access log through the
            // response, whatever the backend answers.
            let context = req.extensions().get::<PlanContext>().cloned();
            let mut response = this.forward(req).await;
            if let Some(context) = context {
                response.extensions_mut().insert(context);
            }
            Ok(response)
        })
    }
}

impl Proxy {
    async fn forward(&self, req: Request<Incoming>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let target = &self.target;
        let rest = parts.uri.path().get(target.prefix_len..).unwrap_or("");
        let mut path = String::with_capacity(target.backend.base_path.len() + rest.len() + 1);
        path.push_str(&target.backend.base_path);
        path.push_str(rest);
        if path.is_empty() {
            path.push('/');
        }
        if let Some(query) = parts.uri.query() {
            path.push('?');
            path.push_str(query);
        }
        let uri = match Uri::builder()
            .scheme("http")
            .authority(target.backend.authority.clone())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => uri,
            Err(err) => {
                tracing::warn!(error = %err, "cannot build the backend URI");
                return gateway_error(StatusCode::BAD_REQUEST, "BAD_PATH", "invalid path");
            }
        };

        let original_host =
            parts.headers.get(HOST).cloned().or_else(|| {
                parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
        parts.headers.insert(HOST, target.backend.host.clone());
        if let Some(host) = original_host {
            parts.headers.insert("x-forwarded-host", host);
        }
        parts.headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        if let Some(ClientAddr(peer)) = parts.extensions.get::<ClientAddr>().copied() {
            let mut chain: Vec<String> = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            chain.push(peer.ip().to_string());
            if let Ok(value) = HeaderValue::from_str(&chain.join(", ")) {
                parts.headers.insert("x-forwarded-for", value);
            }
        }
        // hyper's server already answered any `Expect: 100-continue`.
        parts.headers.remove(EXPECT);
        parts.uri = uri;
        parts.version = Version::HTTP_11;

        let request = Request::from_parts(parts, body);
        match tokio::time::timeout(target.timeout, self.client.request(request)).await {
            Err(_) => {
                tracing::warn!(backend = %target.backend.authority, timeout_secs = target.timeout.as_secs_f64(), "backend timed out");
                gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "BACKEND_TIMEOUT",
                    "the backend did not answer in time",
                )
            }
            Ok(Err(err)) => {
                tracing::warn!(backend = %target.backend.authority, error = %error_chain(&err), "backend request failed");
                gateway_error(
                    StatusCode::BAD_GATEWAY,
                    "BACKEND_UNAVAILABLE",
                    "the backend could not be reached",
                )
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving: accept loop, graceful shutdown
// ---------------------------------------------------------------------------------------------

/// Serve until `shutdown` completes, then stop accepting and give open connections
/// [`SHUTDOWN_GRACE`] to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, gateway.clone(), stop_rx.clone()));
                }
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        open_connections = connections.len(),
        "no longer accepting connections; finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open_connections = connections.len(),
            "grace period over; closing the remaining connections"
        );
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Gateway,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(gateway.handle(req, peer).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(err) = connection.await {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

// ---------------------------------------------------------------------------------------------
// Demo: echo upstream and a demo identity provider
// ---------------------------------------------------------------------------------------------

/// Serve an axum router on 127.0.0.1 (a free port) in the background.
pub(crate) async fn serve_router(router: axum::Router) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::warn!(error = %err, "demo server stopped");
        }
    });
    Ok(addr)
}

/// An upstream that answers every request with a JSON description of it.
pub(crate) fn echo_router() -> axum::Router {
    axum::Router::new().fallback(echo)
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let mut names = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<&str> =
            headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("<binary>")).collect();
        names.insert(name.to_string(), Value::String(values.join(", ")));
    }
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": names,
        "body": String::from_utf8_lossy(&body),
    }))
}

/// An ES256 signing key with its public JWK.
pub(crate) struct DemoKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl DemoKey {
    /// A fresh P-256 key.
    pub(crate) fn generate(kid: &str) -> Result<Self, String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "cannot generate the demo key".to_owned())?;
        Ok(Self { pair, kid: kid.to_owned() })
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        // The uncompressed SEC1 point: 0x04, then x and y, 32 bytes each.
        let point = self.pair.public_key().as_ref();
        let (x, y) = point.get(1..65).map_or((&[][..], &[][..]), |xy| xy.split_at(32));
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// Sign `claims` as a compact JWS (ES256, with this key's `kid`).
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| "cannot sign the demo token".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// A demo identity provider: a key, served as a JWKS on a loopback port.
pub(crate) struct DemoIdp {
    pub(crate) key: DemoKey,
    pub(crate) issuer: String,
    pub(crate) jwks_url: String,
}

impl DemoIdp {
    /// Generate a key and serve it at `http://127.0.0.1:PORT/.well-known/jwks.json`.
    pub(crate) async fn start() -> Result<Self, String> {
        let key = DemoKey::generate("demo-key-1")?;
        let jwks = json!({ "keys": [key.jwk()] });
        let router = axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let addr = serve_router(router).await?;
        Ok(Self {
            key,
            issuer: format!("http://{addr}"),
            jwks_url: format!("http://{addr}{JWKS_PATH}"),
        })
    }

    /// A token of this IdP: `client_id`, `sub`, `iss`, `aud`, `iat`, `exp` = now + `lifetime`.
    pub(crate) fn token(
        &self,
        client_id: &str,
        sub: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.key.sign(&json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": sub,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime.as_secs(),
        }))
    }
}

/// The demo's configuration, in the file format.
pub(crate) fn demo_config_text(upstream: SocketAddr, idp: &DemoIdp) -> String {
    format!(
        r#"listen = "127.0.0.1:8080"

[[api]]
id = "echo"
context_path = "/echo"
backend = "http://{upstream}"

[[api.plan]]
id = "gold"
name = "Gold"
security = "jwt"
status = "published"
algorithms = ["ES256"]
jwks_url = "{jwks}"
issuer = "{issuer}"
audience = "api://echo"
claims_to_headers = {{ sub = "x-user-id" }}

[[application]]
id = "app-1"
client_id = "demo-client"

[[subscription]]
id = "sub-1"
api = "echo"
plan = "gold"
application = "app-1"
status = "accepted"
"#,
        jwks = idp.jwks_url,
        issuer = idp.issuer,
    )
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installed before anything listens, so an early SIGHUP cannot kill the process.
    fn install() -> Result<Self, String> {
        let install = |kind: SignalKind| {
            signal(kind).map_err(|e| format!("cannot install a signal handler: {e}"))
        };
        Ok(Self {
            hangup: install(SignalKind::hangup())?,
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }
}

async fn reload_on_hangup(mut hangup: Signal, file: Option<PathBuf>, gateway: Gateway) {
    while hangup.recv().await.is_some() {
        let Some(file) = &file else {
            tracing::warn!("SIGHUP ignored: the demo has no configuration file");
            continue;
        };
        let shown = file.display().to_string();
        match load_config(file).and_then(|config| gateway.redeploy(&config)) {
            Ok(summary) => {
                tracing::info!(file = %shown, %summary, "configuration reloaded");
            }
            Err(err) => {
                tracing::error!(file = %shown, error = %err, "configuration reload refused; the previous configuration keeps serving");
            }
        }
    }
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
        None => config_listen(&config).map_err(in_file)?.unwrap_or(DEFAULT_LISTEN),
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
    println!("listening on http://{local}");
    tracing::info!(
        %local,
        summary = %gateway.summary(),
        jwks_urls = ?gateway.jwks_urls(),
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

    let Signals { hangup, mut terminate, mut interrupt } = signals;
    tokio::spawn(reload_on_hangup(hangup, file, gateway.clone()));
    let shutdown = async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    };
    serve(listener, gateway, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
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
