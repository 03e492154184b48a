//! Finding an issuer's keys through its metadata document: OpenID Connect Discovery 1.0
//! (`{issuer}/.well-known/openid-configuration`) with RFC 8414's
//! `/.well-known/oauth-authorization-server` as the fallback, and [`ProviderMetadata`], the
//! strict reading of that document.
//!
//! The document's `issuer` must equal the configured issuer exactly, byte for byte (OpenID
//! Connect Discovery §4.3, RFC 8414 §3.3): a document that names another issuer is refused,
//! whatever else it says, so a compromised or misrouted metadata endpoint cannot hand us
//! another issuer's keys. The fetching itself (and its rules) belongs to
//! [`JwksCache::from_issuer`](crate::JwksCache::from_issuer).

use serde::Deserialize;

/// The parts of an authorization server's metadata this crate uses.
///
/// ```
/// use tower_jwt_plan::ProviderMetadata;
///
/// let doc = br#"{"issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"}"#;
/// let meta = ProviderMetadata::parse(doc, "https://idp.example").unwrap();
/// assert_eq!(meta.jwks_uri(), "https://idp.example/keys");
/// // Another issuer's document is refused.
/// assert!(ProviderMetadata::parse(doc, "https://idp.example/").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    issuer: String,
    jwks_uri: String,
}

/// Why a metadata document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Not a JSON object, or `issuer`/`jwks_uri` missing or not strings.
    #[error("not a metadata document (a JSON object with string `issuer` and `jwks_uri`)")]
    Malformed,
    /// The document's `issuer` is not the configured issuer.
    #[error("the document's issuer is not the configured issuer")]
    IssuerMismatch,
    /// `jwks_uri` is empty.
    #[error("`jwks_uri` is empty")]
    NoJwksUri,
}

#[derive(Deserialize)]
struct Raw {
    issuer: String,
    jwks_uri: String,
}

impl ProviderMetadata {
    /// Read a metadata document (JSON) and check that it belongs to `expected_issuer`.
    /// Other members are ignored.
    pub fn parse(document: &[u8], expected_issuer: &str) -> Result<Self, DiscoveryError> {
        let raw: Raw = serde_json::from_slice(document).map_err(|_| DiscoveryError::Malformed)?;
        if raw.issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch);
        }
        if raw.jwks_uri.trim().is_empty() {
            return Err(DiscoveryError::NoJwksUri);
        }
        Ok(Self { issuer: raw.issuer, jwks_uri: raw.jwks_uri })
    }

    /// The issuer, equal to the configured one.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the issuer's keys are published (not yet checked against the URL rules).
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }
}

/// The two places the metadata of `issuer` may be: OpenID Connect's (the path appended) and
/// RFC 8414's (the well-known segment inserted before the issuer's path). `None` when the
/// issuer has a query or fragment, which neither specification allows.
pub(crate) fn metadata_urls(issuer: &url::Url) -> Option<[url::Url; 2]> {
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return None;
    }
    let path = issuer.path().trim_end_matches('/');
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    let mut oauth = issuer.clone();
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Some([oidc, oauth])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_locations() {
        let at = |issuer: &str| {
            metadata_urls(&url::Url::parse(issuer).unwrap())
                .map(|[a, b]| (a.to_string(), b.to_string()))
        };
        assert_eq!(
            at("https://idp.example").unwrap(),
            (
                "https://idp.example/.well-known/openid-configuration".into(),
                "https://idp.example/.well-known/oauth-authorization-server".into()
            )
        );
        assert_eq!(
            at("https://idp.example/realms/a/").unwrap(),
            (
                "https://idp.example/realms/a/.well-known/openid-configuration".into(),
                "https://idp.example/.well-known/oauth-authorization-server/realms/a".into()
            )
        );
        assert!(at("https://idp.example/?x=1").is_none());
    }

    #[test]
    fn strict_document() {
        let iss = "https://idp.example";
        assert_eq!(ProviderMetadata::parse(b"[]", iss), Err(DiscoveryError::Malformed));
        assert_eq!(
            ProviderMetadata::parse(br#"{"issuer": "https://idp.example"}"#, iss),
            Err(DiscoveryError::Malformed)
        );
        assert_eq!(
            ProviderMetadata::parse(br#"{"issuer": "https://evil", "jwks_uri": "x"}"#, iss),
            Err(DiscoveryError::IssuerMismatch)
        );
        assert_eq!(
            ProviderMetadata::parse(br#"{"issuer": "https://idp.example", "jwks_uri": " "}"#, iss),
            Err(DiscoveryError::NoJwksUri)
        );
    }
}
