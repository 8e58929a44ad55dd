//! Repository tests for the audit trail, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::IpAddr;

use bulwark_domain::audit::{
    AuditDetail, AuditLog, AuditQuery, AuditReader, AuditRecord, AuditValue, EventType,
    NewAuditEvent, Outcome,
};
use bulwark_persistence::audit::PgAuditLog;
use bulwark_testkit::TestDatabase;
use sqlx::Row;
use uuid::Uuid;

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

fn event(event_type: &str) -> NewAuditEvent {
    NewAuditEvent::new(EventType::parse(event_type).unwrap(), Outcome::Success)
}

fn listing(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        before_id: None,
        event_type: None,
        user_id: None,
    }
}

/// Every page of a listing, following `next_before_id` until there is none.
async fn all_pages(log: &PgAuditLog, query: AuditQuery) -> Vec<Vec<AuditRecord>> {
    let mut pages = Vec::new();
    let mut before_id = None;
    loop {
        let page = log
            .list(&AuditQuery {
                before_id,
                ..query.clone()
            })
            .await
            .unwrap();
        pages.push(page.items);
        match page.next_before_id {
            Some(id) => before_id = Some(id),
            None => return pages,
        }
        assert!(pages.len() <= 100, "paging does not terminate");
    }
}

fn ids(records: &[AuditRecord]) -> Vec<i64> {
    records.iter().map(|r| r.id).collect()
}

/// The whole trail, newest first, in one page (for comparison with the paged and filtered ones).
async fn everything(log: &PgAuditLog) -> Vec<AuditRecord> {
    let page = log.list(&listing(100)).await.unwrap();
    assert!(page.next_before_id.is_none());
    page.items
}

#[tokio::test]
async fn the_audit_listing_pages_newest_first_by_id_without_gaps_or_repeats() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());
    for _ in 0..25 {
        log.record(event("auth.login")).await.unwrap();
    }

    let pages = all_pages(&log, listing(10)).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let paged: Vec<i64> = pages.iter().flat_map(|p| ids(p)).collect();
    assert!(
        paged.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first: {paged:?}"
    );
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 25, "no repeats");
    assert_eq!(paged, ids(&everything(&log).await), "no gaps");
    let first = log.list(&listing(10)).await.unwrap();
    assert_eq!(
        first.next_before_id,
        first.items.last().map(|r| r.id),
        "the next page starts below the last id shown"
    );
}

#[tokio::test]
async fn an_audit_page_that_ends_the_trail_has_no_next_and_limits_are_clamped() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());
    for _ in 0..3 {
        log.record(event("auth.login")).await.unwrap();
    }

    let exact = log.list(&listing(3)).await.unwrap();
    let zero = log.list(&listing(0)).await.unwrap();
    let huge = log.list(&listing(u32::MAX)).await.unwrap();
    let past_the_oldest = log
        .list(&AuditQuery {
            before_id: exact.items.last().map(|r| r.id),
            ..listing(10)
        })
        .await
        .unwrap();

    assert_eq!((exact.items.len(), exact.next_before_id), (3, None));
    assert_eq!(zero.items.len(), 1, "a limit of 0 reads as 1");
    assert!(zero.next_before_id.is_some());
    assert_eq!((huge.items.len(), huge.next_before_id), (3, None));
    assert!(past_the_oldest.items.is_empty() && past_the_oldest.next_before_id.is_none());
}

#[tokio::test]
async fn the_event_type_filter_returns_that_type_only_and_pages_through_it() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());
    for _ in 0..7 {
        log.record(event("auth.login")).await.unwrap();
        log.record(event("auth.login_failed")).await.unwrap();
        log.record(event("auth.login_failed.extra")).await.unwrap();
    }
    let login = EventType::parse("auth.login").unwrap();

    let pages = all_pages(
        &log,
        AuditQuery {
            event_type: Some(login),
            ..listing(3)
        },
    )
    .await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    let paged: Vec<&AuditRecord> = pages.iter().flatten().collect();
    assert!(
        paged.iter().all(|r| r.event_type == "auth.login"),
        "an exact match, not a prefix"
    );
    let expected: Vec<i64> = everything(&log)
        .await
        .into_iter()
        .filter(|r| r.event_type == "auth.login")
        .map(|r| r.id)
        .collect();
    assert_eq!(paged.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    let unused = log
        .list(&AuditQuery {
            event_type: Some(EventType::parse("admin.never_happened").unwrap()),
            ..listing(10)
        })
        .await
        .unwrap();
    assert!(unused.items.is_empty());
}

#[tokio::test]
async fn the_user_filter_matches_what_the_user_did_or_what_was_done_to_it_and_nothing_else() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    for _ in 0..5 {
        // Ada acts (on a session of hers).
        log.record(
            event("auth.login")
                .with_actor(ada)
                .with_subject("session", Uuid::new_v4()),
        )
        .await
        .unwrap();
        // Bob acts on Ada.
        log.record(
            event("admin.role_changed")
                .with_actor(bob)
                .with_subject("user", ada),
        )
        .await
        .unwrap();
        // Neither concerns Ada: Bob on himself, and an event with no one.
        log.record(
            event("auth.login")
                .with_actor(bob)
                .with_subject("user", bob),
        )
        .await
        .unwrap();
        log.record(event("auth.login_failed")).await.unwrap();
    }
    // Ada on herself: listed once, not twice.
    log.record(
        event("account.password_changed")
            .with_actor(ada)
            .with_subject("user", ada),
    )
    .await
    .unwrap();
    // Someone unknown fails to sign in as Ada: no actor, Ada is the subject.
    log.record(event("auth.login_failed").with_subject("user", ada))
        .await
        .unwrap();
    // A subject of another kind that happens to carry Ada's id is not Ada.
    log.record(
        event("document.deleted")
            .with_actor(bob)
            .with_subject("document", ada),
    )
    .await
    .unwrap();
    let concerns_ada = |r: &AuditRecord| {
        r.actor_user_id == Some(ada) || r.subject == Some(("user".to_owned(), ada))
    };
    let expected: Vec<i64> = everything(&log)
        .await
        .into_iter()
        .filter(concerns_ada)
        .map(|r| r.id)
        .collect();
    assert_eq!(expected.len(), 12);

    // Pages smaller than either side, so each page takes rows from both.
    let pages = all_pages(
        &log,
        AuditQuery {
            user_id: Some(ada),
            ..listing(3)
        },
    )
    .await;

    let paged: Vec<i64> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(paged, expected, "newest first, no gaps, no repeats");
    assert!(pages.iter().flatten().all(concerns_ada));
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 3, 3, 3]);

    // With a type as well: only Ada's events of that type.
    let failed = log
        .list(&AuditQuery {
            user_id: Some(ada),
            event_type: Some(EventType::parse("auth.login_failed").unwrap()),
            ..listing(10)
        })
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 1);
    assert_eq!(
        failed.items[0].subject,
        Some(("user".to_owned(), ada)),
        "not the anonymous failures"
    );
    // And a user no event mentions sees nothing.
    let nobody = log
        .list(&AuditQuery {
            user_id: Some(Uuid::new_v4()),
            ..listing(10)
        })
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.next_before_id.is_none());
}

#[tokio::test]
async fn a_listed_event_carries_everything_that_was_recorded_and_addresses_round_trip() {
    let db = TestDatabase::migrated().await;
    let log = PgAuditLog::new(db.pool.clone());
    let actor = Uuid::new_v4();
    let subject = Uuid::new_v4();
    let addresses: [Option<IpAddr>; 4] = [
        Some("203.0.113.7".parse().unwrap()),
        Some("2001:db8::1".parse().unwrap()),
        Some("::ffff:192.0.2.1".parse().unwrap()),
        None,
    ];
    for ip in addresses {
        log.record(
            event("account.email_changed")
                .with_actor(actor)
                .with_subject("user", subject)
                .with_origin(ip, Some("curl/8.0"))
                .with_request_id("req-42")
                .with_detail(
                    AuditDetail::new()
                        .with("attempt", AuditValue::Integer(2))
                        .unwrap(),
                ),
        )
        .await
        .unwrap();
    }

    let records = everything(&log).await;

    let listed: Vec<Option<IpAddr>> = records.iter().rev().map(|r| r.ip).collect();
    assert_eq!(listed, addresses);
    let first = records.last().unwrap();
    assert_eq!(first.event_type, "account.email_changed");
    assert_eq!(first.outcome, "success");
    assert_eq!(first.actor_user_id, Some(actor));
    assert_eq!(first.subject, Some(("user".to_owned(), subject)));
    assert_eq!(first.user_agent.as_deref(), Some("curl/8.0"));
    assert_eq!(first.request_id.as_deref(), Some("req-42"));
    assert_eq!(first.detail, serde_json::json!({"attempt": 2}));
    let stored_at: time::OffsetDateTime =
        sqlx::query_scalar("select occurred_at from audit_events where id = $1")
            .bind(first.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(first.occurred_at, stored_at);
    let bare = login_failed();
    log.record(NewAuditEvent::new(bare.event_type, Outcome::Denied))
        .await
        .unwrap();
    let newest = log.list(&listing(1)).await.unwrap().items.remove(0);
    assert_eq!(
        (
            newest.outcome.as_str(),
            newest.actor_user_id,
            newest.subject,
            newest.ip,
            newest.user_agent,
            newest.request_id,
            newest.detail
        ),
        (
            "denied",
            None,
            None,
            None,
            None,
            None,
            serde_json::json!({})
        ),
        "an event without the optional parts lists without them"
    );
}
