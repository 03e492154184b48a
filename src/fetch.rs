//! The HTTP rules every remote document of the crate is fetched under (JWKS, OpenID/OAuth
//! discovery document, revocation list): URL checks (https, or plain http to loopback only
//! unless the user says otherwise), one `reqwest` client per cache with TLS always verified,
//! no redirects unless asked, bounded connect and total time, and a capped body read.

use std::time::Duration;

use reqwest::Url;

use crate::defaults::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_FETCH_TIMEOUT};
use crate::error::ConfigError;

/// The HTTP settings of one fetching cache, filled by its builder.
pub(crate) struct HttpOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) follow_redirects: bool,
    pub(crate) allow_http: bool,
    pub(crate) roots: Vec<reqwest::Certificate>,
    /// A setter that failed (a bad CA certificate), reported by `build()`.
    pub(crate) error: Option<ConfigError>,
}

impl HttpOptions {
    pub(crate) fn new(max_body_bytes: usize) -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_body_bytes,
            follow_redirects: false,
            allow_http: false,
            roots: Vec::new(),
            error: None,
        }
    }

    pub(crate) fn add_root_certificate_pem(&mut self, pem: &[u8]) {
        match reqwest::Certificate::from_pem(pem) {
            Ok(cert) => self.roots.push(cert),
            Err(e) => {
                self.error = Some(ConfigError::InvalidSetting {
                    name: "root certificate",
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Check `url` against the scheme rules: https, or http to loopback (or anywhere with
    /// `danger_allow_http`). The reason is a fixed text.
    pub(crate) fn check_url(&self, url: &str) -> Result<Url, &'static str> {
        let url = Url::parse(url).map_err(|_| "not a URL")?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http || is_loopback(&url) => {}
            "http" => return Err("plain http is refused (use https, or danger_allow_http)"),
            _ => return Err("scheme must be https"),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("no host");
        }
        Ok(url)
    }

    /// The client for documents at `url` (already checked).
    pub(crate) fn client(&mut self, url: &Url) -> Result<reqwest::Client, ConfigError> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        positive("connect_timeout", self.connect_timeout)?;
        positive("fetch_timeout", self.fetch_timeout)?;
        let redirects = if self.follow_redirects {
            reqwest::redirect::Policy::limited(2)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.fetch_timeout)
            .redirect(redirects)
            .https_only(!(self.allow_http || is_loopback(url)))
            .user_agent(concat!("tower-jwt-plan/", env!("CARGO_PKG_VERSION")));
        for cert in self.roots.drain(..) {
            client = client.add_root_certificate(cert);
        }
        client.build().map_err(|e| ConfigError::HttpClient(Box::new(e)))
    }
}

/// A duration setting that must be more than zero.
pub(crate) fn positive(name: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::InvalidSetting { name, reason: "must be more than zero".into() })
    } else {
        Ok(())
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why one fetch failed (logged; the cache keeps what it held).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JWKS: {0}")]
    NotJwks(&'static str),
    #[error("no usable key ({0} skipped)")]
    NoUsableKeys(usize),
    #[error("`jwks_uri` refused: {0}")]
    BadJwksUri(&'static str),
    #[error("not a revocation list: {0}")]
    NotRevocationList(&'static str),
    #[error("discovery document refused")]
    Discovery(#[source] crate::discovery::DiscoveryError),
}

/// GET `url` with this `accept` header, reading at most `max` bytes of body. Any non-2xx
/// status is a failure (redirects included, unless the client follows them).
pub(crate) async fn get_capped(
    client: &reqwest::Client,
    url: &Url,
    accept: &'static str,
    max: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut response = client
        .get(url.clone())
        .header(http::header::ACCEPT, accept)
        .send()
        .await
        .map_err(FetchError::Transport)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    if response.content_length().is_some_and(|len| len > max as u64) {
        return Err(FetchError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes on one line, for logs.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
