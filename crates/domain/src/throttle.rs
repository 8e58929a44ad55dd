//! Sign-in throttling per account: exponential backoff after a few failures, then a temporary lock.
//!
//! The throttle is keyed by the email that was *submitted*, whether or not an account has it, so a
//! stranger learns nothing from being throttled. While a key is blocked, sign-in answers 429 with
//! `Retry-After` without looking at the password at all (no hash is computed: a flood on one
//! account costs nothing).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

/// How failures turn into waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed without any delay.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// After this many failures the key is locked for [`ThrottlePolicy::lock_duration`].
    pub lock_after: u32,
    /// How long a lock lasts.
    pub lock_duration: Duration,
    /// Failures older than this stop counting.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            lock_after: 10,
            lock_duration: Duration::from_secs(15 * 60),
            window: Duration::from_secs(60 * 60),
        }
    }
}

impl ThrottlePolicy {
    /// The default policy per client address: lenient (many people can share one address behind a
    /// NAT), but it stops one machine from walking through a list of accounts, each of which stays
    /// below its own account throttle.
    #[must_use]
    pub fn per_address() -> Self {
        Self {
            free_failures: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            lock_after: 100,
            lock_duration: Duration::from_secs(15 * 60),
            window: Duration::from_secs(60 * 60),
        }
    }

    /// How long to block after the `failures`-th failure in the window (zero: not blocked).
    #[must_use]
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures >= self.lock_after {
            return self.lock_duration;
        }
        if failures <= self.free_failures {
            return Duration::ZERO;
        }
        // 1 s, 2 s, 4 s, … capped; the exponent is bounded so the shift cannot overflow.
        let doublings = (failures - self.free_failures - 1).min(20);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// A throttle key: the SHA-256 of the normalised submitted email (see `bulwark-security`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ThrottleKey(pub [u8; 32]);

impl fmt::Debug for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ThrottleKey(..)")
    }
}

/// Derives throttle keys, so that neither submitted emails nor client addresses are stored in the
/// clear (`bulwark-security` hashes them).
pub trait ThrottleKeys: Send + Sync + fmt::Debug {
    /// The key of a submitted email: trimmed and lower-cased first, any text accepted.
    fn account(&self, submitted_email: &str) -> ThrottleKey;

    /// The key of a client address.
    fn address(&self, ip: IpAddr) -> ThrottleKey;
}

/// Storage of failure counts.
#[async_trait]
pub trait LoginThrottle: Send + Sync + fmt::Debug {
    /// How long the key is still blocked (`None`: not blocked).
    ///
    /// # Errors
    /// [`ThrottleStoreError`] when the store fails; sign-in is then refused (no fail-open).
    async fn blocked_for(&self, key: ThrottleKey) -> Result<Option<Duration>, ThrottleStoreError>;

    /// Counts a failure (atomically, also under concurrency) and blocks the key per `policy`.
    /// Returns the block now in force, if any.
    ///
    /// # Errors
    /// [`ThrottleStoreError`] when the store fails.
    async fn record_failure(
        &self,
        key: ThrottleKey,
        policy: ThrottlePolicy,
    ) -> Result<Option<Duration>, ThrottleStoreError>;

    /// Forgets the key's failures (after a successful sign-in).
    ///
    /// # Errors
    /// [`ThrottleStoreError`] when the store fails.
    async fn clear(&self, key: ThrottleKey) -> Result<(), ThrottleStoreError>;
}

/// The throttle store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the login throttle store is unavailable")]
pub struct ThrottleStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_are_free_then_delays_double_up_to_a_cap_then_a_lock() {
        let policy = ThrottlePolicy::default();
        let delays: Vec<u64> = (1..=11).map(|n| policy.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 32, 900, 900]);
        let capped = ThrottlePolicy {
            lock_after: 100,
            ..policy
        };
        assert_eq!(capped.delay_after(12).as_secs(), 60);
        assert_eq!(
            capped.delay_after(99).as_secs(),
            60,
            "no overflow on large counts"
        );
    }
}
