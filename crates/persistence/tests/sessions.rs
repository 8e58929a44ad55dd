//! Repository tests for sessions and rotating refresh tokens, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use bulwark_domain::session::{
    NewSession, RefreshTokenHash, RevocationReason, Rotation, SessionPolicy, SessionStore,
};
use bulwark_persistence::session::PgSessionStore;
use bulwark_testkit::TestDatabase;
use uuid::Uuid;

fn token(n: u8) -> RefreshTokenHash {
    // Distinct 32-byte values; the store only ever sees hashes.
    let mut bytes = [n; 32];
    bytes[0] = n.wrapping_mul(31).wrapping_add(7);
    RefreshTokenHash(bytes)
}

fn random_token() -> RefreshTokenHash {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    RefreshTokenHash(bytes)
}

async fn user(db: &TestDatabase) -> Uuid {
    sqlx::query_scalar("insert into users (email, display_name) values ($1, 'Test') returning id")
        .bind(format!("{}@example.com", Uuid::new_v4().simple()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn session(store: &PgSessionStore, user_id: Uuid, first: RefreshTokenHash) -> Uuid {
    let new = NewSession {
        user_id,
        first_token: first,
        ip: Some("198.51.100.4".parse().unwrap()),
        user_agent: Some("test".into()),
    };
    store.create(new, SessionPolicy::default()).await.unwrap()
}

/// Logs out with a refresh token.
async fn logout(store: &PgSessionStore, refresh: RefreshTokenHash) -> Option<(Uuid, Uuid)> {
    store
        .revoke_by_token(refresh, RevocationReason::Logout)
        .await
        .unwrap()
}

/// A session created with a zero idle timeout (expired from the start), whose first token is
/// `token(1)`, and the policy that made it.
async fn idle_expired_session(db: &TestDatabase, store: &PgSessionStore) -> (Uuid, SessionPolicy) {
    let policy = SessionPolicy {
        idle_timeout: Duration::ZERO,
        ..SessionPolicy::default()
    };
    let new = NewSession {
        user_id: user(db).await,
        first_token: token(1),
        ip: None,
        user_agent: None,
    };
    (store.create(new, policy).await.unwrap(), policy)
}

#[tokio::test]
async fn rotation_hands_out_the_next_token_and_the_old_one_is_dead() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let session_id = session(&store, user_id, token(1)).await;

    let first = store
        .rotate(token(1), token(2), SessionPolicy::default())
        .await
        .unwrap();
    let second = store
        .rotate(token(2), token(3), SessionPolicy::default())
        .await
        .unwrap();

    assert_eq!(
        first,
        Rotation::Rotated {
            session_id,
            user_id
        }
    );
    assert_eq!(
        second,
        Rotation::Rotated {
            session_id,
            user_id
        }
    );
    assert!(store.is_live(session_id).await.unwrap());
}

#[tokio::test]
async fn replaying_a_rotated_token_revokes_the_whole_family() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let session_id = session(&store, user_id, token(1)).await;
    store
        .rotate(token(1), token(2), SessionPolicy::default())
        .await
        .unwrap();

    let replay = store
        .rotate(token(1), token(9), SessionPolicy::default())
        .await
        .unwrap();

    assert_eq!(
        replay,
        Rotation::Reused {
            session_id,
            user_id
        }
    );
    assert!(!store.is_live(session_id).await.unwrap());
    // The newer token died with its family.
    assert_eq!(
        store
            .rotate(token(2), token(3), SessionPolicy::default())
            .await
            .unwrap(),
        Rotation::Rejected
    );
    let reason: String = sqlx::query_scalar("select revoked_reason from sessions where id = $1")
        .bind(session_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(reason, "refresh_reuse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_ten_concurrent_rotations_with_one_token_exactly_one_succeeds() {
    let db = TestDatabase::migrated().await;
    // A pool wide enough for real concurrency (the test database's default pool has 2 connections).
    let mut settings = db.settings();
    settings.max_connections = 10;
    let pool = bulwark_persistence::connect(&settings);
    let store = PgSessionStore::new(pool.clone());
    let user_id = user(&db).await;
    let session_id = session(&store, user_id, token(1)).await;

    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rotate(token(1), random_token(), SessionPolicy::default())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }

    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| !matches!(o, Rotation::Rotated { .. })
                || *o
                    == Rotation::Rotated {
                        session_id,
                        user_id
                    })
    );
    // The losers are indistinguishable from a thief replaying the token: the session is over.
    assert!(!store.is_live(session_id).await.unwrap());
    let tokens: i64 =
        sqlx::query_scalar("select count(*) from refresh_tokens where session_id = $1")
            .bind(session_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tokens, 2, "one winner minted exactly one next token");
    pool.close().await;
}

#[tokio::test]
async fn unknown_tokens_are_rejected_without_touching_any_session() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let session_id = session(&store, user_id, token(1)).await;

    assert_eq!(
        store
            .rotate(token(42), token(43), SessionPolicy::default())
            .await
            .unwrap(),
        Rotation::Rejected
    );
    assert!(store.is_live(session_id).await.unwrap());
}

#[tokio::test]
async fn an_idle_session_expires() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let (session_id, policy) = idle_expired_session(&db, &store).await;

    assert!(!store.is_live(session_id).await.unwrap());
    assert_eq!(
        store.rotate(token(1), token(2), policy).await.unwrap(),
        Rotation::Rejected
    );
}

#[tokio::test]
async fn no_amount_of_use_extends_a_session_past_its_absolute_lifetime() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let session_id = session(&store, user_id, token(1)).await;
    // Refreshing pushes the idle expiry forward, but never past the absolute one.
    store
        .rotate(
            token(1),
            token(2),
            SessionPolicy {
                idle_timeout: Duration::from_secs(365 * 86_400),
                ..SessionPolicy::default()
            },
        )
        .await
        .unwrap();
    let capped: bool =
        sqlx::query_scalar("select idle_expires_at = expires_at from sessions where id = $1")
            .bind(session_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(capped);

    sqlx::query("update sessions set created_at = now() - interval '31 days', expires_at = now() - interval '1 day', idle_expires_at = now() - interval '1 day' where id = $1")
        .bind(session_id)
        .execute(&db.pool)
        .await
        .unwrap();

    assert!(!store.is_live(session_id).await.unwrap());
    assert_eq!(
        store
            .rotate(token(2), token(3), SessionPolicy::default())
            .await
            .unwrap(),
        Rotation::Rejected
    );
}

#[tokio::test]
async fn a_user_can_revoke_only_their_own_sessions() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let (alice, mallory) = (user(&db).await, user(&db).await);
    let alices = session(&store, alice, token(1)).await;

    assert!(
        !store
            .revoke(mallory, alices, RevocationReason::SessionRevoked)
            .await
            .unwrap()
    );
    assert!(store.is_live(alices).await.unwrap());
    assert!(
        store
            .revoke(alice, alices, RevocationReason::Logout)
            .await
            .unwrap()
    );
    assert!(!store.is_live(alices).await.unwrap());
    assert!(
        !store
            .revoke(alice, alices, RevocationReason::Logout)
            .await
            .unwrap(),
        "already revoked"
    );
}

#[tokio::test]
async fn revoke_all_can_keep_the_current_session() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let (alice, bob) = (user(&db).await, user(&db).await);
    let current = session(&store, alice, token(1)).await;
    let other = session(&store, alice, token(2)).await;
    let bobs = session(&store, bob, token(3)).await;

    assert_eq!(
        store
            .revoke_all(alice, Some(current), RevocationReason::PasswordChange)
            .await
            .unwrap(),
        vec![other]
    );
    assert!(store.is_live(current).await.unwrap());
    assert!(!store.is_live(other).await.unwrap());
    assert!(
        store.is_live(bobs).await.unwrap(),
        "another user's session is untouched"
    );

    assert_eq!(
        store
            .revoke_all(alice, None, RevocationReason::LogoutAll)
            .await
            .unwrap(),
        vec![current]
    );
    assert!(!store.is_live(current).await.unwrap());
}

#[tokio::test]
async fn retrying_a_token_of_an_expired_session_is_not_reported_as_theft() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let (session_id, policy) = idle_expired_session(&db, &store).await;

    assert_eq!(
        store.rotate(token(1), token(2), policy).await.unwrap(),
        Rotation::Rejected
    );
    assert_eq!(
        store.rotate(token(1), token(3), policy).await.unwrap(),
        Rotation::Rejected
    );

    let reason: Option<String> =
        sqlx::query_scalar("select revoked_reason from sessions where id = $1")
            .bind(session_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(reason, None, "an expiry is not a refresh-token reuse");
}

#[tokio::test]
async fn logout_by_refresh_token_ends_that_session_only() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let user_id = user(&db).await;
    let phone = session(&store, user_id, token(1)).await;
    let laptop = session(&store, user_id, token(2)).await;
    store
        .rotate(token(1), token(3), SessionPolicy::default())
        .await
        .unwrap();

    // A rotated (used) token cannot log out; the current one can, once.
    assert_eq!(logout(&store, token(1)).await, None);
    assert_eq!(logout(&store, token(3)).await, Some((phone, user_id)));
    assert_eq!(logout(&store, token(3)).await, None);
    assert_eq!(logout(&store, token(99)).await, None);

    assert!(!store.is_live(phone).await.unwrap());
    assert!(store.is_live(laptop).await.unwrap());
}

/// A session of `user_id` from `ip`, whose first token is random.
async fn session_from(store: &PgSessionStore, user_id: Uuid, ip: Option<&str>) -> Uuid {
    let new = NewSession {
        user_id,
        first_token: random_token(),
        ip: ip.map(|ip| ip.parse().unwrap()),
        user_agent: Some("Firefox".into()),
    };
    store.create(new, SessionPolicy::default()).await.unwrap()
}

#[tokio::test]
async fn the_session_list_shows_only_the_users_live_sessions() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let (alice, bob) = (user(&db).await, user(&db).await);
    let live = session_from(&store, alice, Some("198.51.100.4")).await;
    let revoked = session_from(&store, alice, None).await;
    let idle = session_from(&store, alice, None).await;
    let old = session_from(&store, alice, None).await;
    let bobs = session_from(&store, bob, None).await;
    store
        .revoke(alice, revoked, RevocationReason::Logout)
        .await
        .unwrap();
    sqlx::query("update sessions set idle_expires_at = now() - interval '1 second' where id = $1")
        .bind(idle)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("update sessions set created_at = now() - interval '31 days', expires_at = now() - interval '1 second', idle_expires_at = now() - interval '1 second' where id = $1")
        .bind(old)
        .execute(&db.pool)
        .await
        .unwrap();

    let listed = store.list(alice, 50).await.unwrap();

    let ids: Vec<Uuid> = listed.iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        [live],
        "revoked, idle, expired and bob's are not listed"
    );
    assert!(!ids.contains(&bobs));
    assert_eq!(
        listed[0].ip,
        Some("198.51.100.4".parse::<IpAddr>().unwrap())
    );
    assert_eq!(listed[0].user_agent.as_deref(), Some("Firefox"));
    assert_eq!(store.list(bob, 50).await.unwrap().len(), 1);
    assert!(store.list(Uuid::new_v4(), 50).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_session_list_is_most_recently_used_first_and_bounded() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let alice = user(&db).await;
    let older = session(&store, alice, token(1)).await;
    let newer = session_from(&store, alice, Some("2001:db8::7")).await;
    sqlx::query("update sessions set last_used_at = now() - interval '1 hour' where id = $1")
        .bind(newer)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("update sessions set last_used_at = now() - interval '2 hours' where id = $1")
        .bind(older)
        .execute(&db.pool)
        .await
        .unwrap();

    // Refreshing the older session makes it the most recently used.
    store
        .rotate(token(1), token(2), SessionPolicy::default())
        .await
        .unwrap();
    let listed = store.list(alice, 50).await.unwrap();

    let ids: Vec<Uuid> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [older, newer]);
    assert!(listed[0].last_used_at > listed[1].last_used_at);
    assert_eq!(listed[1].ip, Some("2001:db8::7".parse::<IpAddr>().unwrap()));
    assert_eq!(
        store.list(alice, 1).await.unwrap().len(),
        1,
        "the limit holds"
    );
}
