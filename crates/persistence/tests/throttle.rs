//! Repository tests for sign-in throttling, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark_domain::throttle::{LoginThrottle, ThrottleKey, ThrottlePolicy};
use bulwark_persistence::throttle::PgLoginThrottle;
use bulwark_testkit::TestDatabase;

fn key(n: u8) -> ThrottleKey {
    ThrottleKey([n; 32])
}

/// One failed sign-in for `key(1)` under the default policy; the block it caused, if any.
async fn fail(throttle: &PgLoginThrottle) -> Option<Duration> {
    throttle
        .record_failure(key(1), ThrottlePolicy::default())
        .await
        .unwrap()
}

async fn failures(db: &TestDatabase, key: ThrottleKey) -> i32 {
    sqlx::query_scalar("select failures from login_throttle where key_hash = $1")
        .bind(&key.0[..])
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_few_failures_are_free_then_the_key_is_blocked_then_locked() {
    let db = TestDatabase::migrated().await;
    let throttle = PgLoginThrottle::new(db.pool.clone());
    let policy = ThrottlePolicy::default();

    for _ in 0..3 {
        assert_eq!(throttle.record_failure(key(1), policy).await.unwrap(), None);
    }
    assert_eq!(throttle.blocked_for(key(1)).await.unwrap(), None);
    assert_eq!(
        throttle.record_failure(key(1), policy).await.unwrap(),
        Some(Duration::from_secs(1))
    );
    let blocked = throttle.blocked_for(key(1)).await.unwrap().unwrap();
    assert_eq!(
        blocked,
        Duration::from_secs(1),
        "rounded up to whole seconds"
    );

    for _ in 5..10 {
        throttle.record_failure(key(1), policy).await.unwrap();
    }
    assert_eq!(
        throttle.record_failure(key(1), policy).await.unwrap(),
        Some(policy.lock_duration)
    );
    assert!(throttle.blocked_for(key(1)).await.unwrap().unwrap() > Duration::from_secs(890));
    // Other keys are untouched.
    assert_eq!(throttle.blocked_for(key(2)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_are_all_counted() {
    let db = TestDatabase::migrated().await;
    let mut settings = db.settings();
    settings.max_connections = 8;
    let pool = bulwark_persistence::connect(&settings);
    let throttle = PgLoginThrottle::new(pool.clone());
    let policy = ThrottlePolicy {
        lock_after: 1000,
        ..ThrottlePolicy::default()
    };

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let throttle = throttle.clone();
            tokio::spawn(async move { throttle.record_failure(key(1), policy).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    assert_eq!(failures(&db, key(1)).await, 20);
    pool.close().await;
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_count() {
    let db = TestDatabase::migrated().await;
    let throttle = PgLoginThrottle::new(db.pool.clone());
    for _ in 0..5 {
        fail(&throttle).await;
    }

    throttle.clear(key(1)).await.unwrap();

    assert_eq!(throttle.blocked_for(key(1)).await.unwrap(), None);
    assert_eq!(fail(&throttle).await, None);
    assert_eq!(failures(&db, key(1)).await, 1);
}

#[tokio::test]
async fn failures_outside_the_window_stop_counting() {
    let db = TestDatabase::migrated().await;
    let throttle = PgLoginThrottle::new(db.pool.clone());
    for _ in 0..5 {
        fail(&throttle).await;
    }
    sqlx::query("update login_throttle set last_failure_at = now() - interval '2 hours', blocked_until = null")
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(fail(&throttle).await, None);
    assert_eq!(failures(&db, key(1)).await, 1);
}

#[tokio::test]
async fn a_later_short_backoff_never_shortens_a_lock() {
    let db = TestDatabase::migrated().await;
    let throttle = PgLoginThrottle::new(db.pool.clone());
    let policy = ThrottlePolicy::default();
    for _ in 0..4 {
        throttle.record_failure(key(1), policy).await.unwrap();
    }
    sqlx::query(
        "update login_throttle set blocked_until = now() + interval '1 hour', failures = 3",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    // The 4th failure again asks for 1 s; the hour-long block stays.
    throttle.record_failure(key(1), policy).await.unwrap();

    assert!(throttle.blocked_for(key(1)).await.unwrap().unwrap() > Duration::from_secs(3500));
}
