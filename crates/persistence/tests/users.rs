//! Repository tests for users, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_domain::password::PasswordHash;
use bulwark_domain::user::{CreateUserError, DisplayName, Email, NewUser, Role, UserRepository};
use bulwark_persistence::user::PgUserRepository;
use bulwark_testkit::TestDatabase;
use uuid::Uuid;

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        display_name: DisplayName::parse("Ada").unwrap(),
        password_hash: PasswordHash::from_stored(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        ),
        role: Role::User,
    }
}

#[tokio::test]
async fn a_created_user_can_be_found_by_id_and_by_email_in_any_case() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());

    let created = users
        .create(new_user("Ada.Lovelace@Example.com"))
        .await
        .unwrap();

    assert_eq!(created.email.as_str(), "Ada.Lovelace@example.com");
    assert_eq!(
        (created.role, created.locked, created.email_verified_at),
        (Role::User, false, None)
    );
    assert_eq!(users.find(created.id).await.unwrap(), Some(created.clone()));
    let credentials = users
        .credentials(&Email::parse("ADA.LOVELACE@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.user_id, created.id);
    assert!(credentials.password_hash.is_some() && !credentials.locked);
}

#[tokio::test]
async fn a_taken_email_is_reported_as_such_whatever_its_case() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    users.create(new_user("ada@example.com")).await.unwrap();

    let again = users.create(new_user("ADA@example.com")).await;

    assert!(
        matches!(again, Err(CreateUserError::EmailTaken)),
        "{again:?}"
    );
}

#[tokio::test]
async fn deleted_accounts_are_invisible() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("gone@example.com")).await.unwrap();
    sqlx::query("update users set deleted_at = now() where id = $1")
        .bind(created.id)
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(users.find(created.id).await.unwrap(), None);
    assert!(users.credentials(&created.email).await.unwrap().is_none());
}

#[tokio::test]
async fn unknown_users_are_none_and_locked_ones_say_so() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    assert_eq!(users.find(Uuid::new_v4()).await.unwrap(), None);
    assert!(
        users
            .credentials(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let created = users.create(new_user("locked@example.com")).await.unwrap();
    sqlx::query("update users set locked_at = now() where id = $1")
        .bind(created.id)
        .execute(&db.pool)
        .await
        .unwrap();

    assert!(
        users
            .credentials(&created.email)
            .await
            .unwrap()
            .unwrap()
            .locked
    );
    assert!(users.find(created.id).await.unwrap().unwrap().locked);
}

#[tokio::test]
async fn the_password_hash_can_be_replaced_and_is_never_part_of_a_user() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("pw@example.com")).await.unwrap();
    let newer = PasswordHash::from_stored("$argon2id$v=19$m=24576,t=3,p=1$c2FsdA$bmV3".into());

    users.set_password_hash(created.id, &newer).await.unwrap();

    let credentials = users.credentials(&created.email).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, Some(newer));
    assert!(
        !format!("{:?}", users.find(created.id).await.unwrap()).contains("argon2"),
        "a User never carries the hash"
    );
}

#[tokio::test]
async fn a_row_the_domain_would_refuse_is_an_error_not_a_user() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let id: Uuid = sqlx::query_scalar(
        "insert into users (email, display_name) values ('not-an-email', 'X') returning id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();

    assert!(users.find(id).await.is_err());
}
