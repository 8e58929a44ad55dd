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

#[tokio::test]
async fn credentials_by_id_are_those_of_the_account_and_none_once_it_is_deleted() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("byid@example.com")).await.unwrap();

    let credentials = users.credentials_by_id(created.id).await.unwrap().unwrap();

    assert_eq!(credentials.user_id, created.id);
    assert_eq!(
        credentials.password_hash,
        Some(new_user("byid@example.com").password_hash)
    );
    assert!(!credentials.locked);
    assert!(
        users
            .credentials_by_id(Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
    users.delete_and_anonymise(created.id).await.unwrap();
    assert!(users.credentials_by_id(created.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_new_display_name_is_stored_and_returned_and_marks_the_row_updated() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("name@example.com")).await.unwrap();
    sqlx::query("update users set updated_at = now() - interval '1 day' where id = $1")
        .bind(created.id)
        .execute(&db.pool)
        .await
        .unwrap();

    let updated = users
        .update_display_name(created.id, &DisplayName::parse("Countess Ada").unwrap())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(updated.display_name.as_str(), "Countess Ada");
    assert_eq!(
        (updated.id, &updated.email),
        (created.id, &created.email),
        "nothing else changed"
    );
    assert_eq!(users.find(created.id).await.unwrap(), Some(updated));
    let recent: bool = sqlx::query_scalar(
        "select updated_at > now() - interval '1 minute' from users where id = $1",
    )
    .bind(created.id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(recent, "updated_at was bumped");
    assert!(
        users
            .update_display_name(Uuid::new_v4(), &DisplayName::parse("X").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn verifying_an_email_twice_keeps_the_first_time() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("verify@example.com")).await.unwrap();

    assert!(users.mark_email_verified(created.id).await.unwrap());
    let first = users
        .find(created.id)
        .await
        .unwrap()
        .unwrap()
        .email_verified_at
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(users.mark_email_verified(created.id).await.unwrap());

    let second = users
        .find(created.id)
        .await
        .unwrap()
        .unwrap()
        .email_verified_at;
    assert_eq!(second, Some(first));
    assert!(!users.mark_email_verified(Uuid::new_v4()).await.unwrap());
}

#[tokio::test]
async fn an_account_can_be_locked_and_unlocked() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("lock@example.com")).await.unwrap();

    assert!(users.set_locked(created.id, true).await.unwrap());
    let locked = users.credentials(&created.email).await.unwrap().unwrap();
    assert!(locked.locked);
    assert!(users.find(created.id).await.unwrap().unwrap().locked);

    assert!(users.set_locked(created.id, false).await.unwrap());
    assert!(
        !users
            .credentials(&created.email)
            .await
            .unwrap()
            .unwrap()
            .locked
    );
    assert!(!users.set_locked(Uuid::new_v4(), true).await.unwrap());
}

#[tokio::test]
async fn deleting_an_account_erases_its_personal_data_and_frees_its_email() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("Leaving@example.com")).await.unwrap();
    users.mark_email_verified(created.id).await.unwrap();

    assert!(users.delete_and_anonymise(created.id).await.unwrap());

    assert_eq!(users.find(created.id).await.unwrap(), None);
    assert!(users.credentials(&created.email).await.unwrap().is_none());
    assert!(users.credentials_by_id(created.id).await.unwrap().is_none());
    let (email, display_name, hash, verified, deleted): (
        String,
        String,
        Option<String>,
        bool,
        bool,
    ) = sqlx::query_as(
        "select email, display_name, password_hash, email_verified_at is not null, deleted_at is not null from users where id = $1",
    )
    .bind(created.id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(email, format!("deleted-{}@deleted.invalid", created.id));
    assert!(!email.to_lowercase().contains("leaving"));
    assert_eq!(display_name, "Deleted user");
    assert_eq!((hash, verified, deleted), (None, false, true));
    // Nothing about a deleted account can be changed through the repository any more.
    assert!(
        users
            .update_display_name(created.id, &DisplayName::parse("Back").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(!users.mark_email_verified(created.id).await.unwrap());
    assert!(!users.set_locked(created.id, true).await.unwrap());
    assert!(
        !users.delete_and_anonymise(created.id).await.unwrap(),
        "already deleted"
    );
    // The address is free for a new account, in any case.
    let again = users.create(new_user("leaving@example.com")).await.unwrap();
    assert_ne!(again.id, created.id);
}

#[tokio::test]
async fn deleting_one_account_leaves_the_others_alone() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let leaving = users.create(new_user("a@example.com")).await.unwrap();
    let staying = users.create(new_user("b@example.com")).await.unwrap();

    users.delete_and_anonymise(leaving.id).await.unwrap();

    assert_eq!(users.find(staying.id).await.unwrap(), Some(staying));
    assert!(!users.delete_and_anonymise(Uuid::new_v4()).await.unwrap());
}
