//! [`JwksCache`]: an identity provider's keys, fetched over HTTPS and held for lock-free reads.
//!
//! One background worker does every fetch: the first one at start, then one per refresh
//! interval (with jitter, so a fleet does not fetch in step), and one on demand when a token
//! names a `kid` the set does not have, at most once per `min_refetch_interval`. Requests that
//! ask while a fetch is running join it instead of starting another (single flight), and
//! requests past the budget do not wait at all. Requests read keys through an `ArcSwap`; no
//! lock is taken on the path of a token whose key is known, and nothing waits on the network.
//!
//! A failed fetch (transport error, non-2xx, body over the cap, not JSON, no usable key) never
//! replaces the last good set. Keys unusable for signatures are skipped one by one.
//!
//! The HTTP client verifies TLS certificates (rustls, the platform's roots plus any you add),
//! never follows redirects unless asked, bounds connect and total time, and refuses plain
//! `http://` except to loopback addresses unless [`JwksCacheBuilder::danger_allow_http`] is set.
//!
//! A cache built with [`JwksCache::from_issuer`] finds the JWKS URL itself: every fetch first
//! reads the issuer's metadata document (OpenID Connect Discovery, or RFC 8414 as the
//! fallback), requires its `issuer` to be the configured one exactly, and then fetches the
//! `jwks_uri` it names, so a moved `jwks_uri` is followed at the next refresh. The document is
//! fetched under the same rules as the key set, and a fault in it is a failed fetch like any
//! other: the last good keys keep serving.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use reqwest::Url;
use tokio::sync::{Notify, oneshot, watch};

use crate::defaults::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MIN_REFETCH_INTERVAL, DEFAULT_REFRESH_INTERVAL,
};
use crate::discovery::{ProviderMetadata, metadata_urls};
use crate::error::ConfigError;
use crate::fetch::{FetchError, HttpOptions, error_chain, get_capped, positive};
use crate::key::{KeySet, parse_jwks};

/// A future that completes when an on-demand fetch has finished (or timed out).
pub(crate) type KeyWait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A shared, self-refreshing cache of one JWKS URL's keys.
///
/// Clones share one cache and one worker; the worker stops when the last clone is dropped.
/// Requests read keys without a lock and never wait for a token whose `kid` is known. The worker
/// fetches at start, then every `refresh_interval` (±10 % jitter), and on demand when a token
/// names an unknown `kid` or no keys are held yet: at most once per `min_refetch_interval`, with
/// concurrent askers joining the fetch in flight. A failed, empty or invalid fetch keeps the last
/// good keys; keys unusable for signatures are skipped one by one. TLS is always verified.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_plan::JwksCache;
///
/// # async fn demo() -> Result<(), tower_jwt_plan::ConfigError> {
/// // Inside a Tokio runtime:
/// let cache = JwksCache::builder("https://idp.example/.well-known/jwks.json")
///     .refresh_interval(Duration::from_secs(600))
///     .build()?;
/// # let _ = cache; Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwksCache {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    // Dropped with the last clone: the worker sees its receiver close and exits.
    _stop: oneshot::Sender<()>,
}

struct Shared {
    url: Url,
    /// Set for a cache built from an issuer: `url` is then its metadata document.
    discovery: Option<Discovery>,
    client: reqwest::Client,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    fetch_timeout: Duration,
    max_body_bytes: usize,
    keys: ArcSwapOption<KeySet>,
    /// The address of the set in `keys`, written just before it is stored there: a token-cache
    /// hit compares it with the set it holds (alive, so its address is not reused) in one load,
    /// where `keys.load()` costs two atomic read-modify-writes. Only the one worker writes it.
    current: AtomicPtr<KeySet>,
    /// Number of fetches finished, good or bad: waiters watch it change.
    finished: watch::Sender<u64>,
    wake: Notify,
    schedule: Mutex<Schedule>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// What a cache built from an issuer needs to find its keys.
struct Discovery {
    issuer: String,
    /// RFC 8414's location, tried when OpenID Connect's answers with a client error.
    fallback: Url,
    /// Whether plain http is allowed for the `jwks_uri` (same rule as for the issuer).
    allow_http: bool,
    /// The `jwks_uri` of the last good document.
    jwks_uri: ArcSwapOption<Url>,
}

#[derive(Default)]
struct Schedule {
    in_flight: bool,
    /// When the last fetch started or ended, whichever is later.
    last_fetch: Option<Instant>,
}

/// Counters of a cache, for health checks, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksStats {
    /// Fetches started so far.
    pub fetches: u64,
    /// Fetches that failed (the last good keys were kept).
    pub failures: u64,
    /// Usable keys held now.
    pub keys: usize,
}

/// Builder for [`JwksCache`]. Every setting has a default, given on its setter.
#[must_use]
pub struct JwksCacheBuilder {
    url: String,
    issuer: bool,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    http: HttpOptions,
}

impl JwksCache {
    /// Start configuring a cache for this URL.
    pub fn builder(url: impl Into<String>) -> JwksCacheBuilder {
        JwksCacheBuilder {
            url: url.into(),
            issuer: false,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            http: HttpOptions::new(DEFAULT_MAX_BODY_BYTES),
        }
    }

    /// Start configuring a cache that finds its keys from an issuer, by OpenID Connect
    /// Discovery (`{issuer}/.well-known/openid-configuration`, or RFC 8414's
    /// `/.well-known/oauth-authorization-server` when that answers with a 4xx). The document's
    /// `issuer` must equal `issuer` exactly; its `jwks_uri` is fetched under the same rules, and
    /// re-read at every fetch. A plan using this cache accepts only tokens of this issuer unless
    /// you set issuers yourself ([`JwtSettings::issuer`](crate::JwtSettings::issuer)).
    ///
    /// ```no_run
    /// use tower_jwt_plan::{JwksCache, JwtSettings, KeySource};
    ///
    /// # async fn demo() -> Result<(), tower_jwt_plan::ConfigError> {
    /// let cache = JwksCache::from_issuer("https://idp.example/realms/main").build()?;
    /// let settings = JwtSettings::new(KeySource::jwks(cache));
    /// assert_eq!(settings.issuers(), ["https://idp.example/realms/main"]);
    /// # Ok(()) }
    /// ```
    pub fn from_issuer(issuer: impl Into<String>) -> JwksCacheBuilder {
        JwksCacheBuilder { issuer: true, ..Self::builder(issuer) }
    }

    /// The JWKS URL, or for a cache built from an issuer, the issuer's OpenID Connect
    /// metadata URL.
    pub fn url(&self) -> &str {
        self.handle.shared.url.as_str()
    }

    /// The issuer this cache was built from ([`from_issuer`](Self::from_issuer)).
    pub fn issuer(&self) -> Option<&str> {
        self.handle.shared.discovery.as_ref().map(|d| d.issuer.as_str())
    }

    /// The JWKS URL of a cache built from an issuer, as named by the last good metadata
    /// document; `None` before the first one (or for a cache built with a JWKS URL).
    pub fn jwks_uri(&self) -> Option<String> {
        let discovery = self.handle.shared.discovery.as_ref()?;
        discovery.jwks_uri.load().as_ref().map(|url| url.to_string())
    }

    /// Counters: fetches, failures, keys held.
    pub fn stats(&self) -> JwksStats {
        let shared = &self.handle.shared;
        JwksStats {
            fetches: shared.fetches.load(Ordering::Relaxed),
            failures: shared.failures.load(Ordering::Relaxed),
            keys: shared.keys.load().as_ref().map_or(0, |set| set.len()),
        }
    }

    /// Whether a good key set has been fetched at least once.
    pub fn is_ready(&self) -> bool {
        self.handle.shared.keys.load().is_some()
    }

    /// The `kid`s currently held, for diagnostics.
    pub fn key_ids(&self) -> Vec<String> {
        self.snapshot().map(|set| set.kids().map(str::to_owned).collect()).unwrap_or_default()
    }

    /// Wait until the first good set is held, or `timeout` passes. Returns [`is_ready`](Self::is_ready).
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

    /// The current key set; `None` until the first good fetch.
    pub(crate) fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.handle.shared.keys.load_full()
    }

    /// Whether `set` is the key set held now.
    pub(crate) fn is_current(&self, set: &Arc<KeySet>) -> bool {
        std::ptr::eq(self.handle.shared.current.load(Ordering::Acquire), Arc::as_ptr(set))
    }

    /// Whether `other` is a handle on the same cache (a clone of this one).
    pub(crate) fn same_cache(&self, other: &JwksCache) -> bool {
        Arc::ptr_eq(&self.handle, &other.handle)
    }

    /// Whether a key with this `kid` is held now. Lock-free, for health checks and diagnostics.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.handle.shared.keys.load().as_ref().is_some_and(|set| set.kids().any(|k| k == kid))
    }

    /// Ask for an on-demand fetch. Returns a future to wait on if one is running or was started,
    /// `None` if the refetch budget is spent (the caller then answers with what it has).
    pub(crate) fn request_refresh(&self) -> Option<KeyWait> {
        let shared = &self.handle.shared;
        let mut finished = shared.finished.subscribe();
        {
            let mut schedule = shared.schedule.lock().unwrap_or_else(|e| e.into_inner());
            if !schedule.in_flight {
                let budget_spent = schedule
                    .last_fetch
                    .is_some_and(|at| at.elapsed() < shared.min_refetch_interval);
                if budget_spent {
                    return None;
                }
                // Mark it now so that concurrent callers join instead of asking again.
                schedule.in_flight = true;
                schedule.last_fetch = Some(Instant::now());
                shared.wake.notify_one();
            }
        }
        // A little over the fetch timeout: the worker always finishes a fetch by then.
        let bound = shared.fetch_timeout + Duration::from_millis(250);
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(bound, finished.changed()).await;
        }))
    }
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache").field("url", &self.url()).field("stats", &self.stats()).finish()
    }
}

impl JwksCacheBuilder {
    /// Interval between background refreshes, with ±10 % jitter. Default: 5 minutes.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every;
        self
    }

    /// Minimum time between two on-demand fetches triggered by requests (unknown `kid`, or no
    /// keys yet). Default: 5 s. This is what bounds the load a flood of random `kid`s can put on
    /// the IdP.
    pub fn min_refetch_interval(mut self, at_most_every: Duration) -> Self {
        self.min_refetch_interval = at_most_every;
        self
    }

    /// Connect timeout. Default: 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    /// Total time for one fetch, including the body. Default: 5 s. This also bounds how long
    /// the first requests wait for keys.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.http.fetch_timeout = timeout;
        self
    }

    /// Cap on the body size (of the metadata document too). Default: 1 MiB.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.http.max_body_bytes = max;
        self
    }

    /// Follow up to 2 redirects. Default: redirects are not followed (a 3xx is a failed fetch).
    pub fn follow_redirects(mut self, on: bool) -> Self {
        self.http.follow_redirects = on;
        self
    }

    /// Trust this CA (PEM) in addition to the platform's roots, for a private IdP.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.http.add_root_certificate_pem(pem);
        self
    }

    /// Allow a plain `http://` URL to a non-loopback host. Default: refused, since anyone on
    /// the path could then hand us keys. Loopback URLs (`127.0.0.1`, `[::1]`, `localhost`) are
    /// always allowed.
    pub fn danger_allow_http(mut self) -> Self {
        self.http.allow_http = true;
        self
    }

    fn into_shared(mut self) -> Result<Shared, ConfigError> {
        let invalid = |reason| ConfigError::InvalidJwksUrl { url: self.url.clone(), reason };
        let checked = self.http.check_url(&self.url).map_err(invalid)?;
        let (url, discovery) = if self.issuer {
            let [oidc, fallback] = metadata_urls(&checked)
                .ok_or_else(|| invalid("an issuer has no query or fragment"))?;
            let discovery = Discovery {
                issuer: self.url.clone(),
                fallback,
                allow_http: self.http.allow_http,
                jwks_uri: ArcSwapOption::empty(),
            };
            (oidc, Some(discovery))
        } else {
            (checked, None)
        };
        positive("refresh_interval", self.refresh_interval)?;
        let client = self.http.client(&url)?;
        Ok(Shared {
            url,
            discovery,
            client,
            refresh_interval: self.refresh_interval,
            min_refetch_interval: self.min_refetch_interval,
            fetch_timeout: self.http.fetch_timeout,
            max_body_bytes: self.http.max_body_bytes,
            keys: ArcSwapOption::empty(),
            current: AtomicPtr::new(std::ptr::null_mut()),
            finished: watch::Sender::new(0),
            wake: Notify::new(),
            schedule: Mutex::new(Schedule { in_flight: true, last_fetch: Some(Instant::now()) }),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// Build the cache and spawn its worker on the current Tokio runtime.
    ///
    /// Fails with [`ConfigError::NoRuntime`] outside a runtime; use
    /// [`build_with_worker`](Self::build_with_worker) to spawn it yourself.
    pub fn build(self) -> Result<JwksCache, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let (cache, worker) = self.build_with_worker()?;
        // The worker logs under the span of whoever built the cache.
        runtime.spawn(tracing::Instrument::instrument(worker.run(), tracing::Span::current()));
        Ok(cache)
    }

    /// Build the cache and return its worker, which must be spawned (or awaited) for any key
    /// to be fetched. It ends when the last clone of the cache is dropped.
    pub fn build_with_worker(self) -> Result<(JwksCache, JwksWorker), ConfigError> {
        let shared = Arc::new(self.into_shared()?);
        let (stop_tx, stop_rx) = oneshot::channel();
        let cache =
            JwksCache { handle: Arc::new(Handle { shared: shared.clone(), _stop: stop_tx }) };
        Ok((cache, JwksWorker { shared, stop: stop_rx }))
    }
}

/// The background task of a [`JwksCache`]: fetches at start, on schedule and on demand.
#[must_use = "the worker does nothing unless spawned"]
pub struct JwksWorker {
    shared: Arc<Shared>,
    stop: oneshot::Receiver<()>,
}

impl fmt::Debug for JwksWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksWorker").field("url", &self.shared.url.as_str()).finish()
    }
}

impl JwksWorker {
    /// Run until the last cache handle is dropped.
    pub async fn run(self) {
        let JwksWorker { shared, mut stop } = self;
        let mut failures: u32 = 0;
        let mut last_body = Vec::new();
        let jitter = RandomState::new();
        loop {
            {
                let mut schedule = shared.schedule.lock().unwrap_or_else(|e| e.into_inner());
                schedule.in_flight = true;
                schedule.last_fetch = Some(Instant::now());
            }
            shared.fetches.fetch_add(1, Ordering::Relaxed);
            let outcome = tokio::select! {
                _ = &mut stop => return,
                outcome = shared.fetch(&mut last_body) => outcome,
            };
            let delay = match outcome {
                Ok((keys, skipped)) => {
                    failures = 0;
                    tracing::debug!(target: "tower_jwt_plan::jwks", url = %shared.url, keys, skipped, "JWKS fetched");
                    let spread = shared.refresh_interval.as_millis() as u64 / 5;
                    let offset = jitter.hash_one(Instant::now()) % spread.max(1);
                    (shared.refresh_interval - Duration::from_millis(spread / 2))
                        + Duration::from_millis(offset)
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    let chain = error_chain(&err);
                    tracing::warn!(target: "tower_jwt_plan::jwks", url = %shared.url, error = %chain, held = shared.keys.load().is_some(), "JWKS fetch failed; keeping the last good keys");
                    // Back off 1 s, 2 s, 4 s ... up to the refresh interval.
                    let backoff = Duration::from_secs(1u64 << failures.min(16).saturating_sub(1));
                    backoff.min(shared.refresh_interval)
                }
            };
            {
                let mut schedule = shared.schedule.lock().unwrap_or_else(|e| e.into_inner());
                schedule.in_flight = false;
                // The refetch budget counts from the end of a fetch too, so a slow IdP cannot
                // be kept busy with back-to-back fetches by a stream of unknown kids.
                schedule.last_fetch = Some(Instant::now());
            }
            shared.finished.send_modify(|n| *n += 1);
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(delay) => {}
                _ = shared.wake.notified() => {}
            }
        }
    }
}

impl Shared {
    /// Fetch and install the set. An unchanged document keeps the current `Arc`, so caches
    /// keyed on the set's identity (the verified-token cache) survive routine refreshes.
    async fn fetch(&self, last_body: &mut Vec<u8>) -> Result<(usize, usize), FetchError> {
        let jwks_url = match &self.discovery {
            Some(discovery) => self.discover(discovery).await?,
            None => self.url.clone(),
        };
        let accept = "application/jwk-set+json, application/json";
        let body = get_capped(&self.client, &jwks_url, accept, self.max_body_bytes).await?;
        if body == *last_body
            && let Some(held) = self.keys.load().as_ref()
        {
            return Ok((held.len(), 0));
        }
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(FetchError::NotJson)?;
        let (set, skipped) = parse_jwks(&doc, true).map_err(FetchError::NotJwks)?;
        if set.is_empty() {
            return Err(FetchError::NoUsableKeys(skipped));
        }
        let keys = set.len();
        let set = Arc::new(set);
        // Before the store, so a hit's old set stops counting as current no later than the
        // new one is served.
        self.current.store(Arc::as_ptr(&set).cast_mut(), Ordering::Release);
        self.keys.store(Some(set));
        *last_body = body;
        Ok((keys, skipped))
    }

    /// Read the issuer's metadata document (OpenID Connect's location, RFC 8414's after a 4xx)
    /// and return the `jwks_uri` it names, checked against the same URL rules as the issuer.
    async fn discover(&self, discovery: &Discovery) -> Result<Url, FetchError> {
        let accept = "application/json";
        let max = self.max_body_bytes;
        let body = match get_capped(&self.client, &self.url, accept, max).await {
            Err(FetchError::Status(status)) if status.is_client_error() => {
                get_capped(&self.client, &discovery.fallback, accept, max).await?
            }
            other => other?,
        };
        let meta =
            ProviderMetadata::parse(&body, &discovery.issuer).map_err(FetchError::Discovery)?;
        let options = HttpOptions { allow_http: discovery.allow_http, ..HttpOptions::new(max) };
        let url = options.check_url(meta.jwks_uri()).map_err(FetchError::BadJwksUri)?;
        if discovery.jwks_uri.load().as_deref() != Some(&url) {
            tracing::info!(target: "tower_jwt_plan::jwks", issuer = %discovery.issuer, jwks_uri = %url, "JWKS URL discovered");
            discovery.jwks_uri.store(Some(Arc::new(url.clone())));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        let err = |u: &str| JwksCache::builder(u).build_with_worker().err();
        assert!(matches!(err("http://idp.example/jwks"), Some(ConfigError::InvalidJwksUrl { .. })));
        assert!(matches!(err("ftp://idp.example/jwks"), Some(ConfigError::InvalidJwksUrl { .. })));
        assert!(matches!(err("not a url"), Some(ConfigError::InvalidJwksUrl { .. })));
        assert!(err("http://127.0.0.1:1/jwks").is_none());
        assert!(err("https://idp.example/jwks").is_none());
        assert!(
            JwksCache::builder("http://idp.example/jwks")
                .danger_allow_http()
                .build_with_worker()
                .is_ok()
        );
    }

    /// A JWKS endpoint on 127.0.0.1 that answers every request with the document in `body`.
    async fn serve(body: Arc<Mutex<String>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
                let body = body.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
            }
        });
        url
    }

    /// The P-256 public key of RFC 7517's example A.1, under `kid`.
    fn jwks(kid: &str) -> String {
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{kid}","use":"sig","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}}]}}"#
        )
    }

    /// A token-cache hit trusts `is_current` instead of a signature check: it must hold for the
    /// set being served, and stop holding for it once a fetch replaced it.
    #[tokio::test]
    async fn only_the_set_served_now_is_current() {
        let body = Arc::new(Mutex::new(jwks("k1")));
        let url = serve(body.clone()).await;
        let cache =
            JwksCache::builder(url).min_refetch_interval(Duration::from_millis(1)).build().unwrap();
        assert!(cache.wait_ready(Duration::from_secs(5)).await);
        let first = cache.snapshot().unwrap();
        assert!(cache.is_current(&first));

        *body.lock().unwrap() = jwks("k2");
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.request_refresh().expect("a refetch may start").await;
        assert!(cache.contains_kid("k2"));
        let second = cache.snapshot().unwrap();
        assert!(cache.is_current(&second));
        assert!(!cache.is_current(&first), "a replaced set is not current");
        // A set with the same keys that is not the one served is not current either.
        assert!(!cache.is_current(&Arc::new(KeySet::clone(&second))));
    }

    #[test]
    fn build_outside_runtime_is_an_error_not_a_panic() {
        let err = JwksCache::builder("https://idp.example/jwks").build().unwrap_err();
        assert!(matches!(err, ConfigError::NoRuntime));
    }
}
