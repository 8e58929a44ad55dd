//! The app and its database at start-up.

use bulwark_app::startup::Application;
use bulwark_testkit::TestDatabase;

use crate::helpers::test_config;

#[tokio::test]
async fn migrate_on_start_applies_every_migration_to_an_empty_database() {
    let db = TestDatabase::empty().await;
    let mut config = test_config(&[("MIGRATE_ON_START", "true")]);
    config.database = db.settings();

    let app = Application::build(&config, None)
        .await
        .expect("starts and migrates");

    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public' order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        tables.contains(&"users".to_owned()) && tables.contains(&"audit_events".to_owned()),
        "{tables:?}"
    );
    drop(app);
}

#[tokio::test]
async fn without_migrate_on_start_the_database_is_left_alone() {
    let db = TestDatabase::empty().await;
    let mut config = test_config(&[]);
    config.database = db.settings();

    let app = Application::build(&config, None).await.expect("starts");

    let count: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_schema = 'public'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(count, 0);
    drop(app);
}
