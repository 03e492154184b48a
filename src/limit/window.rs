//! Where a fixed window starts and ends: epoch-aligned for rate limits, UTC calendar for quotas.
//! All instants are Unix epoch milliseconds; windows are half-open `[start, end)`.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, Time};

use super::restrictions::QuotaPeriod;

/// Milliseconds since the Unix epoch; a clock before 1970 reads as 0.
pub(crate) fn epoch_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Microseconds since the Unix epoch; a clock before 1970 reads as 0.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn epoch_us(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The fixed window of `period_secs` containing `now_ms`, aligned on the epoch.
pub(crate) fn fixed(now_ms: u64, period_secs: u64) -> (u64, u64) {
    let period = period_secs.saturating_mul(1000).max(1);
    let start = now_ms - now_ms % period;
    (start, start.saturating_add(period))
}

/// The UTC calendar period containing `now_ms`.
pub(crate) fn calendar(now_ms: u64, period: QuotaPeriod) -> (u64, u64) {
    let secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let Ok(now) = OffsetDateTime::from_unix_timestamp(secs) else {
        // Beyond year 9999: one day-long window keeps the arithmetic total.
        return fixed(now_ms, 86_400);
    };
    let date = now.date();
    let (start, end) = match period {
        QuotaPeriod::Hour => {
            let start = date.with_hms(now.hour(), 0, 0).map(|d| d.assume_utc());
            (start.ok(), start.ok().map(|s| s + time::Duration::HOUR))
        }
        QuotaPeriod::Day => {
            let start = date.with_time(Time::MIDNIGHT).assume_utc();
            (Some(start), Some(start + time::Duration::DAY))
        }
        QuotaPeriod::Week => {
            let back = i64::from(date.weekday().number_days_from_monday());
            let start = (date - time::Duration::days(back)).with_time(Time::MIDNIGHT).assume_utc();
            (Some(start), Some(start + time::Duration::WEEK))
        }
        QuotaPeriod::Month => {
            let first = Date::from_calendar_date(date.year(), date.month(), 1).ok();
            let (year, month) = match date.month() {
                Month::December => (date.year() + 1, Month::January),
                m => (date.year(), m.next()),
            };
            let next = Date::from_calendar_date(year, month, 1).ok();
            (
                first.map(|d| d.with_time(Time::MIDNIGHT).assume_utc()),
                next.map(|d| d.with_time(Time::MIDNIGHT).assume_utc()),
            )
        }
    };
    match (start, end) {
        (Some(start), Some(end)) => (to_ms(start), to_ms(end)),
        _ => fixed(now_ms, 86_400),
    }
}

fn to_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0).saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        let t =
            OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
        to_ms(t)
    }

    #[test]
    fn fixed_windows_align_on_the_epoch() {
        assert_eq!(fixed(61_500, 60), (60_000, 120_000));
        assert_eq!(fixed(60_000, 60), (60_000, 120_000));
        assert_eq!(fixed(59_999, 60), (0, 60_000));
        assert_eq!(fixed(1_234, 1), (1_000, 2_000));
    }

    #[test]
    fn calendar_windows_follow_utc_boundaries() {
        let now = ms("2024-02-29T13:45:10Z") + 123; // a Thursday in a leap February
        assert_eq!(
            calendar(now, QuotaPeriod::Hour),
            (ms("2024-02-29T13:00:00Z"), ms("2024-02-29T14:00:00Z"))
        );
        assert_eq!(
            calendar(now, QuotaPeriod::Day),
            (ms("2024-02-29T00:00:00Z"), ms("2024-03-01T00:00:00Z"))
        );
        assert_eq!(
            calendar(now, QuotaPeriod::Week),
            (ms("2024-02-26T00:00:00Z"), ms("2024-03-04T00:00:00Z"))
        );
        assert_eq!(
            calendar(now, QuotaPeriod::Month),
            (ms("2024-02-01T00:00:00Z"), ms("2024-03-01T00:00:00Z"))
        );
        let dec = ms("2023-12-31T23:59:59Z");
        assert_eq!(
            calendar(dec, QuotaPeriod::Month),
            (ms("2023-12-01T00:00:00Z"), ms("2024-01-01T00:00:00Z"))
        );
        // A Monday at midnight starts its own week.
        let monday = ms("2024-03-04T00:00:00Z");
        assert_eq!(calendar(monday, QuotaPeriod::Week).0, monday);
        assert_eq!(calendar(monday - 1, QuotaPeriod::Week).1, monday);
    }
}
