//! The in-memory counter store: one small slot per counted subject in a bounded cache whose
//! entries expire once idle for their longest window.
//!
//! A slot holds the subject's fixed-window counts and its spike-arrest GCRA (a `governor`
//! direct limiter driven by the layer's clock) behind one mutex, so the check of all limits
//! and the increment of all counters are one atomic step, held for a few hundred nanoseconds
//! and never across an await.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as GcraQuota, RateLimiter};

use super::Clock;
use super::decision::{Ask, Decision, WindowAsk};

/// The default number of subjects (subscriptions, or claim values) counted in memory.
const DEFAULT_MAX_SUBJECTS: u64 = 100_000;

/// Settings of the in-memory counters, used alone (the default) or as the fallback of a
/// Redis store.
///
/// The cache is bounded: past [`max_subjects`](Self::max_subjects) the least useful slots are
/// evicted, and an evicted subject starts a fresh budget (still limited, never unlimited).
/// Size it above the number of subjects active within your longest window.
#[derive(Debug, Clone, Copy)]
pub struct MemoryStore {
    max_subjects: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { max_subjects: DEFAULT_MAX_SUBJECTS }
    }
}

impl MemoryStore {
    /// Default settings: at most 100 000 subjects.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many subjects are counted at most. Default: 100 000. Values below 1 count as 1.
    #[must_use]
    pub fn max_subjects(mut self, max: u64) -> Self {
        self.max_subjects = max.max(1);
        self
    }

    pub(crate) fn build(self, clock: Clock) -> MemoryCounters {
        let cache = moka::sync::Cache::builder()
            .max_capacity(self.max_subjects)
            .expire_after(IdleFor)
            .build();
        MemoryCounters { cache, clock }
    }
}

/// `governor`'s view of the layer's clock, so a pinned clock pins the GCRA too.
#[derive(Clone)]
struct GcraClock(Clock);

impl GovernorClock for GcraClock {
    type Instant = SystemTime;
    fn now(&self) -> SystemTime {
        (self.0)()
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, GcraClock, NoOpMiddleware<SystemTime>>;

#[derive(Default)]
struct Slot {
    rate: Option<Count>,
    quota: Option<Count>,
    spike: Option<(Duration, Gcra)>,
}

/// The count of one fixed window, identified by its bounds.
#[derive(Clone, Copy)]
struct Count {
    start_ms: u64,
    end_ms: u64,
    count: u64,
}

impl Count {
    fn current(slot: &Option<Count>, window: &WindowAsk) -> u64 {
        slot.filter(|c| c.start_ms == window.start_ms && c.end_ms == window.end_ms)
            .map_or(0, |c| c.count)
    }
}

struct Cell {
    idle_ttl: Duration,
    slot: Mutex<Slot>,
}

struct IdleFor;

impl moka::Expiry<String, Arc<Cell>> for IdleFor {
    fn expire_after_create(
        &self,
        _: &String,
        cell: &Arc<Cell>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(cell.idle_ttl)
    }

    fn expire_after_read(
        &self,
        _: &String,
        cell: &Arc<Cell>,
        _: std::time::Instant,
        _: Option<Duration>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(cell.idle_ttl)
    }
}

/// The live in-memory counters of one layer (and its clones).
#[derive(Clone)]
pub(crate) struct MemoryCounters {
    cache: moka::sync::Cache<String, Arc<Cell>>,
    clock: Clock,
}

impl MemoryCounters {
    /// Judge one request and, if it passes, count it against every limit.
    pub(crate) fn decide(&self, ask: &Ask) -> Decision {
        let ttl = ask.ttl();
        let cell = self.cache.get_with_by_ref(ask.subject.as_str(), || {
            Arc::new(Cell { idle_ttl: ttl, slot: Mutex::new(Slot::default()) })
        });
        let mut slot = cell.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let rate_count = ask.rate.as_ref().map_or(0, |w| Count::current(&slot.rate, w));
        let quota_count = ask.quota.as_ref().map_or(0, |w| Count::current(&slot.quota, w));
        let windows_allow = ask.rate.as_ref().is_none_or(|w| rate_count < w.limit)
            && ask.quota.as_ref().is_none_or(|w| quota_count < w.limit);
        // The GCRA consumes a slot when it allows, so it is asked only once the windows agree.
        let spike_wait = match ask.spike {
            Some(spike) if windows_allow => {
                let interval = spike.interval();
                if slot.spike.as_ref().is_none_or(|(i, _)| *i != interval) {
                    slot.spike = Some((interval, self.gcra(interval)));
                }
                match slot.spike.as_ref().map(|(_, gcra)| gcra.check()) {
                    Some(Err(not_until)) => {
                        not_until.wait_time_from((self.clock)()).max(Duration::from_nanos(1))
                    }
                    _ => Duration::ZERO,
                }
            }
            _ => Duration::ZERO,
        };
        let decision = ask.judge(rate_count, quota_count, spike_wait);
        if decision.refused.is_none() {
            if let Some(w) = &ask.rate {
                slot.rate =
                    Some(Count { start_ms: w.start_ms, end_ms: w.end_ms, count: rate_count + 1 });
            }
            if let Some(w) = &ask.quota {
                slot.quota =
                    Some(Count { start_ms: w.start_ms, end_ms: w.end_ms, count: quota_count + 1 });
            }
        }
        decision
    }

    fn gcra(&self, interval: Duration) -> Gcra {
        // `interval` is at least 1 ns by construction of `SpikeArrest`, so `with_period` is Some.
        let quota = GcraQuota::with_period(interval)
            .unwrap_or_else(|| GcraQuota::per_second(std::num::NonZeroU32::MAX))
            .allow_burst(std::num::NonZeroU32::MIN);
        RateLimiter::direct_with_clock(quota, GcraClock(self.clock.clone()))
    }
}
