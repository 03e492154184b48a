//! OAuth 2.0 Protected Resource Metadata (RFC 9728), opt-in: [`ProtectedResourceMetadata`],
//! the document that tells a client which authorization servers issue tokens for an API, and
//! [`ResourceMetadataService`], a tower service that serves it.
//!
//! The document and where it is served are described on [`ProtectedResourceMetadata`].

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use tower_service::Service;

use crate::error::ConfigError;

/// The well-known path segment of RFC 9728 §3.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An RFC 9728 metadata document. Each field is serialized under its RFC name.
///
/// The document lives at the well-known location derived from the resource identifier
/// ([`ProtectedResourceMetadata::well_known_url`]: for `https://host/echo`,
/// `https://host/.well-known/oauth-protected-resource/echo`). Route that path to the service
/// outside the JWT layer (clients fetch it without a token), and give the same URL to
/// [`JwtPlanLayerBuilder::resource_metadata`](crate::JwtPlanLayerBuilder::resource_metadata)
/// so every 401 challenge points to it (RFC 9728 §5.1).
///
/// ```
/// use std::convert::Infallible;
/// use tower::ServiceExt;
/// use tower_jwt_plan::ProtectedResourceMetadata;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let metadata = ProtectedResourceMetadata::new("https://api.example/echo")
///     .authorization_server("https://idp.example")
///     .scope("read");
/// assert_eq!(
///     metadata.well_known_url()?,
///     "https://api.example/.well-known/oauth-protected-resource/echo"
/// );
/// let response = metadata.service().oneshot(http::Request::new(())).await?;
/// assert_eq!(response.status(), 200);
/// assert!(response.body().contains(r#""authorization_servers":["https://idp.example"]"#));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
}

impl ProtectedResourceMetadata {
    /// The document for the resource identifier `resource` (an `https` URL, the API's base).
    /// Default: no authorization server, no scope, and `bearer_methods_supported` `["header"]`.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
        }
    }

    /// Add an authorization server (its issuer identifier).
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Add a scope the resource uses.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes_supported.push(scope.into());
        self
    }

    /// Replace the bearer methods (`header`, `body`, `query`). Default: `["header"]`.
    #[must_use]
    pub fn bearer_methods(mut self, methods: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.bearer_methods_supported = methods.into_iter().map(Into::into).collect();
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Where RFC 9728 §3.1 puts this document: the well-known segment inserted between the
    /// host and the resource's path (a trailing `/` of the path dropped). Fails for a resource
    /// that is not an `http(s)` URL or has a fragment.
    pub fn well_known_url(&self) -> Result<String, ConfigError> {
        let invalid =
            |reason: &str| ConfigError::InvalidSetting { name: "resource", reason: reason.into() };
        let mut url = url::Url::parse(&self.resource).map_err(|_| invalid("not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(invalid("must be an https URL with a host"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must have no fragment"));
        }
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{WELL_KNOWN}{path}"));
        Ok(url.into())
    }

    /// The document as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing strings and string vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A service that serves this document (GET or HEAD: 200 `application/json`; other
    /// methods: 405).
    pub fn service(&self) -> ResourceMetadataService {
        ResourceMetadataService { body: Arc::from(self.to_json()) }
    }
}

/// Serves one [`ProtectedResourceMetadata`] document; built by
/// [`ProtectedResourceMetadata::service`]. Cheap to clone, always ready.
#[derive(Debug, Clone)]
pub struct ResourceMetadataService {
    body: Arc<str>,
}

impl<B> Service<Request<B>> for ResourceMetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut response = Response::new(String::new());
        if request.method() == Method::GET || request.method() == Method::HEAD {
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
            if request.method() == Method::GET {
                *response.body_mut() = self.body.to_string();
            }
        } else {
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_locations() {
        let at = |r: &str| ProtectedResourceMetadata::new(r).well_known_url();
        assert_eq!(
            at("https://host/").unwrap(),
            "https://host/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            at("https://host:8443/a/b/").unwrap(),
            "https://host:8443/.well-known/oauth-protected-resource/a/b"
        );
        assert!(at("https://host/a#x").is_err());
        assert!(at("urn:x").is_err());
    }
}
