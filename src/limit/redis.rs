//! The Redis counter store: one Lua script per request checks every limit of the plan and,
//! if all have room, counts the request against all of them, atomically and in one round
//! trip. Window keys carry their window's bounds and `PEXPIRE` themselves at its end; the
//! spike-arrest key holds the GCRA's theoretical arrival time and expires with it.
//!
//! When Redis fails or is slower than the timeout, the request is judged by this instance's
//! in-memory counters, Redis is skipped for a retry interval, then one request probes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::decision::Ask;
use super::memory::MemoryCounters;
use super::store::Decided;
use super::window;
use crate::ConfigError;

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_PREFIX: &str = "tjp:limit:";

/// KEYS: rate-limit window, quota window, spike-arrest TAT. ARGV: now (µs), rate limit (0 =
/// none), rate key TTL (ms), quota limit (0 = none), quota key TTL (ms), spike interval (µs,
/// 0 = none). Returns the two windows' counts before this request and the spike wait (µs).
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local rl, rttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local ql, qttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local si = tonumber(ARGV[6])
local rc, qc, wait = 0, 0, 0
if rl > 0 then rc = tonumber(redis.call('GET', KEYS[1]) or '0') end
if ql > 0 then qc = tonumber(redis.call('GET', KEYS[2]) or '0') end
local windows_ok = (rl == 0 or rc < rl) and (ql == 0 or qc < ql)
if windows_ok and si > 0 then
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat > now then
    wait = tat - now
  else
    redis.call('SET', KEYS[3], string.format('%.0f', now + si), 'PX', math.ceil(si / 1000) + 1000)
  end
end
if windows_ok and wait == 0 then
  if rl > 0 and redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], rttl) end
  if ql > 0 and redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], qttl) end
end
return {rc, qc, wait}
";

/// Settings of the Redis counter store (feature `redis`).
///
/// Uses the `redis` crate's `ConnectionManager`: one multiplexed connection per layer, opened
/// by the first request and reopened by itself after a failure.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_plan::limit::{PlanLimitLayer, PlanLimits, RedisStore};
///
/// let store = RedisStore::new("redis://127.0.0.1:6379")?
///     .key_prefix("gateway-eu:")
///     .timeout(Duration::from_millis(50));
/// let layer = PlanLimitLayer::builder(PlanLimits::new()).redis(store).build();
/// # Ok::<(), tower_jwt_plan::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    retry_interval: Duration,
    log_interval: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the address is shown.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr().to_string())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store at `url` (`redis://HOST:PORT[/DB]`, `rediss://` with TLS features of the
    /// `redis` crate). Only the URL is checked here; nothing connects yet.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let client = redis::Client::open(url).map_err(|e| ConfigError::InvalidSetting {
            name: "rate limit store URL",
            // The driver's message names the problem, never the password.
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            log_interval: DEFAULT_LOG_INTERVAL,
        })
    }

    /// Prefix of every key this store writes. Default: `tjp:limit:`. Instances that must share
    /// budgets use the same prefix; different deployments on one Redis use different ones.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a request waits for Redis before its instance's in-memory counters decide.
    /// Default: 50 ms. Values below 1 ms count as 1 ms.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// After a failure, how long requests skip Redis before one probes it again. Default: 1 s.
    #[must_use]
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// At most one warning per this interval while Redis is failing. Default: 30 s.
    #[must_use]
    pub fn log_interval(mut self, interval: Duration) -> Self {
        self.log_interval = interval;
        self
    }

    pub(crate) fn build(self, memory: MemoryCounters) -> RedisCounters {
        RedisCounters {
            inner: Arc::new(Inner {
                store: self,
                script: redis::Script::new(SCRIPT),
                manager: OnceLock::new(),
                memory,
                started: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                last_log_ms: AtomicU64::new(0),
            }),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RedisCounters {
    inner: Arc<Inner>,
}

struct Inner {
    store: RedisStore,
    script: redis::Script,
    manager: OnceLock<Option<ConnectionManager>>,
    memory: MemoryCounters,
    /// Health is tracked on a monotonic clock, apart from the (possibly pinned) window clock.
    started: Instant,
    /// 0 while Redis is healthy; otherwise when the next probe may run.
    down_until_ms: AtomicU64,
    /// When the last outage warning was logged (+1, so 0 means never).
    last_log_ms: AtomicU64,
}

impl RedisCounters {
    pub(crate) fn decide(&self, ask: Ask) -> Decided {
        let inner = &self.inner;
        let now = inner.elapsed_ms();
        let down_until = inner.down_until_ms.load(Ordering::Acquire);
        if down_until != 0 {
            // One request wins the right to probe; the others keep counting locally.
            let next = now.saturating_add(ms(inner.store.retry_interval)).max(1);
            if now < down_until
                || inner
                    .down_until_ms
                    .compare_exchange(down_until, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return Decided::Now(inner.memory.decide(&ask));
            }
        }
        let Some(mut manager) = inner.manager() else {
            inner.failed("cannot create the Redis connection manager");
            return Decided::Now(inner.memory.decide(&ask));
        };
        let inner = self.inner.clone();
        Decided::Later(Box::pin(async move {
            let invocation = inner.invocation(&ask);
            let answer = tokio::time::timeout(
                inner.store.timeout,
                invocation.invoke_async::<(u64, u64, u64)>(&mut manager),
            )
            .await;
            match answer {
                Ok(Ok((rate, quota, wait_us))) => {
                    inner.recovered();
                    ask.judge(rate, quota, Duration::from_micros(wait_us))
                }
                Ok(Err(err)) => {
                    inner.failed(&err.to_string());
                    inner.memory.decide(&ask)
                }
                Err(_) => {
                    inner.failed("no answer within the timeout");
                    inner.memory.decide(&ask)
                }
            }
        }))
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        ms(self.started.elapsed())
    }

    fn manager(&self) -> Option<ConnectionManager> {
        self.manager
            .get_or_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.store.timeout.max(Duration::from_millis(250))))
                    .set_response_timeout(Some(self.store.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(self.store.retry_interval);
                ConnectionManager::new_lazy_with_config(self.store.client.clone(), config)
                    .inspect_err(|err| {
                        tracing::error!(target: "tower_jwt_plan::limit", error = %err, "cannot set up the Redis counter store; counting in memory");
                    })
                    .ok()
            })
            .clone()
    }

    fn invocation(&self, ask: &Ask) -> redis::ScriptInvocation<'_> {
        let prefix = &self.store.prefix;
        let subject = &ask.subject;
        let mut invocation = self.script.prepare_invoke();
        let (rate_limit, rate_ttl, rate_key) = match &ask.rate {
            Some(w) => (
                w.limit,
                w.end_ms.saturating_sub(ask.now_ms) + 1000,
                format!("{prefix}{subject}:rl:{}-{}", w.start_ms, w.end_ms),
            ),
            None => (0, 0, format!("{prefix}{subject}:rl")),
        };
        let (quota_limit, quota_ttl, quota_key) = match &ask.quota {
            Some(w) => (
                w.limit,
                w.end_ms.saturating_sub(ask.now_ms) + 1000,
                format!("{prefix}{subject}:q:{}-{}", w.start_ms, w.end_ms),
            ),
            None => (0, 0, format!("{prefix}{subject}:q")),
        };
        let spike_us = ask
            .spike
            .map_or(0, |s| u64::try_from(s.interval().as_micros()).unwrap_or(u64::MAX).max(1));
        let spike_key = format!("{prefix}{subject}:sa:{spike_us}");
        invocation
            .key(rate_key)
            .key(quota_key)
            .key(spike_key)
            .arg(window::epoch_us(ask.now))
            .arg(rate_limit)
            .arg(rate_ttl)
            .arg(quota_limit)
            .arg(quota_ttl)
            .arg(spike_us);
        invocation
    }

    fn failed(&self, error: &str) {
        let now = self.elapsed_ms();
        let next = now.saturating_add(ms(self.store.retry_interval)).max(1);
        self.down_until_ms.store(next, Ordering::Release);
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last - 1) >= ms(self.store.log_interval);
        if due
            && self
                .last_log_ms
                .compare_exchange(last, now + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(target: "tower_jwt_plan::limit", %error, "Redis counter store unavailable: each instance enforces the full limits in memory until it answers");
        }
    }

    fn recovered(&self) {
        if self.down_until_ms.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!(target: "tower_jwt_plan::limit", "Redis counter store answers again: budgets are shared again");
        }
    }
}
