//! Repository tests for users, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use bulwark_domain::document::Cursor;
use bulwark_domain::password::PasswordHash;
use bulwark_domain::user::{
    CreateUserError, DisplayName, Email, NewUser, Plan, Role, User, UserQuery, UserRepository,
    UserSummary,
};
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

fn named(email: &str, display_name: &str) -> NewUser {
    NewUser {
        display_name: DisplayName::parse(display_name).unwrap(),
        ..new_user(email)
    }
}

fn listing(limit: u32) -> UserQuery {
    UserQuery {
        limit,
        after: None,
        q: None,
    }
}

fn searching(q: &str) -> UserQuery {
    UserQuery {
        q: Some(q.to_owned()),
        ..listing(100)
    }
}

/// Every page of the user list, following `next` until there is none.
async fn all_pages(users: &PgUserRepository, limit: u32) -> Vec<Vec<UserSummary>> {
    let mut pages = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = users
            .list(&UserQuery {
                after,
                ..listing(limit)
            })
            .await
            .unwrap();
        pages.push(page.items);
        match page.next {
            Some(cursor) => after = Some(cursor),
            None => return pages,
        }
        assert!(pages.len() <= 100, "paging does not terminate");
    }
}

/// The emails a search finds, as a set.
async fn found(users: &PgUserRepository, q: &str) -> HashSet<String> {
    let page = users.list(&searching(q)).await.unwrap();
    assert!(page.next.is_none());
    page.items
        .iter()
        .map(|s| s.user.email.as_str().to_owned())
        .collect()
}

fn emails(list: &[&str]) -> HashSet<String> {
    list.iter().map(|e| (*e).to_owned()).collect()
}

async fn summary(users: &PgUserRepository, user: &User) -> UserSummary {
    users.summary(user.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_new_user_is_on_the_free_plan_and_its_summary_is_the_user() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());

    let created = users.create(new_user("fresh@example.com")).await.unwrap();

    assert_eq!(
        users.summary(created.id).await.unwrap(),
        Some(UserSummary {
            user: created,
            plan: Plan::Free
        })
    );
    assert_eq!(users.summary(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn the_user_list_pages_newest_first_without_gaps_or_repeats_when_many_share_one_created_at() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            users
                .create(new_user(&format!("user{i}@example.com")))
                .await
                .unwrap()
                .id,
        );
    }
    // Twenty of the twenty-five in the very same microsecond: only the id tells them apart, and
    // page boundaries fall in the middle of the tie.
    sqlx::query("update users set created_at = '2026-01-01T00:00:00Z' where id = any($1)")
        .bind(&ids[..20])
        .execute(&db.pool)
        .await
        .unwrap();

    let pages = all_pages(&users, 10).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let paged: Vec<Uuid> = pages.iter().flatten().map(|s| s.user.id).collect();
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 25, "no repeats");
    assert_eq!(
        paged.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>(),
        "no gaps"
    );
    let one_page = users.list(&listing(100)).await.unwrap();
    assert_eq!(one_page.next, None);
    assert_eq!(
        paged,
        one_page.items.iter().map(|s| s.user.id).collect::<Vec<_>>(),
        "the pages, joined, are the one-page listing in the same order"
    );
    let newest_first = pages
        .iter()
        .flatten()
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| (w[0].user.created_at, w[0].user.id) > (w[1].user.created_at, w[1].user.id));
    assert!(newest_first, "ordered by (created_at, id), descending");
    // The five created later than the tie come first.
    assert_eq!(
        pages[0][..5]
            .iter()
            .map(|s| s.user.id)
            .collect::<HashSet<_>>(),
        ids[20..].iter().copied().collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn a_user_page_that_ends_the_list_has_no_next_cursor_and_limits_are_clamped() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    for i in 0..3 {
        users
            .create(new_user(&format!("u{i}@example.com")))
            .await
            .unwrap();
    }

    let exact = users.list(&listing(3)).await.unwrap();
    let short = users.list(&listing(2)).await.unwrap();
    let zero = users.list(&listing(0)).await.unwrap();
    let huge = users.list(&listing(u32::MAX)).await.unwrap();

    assert_eq!((exact.items.len(), exact.next), (3, None));
    let last = &short.items.last().unwrap().user;
    assert_eq!(
        short.next,
        Some(Cursor {
            created_at: last.created_at,
            id: last.id
        })
    );
    assert_eq!(zero.items.len(), 1, "a limit of 0 reads as 1");
    assert!(zero.next.is_some());
    assert_eq!((huge.items.len(), huge.next), (3, None));
}

#[tokio::test]
async fn the_user_search_matches_email_or_display_name_literally_and_in_any_case() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    for (email, display_name) in [
        ("percent@example.com", "100% Ada"),
        ("hundred@example.com", "100 Grace"),
        ("snake_case@example.com", "Snake"),
        ("snakeXcase@example.com", "Other snake"),
        ("obrien@example.com", "Conan O'Brien"),
        ("o'hara@example.org", "Scarlett"),
        ("quiet@example.net", "Nobody"),
    ] {
        users.create(named(email, display_name)).await.unwrap();
    }

    assert_eq!(
        found(&users, "%").await,
        emails(&["percent@example.com"]),
        "% is not a wildcard"
    );
    assert_eq!(found(&users, "0%").await, emails(&["percent@example.com"]));
    assert_eq!(found(&users, "%%").await, emails(&[]));
    assert_eq!(
        found(&users, "_").await,
        emails(&["snake_case@example.com"]),
        "_ is not a wildcard"
    );
    assert_eq!(
        found(&users, "e_c").await,
        emails(&["snake_case@example.com"])
    );
    assert_eq!(
        found(&users, "'").await,
        emails(&["obrien@example.com", "o'hara@example.org"]),
        "a quote is a character, in the email or the display name"
    );
    assert_eq!(found(&users, "' or '1'='1").await, emails(&[]));
    assert_eq!(found(&users, r"\").await, emails(&[]));
    assert_eq!(
        found(&users, "ADA").await,
        emails(&["percent@example.com"]),
        "case-insensitive, on the display name"
    );
    assert_eq!(
        found(&users, "EXAMPLE.ORG").await,
        emails(&["o'hara@example.org"]),
        "case-insensitive, on the email"
    );
    assert_eq!(
        found(&users, "snake").await,
        emails(&["snake_case@example.com", "snakeXcase@example.com"]),
        "either field matches"
    );
    assert_eq!(
        found(&users, "").await.len(),
        7,
        "an empty term matches all"
    );
}

#[tokio::test]
async fn deleted_users_are_never_listed_found_by_search_or_summarised() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let leaving = users
        .create(named("leaving@example.com", "Leaving"))
        .await
        .unwrap();
    let staying = users
        .create(named("staying@example.com", "Staying"))
        .await
        .unwrap();

    assert!(users.delete_and_anonymise(leaving.id).await.unwrap());

    let listed: Vec<Uuid> = users
        .list(&listing(100))
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.user.id)
        .collect();
    assert_eq!(listed, vec![staying.id]);
    assert_eq!(
        found(&users, "deleted").await,
        emails(&[]),
        "not by its placeholder"
    );
    assert_eq!(found(&users, "leaving").await, emails(&[]));
    assert_eq!(users.summary(leaving.id).await.unwrap(), None);
}

#[tokio::test]
async fn role_and_plan_changes_are_stored_and_change_nothing_else() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("promote@example.com")).await.unwrap();
    let bystander = users.create(new_user("other@example.com")).await.unwrap();
    sqlx::query("update users set updated_at = now() - interval '1 day'")
        .execute(&db.pool)
        .await
        .unwrap();

    assert!(users.set_role(created.id, Role::Moderator).await.unwrap());
    assert!(users.set_plan(created.id, Plan::Pro).await.unwrap());

    let after = summary(&users, &created).await;
    assert_eq!(
        after,
        UserSummary {
            user: User {
                role: Role::Moderator,
                ..created.clone()
            },
            plan: Plan::Pro
        }
    );
    let recent: bool = sqlx::query_scalar(
        "select updated_at > now() - interval '1 minute' from users where id = $1",
    )
    .bind(created.id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(recent, "updated_at was bumped");
    assert_eq!(
        summary(&users, &bystander).await,
        UserSummary {
            user: bystander,
            plan: Plan::Free
        },
        "no other row changed"
    );

    // And back again.
    assert!(users.set_role(created.id, Role::User).await.unwrap());
    assert!(users.set_plan(created.id, Plan::Free).await.unwrap());
    assert_eq!(
        summary(&users, &created).await,
        UserSummary {
            user: created,
            plan: Plan::Free
        }
    );
}

#[tokio::test]
async fn role_and_plan_changes_to_unknown_or_deleted_users_report_false_and_store_nothing() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let deleted = users.create(new_user("deleted@example.com")).await.unwrap();
    users.delete_and_anonymise(deleted.id).await.unwrap();

    assert!(!users.set_role(Uuid::new_v4(), Role::Admin).await.unwrap());
    assert!(!users.set_plan(Uuid::new_v4(), Plan::Pro).await.unwrap());
    assert!(!users.set_role(deleted.id, Role::Admin).await.unwrap());
    assert!(!users.set_plan(deleted.id, Plan::Pro).await.unwrap());

    let (role, plan): (String, String) =
        sqlx::query_as("select role, plan from users where id = $1")
            .bind(deleted.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((role.as_str(), plan.as_str()), ("user", "free"));
}

#[tokio::test]
async fn the_table_refuses_a_plan_the_domain_does_not_know() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("plan@example.com")).await.unwrap();

    let update = sqlx::query("update users set plan = 'enterprise' where id = $1")
        .bind(created.id)
        .execute(&db.pool)
        .await
        .unwrap_err();
    let insert = sqlx::query(
        "insert into users (email, display_name, plan) values ('x@example.com', 'X', 'enterprise')",
    )
    .execute(&db.pool)
    .await
    .unwrap_err();

    for error in [update, insert] {
        assert_eq!(
            error.as_database_error().and_then(|e| e.constraint()),
            Some("users_plan_check")
        );
    }
    assert_eq!(summary(&users, &created).await.plan, Plan::Free);
}

#[tokio::test]
async fn a_stored_plan_the_domain_refuses_is_an_error_not_a_panic_or_a_guess() {
    let db = TestDatabase::migrated().await;
    let users = PgUserRepository::new(db.pool.clone());
    let created = users.create(new_user("odd@example.com")).await.unwrap();
    // Only a writer that goes around the table's check could store this; the repository must
    // still refuse to turn it into a plan.
    sqlx::query("alter table users drop constraint users_plan_check")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("update users set plan = 'enterprise' where id = $1")
        .bind(created.id)
        .execute(&db.pool)
        .await
        .unwrap();

    assert!(users.summary(created.id).await.is_err());
    assert!(users.list(&listing(10)).await.is_err());
    assert!(
        users.find(created.id).await.unwrap().is_some(),
        "the user itself is still readable"
    );
}
