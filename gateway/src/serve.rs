//! Serving: the live [`Gateway`] (one routing table behind one `ArcSwap`, swapped whole by
//! [`Gateway::redeploy`]), the accept loop with graceful shutdown, and the signals (SIGHUP
//! reloads the file, SIGTERM/SIGINT stop).
//!
//! Each request loads the table once, so it sees the old configuration or the new one, never
//! a mix. Another listener (an admin API, say) would be one more accept loop here over the same
//! `Gateway`. Each connection is served under the startup [`crate::limits`] by the private
//! `edge` module; with `[tls]`, after a TLS handshake bounded by `first_bytes_timeout`, and each
//! request carries the connection's verified client certificate ([`crate::tls`]). Imports
//! [`crate::config`], [`crate::compile`], `edge`, [`crate::limits`], [`crate::routing`],
//! [`crate::proxy`] and [`crate::tls`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{Request, Response};
use hyper::body::Incoming;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tower_jwt_plan::JwksCache;
use tower_jwt_plan::definition::SharedRemotes;
use tower_jwt_plan::limit::{PlanLimitLayer, PlanLimits, Restrictions};

use crate::compile::compile;
use crate::config::{Config, load_config};
use crate::edge::{self, Admission};
use crate::headers::Hop;
use crate::limits::Limits;
use crate::proxy::{Body, HttpClient, http_client_with};
use crate::routing::{RoutingTable, Summary};
use crate::tls::{ListenerTls, TlsListener};

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The running gateway. Clones share everything.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<RoutingTable>,
    /// JWKS caches and revocation lists of the current table; kept across reloads.
    remotes: Mutex<SharedRemotes>,
    client: HttpClient,
    /// Connection limits, fixed at startup.
    limits: Limits,
    /// The listener's TLS, when `[tls]` was set at startup; its files are re-read on redeploy.
    tls: Option<TlsListener>,
    /// `--benchmark-without-plans`: bypass the layer.
    unprotected: bool,
    /// The plans' restrictions, inside every API's layer; its counters outlive reloads.
    limit: PlanLimitLayer,
    /// File mode: the configuration now serving and when it was loaded (management reads).
    served: ArcSwapOption<(Config, OffsetDateTime)>,
}

/// Build a gateway from a configuration: validate it whole, then start the JWKS workers.
/// Must run inside a Tokio runtime.
pub fn build_app(config: &Config) -> Result<Gateway, String> {
    build_app_with(config, false)
}

/// [`build_app`], optionally without the layer (`--benchmark-without-plans`).
pub fn build_app_with(config: &Config, unprotected: bool) -> Result<Gateway, String> {
    build_app_limited(config, unprotected, PlanLimitLayer::new(PlanLimits::new()))
}

/// [`build_app_with`], with the plans' restrictions enforced by `limit` (its counters in
/// memory or in Redis).
pub fn build_app_limited(
    config: &Config,
    unprotected: bool,
    limit: PlanLimitLayer,
) -> Result<Gateway, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "build_app must run inside a Tokio runtime".to_owned())?;
    let client = http_client_with(None)?;
    let mut compiled = compile(config, &SharedRemotes::new(), &client, &limit)?;
    apply_restrictions(&limit, std::mem::take(&mut compiled.restrictions));
    let limits = Limits::from_config(&config.limits)?;
    let tls = config.tls.as_ref().map(TlsListener::new).transpose()?;
    for worker in compiled.remotes.take_workers() {
        runtime.spawn(worker.run());
    }
    Ok(Gateway {
        inner: Arc::new(Inner {
            current: ArcSwap::from_pointee(compiled.table),
            remotes: Mutex::new(compiled.remotes),
            client,
            limits,
            tls,
            unprotected,
            limit,
            served: ArcSwapOption::from_pointee((config.clone(), OffsetDateTime::now_utc())),
        }),
    })
}

/// A gateway whose routing tables come from elsewhere (DB mode: the catalog's live view),
/// starting with the table `first` builds over the gateway's HTTP client.
pub(crate) fn gateway_for_tables(
    first: impl FnOnce(&HttpClient, &PlanLimitLayer) -> RoutingTable,
    limits: Limits,
    limit: PlanLimitLayer,
    unprotected: bool,
) -> Result<Gateway, String> {
    let client = http_client_with(None)?;
    Ok(Gateway {
        inner: Arc::new(Inner {
            current: ArcSwap::from_pointee(first(&client, &limit)),
            limit,
            remotes: Mutex::new(SharedRemotes::new()),
            tls: None,
            client,
            limits,
            unprotected,
            served: ArcSwapOption::empty(),
        }),
    })
}

/// Put each API's restrictions in the layer's table (an API without any is cleared).
fn apply_restrictions(limit: &PlanLimitLayer, apis: Vec<(String, Vec<(String, Restrictions)>)>) {
    for (api, plans) in apis {
        limit.limits().replace_api(api, plans);
    }
}

impl Gateway {
    /// Validate `config` whole and swap it in atomically. On error nothing changes.
    pub fn redeploy(&self, config: &Config) -> Result<Summary, String> {
        let mut remotes = self.inner.remotes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut compiled = compile(config, &remotes, &self.inner.client, &self.inner.limit)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "redeploy must run inside a Tokio runtime".to_owned())?;
        match (&self.inner.tls, &config.tls) {
            (Some(listener), Some(tls)) => listener.reload(tls)?,
            (None, None) => {}
            _ => tracing::warn!("`[tls]` was added or removed; that takes a restart"),
        }
        for worker in compiled.remotes.take_workers() {
            runtime.spawn(worker.run());
        }
        let summary = compiled.table.summary;
        apply_restrictions(&self.inner.limit, compiled.restrictions);
        let old = self.inner.current.swap(Arc::new(compiled.table));
        self.inner.served.store(Some(Arc::new((config.clone(), OffsetDateTime::now_utc()))));
        // Caches no longer used stop their workers once the old table is gone.
        *remotes = compiled.remotes;
        let new = self.inner.current.load();
        if old.listen != new.listen {
            tracing::warn!("the `listen` address changed; it takes effect only after a restart");
        }
        if Limits::from_config(&config.limits).is_ok_and(|limits| limits != self.inner.limits) {
            tracing::warn!("`[limits]` changed; the new limits take effect only after a restart");
        }
        Ok(summary)
    }

    /// Swap in a routing table built elsewhere (DB mode), whole.
    pub(crate) fn install(&self, table: RoutingTable) {
        self.inner.current.store(Arc::new(table));
    }

    /// The plans' restrictions layer shared by every route.
    pub(crate) fn limit(&self) -> &PlanLimitLayer {
        &self.inner.limit
    }

    /// The HTTP client shared by every route.
    pub(crate) fn client(&self) -> &HttpClient {
        &self.inner.client
    }

    /// File mode: the configuration now serving and when it was loaded.
    pub fn served_config(&self) -> Option<Arc<(Config, OffsetDateTime)>> {
        self.inner.served.load_full()
    }

    /// Counts of the configuration now serving.
    pub fn summary(&self) -> Summary {
        self.inner.current.load().summary
    }

    /// The JWKS URLs in use (for an `oidc_issuer`, its metadata URL), one cache each, sorted.
    pub fn jwks_urls(&self) -> Vec<String> {
        let remotes = self.inner.remotes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut urls: Vec<String> = remotes.jwks_caches().map(|c| c.url().to_owned()).collect();
        urls.sort();
        urls
    }

    /// Wait until every JWKS cache holds keys, or `timeout` passes. Returns whether all do.
    pub async fn wait_for_keys(&self, timeout: Duration) -> bool {
        let caches: Vec<JwksCache> = {
            let remotes = self.inner.remotes.lock().unwrap_or_else(PoisonError::into_inner);
            remotes.jwks_caches().cloned().collect()
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

    /// Answer one request with the table serving now.
    async fn handle(&self, req: Request<Incoming>, hop: &Arc<Hop>) -> Response<Body> {
        let table = self.inner.current.load_full();
        table.handle(req, hop, self.inner.unprotected).await
    }
}

/// Serve until `shutdown` completes, then stop accepting and give open connections
/// [`SHUTDOWN_GRACE`] to finish their requests.
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut admission = Admission::new(gateway.inner.limits.max_connections);
    tokio::pin!(shutdown);
    loop {
        // Beyond `max_connections`, accept nothing: new connections wait in the backlog.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = admission.admit() => permit,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, gateway.clone(), stop_rx.clone(), permit));
                }
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    admission.accept_failed(&err);
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
    stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let limits = gateway.inner.limits;
    let _ = stream.set_nodelay(true);
    let hop = Arc::new(Hop::new(peer));
    let Some(tls) = gateway.inner.tls.clone() else {
        let service = hyper::service::service_fn(move |req| {
            let (gateway, hop) = (gateway.clone(), hop.clone());
            async move { Ok::<_, Infallible>(gateway.handle(req, &hop).await) }
        });
        edge::serve_connection(stream, peer, limits, service, stop, permit).await;
        return;
    };
    let mut stopping = stop.clone();
    let accepted = tokio::select! {
        accepted = tls.accept(stream, limits.first_bytes_timeout) => accepted,
        _ = stopping.wait_for(|stop| *stop) => return,
    };
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(err) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            return;
        }
    };
    let certificate = accepted.client_certificate;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (gateway, hop) = (gateway.clone(), hop.clone());
        // The verified certificate of this connection, for plans with `confirmation`; a value
        // a client sent in a header never becomes one.
        req.extensions_mut().insert(ListenerTls);
        if let Some(certificate) = &certificate {
            req.extensions_mut().insert(certificate.clone());
        }
        async move { Ok::<_, Infallible>(gateway.handle(req, &hop).await) }
    });
    edge::serve_connection(accepted.stream, peer, limits, service, stop, permit).await;
}

/// The signals the gateway obeys: SIGHUP reloads, SIGTERM and SIGINT stop.
pub(crate) struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installed before anything listens, so an early SIGHUP cannot kill the process.
    pub(crate) fn install() -> Result<Self, String> {
        let install = |kind: SignalKind| {
            signal(kind).map_err(|e| format!("cannot install a signal handler: {e}"))
        };
        Ok(Self {
            hangup: install(SignalKind::hangup())?,
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// Serve until SIGTERM or SIGINT, reloading `file` on every SIGHUP (the demo has none).
    /// `stopping` is told when the signal landed, so the management API stops with the proxy
    /// and both share one grace period.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        gateway: Gateway,
        file: Option<PathBuf>,
        stopping: watch::Sender<Option<Instant>>,
    ) {
        let Self { hangup, mut terminate, mut interrupt } = self;
        tokio::spawn(reload_on_hangup(hangup, file, gateway.clone()));
        let shutdown = async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down");
            let _ = stopping.send(Some(Instant::now()));
        };
        serve(listener, gateway, shutdown).await;
    }
}

async fn reload_on_hangup(mut hangup: Signal, file: Option<PathBuf>, gateway: Gateway) {
    while hangup.recv().await.is_some() {
        let Some(file) = &file else {
            tracing::warn!("SIGHUP ignored: no configuration file (demo or --store)");
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
