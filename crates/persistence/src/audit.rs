//! The audit trail in PostgreSQL: appended by every service, read by administrators.
//!
//! The listing pages by id, newest first: the next page is every id below the last one returned,
//! so no event is skipped or repeated while others are appended (ids only grow). Each filter has a
//! query of its own, shaped so that an index hands over the rows in id order and a page stops after
//! `limit + 1` rows, whatever the depth (see `migrations/*_user_plans.sql` for the indexes).

use std::net::IpAddr;

use async_trait::async_trait;
use bulwark_domain::audit::{
    AuditError, AuditLog, AuditPage, AuditQuery, AuditReader, AuditRecord, EventType, NewAuditEvent,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::listing::{page_and_fetch, split_page};

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
        .map_err(unavailable)
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> AuditError {
    AuditError::Unavailable(crate::classify(error))
}

/// A stored row that does not make a record (an address `host()` printed and Rust cannot read, a
/// subject half there): a broken invariant, reported for the log, never a panic.
#[derive(Debug, thiserror::Error)]
#[error("audit_events row {id} holds a value the reader refuses: {field}")]
struct CorruptRow {
    id: i64,
    field: &'static str,
}

/// An `audit_events` row as every listing query selects it (the same column list each time).
struct AuditRow {
    id: i64,
    occurred_at: OffsetDateTime,
    event_type: String,
    outcome: String,
    actor_user_id: Option<Uuid>,
    subject_type: Option<String>,
    subject_id: Option<Uuid>,
    /// `host(ip)`: the address alone, as text (an `inet` could carry a netmask; a stored client
    /// address never does, and `host` drops it either way).
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    detail: serde_json::Value,
}

impl AuditRow {
    fn into_record(self) -> Result<AuditRecord, AuditError> {
        let id = self.id;
        let corrupt = |field| unavailable(CorruptRow { id, field });
        let subject = match (self.subject_type, self.subject_id) {
            (Some(kind), Some(subject_id)) => Some((kind, subject_id)),
            (None, None) => None,
            // audit_events_subject_check makes this unreachable for any writer.
            _ => return Err(corrupt("subject")),
        };
        let ip = self
            .ip
            .map(|ip| ip.parse::<IpAddr>())
            .transpose()
            .map_err(|_| corrupt("ip"))?;
        Ok(AuditRecord {
            id,
            occurred_at: self.occurred_at,
            event_type: self.event_type,
            outcome: self.outcome,
            actor_user_id: self.actor_user_id,
            subject,
            ip,
            user_agent: self.user_agent,
            request_id: self.request_id,
            detail: self.detail,
        })
    }
}

#[async_trait]
impl AuditReader for PgAuditLog {
    #[tracing::instrument(
        name = "audit.list",
        skip_all,
        fields(limit = query.limit, by_type = query.event_type.is_some(), by_user = query.user_id.is_some())
    )]
    async fn list(&self, query: &AuditQuery) -> Result<AuditPage, AuditError> {
        let (page, fetch) = page_and_fetch(query.limit);
        // Every query starts below `before_id`, or below the largest bigint on the first page
        // (coalesce rather than a `$1 is null or …` guard, so the bound is an index condition in
        // every plan PostgreSQL may cache; no id reaches that bound).
        //
        // One query per filter rather than one with optional parts: an `or`-guarded filter cannot
        // choose its index in a cached generic plan, and would walk the whole trail backwards
        // looking for a rare event type or a quiet user.
        let event_type = query.event_type.as_ref().map(EventType::as_str);
        let rows = match (query.user_id, event_type) {
            // The user's events are those it acted in and those about it, and each set has its
            // index in id order (audit_events_actor_id_idx, audit_events_subject_id_idx). An `or`
            // of the two could only be answered by reading every event of the user and sorting
            // them; instead each side contributes its newest `fetch` rows below the bound, and the
            // newest `fetch` of those (at most twice as many) are the answer: the page cannot hold
            // a row that is not among the first `fetch` of its own side. `distinct on` keeps an
            // event once when the user is both its actor and its subject (an account changing itself).
            // Within one user's events the optional type is a plain filter.
            // Subjects of other kinds (sessions, documents) never match a user id.
            (Some(user_id), event_type) => sqlx::query_as!(
                AuditRow,
                r#"
                select distinct on (e.id)
                       e.id as "id!", e.occurred_at as "occurred_at!",
                       e.event_type as "event_type!", e.outcome as "outcome!",
                       e.actor_user_id, e.subject_type, e.subject_id, host(e.ip) as "ip?",
                       e.user_agent, e.request_id, e.detail as "detail!"
                from (
                    (select id, occurred_at, event_type, outcome, actor_user_id, subject_type,
                            subject_id, ip, user_agent, request_id, detail
                     from audit_events
                     where actor_user_id = $1
                       and id < coalesce($2::bigint, 9223372036854775807)
                       and ($3::text is null or event_type = $3)
                     order by id desc
                     limit $4)
                    union all
                    (select id, occurred_at, event_type, outcome, actor_user_id, subject_type,
                            subject_id, ip, user_agent, request_id, detail
                     from audit_events
                     where subject_id = $1 and subject_type = 'user'
                       and id < coalesce($2::bigint, 9223372036854775807)
                       and ($3::text is null or event_type = $3)
                     order by id desc
                     limit $4)
                ) as e
                order by e.id desc
                limit $4
                "#,
                user_id,
                query.before_id,
                event_type,
                fetch,
            )
            .fetch_all(&self.pool)
            .await,
            // audit_events_event_type_id_idx hands this type's events over in id order, which is
            // what a rare type needs; for a common one the primary key read backwards finds a page
            // as soon. Which is cheaper depends on the value, and only a query of its own (not an
            // `or` guard) leaves the planner free to weigh that with the type's statistics.
            (None, Some(event_type)) => sqlx::query_as!(
                AuditRow,
                r#"
                select id, occurred_at, event_type, outcome, actor_user_id, subject_type, subject_id,
                       host(ip) as "ip?", user_agent, request_id, detail
                from audit_events
                where event_type = $1
                  and id < coalesce($2::bigint, 9223372036854775807)
                order by id desc
                limit $3
                "#,
                event_type,
                query.before_id,
                fetch,
            )
            .fetch_all(&self.pool)
            .await,
            // The primary key, read backwards.
            (None, None) => sqlx::query_as!(
                AuditRow,
                r#"
                select id, occurred_at, event_type, outcome, actor_user_id, subject_type, subject_id,
                       host(ip) as "ip?", user_agent, request_id, detail
                from audit_events
                where id < coalesce($1::bigint, 9223372036854775807)
                order by id desc
                limit $2
                "#,
                query.before_id,
                fetch,
            )
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(unavailable)?;

        let (rows, more) = split_page(rows, page);
        let items = rows
            .into_iter()
            .map(AuditRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        let next_before_id = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(AuditPage {
            items,
            next_before_id,
        })
    }
}
