//! Webhooks and their delivery queue in PostgreSQL (see `migrations/*_webhooks.sql`, whose header
//! explains the design: at-least-once, `SKIP LOCKED`, leases).
//!
//! Every read of a webhook is scoped to its owner in SQL (`where owner_id = $1`), so another user's
//! webhook is indistinguishable from a missing one: the service cannot forget the check.
//!
//! The queue takes one statement per step, and none holds a transaction open while a receiver is
//! called: [`WebhookRepository::claim`] locks, leases and counts in one `update`, and commits;
//! [`WebhookRepository::record`] ends or reschedules the lease. Only a delivery still pending can be
//! recorded, so a worker whose lease ran out (and whose delivery someone else already finished)
//! cannot turn a final outcome back into a retry.
//!
//! Rows are turned into domain types with the domain's own parsers — the URL with
//! [`WebhookUrl::parse`] again, so a URL that a stricter policy now refuses is never handed to the
//! delivery client. A row the domain refuses is an error for the log, never a panic.

use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::quota::PlanLimits;
use bulwark_domain::webhook::{
    ClaimedDelivery, CreateWebhookError, Delivery, DeliveryOutcome, DeliveryStatus, NewWebhook,
    Webhook, WebhookEvent, WebhookRepository, WebhookStoreError,
};
use bulwark_domain::webhook_target::WebhookUrl;
use sqlx::PgPool;

use crate::quota::lock_owner;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest `last_error` stored, in characters (the table's check says the same).
pub const MAX_ERROR_CHARS: usize = 500;

/// Most entries of the delivery log one call returns.
pub const MAX_LOG_ENTRIES: u32 = 100;

/// Stored URLs are re-parsed with `http` allowed: whether plain http may be *registered* is the
/// service's decision, taken once at registration; reading back what was accepted then must not
/// fail because the process now runs with another setting. Every other rule applies again.
const STORED_URL_ALLOWS_HTTP: bool = true;

/// The PostgreSQL webhook repository.
#[derive(Debug, Clone)]
pub struct PgWebhookRepository {
    pool: PgPool,
}

impl PgWebhookRepository {
    /// A repository over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> WebhookStoreError {
    WebhookStoreError(crate::classify(error))
}

/// A stored row that no longer parses is a broken invariant (someone wrote around the domain
/// types and the table's checks, or the domain became stricter): an error for the log.
#[derive(Debug, thiserror::Error)]
#[error("{table} row {id} holds a value the domain refuses: {field}")]
struct CorruptRow {
    table: &'static str,
    id: Uuid,
    field: &'static str,
}

fn corrupt(table: &'static str, id: Uuid, field: &'static str) -> WebhookStoreError {
    store_error(CorruptRow { table, id, field })
}

/// A `webhooks` row as selected by every query here (the same column list each time).
struct WebhookRow {
    id: Uuid,
    owner_id: Uuid,
    url: String,
    events: Vec<String>,
    created_at: OffsetDateTime,
}

impl WebhookRow {
    fn into_webhook(self) -> Result<Webhook, WebhookStoreError> {
        let id = self.id;
        Ok(Webhook {
            id,
            owner_id: self.owner_id,
            url: WebhookUrl::parse(&self.url, STORED_URL_ALLOWS_HTTP)
                .map_err(|_| corrupt("webhooks", id, "url"))?,
            events: parse_events(&self.events).map_err(|()| corrupt("webhooks", id, "events"))?,
            created_at: self.created_at,
        })
    }
}

fn parse_events(stored: &[String]) -> Result<Vec<WebhookEvent>, ()> {
    stored
        .iter()
        .map(|e| WebhookEvent::parse(e).map_err(|_| ()))
        .collect()
}

/// The events' stored spellings, each once, in the order given (the domain promises no duplicates;
/// the table cannot check it, so this is where it is kept for the table).
fn event_strings(events: &[WebhookEvent]) -> Vec<String> {
    let mut spelled: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !spelled.iter().any(|s| s == event.as_str()) {
            spelled.push(event.as_str().to_owned());
        }
    }
    spelled
}

/// A `webhook_deliveries` row as the log selects it.
struct DeliveryRow {
    id: Uuid,
    webhook_id: Uuid,
    event: String,
    status: String,
    attempts: i32,
    last_response_status: Option<i16>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, WebhookStoreError> {
        let id = self.id;
        let table = "webhook_deliveries";
        Ok(Delivery {
            id,
            webhook_id: self.webhook_id,
            event: WebhookEvent::parse(&self.event).map_err(|_| corrupt(table, id, "event"))?,
            status: DeliveryStatus::from_stored(&self.status)
                .ok_or_else(|| corrupt(table, id, "status"))?,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt(table, id, "attempts"))?,
            last_response_status: self
                .last_response_status
                .map(u16::try_from)
                .transpose()
                .map_err(|_| corrupt(table, id, "last_response_status"))?,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A duration as whole microseconds (PostgreSQL's resolution), saturating: the SQL turns it into an
/// interval with `$n * interval '1 microsecond'`, which stays exact where a float of seconds would
/// not, and never fails on a nanosecond remainder as binding a `Duration` directly would.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The receiver's status as the table stores it. HTTP clients accept any three-digit status, but
/// only 100–599 mean something; anything else is kept as "no status" (the error says what happened)
/// rather than refused by the check, which would leave the delivery unrecorded.
fn response_status(status: Option<u16>) -> Option<i16> {
    status
        .filter(|s| (100..=599).contains(s))
        .and_then(|s| i16::try_from(s).ok())
}

/// `error` cut to [`MAX_ERROR_CHARS`] characters, on a character boundary (cutting a byte slice
/// could split a UTF-8 sequence, which would panic).
fn bounded(error: &str) -> &str {
    error
        .char_indices()
        .nth(MAX_ERROR_CHARS)
        .map_or(error, |(end, _)| &error[..end])
}

/// What the update in `record` writes for one outcome.
struct Recorded<'a> {
    status: DeliveryStatus,
    /// Some: reschedule this far from now (a retry). None: the row is final.
    retry_after: Option<Duration>,
    response_status: Option<u16>,
    error: Option<&'a str>,
}

impl<'a> Recorded<'a> {
    fn of(outcome: &'a DeliveryOutcome) -> Self {
        match outcome {
            DeliveryOutcome::Delivered { status } => Self {
                status: DeliveryStatus::Delivered,
                retry_after: None,
                response_status: Some(*status),
                error: None,
            },
            DeliveryOutcome::Retry {
                after,
                status,
                error,
            } => Self {
                status: DeliveryStatus::Pending,
                retry_after: Some(*after),
                response_status: *status,
                error: Some(error),
            },
            DeliveryOutcome::GiveUp { status, error } => Self {
                status: DeliveryStatus::Failed,
                retry_after: None,
                response_status: *status,
                error: Some(error),
            },
            DeliveryOutcome::Refused { error } => Self {
                status: DeliveryStatus::Refused,
                retry_after: None,
                response_status: None,
                error: Some(error),
            },
        }
    }
}

#[async_trait]
impl WebhookRepository for PgWebhookRepository {
    #[tracing::instrument(name = "webhooks.create", skip_all, fields(owner_id = %new.owner_id))]
    async fn create(
        &self,
        new: NewWebhook,
        limits: &PlanLimits,
    ) -> Result<Webhook, CreateWebhookError> {
        let owner_id = new.owner_id;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let plan = lock_owner(&mut tx, owner_id).await.map_err(store_error)?;
        let owned = sqlx::query_scalar!(
            r#"select count(*) as "count!" from webhooks where owner_id = $1"#,
            owner_id,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if owned >= i64::from(limits.of(plan).webhooks) {
            return Err(CreateWebhookError::QuotaExceeded);
        }
        let row = sqlx::query_as!(
            WebhookRow,
            r#"
            insert into webhooks (id, owner_id, url, events, sealed_secret)
            values ($1, $2, $3, $4, $5)
            returning id, owner_id, url, events, created_at
            "#,
            new.id,
            owner_id,
            new.url.as_str(),
            &event_strings(&new.events),
            new.sealed_secret,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(row.into_webhook()?)
    }

    #[tracing::instrument(name = "webhooks.list", skip_all, fields(%owner_id))]
    async fn list(&self, owner_id: Uuid) -> Result<Vec<Webhook>, WebhookStoreError> {
        // No paging: the plan's quota bounds how many rows one owner can have.
        sqlx::query_as!(
            WebhookRow,
            r#"
            select id, owner_id, url, events, created_at
            from webhooks
            where owner_id = $1
            order by created_at desc, id desc
            "#,
            owner_id,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(WebhookRow::into_webhook)
        .collect()
    }

    #[tracing::instrument(name = "webhooks.find", skip_all, fields(%owner_id, %id))]
    async fn find(&self, owner_id: Uuid, id: Uuid) -> Result<Option<Webhook>, WebhookStoreError> {
        sqlx::query_as!(
            WebhookRow,
            r#"
            select id, owner_id, url, events, created_at
            from webhooks
            where id = $1 and owner_id = $2
            "#,
            id,
            owner_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?
        .map(WebhookRow::into_webhook)
        .transpose()
    }

    #[tracing::instrument(name = "webhooks.delete", skip_all, fields(%owner_id, %id))]
    async fn delete(&self, owner_id: Uuid, id: Uuid) -> Result<bool, WebhookStoreError> {
        // The queue and the log go by cascade; a worker holding one of those rows makes this wait
        // for its (short) claim statement, never for the delivery itself.
        let deleted = sqlx::query!(
            "delete from webhooks where id = $1 and owner_id = $2",
            id,
            owner_id,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?
        .rows_affected();
        Ok(deleted > 0)
    }

    #[tracing::instrument(name = "webhooks.enqueue", skip_all, fields(%owner_id, event = event.as_str()))]
    async fn enqueue(
        &self,
        owner_id: Uuid,
        event: WebhookEvent,
        payload: serde_json::Value,
    ) -> Result<u32, WebhookStoreError> {
        // One statement: every subscribed webhook of the owner gets its row, or none does.
        let queued = sqlx::query!(
            r#"
            insert into webhook_deliveries (webhook_id, event, payload)
            select id, $2, $3
            from webhooks
            where owner_id = $1 and $2 = any(events)
            "#,
            owner_id,
            event.as_str(),
            payload,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?
        .rows_affected();
        // At most the plan's quota of webhooks, so far below u32::MAX.
        Ok(u32::try_from(queued).unwrap_or(u32::MAX))
    }

    #[tracing::instrument(name = "webhooks.claim", skip_all, fields(limit = limit, lease_ms = lease.as_millis()))]
    async fn claim(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, WebhookStoreError> {
        // The subquery locks up to `limit` due rows, stepping over rows another claimer holds
        // (`skip locked`); the update leases them and counts the attempt; the statement commits on
        // its own. Should another claimer finish with a row between our snapshot and our lock, the
        // lock re-checks `next_attempt_at <= now()` on the row's newest version and drops it, so a
        // row is never handed out twice within its lease.
        //
        // `attempts` comes back as it was *before* this claim (`d.attempts - 1` of the updated
        // row), which is what `ClaimedDelivery::attempts` promises; the table already counts this
        // one, so a worker that dies now has still used an attempt.
        let rows = sqlx::query!(
            r#"
            update webhook_deliveries d
            set next_attempt_at = now() + $2::bigint * interval '1 microsecond',
                attempts = d.attempts + 1,
                updated_at = now()
            from (
                select id
                from webhook_deliveries
                where status = 'pending' and next_attempt_at <= now()
                order by next_attempt_at
                limit $1
                for update skip locked
            ) c, webhooks w
            where d.id = c.id and w.id = d.webhook_id
            returning d.id, d.webhook_id, w.url, w.sealed_secret, d.event, d.payload,
                      d.attempts - 1 as "attempts!"
            "#,
            i64::from(limit),
            micros(lease),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;

        let mut claimed = Vec::with_capacity(rows.len());
        let mut unusable = Vec::new();
        for r in rows {
            let url = WebhookUrl::parse(&r.url, STORED_URL_ALLOWS_HTTP);
            let event = WebhookEvent::parse(&r.event);
            let attempts = u32::try_from(r.attempts);
            match (url, event, attempts) {
                (Ok(url), Ok(event), Ok(attempts)) => claimed.push(ClaimedDelivery {
                    id: r.id,
                    webhook_id: r.webhook_id,
                    url,
                    sealed_secret: r.sealed_secret,
                    event,
                    payload: r.payload,
                    attempts,
                }),
                _ => {
                    // One bad row must not fail the batch (its neighbours would wait out their
                    // lease, then meet it again at the next claim): it is logged and ended here.
                    tracing::error!(
                        error = %CorruptRow { table: "webhook_deliveries", id: r.id, field: "url, event or attempts" },
                        "a claimed webhook delivery cannot be sent; it is marked failed"
                    );
                    unusable.push(r.id);
                }
            }
        }
        if !unusable.is_empty() {
            sqlx::query!(
                r#"
                update webhook_deliveries
                set status = 'failed',
                    last_error = 'the stored webhook no longer passes the domain''s checks',
                    updated_at = now()
                where id = any($1) and status = 'pending'
                "#,
                &unusable,
            )
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        }
        Ok(claimed)
    }

    #[tracing::instrument(name = "webhooks.record", skip_all, fields(%delivery_id))]
    async fn record(
        &self,
        delivery_id: Uuid,
        outcome: DeliveryOutcome,
    ) -> Result<(), WebhookStoreError> {
        let recorded = Recorded::of(&outcome);
        // The attempt was counted when it was claimed. `status = 'pending'` keeps a final outcome
        // final: a worker whose lease ran out reports late, after another worker finished the row.
        let updated = sqlx::query!(
            r#"
            update webhook_deliveries
            set status = $2,
                next_attempt_at = case
                    when $3::bigint is null then next_attempt_at
                    else now() + $3::bigint * interval '1 microsecond'
                end,
                last_response_status = $4,
                last_error = $5,
                updated_at = now()
            where id = $1 and status = 'pending'
            "#,
            delivery_id,
            recorded.status.as_str(),
            recorded.retry_after.map(micros),
            response_status(recorded.response_status),
            recorded.error.map(bounded),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?
        .rows_affected();
        if updated == 0 {
            // Deleted with its webhook, or already final: nothing to record, and nothing wrong.
            tracing::debug!("the delivery is no longer pending; outcome not recorded");
        }
        Ok(())
    }

    #[tracing::instrument(name = "webhooks.deliveries", skip_all, fields(%owner_id, %webhook_id, limit = limit))]
    async fn deliveries(
        &self,
        owner_id: Uuid,
        webhook_id: Uuid,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookStoreError> {
        // The join is the authorisation: another owner's webhook has an empty log, like a missing one.
        sqlx::query_as!(
            DeliveryRow,
            r#"
            select d.id, d.webhook_id, d.event, d.status, d.attempts, d.last_response_status,
                   d.last_error, d.created_at, d.updated_at
            from webhook_deliveries d
            join webhooks w on w.id = d.webhook_id
            where d.webhook_id = $1 and w.owner_id = $2
            order by d.created_at desc, d.id desc
            limit $3
            "#,
            webhook_id,
            owner_id,
            i64::from(limit.clamp(1, MAX_LOG_ENTRIES)),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(DeliveryRow::into_delivery)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary() {
        let multibyte = "é".repeat(MAX_ERROR_CHARS + 10);
        let cut = bounded(&multibyte);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert_eq!(bounded("short"), "short");
        let exact = "a".repeat(MAX_ERROR_CHARS);
        assert_eq!(bounded(&exact), exact);
    }

    #[test]
    fn statuses_outside_http_are_not_stored_and_durations_saturate() {
        assert_eq!(response_status(Some(200)), Some(200));
        assert_eq!(response_status(Some(599)), Some(599));
        assert_eq!(response_status(Some(99)), None);
        assert_eq!(response_status(Some(999)), None);
        assert_eq!(response_status(None), None);
        assert_eq!(micros(Duration::from_nanos(1_500)), 1);
        assert_eq!(micros(Duration::MAX), i64::MAX);
    }

    #[test]
    fn events_are_stored_once_each() {
        let events = [
            WebhookEvent::DocumentShared,
            WebhookEvent::DocumentUpdated,
            WebhookEvent::DocumentShared,
        ];
        assert_eq!(
            event_strings(&events),
            ["document.shared", "document.updated"]
        );
    }
}
