//! `bench-limiter`: scenario (g) of `make bench`, what one rate-limit decision costs.
//!
//! Every request the service answers is charged to at least one limit (per address, then per user
//! or API key). The decision is taken either in process (`LocalRateLimiter`, the default: a mutex
//! over a map, GCRA arithmetic) or in Redis (`RedisRateLimiter`, when `RATE_LIMIT_STORE=redis`: one
//! Lua script per decision, so instances share their counts). This times both through the same
//! `RateLimiter::check` the middleware calls, one caller after another (the latency of a decision)
//! and 64 callers at once (the throughput one process gets). Keys rotate over 1,000 names, as
//! addresses of many clients would, and the quota is set so high that every decision is "allowed"
//! (a refusal costs the same work).
//!
//! Prints one line per measurement: `limiter <name> <decisions/s> <p50 µs> <p99 µs>`, which
//! scripts/bench.sh turns into rows of its table. `REDIS_URL` (default redis://127.0.0.1:6379)
//! names the Redis; when it does not answer, the Redis rows say so and the rest still runs.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_domain::rate_limit::{RateLimiter, RatePolicy};
use bulwark_persistence::redis_limiter::RedisRateLimiter;
use bulwark_web::rate_limit::LocalRateLimiter;

const KEYS: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `tasks` callers share `total` decisions; each decision is timed on its own.
async fn measure(
    limiter: Arc<dyn RateLimiter>,
    tasks: usize,
    total: usize,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let policy = Arc::new(RatePolicy::new(
        "bench",
        u32::MAX / 2,
        Duration::from_secs(60),
    ));
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("ip:10.0.{i}")).collect());
    let per_task = total / tasks;
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let limiter = limiter.clone();
        let policy = policy.clone();
        let keys = keys.clone();
        handles.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let key = &keys[(t * 7919 + i) % KEYS];
                let one = Instant::now();
                let decision = limiter.check(&policy, key, 1).await;
                samples.push(one.elapsed());
                if decision.is_err() {
                    return Err(anyhow::anyhow!("the limiter failed to decide"));
                }
            }
            Ok(samples)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for handle in handles {
        all.extend(handle.await??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    Ok((rate, percentile(&all, 50.0), percentile(&all, 99.0)))
}

fn print(name: &str, result: (f64, Duration, Duration)) {
    let (rate, p50, p99) = result;
    println!(
        "limiter {name} {rate:.0} {:.2} {:.2}",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let local: Arc<dyn RateLimiter> = Arc::new(LocalRateLimiter::new(100_000));
    // Warm-up: the map holds every key before timing starts.
    measure(local.clone(), 1, 10_000).await?;
    print("local-1", measure(local.clone(), 1, 1_000_000).await?);
    print("local-64", measure(local, 64, 1_000_000).await?);

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("bulwark-bench-{}", std::process::id());
    let redis: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::new(&url, prefix)?);
    match measure(redis.clone(), 1, 2_000).await {
        Ok(_) => {
            print("redis-1", measure(redis.clone(), 1, 20_000).await?);
            print("redis-64", measure(redis, 64, 100_000).await?);
        }
        Err(error) => eprintln!("bench-limiter: Redis at {url} did not answer ({error}); skipped"),
    }
    Ok(())
}
