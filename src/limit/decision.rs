//! One request's question to a counter store ([`Ask`]) and the store's answer ([`Decision`]).

use std::time::{Duration, SystemTime};

#[cfg(doc)]
use super::restrictions::{Quota, RateLimit};
use super::restrictions::{Restrictions, SpikeArrest};
use super::window;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// The plan's [`RateLimit`]: `RATE_LIMIT_TOO_MANY_REQUESTS`.
    RateLimit,
    /// The plan's [`Quota`]: `QUOTA_TOO_MANY_REQUESTS`.
    Quota,
    /// The plan's [`SpikeArrest`]: `SPIKE_ARREST_TOO_MANY_REQUESTS`.
    SpikeArrest,
}

/// A fixed window's state after a request, for the `X-*-Limit/Remaining/Reset` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowReport {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// End of the window, epoch milliseconds.
    pub(crate) reset_ms: u64,
}

/// A store's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) rate: Option<WindowReport>,
    pub(crate) quota: Option<WindowReport>,
    /// The limit that refused, and how long until it would allow a request.
    pub(crate) refused: Option<(LimitKind, Duration)>,
}

/// A fixed window to count in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowAsk {
    pub(crate) limit: u64,
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
}

/// Everything a store needs to judge one request, computed once from the plan's restrictions
/// and the clock.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    /// Who is counted: API, plan and subscription (or claim value), length-prefixed so no two
    /// different triples share a subject.
    pub(crate) subject: String,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) now: SystemTime,
    pub(crate) now_ms: u64,
    pub(crate) rate: Option<WindowAsk>,
    pub(crate) quota: Option<WindowAsk>,
    pub(crate) spike: Option<SpikeArrest>,
}

impl Ask {
    pub(crate) fn new(subject: String, restrictions: &Restrictions, now: SystemTime) -> Self {
        let now_ms = window::epoch_ms(now);
        let rate = restrictions.rate_limit().map(|r| {
            let (start_ms, end_ms) = window::fixed(now_ms, r.period_secs());
            WindowAsk { limit: r.limit(), start_ms, end_ms }
        });
        let quota = restrictions.quota().map(|q| {
            let (start_ms, end_ms) = window::calendar(now_ms, q.period());
            WindowAsk { limit: q.limit(), start_ms, end_ms }
        });
        Self { subject, now, now_ms, rate, quota, spike: restrictions.spike_arrest() }
    }

    /// How long a counter for this request must live: its longest window, plus a second.
    pub(crate) fn ttl(&self) -> Duration {
        let windows = [self.rate, self.quota]
            .into_iter()
            .flatten()
            .map(|w| w.end_ms.saturating_sub(w.start_ms))
            .max()
            .unwrap_or(0);
        let spike = self.spike.map_or(Duration::ZERO, |s| s.interval());
        Duration::from_millis(windows).max(spike) + Duration::from_secs(1)
    }

    /// Build the verdict from the counts the store holds: `counts` are the fixed windows'
    /// counts *before* this request, `spike_wait` the spike arrest's wait (zero if it allows).
    /// Returns the verdict and whether the request is to be counted.
    pub(crate) fn judge(
        &self,
        rate_count: u64,
        quota_count: u64,
        spike_wait: Duration,
    ) -> Decision {
        let wait = |w: &WindowAsk| Duration::from_millis(w.end_ms.saturating_sub(self.now_ms));
        // The refusal reported is the one that lasts longest: retrying before it ends is useless.
        let mut refused: Option<(LimitKind, Duration)> = None;
        let mut consider = |kind, wait: Duration| {
            if refused.is_none_or(|(_, w)| wait > w) {
                refused = Some((kind, wait));
            }
        };
        if let Some(q) = &self.quota
            && quota_count >= q.limit
        {
            consider(LimitKind::Quota, wait(q));
        }
        if let Some(r) = &self.rate
            && rate_count >= r.limit
        {
            consider(LimitKind::RateLimit, wait(r));
        }
        if self.spike.is_some() && !spike_wait.is_zero() {
            consider(LimitKind::SpikeArrest, spike_wait);
        }
        let counted = u64::from(refused.is_none());
        let report = |w: &WindowAsk, count: u64| WindowReport {
            limit: w.limit,
            remaining: w.limit.saturating_sub(count.saturating_add(counted)),
            reset_ms: w.end_ms,
        };
        Decision {
            rate: self.rate.as_ref().map(|w| report(w, rate_count)),
            quota: self.quota.as_ref().map(|w| report(w, quota_count)),
            refused,
        }
    }
}
