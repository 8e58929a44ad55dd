//! Repository tests for documents and their shares, each against a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};

use bulwark_domain::context::Actor;
use bulwark_domain::document::{
    Cursor, Document, DocumentAccess, DocumentBody, DocumentChanges, DocumentQuery,
    DocumentRepository, DocumentTitle, NewDocument, Readable, Share, SharePermission, Tag,
    UpdateDocumentError, Visibility,
};
use bulwark_domain::policy::{self, Permission};
use bulwark_domain::quota::PlanLimits;
use bulwark_domain::user::Role;
use bulwark_persistence::document::PgDocumentRepository;
use bulwark_testkit::TestDatabase;
use time::OffsetDateTime;
use uuid::Uuid;

async fn user(db: &TestDatabase) -> Uuid {
    sqlx::query_scalar("insert into users (email, display_name) values ($1, 'Test') returning id")
        .bind(format!("{}@example.com", Uuid::new_v4().simple()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn deleted_user(db: &TestDatabase) -> Uuid {
    let id = user(db).await;
    sqlx::query("update users set deleted_at = now() where id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    id
}

fn new_doc(title: &str, visibility: Visibility, tags: &[&str]) -> NewDocument {
    NewDocument {
        title: DocumentTitle::parse(title).unwrap(),
        body: DocumentBody::from_stored("<p>body</p>".to_owned()),
        visibility,
        tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
    }
}

fn reader(user_id: Uuid) -> Readable {
    Readable {
        user_id,
        any: false,
    }
}

fn query(limit: u32) -> DocumentQuery {
    DocumentQuery {
        limit,
        after: None,
        q: None,
        tag: None,
        owner: None,
    }
}

fn searching(q: &str) -> DocumentQuery {
    DocumentQuery {
        q: Some(q.to_owned()),
        ..query(100)
    }
}

fn tagged(tag: &str) -> DocumentQuery {
    DocumentQuery {
        tag: Some(Tag::parse(tag).unwrap()),
        ..query(100)
    }
}

fn share(user_id: Uuid, permission: SharePermission) -> Share {
    Share {
        user_id,
        permission,
    }
}

/// The titles a listing returned, as a set (order is asserted separately where it matters).
async fn titles(
    docs: &PgDocumentRepository,
    readable: Readable,
    query: &DocumentQuery,
) -> BTreeSet<String> {
    let page = docs.list(readable, query).await.unwrap();
    page.items
        .iter()
        .map(|d| d.title.as_str().to_owned())
        .collect()
}

fn set(titles: &[&str]) -> BTreeSet<String> {
    titles.iter().map(|t| (*t).to_owned()).collect()
}

/// Every page of a listing, following `next` until there is none.
async fn all_pages(
    docs: &PgDocumentRepository,
    readable: Readable,
    limit: u32,
) -> Vec<Vec<Document>> {
    let mut pages = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = docs
            .list(
                readable,
                &DocumentQuery {
                    after,
                    ..query(limit)
                },
            )
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

/// The full listing in one page, for comparison with the paged one.
async fn everything(docs: &PgDocumentRepository, readable: Readable) -> Vec<Uuid> {
    let page = docs.list(readable, &query(100)).await.unwrap();
    assert!(page.next.is_none());
    page.items.iter().map(|d| d.id).collect()
}

#[tokio::test]
async fn a_created_document_is_found_again_with_its_shares() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, reader_id, writer_id) = (user(&db).await, user(&db).await, user(&db).await);

    let created = docs
        .create(
            owner,
            new_doc("Notes", Visibility::Shared, &["rust", "web"]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    assert!(
        docs.share(created.id, share(reader_id, SharePermission::Read))
            .await
            .unwrap()
    );
    assert!(
        docs.share(created.id, share(writer_id, SharePermission::Write))
            .await
            .unwrap()
    );
    let found = docs.find(created.id).await.unwrap().unwrap();

    assert_eq!(created.owner_id, owner);
    assert_eq!(created.title.as_str(), "Notes");
    assert_eq!(created.body.as_str(), "<p>body</p>");
    assert_eq!(created.visibility, Visibility::Shared);
    assert_eq!(
        created.tags,
        vec![Tag::parse("rust").unwrap(), Tag::parse("web").unwrap()]
    );
    assert_eq!(created.version, 1);
    assert_eq!(
        found.document, created,
        "sharing does not change the document"
    );
    let shares: HashSet<_> = found
        .shares
        .iter()
        .map(|s| (s.user_id, s.permission.as_str()))
        .collect();
    assert_eq!(
        shares,
        HashSet::from([(reader_id, "read"), (writer_id, "write")])
    );
    assert_eq!(docs.find(Uuid::new_v4()).await.unwrap(), None);
}

#[tokio::test]
async fn a_document_without_shares_is_found_with_an_empty_share_list() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;

    let created = docs
        .create(
            owner,
            new_doc("Alone", Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    let found = docs.find(created.id).await.unwrap().unwrap();

    assert!(found.shares.is_empty());
    assert!(found.document.tags.is_empty());
}

#[tokio::test]
async fn the_listing_returns_exactly_what_each_reader_may_read() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, friend, stranger, moderator) = (
        user(&db).await,
        user(&db).await,
        user(&db).await,
        user(&db).await,
    );
    let private = docs
        .create(
            owner,
            new_doc("private", Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    let shared = docs
        .create(
            owner,
            new_doc("shared", Visibility::Shared, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    docs.create(
        owner,
        new_doc("shared-with-nobody", Visibility::Shared, &[]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();
    docs.create(
        owner,
        new_doc("public", Visibility::Public, &[]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();
    docs.share(shared.id, share(friend, SharePermission::Read))
        .await
        .unwrap();
    // A share on a private document is kept but grants nothing.
    docs.share(private.id, share(friend, SharePermission::Write))
        .await
        .unwrap();
    let everything_of_owner = set(&["private", "shared", "shared-with-nobody", "public"]);

    let by_owner = titles(&docs, reader(owner), &query(100)).await;
    let by_friend = titles(&docs, reader(friend), &query(100)).await;
    let by_stranger = titles(&docs, reader(stranger), &query(100)).await;
    let by_moderator = titles(
        &docs,
        Readable {
            user_id: moderator,
            any: true,
        },
        &query(100),
    )
    .await;

    assert_eq!(by_owner, everything_of_owner);
    assert_eq!(
        by_friend,
        set(&["shared", "public"]),
        "a share on a private document grants nothing"
    );
    assert_eq!(
        by_stranger,
        set(&["public"]),
        "a stranger sees public documents only"
    );
    assert_eq!(by_moderator, everything_of_owner);
}

#[tokio::test]
async fn the_listing_agrees_with_document_access_for_every_reader_and_document() {
    // The listing's where clause is meant to be the SQL twin of DocumentAccess::of's `read`: ask
    // both about every (actor, document) pair of a small world and compare.
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, reader_id, writer_id, stranger) = (
        user(&db).await,
        user(&db).await,
        user(&db).await,
        user(&db).await,
    );
    let (moderator, admin) = (user(&db).await, user(&db).await);
    let mut ids = Vec::new();
    for visibility in [Visibility::Private, Visibility::Shared, Visibility::Public] {
        for with_shares in [false, true] {
            let doc = docs
                .create(
                    owner,
                    new_doc(visibility.as_str(), visibility, &[]),
                    &PlanLimits::default(),
                )
                .await
                .unwrap();
            if with_shares {
                docs.share(doc.id, share(reader_id, SharePermission::Read))
                    .await
                    .unwrap();
                docs.share(doc.id, share(writer_id, SharePermission::Write))
                    .await
                    .unwrap();
            }
            ids.push(doc.id);
        }
    }
    let actors = [
        (owner, Role::User),
        (reader_id, Role::User),
        (writer_id, Role::User),
        (stranger, Role::User),
        (moderator, Role::Moderator),
        (admin, Role::Admin),
    ]
    .map(|(user_id, role)| Actor {
        user_id,
        session_id: Uuid::new_v4(),
        role,
        authenticated_at: OffsetDateTime::now_utc(),
        credential: bulwark_domain::context::Credential::Session,
        role_withheld: false,
        plan: bulwark_domain::user::Plan::Free,
    });

    for actor in actors {
        let readable = Readable {
            user_id: actor.user_id,
            any: policy::allows(&actor, Permission::DocumentsReadAny)
                || policy::allows(&actor, Permission::DocumentsManageAny),
        };
        let listed: HashSet<Uuid> = everything(&docs, readable).await.into_iter().collect();
        for id in &ids {
            let doc = docs.find(*id).await.unwrap().unwrap();
            let may_read = DocumentAccess::of(&actor, &doc).read;
            assert_eq!(
                listed.contains(id),
                may_read,
                "{:?} reading a {:?} document with {} shares",
                actor.role,
                doc.document.visibility,
                doc.shares.len()
            );
        }
    }
}

#[tokio::test]
async fn twenty_five_documents_page_by_ten_as_ten_ten_and_five_without_gaps_or_repeats() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, other) = (user(&db).await, user(&db).await);
    for i in 0..25 {
        docs.create(
            owner,
            new_doc(&format!("doc {i}"), Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
        // Someone else's private documents, interleaved: they must never fill a page.
        docs.create(
            other,
            new_doc(&format!("other {i}"), Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    }

    let pages = all_pages(&docs, reader(owner), 10).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let paged: Vec<Uuid> = pages.iter().flatten().map(|d| d.id).collect();
    assert_eq!(
        paged,
        everything(&docs, reader(owner)).await,
        "the pages, joined, are the one-page listing in the same order"
    );
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 25, "no repeats");
    assert!(pages.iter().flatten().all(|d| d.owner_id == owner));
    let newest_first = pages
        .iter()
        .flatten()
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id));
    assert!(newest_first, "ordered by (created_at, id), descending");
}

#[tokio::test]
async fn paging_is_exact_when_many_documents_share_one_created_at() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let doc = docs
            .create(
                owner,
                new_doc(&format!("doc {i}"), Visibility::Private, &[]),
                &PlanLimits::default(),
            )
            .await
            .unwrap();
        ids.push(doc.id);
    }
    // Twenty of the twenty-five in the very same microsecond: only the id tells them apart, and
    // page boundaries fall in the middle of the tie.
    sqlx::query("update documents set created_at = '2026-01-01T00:00:00Z' where id = any($1)")
        .bind(&ids[..20])
        .execute(&db.pool)
        .await
        .unwrap();

    let pages = all_pages(&docs, reader(owner), 10).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let paged: Vec<Uuid> = pages.iter().flatten().map(|d| d.id).collect();
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 25, "no repeats");
    assert_eq!(
        paged.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>(),
        "no gaps"
    );
    assert_eq!(paged, everything(&docs, reader(owner)).await);
}

#[tokio::test]
async fn a_page_that_exactly_ends_the_listing_has_no_next_cursor() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;
    for i in 0..10 {
        docs.create(
            owner,
            new_doc(&format!("doc {i}"), Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    }

    let exact = docs.list(reader(owner), &query(10)).await.unwrap();
    let short = docs.list(reader(owner), &query(9)).await.unwrap();

    assert_eq!(exact.items.len(), 10);
    assert_eq!(exact.next, None, "no empty last page to fetch");
    assert_eq!(short.items.len(), 9);
    let last = short.items.last().unwrap();
    assert_eq!(
        short.next,
        Some(Cursor {
            created_at: last.created_at,
            id: last.id
        })
    );
}

#[tokio::test]
async fn an_out_of_range_limit_is_clamped_rather_than_trusted() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;
    for i in 0..3 {
        docs.create(
            owner,
            new_doc(&format!("doc {i}"), Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    }

    let zero = docs.list(reader(owner), &query(0)).await.unwrap();
    let huge = docs.list(reader(owner), &query(u32::MAX)).await.unwrap();

    assert_eq!(zero.items.len(), 1, "a limit of 0 reads as 1");
    assert!(zero.next.is_some());
    assert_eq!(huge.items.len(), 3);
}

#[tokio::test]
async fn the_title_search_matches_wildcards_and_quotes_literally_and_never_leaks() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, other) = (user(&db).await, user(&db).await);
    for title in [
        "100% sure",
        "100 percent",
        "snake_case",
        "snakeXcase",
        r"back\slash",
        "backslash",
        "it's ' OR 1=1-- fine",
        "Quarterly REPORT",
    ] {
        docs.create(
            owner,
            new_doc(title, Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    }
    // Someone else's private documents that every pattern would match if it were a wildcard or
    // escaped the where clause.
    for title in [
        "100% secret",
        "secret_plan",
        r"secret\key",
        "' OR 1=1-- secret",
    ] {
        docs.create(
            other,
            new_doc(title, Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    }
    let search = |q: &'static str| {
        let docs = docs.clone();
        async move { titles(&docs, reader(owner), &searching(q)).await }
    };

    assert_eq!(search("%").await, set(&["100% sure"]));
    assert_eq!(search("0%").await, set(&["100% sure"]));
    assert_eq!(search("%%").await, set(&[]));
    assert_eq!(search("_").await, set(&["snake_case"]));
    assert_eq!(search("e_c").await, set(&["snake_case"]));
    assert_eq!(search(r"\").await, set(&[r"back\slash"]));
    assert_eq!(search(r"k\s").await, set(&[r"back\slash"]));
    assert_eq!(search(r"\%").await, set(&[]));
    assert_eq!(search("' OR 1=1--").await, set(&["it's ' OR 1=1-- fine"]));
    assert_eq!(search("' or '1'='1").await, set(&[]));
    assert_eq!(
        search("report").await,
        set(&["Quarterly REPORT"]),
        "case-insensitive"
    );
    assert_eq!(search("SNAKE").await, set(&["snake_case", "snakeXcase"]));
    assert_eq!(search("secret").await, set(&[]), "never someone else's");
}

#[tokio::test]
async fn the_tag_filter_returns_only_readable_documents_with_that_tag() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, other) = (user(&db).await, user(&db).await);
    docs.create(
        owner,
        new_doc("both", Visibility::Private, &["rust", "web"]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();
    docs.create(
        owner,
        new_doc("rust only", Visibility::Private, &["rust"]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();
    docs.create(
        owner,
        new_doc("untagged", Visibility::Private, &[]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();
    docs.create(
        other,
        new_doc("their rust", Visibility::Private, &["rust"]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();
    docs.create(
        other,
        new_doc("public rust", Visibility::Public, &["rust"]),
        &PlanLimits::default(),
    )
    .await
    .unwrap();

    assert_eq!(
        titles(&docs, reader(owner), &tagged("rust")).await,
        set(&["both", "rust only", "public rust"])
    );
    assert_eq!(
        titles(&docs, reader(owner), &tagged("web")).await,
        set(&["both"])
    );
    assert_eq!(titles(&docs, reader(owner), &tagged("go")).await, set(&[]));
    let combined = DocumentQuery {
        q: Some("ONLY".to_owned()),
        ..tagged("rust")
    };
    assert_eq!(
        titles(&docs, reader(owner), &combined).await,
        set(&["rust only"])
    );
}

#[tokio::test]
async fn an_update_changes_only_what_it_names_and_bumps_the_version() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let created = docs
        .create(
            owner,
            new_doc("Draft", Visibility::Private, &["rust"]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();

    let retitled = docs
        .update(
            created.id,
            1,
            DocumentChanges {
                title: Some(DocumentTitle::parse("Final").unwrap()),
                ..DocumentChanges::default()
            },
        )
        .await
        .unwrap();
    let cleared = docs
        .update(
            created.id,
            2,
            DocumentChanges {
                visibility: Some(Visibility::Public),
                tags: Some(Vec::new()),
                body: Some(DocumentBody::from_stored("<p>new</p>".to_owned())),
                ..DocumentChanges::default()
            },
        )
        .await
        .unwrap();

    assert_eq!(retitled.title.as_str(), "Final");
    assert_eq!(retitled.version, 2);
    assert_eq!(
        (&retitled.body, retitled.visibility, &retitled.tags),
        (&created.body, created.visibility, &created.tags),
        "what was not named is unchanged"
    );
    assert!(retitled.updated_at >= created.updated_at);
    assert_eq!(retitled.created_at, created.created_at);
    assert_eq!(cleared.version, 3);
    assert_eq!(cleared.title.as_str(), "Final");
    assert_eq!(cleared.visibility, Visibility::Public);
    assert!(cleared.tags.is_empty(), "Some(empty) replaces the tags");
    assert_eq!(cleared.body.as_str(), "<p>new</p>");
    assert_eq!(
        docs.find(created.id).await.unwrap().unwrap().document,
        cleared
    );
}

#[tokio::test]
async fn an_update_at_a_stale_version_is_refused_and_changes_nothing() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let created = docs
        .create(
            owner,
            new_doc("Draft", Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    let rename = |title: &str| DocumentChanges {
        title: Some(DocumentTitle::parse(title).unwrap()),
        ..DocumentChanges::default()
    };
    docs.update(created.id, 1, rename("First writer"))
        .await
        .unwrap();

    let second = docs.update(created.id, 1, rename("Second writer")).await;
    let future = docs.update(created.id, 7, rename("From the future")).await;

    assert!(
        matches!(second, Err(UpdateDocumentError::Stale)),
        "{second:?}"
    );
    assert!(
        matches!(future, Err(UpdateDocumentError::Stale)),
        "{future:?}"
    );
    let stored = docs.find(created.id).await.unwrap().unwrap().document;
    assert_eq!((stored.title.as_str(), stored.version), ("First writer", 2));
}

#[tokio::test]
async fn updating_a_missing_document_is_not_found_rather_than_stale() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());

    let result = docs
        .update(Uuid::new_v4(), 1, DocumentChanges::default())
        .await;

    assert!(
        matches!(result, Err(UpdateDocumentError::NotFound)),
        "{result:?}"
    );
}

#[tokio::test]
async fn deleting_a_document_takes_its_shares_with_it() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, friend) = (user(&db).await, user(&db).await);
    let doc = docs
        .create(
            owner,
            new_doc("Doomed", Visibility::Shared, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    docs.share(doc.id, share(friend, SharePermission::Write))
        .await
        .unwrap();

    let deleted = docs.delete(doc.id).await.unwrap();
    let deleted_again = docs.delete(doc.id).await.unwrap();

    assert!(deleted);
    assert!(!deleted_again, "nothing left to delete");
    assert_eq!(docs.find(doc.id).await.unwrap(), None);
    let shares_left: i64 =
        sqlx::query_scalar("select count(*) from document_shares where document_id = $1")
            .bind(doc.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(shares_left, 0);
    assert!(
        titles(&docs, reader(friend), &query(100)).await.is_empty(),
        "no dangling access"
    );
}

#[tokio::test]
async fn sharing_again_changes_the_permission_instead_of_adding_a_share() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, friend) = (user(&db).await, user(&db).await);
    let doc = docs
        .create(
            owner,
            new_doc("Shared", Visibility::Shared, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();

    let first = docs
        .share(doc.id, share(friend, SharePermission::Read))
        .await
        .unwrap();
    let again = docs
        .share(doc.id, share(friend, SharePermission::Write))
        .await
        .unwrap();

    assert!(first && again);
    let found = docs.find(doc.id).await.unwrap().unwrap();
    assert_eq!(found.shares, vec![share(friend, SharePermission::Write)]);
    assert_eq!(found.document.version, 1, "sharing is not an edit");
}

#[tokio::test]
async fn sharing_with_a_deleted_or_unknown_user_or_on_a_missing_document_stores_nothing() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, gone, friend) = (user(&db).await, deleted_user(&db).await, user(&db).await);
    let doc = docs
        .create(
            owner,
            new_doc("Shared", Visibility::Shared, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();

    let with_deleted = docs
        .share(doc.id, share(gone, SharePermission::Read))
        .await
        .unwrap();
    let with_unknown = docs
        .share(doc.id, share(Uuid::new_v4(), SharePermission::Read))
        .await
        .unwrap();
    let on_missing = docs
        .share(Uuid::new_v4(), share(friend, SharePermission::Read))
        .await
        .unwrap();

    assert!(!with_deleted, "a deleted user cannot be given access");
    assert!(!with_unknown);
    assert!(!on_missing);
    let shares: i64 = sqlx::query_scalar("select count(*) from document_shares")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(shares, 0);
}

#[tokio::test]
async fn unsharing_removes_the_share_once_and_with_it_the_access() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let (owner, friend) = (user(&db).await, user(&db).await);
    let doc = docs
        .create(
            owner,
            new_doc("Shared", Visibility::Shared, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    docs.share(doc.id, share(friend, SharePermission::Read))
        .await
        .unwrap();
    assert_eq!(
        titles(&docs, reader(friend), &query(100)).await,
        set(&["Shared"])
    );

    let removed = docs.unshare(doc.id, friend).await.unwrap();
    let removed_again = docs.unshare(doc.id, friend).await.unwrap();

    assert!(removed);
    assert!(!removed_again);
    assert!(titles(&docs, reader(friend), &query(100)).await.is_empty());
    assert!(docs.find(doc.id).await.unwrap().unwrap().shares.is_empty());
}

/// The constraint a direct write violates, if any.
async fn violated_constraint(db: &TestDatabase, owner: Uuid, tags: &[&str], body: &str) -> String {
    let error =
        sqlx::query("insert into documents (owner_id, title, body, tags) values ($1, 't', $2, $3)")
            .bind(owner)
            .bind(body)
            .bind(tags)
            .execute(&db.pool)
            .await
            .expect_err("the table refuses the row");
    error
        .as_database_error()
        .and_then(|e| e.constraint())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_table_itself_refuses_bad_tags_and_oversized_bodies_from_any_writer() {
    let db = TestDatabase::migrated().await;
    let owner = user(&db).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    let too_long = "a".repeat(33);

    for bad in [
        &["Upper"][..],
        &["with space"],
        &["a,b"],
        &[""],
        &[too_long.as_str()],
        &["ok", "<script>"],
    ] {
        assert_eq!(
            violated_constraint(&db, owner, bad, "b").await,
            "documents_tags_format_check",
            "{bad:?}"
        );
    }
    assert_eq!(
        violated_constraint(&db, owner, &eleven, "b").await,
        "documents_tags_count_check"
    );
    assert_eq!(
        violated_constraint(&db, owner, &[], &"x".repeat(100 * 1024 + 1)).await,
        "documents_body_size_check"
    );
    // Bytes, not characters: 40,000 three-byte characters are 120,000 bytes.
    assert_eq!(
        violated_constraint(&db, owner, &[], &"€".repeat(40_000)).await,
        "documents_body_size_check"
    );
    let null_tag = sqlx::query(
        "insert into documents (owner_id, title, body, tags) values ($1, 't', 'b', array['ok', null])",
    )
    .bind(owner)
    .execute(&db.pool)
    .await;
    assert!(null_tag.is_err(), "a null tag is refused");
    let bad_visibility = sqlx::query(
        "insert into documents (owner_id, title, body, visibility) values ($1, 't', 'b', 'secret')",
    )
    .bind(owner)
    .execute(&db.pool)
    .await
    .unwrap_err();
    assert_eq!(
        bad_visibility
            .as_database_error()
            .and_then(|e| e.constraint()),
        Some("documents_visibility_check")
    );
    let accepted: i64 = sqlx::query_scalar("select count(*) from documents")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(accepted, 0);
    // The largest body and the most tags the domain allows do fit.
    let ten: Vec<&str> = eleven[..10].to_vec();
    sqlx::query("insert into documents (owner_id, title, body, tags) values ($1, 't', $2, $3)")
        .bind(owner)
        .bind("x".repeat(100 * 1024))
        .bind(&ten)
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stored_row_the_domain_refuses_is_an_error_not_a_panic_or_a_half_valid_document() {
    let db = TestDatabase::migrated().await;
    let docs = PgDocumentRepository::new(db.pool.clone());
    let owner = user(&db).await;
    let doc = docs
        .create(
            owner,
            new_doc("Fine", Visibility::Private, &[]),
            &PlanLimits::default(),
        )
        .await
        .unwrap();
    // A control character passes the table's length check but not DocumentTitle::parse.
    sqlx::query("update documents set title = E'bad\\u0001title' where id = $1")
        .bind(doc.id)
        .execute(&db.pool)
        .await
        .unwrap();

    let found = docs.find(doc.id).await;
    let listed = docs.list(reader(owner), &query(10)).await;

    assert!(found.is_err(), "{found:?}");
    assert!(listed.is_err(), "{listed:?}");
}
