//! Key rotation of data encrypted at rest (`bulwark rotate-data-key` runs
//! `bulwark_persistence::rotation::reseal_all`): values sealed under the old key still open while
//! both keys are in the ring; after the rotation every value opens with the new key alone; a second
//! run has nothing to do; and a ciphertext moved to another row does not open there.

use bulwark_domain::mfa_service::active_context;
use bulwark_domain::sealing::Sealer;
use bulwark_domain::webhook::secret_context;
use bulwark_persistence::outbox::PgOutbox;
use bulwark_persistence::rotation::{Resealed, reseal_all};
use bulwark_security::keys::{DataKeyring, generate_keys};
use bulwark_security::sealing::KeyringSealer;
use bulwark_security::webhook_transport::{StaticHosts, TestNetwork};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem};
use crate::webhooks::ip;

fn sealer(ring: &str) -> KeyringSealer {
    KeyringSealer::new(&DataKeyring::parse(&SecretString::from(ring.to_owned())).unwrap()).unwrap()
}

async fn sealed_values(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select payload from mail_outbox
         union all select sealed_secret from webhooks
         union all select sealed_secret from mfa_totp where sealed_secret is not null",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rotation_reseals_everything_under_the_new_key_and_old_data_reads_throughout() {
    let old = generate_keys().unwrap().data_encryption_keys;
    let new = generate_keys().unwrap().data_encryption_keys;
    let new_id = new.expose_secret().split(':').next().unwrap().to_owned();
    let hosts = StaticHosts::default();
    hosts.set("hooks.test", vec![ip("93.184.215.14")]);
    let app = {
        let old = old.clone();
        let hosts = hosts.clone();
        TestApp::spawn_configured(move |config| {
            config.keys.data_encryption = DataKeyring::parse(&old).unwrap();
            config.webhooks.test_network = Some(TestNetwork {
                allow_loopback: false,
                hosts,
            });
        })
        .await
    };
    // Data under the old key: a mail (registration's verification), a webhook secret, a TOTP
    // secret.
    let ada = app.signed_up("ada@example.com").await;
    let (totp_secret, _) = app.with_mfa(&ada).await;
    app.webhook(&ada, "https://hooks.test/in", &["document.updated"])
        .await;
    let values = sealed_values(&app).await;
    assert_eq!(values.len(), 3);

    let both_ring = format!("{},{}", new.expose_secret(), old.expose_secret());
    let both = sealer(&both_ring);
    let new_only = sealer(new.expose_secret());
    assert!(values.iter().all(|v| both.needs_reseal(v)));

    // Step 1 of a rotation: the new key first in the ring, the old one after it. The service reads
    // what the old key sealed (a TOTP sign-in needs the sealed secret).
    let app = {
        let ring = both_ring.clone();
        app.restarted(move |config| {
            config.keys.data_encryption = DataKeyring::parse(&SecretString::from(ring)).unwrap();
        })
        .await
    };
    let token = app.mfa_token("ada@example.com").await;
    let signed_in = app
        .mfa_verify(&json!({"mfa_token": token, "code": crate::mfa::code(&totp_secret, 0)}))
        .await;
    assert_eq!(signed_in.status(), 200);

    // Step 2: `bulwark rotate-data-key`.
    let done = reseal_all(&app.pool, &both).await.unwrap();
    assert_eq!(
        done,
        Resealed {
            mail: 1,
            webhooks: 1,
            totp: 1
        }
    );
    for value in sealed_values(&app).await {
        assert!(value.starts_with(&format!("v1.{new_id}.")), "{value}");
    }
    // Resumable and idempotent: nothing left to do.
    assert_eq!(
        reseal_all(&app.pool, &both).await.unwrap(),
        Resealed::default()
    );

    // Everything opens with the new key alone.
    let (user_id, totp): (Uuid, String) =
        sqlx::query_as("select user_id, sealed_secret from mfa_totp")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(new_only.open(&totp, &active_context(user_id)).is_ok());
    let (webhook_id, webhook_secret): (Uuid, String) =
        sqlx::query_as("select id, sealed_secret from webhooks")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        new_only
            .open(&webhook_secret, &secret_context(webhook_id))
            .is_ok()
    );
    let outbox = PgOutbox::new(app.pool.clone(), std::sync::Arc::new(new_only));
    assert!(
        outbox
            .latest_for("ada@example.com", "verify_email")
            .await
            .unwrap()
            .is_some()
    );

    // Step 3: the old key leaves the ring; the service still reads everything.
    let app = {
        let ring = new.expose_secret().to_owned();
        app.restarted(move |config| {
            config.keys.data_encryption = DataKeyring::parse(&SecretString::from(ring)).unwrap();
        })
        .await
    };
    let token = app.mfa_token("ada@example.com").await;
    let signed_in = app
        .mfa_verify(&json!({"mfa_token": token, "code": crate::mfa::code(&totp_secret, 1)}))
        .await;
    assert_eq!(signed_in.status(), 200);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let (ada_secret, _) = app.with_mfa(&ada).await;
    app.with_mfa(&bob).await;

    // Ada's sealed TOTP secret pasted into Bob's row: sealed under Ada's context, it does not open
    // as Bob's — the attacker who can write the table still cannot make Bob's codes Ada's.
    sqlx::query(
        "update mfa_totp set sealed_secret = (select sealed_secret from mfa_totp where user_id = $1::uuid) where user_id = $2::uuid",
    )
    .bind(&ada.user_id)
    .bind(&bob.user_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let token = app.mfa_token("bob@example.com").await;
    let response = app
        .mfa_verify(&json!({"mfa_token": token, "code": crate::mfa::code(&ada_secret, 0)}))
        .await;
    // An integrity failure of our own data: a generic 500 (logged with its cause), never a
    // sign-in.
    let problem = assert_problem(response, 500).await;
    assert!(!problem.detail.contains("mfa_totp"));
    // Ada's own row is untouched and still works.
    let token = app.mfa_token("ada@example.com").await;
    let ok = app
        .mfa_verify(&json!({"mfa_token": token, "code": crate::mfa::code(&ada_secret, 0)}))
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_webhook_secret_moved_to_another_webhook_is_never_used_to_sign() {
    let hosts = StaticHosts::default();
    hosts.set("hooks.test", vec![ip("93.184.215.14")]);
    let app = crate::webhooks::app_with_network(&hosts, false, 3).await;
    let ada = app.signed_up("ada@example.com").await;
    // The first hears of deletions only, so nothing is ever sent towards the (unreachable)
    // public address; the second gets the first's sealed secret.
    let first = app
        .webhook(&ada, "https://hooks.test/one", &["document.deleted"])
        .await;
    let second = app
        .webhook(&ada, "https://hooks.test/two", &["document.updated"])
        .await;
    sqlx::query(
        "update webhooks set sealed_secret = (select sealed_secret from webhooks where id = $1::uuid) where id = $2::uuid",
    )
    .bind(first["id"].as_str().unwrap())
    .bind(second["id"].as_str().unwrap())
    .execute(&app.pool)
    .await
    .unwrap();

    let document = app.document(&ada, "private").await;
    app.touch(&ada, &document).await;
    let delivery = app
        .delivery(&ada, second["id"].as_str().unwrap(), true)
        .await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert_eq!(
        delivery["last_error"],
        "the signing secret could not be opened"
    );
}
