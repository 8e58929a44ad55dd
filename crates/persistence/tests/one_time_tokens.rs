//! Repository tests for single-use tokens (email verification, password reset), each against a
//! database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark_domain::opaque::{OneTimeTokenStore, TokenDigest, TokenKind};
use bulwark_domain::user::UserRepository;
use bulwark_persistence::one_time::PgOneTimeTokenStore;
use bulwark_persistence::user::PgUserRepository;
use bulwark_testkit::TestDatabase;
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);
const RESET: TokenKind = TokenKind::PasswordReset;
const VERIFY: TokenKind = TokenKind::EmailVerification;

fn digest() -> TokenDigest {
    // The store only ever sees digests; two random UUIDs make a distinct 32-byte one.
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    TokenDigest(bytes)
}

async fn user(db: &TestDatabase) -> Uuid {
    sqlx::query_scalar("insert into users (email, display_name) values ($1, 'Test') returning id")
        .bind(format!("{}@example.com", Uuid::new_v4().simple()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// A store over a pool wide enough for real concurrency (the test database's own has 2).
fn wide_store(db: &TestDatabase) -> (PgOneTimeTokenStore, sqlx::PgPool) {
    let mut settings = db.settings();
    settings.max_connections = 10;
    let pool = bulwark_persistence::connect(&settings);
    (PgOneTimeTokenStore::new(pool.clone()), pool)
}

#[tokio::test]
async fn a_token_can_be_peeked_at_until_it_is_consumed_once() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let token = digest();
    store.issue(user_id, RESET, token, HOUR).await.unwrap();

    let peeked = store.peek(RESET, token).await.unwrap();
    let peeked_again = store.peek(RESET, token).await.unwrap();
    let consumed = store.consume(RESET, token).await.unwrap();
    let consumed_again = store.consume(RESET, token).await.unwrap();

    assert_eq!(peeked, Some(user_id));
    assert_eq!(peeked_again, Some(user_id), "peeking does not spend it");
    assert_eq!(consumed, Some(user_id));
    assert_eq!(consumed_again, None, "a used token is dead");
    assert_eq!(store.peek(RESET, token).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_ten_concurrent_consumptions_of_one_token_exactly_one_gets_the_user() {
    let db = TestDatabase::migrated().await;
    let (store, pool) = wide_store(&db);
    let user_id = user(&db).await;
    let token = digest();
    store.issue(user_id, RESET, token, HOUR).await.unwrap();

    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume(RESET, token).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }

    assert_eq!(
        outcomes.iter().filter(|o| o.is_some()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.iter().flatten().all(|id| *id == user_id));
    pool.close().await;
}

#[tokio::test]
async fn unknown_tokens_are_none() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());

    assert_eq!(store.peek(RESET, digest()).await.unwrap(), None);
    assert_eq!(store.consume(VERIFY, digest()).await.unwrap(), None);
}

#[tokio::test]
async fn an_expired_token_can_neither_be_peeked_at_nor_consumed() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let token = digest();
    store.issue(user_id, VERIFY, token, HOUR).await.unwrap();
    sqlx::query(
        "update one_time_tokens set created_at = now() - interval '2 hours', expires_at = now() - interval '1 second' where token_hash = $1",
    )
    .bind(&token.0[..])
    .execute(&db.pool)
    .await
    .unwrap();

    assert_eq!(store.peek(VERIFY, token).await.unwrap(), None);
    assert_eq!(store.consume(VERIFY, token).await.unwrap(), None);
}

#[tokio::test]
async fn a_token_lives_as_long_as_its_ttl() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let token = digest();

    store
        .issue(user_id, RESET, token, Duration::from_secs(900))
        .await
        .unwrap();

    let lifetime: f64 = sqlx::query_scalar(
        "select extract(epoch from expires_at - created_at)::float8 from one_time_tokens where token_hash = $1",
    )
    .bind(&token.0[..])
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!((lifetime - 900.0).abs() < 1.0, "{lifetime}");
}

#[tokio::test]
async fn a_new_token_supersedes_the_users_earlier_ones_of_the_same_kind_only() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let (alice, bob) = (user(&db).await, user(&db).await);
    let (first_reset, verification, second_reset, bobs_reset) =
        (digest(), digest(), digest(), digest());
    store.issue(alice, RESET, first_reset, HOUR).await.unwrap();
    store
        .issue(alice, VERIFY, verification, HOUR)
        .await
        .unwrap();
    store.issue(bob, RESET, bobs_reset, HOUR).await.unwrap();

    store.issue(alice, RESET, second_reset, HOUR).await.unwrap();

    assert_eq!(
        store.consume(RESET, first_reset).await.unwrap(),
        None,
        "only the newest mail works"
    );
    assert_eq!(
        store.consume(RESET, second_reset).await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        store.consume(VERIFY, verification).await.unwrap(),
        Some(alice),
        "a reset does not supersede a verification"
    );
    assert_eq!(
        store.consume(RESET, bobs_reset).await.unwrap(),
        Some(bob),
        "another user's token is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_issues_for_one_user_all_succeed_and_leave_one_live_token() {
    let db = TestDatabase::migrated().await;
    let (store, pool) = wide_store(&db);
    let user_id = user(&db).await;

    let issues: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let token = digest();
                store
                    .issue(user_id, RESET, token, HOUR)
                    .await
                    .map(|()| token)
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for issue in issues {
        tokens.push(issue.await.unwrap().unwrap());
    }

    let mut live = 0;
    for token in tokens {
        live += usize::from(store.peek(RESET, token).await.unwrap().is_some());
    }
    assert_eq!(live, 1);
    pool.close().await;
}

#[tokio::test]
async fn a_token_of_one_kind_is_not_accepted_as_another() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let reset = digest();
    store.issue(user_id, RESET, reset, HOUR).await.unwrap();

    assert_eq!(store.peek(VERIFY, reset).await.unwrap(), None);
    assert_eq!(store.consume(VERIFY, reset).await.unwrap(), None);
    assert_eq!(
        store.consume(TokenKind::Refresh, reset).await.unwrap(),
        None
    );
    assert_eq!(
        store.consume(RESET, reset).await.unwrap(),
        Some(user_id),
        "a wrong-kind attempt does not spend the token"
    );
}

#[tokio::test]
async fn refresh_tokens_are_refused_by_the_one_time_store() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let user_id = user(&db).await;

    let issued = store
        .issue(user_id, TokenKind::Refresh, digest(), HOUR)
        .await;

    assert!(issued.is_err());
    let rows: i64 = sqlx::query_scalar("select count(*) from one_time_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_deleted_users_tokens_are_dead_and_none_can_be_issued() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let users = PgUserRepository::new(db.pool.clone());
    let user_id = user(&db).await;
    let (reset, verification) = (digest(), digest());
    store.issue(user_id, RESET, reset, HOUR).await.unwrap();
    store
        .issue(user_id, VERIFY, verification, HOUR)
        .await
        .unwrap();

    assert!(users.delete_and_anonymise(user_id).await.unwrap());

    assert_eq!(store.peek(RESET, reset).await.unwrap(), None);
    assert_eq!(store.consume(RESET, reset).await.unwrap(), None);
    assert_eq!(store.consume(VERIFY, verification).await.unwrap(), None);
    assert!(store.issue(user_id, RESET, digest(), HOUR).await.is_err());
}

#[tokio::test]
async fn only_digests_are_stored() {
    let db = TestDatabase::migrated().await;
    let store = PgOneTimeTokenStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let token = digest();

    store.issue(user_id, VERIFY, token, HOUR).await.unwrap();

    let (hash, purpose): (Vec<u8>, String) =
        sqlx::query_as("select token_hash, purpose from one_time_tokens")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(hash, token.0);
    assert_eq!(purpose, "email_verification");
    // Anything that is not a 32-byte digest is refused by the table itself.
    let short = sqlx::query(
        "insert into one_time_tokens (token_hash, user_id, purpose, expires_at) values ('\\x00', $1, 'password_reset', now() + interval '1 hour')",
    )
    .bind(user_id)
    .execute(&db.pool)
    .await;
    assert!(short.is_err());
}
