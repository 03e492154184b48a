//! Connection limits: the `[limits]` table of the configuration file and its validated form.
//!
//! Every limit has a default chosen for an edge proxy (nginx's and Envoy's defaults are the
//! comparison) and a key in `[limits]`. They bound what a client can hold without sending a
//! request: a connection that sends nothing, a head that never ends, an HTTP/2 connection
//! that idles, and the number of open connections. The values are read at startup; a reload
//! that changes them is logged and takes effect after a restart, like `listen`.
//!
//! ```toml
//! [limits]
//! first_bytes_timeout_secs = 10        # first bytes of a connection, protocol detection included
//! header_read_timeout_secs = 10        # HTTP/1 request head, and HTTP/1 keep-alive idle time
//! http2_keep_alive_interval_secs = 20  # HTTP/2 PING interval
//! http2_keep_alive_timeout_secs = 20   # HTTP/2 PING answer deadline
//! http2_idle_timeout_secs = 60         # HTTP/2 connection with no stream open
//! max_connections = 512                # beyond it, new connections wait in the backlog
//! max_request_head_bytes = 65536       # request line + headers; above it: 431
//! ```
//!
//! A leaf module: imports nothing from the gateway.

use std::time::Duration;

use serde::Deserialize;

/// Default `first_bytes_timeout_secs`.
pub const DEFAULT_FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `header_read_timeout_secs`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `http2_keep_alive_interval_secs`.
pub const DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Default `http2_keep_alive_timeout_secs`.
pub const DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `http2_idle_timeout_secs`.
pub const DEFAULT_HTTP2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `max_connections`: nginx's `worker_connections`, which leaves room under the common
/// 1024 file-descriptor limit for one backend connection per client connection.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default `max_request_head_bytes`: 64 KiB, of the order of nginx's
/// `large_client_header_buffers` (4 x 8 KiB) and Envoy's `max_request_headers_kb` (60 KiB).
pub const DEFAULT_MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Smallest `max_request_head_bytes`: hyper's smallest read buffer.
pub const MIN_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// Largest `max_request_head_bytes`.
pub const MAX_REQUEST_HEAD_BYTES: usize = 1024 * 1024;

/// The `[limits]` table as written; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Seconds a new connection has to send its first bytes, enough to tell HTTP/1 from h2c
    /// (default 10).
    #[serde(default)]
    pub first_bytes_timeout_secs: Option<u64>,
    /// Seconds an HTTP/1 request head may take to arrive, counted from the end of the previous
    /// response on a kept-alive connection (default 10).
    #[serde(default)]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds between HTTP/2 PINGs (default 20).
    #[serde(default)]
    pub http2_keep_alive_interval_secs: Option<u64>,
    /// Seconds an HTTP/2 PING may go unanswered before the connection is closed (default 20).
    #[serde(default)]
    pub http2_keep_alive_timeout_secs: Option<u64>,
    /// Seconds an HTTP/2 connection may stay open with no request in flight (default 60).
    #[serde(default)]
    pub http2_idle_timeout_secs: Option<u64>,
    /// Open client connections at most; beyond it new connections wait in the listen backlog
    /// (default 512).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Largest request head in bytes (request line and headers, HTTP/1 as sent; HTTP/2 as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`); a larger one is answered 431 (default 65536).
    #[serde(default)]
    pub max_request_head_bytes: Option<usize>,
}

/// The validated limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`LimitsConfig::first_bytes_timeout_secs`].
    pub first_bytes_timeout: Duration,
    /// See [`LimitsConfig::header_read_timeout_secs`].
    pub header_read_timeout: Duration,
    /// See [`LimitsConfig::http2_keep_alive_interval_secs`].
    pub http2_keep_alive_interval: Duration,
    /// See [`LimitsConfig::http2_keep_alive_timeout_secs`].
    pub http2_keep_alive_timeout: Duration,
    /// See [`LimitsConfig::http2_idle_timeout_secs`].
    pub http2_idle_timeout: Duration,
    /// See [`LimitsConfig::max_connections`].
    pub max_connections: usize,
    /// See [`LimitsConfig::max_request_head_bytes`].
    pub max_request_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            first_bytes_timeout: DEFAULT_FIRST_BYTES_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            http2_keep_alive_interval: DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
            http2_keep_alive_timeout: DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            http2_idle_timeout: DEFAULT_HTTP2_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_request_head_bytes: DEFAULT_MAX_REQUEST_HEAD_BYTES,
        }
    }
}

/// A timeout in whole seconds, more than zero and at most a day.
fn seconds(key: &str, value: Option<u64>, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(secs @ 1..=86_400) => Ok(Duration::from_secs(secs)),
        Some(_) => Err(format!("limits: `{key}` must be between 1 and 86400 seconds")),
    }
}

impl Limits {
    /// Validate the `[limits]` table; absent keys take their defaults.
    pub fn from_config(config: &LimitsConfig) -> Result<Self, String> {
        let max_connections = match config.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n @ 1..=1_000_000) => n,
            Some(_) => return Err("limits: `max_connections` must be between 1 and 1000000".into()),
        };
        let max_request_head_bytes = match config.max_request_head_bytes {
            None => DEFAULT_MAX_REQUEST_HEAD_BYTES,
            Some(n @ MIN_REQUEST_HEAD_BYTES..=MAX_REQUEST_HEAD_BYTES) => n,
            Some(_) => {
                return Err(format!(
                    "limits: `max_request_head_bytes` must be between {MIN_REQUEST_HEAD_BYTES} and {MAX_REQUEST_HEAD_BYTES}"
                ));
            }
        };
        Ok(Self {
            first_bytes_timeout: seconds(
                "first_bytes_timeout_secs",
                config.first_bytes_timeout_secs,
                DEFAULT_FIRST_BYTES_TIMEOUT,
            )?,
            header_read_timeout: seconds(
                "header_read_timeout_secs",
                config.header_read_timeout_secs,
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            http2_keep_alive_interval: seconds(
                "http2_keep_alive_interval_secs",
                config.http2_keep_alive_interval_secs,
                DEFAULT_HTTP2_KEEP_ALIVE_INTERVAL,
            )?,
            http2_keep_alive_timeout: seconds(
                "http2_keep_alive_timeout_secs",
                config.http2_keep_alive_timeout_secs,
                DEFAULT_HTTP2_KEEP_ALIVE_TIMEOUT,
            )?,
            http2_idle_timeout: seconds(
                "http2_idle_timeout_secs",
                config.http2_idle_timeout_secs,
                DEFAULT_HTTP2_IDLE_TIMEOUT,
            )?,
            max_connections,
            max_request_head_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(Limits::from_config(&LimitsConfig::default()), Ok(Limits::default()));
        let zero = LimitsConfig { first_bytes_timeout_secs: Some(0), ..Default::default() };
        assert!(Limits::from_config(&zero).unwrap_err().contains("first_bytes_timeout_secs"));
        let small = LimitsConfig { max_request_head_bytes: Some(100), ..Default::default() };
        assert!(Limits::from_config(&small).unwrap_err().contains("max_request_head_bytes"));
        let none = LimitsConfig { max_connections: Some(0), ..Default::default() };
        assert!(Limits::from_config(&none).unwrap_err().contains("max_connections"));
    }
}
