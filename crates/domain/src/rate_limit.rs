//! Rate limits: the policies, the decision, and the one algorithm that takes it — GCRA, the
//! generic cell rate algorithm — written as pure arithmetic so that the in-process limiter and
//! the Redis script (one atomic round trip per decision) compute exactly the same thing, and the
//! tests below can check it at any instant without a clock.
//!
//! # GCRA in four lines
//!
//! A policy allows `quota` requests per `window`: one every `interval = window / quota`, with a
//! burst of up to `quota` at once. Per key, one number is stored: the *theoretical arrival time*
//! (TAT), the moment the key's bucket would be full again if nothing else arrived. A request of
//! cost `n` at `now` moves it to `max(tat, now) + n·interval`; it is allowed if that lies at most
//! one `window` ahead of `now`. That is all: no counters to reset, no window boundary at which
//! `2·quota` slip through, and an exact "retry in" for the refused.
//!
//! Costs let one request count as many: a GraphQL operation is charged its cost, so 100 aliased
//! login attempts in one document cost 100.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Unexpected;

/// A named limit: `quota` requests per `window` (the `RateLimit-Policy` header's `q` and `w`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePolicy {
    /// The name clients see in the headers (`"ip"`, `"user"`, `"login"`).
    pub name: &'static str,
    /// Requests per window (at least 1).
    pub quota: u32,
    /// The window (at least one second).
    pub window: Duration,
}

impl RatePolicy {
    /// A policy of `quota` per `window` (each at least 1 and one second).
    #[must_use]
    pub fn new(name: &'static str, quota: u32, window: Duration) -> Self {
        Self {
            name,
            quota: quota.max(1),
            window: window.max(Duration::from_secs(1)),
        }
    }

    /// The time one unit of cost takes to drain, in microseconds (at least 1).
    #[must_use]
    pub fn interval_micros(&self) -> u64 {
        (micros(self.window) / u64::from(self.quota.max(1))).max(1)
    }

    /// The `RateLimit-Policy` item: `"ip";q=600;w=60`.
    #[must_use]
    pub fn header_item(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.quota,
            self.window.as_secs()
        )
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What a limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether it may go ahead (and was counted).
    pub allowed: bool,
    /// Requests of cost 1 still allowed right now (the header's `r`).
    pub remaining: u32,
    /// Until the key's allowance is whole again (the header's `t`, rounded up to seconds).
    pub reset: Duration,
    /// For a refusal: until this request would be allowed (`Retry-After`, rounded up). Zero when
    /// allowed.
    pub retry_after: Duration,
}

impl Decision {
    /// The `RateLimit` item for this decision under `policy`: `"ip";r=599;t=1`.
    #[must_use]
    pub fn header_item(&self, policy: &RatePolicy) -> String {
        format!(
            "\"{}\";r={};t={}",
            policy.name,
            self.remaining,
            ceil_secs(self.reset)
        )
    }

    /// `Retry-After` in whole seconds, never earlier than the moment the request would pass (at
    /// least 1).
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
}

/// Whole seconds, rounded up.
#[must_use]
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One GCRA step: the decision about a request of `cost` at `now_micros` for a key whose stored
/// TAT is `tat_micros` (None: never seen, or expired), and the TAT to store (None: leave it).
///
/// Every limiter implementation calls this, or computes the very same in its store (the Redis
/// script mirrors it line by line).
#[must_use]
pub fn gcra(
    policy: &RatePolicy,
    tat_micros: Option<u64>,
    now_micros: u64,
    cost: u32,
) -> (Decision, Option<u64>) {
    let interval = policy.interval_micros();
    let window = micros(policy.window);
    let tat = tat_micros.unwrap_or(now_micros).max(now_micros);
    let increment = interval.saturating_mul(u64::from(cost));
    let new_tat = tat.saturating_add(increment);
    let ahead = new_tat - now_micros;
    if ahead <= window {
        let remaining = (window - ahead) / interval;
        let decision = Decision {
            allowed: true,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(ahead),
            retry_after: Duration::ZERO,
        };
        (decision, Some(new_tat))
    } else {
        let current = tat - now_micros;
        let remaining = window.saturating_sub(current) / interval;
        // A cost above the whole quota can never pass: it is told to come back after a window.
        let retry = if increment > window {
            window
        } else {
            ahead - window
        };
        let decision = Decision {
            allowed: false,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(current),
            retry_after: Duration::from_micros(retry),
        };
        (decision, None)
    }
}

/// One step of a *fixed-window* count — the daily request quotas: `used` is what the key has
/// spent in the current window, `left_micros` how long until that window ends. Returns the
/// decision and the count to store (None: leave it; a refusal spends nothing).
///
/// Windows are calendar windows: they start at multiples of `policy.window` since the Unix epoch,
/// so a one-day window is a UTC day and every instance agrees on when it turns. Unlike GCRA, the
/// allowance does not trickle back: it is whole again when the next window starts, which is what
/// `reset` and `Retry-After` say.
#[must_use]
pub fn fixed_window(
    policy: &RatePolicy,
    used: u64,
    left_micros: u64,
    cost: u32,
) -> (Decision, Option<u64>) {
    let quota = u64::from(policy.quota);
    let reset = Duration::from_micros(left_micros.max(1));
    let after = used.saturating_add(u64::from(cost));
    if after <= quota {
        let decision = Decision {
            allowed: true,
            remaining: u32::try_from(quota - after).unwrap_or(u32::MAX),
            reset,
            retry_after: Duration::ZERO,
        };
        (decision, Some(after))
    } else {
        let decision = Decision {
            allowed: false,
            remaining: u32::try_from(quota.saturating_sub(used)).unwrap_or(u32::MAX),
            reset,
            retry_after: reset,
        };
        (decision, None)
    }
}

/// Which calendar window `unix_micros` falls in under `policy`, and how long until it ends.
#[must_use]
pub fn calendar_window(policy: &RatePolicy, unix_micros: u64) -> (u64, u64) {
    let window = micros(policy.window).max(1);
    let index = unix_micros / window;
    (index, window - unix_micros % window)
}

/// Where decisions are taken: in process, or in a store every instance shares.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Charges `cost` to `key` under `policy` and says whether the request may go ahead.
    ///
    /// # Errors
    /// The store could not answer (the caller decides what failing means: see the adapters).
    async fn check(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected>;

    /// Charges `cost` to `key`'s allowance of `policy.quota` per *calendar* window (see
    /// [`fixed_window`]): the daily request quotas.
    ///
    /// # Errors
    /// As [`RateLimiter::check`].
    async fn count(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    fn policy(quota: u32, window_secs: u64) -> RatePolicy {
        RatePolicy::new("test", quota, Duration::from_secs(window_secs))
    }

    /// Runs `n` requests of cost 1 at `now`, returning how many passed and the new TAT.
    fn burst(p: &RatePolicy, mut tat: Option<u64>, now: u64, n: u32) -> (u32, Option<u64>) {
        let mut passed = 0;
        for _ in 0..n {
            let (d, next) = gcra(p, tat, now, 1);
            if d.allowed {
                passed += 1;
                tat = next;
            }
        }
        (passed, tat)
    }

    #[test]
    fn exactly_the_quota_passes_at_once_and_the_next_is_refused() {
        let p = policy(10, 60);
        let mut tat = None;
        for expected_remaining in (0..10).rev() {
            let (d, next) = gcra(&p, tat, 0, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = next;
        }
        let (refused, untouched) = gcra(&p, tat, 0, 1);
        assert!(!refused.allowed);
        assert_eq!(untouched, None, "a refusal stores nothing");
        assert_eq!(refused.remaining, 0);
        // One interval (6 s) until one more fits; a full window until the quota is whole.
        assert_eq!(refused.retry_after, Duration::from_secs(6));
        assert_eq!(refused.retry_after_secs(), 6);
        assert_eq!(refused.reset, Duration::from_secs(60));
    }

    #[test]
    fn the_allowance_refills_at_the_policy_rate_and_is_whole_after_a_window() {
        let p = policy(10, 60);
        let (passed, tat) = burst(&p, None, 0, 10);
        assert_eq!(passed, 10);
        // 5.999 s later still nothing; at 6 s exactly one.
        assert_eq!(burst(&p, tat, 6 * SECOND - 1, 1).0, 0);
        assert_eq!(burst(&p, tat, 6 * SECOND, 5).0, 1);
        // After the window, the whole quota again, and no more.
        assert_eq!(burst(&p, tat, 60 * SECOND, 11).0, 10);
    }

    #[test]
    fn a_steady_client_at_the_rate_is_never_refused() {
        let p = policy(10, 60);
        let mut tat = None;
        for i in 0..100 {
            let (d, next) = gcra(&p, tat, i * 6 * SECOND, 1);
            assert!(d.allowed, "request {i}");
            tat = next;
        }
    }

    #[test]
    fn costs_are_charged_whole_and_an_impossible_cost_is_told_a_window() {
        let p = policy(100, 60);
        let (d, tat) = gcra(&p, None, 0, 100);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (refused, _) = gcra(&p, tat, 0, 1);
        assert!(!refused.allowed);
        let (too_big, stored) = gcra(&p, None, 0, 101);
        assert!(!too_big.allowed);
        assert_eq!(stored, None);
        assert_eq!(too_big.retry_after, Duration::from_secs(60));
        assert_eq!(too_big.remaining, 100, "nothing was charged");
    }

    #[test]
    fn a_stale_tat_counts_as_a_full_bucket() {
        let p = policy(3, 1);
        let (d, _) = gcra(&p, Some(5), 10 * SECOND, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn headers_follow_the_ietf_draft() {
        let p = RatePolicy::new("default", 100, Duration::from_secs(60));
        assert_eq!(p.header_item(), "\"default\";q=100;w=60");
        let (d, _) = gcra(&p, None, 0, 1);
        assert_eq!(d.header_item(&p), "\"default\";r=99;t=1");
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    #[test]
    fn extreme_values_neither_panic_nor_overflow() {
        let p = RatePolicy::new("x", 0, Duration::ZERO);
        assert_eq!((p.quota, p.window), (1, Duration::from_secs(1)));
        let huge = RatePolicy::new("x", u32::MAX, Duration::from_secs(u64::MAX / 2));
        let _ = gcra(&huge, Some(u64::MAX - 1), u64::MAX - 1, u32::MAX);
        let _ = gcra(&p, Some(u64::MAX), 0, u32::MAX);
    }

    #[test]
    fn a_fixed_window_allows_exactly_the_quota_then_refuses_until_it_turns() {
        let day = RatePolicy::new("day", 3, Duration::from_secs(86_400));
        let (index, left) = calendar_window(&day, 86_400 * SECOND * 10 + 3_600 * SECOND);
        assert_eq!(index, 10);
        assert_eq!(left, 23 * 3_600 * SECOND, "a UTC day turns at midnight");
        let mut used = 0;
        for remaining in [2, 1, 0] {
            let (d, next) = fixed_window(&day, used, left, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            assert_eq!(d.retry_after, Duration::ZERO);
            used = next.unwrap();
        }
        let (refused, next) = fixed_window(&day, used, left, 1);
        assert!(!refused.allowed);
        assert_eq!(next, None, "a refusal spends nothing");
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Duration::from_micros(left));
        assert_eq!(refused.retry_after_secs(), 23 * 3_600);
        // A cost that does not fit is refused whole, and spends nothing.
        let (d, next) = fixed_window(&day, 1, left, 3);
        assert!(!d.allowed);
        assert_eq!((d.remaining, next), (2, None));
        // Extremes neither panic nor overflow.
        let _ = fixed_window(&day, u64::MAX, 0, u32::MAX);
        assert!(calendar_window(&day, u64::MAX).1 > 0);
    }
}
