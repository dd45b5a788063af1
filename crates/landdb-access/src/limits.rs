//! Rate limits (a token bucket an agency) and daily feature quotas, counted in this process.
//! A day is a calendar day in Vietnam (UTC+7), when quotas start again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// Vietnam's time zone (no daylight saving).
fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset")
}

/// The day `at` falls on in Vietnam, and the time until the next one starts.
pub fn day_of(at: DateTime<Utc>) -> (NaiveDate, Duration) {
    let local = at.with_timezone(&vietnam());
    let day = local.date_naive();
    let next = day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t - local.naive_local());
    (day, next.and_then(|d| d.to_std().ok()).unwrap_or(Duration::from_secs(1)))
}

/// When the Vietnamese day of `at` began, in UTC.
pub fn day_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let (day, _) = day_of(at);
    day.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(vietnam()).single())
        .map_or(at, |t| t.with_timezone(&Utc))
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by agency: `rate` requests a second, bursts of up to `rate` (at least one).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes a token for `agency`, or says how long until one is there.
    pub fn take(&self, agency: &str, rate: f64, now: Instant) -> Result<(), Duration> {
        let capacity = rate.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = match buckets.get_mut(agency) {
            Some(b) => b,
            None => buckets.entry(agency.to_owned()).or_insert(Bucket { tokens: capacity, at: now }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate.max(f64::MIN_POSITIVE)))
        }
    }
}

/// A reservation the daily quota cannot meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// Features still left today.
    pub left: u64,
    pub until_tomorrow: Duration,
}

/// Features taken today by agency.
#[derive(Debug, Default)]
pub struct DailyQuota {
    used: Mutex<HashMap<String, (NaiveDate, u64)>>,
}

impl DailyQuota {
    /// What `agency` may still take today under `limit`, or how long until its quota starts again.
    pub fn remaining(&self, agency: &str, limit: u64, now: DateTime<Utc>) -> Result<u64, Duration> {
        let (day, until_tomorrow) = day_of(now);
        let used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = used.get(agency).filter(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
        match limit.saturating_sub(taken) {
            0 => Err(until_tomorrow),
            n => Ok(n),
        }
    }

    /// Takes `features` from what `agency` may still take today under `limit`, all or nothing,
    /// in one step: concurrent requests cannot together take more than the quota. `Err` says how
    /// much is left (nothing: how long until tomorrow).
    pub fn reserve(&self, agency: &str, features: u64, limit: u64, now: DateTime<Utc>) -> Result<(), Shortfall> {
        let (day, until_tomorrow) = day_of(now);
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The agency's name is copied once, not on every request.
        if !used.contains_key(agency) {
            used.insert(agency.to_owned(), (day, 0));
        }
        let Some(entry) = used.get_mut(agency) else { return Err(Shortfall { left: 0, until_tomorrow }) };
        if entry.0 != day {
            *entry = (day, 0);
        }
        let left = limit.saturating_sub(entry.1);
        if features > left {
            return Err(Shortfall { left, until_tomorrow });
        }
        entry.1 += features;
        Ok(())
    }

    /// Counts `features` against today.
    pub fn add(&self, agency: &str, features: u64, now: DateTime<Utc>) {
        let (day, _) = day_of(now);
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = used.entry(agency.to_owned()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        entry.1 += features;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_and_says_when_to_come_back() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.take("a", 5.0, t0).is_ok());
        }
        let wait = limiter.take("a", 5.0, t0).expect_err("sixth in the same instant");
        assert!(wait <= Duration::from_millis(200) && wait > Duration::ZERO);
        assert!(limiter.take("b", 5.0, t0).is_ok(), "agencies have their own buckets");
        assert!(limiter.take("a", 5.0, t0 + Duration::from_millis(200)).is_ok());
    }

    #[test]
    fn quotas_run_out_and_start_again_on_the_next_vietnamese_day() {
        let q = DailyQuota::default();
        // 16:59 UTC is 23:59 in Hà Nội.
        let late = DateTime::parse_from_rfc3339("2026-11-27T16:59:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(q.remaining("a", 100, late), Ok(100));
        q.add("a", 100, late);
        let wait = q.remaining("a", 100, late).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(60));
        assert_eq!(q.remaining("a", 100, late + chrono::Duration::minutes(2)), Ok(100));
        let began = DateTime::parse_from_rfc3339("2026-11-26T17:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(day_start(late), began, "midnight in Hà Nội is 17:00 UTC the day before");
    }

    #[test]
    fn concurrent_reservations_never_take_more_than_the_quota() {
        let q = std::sync::Arc::new(DailyQuota::default());
        let now = Utc::now();
        let granted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| {
                    for _ in 0..20 {
                        if q.reserve("a", 7, 120, now).is_ok() {
                            granted.fetch_add(7, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let granted = granted.into_inner();
        assert_eq!(granted, 119, "17 reservations of 7 fit in 120, and no more");
        assert_eq!(q.reserve("a", 2, 120, now).map_err(|s| s.left), Err(1));
        assert_eq!(q.reserve("a", 1, 120, now), Ok(()));
    }
}
