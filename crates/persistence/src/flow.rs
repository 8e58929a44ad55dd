//! Flow caps in PostgreSQL (see `migrations/*_flow_events.sql`).

use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::flow::{Flow, FlowCap, FlowLimiter, FlowStoreError};
use sqlx::PgPool;
use uuid::Uuid;

/// The PostgreSQL flow limiter.
#[derive(Debug, Clone)]
pub struct PgFlowLimiter {
    pool: PgPool,
}

impl PgFlowLimiter {
    /// A limiter over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: sqlx::Error) -> FlowStoreError {
    FlowStoreError(crate::classify(error))
}

#[async_trait]
impl FlowLimiter for PgFlowLimiter {
    #[tracing::instrument(name = "flows.try_record", skip_all, fields(%user_id, flow = flow.as_str()))]
    async fn try_record(
        &self,
        user_id: Uuid,
        flow: Flow,
        cap: FlowCap,
    ) -> Result<Result<(), Duration>, FlowStoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // One lock per user and flow, until commit: counts and inserts take turns.
        sqlx::query!(
            "select pg_advisory_xact_lock(hashtextextended('flow_events:' || $1 || ':' || $2, 0))",
            user_id.to_string(),
            flow.as_str(),
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let window = cap.window.as_secs_f64();
        let seen = sqlx::query!(
            r#"
            select count(*) as "count!",
                   extract(epoch from min(occurred_at) + make_interval(secs => $3) - now())::float8 as "wait"
            from flow_events
            where user_id = $1 and flow = $2 and occurred_at > now() - make_interval(secs => $3)
            "#,
            user_id,
            flow.as_str(),
            window,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if seen.count >= i64::from(cap.max) {
            // Whole seconds, rounded up, at least one: the oldest event's exit from the window.
            let wait = seen.wait.unwrap_or(window).max(1.0).ceil();
            return Ok(Err(Duration::from_secs_f64(wait)));
        }
        sqlx::query!(
            "insert into flow_events (user_id, flow) values ($1, $2)",
            user_id,
            flow.as_str(),
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Ok(()))
    }
}
