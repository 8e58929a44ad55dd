//! PostgreSQL readiness.

use async_trait::async_trait;
use bulwark_domain::health::{DependencyProbe, ProbeError};
use sqlx::PgPool;

/// Answers "does PostgreSQL answer a trivial query?".
#[derive(Debug, Clone)]
pub struct PgProbe {
    pool: PgPool,
}

impl PgProbe {
    /// A probe over the service's pool (so it also notices an exhausted pool).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl DependencyProbe for PgProbe {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        sqlx::query_scalar!("select 1 as \"one!\"")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| ProbeError {
                dependency: "postgres",
                reason: e.to_string(),
            })
    }
}
