//! [`JwtDefinition`]: a JWT plan's settings as data (the keys of the example gateway's TOML
//! plan), validated as a whole and compiled to [`JwtSettings`].
//!
//! The catalog stores plans in this form, and configuration files can parse it directly, so a
//! plan has one serialised shape everywhere. Every key is optional except the key source; an
//! absent key means the same default as the builder methods of [`JwtSettings`].
//!
//! ```
//! use tower_jwt_plan::definition::JwtDefinition;
//!
//! let def: JwtDefinition = serde_json::from_value(serde_json::json!({
//!     "algorithms": ["HS256"],
//!     "hmac_secret": "a shared secret of at least 32 bytes!",
//!     "issuer": "https://idp.example",
//!     "audience": ["api://echo"],
//!     "claims_to_headers": {"sub": "x-user-id"},
//! }))?;
//! def.validate()?;
//! let mut remotes = tower_jwt_plan::definition::SharedRemotes::new();
//! let plan = def.compile_plan("gold", "Gold", tower_jwt_plan::PlanStatus::Published, &mut remotes)?;
//! assert_eq!(plan.id(), "gold");
//!
//! let both: JwtDefinition = serde_json::from_value(serde_json::json!({
//!     "jwks_url": "https://idp.example/jwks", "hmac_secret": "x"
//! }))?;
//! assert_eq!(both.validate().unwrap_err().field(), "jwks_url");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::{
    Algorithm, ConfigError, Confirmation, JwksCache, JwtSettings, KeySource, Plan, PlanSet,
    RevocationList, ScopeMode,
};

/// Whether every required scope must be present (`all`, the default) or one is enough (`any`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeModeDefinition {
    /// Every required scope.
    All,
    /// At least one required scope.
    Any,
}

/// `confirmation = "required" | "optional" | "off"`: certificate-bound tokens (RFC 8705), see
/// [`Confirmation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmationDefinition {
    /// Every token must carry `cnf.x5t#S256` matching the client certificate.
    Required,
    /// A token with `cnf.x5t#S256` must match the client certificate; others pass.
    Optional,
    /// `cnf` is not checked.
    Off,
}

impl From<ConfirmationDefinition> for Confirmation {
    fn from(value: ConfirmationDefinition) -> Self {
        match value {
            ConfirmationDefinition::Required => Confirmation::Required,
            ConfirmationDefinition::Optional => Confirmation::Optional,
            ConfirmationDefinition::Off => Confirmation::Off,
        }
    }
}

/// The JWT settings of one plan, as data. Unknown keys are refused when parsing.
///
/// To read it from a table that also holds other keys (a plan's `id`, `status`, ...), take
/// those keys out first and deserialize the rest: serde's `flatten` would disable the refusal
/// of unknown keys.
///
/// Not `Debug`-printed with its secret: the `hmac_secret` is shown as `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtDefinition {
    /// Accepted algorithms, e.g. `["RS256", "ES256"]`. Default: `["RS256"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    /// Keys from this JWKS URL. Exactly one of `jwks_url`, `public_key_pem`, `hmac_secret`,
    /// `oidc_issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// One PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A shared HMAC secret (its UTF-8 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    /// Keys found from this issuer by OpenID Connect Discovery (RFC 8414 as a fallback), see
    /// [`JwksCache::from_issuer`]. The plan's `issuer` defaults to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// Accepted issuers: a string or an array. Default: any issuer (with `oidc_issuer`: that
    /// issuer).
    #[serde(default, deserialize_with = "string_or_list", skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Vec<String>>,
    /// Accepted audiences: a string or an array. Default: any audience.
    #[serde(default, deserialize_with = "string_or_list", skip_serializing_if = "Option::is_none")]
    pub audience: Option<Vec<String>>,
    /// The claim holding the client id. Default: `client_id`, then `azp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_claim: Option<String>,
    /// The claim naming the end user. Default: `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_claim: Option<String>,
    /// Scopes a token must carry. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scopes: Option<Vec<String>>,
    /// How `required_scopes` is matched. Default: `all`. Needs `required_scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_mode: Option<ScopeModeDefinition>,
    /// Clock leeway in seconds. Default: 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_secs: Option<u64>,
    /// Claims copied into request headers (`claim = "header"`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_headers: Option<BTreeMap<String, String>>,
    /// Whether `Authorization` reaches the backend. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_auth_header: Option<bool>,
    /// Whether the verified claims go into request extensions. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_claims: Option<bool>,
    /// Longest accepted `exp - iat`, in seconds. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_secs: Option<u64>,
    /// Accepted `typ` header values. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_types: Option<Vec<String>>,
    /// Revoked `jti`s from this URL, see [`RevocationList`] (fail closed: 503 until a first
    /// list is loaded). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_list_url: Option<String>,
    /// Certificate-bound tokens (RFC 8705). Default: `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationDefinition>,
}

/// Why a [`JwtDefinition`] was refused: the key at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct DefinitionError {
    field: &'static str,
    message: String,
}

impl DefinitionError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }

    /// The key at fault, as spelled in the definition (e.g. `jwks_url`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why it was refused.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn from_config(err: ConfigError, source_field: &'static str) -> Self {
        let field = match &err {
            ConfigError::NoAlgorithms(_) | ConfigError::AlgorithmKeyMismatch { .. } => "algorithms",
            ConfigError::InvalidJwksUrl { .. } => "jwks_url",
            ConfigError::WeakHmacSecret { .. } => "hmac_secret",
            ConfigError::InvalidSetting { name: "leeway", .. } => "leeway_secs",
            ConfigError::InvalidSetting { name, .. } => name,
            _ => source_field,
        };
        Self::new(field, err.to_string())
    }
}

impl JwtDefinition {
    /// A definition verifying with keys from a JWKS URL, every other key at its default.
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Self { jwks_url: Some(url.into()), ..Self::default() }
    }

    /// Check the definition whole, without fetching anything: exactly one key source, known
    /// algorithms fitting the key, a usable JWKS URL or PEM key, header names, scope mode.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        // Its workers are dropped unspawned, so nothing is fetched.
        let mut remotes = SharedRemotes::new();
        let plan = self.compile_plan("check", "check", crate::PlanStatus::Staging, &mut remotes)?;
        PlanSet::new(vec![plan])
            .map_err(|e| DefinitionError::from_config(e, self.source_field()))?;
        Ok(())
    }

    /// Build a [`Plan`] with these settings. `remotes` gives the JWKS caches and revocation
    /// lists, so that plans sharing a URL can share one (see [`SharedRemotes`]).
    pub fn compile_plan(
        &self,
        id: &str,
        name: &str,
        status: crate::PlanStatus,
        remotes: &mut dyn Remotes,
    ) -> Result<Plan, DefinitionError> {
        let settings = self.compile(remotes)?;
        Ok(Plan::jwt(id, name, settings).with_status(status))
    }

    /// Build the [`JwtSettings`]. `remotes` gives the JWKS caches and revocation lists.
    pub fn compile(&self, remotes: &mut dyn Remotes) -> Result<JwtSettings, DefinitionError> {
        let sources = [
            self.jwks_url.is_some(),
            self.public_key_pem.is_some(),
            self.hmac_secret.is_some(),
            self.oidc_issuer.is_some(),
        ];
        match sources.iter().filter(|set| **set).count() {
            0 => {
                return Err(DefinitionError::new(
                    "jwks_url",
                    format!("a jwt plan needs exactly one of {KEY_SOURCES}"),
                ));
            }
            1 => {}
            _ => {
                return Err(DefinitionError::new(
                    self.source_field(),
                    format!("only one of {KEY_SOURCES} may be set"),
                ));
            }
        }
        let keys = if let Some(url) = &self.jwks_url {
            KeySource::jwks(
                remotes.jwks(url).map_err(|e| DefinitionError::from_config(e, "jwks_url"))?,
            )
        } else if let Some(pem) = &self.public_key_pem {
            KeySource::public_key_pem(pem)
                .map_err(|e| DefinitionError::new("public_key_pem", e.to_string()))?
        } else if let Some(secret) = &self.hmac_secret {
            KeySource::hmac_secret(secret.as_bytes())
        } else {
            let issuer = self.oidc_issuer.as_deref().unwrap_or_default();
            KeySource::jwks(
                remotes
                    .oidc_issuer(issuer)
                    .map_err(|e| DefinitionError::new("oidc_issuer", e.to_string()))?,
            )
        };
        let mut settings = JwtSettings::new(keys);
        if let Some(url) = &self.revocation_list_url {
            let list = remotes
                .revocation_list(url)
                .map_err(|e| DefinitionError::new("revocation_list_url", e.to_string()))?;
            settings = settings.revocation_list(list);
        }
        if let Some(policy) = self.confirmation {
            settings = settings.confirmation(policy.into());
        }
        if let Some(names) = &self.algorithms {
            let algorithms = names
                .iter()
                .map(|name| {
                    Algorithm::from_str(name).map_err(|_| {
                        DefinitionError::new("algorithms", format!("unknown algorithm `{name}`"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            settings = settings.algorithms(algorithms);
        }
        for issuer in self.issuer.iter().flatten() {
            settings = settings.issuer(issuer.as_str());
        }
        for audience in self.audience.iter().flatten() {
            settings = settings.audience(audience.as_str());
        }
        if let Some(claim) = &self.client_id_claim {
            settings = settings.client_id_claim(claim.as_str());
        }
        if let Some(claim) = &self.user_claim {
            settings = settings.user_claim(claim.as_str());
        }
        if self.scope_mode.is_some() && self.required_scopes.is_none() {
            return Err(DefinitionError::new("scope_mode", "`scope_mode` needs `required_scopes`"));
        }
        if let Some(scopes) = &self.required_scopes {
            let mode = match self.scope_mode {
                Some(ScopeModeDefinition::Any) => ScopeMode::Any,
                Some(ScopeModeDefinition::All) | None => ScopeMode::All,
            };
            settings = settings.required_scopes(scopes.iter().map(String::as_str), mode);
        }
        if let Some(secs) = self.leeway_secs {
            settings = settings.leeway(Duration::from_secs(secs));
        }
        for (claim, header) in self.claims_to_headers.iter().flatten() {
            settings = settings.claim_to_header(claim.as_str(), header.as_str());
        }
        if let Some(on) = self.propagate_auth_header {
            settings = settings.propagate_auth_header(on);
        }
        if let Some(on) = self.extract_claims {
            settings = settings.extract_claims(on);
        }
        if let Some(secs) = self.max_lifetime_secs {
            settings = settings.max_lifetime(Duration::from_secs(secs));
        }
        if let Some(types) = &self.token_types {
            settings = settings.token_types(types.iter().map(String::as_str));
        }
        Ok(settings)
    }

    /// The first key that is set, in declaration order (`None` for an empty definition): for
    /// refusing JWT keys where none apply, such as on a keyless plan.
    pub fn first_key(&self) -> Option<&'static str> {
        let keys = [
            ("algorithms", self.algorithms.is_some()),
            ("jwks_url", self.jwks_url.is_some()),
            ("public_key_pem", self.public_key_pem.is_some()),
            ("hmac_secret", self.hmac_secret.is_some()),
            ("oidc_issuer", self.oidc_issuer.is_some()),
            ("issuer", self.issuer.is_some()),
            ("audience", self.audience.is_some()),
            ("client_id_claim", self.client_id_claim.is_some()),
            ("user_claim", self.user_claim.is_some()),
            ("required_scopes", self.required_scopes.is_some()),
            ("scope_mode", self.scope_mode.is_some()),
            ("leeway_secs", self.leeway_secs.is_some()),
            ("claims_to_headers", self.claims_to_headers.is_some()),
            ("propagate_auth_header", self.propagate_auth_header.is_some()),
            ("extract_claims", self.extract_claims.is_some()),
            ("max_lifetime_secs", self.max_lifetime_secs.is_some()),
            ("token_types", self.token_types.is_some()),
            ("revocation_list_url", self.revocation_list_url.is_some()),
            ("confirmation", self.confirmation.is_some()),
        ];
        keys.into_iter().find(|(_, set)| *set).map(|(key, _)| key)
    }

    /// The key-source field that is set (for error messages), `jwks_url` when none is.
    fn source_field(&self) -> &'static str {
        if self.jwks_url.is_some() {
            "jwks_url"
        } else if self.public_key_pem.is_some() {
            "public_key_pem"
        } else if self.hmac_secret.is_some() {
            "hmac_secret"
        } else if self.oidc_issuer.is_some() {
            "oidc_issuer"
        } else {
            "jwks_url"
        }
    }
}

impl fmt::Debug for JwtDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtDefinition")
            .field("algorithms", &self.algorithms)
            .field("jwks_url", &self.jwks_url)
            .field("public_key_pem", &self.public_key_pem.as_ref().map(|_| "[pem]"))
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "[redacted]"))
            .field("oidc_issuer", &self.oidc_issuer)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("revocation_list_url", &self.revocation_list_url)
            .field("confirmation", &self.confirmation)
            .finish_non_exhaustive()
    }
}

const KEY_SOURCES: &str = "`jwks_url`, `public_key_pem`, `hmac_secret`, `oidc_issuer`";

/// Where a definition's remote documents come from: the JWKS cache of a URL or of an issuer,
/// and the revocation list of a URL. [`SharedRemotes`] shares one per URL.
pub trait Remotes {
    /// The cache of keys at this JWKS URL.
    fn jwks(&mut self, url: &str) -> Result<JwksCache, ConfigError>;
    /// The cache of keys found from this issuer ([`JwksCache::from_issuer`]).
    fn oidc_issuer(&mut self, issuer: &str) -> Result<JwksCache, ConfigError>;
    /// The revocation list at this URL.
    fn revocation_list(&mut self, url: &str) -> Result<RevocationList, ConfigError>;
}

/// The background task of a cache or list built by [`SharedRemotes`]; spawn
/// [`run`](Self::run) for anything to be fetched.
#[must_use = "the worker does nothing unless spawned"]
pub struct RemoteWorker {
    url: String,
    run: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl RemoteWorker {
    /// Run until the last handle of its cache or list is dropped.
    pub async fn run(self) {
        self.run.await;
    }
}

impl fmt::Debug for RemoteWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWorker").field("url", &self.url).finish_non_exhaustive()
    }
}

/// [`Remotes`] sharing one JWKS cache per URL (or issuer) and one revocation list per URL,
/// with every default setting. New ones are built with their workers handed back
/// ([`take_workers`](Self::take_workers)), so building spawns nothing and needs no runtime.
///
/// ```
/// use tower_jwt_plan::definition::{JwtDefinition, Remotes, SharedRemotes};
///
/// let mut remotes = SharedRemotes::new();
/// let a = remotes.jwks("https://idp.example/jwks")?;
/// let b = remotes.jwks("https://idp.example/jwks")?;
/// assert_eq!(a.url(), b.url());
/// assert_eq!(remotes.take_workers().len(), 1);
///
/// // A later compile reuses what is still used, and builds only what is new.
/// let mut next = SharedRemotes::reusing(&remotes);
/// next.jwks("https://idp.example/jwks")?;
/// assert!(next.take_workers().is_empty());
/// # Ok::<(), tower_jwt_plan::ConfigError>(())
/// ```
#[derive(Debug, Default)]
pub struct SharedRemotes {
    jwks: HashMap<String, JwksCache>,
    issuers: HashMap<String, JwksCache>,
    lists: HashMap<String, RevocationList>,
    known: Option<Box<SharedRemotes>>,
    workers: Vec<RemoteWorker>,
}

impl SharedRemotes {
    /// Nothing shared yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start from the caches and lists of `previous`: those asked for again are reused (their
    /// workers keep running), the others are left out.
    pub fn reusing(previous: &SharedRemotes) -> Self {
        let known = SharedRemotes {
            jwks: previous.jwks.clone(),
            issuers: previous.issuers.clone(),
            lists: previous.lists.clone(),
            ..Self::default()
        };
        Self { known: Some(Box::new(known)), ..Self::default() }
    }

    /// The workers of the caches and lists built since the last call, to spawn.
    pub fn take_workers(&mut self) -> Vec<RemoteWorker> {
        std::mem::take(&mut self.workers)
    }

    /// The JWKS caches in use (by JWKS URL, then by issuer).
    pub fn jwks_caches(&self) -> impl Iterator<Item = &JwksCache> {
        self.jwks.values().chain(self.issuers.values())
    }

    /// The revocation lists in use.
    pub fn revocation_lists(&self) -> impl Iterator<Item = &RevocationList> {
        self.lists.values()
    }
}

impl Remotes for SharedRemotes {
    fn jwks(&mut self, url: &str) -> Result<JwksCache, ConfigError> {
        if let Some(cache) = self.jwks.get(url) {
            return Ok(cache.clone());
        }
        let cache = match self.known.as_ref().and_then(|k| k.jwks.get(url)) {
            Some(cache) => cache.clone(),
            None => {
                let (cache, worker) = JwksCache::builder(url).build_with_worker()?;
                self.workers
                    .push(RemoteWorker { url: url.to_owned(), run: Box::pin(worker.run()) });
                cache
            }
        };
        self.jwks.insert(url.to_owned(), cache.clone());
        Ok(cache)
    }

    fn oidc_issuer(&mut self, issuer: &str) -> Result<JwksCache, ConfigError> {
        if let Some(cache) = self.issuers.get(issuer) {
            return Ok(cache.clone());
        }
        let cache = match self.known.as_ref().and_then(|k| k.issuers.get(issuer)) {
            Some(cache) => cache.clone(),
            None => {
                let (cache, worker) = JwksCache::from_issuer(issuer).build_with_worker()?;
                let url = issuer.to_owned();
                self.workers.push(RemoteWorker { url, run: Box::pin(worker.run()) });
                cache
            }
        };
        self.issuers.insert(issuer.to_owned(), cache.clone());
        Ok(cache)
    }

    fn revocation_list(&mut self, url: &str) -> Result<RevocationList, ConfigError> {
        if let Some(list) = self.lists.get(url) {
            return Ok(list.clone());
        }
        let list = match self.known.as_ref().and_then(|k| k.lists.get(url)) {
            Some(list) => list.clone(),
            None => {
                let (list, worker) = RevocationList::builder(url).build_with_worker()?;
                self.workers
                    .push(RemoteWorker { url: url.to_owned(), run: Box::pin(worker.run()) });
                list
            }
        };
        self.lists.insert(url.to_owned(), list.clone());
        Ok(list)
    }
}

/// The serde reader of the plan keys `issuer` and `audience`: a string or an array of strings,
/// for `#[serde(default, deserialize_with = "tower_jwt_plan::definition::string_or_list")]`.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Plan {
///     #[serde(default, deserialize_with = "tower_jwt_plan::definition::string_or_list")]
///     audience: Option<Vec<String>>,
/// }
/// let one: Plan = serde_json::from_str(r#"{"audience": "api://a"}"#).unwrap();
/// let two: Plan = serde_json::from_str(r#"{"audience": ["api://a", "api://b"]}"#).unwrap();
/// assert_eq!(one.audience, Some(vec!["api://a".to_owned()]));
/// assert_eq!(two.audience.map(|a| a.len()), Some(2));
/// ```
pub fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<JwtDefinition, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn unknown_keys_refused_and_string_or_list() {
        assert!(parse(json!({"jwks_url": "https://i/j", "issuers": "x"})).is_err());
        let def = parse(json!({"jwks_url": "https://i/j", "issuer": "a", "audience": ["b", "c"]}))
            .unwrap();
        assert_eq!(def.issuer, Some(vec!["a".to_owned()]));
        assert_eq!(def.audience, Some(vec!["b".to_owned(), "c".to_owned()]));
        def.validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "jwks_url"),
            (json!({"public_key_pem": "x", "hmac_secret": "y"}), "public_key_pem"),
            (json!({"public_key_pem": "not a key"}), "public_key_pem"),
            (json!({"jwks_url": "ftp://idp/jwks"}), "jwks_url"),
            (json!({"jwks_url": "http://idp.example/jwks"}), "jwks_url"),
            (json!({"jwks_url": "https://i/j", "algorithms": ["XX1"]}), "algorithms"),
            (json!({"jwks_url": "https://i/j", "algorithms": ["HS256"]}), "algorithms"),
            (json!({"jwks_url": "https://i/j", "algorithms": []}), "algorithms"),
            (json!({"hmac_secret": "short", "algorithms": ["HS256"]}), "hmac_secret"),
            (json!({"jwks_url": "https://i/j", "scope_mode": "any"}), "scope_mode"),
            (
                json!({"jwks_url": "https://i/j", "claims_to_headers": {"sub": "bad header"}}),
                "claims_to_headers",
            ),
            (
                json!({"jwks_url": "https://i/j", "claims_to_headers": {"sub": "authorization"}}),
                "claims_to_headers",
            ),
        ];
        for (value, field) in cases {
            let def = parse(value.clone()).unwrap();
            let err = def.validate().unwrap_err();
            assert_eq!(err.field(), field, "{value}: {err}");
        }
    }

    #[test]
    fn defaults_match_the_builder_and_secret_is_hidden() {
        let def = parse(json!({"hmac_secret": "a shared secret of at least 32 bytes!"})).unwrap();
        assert!(!format!("{def:?}").contains("shared secret"));
        // Default algorithms are RS256: an HMAC secret needs HS* to be set explicitly.
        assert_eq!(def.validate().unwrap_err().field(), "algorithms");
        let round = serde_json::to_value(JwtDefinition::jwks_url("https://i/j")).unwrap();
        assert_eq!(round, json!({"jwks_url": "https://i/j"}));
        assert_eq!(JwtDefinition::default().first_key(), None);
        let scoped = parse(json!({"leeway_secs": 5, "scope_mode": "any"})).unwrap();
        assert_eq!(scoped.first_key(), Some("scope_mode"));
    }

    #[test]
    fn oidc_issuer_revocation_and_confirmation() {
        let def = parse(json!({
            "oidc_issuer": "https://idp.example/realms/main",
            "revocation_list_url": "https://idp.example/revoked",
            "confirmation": "required",
        }))
        .unwrap();
        def.validate().unwrap();
        let mut remotes = SharedRemotes::new();
        let settings = def.compile(&mut remotes).unwrap();
        // The plan's issuer defaults to the discovery issuer; `issuer` replaces it.
        assert_eq!(settings.issuers(), ["https://idp.example/realms/main"]);
        assert_eq!(settings.confirmation, Confirmation::Required);
        assert!(settings.revocation.is_some());
        let mut other = def.clone();
        other.issuer = Some(vec!["https://other.example".into()]);
        assert_eq!(other.compile(&mut remotes).unwrap().issuers(), ["https://other.example"]);
        // One cache per issuer and one list per URL, shared by both plans.
        assert_eq!(remotes.take_workers().len(), 2);
        assert_eq!(remotes.jwks_caches().count(), 1);
        assert_eq!(remotes.revocation_lists().count(), 1);
        let mut next = SharedRemotes::reusing(&remotes);
        def.compile(&mut next).unwrap();
        assert!(next.take_workers().is_empty());

        assert_eq!(JwtDefinition::default().compile(&mut remotes).unwrap_err().field(), "jwks_url");
        let off = parse(json!({"jwks_url": "https://i/j", "confirmation": "off"})).unwrap();
        assert_eq!(off.compile(&mut remotes).unwrap().confirmation, Confirmation::Off);
        let optional = parse(json!({"jwks_url": "https://i/j", "confirmation": "optional"}));
        assert_eq!(optional.unwrap().first_key(), Some("jwks_url"));
        assert!(parse(json!({"jwks_url": "https://i/j", "confirmation": "maybe"})).is_err());
        assert!(parse(json!({"jwks_url": "https://i/j", "confirmation": true})).is_err());
        let round = serde_json::to_value(&def).unwrap();
        assert_eq!(round["confirmation"], "required");
        assert_eq!(parse(round).unwrap(), def);
    }

    #[test]
    fn new_keys_errors_name_the_field() {
        let cases = [
            (json!({"oidc_issuer": "ftp://idp.example"}), "oidc_issuer"),
            (json!({"oidc_issuer": "http://idp.example"}), "oidc_issuer"),
            (json!({"oidc_issuer": "not a url"}), "oidc_issuer"),
            (json!({"oidc_issuer": "https://idp.example", "jwks_url": "https://i/j"}), "jwks_url"),
            (json!({"oidc_issuer": "https://idp.example", "hmac_secret": "x"}), "hmac_secret"),
            (
                json!({"jwks_url": "https://i/j", "revocation_list_url": "http://idp.example/r"}),
                "revocation_list_url",
            ),
            (
                json!({"jwks_url": "https://i/j", "revocation_list_url": "nope"}),
                "revocation_list_url",
            ),
        ];
        for (value, field) in cases {
            let def = parse(value.clone()).unwrap();
            let err = def.validate().unwrap_err();
            assert_eq!(err.field(), field, "{value}: {err}");
        }
        let err = JwtDefinition::default().validate().unwrap_err();
        assert!(err.message().contains("`oidc_issuer`"), "{err}");
    }
}
