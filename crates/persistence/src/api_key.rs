//! API keys in PostgreSQL (see `migrations/*_api_keys.sql`: the row keeps a digest, never the key).
//!
//! Listing and deleting are scoped to the owner in SQL (`where owner_id = $1`), so another user's
//! key is indistinguishable from a missing one. The lookup by prefix joins the owner's row, so
//! authentication learns the owner's *current* role and whether it is locked or deleted in the
//! same round trip.

use async_trait::async_trait;
use bulwark_domain::api_key::{
    ApiKey, ApiKeyRepository, ApiKeyStoreError, CreateApiKeyError, KeyName, NewApiKey, Scope,
    Scopes, StoredApiKey,
};
use bulwark_domain::opaque::TokenDigest;
use bulwark_domain::quota::PlanLimits;
use bulwark_domain::user::{Plan, Role};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::quota::lock_owner;

/// The PostgreSQL API-key repository.
#[derive(Debug, Clone)]
pub struct PgApiKeyRepository {
    pool: PgPool,
}

impl PgApiKeyRepository {
    /// A repository over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> ApiKeyStoreError {
    ApiKeyStoreError(crate::classify(error))
}

/// A stored row the domain refuses: a broken invariant, for the log.
#[derive(Debug, thiserror::Error)]
#[error("api_keys row {id} holds a value the domain refuses: {field}")]
struct CorruptRow {
    id: Uuid,
    field: &'static str,
}

fn corrupt(id: Uuid, field: &'static str) -> ApiKeyStoreError {
    store_error(CorruptRow { id, field })
}

fn parse_scopes(id: Uuid, stored: &[String]) -> Result<Scopes, ApiKeyStoreError> {
    let scopes = stored
        .iter()
        .map(|s| Scope::parse(s).ok_or_else(|| corrupt(id, "scopes")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scopes::of(&scopes))
}

fn scope_strings(scopes: Scopes) -> Vec<String> {
    scopes
        .to_vec()
        .into_iter()
        .map(|s| s.as_str().to_owned())
        .collect()
}

/// An `api_keys` row as listings select it.
struct ApiKeyRow {
    id: Uuid,
    owner_id: Uuid,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    expires_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
}

impl ApiKeyRow {
    fn into_api_key(self) -> Result<ApiKey, ApiKeyStoreError> {
        let id = self.id;
        Ok(ApiKey {
            id,
            owner_id: self.owner_id,
            name: KeyName::parse(&self.name).map_err(|_| corrupt(id, "name"))?,
            prefix: self.prefix,
            scopes: parse_scopes(id, &self.scopes)?,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl ApiKeyRepository for PgApiKeyRepository {
    #[tracing::instrument(name = "api_keys.create", skip_all, fields(owner_id = %new.owner_id))]
    async fn create(
        &self,
        new: NewApiKey,
        limits: &PlanLimits,
    ) -> Result<ApiKey, CreateApiKeyError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let plan = lock_owner(&mut tx, new.owner_id)
            .await
            .map_err(store_error)?;
        let owned = sqlx::query_scalar!(
            r#"select count(*) as "count!" from api_keys where owner_id = $1"#,
            new.owner_id,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if owned >= i64::from(limits.of(plan).api_keys) {
            return Err(CreateApiKeyError::QuotaExceeded);
        }
        let row = sqlx::query_as!(
            ApiKeyRow,
            r#"
            insert into api_keys (owner_id, name, prefix, secret_digest, scopes, expires_at)
            values ($1, $2, $3, $4, $5, $6)
            returning id, owner_id, name, prefix, scopes, expires_at, last_used_at, created_at
            "#,
            new.owner_id,
            new.name.as_str(),
            new.prefix,
            &new.digest.0[..],
            &scope_strings(new.scopes),
            new.expires_at,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(row.into_api_key()?)
    }

    #[tracing::instrument(name = "api_keys.list", skip_all, fields(%owner_id))]
    async fn list(&self, owner_id: Uuid) -> Result<Vec<ApiKey>, ApiKeyStoreError> {
        sqlx::query_as!(
            ApiKeyRow,
            r#"
            select id, owner_id, name, prefix, scopes, expires_at, last_used_at, created_at
            from api_keys
            where owner_id = $1
            order by created_at desc, id desc
            "#,
            owner_id,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(ApiKeyRow::into_api_key)
        .collect()
    }

    #[tracing::instrument(name = "api_keys.delete", skip_all, fields(%owner_id, %id))]
    async fn delete(&self, owner_id: Uuid, id: Uuid) -> Result<bool, ApiKeyStoreError> {
        let result = sqlx::query!(
            "delete from api_keys where id = $1 and owner_id = $2",
            id,
            owner_id,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(name = "api_keys.find_by_prefix", skip_all)]
    async fn find_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>, ApiKeyStoreError> {
        let Some(row) = sqlx::query!(
            r#"
            select k.id, k.owner_id, k.secret_digest, k.scopes, k.expires_at, k.created_at, k.last_used_at,
                   u.role, u.plan, (u.locked_at is null and u.deleted_at is null) as "active!",
                   exists (select 1 from mfa_totp m where m.user_id = u.id and m.enabled_at is not null) as "mfa_enabled!"
            from api_keys k
            join users u on u.id = k.owner_id
            where k.prefix = $1
            "#,
            prefix,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?
        else {
            return Ok(None);
        };
        let digest: [u8; 32] = row
            .secret_digest
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(row.id, "secret_digest"))?;
        Ok(Some(StoredApiKey {
            id: row.id,
            owner_id: row.owner_id,
            digest: TokenDigest(digest),
            scopes: parse_scopes(row.id, &row.scopes)?,
            expires_at: row.expires_at,
            owner_role: Role::from_stored(&row.role)
                .ok_or_else(|| corrupt(row.id, "owner role"))?,
            owner_active: row.active,
            owner_mfa_enabled: row.mfa_enabled,
            owner_plan: Plan::parse(&row.plan).ok_or_else(|| corrupt(row.id, "owner plan"))?,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }))
    }

    #[tracing::instrument(name = "api_keys.touch", skip_all, fields(%id))]
    async fn touch(&self, id: Uuid) -> Result<(), ApiKeyStoreError> {
        // At most one write per key per minute, however busy the key: the condition makes the
        // frequent case a read of one row.
        sqlx::query!(
            r#"
            update api_keys set last_used_at = now()
            where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')
            "#,
            id,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}
