//! Repository tests for the mail outbox, each against a database of its own, sealing with the
//! real AES-256-GCM keyring sealer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bulwark_domain::mail::{Mail, Mailer};
use bulwark_domain::user::Email;
use bulwark_persistence::outbox::{MAX_ATTEMPTS, MAX_ERROR_CHARS, PgOutbox};
use bulwark_security::keys::{DataKeyring, generate_keys};
use bulwark_security::sealing::KeyringSealer;
use bulwark_testkit::TestDatabase;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);
const RESET_TOKEN: &str = "bwpr_Zm9yIHRlc3RzIG9ubHk6IG5vdCBhIHJlYWwgdG9rZW4hISE";

fn outbox(db: &TestDatabase) -> PgOutbox {
    let keys = generate_keys().unwrap();
    let keyring = DataKeyring::parse(&keys.data_encryption_keys).unwrap();
    PgOutbox::new(
        db.pool.clone(),
        Arc::new(KeyringSealer::new(&keyring).unwrap()),
    )
}

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

fn reset(token: &str) -> Mail {
    Mail::PasswordReset {
        token: SecretString::from(token),
    }
}

async fn payloads(db: &TestDatabase) -> Vec<String> {
    sqlx::query_scalar("select payload from mail_outbox")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reset_mail_is_stored_sealed_and_opens_to_its_token() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    let ada = email("Ada@example.com");

    outbox.send(&ada, reset(RESET_TOKEN)).await.unwrap();

    let stored = payloads(&db).await;
    assert_eq!(stored.len(), 1);
    let body = RESET_TOKEN.trim_start_matches("bwpr_");
    assert!(
        !stored[0].contains(body) && !stored[0].contains("bwpr_"),
        "the token is in the table in the clear: {}",
        stored[0]
    );
    let mail = outbox
        .latest_for("ada@EXAMPLE.com", "password_reset")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mail.recipient, ada);
    assert_eq!(mail.template, "password_reset");
    assert_eq!(mail.token.unwrap().expose_secret(), RESET_TOKEN);
}

#[tokio::test]
async fn no_column_of_the_outbox_holds_the_token_text() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    let token = "bwev_dmVyaWZ5LW1lLXBsZWFzZS10aGlzLWlzLWEtdGVzdC10b2tlbg";

    outbox
        .send(
            &email("grace@example.com"),
            Mail::VerifyEmail {
                token: SecretString::from(token),
            },
        )
        .await
        .unwrap();

    let whole_row: String = sqlx::query_scalar("select mail_outbox::text from mail_outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!whole_row.contains(token), "{whole_row}");
    assert!(!whole_row.contains(&token[5..]), "{whole_row}");
}

#[tokio::test]
async fn mails_without_a_secret_carry_no_token() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    let ada = email("ada@example.com");

    outbox.send(&ada, Mail::AccountExists).await.unwrap();
    outbox.send(&ada, Mail::PasswordChanged).await.unwrap();

    for template in ["account_exists", "password_changed"] {
        let mail = outbox.latest_for(ada.as_str(), template).await.unwrap();
        assert!(mail.unwrap().token.is_none(), "{template}");
    }
}

#[tokio::test]
async fn sent_within_counts_one_template_to_one_address_whatever_its_case() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    outbox
        .send(&email("Ada@example.com"), reset(RESET_TOKEN))
        .await
        .unwrap();
    outbox
        .send(&email("ada@example.com"), reset(RESET_TOKEN))
        .await
        .unwrap();
    outbox
        .send(&email("ada@example.com"), Mail::AccountExists)
        .await
        .unwrap();
    outbox
        .send(&email("grace@example.com"), reset(RESET_TOKEN))
        .await
        .unwrap();

    let count = outbox
        .sent_within(&email("ADA@example.com"), "password_reset", HOUR)
        .await
        .unwrap();

    assert_eq!(count, 2);
    assert_eq!(
        outbox
            .sent_within(&email("nobody@example.com"), "password_reset", HOUR)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn sent_within_forgets_mail_older_than_the_window() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    let ada = email("ada@example.com");
    outbox.send(&ada, reset(RESET_TOKEN)).await.unwrap();
    sqlx::query("update mail_outbox set created_at = now() - interval '2 hours'")
        .execute(&db.pool)
        .await
        .unwrap();
    outbox.send(&ada, reset(RESET_TOKEN)).await.unwrap();

    assert_eq!(
        outbox
            .sent_within(&ada, "password_reset", HOUR)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        outbox
            .sent_within(&ada, "password_reset", 3 * HOUR)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn pending_mail_comes_oldest_first_and_leaves_the_queue_once_sent() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    outbox
        .send(&email("first@example.com"), reset(RESET_TOKEN))
        .await
        .unwrap();
    sqlx::query("update mail_outbox set created_at = now() - interval '1 minute'")
        .execute(&db.pool)
        .await
        .unwrap();
    outbox
        .send(&email("second@example.com"), Mail::AccountExists)
        .await
        .unwrap();

    let pending = outbox.pending(10).await.unwrap();
    let recipients: Vec<&str> = pending.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(recipients, ["first@example.com", "second@example.com"]);
    assert_eq!(
        pending[0].token.as_ref().unwrap().expose_secret(),
        RESET_TOKEN
    );
    assert_eq!(outbox.pending(1).await.unwrap().len(), 1, "limit holds");

    assert!(outbox.mark_sent(pending[0].id).await.unwrap());
    assert!(
        !outbox.mark_sent(pending[0].id).await.unwrap(),
        "sent only once"
    );

    let left = outbox.pending(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].recipient.as_str(), "second@example.com");
    // A sent mail still counts towards the per-address cap.
    assert_eq!(
        outbox
            .sent_within(&email("first@example.com"), "password_reset", HOUR)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_mail_that_keeps_failing_leaves_the_queue_after_the_last_attempt() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    outbox
        .send(&email("ada@example.com"), Mail::PasswordChanged)
        .await
        .unwrap();
    let id = outbox.pending(10).await.unwrap()[0].id;
    let huge_error = "e".repeat(10 * MAX_ERROR_CHARS);

    for _ in 0..MAX_ATTEMPTS {
        assert_eq!(outbox.pending(10).await.unwrap().len(), 1);
        assert!(outbox.mark_failed(id, &huge_error).await.unwrap());
    }

    assert!(outbox.pending(10).await.unwrap().is_empty());
    let (attempts, error_chars): (i32, i32) =
        sqlx::query_as("select attempts, char_length(last_error) from mail_outbox where id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, MAX_ATTEMPTS);
    assert_eq!(
        usize::try_from(error_chars).unwrap(),
        MAX_ERROR_CHARS,
        "the error is cut, not refused"
    );
    assert!(!outbox.mark_failed(Uuid::new_v4(), "x").await.unwrap());
}

#[tokio::test]
async fn a_payload_moved_to_another_recipients_row_does_not_open() {
    // Someone who can write to the table copies the victim's sealed reset link into a mail to
    // themselves: the seal is bound to the recipient, so nothing is delivered.
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    outbox
        .send(&email("victim@example.com"), reset(RESET_TOKEN))
        .await
        .unwrap();
    outbox
        .send(&email("attacker@example.com"), reset("bwpr_attackers-own"))
        .await
        .unwrap();
    sqlx::query(
        "update mail_outbox set payload = (select payload from mail_outbox where recipient = 'victim@example.com') where recipient = 'attacker@example.com'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    assert!(
        outbox
            .latest_for("attacker@example.com", "password_reset")
            .await
            .is_err()
    );
    let pending = outbox.pending(10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].recipient.as_str(), "victim@example.com");
    let attempts: i32 = sqlx::query_scalar(
        "select attempts from mail_outbox where recipient = 'attacker@example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1, "an unopenable mail counts as a failed attempt");
}

#[tokio::test]
async fn a_queued_mail_never_prints_its_token() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);
    outbox
        .send(&email("ada@example.com"), reset(RESET_TOKEN))
        .await
        .unwrap();

    let mail = outbox
        .latest_for("ada@example.com", "password_reset")
        .await
        .unwrap()
        .unwrap();

    let printed = format!("{mail:?} {outbox:?}");
    assert!(!printed.contains(RESET_TOKEN), "{printed}");
    assert!(!printed.contains("bwpr_"), "{printed}");
    assert!(printed.contains("[REDACTED]"), "{printed}");
}

#[tokio::test]
async fn no_mail_is_none() {
    let db = TestDatabase::migrated().await;
    let outbox = outbox(&db);

    assert!(
        outbox
            .latest_for("ada@example.com", "verify_email")
            .await
            .unwrap()
            .is_none()
    );
    assert!(outbox.pending(10).await.unwrap().is_empty());
}
