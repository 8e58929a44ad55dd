//! `make bench`: what the per-request session check costs.
//!
//! Every authenticated request asks whether its session is still live. This measures that answer
//! three ways, against the real PostgreSQL: straight from the database (what every request would
//! pay without the cache), from the cache while the revocation listener is connected (the normal
//! case), and the JWT-independent overhead of a cache miss followed by a hit. Numbers go to stdout;
//! nothing here asserts a speed (timing assertions make flaky tests, and speed is for reading).
//!
//! A plain `harness = false` binary instead of criterion: one extra dependency tree less to build,
//! and these are coarse numbers (microseconds versus hundreds of nanoseconds).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use bulwark_domain::session::{NewSession, RefreshTokenHash, SessionPolicy, SessionStore};
use bulwark_persistence::liveness::CachedLiveness;
use bulwark_persistence::session::PgSessionStore;
use bulwark_testkit::TestDatabase;
use uuid::Uuid;

const ROUNDS: u32 = 5_000;

fn report(name: &str, elapsed: Duration, rounds: u32) {
    let per_op = elapsed / rounds;
    let per_sec = f64::from(rounds) / elapsed.as_secs_f64();
    println!("{name:<44} {per_op:>10.2?} per check  {per_sec:>12.0} checks/s");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = TestDatabase::migrated().await;
    let user: Uuid =
        sqlx::query_scalar("insert into users (email, display_name) values ('bench@example.com', 'Bench') returning id")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let store = PgSessionStore::new(db.pool.clone());
    let session = store
        .create(
            NewSession {
                user_id: user,
                first_token: RefreshTokenHash([7; 32]),
                ip: None,
                user_agent: None,
            },
            SessionPolicy::default(),
        )
        .await
        .unwrap();

    println!(
        "session liveness check, {ROUNDS} rounds each (PostgreSQL on {})",
        db.name()
    );

    let started = Instant::now();
    for _ in 0..ROUNDS {
        assert!(store.is_live(session).await.unwrap());
    }
    report("database every time (no cache)", started.elapsed(), ROUNDS);

    let cached = CachedLiveness::new(db.pool.clone(), bulwark_persistence::liveness::DEFAULT_TTL);
    let listener = cached.spawn_listener(db.pool.clone());
    while !cached.is_listening() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cached.is_live(session).await.unwrap());
    let started = Instant::now();
    for _ in 0..ROUNDS {
        assert!(cached.is_live(session).await.unwrap());
    }
    report("cache hit (listener connected)", started.elapsed(), ROUNDS);

    let started = Instant::now();
    for _ in 0..ROUNDS {
        cached.forget(&[session]);
        assert!(cached.is_live(session).await.unwrap());
    }
    report(
        "cache miss after an invalidation",
        started.elapsed(),
        ROUNDS,
    );

    listener.abort();
}
