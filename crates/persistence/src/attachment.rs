//! Attachments in PostgreSQL (see `migrations/*_attachments.sql`).
//!
//! The quota on attachment bytes is summed and checked in the inserting transaction, under the
//! owner's row lock (`crate::quota`), so concurrent uploads take turns and the total never
//! overshoots.

use async_trait::async_trait;
use bulwark_domain::attachment::{
    Attachment, AttachmentRepository, AttachmentStoreError, AttachmentType, CreateAttachmentError,
    NewAttachment,
};
use bulwark_domain::quota::PlanLimits;
use sqlx::PgPool;

use crate::quota::lock_owner;
use time::OffsetDateTime;
use uuid::Uuid;

/// The PostgreSQL attachment repository.
#[derive(Debug, Clone)]
pub struct PgAttachmentRepository {
    pool: PgPool,
}

impl PgAttachmentRepository {
    /// A repository over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> AttachmentStoreError {
    AttachmentStoreError(crate::classify(error))
}

/// A stored value the domain refuses, or an owner that cannot be found: errors for the log.
#[derive(Debug, thiserror::Error)]
enum Corrupt {
    #[error("attachment {0} has an unknown content type")]
    ContentType(Uuid),
    #[error("attachment {0} has a negative size")]
    Size(Uuid),
}

fn to_attachment(
    id: Uuid,
    document_id: Uuid,
    filename: String,
    content_type: &str,
    size: i64,
    created_at: OffsetDateTime,
) -> Result<Attachment, AttachmentStoreError> {
    Ok(Attachment {
        id,
        document_id,
        filename,
        content_type: AttachmentType::from_stored(content_type)
            .ok_or_else(|| store_error(Corrupt::ContentType(id)))?,
        size: u64::try_from(size).map_err(|_| store_error(Corrupt::Size(id)))?,
        created_at,
    })
}

#[async_trait]
impl AttachmentRepository for PgAttachmentRepository {
    #[tracing::instrument(name = "attachments.create", skip_all, fields(document_id = %new.document_id))]
    async fn create(
        &self,
        new: NewAttachment,
        limits: &PlanLimits,
    ) -> Result<Attachment, CreateAttachmentError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let plan = lock_owner(&mut tx, new.owner_id)
            .await
            .map_err(store_error)?;
        let used = sqlx::query_scalar!(
            r#"select coalesce(sum(size), 0)::bigint as "used!" from attachments where owner_id = $1"#,
            new.owner_id,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let size = i64::try_from(new.content.len()).unwrap_or(i64::MAX);
        let allowed = i64::try_from(limits.of(plan).attachment_bytes).unwrap_or(i64::MAX);
        if used.saturating_add(size) > allowed {
            return Err(CreateAttachmentError::QuotaExceeded);
        }
        let row = sqlx::query!(
            r#"
            insert into attachments (document_id, owner_id, filename, content_type, size, content)
            values ($1, $2, $3, $4, $5, $6)
            returning id, created_at
            "#,
            new.document_id,
            new.owner_id,
            new.filename,
            new.content_type.as_str(),
            size,
            new.content,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(to_attachment(
            row.id,
            new.document_id,
            new.filename,
            new.content_type.as_str(),
            size,
            row.created_at,
        )?)
    }

    async fn find(
        &self,
        document_id: Uuid,
        attachment_id: Uuid,
    ) -> Result<Option<(Attachment, Vec<u8>)>, AttachmentStoreError> {
        let row = sqlx::query!(
            r#"
            select id, document_id, filename, content_type, size, content, created_at
            from attachments where id = $1 and document_id = $2
            "#,
            attachment_id,
            document_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|r| {
            Ok((
                to_attachment(
                    r.id,
                    r.document_id,
                    r.filename,
                    &r.content_type,
                    r.size,
                    r.created_at,
                )?,
                r.content,
            ))
        })
        .transpose()
    }
}
