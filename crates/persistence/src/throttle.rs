//! Sign-in throttling in PostgreSQL (see `migrations/*_login_throttle.sql`).
//!
//! Counting is one atomic upsert, so concurrent failures are all counted; the block that follows
//! is computed by the domain's policy and stored in the same transaction.

use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::throttle::{LoginThrottle, ThrottleKey, ThrottlePolicy, ThrottleStoreError};
use sqlx::PgPool;

/// The PostgreSQL throttle store.
#[derive(Debug, Clone)]
pub struct PgLoginThrottle {
    pool: PgPool,
}

impl PgLoginThrottle {
    /// A store over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: sqlx::Error) -> ThrottleStoreError {
    ThrottleStoreError(crate::classify(error))
}

/// Whole seconds, rounded up: a client told "retry after 0" while still blocked would hammer.
fn remaining(seconds: Option<f64>) -> Option<Duration> {
    seconds
        .filter(|s| *s > 0.0)
        .map(|s| Duration::from_secs(s.ceil() as u64))
}

#[async_trait]
impl LoginThrottle for PgLoginThrottle {
    async fn blocked_for(&self, key: ThrottleKey) -> Result<Option<Duration>, ThrottleStoreError> {
        let seconds = sqlx::query_scalar!(
            r#"
            select extract(epoch from blocked_until - now())::float8 as "seconds"
            from login_throttle where key_hash = $1 and blocked_until > now()
            "#,
            &key.0[..],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(remaining(seconds.flatten()))
    }

    async fn record_failure(
        &self,
        key: ThrottleKey,
        policy: ThrottlePolicy,
    ) -> Result<Option<Duration>, ThrottleStoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let failures = sqlx::query_scalar!(
            r#"
            insert into login_throttle (key_hash, failures, last_failure_at)
            values ($1, 1, now())
            on conflict (key_hash) do update
            set failures = case
                    when login_throttle.last_failure_at < now() - make_interval(secs => $2) then 1
                    else login_throttle.failures + 1
                end,
                last_failure_at = now()
            returning failures
            "#,
            &key.0[..],
            policy.window.as_secs_f64(),
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let delay = policy.delay_after(u32::try_from(failures).unwrap_or(u32::MAX));
        if !delay.is_zero() {
            // Never shorten a block already in force (a lock outlasts later, shorter backoffs).
            sqlx::query!(
                r#"
                update login_throttle
                set blocked_until = greatest(blocked_until, now() + make_interval(secs => $2))
                where key_hash = $1
                "#,
                &key.0[..],
                delay.as_secs_f64(),
            )
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok((!delay.is_zero()).then_some(delay))
    }

    async fn clear(&self, key: ThrottleKey) -> Result<(), ThrottleStoreError> {
        sqlx::query!("delete from login_throttle where key_hash = $1", &key.0[..])
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
