//! The session liveness cache: revocations reach every instance, and failures deny.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_domain::session::{
    NewSession, RefreshTokenHash, RevocationReason, SessionLiveness, SessionPolicy, SessionStore,
};
use bulwark_domain::user::Role;
use bulwark_persistence::liveness::CachedLiveness;
use bulwark_persistence::session::PgSessionStore;
use bulwark_testkit::TestDatabase;
use uuid::Uuid;

async fn live_session(db: &TestDatabase, store: &PgSessionStore) -> (Uuid, Uuid) {
    let user_id: Uuid =
        sqlx::query_scalar("insert into users (email, display_name) values ($1, 'T') returning id")
            .bind(format!("{}@example.com", Uuid::new_v4().simple()))
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let mut first = [0u8; 32];
    first[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    let new = NewSession {
        user_id,
        first_token: RefreshTokenHash(first),
        ip: None,
        user_agent: None,
    };
    (
        user_id,
        store.create(new, SessionPolicy::default()).await.unwrap(),
    )
}

/// An "instance": its own pool, its own cache (with a long TTL, so only a notification can
/// invalidate it), its own listener.
async fn instance(db: &TestDatabase) -> (CachedLiveness, sqlx::PgPool) {
    let pool = bulwark_persistence::connect(&db.settings());
    let liveness = CachedLiveness::new(pool.clone(), Duration::from_secs(3600));
    liveness.spawn_listener(pool.clone());
    let started = Instant::now();
    while !liveness.is_listening() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the listener never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (liveness, pool)
}

async fn eventually_false(liveness: &CachedLiveness, session_id: Uuid) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !liveness.is_live(session_id).await.unwrap() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_the_cache_of_another() {
    let db = TestDatabase::migrated().await;
    let (a, pool_a) = instance(&db).await;
    let (b, pool_b) = instance(&db).await;
    let store_a = PgSessionStore::new(pool_a.clone());
    let (user_id, session_id) = live_session(&db, &store_a).await;
    // Both instances have now cached "live" for an hour.
    assert!(a.is_live(session_id).await.unwrap());
    assert!(b.is_live(session_id).await.unwrap());

    assert!(
        store_a
            .revoke(user_id, session_id, RevocationReason::Logout)
            .await
            .unwrap()
    );
    a.forget(&[session_id]);

    // Instance A: at once.
    assert!(!a.is_live(session_id).await.unwrap());
    // Instance B: as soon as the notification arrives (in practice milliseconds).
    assert!(
        eventually_false(&b, session_id).await,
        "instance B still believes the session is live"
    );
    pool_a.close().await;
    pool_b.close().await;
}

#[tokio::test]
async fn revoke_all_reaches_other_instances_for_every_session() {
    let db = TestDatabase::migrated().await;
    let (b, pool_b) = instance(&db).await;
    let store = PgSessionStore::new(db.pool.clone());
    let (user_id, first) = live_session(&db, &store).await;
    let mut new = NewSession {
        user_id,
        first_token: RefreshTokenHash([9; 32]),
        ip: None,
        user_agent: None,
    };
    new.first_token.0[0] = 1;
    let second = store.create(new, SessionPolicy::default()).await.unwrap();
    assert!(b.is_live(first).await.unwrap() && b.is_live(second).await.unwrap());

    let revoked = store
        .revoke_all(user_id, None, RevocationReason::PasswordReset)
        .await
        .unwrap();

    assert_eq!(revoked.len(), 2);
    assert!(eventually_false(&b, first).await && eventually_false(&b, second).await);
    pool_b.close().await;
}

#[tokio::test]
async fn without_a_listener_nothing_is_cached() {
    let db = TestDatabase::migrated().await;
    let store = PgSessionStore::new(db.pool.clone());
    let (user_id, session_id) = live_session(&db, &store).await;
    let unlistened = CachedLiveness::new(db.pool.clone(), Duration::from_secs(3600));
    assert!(unlistened.is_live(session_id).await.unwrap());

    // No notification can reach it, and no `forget` is called: only not caching keeps it correct.
    store
        .revoke(user_id, session_id, RevocationReason::Logout)
        .await
        .unwrap();

    assert!(!unlistened.is_live(session_id).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_never_a_yes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = TestDatabase::migrated().await;
    let mut settings = db.settings();
    settings.connect = settings.connect.port(port);
    settings.acquire_timeout = Duration::from_secs(1);
    let liveness = CachedLiveness::new(
        bulwark_persistence::connect(&settings),
        Duration::from_secs(3600),
    );

    assert!(liveness.is_live(Uuid::new_v4()).await.is_err());
}

#[tokio::test]
async fn unknown_sessions_are_not_live() {
    let db = TestDatabase::migrated().await;
    let (liveness, pool) = instance(&db).await;

    assert!(!liveness.is_live(Uuid::new_v4()).await.unwrap());
    pool.close().await;
}

#[tokio::test]
async fn a_listener_reconnect_empties_the_cache_because_notifications_may_be_lost() {
    let db = TestDatabase::migrated().await;
    let (b, pool_b) = instance(&db).await;
    let store = PgSessionStore::new(db.pool.clone());
    let (user_id, session_id) = live_session(&db, &store).await;
    assert!(b.is_live(session_id).await.unwrap());

    // A revocation whose notification never comes (the trigger is switched off for this test)…
    sqlx::query("alter table sessions disable trigger sessions_notify_revoked_on_update")
        .execute(&db.pool)
        .await
        .unwrap();
    store
        .revoke(user_id, session_id, RevocationReason::Logout)
        .await
        .unwrap();
    assert!(
        b.is_live(session_id).await.unwrap(),
        "without a notification the cached answer stands"
    );
    // …is still caught once the listener's connection drops and comes back.
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen%'")
        .execute(&db.pool)
        .await
        .unwrap();

    assert!(
        eventually_false(&b, session_id).await,
        "the cache survived a reconnect"
    );
    pool_b.close().await;
}

#[tokio::test]
async fn the_liveness_port_answers_from_the_cache_and_forgets_on_request() {
    let db = TestDatabase::migrated().await;
    let (liveness, pool) = instance(&db).await;
    let store = PgSessionStore::new(db.pool.clone());
    let (user_id, session_id) = live_session(&db, &store).await;
    // Switch the notification off, so only `forget` through the port can clear the cache.
    sqlx::query("alter table sessions disable trigger sessions_notify_revoked_on_update")
        .execute(&db.pool)
        .await
        .unwrap();
    let port: Arc<dyn SessionLiveness> = Arc::new(liveness);
    assert!(port.principal(session_id).await.unwrap().is_some());

    store
        .revoke(user_id, session_id, RevocationReason::Logout)
        .await
        .unwrap();
    assert!(
        port.principal(session_id).await.unwrap().is_some(),
        "the cached answer stands until it is forgotten"
    );
    port.forget(&[session_id]);

    assert!(port.principal(session_id).await.unwrap().is_none());
    pool.close().await;
}

/// Waits up to 3 s for `check` to hold.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..60 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_role_change_or_a_lock_reaches_the_cached_principal_on_every_instance() {
    let db = TestDatabase::migrated().await;
    let (liveness, pool) = instance(&db).await;
    let store = PgSessionStore::new(db.pool.clone());
    let (user_id, session_id) = live_session(&db, &store).await;
    let before = liveness.principal(session_id).await.unwrap().unwrap();
    assert_eq!(before.role, Role::User);
    assert_eq!(before.user_id, user_id);

    // Another instance (here: any writer) promotes the user.
    sqlx::query("update users set role = 'admin' where id = $1")
        .bind(user_id)
        .execute(&db.pool)
        .await
        .unwrap();
    let promoted = eventually(async || {
        liveness
            .principal(session_id)
            .await
            .unwrap()
            .map(|p| p.role)
            == Some(Role::Admin)
    })
    .await;
    assert!(promoted, "the cached role was replaced");

    sqlx::query("update users set locked_at = now() where id = $1")
        .bind(user_id)
        .execute(&db.pool)
        .await
        .unwrap();
    let locked = eventually(async || liveness.principal(session_id).await.unwrap().is_none()).await;
    assert!(locked, "a locked user's session has no principal");
    pool.close().await;
}
