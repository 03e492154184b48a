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
//! let plan = def.compile_plan("gold", "Gold", tower_jwt_plan::PlanStatus::Published, &mut |_url: &str| {
//!     unreachable!("no JWKS URL in this plan")
//! })?;
//! assert_eq!(plan.id(), "gold");
//!
//! let both: JwtDefinition = serde_json::from_value(serde_json::json!({
//!     "jwks_url": "https://idp.example/jwks", "hmac_secret": "x"
//! }))?;
//! assert_eq!(both.validate().unwrap_err().field(), "jwks_url");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::{Algorithm, ConfigError, JwksCache, JwtSettings, KeySource, Plan, PlanSet, ScopeMode};

/// Whether every required scope must be present (`all`, the default) or one is enough (`any`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeModeDefinition {
    /// Every required scope.
    All,
    /// At least one required scope.
    Any,
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
    /// Keys from this JWKS URL. Exactly one of `jwks_url`, `public_key_pem`, `hmac_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// One PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A shared HMAC secret (its UTF-8 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    /// Accepted issuers: a string or an array. Default: any issuer.
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
        let mut jwks = |url: &str| {
            // Built without its worker, so nothing is fetched and nothing is spawned.
            JwksCache::builder(url).build_with_worker().map(|(cache, _worker)| cache)
        };
        let plan = self.compile_plan("check", "check", crate::PlanStatus::Staging, &mut jwks)?;
        PlanSet::new(vec![plan])
            .map_err(|e| DefinitionError::from_config(e, self.source_field()))?;
        Ok(())
    }

    /// Build a [`Plan`] with these settings. `jwks` gives the cache for a JWKS URL, so that
    /// plans sharing a URL can share one cache.
    pub fn compile_plan(
        &self,
        id: &str,
        name: &str,
        status: crate::PlanStatus,
        jwks: &mut dyn FnMut(&str) -> Result<JwksCache, ConfigError>,
    ) -> Result<Plan, DefinitionError> {
        let settings = self.compile(jwks)?;
        Ok(Plan::jwt(id, name, settings).with_status(status))
    }

    /// Build the [`JwtSettings`]. `jwks` gives the cache for a JWKS URL.
    pub fn compile(
        &self,
        jwks: &mut dyn FnMut(&str) -> Result<JwksCache, ConfigError>,
    ) -> Result<JwtSettings, DefinitionError> {
        let keys = match (&self.jwks_url, &self.public_key_pem, &self.hmac_secret) {
            (Some(url), None, None) => {
                KeySource::jwks(jwks(url).map_err(|e| DefinitionError::from_config(e, "jwks_url"))?)
            }
            (None, Some(pem), None) => KeySource::public_key_pem(pem)
                .map_err(|e| DefinitionError::new("public_key_pem", e.to_string()))?,
            (None, None, Some(secret)) => KeySource::hmac_secret(secret.as_bytes()),
            (None, None, None) => {
                return Err(DefinitionError::new(
                    "jwks_url",
                    "a jwt plan needs exactly one of `jwks_url`, `public_key_pem`, `hmac_secret`",
                ));
            }
            _ => {
                return Err(DefinitionError::new(
                    self.source_field(),
                    "only one of `jwks_url`, `public_key_pem`, `hmac_secret` may be set",
                ));
            }
        };
        let mut settings = JwtSettings::new(keys);
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
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

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
}
