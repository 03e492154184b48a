//! The configuration file: its TOML schema and its parsing.
//!
//! [`Config`] is plain data with public fields: the TOML file is one way to get it (through
//! [`parse_config`]), and code can build one directly (a catalog, a test). Parsing only checks
//! the shape (unknown keys are errors); what the values mean is checked whole by
//! [`crate::compile`], at startup, on `--check` and on every reload.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use tower_jwt_plan::definition::ConfirmationDefinition;
use tower_jwt_plan::limit::Restrictions;
use tower_jwt_plan::{PlanStatus, SubscriptionStatus};

use crate::limits::LimitsConfig;
use crate::tls::TlsConfig;

/// Listen address when neither `--listen` nor the file's `listen` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Default `backend_timeout_secs`.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole configuration file: APIs with their plans, applications, subscriptions.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address, e.g. `127.0.0.1:8080`.
    #[serde(default)]
    pub listen: Option<String>,
    /// Bound on the wait for a backend's response headers, in seconds (default 30).
    #[serde(default)]
    pub backend_timeout_secs: Option<u64>,
    /// Connection limits (`[limits]`); see [`crate::limits`].
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Serve HTTPS (`[tls]`); see [`crate::tls`]. Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The APIs (`[[api]]`).
    #[serde(default)]
    pub api: Vec<ApiConfig>,
    /// The applications, i.e. OAuth clients (`[[application]]`).
    #[serde(default)]
    pub application: Vec<ApplicationConfig>,
    /// Who may use which plan (`[[subscription]]`).
    #[serde(default)]
    pub subscription: Vec<SubscriptionConfig>,
}

impl Config {
    /// The `listen` address, parsed; `None` when the file has none.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        self.listen
            .as_deref()
            .map(|text| {
                text.parse().map_err(|_| {
                    format!("listen `{text}` is not an address such as 127.0.0.1:8080")
                })
            })
            .transpose()
    }
}

/// One `[[api]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Unique id of the API.
    pub id: String,
    /// Where the API is served (`/echo` serves `/echo` and `/echo/...`); removed upstream.
    pub context_path: String,
    /// `http://` or `https://host[:port][/base/path]`.
    pub backend: String,
    /// PEM file of a CA trusted for this API's `https://` backend, besides the system's roots.
    #[serde(default)]
    pub backend_ca_file: Option<PathBuf>,
    /// Protected-resource metadata (RFC 9728), opt-in. Default: none.
    #[serde(default)]
    pub resource_metadata: Option<ResourceMetadataConfig>,
    /// The API's plans (`[[api.plan]]`).
    #[serde(default)]
    pub plan: Vec<PlanConfig>,
}

/// An API's `resource_metadata` table (RFC 9728): the document served at
/// `/.well-known/oauth-protected-resource<context_path>`, named in every 401 challenge.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMetadataConfig {
    /// The API's public URL, the resource identifier (e.g. `https://api.example/echo`); its
    /// path must be the context path.
    pub resource: String,
    /// Issuers of the API's tokens. Default: none.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes clients may ask for. Default: none.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// One `[[api.plan]]`. Not `Debug`: it may hold an HMAC secret. The optional keys map to the
/// `JwtSettings` setters of the same name; `None` keeps the library's default.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Plan id, unique within its API.
    pub id: String,
    /// Display name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// `jwt` or `keyless`.
    pub security: SecurityConfig,
    /// Lifecycle status.
    pub status: PlanStatusConfig,
    /// Accepted algorithms (default `["RS256"]`).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Remote key set; exclusive with `public_key_pem`, `hmac_secret` and `oidc_issuer`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// One static public key.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// A shared HMAC secret.
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// Keys found from this issuer by OpenID Connect Discovery; `issuer` defaults to it.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// Accepted issuers (a string or an array).
    #[serde(default, deserialize_with = "tower_jwt_plan::definition::string_or_list")]
    pub issuer: Option<Vec<String>>,
    /// Accepted audiences (a string or an array).
    #[serde(default, deserialize_with = "tower_jwt_plan::definition::string_or_list")]
    pub audience: Option<Vec<String>>,
    /// The claim naming the client (default `client_id`, then `azp`).
    #[serde(default)]
    pub client_id_claim: Option<String>,
    /// Claims copied into request headers, claim name to header name.
    #[serde(default)]
    pub claims_to_headers: Option<BTreeMap<String, String>>,
    /// `false` removes `Authorization` upstream.
    #[serde(default)]
    pub propagate_auth_header: Option<bool>,
    /// Clock leeway in seconds.
    #[serde(default)]
    pub leeway_secs: Option<u64>,
    /// Scopes the token must carry.
    #[serde(default)]
    pub required_scopes: Option<Vec<String>>,
    /// Whether all or any of `required_scopes` are needed.
    #[serde(default)]
    pub scope_mode: Option<ScopeModeConfig>,
    /// The claim naming the end user.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// Whether verified claims are put in the request's extensions.
    #[serde(default)]
    pub extract_claims: Option<bool>,
    /// Refuse tokens whose `exp` is further than this many seconds in the future.
    #[serde(default)]
    pub max_lifetime_secs: Option<u64>,
    /// Accepted `typ` header values.
    #[serde(default)]
    pub token_types: Option<Vec<String>>,
    /// `[api.plan.restrictions]`: `rate_limit = { limit, period_secs }`, `quota = { limit,
    /// period = "hour" | "day" | "week" | "month" }`, `spike_arrest = { limit, period_secs }`
    /// (JWT plans only).
    #[serde(default)]
    pub restrictions: Option<Restrictions>,
    /// Revoked `jti`s from this URL (fail closed: 503 until a first list is loaded).
    #[serde(default)]
    pub revocation_list_url: Option<String>,
    /// Certificate-bound tokens (RFC 8705): `required`, `optional` or `off` (default).
    #[serde(default)]
    pub confirmation: Option<ConfirmationDefinition>,
}

/// `security = "jwt" | "keyless"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityConfig {
    /// A verified JWT is required.
    Jwt,
    /// No token (refused while the plan serves traffic).
    Keyless,
}

/// A plan's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatusConfig {
    /// Not yet serving.
    Staging,
    /// Serving.
    Published,
    /// Serving existing subscriptions.
    Deprecated,
    /// Not serving.
    Closed,
}

/// `scope_mode = "all" | "any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeModeConfig {
    /// Every required scope.
    All,
    /// At least one required scope.
    Any,
}

/// One `[[application]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// Unique id of the application.
    pub id: String,
    /// The OAuth client id its tokens carry; unique.
    pub client_id: String,
}

/// One `[[subscription]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Unique id of the subscription.
    pub id: String,
    /// The API's id.
    pub api: String,
    /// The plan's id within that API.
    pub plan: String,
    /// The application's id.
    pub application: String,
    /// Lifecycle status.
    pub status: SubscriptionStatusConfig,
    /// Start, exclusive (RFC 3339).
    #[serde(default, deserialize_with = "rfc3339")]
    pub starting_at: Option<SystemTime>,
    /// End, exclusive (RFC 3339).
    #[serde(default, deserialize_with = "rfc3339")]
    pub ending_at: Option<SystemTime>,
}

/// A subscription's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatusConfig {
    /// Awaiting approval.
    Pending,
    /// In force.
    Accepted,
    /// Suspended.
    Paused,
    /// Refused.
    Rejected,
    /// Ended.
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
pub fn load_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    parse_config(&text)
}

/// Parse configuration text. Syntax and schema errors name the line and column.
pub fn parse_config(text: &str) -> Result<Config, String> {
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
        one_line(&crate::redact::redact_userinfo(&format!("{place}{}", err.message())))
    })
}

/// Collapse a message onto one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
