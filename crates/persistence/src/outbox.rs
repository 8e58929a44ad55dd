//! The mail outbox in PostgreSQL (see `migrations/*_mail_outbox.sql`), behind the domain's
//! [`Mailer`] port, and the reads the delivery task needs.
//!
//! A mail's secret part — the token of a verification or reset mail — is serialised as JSON and
//! sealed with the [`Sealer`] before it reaches the database; mails without a secret store a sealed
//! `{"token":null}`, so every row looks alike. The sealing context is
//! `mail_outbox:<template>:<recipient>`: a sealed payload copied into another row (say, a pending
//! reset mail to an address an attacker controls) does not open there, and neither does one moved
//! to another template.
//!
//! [`PgOutbox::pending`] reads without claiming: run one delivery task per database (several would
//! send a mail more than once). Each attempt is recorded by [`PgOutbox::mark_sent`] or
//! [`PgOutbox::mark_failed`]; after [`MAX_ATTEMPTS`] failures a mail stays in the table, unsent,
//! for an operator.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::mail::{Mail, MailCap, MailError, Mailer};
use bulwark_domain::sealing::Sealer;
use bulwark_domain::user::Email;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Failed attempts after which a mail is no longer offered by [`PgOutbox::pending`].
pub const MAX_ATTEMPTS: i32 = 5;
/// Longest stored delivery error, in characters (the `mail_outbox_last_error_length_check`).
pub const MAX_ERROR_CHARS: usize = 1000;

/// Every template the outbox accepts (the `mail_outbox_template_check` constraint).
const TEMPLATES: [&str; 4] = [
    "verify_email",
    "password_reset",
    "account_exists",
    "password_changed",
];

/// Queues mail in the `mail_outbox` table, secrets sealed.
#[derive(Debug, Clone)]
pub struct PgOutbox {
    pool: PgPool,
    sealer: Arc<dyn Sealer>,
}

impl PgOutbox {
    /// The sealed payload of a mail: its secret part (the token, if any) as JSON, bound to the
    /// template and the recipient.
    fn seal(&self, to: &Email, mail: &Mail) -> Result<String, MailError> {
        let token = match mail {
            Mail::VerifyEmail { token } | Mail::PasswordReset { token } => {
                Some(token.expose_secret())
            }
            Mail::AccountExists | Mail::PasswordChanged => None,
        };
        // The JSON holds the token in the clear: it goes into a buffer sized up front (no
        // reallocation leaves a copy behind) that is wiped on drop.
        let mut buffer = Vec::with_capacity(32 + token.map_or(0, str::len));
        serde_json::to_writer(&mut buffer, &SealedPart { token }).map_err(mail_error)?;
        let plaintext = SecretSlice::from(buffer);
        self.sealer
            .seal(
                plaintext.expose_secret(),
                &context(mail.template(), to.as_str()),
            )
            .map_err(mail_error)
    }

    /// An outbox over the service's pool, sealing with `sealer` (the data-encryption keyring).
    #[must_use]
    pub fn new(pool: PgPool, sealer: Arc<dyn Sealer>) -> Self {
        Self { pool, sealer }
    }
}

/// A queued mail, its secret opened: what the delivery task sends (and what tests read).
pub struct OutboxMail {
    /// The row's id (for [`PgOutbox::mark_sent`] and [`PgOutbox::mark_failed`]).
    pub id: Uuid,
    /// Whom to send it to.
    pub recipient: Email,
    /// Which mail it is ([`Mail::template`]).
    pub template: &'static str,
    /// The token for the link, for `verify_email` and `password_reset`; `None` otherwise.
    pub token: Option<SecretString>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// Delivery attempts so far.
    pub attempts: i32,
}

impl fmt::Debug for OutboxMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxMail")
            .field("id", &self.id)
            .field("recipient", &self.recipient)
            .field("template", &self.template)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("created_at", &self.created_at)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// What is sealed into `payload`.
#[derive(serde::Serialize)]
struct SealedPart<'a> {
    token: Option<&'a str>,
}

/// What `payload` opens to.
#[derive(serde::Deserialize)]
struct OpenedPart {
    token: Option<String>,
}

/// A stored row the outbox cannot use (someone wrote around this adapter, or a key was removed
/// from the keyring too early).
#[derive(Debug, thiserror::Error)]
#[error("mail_outbox row {0}: {1}")]
struct UnusableRow(Uuid, &'static str);

fn mail_error(error: impl std::error::Error + Send + Sync + 'static) -> MailError {
    MailError(crate::classify(error))
}

/// The sealing context of a row's payload: its template and its recipient.
pub(crate) fn context(template: &str, recipient: &str) -> Vec<u8> {
    let mut context = Vec::with_capacity(12 + template.len() + 1 + recipient.len());
    context.extend_from_slice(b"mail_outbox:");
    context.extend_from_slice(template.as_bytes());
    context.push(b':');
    context.extend_from_slice(recipient.as_bytes());
    context
}

impl PgOutbox {
    /// Opens a stored row into an [`OutboxMail`].
    fn open(
        &self,
        id: Uuid,
        recipient: &str,
        template: &str,
        payload: &str,
        created_at: OffsetDateTime,
        attempts: i32,
    ) -> Result<OutboxMail, MailError> {
        let template = TEMPLATES
            .into_iter()
            .find(|t| *t == template)
            .ok_or_else(|| mail_error(UnusableRow(id, "unknown template")))?;
        let email =
            Email::parse(recipient).map_err(|_| mail_error(UnusableRow(id, "bad recipient")))?;
        let opened = self
            .sealer
            .open(payload, &context(template, recipient))
            .map_err(mail_error)?;
        let part: OpenedPart = serde_json::from_slice(opened.expose_secret())
            .map_err(|_| mail_error(UnusableRow(id, "payload is not the expected json")))?;
        Ok(OutboxMail {
            id,
            recipient: email,
            template,
            token: part.token.map(SecretString::from),
            created_at,
            attempts,
        })
    }

    /// Unsent mail with fewer than [`MAX_ATTEMPTS`] failed attempts, oldest first, at most
    /// `limit`. A row whose payload cannot be opened (its key left the keyring, or it was moved
    /// from another row) is recorded as a failed attempt and skipped, so it cannot block the
    /// queue.
    ///
    /// # Errors
    /// [`MailError`] when the outbox cannot be read.
    #[tracing::instrument(name = "outbox.pending", skip(self))]
    pub async fn pending(&self, limit: u32) -> Result<Vec<OutboxMail>, MailError> {
        let rows = sqlx::query!(
            r#"
            select id, recipient, template, payload, created_at, attempts
            from mail_outbox
            where sent_at is null and attempts < $1
            order by created_at, id
            limit $2
            "#,
            MAX_ATTEMPTS,
            i64::from(limit),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(mail_error)?;
        let mut mails = Vec::with_capacity(rows.len());
        for row in rows {
            match self.open(
                row.id,
                &row.recipient,
                &row.template,
                &row.payload,
                row.created_at,
                row.attempts,
            ) {
                Ok(mail) => mails.push(mail),
                Err(error) => {
                    tracing::warn!(id = %row.id, error = ?error, "an outbox mail cannot be opened; skipped");
                    self.mark_failed(row.id, "the payload cannot be opened")
                        .await?;
                }
            }
        }
        Ok(mails)
    }

    /// Records a successful delivery. Returns false when there is no such unsent mail.
    ///
    /// # Errors
    /// [`MailError`] when the outbox cannot be written.
    #[tracing::instrument(name = "outbox.mark_sent", skip(self))]
    pub async fn mark_sent(&self, id: Uuid) -> Result<bool, MailError> {
        let result = sqlx::query!(
            r#"
            update mail_outbox set sent_at = now(), attempts = attempts + 1
            where id = $1 and sent_at is null
            "#,
            id,
        )
        .execute(&self.pool)
        .await
        .map_err(mail_error)?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed delivery and why (cut to [`MAX_ERROR_CHARS`]; never put a secret in it).
    /// Returns false when there is no such unsent mail.
    ///
    /// # Errors
    /// [`MailError`] when the outbox cannot be written.
    #[tracing::instrument(name = "outbox.mark_failed", skip(self, error))]
    pub async fn mark_failed(&self, id: Uuid, error: &str) -> Result<bool, MailError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let result = sqlx::query!(
            r#"
            update mail_outbox set attempts = attempts + 1, last_error = $2
            where id = $1 and sent_at is null
            "#,
            id,
            error,
        )
        .execute(&self.pool)
        .await
        .map_err(mail_error)?;
        Ok(result.rows_affected() == 1)
    }

    /// The newest mail of `template` to `recipient` (compared case-insensitively, any text), sent
    /// or not, opened.
    ///
    /// # Errors
    /// [`MailError`] when the outbox cannot be read or the payload cannot be opened.
    pub async fn latest_for(
        &self,
        recipient: &str,
        template: &str,
    ) -> Result<Option<OutboxMail>, MailError> {
        let row = sqlx::query!(
            r#"
            select id, recipient, template, payload, created_at, attempts
            from mail_outbox
            where lower(recipient) = lower($1) and template = $2
            order by created_at desc, id desc
            limit 1
            "#,
            recipient,
            template,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(mail_error)?;
        row.map(|row| {
            self.open(
                row.id,
                &row.recipient,
                &row.template,
                &row.payload,
                row.created_at,
                row.attempts,
            )
        })
        .transpose()
    }
}

#[async_trait]
impl Mailer for PgOutbox {
    #[tracing::instrument(name = "outbox.send", skip_all, fields(template = mail.template()))]
    async fn send(&self, to: &Email, mail: Mail) -> Result<(), MailError> {
        let payload = self.seal(to, &mail)?;
        sqlx::query!(
            "insert into mail_outbox (recipient, template, payload) values ($1, $2, $3)",
            to.as_str(),
            mail.template(),
            payload,
        )
        .execute(&self.pool)
        .await
        .map_err(mail_error)?;
        Ok(())
    }

    async fn send_capped(&self, to: &Email, mail: Mail, cap: MailCap) -> Result<bool, MailError> {
        let template = mail.template();
        let payload = self.seal(to, &mail)?;
        let mut tx = self.pool.begin().await.map_err(mail_error)?;
        // One lock per address and template, held until commit: of concurrent requests, each counts
        // only after the previous one's row is in. (A lock rather than SERIALIZABLE: no retries.)
        sqlx::query!(
            "select pg_advisory_xact_lock(hashtextextended('mail_outbox:' || lower($1) || ':' || $2, 0))",
            to.as_str(),
            template,
        )
        .execute(&mut *tx)
        .await
        .map_err(mail_error)?;
        let sent = sqlx::query_scalar!(
            r#"
            select count(*) as "count!" from mail_outbox
            where lower(recipient) = lower($1) and template = $2
              and created_at > now() - make_interval(secs => $3)
            "#,
            to.as_str(),
            template,
            cap.window.as_secs_f64(),
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(mail_error)?;
        if sent >= i64::from(cap.max) {
            return Ok(false);
        }
        sqlx::query!(
            "insert into mail_outbox (recipient, template, payload) values ($1, $2, $3)",
            to.as_str(),
            template,
            payload,
        )
        .execute(&mut *tx)
        .await
        .map_err(mail_error)?;
        tx.commit().await.map_err(mail_error)?;
        Ok(true)
    }

    async fn sent_within(
        &self,
        to: &Email,
        template: &'static str,
        window: Duration,
    ) -> Result<u32, MailError> {
        let count = sqlx::query_scalar!(
            r#"
            select count(*) as "count!" from mail_outbox
            where lower(recipient) = lower($1) and template = $2
              and created_at > now() - make_interval(secs => $3)
            "#,
            to.as_str(),
            template,
            window.as_secs_f64(),
        )
        .fetch_one(&self.pool)
        .await
        .map_err(mail_error)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }
}
