//! The audit trail in PostgreSQL.

use async_trait::async_trait;
use bulwark_domain::audit::{AuditError, AuditLog, NewAuditEvent};
use sqlx::PgPool;

/// Appends audit events to the `audit_events` table (which refuses updates and deletes).
#[derive(Debug, Clone)]
pub struct PgAuditLog {
    pool: PgPool,
}

impl PgAuditLog {
    /// An audit log over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuditLog for PgAuditLog {
    #[tracing::instrument(name = "audit.record", skip_all, fields(event_type = event.event_type.as_str()))]
    async fn record(&self, event: NewAuditEvent) -> Result<(), AuditError> {
        let (subject_type, subject_id) = event
            .subject
            .map_or((None, None), |(t, id)| (Some(t), Some(id)));
        // Bound as text and cast by PostgreSQL: an `IpAddr` always prints as a valid `inet` literal, and
        // this spares the build an IP-network crate just for the binding.
        let ip = event.ip.map(|ip| ip.to_string());
        sqlx::query!(
            r#"
            insert into audit_events
                (event_type, outcome, actor_user_id, subject_type, subject_id, ip, user_agent, request_id, detail)
            values ($1, $2, $3, $4, $5, $6::text::inet, $7, $8, $9)
            "#,
            event.event_type.as_str(),
            event.outcome.as_str(),
            event.actor_user_id,
            subject_type,
            subject_id,
            ip,
            event.user_agent,
            event.request_id,
            event.detail.to_json(),
        )
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| AuditError::Unavailable(Box::new(e)))
    }
}
