//! Rate limits (a token bucket an agency, counted in this process) and daily feature quotas
//! (counted in the store, shared by every server process, and leased to each in shares). A day
//! is a calendar day in Vietnam (UTC+7), when quotas start again.

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

/// A request to the count every server process shares (the store's): part of an agency's quota
/// for a day, for this process to hand out without asking again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLease {
    pub agency: String,
    pub day: NaiveDate,
    /// When that day began (UTC): where the day's count starts from when the store has none yet.
    pub since: DateTime<Utc>,
    /// At least this many, or nothing.
    pub need: u64,
    /// At most this many.
    pub want: u64,
    /// The agency's quota for the day.
    pub limit: u64,
}

/// What the shared count granted, and what is left in it after the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leased {
    pub granted: u64,
    pub left: u64,
}

impl QuotaLease {
    /// A lease of `agency`'s quota `limit` for the Vietnamese day of `now`: at least `need`,
    /// at most `want`.
    pub fn today(agency: &str, now: DateTime<Utc>, need: u64, want: u64, limit: u64) -> QuotaLease {
        QuotaLease { agency: agency.to_owned(), day: day_of(now).0, since: day_start(now), need, want, limit }
    }

    /// What a count at `taken` grants: as much as wanted, as far as the quota goes, or nothing
    /// when less than what is needed is left. The store applies it under its lock.
    pub fn grant(&self, taken: u64) -> Leased {
        let left = self.limit.saturating_sub(taken);
        if left < self.need {
            return Leased { granted: 0, left };
        }
        let granted = self.want.max(self.need).min(left);
        Leased { granted, left: left - granted }
    }
}

/// How much of its quota a process leases at a time beyond what a request needs: a
/// sixty-fourth of the quota, so that a busy agency costs the store one round trip per
/// sixty-fourth of its day, and what a process holds unused (given back when it stops, lost
/// when it dies) is a small part of the day.
pub fn lease_size(need: u64, limit: u64) -> u64 {
    need.max(limit.div_ceil(64))
}

/// The share of each agency's daily quota this process holds: leased from the store's shared
/// count (so that several processes together never pass the quota) and handed out here without
/// a round trip.
#[derive(Debug, Default)]
pub struct DailyQuota {
    held: Mutex<HashMap<String, Held>>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    day: NaiveDate,
    /// Leased from the store and not yet sent.
    leased: u64,
    /// Left in the store's count when this process last asked (None: not asked today).
    in_store: Option<u64>,
}

/// A reservation this process cannot make from what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    /// How many more it needs to lease.
    pub by: u64,
}

impl DailyQuota {
    /// What `agency` may still take today under `limit` as far as this process knows (what it
    /// holds and what the store had left when last asked), or how long until its quota starts
    /// again.
    pub fn remaining(&self, agency: &str, limit: u64, now: DateTime<Utc>) -> Result<u64, Duration> {
        let (day, until_tomorrow) = day_of(now);
        let held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let left = match held.get(agency).filter(|h| h.day == day) {
            Some(h) => h.leased + h.in_store.unwrap_or(limit),
            None => limit,
        };
        match left.min(limit) {
            0 => Err(until_tomorrow),
            n => Ok(n),
        }
    }

    /// Takes `features` from what this process holds for `agency` today, all or nothing, in one
    /// step; `Err` says how many more it must lease first.
    pub fn take_held(&self, agency: &str, features: u64, now: DateTime<Utc>) -> Result<(), Short> {
        let (day, _) = day_of(now);
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let leased = match held.get_mut(agency) {
            Some(h) if h.day == day => &mut h.leased,
            _ if features == 0 => return Ok(()),
            _ => return Err(Short { by: features }),
        };
        if *leased < features {
            return Err(Short { by: features - *leased });
        }
        *leased -= features;
        Ok(())
    }

    /// Adds what the store granted `agency` for `day` to what this process holds.
    pub fn hold(&self, agency: &str, day: NaiveDate, leased: Leased) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = Held { day, leased: 0, in_store: None };
        // The agency's name is copied once, not on every lease.
        if !held.contains_key(agency) {
            held.insert(agency.to_owned(), fresh);
        }
        if let Some(h) = held.get_mut(agency) {
            if h.day != day {
                *h = fresh;
            }
            h.leased += leased.granted;
            h.in_store = Some(leased.left);
        }
    }

    /// What this process holds and has not sent, by agency and day, now emptied: to give back
    /// to the store when the process stops.
    pub fn release_all(&self) -> Vec<(String, NaiveDate, u64)> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.iter_mut()
            .filter(|(_, h)| h.leased > 0)
            .map(|(agency, h)| (agency.clone(), h.day, std::mem::take(&mut h.leased)))
            .collect()
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
        let (day, _) = day_of(late);
        assert_eq!(q.remaining("a", 100, late), Ok(100), "not asked yet: the whole quota, as far as it knows");
        q.hold("a", day, Leased { granted: 100, left: 0 });
        assert_eq!(q.take_held("a", 100, late), Ok(()));
        let wait = q.remaining("a", 100, late).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(60));
        let tomorrow = late + chrono::Duration::minutes(2);
        assert_eq!(q.remaining("a", 100, tomorrow), Ok(100));
        assert_eq!(q.take_held("a", 1, tomorrow), Err(Short { by: 1 }), "yesterday's lease is not today's");
        let began = DateTime::parse_from_rfc3339("2026-11-26T17:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(day_start(late), began, "midnight in Hà Nội is 17:00 UTC the day before");
    }

    #[test]
    fn concurrent_takes_never_pass_what_is_held() {
        let q = std::sync::Arc::new(DailyQuota::default());
        let now = Utc::now();
        q.hold("a", day_of(now).0, Leased { granted: 120, left: 0 });
        let granted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| {
                    for _ in 0..20 {
                        if q.take_held("a", 7, now).is_ok() {
                            granted.fetch_add(7, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let granted = granted.into_inner();
        assert_eq!(granted, 119, "17 takes of 7 fit in 120, and no more");
        assert_eq!(q.take_held("a", 2, now), Err(Short { by: 1 }));
        assert_eq!(q.release_all(), vec![("a".to_owned(), day_of(now).0, 1)], "the one left goes back");
        assert_eq!(q.take_held("a", 1, now), Err(Short { by: 1 }), "and is no longer held");
    }

    proptest::proptest! {
        #[test]
        fn a_grant_never_passes_the_quota(taken in 0u64..1_000, need in 0u64..300, want in 0u64..300, limit in 0u64..1_000) {
            let lease = QuotaLease { agency: "a".into(), day: day_of(Utc::now()).0, since: Utc::now(), need, want, limit };
            let Leased { granted, left } = lease.grant(taken);
            let was_left = limit.saturating_sub(taken);
            proptest::prop_assert!(granted <= was_left, "never past the quota");
            proptest::prop_assert_eq!(granted + left, was_left, "what is left is what was left less the grant");
            if was_left >= need {
                proptest::prop_assert!(granted >= need, "what is needed, when it is there");
                proptest::prop_assert_eq!(granted, want.max(need).min(was_left));
            } else {
                proptest::prop_assert_eq!(granted, 0, "all or nothing");
            }
        }
    }
}
