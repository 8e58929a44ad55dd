//! Re-sealing every sealed value under the active data-encryption key (`bulwark rotate-data-key`).
//!
//! Rotating the key is three steps for the operator: put a new key first in
//! `DATA_ENCRYPTION_KEYS` and restart (new values use it, old ones still open with their key); run
//! this; remove the old key. This step is:
//! - **safe while the service serves**: each value is rewritten with a compare-and-set
//!   (`where id = … and value = <the old sealed text>`), so a value changed meanwhile by the service
//!   is left alone — it was written under the active key anyway;
//! - **resumable**: it walks each table in id order in small batches and rewrites only values
//!   sealed under another key, so a run that stops half-way is finished by running it again;
//! - **strict**: a value that does not open (a key missing from the ring, a tampered row) stops the
//!   run with the row named, rather than skipping data the old key would be needed for.
//!
//! Not re-sealed: OAuth sign-ins in flight (`oauth_states`) — their sealing context includes the
//! `state`, which is not stored, and they expire within ten minutes; keep the old key in the ring
//! that long after rotating.

use bulwark_domain::sealing::Sealer;
use sqlx::PgPool;
use uuid::Uuid;

/// How many values each table had re-sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Outbox payloads.
    pub mail: u64,
    /// Webhook signing secrets.
    pub webhooks: u64,
    /// TOTP secrets, active and pending.
    pub totp: u64,
}

/// Why a rotation stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A value did not open or seal (which row, and why — never the value).
    #[error("{table} row {id}: {source}")]
    Value {
        /// The table.
        table: &'static str,
        /// The row.
        id: Uuid,
        /// Why.
        #[source]
        source: bulwark_domain::sealing::SealError,
    },
}

const BATCH: i64 = 200;

fn reseal(
    sealer: &dyn Sealer,
    table: &'static str,
    id: Uuid,
    sealed: &str,
    context: &[u8],
) -> Result<Option<String>, RotationError> {
    if !sealer.needs_reseal(sealed) {
        return Ok(None);
    }
    let error = |source| RotationError::Value { table, id, source };
    let plaintext = sealer.open(sealed, context).map_err(error)?;
    use secrecy::ExposeSecret;
    sealer
        .seal(plaintext.expose_secret(), context)
        .map(Some)
        .map_err(error)
}

/// Re-seals every value not sealed under the active key. See the module documentation.
///
/// # Errors
/// [`RotationError`] on the first database failure or value that does not open.
#[tracing::instrument(name = "maintenance.reseal", skip_all)]
pub async fn reseal_all(pool: &PgPool, sealer: &dyn Sealer) -> Result<Resealed, RotationError> {
    let mut done = Resealed::default();

    let mut after = Uuid::nil();
    loop {
        let rows = sqlx::query!(
            "select id, recipient, template, payload from mail_outbox where id > $1 order by id limit $2",
            after,
            BATCH,
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in rows {
            let context = crate::outbox::context(&row.template, &row.recipient);
            if let Some(new) = reseal(sealer, "mail_outbox", row.id, &row.payload, &context)? {
                done.mail += sqlx::query!(
                    "update mail_outbox set payload = $3 where id = $1 and payload = $2",
                    row.id,
                    row.payload,
                    new,
                )
                .execute(pool)
                .await?
                .rows_affected();
            }
        }
    }

    let mut after = Uuid::nil();
    loop {
        let rows = sqlx::query!(
            "select id, sealed_secret from webhooks where id > $1 order by id limit $2",
            after,
            BATCH,
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in rows {
            let context = bulwark_domain::webhook::secret_context(row.id);
            if let Some(new) = reseal(sealer, "webhooks", row.id, &row.sealed_secret, &context)? {
                done.webhooks += sqlx::query!(
                    "update webhooks set sealed_secret = $3 where id = $1 and sealed_secret = $2",
                    row.id,
                    row.sealed_secret,
                    new,
                )
                .execute(pool)
                .await?
                .rows_affected();
            }
        }
    }

    let mut after = Uuid::nil();
    loop {
        let rows = sqlx::query!(
            "select user_id, sealed_secret, pending_sealed_secret from mfa_totp where user_id > $1 order by user_id limit $2",
            after,
            BATCH,
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.user_id;
        for row in rows {
            let id = row.user_id;
            if let Some(old) = &row.sealed_secret {
                let context = bulwark_domain::mfa_service::active_context(id);
                if let Some(new) = reseal(sealer, "mfa_totp", id, old, &context)? {
                    done.totp += sqlx::query!(
                        "update mfa_totp set sealed_secret = $3 where user_id = $1 and sealed_secret = $2",
                        id,
                        old,
                        new,
                    )
                    .execute(pool)
                    .await?
                    .rows_affected();
                }
            }
            if let Some(old) = &row.pending_sealed_secret {
                let context = bulwark_domain::mfa_service::pending_context(id);
                if let Some(new) = reseal(sealer, "mfa_totp", id, old, &context)? {
                    done.totp += sqlx::query!(
                        "update mfa_totp set pending_sealed_secret = $3 where user_id = $1 and pending_sealed_secret = $2",
                        id,
                        old,
                        new,
                    )
                    .execute(pool)
                    .await?
                    .rows_affected();
                }
            }
        }
    }
    Ok(done)
}
