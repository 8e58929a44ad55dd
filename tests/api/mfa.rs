//! `/api/v1/auth/mfa/*`: TOTP setup, enable and disable; sign-in with a second factor; recovery
//! codes. The attacks: a wrong code at enable, the challenge token used as an access token, five
//! wrong codes, a replayed code, a spent recovery code, an old secret after re-enrolment, a
//! password reset as a way around MFA, and secrets in the database in the clear.

use std::time::{SystemTime, UNIX_EPOCH};

use bulwark_security::totp::code_at;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Account, PASSWORD, TestApp, assert_problem};

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The code of the step `offset` steps from now (−1, 0, +1 are all accepted once each).
pub(crate) fn code(secret: &str, offset: i64) -> String {
    code_at(secret, now() + offset * 30).unwrap()
}

impl TestApp {
    pub async fn totp_setup(&self, token: &str, password: Option<&str>) -> Response {
        let body = match password {
            Some(p) => json!({"password": p}),
            None => json!({}),
        };
        self.authed(
            Method::POST,
            "/api/v1/auth/mfa/totp/setup",
            token,
            Some(&body),
        )
        .await
    }

    pub async fn totp_enable(&self, token: &str, code: &str) -> Response {
        self.authed(
            Method::POST,
            "/api/v1/auth/mfa/totp/enable",
            token,
            Some(&json!({"code": code})),
        )
        .await
    }

    pub async fn totp_disable(&self, token: &str, password: &str, code: &str) -> Response {
        self.authed(
            Method::POST,
            "/api/v1/auth/mfa/totp/disable",
            token,
            Some(&json!({"password": password, "code": code})),
        )
        .await
    }

    pub async fn mfa_verify(&self, body: &Value) -> Response {
        self.post_json("/api/v1/auth/mfa/verify", body).await
    }

    /// Turns MFA on for the account; returns the base32 secret and the recovery codes. The code
    /// used to enable is the one of the *previous* step, so that the current and next steps are
    /// still unused for the test's sign-ins.
    pub(crate) async fn with_mfa(&self, account: &Account) -> (String, Vec<String>) {
        let setup: Value = self
            .totp_setup(&account.access_token, None)
            .await
            .json()
            .await
            .unwrap();
        let secret = setup["secret"].as_str().unwrap().to_owned();
        let enabled = self
            .totp_enable(&account.access_token, &code(&secret, -1))
            .await;
        assert_eq!(enabled.status(), 200, "{}", enabled.text().await.unwrap());
        let body: Value = enabled.json().await.unwrap();
        let codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }

    /// The `mfa_token` a correct password gets for an MFA account.
    pub(crate) async fn mfa_token(&self, email: &str) -> String {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["mfa_required"], true, "{body}");
        assert!(body.get("access_token").is_none(), "{body}");
        body["mfa_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn enabling_needs_a_valid_code_and_stores_only_ciphertext_and_digests() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;

    let setup = app.totp_setup(&ada.access_token, None).await;
    assert_eq!(setup.status(), 200);
    assert_eq!(setup.headers()["cache-control"], "no-store");
    let setup: Value = setup.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32);
    let url = setup["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Bulwark:ada%40example.com?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={secret}")));
    let svg = setup["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && !svg.contains("<script"));

    // Not active until confirmed: sign-in is unchanged, `me` says off.
    let me: Value = app.get_me(&ada.access_token).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], false);
    app.signed_in("ada@example.com", PASSWORD).await;

    let wrong = assert_problem(app.totp_enable(&ada.access_token, "000000").await, 400).await;
    assert_eq!(wrong.errors[0].field, "code");
    let enabled = app.totp_enable(&ada.access_token, &code(secret, 0)).await;
    assert_eq!(enabled.status(), 200);
    let codes: Value = enabled.json().await.unwrap();
    let codes = codes["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let me: Value = app.get_me(&ada.access_token).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], true);

    // At rest: the secret sealed, the recovery codes as 32-byte digests.
    let row: String = sqlx::query_scalar("select row_to_json(m)::text from mfa_totp m")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        !row.contains(secret),
        "the TOTP secret is stored in the clear"
    );
    assert!(row.contains("\"sealed_secret\":\"v1."), "{row}");
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select digest from mfa_recovery_codes")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 10);
    let first = codes[0].as_str().unwrap().replace('-', "");
    assert!(
        stored
            .iter()
            .all(|d| d.len() == 32 && d != first.as_bytes())
    );
    assert_eq!(app.audit_events("mfa.enabled").await.len(), 1);
    assert_eq!(app.audit_events("mfa.code_refused").await.len(), 1);
}

#[tokio::test]
async fn sign_in_needs_the_second_factor_and_the_challenge_token_is_useless_elsewhere() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let (secret, _) = app.with_mfa(&ada).await;

    let mfa_token = app.mfa_token("ada@example.com").await;
    assert!(mfa_token.starts_with("bwmf_"));
    // Not an access token, not a refresh token.
    assert_problem(app.get_me(&mfa_token).await, 401).await;
    assert_problem(app.refresh(&mfa_token).await, 401).await;

    let wrong = app
        .mfa_verify(&json!({"mfa_token": mfa_token, "code": "000000"}))
        .await;
    assert_problem(wrong, 401).await;
    let neither = app.mfa_verify(&json!({"mfa_token": mfa_token})).await;
    assert_problem(neither, 400).await;

    let ok = app
        .mfa_verify(&json!({"mfa_token": mfa_token, "code": code(&secret, 0)}))
        .await;
    assert_eq!(ok.status(), 200);
    let pair: Value = ok.json().await.unwrap();
    let me = app.get_me(pair["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), 200);
    // The challenge is spent.
    let again = app
        .mfa_verify(&json!({"mfa_token": mfa_token, "code": code(&secret, 1)}))
        .await;
    assert_problem(again, 401).await;
    let logins = app.audit_events("auth.login").await;
    assert_eq!(logins.last().unwrap()["detail"]["second_factor"], "totp");
}

#[tokio::test]
async fn a_code_is_accepted_once() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let (secret, _) = app.with_mfa(&ada).await;
    let current = code(&secret, 0);

    let first = app.mfa_token("ada@example.com").await;
    let ok = app
        .mfa_verify(&json!({"mfa_token": first, "code": current}))
        .await;
    assert_eq!(ok.status(), 200);

    let second = app.mfa_token("ada@example.com").await;
    let replay = app
        .mfa_verify(&json!({"mfa_token": second, "code": current}))
        .await;
    assert_problem(replay, 401).await;
    // The code of the step before the one used is refused too: steps only move forward.
    let older = app
        .mfa_verify(&json!({"mfa_token": second, "code": code(&secret, -1)}))
        .await;
    assert_problem(older, 401).await;
}

#[tokio::test]
async fn the_challenge_dies_after_five_wrong_codes() {
    let app =
        TestApp::spawn_with(&[("LOGIN_FREE_FAILURES", "20"), ("LOGIN_LOCK_AFTER", "30")]).await;
    let ada = app.signed_up("ada@example.com").await;
    let (secret, _) = app.with_mfa(&ada).await;
    let mfa_token = app.mfa_token("ada@example.com").await;

    for wrong in ["000000", "111111", "222222", "333333", "444444"] {
        let response = app
            .mfa_verify(&json!({"mfa_token": mfa_token, "code": wrong}))
            .await;
        assert_problem(response, 401).await;
    }
    let right = app
        .mfa_verify(&json!({"mfa_token": mfa_token, "code": code(&secret, 0)}))
        .await;
    assert_problem(right, 401).await;
    assert_eq!(app.audit_events("auth.mfa_failed").await.len(), 6);
}

#[tokio::test]
async fn wrong_codes_count_against_the_accounts_sign_in_throttle() {
    let app = TestApp::spawn_with(&[("LOGIN_FREE_FAILURES", "2"), ("LOGIN_LOCK_AFTER", "4")]).await;
    let ada = app.signed_up("ada@example.com").await;
    let (secret, _) = app.with_mfa(&ada).await;

    // New challenges do not reset the count: a stolen password buys a bounded number of guesses.
    let mut throttled = false;
    for _ in 0..6 {
        let mfa_token = match app.login("ada@example.com", PASSWORD).await {
            r if r.status() == 429 => {
                throttled = true;
                break;
            }
            r => r.json::<Value>().await.unwrap()["mfa_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        let response = app
            .mfa_verify(&json!({"mfa_token": mfa_token, "code": "999999"}))
            .await;
        if response.status() == 429 {
            throttled = true;
            break;
        }
        assert_problem(response, 401).await;
    }
    assert!(throttled, "wrong codes never slowed the account down");
    let _ = secret;
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let (_, codes) = app.with_mfa(&ada).await;

    let first = app.mfa_token("ada@example.com").await;
    // People type them in any case, with or without dashes.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let ok = app
        .mfa_verify(&json!({"mfa_token": first, "recovery_code": typed}))
        .await;
    assert_eq!(ok.status(), 200);

    let second = app.mfa_token("ada@example.com").await;
    let spent = app
        .mfa_verify(&json!({"mfa_token": second, "recovery_code": codes[3]}))
        .await;
    assert_problem(spent, 401).await;
    let other = app
        .mfa_verify(&json!({"mfa_token": second, "recovery_code": codes[4]}))
        .await;
    assert_eq!(other.status(), 200);
    let logins = app.audit_events("auth.login").await;
    assert_eq!(
        logins.last().unwrap()["detail"]["second_factor"],
        "recovery_code"
    );
}

#[tokio::test]
async fn re_enrolment_replaces_the_old_secret_only_once_enabled() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let (old, old_codes) = app.with_mfa(&ada).await;

    // A new setup in progress changes nothing yet.
    let setup: Value = app
        .totp_setup(&ada.access_token, None)
        .await
        .json()
        .await
        .unwrap();
    let new = setup["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let token = app.mfa_token("ada@example.com").await;
    let with_old = app
        .mfa_verify(&json!({"mfa_token": token, "code": code(&old, 0)}))
        .await;
    assert_eq!(with_old.status(), 200);

    // Enabled: the old secret and the old recovery codes are dead.
    let enabled = app.totp_enable(&ada.access_token, &code(&new, 0)).await;
    assert_eq!(enabled.status(), 200);
    let token = app.mfa_token("ada@example.com").await;
    let stale = app
        .mfa_verify(&json!({"mfa_token": token, "code": code(&old, 1)}))
        .await;
    assert_problem(stale, 401).await;
    let stale_recovery = app
        .mfa_verify(&json!({"mfa_token": token, "recovery_code": old_codes[0]}))
        .await;
    assert_problem(stale_recovery, 401).await;
    let fresh = app
        .mfa_verify(&json!({"mfa_token": token, "code": code(&new, 1)}))
        .await;
    assert_eq!(fresh.status(), 200);
}

#[tokio::test]
async fn disabling_needs_the_password_and_a_code() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let (secret, _) = app.with_mfa(&ada).await;

    let wrong_password = app
        .totp_disable(&ada.access_token, "Wrong-Password-123!", &code(&secret, 0))
        .await;
    assert_problem(wrong_password, 400).await;
    let wrong_code = app
        .totp_disable(&ada.access_token, PASSWORD, "000000")
        .await;
    let problem = assert_problem(wrong_code, 400).await;
    assert_eq!(problem.errors[0].field, "code");
    let me: Value = app.get_me(&ada.access_token).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], true);

    let disabled = app
        .totp_disable(&ada.access_token, PASSWORD, &code(&secret, 0))
        .await;
    assert_eq!(disabled.status(), 204);
    // Plain sign-in again; nothing left at rest.
    app.signed_in("ada@example.com", PASSWORD).await;
    let left: i64 = sqlx::query_scalar(
        "select (select count(*) from mfa_totp) + (select count(*) from mfa_recovery_codes)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    assert_problem(
        app.totp_disable(&ada.access_token, PASSWORD, &code(&secret, 1))
            .await,
        409,
    )
    .await;
    assert_eq!(app.audit_events("mfa.disabled").await.len(), 1);
}

#[tokio::test]
async fn setup_needs_a_recent_sign_in_or_the_password() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let pair: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let stale = pair["access_token"].as_str().unwrap();
    sqlx::query(
        "update sessions set created_at = created_at - interval '11 minutes' where user_id = $1::uuid",
    )
    .bind(&ada.user_id)
    .execute(&app.pool)
    .await
    .unwrap();

    let problem = assert_problem(app.totp_setup(stale, None).await, 403).await;
    assert_eq!(
        problem.type_uri,
        "urn:bulwark:problem:reauthentication-required"
    );
    assert_eq!(app.totp_setup(stale, Some(PASSWORD)).await.status(), 200);
    assert_problem(app.totp_enable(&ada.access_token, "123456").await, 400).await;
}

#[tokio::test]
async fn a_password_reset_never_bypasses_mfa() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let (secret, _) = app.with_mfa(&ada).await;

    assert_eq!(app.forgot_password("ada@example.com").await.status(), 202);
    let token = app.mailed_token("ada@example.com", "password_reset").await;
    let new_password = "Another-Long-Passphrase-42";
    assert_eq!(app.reset_password(&token, new_password).await.status(), 204);
    let response = app.login("ada@example.com", new_password).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);
    assert!(body.get("access_token").is_none());
    let ok = app
        .mfa_verify(&json!({"mfa_token": body["mfa_token"], "code": code(&secret, 0)}))
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_api_key_cannot_touch_mfa() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let key = app
        .api_key(
            &ada,
            &[
                "documents:read",
                "documents:write",
                "webhooks:read",
                "webhooks:write",
            ],
        )
        .await;
    let key = key["key"].as_str().unwrap();
    for path in [
        "/api/v1/auth/mfa/totp/setup",
        "/api/v1/auth/mfa/totp/enable",
        "/api/v1/auth/mfa/totp/disable",
    ] {
        let response = app
            .authed(
                Method::POST,
                path,
                key,
                Some(&json!({"password": PASSWORD, "code": "123456"})),
            )
            .await;
        let problem = assert_problem(response, 403).await;
        assert_eq!(
            problem.type_uri, "urn:bulwark:problem:session-required",
            "{path}"
        );
    }
}

#[tokio::test]
async fn with_the_policy_on_an_administrator_without_mfa_acts_as_a_user() {
    let app = TestApp::spawn_with(&[("REQUIRE_MFA_FOR_ADMINS", "true")]).await;
    let alice = app.signed_up("alice@example.com").await;
    let document = app.document(&alice, "private").await;
    let root = app.admin("root@example.com").await;

    let problem = assert_problem(
        app.authed(Method::GET, "/api/v1/admin/users", &root.access_token, None)
            .await,
        403,
    )
    .await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:mfa-required");
    // Nor does the role reach objects: Alice's private document is as invisible as to anyone.
    assert_problem(
        app.get_document(&root.access_token, document["id"].as_str().unwrap())
            .await,
        404,
    )
    .await;

    // MFA on: the same session acts as an administrator from the next requests (every instance
    // drops the cached principal on the database's notification).
    app.with_mfa(&root).await;
    let mut status = 0;
    for _ in 0..40 {
        status = app
            .authed(Method::GET, "/api/v1/admin/users", &root.access_token, None)
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}
