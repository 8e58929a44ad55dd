//! Documents and their shares in PostgreSQL (see `migrations/*_documents.sql`).
//!
//! Three ideas carry this module. **Keyset paging**: a listing is ordered by `(created_at desc, id
//! desc)` and the next page starts strictly after the last `(created_at, id)` returned, compared
//! as a row value; the id breaks ties between rows created in the same microsecond, so no row is
//! skipped or repeated while others are inserted, and page 1,000 costs what page 1 costs (an
//! `offset` would read and throw away every earlier row). One row more than the page is fetched to
//! learn whether a next page exists, without a `count(*)`. **Literal search**: `q` is a substring
//! of the title, not a pattern; `listing::like_literal` escapes `\`, `%` and `_` before the value is
//! bound, so `50%` finds "50%" and not "50 apples", and `_` is not a wildcard. Every value is a
//! bound parameter, so nothing a client types is ever read as SQL. **One readability rule**: the
//! listing's `where` clause is the SQL twin of [`DocumentAccess::of`]'s `read` (owner, or a share
//! on a document that is not private, or a public document, or a reader who may read anything);
//! `find` returns the shares so the service can apply the Rust original to a single document.
//!
//! Rows are turned into domain types with the domain's own parsers: a row the domain refuses is a
//! broken invariant, reported as an error for the log ([`DocumentStoreError`]), never a panic and
//! never a half-valid [`Document`].
//!
//! [`DocumentAccess::of`]: bulwark_domain::document::DocumentAccess::of

use async_trait::async_trait;
use bulwark_domain::document::{
    CreateDocumentError, Cursor, Document, DocumentBody, DocumentChanges, DocumentPage,
    DocumentQuery, DocumentRepository, DocumentStoreError, DocumentTitle, NewDocument, Readable,
    Share, SharePermission, SharedDocument, Tag, UpdateDocumentError, Visibility,
};
use bulwark_domain::quota::PlanLimits;
use sqlx::PgPool;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::listing::{like_literal, page_and_fetch, split_page};
use crate::quota::lock_owner;

/// The PostgreSQL document repository.
#[derive(Debug, Clone)]
pub struct PgDocumentRepository {
    pool: PgPool,
}

impl PgDocumentRepository {
    /// A repository over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> DocumentStoreError {
    DocumentStoreError(crate::classify(error))
}

/// A stored row that no longer parses is a broken invariant (someone wrote around the domain
/// types and the table's checks): an error for the log, never a half-valid `Document`.
#[derive(Debug, thiserror::Error)]
#[error("{table} row of document {id} holds a value the domain refuses: {field}")]
struct CorruptRow {
    table: &'static str,
    id: Uuid,
    field: &'static str,
}

fn corrupt(table: &'static str, id: Uuid, field: &'static str) -> DocumentStoreError {
    store_error(CorruptRow { table, id, field })
}

/// A `documents` row as selected by every query here (the same column list each time).
struct DocumentRow {
    id: Uuid,
    owner_id: Uuid,
    title: String,
    body: String,
    visibility: String,
    tags: Vec<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i32,
}

impl DocumentRow {
    fn into_document(self) -> Result<Document, DocumentStoreError> {
        let id = self.id;
        let tags = self
            .tags
            .iter()
            .map(|t| Tag::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt("documents", id, "tags"))?;
        Ok(Document {
            id,
            owner_id: self.owner_id,
            title: DocumentTitle::parse(&self.title)
                .map_err(|_| corrupt("documents", id, "title"))?,
            // Sanitised on the way in (`DocumentBody::parse`); the table bounds its size.
            body: DocumentBody::from_stored(self.body),
            visibility: Visibility::parse(&self.visibility)
                .map_err(|_| corrupt("documents", id, "visibility"))?,
            tags,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

/// One share as `find` aggregates it into JSON.
#[derive(Debug, serde::Deserialize)]
struct ShareRow {
    user_id: Uuid,
    permission: String,
}

fn tag_strings(tags: &[Tag]) -> Vec<String> {
    tags.iter().map(|t| t.as_str().to_owned()).collect()
}

#[async_trait]
impl DocumentRepository for PgDocumentRepository {
    #[tracing::instrument(name = "documents.create", skip_all, fields(%owner_id))]
    async fn create(
        &self,
        owner_id: Uuid,
        new: NewDocument,
        limits: &PlanLimits,
    ) -> Result<Document, CreateDocumentError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let plan = lock_owner(&mut tx, owner_id).await.map_err(store_error)?;
        let owned = sqlx::query_scalar!(
            r#"select count(*) as "count!" from documents where owner_id = $1"#,
            owner_id,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if owned >= i64::from(limits.of(plan).documents) {
            return Err(CreateDocumentError::QuotaExceeded);
        }
        let row = sqlx::query_as!(
            DocumentRow,
            r#"
            insert into documents (owner_id, title, body, visibility, tags)
            values ($1, $2, $3, $4, $5)
            returning id, owner_id, title, body, visibility, tags, created_at, updated_at, version
            "#,
            owner_id,
            new.title.as_str(),
            new.body.as_str(),
            new.visibility.as_str(),
            &tag_strings(&new.tags),
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(row.into_document()?)
    }

    #[tracing::instrument(name = "documents.find", skip_all, fields(%id))]
    async fn find(&self, id: Uuid) -> Result<Option<SharedDocument>, DocumentStoreError> {
        // One statement, so the document and its shares come from the same snapshot: an access
        // decision never mixes a share list from before a change with a document from after it.
        let row = sqlx::query!(
            r#"
            select d.id, d.owner_id, d.title, d.body, d.visibility, d.tags,
                   d.created_at, d.updated_at, d.version,
                   coalesce(
                       (select jsonb_agg(jsonb_build_object('user_id', s.user_id, 'permission', s.permission)
                                         order by s.created_at, s.user_id)
                        from document_shares s where s.document_id = d.id),
                       '[]'::jsonb
                   ) as "shares!: Json<Vec<ShareRow>>"
            from documents d
            where d.id = $1
            "#,
            id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some(r) = row else {
            return Ok(None);
        };
        let shares = r
            .shares
            .0
            .into_iter()
            .map(|s| {
                Ok(Share {
                    user_id: s.user_id,
                    permission: SharePermission::parse(&s.permission)
                        .map_err(|_| corrupt("document_shares", id, "permission"))?,
                })
            })
            .collect::<Result<Vec<_>, DocumentStoreError>>()?;
        let document = DocumentRow {
            id: r.id,
            owner_id: r.owner_id,
            title: r.title,
            body: r.body,
            visibility: r.visibility,
            tags: r.tags,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
        .into_document()?;
        Ok(Some(SharedDocument { document, shares }))
    }

    #[tracing::instrument(
        name = "documents.list",
        skip_all,
        fields(reader = %readable.user_id, any = readable.any, limit = query.limit)
    )]
    async fn list(
        &self,
        readable: Readable,
        query: &DocumentQuery,
    ) -> Result<DocumentPage, DocumentStoreError> {
        // One more row than the page: its presence is what says "there is a next page".
        let (page, fetch) = page_and_fetch(query.limit);
        let pattern = query.q.as_deref().map(like_literal);
        // The readability clause mirrors `DocumentAccess::of` → `read`:
        //   any reader with documents:read_any/manage_any ($1)
        //   or the owner
        //   or a public document
        //   or a share held by the reader, unless the document is private.
        // The first page starts after ('infinity', the largest uuid) rather than under a
        // `$3 is null or …` guard: sqlx prepares statements and PostgreSQL may reuse a generic plan,
        // in which an `or`-guarded row comparison is only a filter (a deep page would walk the
        // index from the newest row), while this form is always an index condition, so every page
        // starts where it should. No row can sit at that bound (created_at defaults to now(), and
        // the all-ones uuid is not a version 4 uuid).
        // The tag filter uses `@>` rather than `= any(tags)`: same meaning, but only the array
        // operators can use the gin index on tags.
        let rows = sqlx::query_as!(
            DocumentRow,
            r#"
            select d.id, d.owner_id, d.title, d.body, d.visibility, d.tags,
                   d.created_at, d.updated_at, d.version
            from documents d
            where ($1
                   or d.owner_id = $2
                   or d.visibility = 'public'
                   or (d.visibility <> 'private'
                       and exists (select 1 from document_shares s
                                   where s.document_id = d.id and s.user_id = $2)))
              and (d.created_at, d.id) < (coalesce($3::timestamptz, 'infinity'),
                                          coalesce($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
              and ($5::text is null or d.title ilike ('%' || $5 || '%') escape '\')
              and ($6::text is null or d.tags @> array[$6::text])
              and ($8::uuid is null or d.owner_id = $8)
            order by d.created_at desc, d.id desc
            limit $7
            "#,
            readable.any,
            readable.user_id,
            query.after.map(|c| c.created_at),
            query.after.map(|c| c.id),
            pattern,
            query.tag.as_ref().map(Tag::as_str),
            fetch,
            query.owner,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;

        let (rows, more) = split_page(rows, page);
        let items = rows
            .into_iter()
            .map(DocumentRow::into_document)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if more {
            items.last().map(|d| Cursor {
                created_at: d.created_at,
                id: d.id,
            })
        } else {
            None
        };
        Ok(DocumentPage { items, next })
    }

    #[tracing::instrument(name = "documents.update", skip_all, fields(%id, expected_version))]
    async fn update(
        &self,
        id: Uuid,
        expected_version: i32,
        changes: DocumentChanges,
    ) -> Result<Document, UpdateDocumentError> {
        // The version check and the write are one statement: the row lock makes a concurrent
        // update with the same expected version wait, then re-check `version = $2`, find it moved
        // on, and update nothing. Exactly one of them wins; the other learns it was stale.
        // `None` leaves a column as it is (coalesce); `Some` tags replace the whole array.
        let tags = changes.tags.as_deref().map(tag_strings);
        let row = sqlx::query_as!(
            DocumentRow,
            r#"
            update documents
            set title = coalesce($3, title),
                body = coalesce($4, body),
                visibility = coalesce($5, visibility),
                tags = coalesce($6, tags),
                version = version + 1,
                updated_at = now()
            where id = $1 and version = $2
            returning id, owner_id, title, body, visibility, tags, created_at, updated_at, version
            "#,
            id,
            expected_version,
            changes.title.as_ref().map(DocumentTitle::as_str),
            changes.body.as_ref().map(DocumentBody::as_str),
            changes.visibility.map(Visibility::as_str),
            tags.as_deref(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        if let Some(row) = row {
            return Ok(row.into_document()?);
        }
        // Nothing updated: either there is no such document, or its version moved on. The answer
        // can change a moment later (a delete), but either answer was true when it was given.
        let exists = sqlx::query_scalar!(
            r#"select exists (select 1 from documents where id = $1) as "exists!""#,
            id,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Err(if exists {
            UpdateDocumentError::Stale
        } else {
            UpdateDocumentError::NotFound
        })
    }

    #[tracing::instrument(name = "documents.delete", skip_all, fields(%id))]
    async fn delete(&self, id: Uuid) -> Result<bool, DocumentStoreError> {
        // Shares go with the document (document_shares_document_id_fkey is `on delete cascade`).
        let result = sqlx::query!("delete from documents where id = $1", id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(
        name = "documents.share",
        skip_all,
        fields(%id, user_id = %share.user_id, permission = share.permission.as_str())
    )]
    async fn share(&self, id: Uuid, share: Share) -> Result<bool, DocumentStoreError> {
        // The user (and the document) must exist in the same statement that inserts: a separate
        // check first could pass for a user deleted a moment later. Nothing selected, nothing
        // inserted, zero rows: `false`.
        let result = sqlx::query!(
            r#"
            insert into document_shares (document_id, user_id, permission)
            select d.id, u.id, $3
            from documents d, users u
            where d.id = $1 and u.id = $2 and u.deleted_at is null
            on conflict (document_id, user_id) do update set permission = excluded.permission
            "#,
            id,
            share.user_id,
            share.permission.as_str(),
        )
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(done.rows_affected() == 1),
            // Only reachable when the document or the user row is removed between the select and
            // the insert's foreign-key check: the same answer as if it had gone a moment earlier.
            Err(e)
                if matches!(
                    e.as_database_error().and_then(|d| d.constraint()),
                    Some("document_shares_document_id_fkey" | "document_shares_user_id_fkey")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    #[tracing::instrument(name = "documents.unshare", skip_all, fields(%id, %user_id))]
    async fn unshare(&self, id: Uuid, user_id: Uuid) -> Result<bool, DocumentStoreError> {
        let result = sqlx::query!(
            "delete from document_shares where document_id = $1 and user_id = $2",
            id,
            user_id,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }
}
