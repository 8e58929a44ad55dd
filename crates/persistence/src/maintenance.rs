//! Housekeeping: rows that have served their purpose are deleted, so that tables of sessions,
//! tokens, throttle counters and sent mail do not grow without bound (and do not keep personal data
//! such as IP addresses and user agents longer than needed).
//!
//! What goes, and why it is safe:
//! - **sessions** (with their refresh tokens, by cascade) a week after they ended — by expiry or
//!   revocation. A refresh token of a deleted session is unknown, which answers the same 401 as a
//!   revoked one. The audit trail keeps the record of what happened.
//! - **one-time tokens** a day after they were used or expired.
//! - **throttle counters** a day after their last failure, unless a block is still in force.
//! - **outbox mail** a week after it was sent or gave up. Mail caps look back one hour at most.
//! - **flow events** (counters of capped flows such as sharing) after a day.
//! - **webhook deliveries** 30 days after they ended (delivered, failed or refused): long enough for
//!   a user to read in the log why last month's deliveries failed. Pending ones always stay, however
//!   old: they are the queue.
//! - **MFA challenges** and **OAuth sign-ins in flight** once expired (minutes): they are useless
//!   then, and the lookups already ignore them.
//!
//! The audit trail is never purged here: it is append-only by design (see its migration), and its
//! retention is a decision for the operator.

use sqlx::PgPool;

/// How many rows each purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sessions (their refresh tokens went with them).
    pub sessions: u64,
    /// One-time tokens.
    pub one_time_tokens: u64,
    /// Throttle counters.
    pub throttle_keys: u64,
    /// Outbox mail.
    pub mails: u64,
    /// Flow events (caps look back an hour by default, a day at most).
    pub flow_events: u64,
    /// Webhook deliveries that ended (the log keeps 30 days).
    pub webhook_deliveries: u64,
    /// Expired MFA challenges and OAuth sign-ins in flight.
    pub challenges: u64,
}

/// Deletes every row past its retention (see the module docs). Each table is one statement of its
/// own, so a purge never holds locks across tables.
///
/// # Errors
/// The first database error.
#[tracing::instrument(name = "maintenance.purge", skip_all)]
pub async fn purge_expired(pool: &PgPool) -> Result<Purged, sqlx::Error> {
    let sessions = sqlx::query!(
        r#"
        delete from sessions
        where coalesce(revoked_at, least(expires_at, idle_expires_at)) < now() - interval '7 days'
        "#
    )
    .execute(pool)
    .await?
    .rows_affected();
    let one_time_tokens = sqlx::query!(
        r#"
        delete from one_time_tokens
        where coalesce(used_at, expires_at) < now() - interval '1 day'
        "#
    )
    .execute(pool)
    .await?
    .rows_affected();
    let throttle_keys = sqlx::query!(
        r#"
        delete from login_throttle
        where last_failure_at < now() - interval '1 day'
          and (blocked_until is null or blocked_until < now())
        "#
    )
    .execute(pool)
    .await?
    .rows_affected();
    let mails = sqlx::query!(
        r#"
        delete from mail_outbox
        where created_at < now() - interval '7 days'
          and (sent_at is not null or attempts >= $1)
        "#,
        crate::outbox::MAX_ATTEMPTS,
    )
    .execute(pool)
    .await?
    .rows_affected();
    let flow_events =
        sqlx::query!("delete from flow_events where occurred_at < now() - interval '1 day'")
            .execute(pool)
            .await?
            .rows_affected();
    let webhook_deliveries = sqlx::query!(
        r#"
        delete from webhook_deliveries
        where status <> 'pending' and updated_at < now() - interval '30 days'
        "#
    )
    .execute(pool)
    .await?
    .rows_affected();
    let challenges = sqlx::query!("delete from mfa_challenges where expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected()
        + sqlx::query!("delete from oauth_states where expires_at < now()")
            .execute(pool)
            .await?
            .rows_affected();
    Ok(Purged {
        sessions,
        one_time_tokens,
        throttle_keys,
        mails,
        flow_events,
        webhook_deliveries,
        challenges,
    })
}
