//! What a plan restricts: [`Restrictions`] with an optional [`RateLimit`], [`Quota`] and
//! [`SpikeArrest`]. Every value is valid by construction: the constructors and serde (through
//! the same checks) refuse out-of-range settings with a [`RestrictionsError`] that names the
//! field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest `limit` any restriction accepts.
const LIMIT_MAX: u64 = 1_000_000_000;
/// The longest `period_secs` a rate limit or spike arrest accepts: one day. Longer budgets are
/// quotas, whose windows follow the calendar.
const PERIOD_SECS_MAX: u64 = 86_400;

/// A restriction setting that is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid restriction `{field}`: {reason}")]
pub struct RestrictionsError {
    field: &'static str,
    reason: String,
}

impl RestrictionsError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }

    /// The offending field, as written in configs (`rate_limit.period_secs`, ...).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

fn check_limit(field: &'static str, limit: u64) -> Result<(), RestrictionsError> {
    if limit == 0 {
        return Err(RestrictionsError::new(
            field,
            "must be at least 1 (to refuse all traffic, close the plan)",
        ));
    }
    if limit > LIMIT_MAX {
        return Err(RestrictionsError::new(
            field,
            format!("must be at most {LIMIT_MAX}, got {limit}"),
        ));
    }
    Ok(())
}

fn check_period(field: &'static str, secs: u64) -> Result<(), RestrictionsError> {
    if secs == 0 || secs > PERIOD_SECS_MAX {
        return Err(RestrictionsError::new(
            field,
            format!("must be between 1 and {PERIOD_SECS_MAX} seconds, got {secs}"),
        ));
    }
    Ok(())
}

/// At most `limit` requests per fixed window of `period_secs` seconds, windows aligned on the
/// Unix epoch (so every gateway instance agrees on them).
///
/// ```
/// # use tower_jwt_plan::limit::RateLimit;
/// let per_minute = RateLimit::new(100, 60)?;
/// assert_eq!((per_minute.limit(), per_minute.period_secs()), (100, 60));
/// assert!(RateLimit::new(0, 60).is_err());
/// # Ok::<(), tower_jwt_plan::limit::RestrictionsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct RateLimit {
    limit: u64,
    period_secs: u64,
}

impl RateLimit {
    /// `limit` in 1..=1 000 000 000, `period_secs` in 1..=86 400.
    pub fn new(limit: u64, period_secs: u64) -> Result<Self, RestrictionsError> {
        check_limit("rate_limit.limit", limit)?;
        check_period("rate_limit.period_secs", period_secs)?;
        Ok(Self { limit, period_secs })
    }

    /// Requests allowed per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length in seconds.
    pub fn period_secs(&self) -> u64 {
        self.period_secs
    }
}

/// The calendar period of a [`Quota`], in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    /// From hh:00:00 to the next hour.
    Hour,
    /// From 00:00:00 UTC to the next midnight.
    Day,
    /// An ISO week: from Monday 00:00:00 UTC to the next Monday.
    Week,
    /// From the 1st at 00:00:00 UTC to the 1st of the next month.
    Month,
}

impl QuotaPeriod {
    /// The name used in configs (`hour`, `day`, `week`, `month`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// At most `limit` requests per calendar `period` (UTC).
///
/// ```
/// # use tower_jwt_plan::limit::{Quota, QuotaPeriod};
/// let monthly = Quota::new(1_000_000, QuotaPeriod::Month)?;
/// assert_eq!(monthly.period(), QuotaPeriod::Month);
/// # Ok::<(), tower_jwt_plan::limit::RestrictionsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawQuota")]
pub struct Quota {
    limit: u64,
    period: QuotaPeriod,
}

impl Quota {
    /// `limit` in 1..=1 000 000 000.
    pub fn new(limit: u64, period: QuotaPeriod) -> Result<Self, RestrictionsError> {
        check_limit("quota.limit", limit)?;
        Ok(Self { limit, period })
    }

    /// Requests allowed per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The calendar period.
    pub fn period(&self) -> QuotaPeriod {
        self.period
    }
}

/// At most one request every `period_secs / limit` seconds: bursts are smoothed, not allowed.
///
/// ```
/// # use std::time::Duration;
/// # use tower_jwt_plan::limit::SpikeArrest;
/// let ten_per_second = SpikeArrest::new(10, 1)?;
/// assert_eq!(ten_per_second.interval(), Duration::from_millis(100));
/// # Ok::<(), tower_jwt_plan::limit::RestrictionsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct SpikeArrest {
    limit: u64,
    period_secs: u64,
}

impl SpikeArrest {
    /// `limit` in 1..=1 000 000 000, `period_secs` in 1..=86 400.
    pub fn new(limit: u64, period_secs: u64) -> Result<Self, RestrictionsError> {
        check_limit("spike_arrest.limit", limit)?;
        check_period("spike_arrest.period_secs", period_secs)?;
        Ok(Self { limit, period_secs })
    }

    /// Requests per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period in seconds.
    pub fn period_secs(&self) -> u64 {
        self.period_secs
    }

    /// The smallest gap between two allowed requests: `period_secs / limit`, at least 1 ns.
    pub fn interval(&self) -> Duration {
        let nanos = u128::from(self.period_secs) * 1_000_000_000 / u128::from(self.limit);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX).max(1))
    }
}

/// The restrictions of one plan: each limit optional, all of them applied together.
///
/// A request passes only if every configured limit has room, and only then is it counted
/// against all of them: a refused request consumes nothing.
///
/// In TOML (the gateway's `[api.plan.restrictions]`):
///
/// ```
/// use tower_jwt_plan::limit::{QuotaPeriod, Restrictions};
///
/// let gold: Restrictions = toml::from_str(r#"
///     rate_limit = { limit = 100, period_secs = 1 }
///     quota = { limit = 1000000, period = "month" }
///     spike_arrest = { limit = 50, period_secs = 1 }
/// "#)?;
/// assert_eq!(gold.quota().map(|q| q.period()), Some(QuotaPeriod::Month));
///
/// let typo = toml::from_str::<Restrictions>("rate_limt = { limit = 1, period_secs = 1 }");
/// assert!(typo.is_err());
/// let zero = toml::from_str::<Restrictions>("rate_limit = { limit = 0, period_secs = 1 }");
/// assert!(zero.unwrap_err().to_string().contains("rate_limit.limit"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restrictions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota: Option<Quota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spike_arrest: Option<SpikeArrest>,
}

impl Restrictions {
    /// No restriction at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Set the rate limit.
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// Set the quota.
    #[must_use]
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Set the spike arrest.
    #[must_use]
    pub fn with_spike_arrest(mut self, spike_arrest: SpikeArrest) -> Self {
        self.spike_arrest = Some(spike_arrest);
        self
    }

    /// The rate limit, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// The quota, if any.
    pub fn quota(&self) -> Option<Quota> {
        self.quota
    }

    /// The spike arrest, if any.
    pub fn spike_arrest(&self) -> Option<SpikeArrest> {
        self.spike_arrest
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.rate_limit.is_none() && self.quota.is_none() && self.spike_arrest.is_none()
    }
}

/// The wire form of a rate limit or spike arrest, checked by the `TryFrom` impls.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    limit: u64,
    period_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    limit: u64,
    period: QuotaPeriod,
}

impl TryFrom<RawWindow> for RateLimit {
    type Error = RestrictionsError;
    fn try_from(raw: RawWindow) -> Result<Self, Self::Error> {
        Self::new(raw.limit, raw.period_secs)
    }
}

impl TryFrom<RawWindow> for SpikeArrest {
    type Error = RestrictionsError;
    fn try_from(raw: RawWindow) -> Result<Self, Self::Error> {
        Self::new(raw.limit, raw.period_secs)
    }
}

impl TryFrom<RawQuota> for Quota {
    type Error = RestrictionsError;
    fn try_from(raw: RawQuota) -> Result<Self, Self::Error> {
        Self::new(raw.limit, raw.period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_with_the_field_named() {
        assert_eq!(RateLimit::new(0, 1).unwrap_err().field(), "rate_limit.limit");
        assert_eq!(RateLimit::new(1, 0).unwrap_err().field(), "rate_limit.period_secs");
        assert_eq!(RateLimit::new(1, 86_401).unwrap_err().field(), "rate_limit.period_secs");
        assert_eq!(Quota::new(LIMIT_MAX + 1, QuotaPeriod::Day).unwrap_err().field(), "quota.limit");
        assert_eq!(SpikeArrest::new(0, 1).unwrap_err().field(), "spike_arrest.limit");
        assert!(RateLimit::new(LIMIT_MAX, PERIOD_SECS_MAX).is_ok());
        assert_eq!(SpikeArrest::new(LIMIT_MAX, 1).unwrap().interval(), Duration::from_nanos(1));
        assert_eq!(SpikeArrest::new(3, 1).unwrap().interval(), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn json_round_trip_and_strictness() {
        let r: Restrictions = serde_json::from_str(
            r#"{"rate_limit":{"limit":5,"period_secs":60},"quota":{"limit":10,"period":"week"}}"#,
        )
        .unwrap();
        assert_eq!(r.rate_limit(), Some(RateLimit::new(5, 60).unwrap()));
        assert_eq!(r.quota(), Some(Quota::new(10, QuotaPeriod::Week).unwrap()));
        assert!(r.spike_arrest().is_none());
        let back: Restrictions = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        for bad in [
            r#"{"rate_limit":{"limit":5,"period_secs":60,"burst":2}}"#,
            r#"{"quota":{"limit":5,"period":"year"}}"#,
            r#"{"quota":{"limit":-1,"period":"day"}}"#,
            r#"{"spike_arrest":{"limit":5}}"#,
            r#"{"spike_arrest":{"limit":5,"period_secs":0}}"#,
            r#"{"ratelimit":{}}"#,
        ] {
            assert!(serde_json::from_str::<Restrictions>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Restrictions>("{}").unwrap().is_empty());
    }
}
