//! Repository tests for webhooks and their delivery queue, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use bulwark_domain::quota::{Limits, PlanLimits};
use bulwark_domain::webhook::{
    CreateWebhookError, DeliveryOutcome, DeliveryStatus, NewWebhook, WebhookEvent,
    WebhookRepository,
};
use bulwark_domain::webhook_target::WebhookUrl;
use bulwark_persistence::webhook::{MAX_ERROR_CHARS, PgWebhookRepository};
use bulwark_testkit::TestDatabase;
use serde_json::json;
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);
const UPDATED: WebhookEvent = WebhookEvent::DocumentUpdated;
const DELETED: WebhookEvent = WebhookEvent::DocumentDeleted;
const SHARED: WebhookEvent = WebhookEvent::DocumentShared;

async fn user(db: &TestDatabase) -> Uuid {
    sqlx::query_scalar("insert into users (email, display_name) values ($1, 'Test') returning id")
        .bind(format!("{}@example.com", Uuid::new_v4().simple()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn hook(owner_id: Uuid, events: &[WebhookEvent]) -> NewWebhook {
    NewWebhook {
        id: Uuid::new_v4(),
        owner_id,
        url: WebhookUrl::parse("https://hooks.example.com/in", false).unwrap(),
        events: events.to_vec(),
        sealed_secret: "sealed:secret".to_owned(),
    }
}

/// The default limits with `webhooks` webhooks on every plan.
fn webhook_quota(webhooks: u32) -> PlanLimits {
    let defaults = PlanLimits::default();
    PlanLimits {
        free: Limits {
            webhooks,
            ..defaults.free
        },
        pro: Limits {
            webhooks,
            ..defaults.pro
        },
    }
}

/// A repository over a pool wide enough for real concurrency (the test database's own is small).
fn wide_repository(db: &TestDatabase) -> (PgWebhookRepository, sqlx::PgPool) {
    let mut settings = db.settings();
    settings.max_connections = 10;
    let pool = bulwark_persistence::connect(&settings);
    (PgWebhookRepository::new(pool.clone()), pool)
}

/// Makes a delivery due now, as if its lease (or its backoff) had run out.
async fn make_due(db: &TestDatabase, delivery_id: Uuid) {
    sqlx::query(
        "update webhook_deliveries set next_attempt_at = now() - interval '1 second' where id = $1",
    )
    .bind(delivery_id)
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn status_of(db: &TestDatabase, delivery_id: Uuid) -> String {
    sqlx::query_scalar("select status from webhook_deliveries where id = $1")
        .bind(delivery_id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Registers one webhook for `owner` and queues one delivery to it; returns both ids.
async fn one_delivery(repo: &PgWebhookRepository, owner: Uuid) -> (Uuid, Uuid) {
    let webhook = repo
        .create(hook(owner, &[UPDATED]), &PlanLimits::default())
        .await
        .unwrap();
    assert_eq!(
        repo.enqueue(owner, UPDATED, json!({"n": 1})).await.unwrap(),
        1
    );
    let claimed = repo.claim(10, HOUR).await.unwrap();
    assert_eq!(claimed.len(), 1);
    (webhook.id, claimed[0].id)
}

#[tokio::test]
async fn a_webhook_is_listed_found_and_deleted_only_by_its_owner() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let stranger = user(&db).await;

    let created = repo
        .create(hook(owner, &[UPDATED, SHARED]), &PlanLimits::default())
        .await
        .unwrap();

    assert_eq!(created.owner_id, owner);
    assert_eq!(created.url.as_str(), "https://hooks.example.com/in");
    assert_eq!(created.events, [UPDATED, SHARED]);
    assert_eq!(
        repo.list(owner).await.unwrap(),
        std::slice::from_ref(&created)
    );
    assert_eq!(
        repo.find(owner, created.id).await.unwrap(),
        Some(created.clone())
    );
    // Another owner sees nothing and can delete nothing: exactly as if it did not exist.
    assert!(repo.list(stranger).await.unwrap().is_empty());
    assert_eq!(repo.find(stranger, created.id).await.unwrap(), None);
    assert!(!repo.delete(stranger, created.id).await.unwrap());
    assert_eq!(
        repo.find(owner, created.id).await.unwrap(),
        Some(created.clone())
    );

    assert!(repo.delete(owner, created.id).await.unwrap());
    assert_eq!(repo.find(owner, created.id).await.unwrap(), None);
    assert!(!repo.delete(owner, created.id).await.unwrap());
}

#[tokio::test]
async fn the_secret_is_stored_as_given_and_never_returned_by_reads() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;

    let created = repo
        .create(hook(owner, &[UPDATED]), &PlanLimits::default())
        .await
        .unwrap();

    let stored: String = sqlx::query_scalar("select sealed_secret from webhooks where id = $1")
        .bind(created.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, "sealed:secret");
    assert!(!format!("{created:?}").contains("sealed:secret"));
}

#[tokio::test]
async fn the_owners_webhooks_are_listed_newest_first() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let older = repo
        .create(hook(owner, &[UPDATED]), &PlanLimits::default())
        .await
        .unwrap();
    let newer = repo
        .create(hook(owner, &[DELETED]), &PlanLimits::default())
        .await
        .unwrap();
    sqlx::query("update webhooks set created_at = now() - interval '1 hour' where id = $1")
        .bind(older.id)
        .execute(&db.pool)
        .await
        .unwrap();

    let ids: Vec<Uuid> = repo
        .list(owner)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();

    assert_eq!(ids, [newer.id, older.id]);
}

#[tokio::test]
async fn a_webhook_beyond_the_plans_quota_is_refused() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let other = user(&db).await;
    let limits = webhook_quota(2);

    repo.create(hook(owner, &[UPDATED]), &limits).await.unwrap();
    repo.create(hook(owner, &[UPDATED]), &limits).await.unwrap();
    let third = repo.create(hook(owner, &[UPDATED]), &limits).await;

    assert!(
        matches!(third, Err(CreateWebhookError::QuotaExceeded)),
        "{third:?}"
    );
    assert_eq!(repo.list(owner).await.unwrap().len(), 2);
    // The quota is per owner: someone else's webhooks do not count.
    repo.create(hook(other, &[UPDATED]), &limits).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_registrations_under_a_quota_of_three_create_exactly_three() {
    let db = TestDatabase::migrated().await;
    let (repo, pool) = wide_repository(&db);
    let owner = user(&db).await;
    let limits = webhook_quota(3);

    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.create(hook(owner, &[UPDATED]), &limits).await })
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => created += 1,
            Err(CreateWebhookError::QuotaExceeded) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }

    assert_eq!((created, refused), (3, 7));
    assert_eq!(repo.list(owner).await.unwrap().len(), 3);
    pool.close().await;
}

#[tokio::test]
async fn the_table_refuses_unknown_empty_or_nested_events_written_by_sql() {
    let db = TestDatabase::migrated().await;
    let owner = user(&db).await;

    for events in [
        "array['document.archived']::text[]",
        "array['document.created', 'document.updated', 'document.deleted', 'document.shared', 'document.created']::text[]",
        "array['document.updated', 'document.*']::text[]",
        "array[]::text[]",
        "array[null]::text[]",
        "array[array['document.updated'], array['document.deleted']]::text[]",
    ] {
        let sql = format!(
            "insert into webhooks (owner_id, url, events, sealed_secret) \
             values ($1, 'https://hooks.example.com/in', {events}, 'sealed')"
        );
        let error = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .execute(&db.pool)
            .await
            .unwrap_err();
        let constraint = error
            .as_database_error()
            .and_then(|e| e.constraint().map(str::to_owned));
        assert_eq!(
            constraint.as_deref(),
            Some("webhooks_events_check"),
            "{events}"
        );
    }
}

#[tokio::test]
async fn an_event_is_queued_only_for_the_owners_webhooks_subscribed_to_it() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let other = user(&db).await;
    let limits = PlanLimits::default();
    let on_update = repo.create(hook(owner, &[UPDATED]), &limits).await.unwrap();
    let on_both = repo
        .create(hook(owner, &[DELETED, UPDATED]), &limits)
        .await
        .unwrap();
    let on_share = repo.create(hook(owner, &[SHARED]), &limits).await.unwrap();
    let others = repo.create(hook(other, &[UPDATED]), &limits).await.unwrap();

    let queued = repo
        .enqueue(owner, UPDATED, json!({"document_id": "d1"}))
        .await
        .unwrap();

    assert_eq!(queued, 2);
    let claimed = repo.claim(100, HOUR).await.unwrap();
    let targets: HashSet<Uuid> = claimed.iter().map(|c| c.webhook_id).collect();
    assert_eq!(targets, HashSet::from([on_update.id, on_both.id]));
    assert!(!targets.contains(&on_share.id), "not subscribed");
    assert!(!targets.contains(&others.id), "another owner's");
    for delivery in &claimed {
        assert_eq!(delivery.event, UPDATED);
        assert_eq!(delivery.payload, json!({"document_id": "d1"}));
        assert_eq!(delivery.sealed_secret, "sealed:secret");
        assert_eq!(delivery.url.as_str(), "https://hooks.example.com/in");
        assert_eq!(delivery.attempts, 0, "no attempt before the first");
    }
    // An owner without a subscribed webhook queues nothing.
    assert_eq!(repo.enqueue(other, SHARED, json!({})).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_claimers_take_each_delivery_exactly_once() {
    let db = TestDatabase::migrated().await;
    let (repo, pool) = wide_repository(&db);
    let owner = user(&db).await;
    repo.create(hook(owner, &[UPDATED]), &PlanLimits::default())
        .await
        .unwrap();
    for n in 0..20 {
        repo.enqueue(owner, UPDATED, json!({ "n": n }))
            .await
            .unwrap();
    }

    // Each worker claims small batches until the queue looks empty to it.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let batch = repo.claim(3, HOUR).await.unwrap();
                    if batch.is_empty() {
                        return taken;
                    }
                    taken.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut taken = Vec::new();
    for worker in workers {
        taken.extend(worker.await.unwrap());
    }

    let distinct: HashSet<Uuid> = taken.iter().copied().collect();
    assert_eq!(taken.len(), 20, "no delivery was handed out twice");
    assert_eq!(distinct.len(), 20, "every delivery was handed out");
    assert!(repo.claim(100, HOUR).await.unwrap().is_empty());
    pool.close().await;
}

#[tokio::test]
async fn a_claimed_delivery_is_not_claimable_again_until_its_lease_runs_out() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let (_, delivery) = one_delivery(&repo, owner).await;

    let while_leased = repo.claim(10, HOUR).await.unwrap();
    make_due(&db, delivery).await;
    let after_lease = repo.claim(10, HOUR).await.unwrap();

    assert!(while_leased.is_empty(), "held by the first worker");
    assert_eq!(after_lease.len(), 1);
    assert_eq!(after_lease[0].id, delivery);
    assert_eq!(after_lease[0].attempts, 1, "the lost attempt still counts");
    assert_eq!(status_of(&db, delivery).await, "pending");
}

#[tokio::test]
async fn a_tiny_lease_runs_out_by_itself() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    repo.create(hook(owner, &[UPDATED]), &PlanLimits::default())
        .await
        .unwrap();
    repo.enqueue(owner, UPDATED, json!({})).await.unwrap();

    let first = repo.claim(10, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = repo.claim(10, HOUR).await.unwrap();

    assert_eq!(first.len(), 1);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
}

#[tokio::test]
async fn a_retry_reschedules_the_delivery_and_keeps_it_pending() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let (_, delivery) = one_delivery(&repo, owner).await;

    repo.record(
        delivery,
        DeliveryOutcome::Retry {
            after: Duration::from_secs(120),
            status: Some(503),
            error: "the receiver answered 503".to_owned(),
        },
    )
    .await
    .unwrap();

    assert_eq!(status_of(&db, delivery).await, "pending");
    let rescheduled: bool = sqlx::query_scalar(
        "select next_attempt_at between now() + interval '110 seconds' and now() + interval '130 seconds' \
         from webhook_deliveries where id = $1",
    )
    .bind(delivery)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rescheduled, "due after the backoff, not after the lease");
    assert!(repo.claim(10, HOUR).await.unwrap().is_empty());
    make_due(&db, delivery).await;
    let retried = repo.claim(10, HOUR).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
}

#[tokio::test]
async fn delivered_given_up_and_refused_end_the_delivery_for_good() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let outcomes = [
        (DeliveryOutcome::Delivered { status: 204 }, "delivered"),
        (
            DeliveryOutcome::GiveUp {
                status: Some(500),
                error: "the receiver answered 500".to_owned(),
            },
            "failed",
        ),
        (
            DeliveryOutcome::Refused {
                error: "the name resolved to a forbidden address".to_owned(),
            },
            "refused",
        ),
    ];
    for (outcome, expected) in outcomes {
        let owner = user(&db).await;
        let (_, delivery) = one_delivery(&repo, owner).await;

        repo.record(delivery, outcome.clone()).await.unwrap();
        make_due(&db, delivery).await;

        assert_eq!(status_of(&db, delivery).await, expected, "{outcome:?}");
        assert!(
            repo.claim(10, HOUR).await.unwrap().is_empty(),
            "{outcome:?} is final"
        );
    }
}

#[tokio::test]
async fn a_late_outcome_does_not_reopen_a_finished_delivery() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let (_, delivery) = one_delivery(&repo, owner).await;
    repo.record(delivery, DeliveryOutcome::Delivered { status: 200 })
        .await
        .unwrap();

    // A worker whose lease ran out reports a failure after another one delivered.
    repo.record(
        delivery,
        DeliveryOutcome::Retry {
            after: Duration::ZERO,
            status: None,
            error: "timed out".to_owned(),
        },
    )
    .await
    .unwrap();

    assert_eq!(status_of(&db, delivery).await, "delivered");
    assert!(repo.claim(10, HOUR).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_log_shows_each_outcome_newest_first_and_only_to_the_owner() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let stranger = user(&db).await;
    let webhook = repo
        .create(hook(owner, &[UPDATED]), &PlanLimits::default())
        .await
        .unwrap();
    for n in 0..3 {
        repo.enqueue(owner, UPDATED, json!({ "n": n }))
            .await
            .unwrap();
    }
    // Queued an hour, two hours and three hours ago, in payload order.
    sqlx::query(
        "update webhook_deliveries set created_at = now() - ((payload->>'n')::int + 1) * interval '1 hour'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let claimed = repo.claim(10, HOUR).await.unwrap();
    let by_n = |n: i64| {
        claimed
            .iter()
            .find(|c| c.payload["n"] == n)
            .map(|c| c.id)
            .unwrap()
    };
    let long_error = "é".repeat(MAX_ERROR_CHARS + 100);
    repo.record(by_n(0), DeliveryOutcome::Delivered { status: 200 })
        .await
        .unwrap();
    repo.record(
        by_n(1),
        DeliveryOutcome::GiveUp {
            status: Some(999),
            error: long_error,
        },
    )
    .await
    .unwrap();

    let log = repo.deliveries(owner, webhook.id, 50).await.unwrap();

    let ids: Vec<Uuid> = log.iter().map(|d| d.id).collect();
    assert_eq!(ids, [by_n(0), by_n(1), by_n(2)], "newest first");
    assert_eq!(log[0].status, DeliveryStatus::Delivered);
    assert_eq!(log[0].last_response_status, Some(200));
    assert_eq!(log[0].last_error, None);
    assert_eq!(log[1].status, DeliveryStatus::Failed);
    assert_eq!(
        log[1].last_response_status, None,
        "not an HTTP status, not stored"
    );
    assert_eq!(
        log[1].last_error.as_deref().map(|e| e.chars().count()),
        Some(MAX_ERROR_CHARS),
        "cut to the bound, on a character boundary"
    );
    assert_eq!(log[2].status, DeliveryStatus::Pending);
    assert!(log.iter().all(|d| d.attempts == 1 && d.event == UPDATED));
    assert!(log.iter().all(|d| d.webhook_id == webhook.id));
    // The limit is honoured and clamped to at least one.
    assert_eq!(
        repo.deliveries(owner, webhook.id, 2).await.unwrap().len(),
        2
    );
    assert_eq!(
        repo.deliveries(owner, webhook.id, 0).await.unwrap().len(),
        1
    );
    // Another owner reads an empty log, as for a webhook that does not exist.
    assert!(
        repo.deliveries(stranger, webhook.id, 50)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deleting_a_webhook_deletes_its_queue_and_log() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let (webhook, delivery) = one_delivery(&repo, owner).await;
    make_due(&db, delivery).await;

    assert!(repo.delete(owner, webhook).await.unwrap());

    assert!(repo.claim(10, HOUR).await.unwrap().is_empty());
    let left: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // Recording an outcome for it afterwards is harmless.
    repo.record(delivery, DeliveryOutcome::Delivered { status: 200 })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stored_url_the_domain_now_refuses_is_never_handed_out_or_panicked_on() {
    let db = TestDatabase::migrated().await;
    let repo = PgWebhookRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let (webhook, delivery) = one_delivery(&repo, owner).await;
    make_due(&db, delivery).await;
    // Written around the domain: an internal address.
    sqlx::query("update webhooks set url = 'https://169.254.169.254/latest' where id = $1")
        .bind(webhook)
        .execute(&db.pool)
        .await
        .unwrap();

    let claimed = repo.claim(10, HOUR).await.unwrap();
    let found = repo.find(owner, webhook).await;

    assert!(claimed.is_empty(), "never sent to the refused address");
    assert_eq!(status_of(&db, delivery).await, "failed");
    assert!(found.is_err(), "an error for the log, not a webhook");
}
