//! Document notifications reach every instance: two fan-outs on one database, as two app
//! instances would have.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark_domain::events::{DocumentChange, DocumentEvent, DocumentEvents, Topic};
use bulwark_persistence::fanout::PgFanout;
use bulwark_testkit::TestDatabase;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// A pool of its own for each "instance": each listener keeps one connection for good.
async fn instance_pool(db: &TestDatabase) -> PgPool {
    PgPoolOptions::new()
        .max_connections(3)
        .connect_with((*db.pool.connect_options()).clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_notification_published_on_one_instance_reaches_subscribers_of_every_instance() {
    let db = TestDatabase::migrated().await;
    let first = PgFanout::new(instance_pool(&db).await, 16);
    let second = PgFanout::new(instance_pool(&db).await, 16);
    first.spawn_listener();
    second.spawn_listener();
    let mut on_first = first.subscribe();
    let mut on_second = second.subscribe();
    // The listeners connect asynchronously: publish until the second instance hears one.
    let document_id = Uuid::new_v4();
    let owner_id = Uuid::new_v4();
    let event = DocumentEvent {
        document_id,
        owner_id,
        change: DocumentChange::Updated { version: 4 },
        occurred_at: time::OffsetDateTime::now_utc(),
    };
    // Both listeners connect asynchronously: publish until each instance has heard one.
    let (received, local) = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut second_heard, mut first_heard) = (None, None);
        loop {
            first.publish(event.clone()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(n) = on_second.try_recv() {
                second_heard.get_or_insert(n);
            }
            if let Ok(n) = on_first.try_recv() {
                first_heard.get_or_insert(n);
            }
            if let (Some(a), Some(b)) = (&second_heard, &first_heard) {
                return (a.clone(), b.clone());
            }
        }
    })
    .await
    .expect("both instances heard the event");

    assert_eq!(received.topic, Topic::Document(document_id));
    assert_eq!(received.event, "document.updated");
    assert_eq!(received.owner_id, owner_id);
    assert_eq!(received.version, Some(4));
    // The publisher's own subscribers hear it too (through the database, like everyone).
    assert_eq!(local, received);
}

#[tokio::test]
async fn a_forged_notification_on_the_channel_is_ignored() {
    let db = TestDatabase::migrated().await;
    let fanout = PgFanout::new(instance_pool(&db).await, 16);
    fanout.spawn_listener();
    let mut receiver = fanout.subscribe();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("select pg_notify('document_events', 'not json')")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), receiver.recv())
            .await
            .is_err()
    );
}
