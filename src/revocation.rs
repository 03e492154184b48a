//! [`RevocationList`]: a plan's list of revoked token ids (`jti`), fetched over HTTPS and
//! refreshed in the background under the same rules as a JWKS (see [`crate::JwksCache`]): TLS
//! always verified, no redirects unless asked, bounded time and body, one worker, lock-free
//! reads, and a failed refresh that keeps the last good list.
//!
//! # Fail closed
//!
//! Until a first list is loaded, every request on a plan with a list is answered 503
//! `JWT_REVOCATION_UNAVAILABLE`: a token the list may revoke is never let through because the
//! list could not be read. Once loaded, a failed refresh keeps the last list (logged at WARN).
//! Gravitee's JWT policy does the opposite: an error in the check, or no list loaded yet, lets
//! the token through.
//!
//! # Document
//!
//! Either JSON, an array of strings (`["jti-1", "jti-2"]`) or an object with a `revoked`
//! array of strings; or plain text, one `jti` per line (blank lines and lines starting with
//! `#` ignored, surrounding white space trimmed). A body whose first non-blank byte is `[` or
//! `{` is read as JSON and must be valid. An empty list is a valid list.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use reqwest::Url;
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};

use crate::defaults::{DEFAULT_REVOCATION_MAX_BODY_BYTES, DEFAULT_REVOCATION_REFRESH_INTERVAL};
use crate::error::{AuthError, AuthErrorKind, ConfigError, InvalidReason};
use crate::fetch::{FetchError, HttpOptions, error_chain, get_capped, positive};

/// A shared, self-refreshing list of revoked `jti` values, for
/// [`JwtSettings::revocation_list`](crate::JwtSettings::revocation_list).
///
/// Clones share one list and one worker; the worker stops when the last clone is dropped.
///
/// **Fail closed**: until a first list is loaded, every request on a plan with a list gets 503
/// `JWT_REVOCATION_UNAVAILABLE`; once loaded, a failed refresh keeps the last list. (Gravitee's
/// JWT policy fails open: no list, or an error in the check, lets the token through.)
///
/// **Document**: JSON, an array of strings or an object with a `revoked` array of strings; or
/// plain text, one `jti` per line (blank lines and `#` lines ignored, white space trimmed). A
/// body whose first non-blank byte is `[` or `{` must be valid JSON. An empty list is valid.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_plan::RevocationList;
///
/// # async fn demo() -> Result<(), tower_jwt_plan::ConfigError> {
/// // Inside a Tokio runtime:
/// let revoked = RevocationList::builder("https://idp.example/revoked.txt")
///     .refresh_interval(Duration::from_secs(30))
///     .build()?;
/// # let _ = revoked; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RevocationList {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

struct Shared {
    url: Url,
    client: reqwest::Client,
    refresh_interval: Duration,
    max_body_bytes: usize,
    revoked: ArcSwapOption<HashSet<Box<str>>>,
    finished: watch::Sender<u64>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// Counters of a [`RevocationList`], for health checks, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationStats {
    /// Fetches started so far.
    pub fetches: u64,
    /// Fetches that failed (the last good list was kept).
    pub failures: u64,
    /// Revoked ids held now.
    pub entries: usize,
}

/// Builder for [`RevocationList`]. Every setting has a default, given on its setter.
#[must_use]
pub struct RevocationListBuilder {
    url: String,
    refresh_interval: Duration,
    http: HttpOptions,
}

impl RevocationList {
    /// Start configuring a list fetched from this URL.
    pub fn builder(url: impl Into<String>) -> RevocationListBuilder {
        RevocationListBuilder {
            url: url.into(),
            refresh_interval: DEFAULT_REVOCATION_REFRESH_INTERVAL,
            http: HttpOptions::new(DEFAULT_REVOCATION_MAX_BODY_BYTES),
        }
    }

    /// The list's URL.
    pub fn url(&self) -> &str {
        self.handle.shared.url.as_str()
    }

    /// Whether a list has been loaded at least once.
    pub fn is_ready(&self) -> bool {
        self.handle.shared.revoked.load().is_some()
    }

    /// Counters: fetches, failures, entries held.
    pub fn stats(&self) -> RevocationStats {
        let shared = &self.handle.shared;
        RevocationStats {
            fetches: shared.fetches.load(Ordering::Relaxed),
            failures: shared.failures.load(Ordering::Relaxed),
            entries: shared.revoked.load().as_ref().map_or(0, |set| set.len()),
        }
    }

    /// Whether `jti` is revoked; `None` until a first list is loaded.
    pub fn is_revoked(&self, jti: &str) -> Option<bool> {
        self.handle.shared.revoked.load().as_ref().map(|set| set.contains(jti))
    }

    /// Wait until a fetch ends after this call (good or bad), or `timeout` passes. Returns
    /// whether a list is held. Meant for start-up and tests.
    pub async fn wait_for_fetch(&self, timeout: Duration) -> bool {
        let mut finished = self.handle.shared.finished.subscribe();
        finished.mark_unchanged();
        let _ = tokio::time::timeout(timeout, finished.changed()).await;
        self.is_ready()
    }

    /// Wait until a first list is held, or `timeout` passes. Returns [`is_ready`](Self::is_ready).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut finished = self.handle.shared.finished.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_ready() {
            if tokio::time::timeout_at(deadline, finished.changed()).await.is_err() {
                break;
            }
        }
        self.is_ready()
    }

    /// Read a revocation document (format on [`RevocationList`]) into its set of ids.
    ///
    /// ```
    /// use tower_jwt_plan::RevocationList;
    /// assert_eq!(RevocationList::parse(b"# revoked\na\n\n b \n").unwrap().len(), 2);
    /// assert_eq!(RevocationList::parse(br#"{"revoked": ["a"]}"#).unwrap().len(), 1);
    /// assert!(RevocationList::parse(b"[1, 2]").is_err());
    /// ```
    pub fn parse(document: &[u8]) -> Result<HashSet<Box<str>>, ConfigError> {
        parse_document(document).map_err(|reason| ConfigError::InvalidSetting {
            name: "revocation list",
            reason: reason.into(),
        })
    }
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("url", &self.url())
            .field("stats", &self.stats())
            .finish()
    }
}

fn parse_document(body: &[u8]) -> Result<HashSet<Box<str>>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8")?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let value: Value = serde_json::from_str(trimmed).map_err(|_| "invalid JSON")?;
        let items = match &value {
            Value::Array(items) => items,
            Value::Object(map) => match map.get("revoked") {
                Some(Value::Array(items)) => items,
                _ => return Err("a JSON object needs a `revoked` array"),
            },
            _ => return Err("invalid JSON"),
        };
        items
            .iter()
            .map(|item| item.as_str().map(Box::from).ok_or("revoked ids must be strings"))
            .collect()
    } else {
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(Box::from)
            .collect())
    }
}

/// The revocation check of one plan: a listed `jti` is refused, a token without `jti` cannot
/// be checked and is refused too, and no list yet is an outage.
pub(crate) fn check(list: &RevocationList, claims: &Map<String, Value>) -> Result<(), AuthError> {
    let Some(jti) = claims.get("jti") else {
        return Err(AuthError::invalid(InvalidReason::MissingClaim));
    };
    let Some(jti) = jti.as_str() else {
        return Err(AuthError::invalid(InvalidReason::WrongClaimType));
    };
    match list.is_revoked(jti) {
        None => Err(AuthError::new(AuthErrorKind::RevocationUnavailable)),
        Some(true) => Err(AuthError::invalid(InvalidReason::Revoked)),
        Some(false) => Ok(()),
    }
}

impl RevocationListBuilder {
    /// Interval between refreshes, with ±10 % jitter. Default: 60 s. This bounds how long a
    /// newly revoked token keeps passing.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every;
        self
    }

    /// Connect timeout. Default: 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    /// Total time for one fetch, including the body. Default: 5 s.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.http.fetch_timeout = timeout;
        self
    }

    /// Cap on the body size. Default: 4 MiB.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.http.max_body_bytes = max;
        self
    }

    /// Follow up to 2 redirects. Default: not followed (a 3xx is a failed fetch).
    pub fn follow_redirects(mut self, on: bool) -> Self {
        self.http.follow_redirects = on;
        self
    }

    /// Trust this CA (PEM) in addition to the platform's roots.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.http.add_root_certificate_pem(pem);
        self
    }

    /// Allow a plain `http://` URL to a non-loopback host. Default: refused.
    pub fn danger_allow_http(mut self) -> Self {
        self.http.allow_http = true;
        self
    }

    /// Build the list and spawn its worker on the current Tokio runtime
    /// ([`ConfigError::NoRuntime`] outside one; see [`build_with_worker`](Self::build_with_worker)).
    pub fn build(self) -> Result<RevocationList, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let (list, worker) = self.build_with_worker()?;
        runtime.spawn(tracing::Instrument::instrument(worker.run(), tracing::Span::current()));
        Ok(list)
    }

    /// Build the list and return its worker, which must be spawned for anything to be fetched.
    pub fn build_with_worker(mut self) -> Result<(RevocationList, RevocationWorker), ConfigError> {
        let url = self.http.check_url(&self.url).map_err(|reason| ConfigError::InvalidSetting {
            name: "revocation_list_url",
            reason: reason.into(),
        })?;
        positive("refresh_interval", self.refresh_interval)?;
        let client = self.http.client(&url)?;
        let shared = Arc::new(Shared {
            url,
            client,
            refresh_interval: self.refresh_interval,
            max_body_bytes: self.http.max_body_bytes,
            revoked: ArcSwapOption::empty(),
            finished: watch::Sender::new(0),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let list =
            RevocationList { handle: Arc::new(Handle { shared: shared.clone(), _stop: stop_tx }) };
        Ok((list, RevocationWorker { shared, stop: stop_rx }))
    }
}

impl fmt::Debug for RevocationListBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationListBuilder").field("url", &self.url).finish_non_exhaustive()
    }
}

/// The background task of a [`RevocationList`]: fetches at start, then on schedule.
#[must_use = "the worker does nothing unless spawned"]
pub struct RevocationWorker {
    shared: Arc<Shared>,
    stop: oneshot::Receiver<()>,
}

impl fmt::Debug for RevocationWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationWorker").field("url", &self.shared.url.as_str()).finish()
    }
}

impl RevocationWorker {
    /// Run until the last list handle is dropped.
    pub async fn run(self) {
        let RevocationWorker { shared, mut stop } = self;
        let mut failures: u32 = 0;
        let jitter = RandomState::new();
        loop {
            shared.fetches.fetch_add(1, Ordering::Relaxed);
            let outcome = tokio::select! {
                _ = &mut stop => return,
                outcome = shared.fetch() => outcome,
            };
            let delay = match outcome {
                Ok(entries) => {
                    failures = 0;
                    tracing::debug!(target: "tower_jwt_plan::revocation", url = %shared.url, entries, "revocation list fetched");
                    let spread = shared.refresh_interval.as_millis() as u64 / 5;
                    let offset = jitter.hash_one(Instant::now()) % spread.max(1);
                    (shared.refresh_interval - Duration::from_millis(spread / 2))
                        + Duration::from_millis(offset)
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    let held = shared.revoked.load().is_some();
                    tracing::warn!(target: "tower_jwt_plan::revocation", url = %shared.url, error = %error_chain(&err), held, "revocation list fetch failed; keeping the last list (none: requests get 503)");
                    let backoff = Duration::from_secs(1u64 << failures.min(16).saturating_sub(1));
                    backoff.min(shared.refresh_interval)
                }
            };
            shared.finished.send_modify(|n| *n += 1);
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

impl Shared {
    async fn fetch(&self) -> Result<usize, FetchError> {
        let accept = "application/json, text/plain";
        let body = get_capped(&self.client, &self.url, accept, self.max_body_bytes).await?;
        let set = parse_document(&body).map_err(FetchError::NotRevocationList)?;
        let entries = set.len();
        self.revoked.store(Some(Arc::new(set)));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let ids = |body: &[u8]| {
            let mut ids: Vec<_> = parse_document(body).unwrap().into_iter().collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(b"a\r\n# c\n\n  b\t\n"), [Box::from("a"), Box::from("b")]);
        assert_eq!(ids(b" [\"x\", \"y\"]"), [Box::from("x"), Box::from("y")]);
        assert_eq!(ids(br#"{"revoked": []}"#), Vec::<Box<str>>::new());
        assert_eq!(ids(b""), Vec::<Box<str>>::new());
        assert!(parse_document(b"{\"jti\": []}").is_err());
        assert!(parse_document(b"[\"a\"").is_err());
        assert!(parse_document(b"[null]").is_err());
        assert!(parse_document(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn urls_follow_the_jwks_rules() {
        let err = |u: &str| RevocationList::builder(u).build_with_worker().err();
        assert!(err("http://idp.example/revoked").is_some());
        assert!(err("http://127.0.0.1:1/revoked").is_none());
        assert!(RevocationList::builder("https://x/r").build().is_err(), "no runtime");
    }
}
