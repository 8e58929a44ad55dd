//! MFA in PostgreSQL (see `migrations/*_mfa.sql`): sealed TOTP secrets, recovery-code digests and
//! sign-in challenges.
//!
//! Every "use once" rule is one conditional statement, so concurrent requests cannot both win: a
//! time step is recorded only if it is later than the last (`use_step`), a recovery code is spent
//! only if unspent, a challenge attempt is counted only while attempts remain and it has not
//! expired, and a challenge is consumed by deleting it.

use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::mfa::{ChallengeAttempt, MfaStore, MfaStoreError, TotpRecord};
use bulwark_domain::opaque::TokenDigest;
use sqlx::PgPool;
use uuid::Uuid;

/// The PostgreSQL MFA store.
#[derive(Debug, Clone)]
pub struct PgMfaStore {
    pool: PgPool,
}

impl PgMfaStore {
    /// A store over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> MfaStoreError {
    MfaStoreError(crate::classify(error))
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl MfaStore for PgMfaStore {
    #[tracing::instrument(name = "mfa.enabled", skip_all, fields(%user_id))]
    async fn enabled(&self, user_id: Uuid) -> Result<bool, MfaStoreError> {
        let enabled = sqlx::query_scalar!(
            r#"select exists (select 1 from mfa_totp where user_id = $1 and enabled_at is not null) as "enabled!""#,
            user_id,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(enabled)
    }

    #[tracing::instrument(name = "mfa.totp", skip_all, fields(%user_id))]
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRecord>, MfaStoreError> {
        let row = sqlx::query!(
            "select sealed_secret, pending_sealed_secret, last_used_step from mfa_totp where user_id = $1",
            user_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|r| TotpRecord {
            sealed_secret: r.sealed_secret,
            pending_sealed_secret: r.pending_sealed_secret,
            last_used_step: r.last_used_step,
        }))
    }

    #[tracing::instrument(name = "mfa.set_pending", skip_all, fields(%user_id))]
    async fn set_pending(&self, user_id: Uuid, sealed: &str) -> Result<(), MfaStoreError> {
        sqlx::query!(
            r#"
            insert into mfa_totp (user_id, pending_sealed_secret) values ($1, $2)
            on conflict (user_id) do update
                set pending_sealed_secret = excluded.pending_sealed_secret, updated_at = now()
            "#,
            user_id,
            sealed,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    #[tracing::instrument(name = "mfa.enable", skip_all, fields(%user_id))]
    async fn enable(
        &self,
        user_id: Uuid,
        sealed_secret: &str,
        step: i64,
        recovery_codes: &[TokenDigest],
    ) -> Result<bool, MfaStoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let updated = sqlx::query!(
            r#"
            update mfa_totp
            set sealed_secret = $2, pending_sealed_secret = null, enabled_at = now(),
                last_used_step = $3, updated_at = now()
            where user_id = $1 and pending_sealed_secret is not null
            "#,
            user_id,
            sealed_secret,
            step,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query!("delete from mfa_recovery_codes where user_id = $1", user_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let digests: Vec<Vec<u8>> = recovery_codes.iter().map(|d| d.0.to_vec()).collect();
        sqlx::query!(
            "insert into mfa_recovery_codes (user_id, digest) select $1, unnest($2::bytea[])",
            user_id,
            &digests,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    #[tracing::instrument(name = "mfa.disable", skip_all, fields(%user_id))]
    async fn disable(&self, user_id: Uuid) -> Result<bool, MfaStoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let deleted = sqlx::query!(
            "delete from mfa_totp where user_id = $1 and enabled_at is not null",
            user_id,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query!("delete from mfa_recovery_codes where user_id = $1", user_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query!("delete from mfa_challenges where user_id = $1", user_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(deleted.rows_affected() == 1)
    }

    #[tracing::instrument(name = "mfa.use_step", skip_all, fields(%user_id))]
    async fn use_step(&self, user_id: Uuid, step: i64) -> Result<bool, MfaStoreError> {
        let updated = sqlx::query!(
            r#"
            update mfa_totp set last_used_step = $2, updated_at = now()
            where user_id = $1 and enabled_at is not null
              and (last_used_step is null or last_used_step < $2)
            "#,
            user_id,
            step,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(updated.rows_affected() == 1)
    }

    #[tracing::instrument(name = "mfa.use_recovery_code", skip_all, fields(%user_id))]
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        digest: &TokenDigest,
    ) -> Result<bool, MfaStoreError> {
        let updated = sqlx::query!(
            r#"
            update mfa_recovery_codes set used_at = now()
            where user_id = $1 and digest = $2 and used_at is null
            "#,
            user_id,
            &digest.0[..],
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(updated.rows_affected() == 1)
    }

    #[tracing::instrument(name = "mfa.create_challenge", skip_all, fields(%user_id))]
    async fn create_challenge(
        &self,
        user_id: Uuid,
        digest: &TokenDigest,
        ttl: Duration,
    ) -> Result<(), MfaStoreError> {
        sqlx::query!(
            r#"
            insert into mfa_challenges (digest, user_id, expires_at)
            values ($1, $2, now() + make_interval(secs => $3::bigint / 1000000.0))
            "#,
            &digest.0[..],
            user_id,
            micros(ttl),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    #[tracing::instrument(name = "mfa.attempt_challenge", skip_all)]
    async fn attempt_challenge(
        &self,
        digest: &TokenDigest,
        max_attempts: u32,
    ) -> Result<Option<ChallengeAttempt>, MfaStoreError> {
        let user_id = sqlx::query_scalar!(
            r#"
            update mfa_challenges set attempts = attempts + 1
            where digest = $1 and attempts < $2 and expires_at > now()
            returning user_id
            "#,
            &digest.0[..],
            i32::try_from(max_attempts).unwrap_or(i32::MAX),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(user_id.map(|user_id| ChallengeAttempt { user_id }))
    }

    #[tracing::instrument(name = "mfa.consume_challenge", skip_all)]
    async fn consume_challenge(&self, digest: &TokenDigest) -> Result<bool, MfaStoreError> {
        let deleted = sqlx::query!(
            "delete from mfa_challenges where digest = $1 and expires_at > now()",
            &digest.0[..],
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(deleted.rows_affected() == 1)
    }
}
