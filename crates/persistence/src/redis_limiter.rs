//! The shared rate limiter: the domain's GCRA ([`bulwark_domain::rate_limit::gcra`]) taken in
//! Redis, so that N instances behind one load balancer share one allowance per key — together
//! they let at most `quota` requests through per window, where N in-process limiters would let
//! `N·quota` through.
//!
//! Each decision is **one Lua script** in one round trip: `EVALSHA`, or on the process's first
//! check `EVAL` pipelined with `SCRIPT LOAD` (which tells the SHA1); a server that has forgotten
//! the script (restarted, `SCRIPT FLUSH`) answers `NOSCRIPT` and is sent the `EVAL` at once. Redis
//! runs a script alone, so the read of the stored TAT, the arithmetic and the write are atomic —
//! no lost update between two instances charging the same key. The script reads the time
//! from the server (`TIME`), not from the instance: instances whose clocks disagree still take
//! the same decisions. Its arithmetic is the domain's line by line, in integer microseconds, and
//! the tests below check it against `gcra` itself.
//!
//! Memory stays bounded: one key per (policy, client key) — `<prefix>:rl:<policy>:<key>`,
//! holding the TAT — and only an allowed request writes it, with `PX` set to the moment the
//! bucket is whole again (plus a millisecond), after which the key is worth exactly what a
//! missing one is and Redis drops it. A flood of refused requests writes nothing.
//!
//! When Redis cannot answer — down, unreachable, or slower than the timeout (250 ms by default,
//! connecting included) — [`RateLimiter::check`] returns `Err` promptly and never panics; the
//! application then decides in process (`FallbackLimiter` in `crates/web/src/rate_limit.rs`), so
//! a Redis outage neither fails requests nor lifts the limits. A check that timed out may still
//! be counted when a slow Redis gets to it (the error is on the strict side). The connection (a
//! `redis` `ConnectionManager`, made on first use) reconnects by itself. The URL may hold a
//! password, so it is never logged, and neither this type's `Debug` nor its errors show it.
//!
//! # Precision
//!
//! Lua numbers in Redis are doubles, exact for integers below 2^53 (9.007e15). A timestamp in
//! microseconds is about 1.8e15 today (2^52 is reached in the year 2112), so the arguments are
//! clamped to keep every intermediate value below 2^53: the window to 2^50 µs (35 years; only a
//! longer window decides differently from the domain) and the cost to `window / interval + 1`,
//! which changes no decision — any cost whose increment exceeds the window is refused with
//! "retry in one window", whatever its size. The stored TAT is then at most `now + window` and
//! `tat + increment` at most `now + 3·2^50`, below 2^53 until the year 2148. Numbers are written
//! back with `%.0f` (Lua's `tostring` keeps only 14 digits), and the floor of a quotient of two
//! such integers is exact (their sum is below 2^53).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::error::Unexpected;
use bulwark_domain::rate_limit::{Decision, RateLimiter, RatePolicy};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::OnceCell;

pub use crate::redis_fanout::RedisUrlError;
use crate::redis_fanout::client;

/// How long one decision may take, connecting included, unless
/// [`RedisRateLimiter::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// The longest window the script takes exactly (2^50 µs, about 35 years): see the module's
/// precision note.
const MAX_WINDOW_MICROS: u64 = 1 << 50;

/// GCRA, as `bulwark_domain::rate_limit::gcra`, in integer microseconds on the server's clock.
///
/// `KEYS[1]`: the bucket. `ARGV`: window, interval, cost — decimal integers, already clamped
/// (see [`Arguments::of`]). Returns `{allowed (1|0), remaining, reset µs, retry_after µs}`.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local window = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil or tat ~= tat or tat < 0 or tat >= 9007199254740992 then tat = now end
if tat < now then tat = now end
local increment = interval * cost
local new_tat = tat + increment
local ahead = new_tat - now
if ahead <= window then
  local ttl = math.ceil(ahead / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl))
  return {1, math.floor((window - ahead) / interval), ahead, 0}
end
local current = tat - now
local left = window - current
if left < 0 then left = 0 end
local retry = ahead - window
if increment > window then retry = window end
return {0, math.floor(left / interval), current, retry}
";

/// The daily quotas' fixed-window count, as `bulwark_domain::rate_limit::fixed_window`, on the
/// server's clock: windows are calendar windows of `window` seconds since the Unix epoch (UTC
/// days), so every instance agrees on when one turns.
///
/// `KEYS[1]`: the counter, holding `"<window index>:<used>"` — a count of an earlier window reads
/// as zero, so the answer never depends on when Redis gets round to expiring the key (`PX` frees
/// it when its window ends). `ARGV`: window seconds, quota, cost. Returns `{allowed (1|0),
/// remaining, µs until the window turns, retry_after µs}`. A refusal writes nothing.
const QUOTA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local window = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local secs = tonumber(clock[1])
local index = math.floor(secs / window)
local left = (index + 1) * window * 1000000 - (secs * 1000000 + tonumber(clock[2]))
if left < 1 then left = 1 end
local used = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local at, count = string.match(stored, '^(%d+):(%d+)$')
  if at and tonumber(at) == index then used = tonumber(count) end
end
if used + cost <= quota then
  used = used + cost
  local ttl = math.ceil(left / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', index, used), 'PX', string.format('%.0f', ttl))
  return {1, quota - used, left, 0}
end
local remaining = quota - used
if remaining < 0 then remaining = 0 end
return {0, remaining, left, left}
";

/// A Lua script and its SHA1 once a server has told it (the same for every server and every
/// limiter of the process, since it is the hash of the script).
struct Script {
    text: &'static str,
    sha: OnceLock<String>,
}

static GCRA_SCRIPT: Script = Script {
    text: SCRIPT,
    sha: OnceLock::new(),
};

static COUNT_SCRIPT: Script = Script {
    text: QUOTA_SCRIPT,
    sha: OnceLock::new(),
};

/// The longest quota window the count script takes (a year, in seconds): keeps its arithmetic
/// exact in a double.
const MAX_QUOTA_WINDOW_SECS: u64 = 366 * 86_400;

/// Why a [`RedisRateLimiter`] could not be made. None of these show the URL.
#[derive(Debug, thiserror::Error)]
pub enum RedisLimiterError {
    /// The URL or the CA certificates are not ones this crate's Redis adapters take.
    #[error(transparent)]
    Url(#[from] RedisUrlError),
    /// The key prefix is empty.
    #[error("the Redis key prefix is empty")]
    EmptyPrefix,
}

/// Why one decision could not be taken (the source of the [`Unexpected`] returned).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("redis did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the rate limit script answered something other than a decision")]
    Malformed,
}

/// A [`RateLimiter`] whose decisions are taken in Redis, shared by every instance that uses the
/// same Redis and prefix.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisRateLimiter {
    client: redis::Client,
    prefix: Arc<str>,
    timeout: Duration,
    /// Made on the first check (it needs a runtime); reconnects by itself afterwards.
    connection: Arc<OnceCell<ConnectionManager>>,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: it knows the address and the credentials.
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter over the Redis at `url` (`redis[s]://[user][:password@]host[:port][/db]`), keeping
    /// its keys under `<prefix>:rl:` — instances share allowances exactly when they share the
    /// Redis, the database and the prefix.
    ///
    /// Only parses: no network I/O and no runtime needed here, so an unreachable Redis is not an
    /// error now (each check then fails, quickly).
    ///
    /// # Errors
    /// [`RedisLimiterError`] when the URL does not parse or is not a `redis://` or `rediss://` TCP
    /// URL, or the prefix is empty. The error never quotes the URL.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<Self, RedisLimiterError> {
        Self::with_root_certs(url, None, prefix)
    }

    /// [`RedisRateLimiter::new`] for a `rediss://` server whose certificate is issued by a CA of
    /// `root_certs` (PEM; they replace the well-known CAs), when given.
    ///
    /// # Errors
    /// As [`RedisRateLimiter::new`], and [`RedisUrlError::RootCerts`] when `root_certs` holds
    /// no PEM certificate or the URL is not `rediss://`.
    pub fn with_root_certs(
        url: &str,
        root_certs: Option<&[u8]>,
        prefix: impl Into<String>,
    ) -> Result<Self, RedisLimiterError> {
        let prefix: String = prefix.into();
        if prefix.is_empty() {
            return Err(RedisLimiterError::EmptyPrefix);
        }
        let client = client(url, root_certs)?;
        Ok(Self {
            client,
            prefix: prefix.into(),
            timeout: DEFAULT_TIMEOUT,
            connection: Arc::new(OnceCell::new()),
        })
    }

    /// The same limiter, each check bounded by `timeout` (at least a millisecond) instead of
    /// [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one check may take.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The prefix of every key this limiter writes.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:<kind>:<policy>:<key>`: `rl` for the rate limits, `q` for the quotas.
    fn bucket(&self, kind: &str, policy: &str, key: &str) -> String {
        let mut bucket =
            String::with_capacity(self.prefix.len() + kind.len() + policy.len() + key.len() + 3);
        bucket.push_str(&self.prefix);
        bucket.push(':');
        bucket.push_str(kind);
        bucket.push(':');
        bucket.push_str(policy);
        bucket.push(':');
        bucket.push_str(key);
        bucket
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        self.connection
            .get_or_try_init(|| async {
                // Lazy: connects on the first command, inside the caller's timeout. The manager's
                // own bounds govern its reconnection in the background.
                ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(1)))
                        .set_response_timeout(Some(Duration::from_secs(1)))
                        .set_number_of_retries(3)
                        .set_max_delay(Duration::from_secs(1)),
                )
            })
            .await
            .cloned()
    }

    /// Runs a script on `bucket`: `EVALSHA` when its SHA1 is known, else (or when the server
    /// has forgotten it) `EVAL`, pipelined with `SCRIPT LOAD` to learn the SHA1.
    async fn run(
        &self,
        script: &Script,
        bucket: &str,
        arguments: [u64; 3],
    ) -> Result<Vec<i64>, Failure> {
        let mut connection = self.connection().await?;
        if let Some(sha) = script.sha.get() {
            let reply = redis::cmd("EVALSHA")
                .arg(sha.as_str())
                .arg(1)
                .arg(bucket)
                .arg(&arguments[..])
                .query_async(&mut connection)
                .await;
            match reply {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {}
                other => return Ok(other?),
            }
        }
        let (sha, reply): (String, Vec<i64>) = redis::pipe()
            .cmd("SCRIPT")
            .arg("LOAD")
            .arg(script.text)
            .cmd("EVAL")
            .arg(script.text)
            .arg(1)
            .arg(bucket)
            .arg(&arguments[..])
            .query_async(&mut connection)
            .await?;
        // Concurrent first checks may race here; they all learned the same SHA1.
        let _ = script.sha.set(sha);
        Ok(reply)
    }

    /// One decision: the script's answer within the timeout.
    async fn decide(
        &self,
        script: &Script,
        bucket: &str,
        arguments: [u64; 3],
    ) -> Result<Decision, Unexpected> {
        const WHAT: &str = "rate limit check in redis";
        let reply = tokio::time::timeout(self.timeout, self.run(script, bucket, arguments))
            .await
            .map_err(|_| Unexpected::new(WHAT, Failure::TimedOut(self.timeout)))?
            .map_err(|error| Unexpected::new(WHAT, error))?;
        decision(&reply).ok_or_else(|| Unexpected::new(WHAT, Failure::Malformed))
    }
}

/// The script's arguments for a policy and a cost, clamped so that every intermediate value is
/// exact in a double (see the module's precision note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arguments {
    window: u64,
    interval: u64,
    cost: u64,
}

impl Arguments {
    fn of(policy: &RatePolicy, cost: u32) -> Self {
        let window = u64::try_from(policy.window.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_WINDOW_MICROS);
        // As `RatePolicy::interval_micros` (equal for any window up to the clamp); `max(1)` on
        // the quota too, as the fields are public.
        let interval = (window / u64::from(policy.quota.max(1))).max(1);
        // Any increment above the window is refused with "retry in one window" and stores
        // nothing, so the smallest such cost decides the same as a larger one.
        let cost = u64::from(cost).min(window / interval + 1);
        Self {
            window,
            interval,
            cost,
        }
    }
}

/// The script's answer as a [`Decision`], or `None` when it is not one.
fn decision(reply: &[i64]) -> Option<Decision> {
    let &[allowed, remaining, reset, retry_after] = reply else {
        return None;
    };
    let allowed = match allowed {
        1 => true,
        0 => false,
        _ => return None,
    };
    let micros = |value: i64| u64::try_from(value).ok().map(Duration::from_micros);
    Some(Decision {
        allowed,
        // As the domain: a count beyond u32 (absurd policies only) reads as u32::MAX.
        remaining: u32::try_from(u64::try_from(remaining).ok()?).unwrap_or(u32::MAX),
        reset: micros(reset)?,
        retry_after: micros(retry_after)?,
    })
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        let a = Arguments::of(policy, cost);
        let bucket = self.bucket("rl", policy.name, key);
        self.decide(&GCRA_SCRIPT, &bucket, [a.window, a.interval, a.cost])
            .await
    }

    async fn count(
        &self,
        policy: &RatePolicy,
        key: &str,
        cost: u32,
    ) -> Result<Decision, Unexpected> {
        let window = policy.window.as_secs().clamp(1, MAX_QUOTA_WINDOW_SECS);
        let quota = u64::from(policy.quota);
        // A cost above the quota is refused whatever its size.
        let cost = u64::from(cost).min(quota + 1);
        let bucket = self.bucket("q", policy.name, key);
        self.decide(&COUNT_SCRIPT, &bucket, [window, quota, cost])
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use bulwark_domain::rate_limit::gcra;
    use redis::aio::MultiplexedConnection;
    use tokio::task::JoinSet;
    use tokio::time::{Instant, sleep, timeout};
    use uuid::Uuid;

    use super::*;
    use crate::test_redis::{OwnRedis, free_port};

    fn redis_url() -> String {
        std::env::var("BULWARK_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    /// A prefix of this test's own, so parallel tests never share a key.
    fn own_prefix() -> String {
        String::from("bulwark-test-") + &Uuid::new_v4().to_string()
    }

    /// A limiter on the test Redis, with a timeout generous enough for a loaded test machine.
    fn limiter(prefix: &str) -> RedisRateLimiter {
        RedisRateLimiter::new(&redis_url(), prefix)
            .unwrap()
            .with_timeout(Duration::from_secs(5))
    }

    async fn plain() -> MultiplexedConnection {
        redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    fn policy(quota: u32, window_secs: u64) -> RatePolicy {
        RatePolicy::new("test", quota, Duration::from_secs(window_secs))
    }

    /// `a` is at most `by` below `b` (and not above it): a Redis answer taken up to `by` after
    /// the instant the domain's was computed at.
    fn at_most_earlier(a: Duration, b: Duration, by: Duration) -> bool {
        a <= b && b - a <= by
    }

    #[tokio::test]
    async fn a_burst_is_decided_exactly_as_the_domain_decides_it() {
        for (quota, window) in [(5, 1), (10, 60), (100, 60), (3, 1)] {
            let p = policy(quota, window);
            // The domain's answers for the same burst on a fresh key, all at one instant.
            let mut tat = None;
            let expected: Vec<Decision> = (0..quota + 3)
                .map(|_| {
                    let (d, next) = gcra(&p, tat, 0, 1);
                    tat = next.or(tat);
                    d
                })
                .collect();

            let interval = Duration::from_micros(p.interval_micros());
            let mut attempts = 0;
            let (got, elapsed) = loop {
                let limiter = limiter(&own_prefix());
                let key = Uuid::new_v4().to_string();
                let started = Instant::now();
                let mut got = Vec::new();
                for _ in 0..quota + 3 {
                    got.push(limiter.check(&p, &key, 1).await.unwrap());
                }
                let elapsed = started.elapsed();
                // A burst slower than an interval legitimately sees a slot refill: try again.
                attempts += 1;
                if elapsed < interval / 2 || attempts == 5 {
                    break (got, elapsed);
                }
            };
            assert!(
                elapsed < interval / 2,
                "the machine is too slow for this test"
            );

            let allowed: Vec<u32> = got
                .iter()
                .filter(|d| d.allowed)
                .map(|d| d.remaining)
                .collect();
            assert_eq!(allowed, (0..quota).rev().collect::<Vec<_>>(), "{p:?}");
            for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(got.allowed, want.allowed, "{p:?} request {i}");
                assert_eq!(got.remaining, want.remaining, "{p:?} request {i}");
                assert!(
                    at_most_earlier(got.reset, want.reset, elapsed),
                    "{p:?} request {i}: {got:?} {want:?}"
                );
                assert!(
                    at_most_earlier(got.retry_after, want.retry_after, elapsed),
                    "{p:?} request {i}: {got:?} {want:?}"
                );
                if !got.allowed {
                    assert!(got.retry_after > Duration::ZERO && got.retry_after <= p.window);
                }
            }
        }
    }

    #[tokio::test]
    async fn costs_are_charged_whole_and_an_impossible_cost_stores_nothing() {
        let p = policy(10, 60);
        let prefix = own_prefix();
        let limiter = limiter(&prefix);

        let whole = limiter.check(&p, "whole", 10).await.unwrap();
        assert!(whole.allowed);
        assert_eq!(whole.remaining, 0);
        let after = limiter.check(&p, "whole", 1).await.unwrap();
        assert!(!after.allowed);
        assert_eq!(after.remaining, 0);

        let mut plain = plain().await;
        for cost in [11, 1000, u32::MAX] {
            let key = Uuid::new_v4().to_string();
            let refused = limiter.check(&p, &key, cost).await.unwrap();
            let (want, stored) = gcra(&p, None, 0, cost);
            assert_eq!(stored, None);
            assert_eq!(
                refused, want,
                "cost {cost}: exact, as nothing depends on the clock"
            );
            assert_eq!(refused.retry_after, p.window);
            assert_eq!(refused.remaining, 10, "nothing was charged");
            let exists: i64 = redis::cmd("EXISTS")
                .arg(limiter.bucket("rl", p.name, &key))
                .query_async(&mut plain)
                .await
                .unwrap();
            assert_eq!(exists, 0, "a refusal writes nothing");
            let next = limiter.check(&p, &key, 1).await.unwrap();
            assert!(next.allowed);
            assert_eq!(next.remaining, 9);
        }

        // A free request is allowed and charges nothing, as in the domain.
        let free = limiter.check(&p, "free", 0).await.unwrap();
        assert_eq!(free, gcra(&p, None, 0, 0).0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_sharing_redis_let_the_quota_through_together_exactly() {
        let prefix = own_prefix();
        let instances = [limiter(&prefix), limiter(&prefix)];
        let p = policy(50, 60);
        let mut checks = JoinSet::new();
        for i in 0..200 {
            let instance = instances[i % 2].clone();
            let p = p.clone();
            checks.spawn(async move { instance.check(&p, "shared", 1).await });
        }
        let mut allowed = 0;
        while let Some(decision) = checks.join_next().await {
            if decision.unwrap().unwrap().allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 50);
        for instance in &instances {
            assert!(!instance.check(&p, "shared", 1).await.unwrap().allowed);
        }
    }

    async fn pttl(plain: &mut MultiplexedConnection, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(plain)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn keys_expire_once_the_bucket_is_whole() {
        let prefix = own_prefix();
        let limiter = limiter(&prefix);
        let mut plain = plain().await;

        // One request of 10 per minute fills 6 s of the bucket: it expires after 6 s and 1 ms.
        let p = policy(10, 60);
        limiter.check(&p, "k", 1).await.unwrap();
        let ttl = pttl(&mut plain, &limiter.bucket("rl", "test", "k")).await;
        assert!(ttl > 0 && ttl <= 6_001, "{ttl}");
        for _ in 0..20 {
            limiter.check(&p, "k", 1).await.unwrap();
        }
        // The key is exactly `<prefix>:rl:<policy>:<key>`.
        let ttl = pttl(&mut plain, &(prefix.clone() + ":rl:test:k")).await;
        assert!(ttl > 0 && ttl <= 60_000 + 1_000, "{ttl}");

        // One request of 5 per second: gone after 201 ms.
        let short = policy(5, 1);
        limiter.check(&short, "short", 1).await.unwrap();
        sleep(Duration::from_millis(400)).await;
        let exists: i64 = redis::cmd("EXISTS")
            .arg(limiter.bucket("rl", "test", "short"))
            .query_async(&mut plain)
            .await
            .unwrap();
        assert_eq!(exists, 0);
    }

    #[tokio::test]
    async fn stored_states_are_read_as_the_domain_reads_them() {
        let prefix = own_prefix();
        let limiter = limiter(&prefix);
        let mut plain = plain().await;
        let p = policy(3, 1);

        // A TAT long past is a full bucket.
        let stale = limiter.bucket("rl", p.name, "stale");
        redis::cmd("SET")
            .arg(&stale)
            .arg(5)
            .exec_async(&mut plain)
            .await
            .unwrap();
        let d = limiter.check(&p, "stale", 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);

        // A TAT beyond the window (the policy shrank, or the server clock went back): refused,
        // nothing remaining, whole again when the TAT is reached.
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut plain).await.unwrap();
        let ahead = Duration::from_secs(2);
        let future_tat = secs * 1_000_000 + micros + u64::try_from(ahead.as_micros()).unwrap();
        redis::cmd("SET")
            .arg(limiter.bucket("rl", p.name, "ahead"))
            .arg(future_tat)
            .arg("PX")
            .arg(10_000)
            .exec_async(&mut plain)
            .await
            .unwrap();
        let d = limiter.check(&p, "ahead", 1).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(
            at_most_earlier(d.reset, ahead, Duration::from_secs(1)),
            "{d:?}"
        );

        // Anything that is not a TAT counts as no TAT, and is overwritten.
        for (i, junk) in ["not a number", "", "inf", "nan", "-5", "1e300"]
            .into_iter()
            .enumerate()
        {
            let key = i.to_string();
            redis::cmd("SET")
                .arg(limiter.bucket("rl", p.name, &key))
                .arg(junk)
                .exec_async(&mut plain)
                .await
                .unwrap();
            let d = limiter.check(&p, &key, 1).await.unwrap();
            assert!(d.allowed, "{junk:?}");
            assert_eq!(d.remaining, 2, "{junk:?}");
        }
    }

    #[test]
    fn arguments_keep_every_intermediate_exact_in_a_double() {
        const EXACT: u64 = 1 << 53;
        // Microseconds in the year 2148: the bound the module documents.
        let now = 5 * (1_u64 << 50) - 1;
        for p in [
            policy(10, 60),
            RatePolicy::new("huge", u32::MAX, Duration::from_secs(u64::MAX / 2)),
            RatePolicy::new("long", 1, Duration::from_secs(u64::MAX / 2)),
            RatePolicy {
                name: "raw",
                quota: 0,
                window: Duration::ZERO,
            },
        ] {
            for cost in [0, 1, 7, u32::MAX] {
                let a = Arguments::of(&p, cost);
                assert!(a.interval >= 1 && a.window <= MAX_WINDOW_MICROS);
                let increment = a.interval * a.cost;
                // The largest TAT the script can meet: one it wrote, a window ahead.
                assert!(now + a.window + increment < EXACT, "{p:?} {cost}");
            }
        }
        // Within the clamp, the arguments are the domain's own, and a clamped cost decides alike.
        let p = policy(10, 60);
        assert_eq!(Arguments::of(&p, 3).interval, p.interval_micros());
        assert_eq!(Arguments::of(&p, 3).cost, 3);
        assert_eq!(Arguments::of(&p, u32::MAX).cost, 11);
        assert_eq!(gcra(&p, None, 0, 11), gcra(&p, None, 0, u32::MAX));
    }

    #[test]
    fn only_decisions_are_taken_from_the_script() {
        assert_eq!(
            decision(&[1, 4, 200, 0]),
            Some(Decision {
                allowed: true,
                remaining: 4,
                reset: Duration::from_micros(200),
                retry_after: Duration::ZERO,
            })
        );
        assert_eq!(
            decision(&[0, 1 << 40, 0, 5]).map(|d| d.remaining),
            Some(u32::MAX)
        );
        for malformed in [
            &[][..],
            &[1, 2, 3],
            &[2, 0, 0, 0],
            &[1, -1, 0, 0],
            &[0, 0, 0, -1],
        ] {
            assert_eq!(decision(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn only_tcp_redis_urls_are_taken_and_the_password_is_never_shown() {
        let secret = "hunter2-not-for-logs";
        let limiter =
            RedisRateLimiter::new("redis://user:hunter2-not-for-logs@127.0.0.1:6379/0", "p")
                .unwrap();
        let mut shown = String::new();
        write!(shown, "{limiter:?}").unwrap();
        assert!(
            shown.contains("RedisRateLimiter") && !shown.contains(secret),
            "{shown}"
        );
        assert_eq!(limiter.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(limiter.prefix(), "p");

        for url in [
            "rediss://:hunter2-not-for-logs@127.0.0.1:6379/#insecure",
            "redis+unix:///tmp/hunter2-not-for-logs.sock",
            "unix:///tmp/hunter2-not-for-logs.sock",
            "redis://:hunter2-not-for-logs@127.0.0.1:6379/?protocol=resp3",
            "http://:hunter2-not-for-logs@127.0.0.1:6379",
            "not a url hunter2-not-for-logs",
            "",
        ] {
            let error = RedisRateLimiter::new(url, "p").unwrap_err();
            let mut shown = String::new();
            write!(shown, "{error} {error:?}").unwrap();
            assert!(!shown.contains(secret), "{url}: {shown}");
        }
        // TLS, with the host name checked: yes; without the check (`#insecure`): no.
        assert!(RedisRateLimiter::new("rediss://127.0.0.1:6379", "p").is_ok());
        assert!(matches!(
            RedisRateLimiter::new("rediss://127.0.0.1:6379/#insecure", "p"),
            Err(RedisLimiterError::Url(RedisUrlError::Unsupported))
        ));
        assert!(matches!(
            RedisRateLimiter::with_root_certs("redis://127.0.0.1:6379", Some(b"x"), "p"),
            Err(RedisLimiterError::Url(RedisUrlError::RootCerts))
        ));
        assert!(matches!(
            RedisRateLimiter::new("redis://127.0.0.1:6379/?protocol=resp3", "p"),
            Err(RedisLimiterError::Url(RedisUrlError::Unsupported))
        ));
        assert!(matches!(
            RedisRateLimiter::new("redis://127.0.0.1:6379", ""),
            Err(RedisLimiterError::EmptyPrefix)
        ));
    }

    #[tokio::test]
    async fn failures_are_never_shown_with_the_password() {
        // Nothing listens on port 1: the check fails, and what the caller logs shows no secret.
        let limiter =
            RedisRateLimiter::new("redis://:hunter2-not-for-logs@127.0.0.1:1", own_prefix())
                .unwrap();
        let error = limiter.check(&policy(1, 1), "k", 1).await.unwrap_err();
        let mut shown = String::new();
        write!(shown, "{error} {error:?}").unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    /// Checks until one succeeds (within 30 s), returning it.
    async fn first_success(limiter: &RedisRateLimiter, p: &RatePolicy, key: &str) -> Decision {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(decision) = limiter.check(p, key, 1).await {
                return decision;
            }
            assert!(Instant::now() < deadline, "the limiter never reached redis");
            sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn decisions_are_shared_over_rediss_with_a_private_ca() {
        let tls = crate::test_redis::TlsFiles::new();
        let server = OwnRedis::start_tls(free_port(), &tls).await;
        let prefix = own_prefix();
        let a = RedisRateLimiter::with_root_certs(&server.tls_url(), Some(&tls.cert_pem), &*prefix)
            .unwrap();
        let b = RedisRateLimiter::with_root_certs(&server.tls_url(), Some(&tls.cert_pem), &*prefix)
            .unwrap();
        let p = policy(10, 60);
        assert_eq!(first_success(&a, &p, "k").await.remaining, 9);
        assert_eq!(
            first_success(&b, &p, "k").await.remaining,
            8,
            "one allowance"
        );
    }

    #[tokio::test]
    async fn a_redis_outage_fails_checks_quickly_and_the_limiter_comes_back() {
        let port = free_port();
        let mut server = OwnRedis::start(port).await;
        // The default timeout, as in production.
        let limiter = RedisRateLimiter::new(&server.url(), own_prefix()).unwrap();
        let p = policy(10, 60);
        assert_eq!(first_success(&limiter, &p, "k").await.remaining, 9);
        assert_eq!(limiter.check(&p, "k", 1).await.unwrap().remaining, 8);

        // A server that hangs: each check gives up after the timeout.
        server.signal("-STOP");
        for _ in 0..3 {
            let started = Instant::now();
            let outcome = timeout(Duration::from_secs(5), limiter.check(&p, "k", 1))
                .await
                .expect("a check while redis hangs must return promptly");
            assert!(outcome.is_err(), "{outcome:?}");
            let elapsed = started.elapsed();
            assert!(
                elapsed >= DEFAULT_TIMEOUT && elapsed < Duration::from_secs(2),
                "{elapsed:?}"
            );
        }
        server.signal("-CONT");
        first_success(&limiter, &p, "k").await;

        // A server that is gone: each check fails at once or after the timeout.
        server.stop();
        for _ in 0..3 {
            let started = Instant::now();
            let outcome = timeout(Duration::from_secs(5), limiter.check(&p, "k", 1))
                .await
                .expect("a check while redis is down must return promptly");
            assert!(outcome.is_err(), "{outcome:?}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }

        // A new, empty server on the same port: the manager reconnects, and the script, which
        // this server has never seen (NOSCRIPT), is sent again.
        let _restarted = OwnRedis::start(port).await;
        assert_eq!(first_success(&limiter, &p, "k").await.remaining, 9);
        assert_eq!(limiter.check(&p, "k", 1).await.unwrap().remaining, 8);
    }

    #[tokio::test]
    async fn a_daily_quota_is_counted_across_instances_and_refusals_spend_nothing() {
        let prefix = own_prefix();
        let (a, b) = (limiter(&prefix), limiter(&prefix));
        let day = RatePolicy::new("day", 5, Duration::from_secs(86_400));
        let key = Uuid::new_v4().to_string();
        let mut allowed = 0;
        for i in 0..8 {
            let instance = if i % 2 == 0 { &a } else { &b };
            let d = instance.count(&day, &key, 1).await.unwrap();
            if d.allowed {
                allowed += 1;
                assert_eq!(d.remaining, 5 - allowed);
            } else {
                assert_eq!(d.remaining, 0);
                // Until the UTC day turns, on the server's clock: at most a day, never zero.
                assert!(
                    d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_secs(86_400)
                );
                assert_eq!(d.retry_after, d.reset);
            }
        }
        assert_eq!(allowed, 5, "two instances, one count");
        // The counter holds "<day>:<used>", and expires when the day ends.
        let mut plain = plain().await;
        let stored: String = redis::cmd("GET")
            .arg(a.bucket("q", "day", &key))
            .query_async(&mut plain)
            .await
            .unwrap();
        assert!(stored.ends_with(":5"), "{stored}");
        let ttl = pttl(&mut plain, &(prefix.clone() + ":q:day:" + &key)).await;
        assert!(ttl > 0 && ttl <= 86_400_001, "{ttl}");
        // A count of an earlier day reads as nothing used.
        let _: () = redis::cmd("SET")
            .arg(a.bucket("q", "day", "old"))
            .arg("1:5")
            .query_async(&mut plain)
            .await
            .unwrap();
        let fresh = a.count(&day, "old", 1).await.unwrap();
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 4);
        // A cost beyond the quota is refused whole.
        let too_big = a.count(&day, "big", u32::MAX).await.unwrap();
        assert!(!too_big.allowed);
        assert_eq!(too_big.remaining, 5);
    }
}
