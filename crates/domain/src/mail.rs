//! Mail the service sends, and the [`Mailer`] port.
//!
//! Services say *what* to send ([`Mail`]); the adapter decides how. The PostgreSQL adapter writes an
//! outbox row in the same database as everything else (so a mail is never lost between a commit and
//! a crash), with the mail's secret parts sealed (AES-256-GCM): a reset link in a database dump is
//! useless. A delivery task sends the outbox over SMTP when `SMTP_URL` is set; the tests read it.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::user::Email;

/// What to tell the recipient.
pub enum Mail {
    /// Confirm the address: carries a single-use verification token.
    VerifyEmail {
        /// The token (goes into the link; never stored in the clear).
        token: SecretString,
    },
    /// Reset the password: carries a single-use reset token.
    PasswordReset {
        /// The token.
        token: SecretString,
    },
    /// Someone tried to register with this address, which already has an account. This is what
    /// keeps registration from telling a stranger that the address is taken: the stranger sees the
    /// same answer as for a new address; only the owner learns of the attempt.
    AccountExists,
    /// The password was changed or reset (a notice: if it was not you, act now).
    PasswordChanged,
}

impl Mail {
    /// The stored template name.
    #[must_use]
    pub const fn template(&self) -> &'static str {
        match self {
            Self::VerifyEmail { .. } => "verify_email",
            Self::PasswordReset { .. } => "password_reset",
            Self::AccountExists => "account_exists",
            Self::PasswordChanged => "password_changed",
        }
    }
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        write!(f, "Mail({})", self.template())
    }
}

/// The per-address cap on one kind of mail (no mail bombing through the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailCap {
    /// At most this many mails…
    pub max: u32,
    /// …within this window.
    pub window: std::time::Duration,
}

/// Sends (or queues) mail.
#[async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    /// Queues `mail` for `to`.
    ///
    /// # Errors
    /// [`MailError`] when the mail cannot be queued.
    async fn send(&self, to: &Email, mail: Mail) -> Result<(), MailError>;

    /// Queues `mail` for `to` unless the address already had `cap.max` mails of this template
    /// within `cap.window`. The count and the insert are one atomic step per address and template,
    /// so concurrent requests cannot slip past the cap. Returns whether the mail was queued.
    ///
    /// # Errors
    /// [`MailError`] when the outbox cannot be read or written.
    async fn send_capped(&self, to: &Email, mail: Mail, cap: MailCap) -> Result<bool, MailError>;

    /// How many mails with this template went (or are queued) to this address within `window`:
    /// the per-account cap that stops anyone from mail-bombing an address through the service.
    ///
    /// # Errors
    /// [`MailError`] when the outbox cannot be read.
    async fn sent_within(
        &self,
        to: &Email,
        template: &'static str,
        window: std::time::Duration,
    ) -> Result<u32, MailError>;
}

/// The mail could not be queued; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the mail outbox is unavailable")]
pub struct MailError(#[source] pub Box<dyn std::error::Error + Send + Sync>);
