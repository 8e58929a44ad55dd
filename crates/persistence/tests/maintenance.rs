//! The purge deletes what has served its purpose and nothing that is still in use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_persistence::maintenance::{Purged, purge_expired};
use bulwark_testkit::TestDatabase;
use uuid::Uuid;

async fn user(db: &TestDatabase) -> Uuid {
    sqlx::query_scalar("insert into users (email, display_name) values ($1, 'Test') returning id")
        .bind(format!("{}@example.com", Uuid::new_v4().simple()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// A session created `age` ago that lives `lifetime` and, when `revoked_ago` is given, was revoked
/// that long ago; with one refresh token.
async fn session(
    db: &TestDatabase,
    user_id: Uuid,
    age: &str,
    lifetime: &str,
    revoked_ago: Option<&str>,
) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "insert into sessions (user_id, created_at, last_used_at, expires_at, idle_expires_at, revoked_at, revoked_reason) \
         values ($1, now() - $2::interval, now() - $2::interval, now() - $2::interval + $3::interval, \
                 now() - $2::interval + $3::interval, now() - $4::interval, \
                 case when $4::interval is null then null else 'logout' end) returning id",
    )
    .bind(user_id)
    .bind(age)
    .bind(lifetime)
    .bind(revoked_ago)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(id.as_bytes());
    sqlx::query(
        "insert into refresh_tokens (token_hash, session_id, generation) values ($1, $2, 1)",
    )
    .bind(&hash[..])
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    id
}

async fn exists(db: &TestDatabase, table: &str, id: Uuid) -> bool {
    let sql = format!("select count(*) from {table} where id = $1");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    n == 1
}

#[tokio::test]
async fn sessions_go_a_week_after_they_ended_and_take_their_refresh_tokens() {
    let db = TestDatabase::migrated().await;
    let u = user(&db).await;
    let live = session(&db, u, "1 day", "30 days", None).await;
    let recently_revoked = session(&db, u, "10 days", "30 days", Some("1 day")).await;
    let long_revoked = session(&db, u, "20 days", "30 days", Some("8 days")).await;
    let long_expired = session(&db, u, "40 days", "30 days", None).await;

    let purged = purge_expired(&db.pool).await.unwrap();

    assert_eq!(purged.sessions, 2);
    assert!(exists(&db, "sessions", live).await);
    assert!(exists(&db, "sessions", recently_revoked).await);
    assert!(!exists(&db, "sessions", long_revoked).await);
    assert!(!exists(&db, "sessions", long_expired).await);
    let tokens: i64 = sqlx::query_scalar("select count(*) from refresh_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 2, "the purged sessions' tokens went with them");
}

#[tokio::test]
async fn spent_tokens_idle_throttle_keys_and_old_sent_mail_go_live_ones_stay() {
    let db = TestDatabase::migrated().await;
    let u = user(&db).await;
    let statements = [
        // One-time tokens: used two days ago (goes), expired two days ago (goes), valid (stays).
        "insert into one_time_tokens (token_hash, user_id, purpose, created_at, expires_at, used_at) \
         values (decode(repeat('01', 32), 'hex'), $1, 'password_reset', now() - interval '3 days', now() - interval '2 days', now() - interval '2 days')",
        "insert into one_time_tokens (token_hash, user_id, purpose, created_at, expires_at) \
         values (decode(repeat('02', 32), 'hex'), $1, 'email_verification', now() - interval '3 days', now() - interval '2 days')",
        "insert into one_time_tokens (token_hash, user_id, purpose, expires_at) \
         values (decode(repeat('03', 32), 'hex'), $1, 'password_reset', now() + interval '30 minutes')",
        // MFA challenges: expired (goes), live (stays).
        "insert into mfa_challenges (digest, user_id, created_at, expires_at) \
         values (decode(repeat('04', 32), 'hex'), $1, now() - interval '10 minutes', now() - interval '5 minutes')",
        "insert into mfa_challenges (digest, user_id, expires_at) \
         values (decode(repeat('05', 32), 'hex'), $1, now() + interval '5 minutes')",
        // OAuth sign-ins in flight: abandoned (goes), live (stays).
        "insert into oauth_states (state_digest, browser_digest, provider, sealed_verifier, link_user_id, created_at, expires_at) \
         values (decode(repeat('06', 32), 'hex'), decode(repeat('07', 32), 'hex'), 'github', 'v1.x.y', $1, now() - interval '1 hour', now() - interval '50 minutes')",
        "insert into oauth_states (state_digest, browser_digest, provider, sealed_verifier, link_user_id, expires_at) \
         values (decode(repeat('08', 32), 'hex'), decode(repeat('09', 32), 'hex'), 'github', 'v1.x.y', $1, now() + interval '10 minutes')",
    ];
    for sql in statements {
        sqlx::query(sql).bind(u).execute(&db.pool).await.unwrap();
    }
    for sql in [
        // Throttle: idle for two days (goes); idle but still locked (stays); recent (stays).
        "insert into login_throttle (key_hash, failures, last_failure_at) values (decode(repeat('0a', 32), 'hex'), 3, now() - interval '2 days')",
        "insert into login_throttle (key_hash, failures, last_failure_at, blocked_until) values (decode(repeat('0b', 32), 'hex'), 10, now() - interval '2 days', now() + interval '1 hour')",
        "insert into login_throttle (key_hash, failures, last_failure_at) values (decode(repeat('0c', 32), 'hex'), 1, now())",
        // Mail: sent 8 days ago (goes), gave up 8 days ago (goes), pending 8 days (stays), sent now (stays).
        "insert into mail_outbox (recipient, template, payload, created_at, sent_at) values ('a@example.com', 'password_changed', 'x', now() - interval '8 days', now() - interval '8 days')",
        "insert into mail_outbox (recipient, template, payload, created_at, attempts) values ('a@example.com', 'password_changed', 'x', now() - interval '8 days', 5)",
        "insert into mail_outbox (recipient, template, payload, created_at) values ('a@example.com', 'password_changed', 'x', now() - interval '8 days')",
        "insert into mail_outbox (recipient, template, payload, sent_at) values ('a@example.com', 'password_changed', 'x', now())",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }

    let purged = purge_expired(&db.pool).await.unwrap();

    assert_eq!(
        purged,
        Purged {
            sessions: 0,
            one_time_tokens: 2,
            throttle_keys: 1,
            mails: 2,
            flow_events: 0,
            webhook_deliveries: 0,
            challenges: 2,
        }
    );
    // A second run finds nothing more.
    assert_eq!(purge_expired(&db.pool).await.unwrap(), Purged::default());
}

#[tokio::test]
async fn webhook_deliveries_go_a_month_after_they_ended_and_pending_ones_stay() {
    let db = TestDatabase::migrated().await;
    let u = user(&db).await;
    let webhook: Uuid = sqlx::query_scalar(
        "insert into webhooks (owner_id, url, events, sealed_secret) \
         values ($1, 'https://hooks.example.com/in', array['document.updated'], 'sealed') returning id",
    )
    .bind(u)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // (status, last changed this long ago, expected to stay)
    let rows = [
        ("delivered", "31 days", false),
        ("failed", "31 days", false),
        ("refused", "31 days", false),
        ("delivered", "29 days", true),
        // Still queued, however old: it is the queue, not the log.
        ("pending", "31 days", true),
    ];
    let mut ids = Vec::new();
    for (status, age, _) in rows {
        let id: Uuid = sqlx::query_scalar(
            "insert into webhook_deliveries (webhook_id, event, payload, status, created_at, updated_at) \
             values ($1, 'document.updated', '{}', $2, now() - $3::interval, now() - $3::interval) returning id",
        )
        .bind(webhook)
        .bind(status)
        .bind(age)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }

    let purged = purge_expired(&db.pool).await.unwrap();

    assert_eq!(purged.webhook_deliveries, 3);
    for ((status, age, stays), id) in rows.into_iter().zip(ids) {
        assert_eq!(
            exists(&db, "webhook_deliveries", id).await,
            stays,
            "{status}, {age} ago"
        );
    }
    assert!(exists(&db, "webhooks", webhook).await, "the webhook stays");
}
