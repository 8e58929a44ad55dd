//! Mail delivery: a background task that sends the outbox over SMTP (lettre), when `SMTP_URL` is
//! set. Without it mail stays in the outbox (development and the tests read it there).
//!
//! Links carry their token in the URL *fragment* (`…/reset-password#token=…`): browsers never send
//! a fragment to a server, so the token does not land in access logs, proxies or `Referer` headers
//! on its way to the front end, which then posts it to the API.

use std::time::Duration;

use bulwark_persistence::outbox::{OutboxMail, PgOutbox};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How often the outbox is polled.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// Mails taken per poll.
const BATCH: u32 = 20;

/// SMTP settings.
#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://host:port` (plain, development only), `smtps://…` or `smtp://…?tls=required`;
    /// may carry credentials (`smtps://user:pass@host`), hence a secret.
    pub smtp_url: SecretString,
    /// The `From` address.
    pub from: Mailbox,
    /// Where the front end lives, for links (`https://app.example.com`).
    pub public_url: String,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("from", &self.from.to_string())
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Why the SMTP transport could not be built.
#[derive(Debug, thiserror::Error)]
#[error("SMTP_URL is not usable")]
pub struct SmtpSetupError(#[source] lettre::transport::smtp::Error);

/// The subject and text of a mail.
fn render(mail: &OutboxMail, public_url: &str) -> Option<(&'static str, String)> {
    let token = mail.token.as_ref().map(|t| t.expose_secret().to_owned());
    let base = public_url.trim_end_matches('/');
    Some(match (mail.template, token) {
        ("verify_email", Some(token)) => (
            "Confirm your email address",
            format!(
                "Confirm your address by opening this link:\n\n{base}/verify-email#token={token}\n\n\
                 If you did not create an account, ignore this mail.\n"
            ),
        ),
        ("password_reset", Some(token)) => (
            "Reset your password",
            format!(
                "Someone asked to reset the password of your account. To choose a new one, open \
                 this link within 30 minutes:\n\n{base}/reset-password#token={token}\n\n\
                 If it was not you, ignore this mail: your password has not changed.\n"
            ),
        ),
        ("account_exists", None) => (
            "Someone tried to register with your address",
            "Someone tried to create an account with this email address, which already has \
             one. If it was you, sign in instead (or reset your password). If not, you can \
             ignore this mail.\n"
                .to_owned(),
        ),
        ("password_changed", None) => (
            "Your password was changed",
            "The password of your account was just changed, and your other sessions were \
             signed out. If this was not you, reset your password now and contact us.\n"
                .to_owned(),
        ),
        _ => return None,
    })
}

/// Starts the delivery task.
///
/// # Errors
/// [`SmtpSetupError`] when `SMTP_URL` cannot be used.
pub fn spawn(
    outbox: PgOutbox,
    settings: MailSettings,
) -> Result<tokio::task::JoinHandle<()>, SmtpSetupError> {
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose_secret())
            .map_err(SmtpSetupError)?
            .timeout(Some(Duration::from_secs(10)))
            .build();
    Ok(tokio::spawn(async move {
        loop {
            deliver_batch(&outbox, &transport, &settings).await;
            tokio::time::sleep(POLL_EVERY).await;
        }
    }))
}

async fn deliver_batch(
    outbox: &PgOutbox,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    settings: &MailSettings,
) {
    let pending = match outbox.pending(BATCH).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::warn!(error = %error, "cannot read the mail outbox");
            return;
        }
    };
    for mail in pending {
        let outcome = send_one(&mail, transport, settings).await;
        let marked = match &outcome {
            Ok(()) => outbox.mark_sent(mail.id).await,
            // The error text of lettre names the server and the SMTP reply, never the message.
            Err(error) => outbox.mark_failed(mail.id, error).await,
        };
        match (outcome, marked) {
            (Ok(()), Ok(_)) => {
                tracing::info!(mail_id = %mail.id, template = mail.template, "mail sent")
            }
            (Err(error), _) => {
                tracing::warn!(mail_id = %mail.id, template = mail.template, error = %error, "mail not sent");
            }
            (Ok(()), Err(error)) => {
                // Sent but not marked: it may be sent again. Better twice than never.
                tracing::error!(mail_id = %mail.id, error = %error, "mail sent but not marked");
            }
        }
    }
}

async fn send_one(
    mail: &OutboxMail,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    settings: &MailSettings,
) -> Result<(), String> {
    let (subject, body) = render(mail, &settings.public_url)
        .ok_or_else(|| format!("no template {} for this payload", mail.template))?;
    let to: Mailbox = mail
        .recipient
        .as_str()
        .parse()
        .map_err(|_| "the recipient is not a valid mailbox".to_owned())?;
    let message = Message::builder()
        .from(settings.from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use bulwark_domain::user::Email;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;

    fn mail(template: &'static str, token: Option<&str>) -> OutboxMail {
        OutboxMail {
            id: Uuid::nil(),
            recipient: Email::parse("ada@example.com").unwrap(),
            template,
            token: token.map(SecretString::from),
            created_at: OffsetDateTime::UNIX_EPOCH,
            attempts: 0,
        }
    }

    #[test]
    fn links_carry_the_token_in_the_fragment_only() {
        let (_, body) = render(
            &mail("password_reset", Some("bwpr_abc")),
            "https://app.example.com/",
        )
        .unwrap();
        assert!(body.contains("https://app.example.com/reset-password#token=bwpr_abc"));
        assert!(!body.contains("?token="));
    }

    #[test]
    fn every_template_renders_and_a_mismatched_payload_does_not() {
        for (template, token) in [
            ("verify_email", Some("bwev_x")),
            ("password_reset", Some("bwpr_x")),
            ("account_exists", None),
            ("password_changed", None),
        ] {
            assert!(
                render(&mail(template, token), "http://localhost").is_some(),
                "{template}"
            );
        }
        assert!(render(&mail("password_reset", None), "http://localhost").is_none());
        assert!(render(&mail("unknown", None), "http://localhost").is_none());
    }
}
