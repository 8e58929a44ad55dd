//! Repository tests for the audit trail, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use bulwark_domain::audit::{AuditDetail, AuditLog, AuditValue, EventType, NewAuditEvent, Outcome};
use bulwark_persistence::audit::PgAuditLog;
use bulwark_testkit::TestDatabase;
use sqlx::Row;

fn login_failed() -> NewAuditEvent {
    NewAuditEvent::new(
        EventType::parse("auth.login_failed").unwrap(),
        Outcome::Failure,
    )
    .with_actor(uuid::Uuid::new_v4())
    .with_origin(
        Some("203.0.113.7".parse::<IpAddr>().unwrap()),
        Some("curl/8.0"),
    )
    .with_request_id("req-1")
    .with_detail(
        AuditDetail::new()
            .with("reason", AuditValue::Text("wrong_password".into()))
            .unwrap(),
    )
}

#[tokio::test]
async fn an_event_is_stored_with_who_what_when_and_where() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());
    let event = login_failed();
    let actor = event.actor_user_id.unwrap();

    log.record(event).await.unwrap();

    let row = sqlx::query(
        "select event_type, outcome, actor_user_id, host(ip) as ip, user_agent, request_id, detail, occurred_at is not null as has_time from audit_events",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("event_type"), "auth.login_failed");
    assert_eq!(row.get::<String, _>("outcome"), "failure");
    assert_eq!(row.get::<uuid::Uuid, _>("actor_user_id"), actor);
    assert_eq!(row.get::<String, _>("ip"), "203.0.113.7");
    assert_eq!(row.get::<String, _>("user_agent"), "curl/8.0");
    assert_eq!(row.get::<String, _>("request_id"), "req-1");
    assert_eq!(
        row.get::<serde_json::Value, _>("detail"),
        serde_json::json!({"reason": "wrong_password"})
    );
    assert!(row.get::<bool, _>("has_time"));
}

#[tokio::test]
async fn ipv6_addresses_are_stored() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());

    log.record(login_failed().with_origin(Some("2001:db8::1".parse().unwrap()), None))
        .await
        .unwrap();

    let ip: String = sqlx::query_scalar("select host(ip) from audit_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(ip, "2001:db8::1");
}

#[tokio::test]
async fn the_audit_trail_rejects_update_delete_and_truncate() {
    let db = TestDatabase::migrated().await;
    PgAuditLog::new(db.pool.clone())
        .record(login_failed())
        .await
        .unwrap();

    for statement in [
        "update audit_events set outcome = 'success'",
        "delete from audit_events",
        "truncate audit_events",
    ] {
        let error = sqlx::query(statement)
            .execute(&db.pool)
            .await
            .expect_err(statement);
        let db_error = error.as_database_error().expect("a database error");
        assert_eq!(
            db_error.code().as_deref(),
            Some("42501"),
            "{statement}: insufficient_privilege"
        );
        assert!(
            db_error.message().contains("append-only"),
            "{statement}: {}",
            db_error.message()
        );
    }
    let count: i64 = sqlx::query_scalar("select count(*) from audit_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "the row survived");
}

#[tokio::test]
async fn the_database_refuses_secret_looking_detail_keys_from_any_writer() {
    // The domain type already refuses these; this is the second line, for code that bypasses it.
    let db = TestDatabase::migrated().await;

    for detail in [
        r#"{"password": "x"}"#,
        r#"{"refresh_token": "x"}"#,
        r#"{"code": "123456"}"#,
        "[]",
    ] {
        let result = sqlx::query("insert into audit_events (event_type, outcome, detail) values ('auth.login', 'success', $1::jsonb)")
            .bind(detail)
            .execute(&db.pool)
            .await;
        let error = result.expect_err(detail);
        let constraint = error
            .as_database_error()
            .and_then(|e| e.constraint().map(str::to_owned));
        assert!(
            constraint.is_some_and(|c| c.starts_with("audit_events_detail_")),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn malformed_event_types_and_outcomes_are_refused_by_named_constraints() {
    let db = TestDatabase::migrated().await;

    for (event_type, outcome, constraint) in [
        ("Auth.Login", "success", "audit_events_event_type_check"),
        ("auth", "success", "audit_events_event_type_check"),
        ("auth.login", "maybe", "audit_events_outcome_check"),
    ] {
        let error = sqlx::query("insert into audit_events (event_type, outcome) values ($1, $2)")
            .bind(event_type)
            .bind(outcome)
            .execute(&db.pool)
            .await
            .expect_err(event_type);
        assert_eq!(
            error.as_database_error().and_then(|e| e.constraint()),
            Some(constraint)
        );
    }
}

#[tokio::test]
async fn emails_are_unique_regardless_of_case() {
    let db = TestDatabase::migrated().await;
    let insert = "insert into users (email, display_name) values ($1, 'Ada')";

    sqlx::query(insert)
        .bind("ada@example.com")
        .execute(&db.pool)
        .await
        .unwrap();
    let error = sqlx::query(insert)
        .bind("ADA@Example.COM")
        .execute(&db.pool)
        .await
        .unwrap_err();

    assert_eq!(
        error.as_database_error().and_then(|e| e.constraint()),
        Some("users_email_key")
    );
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDatabase::migrated().await;

    bulwark_persistence::migrate(&db.pool).await.unwrap();
}

#[tokio::test]
async fn the_service_pool_cancels_statements_past_the_statement_timeout() {
    let db = TestDatabase::migrated().await;
    let mut settings = db.settings();
    settings.statement_timeout = std::time::Duration::from_millis(200);
    let pool = bulwark_persistence::connect(&settings);

    let shown: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    let error = sqlx::query("select pg_sleep(5)")
        .execute(&pool)
        .await
        .unwrap_err();

    assert_eq!(shown, "200ms");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("57014"),
        "query_canceled"
    );
    pool.close().await;
}
