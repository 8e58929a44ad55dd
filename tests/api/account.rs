//! `/api/v1/users/me`, password change, password reset, email verification and deletion.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

const NEW_PASSWORD: &str = "Another-Horse-Battery-7-Staple";

#[tokio::test]
async fn me_shows_the_caller_and_is_not_cached() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    let response = app.get_me(&account.access_token).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["id"], account.user_id.as_str());
    assert!(me.get("password_hash").is_none());
}

#[tokio::test]
async fn the_display_name_can_change_but_role_email_and_id_cannot() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    let renamed = app
        .patch_me(&account.access_token, &json!({"display_name": "Ada L."}))
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(
        renamed.json::<Value>().await.unwrap()["display_name"],
        "Ada L."
    );

    for (field, value) in [
        ("role", json!("admin")),
        ("email", json!("mallory@example.com")),
        ("id", json!(uuid::Uuid::new_v4())),
    ] {
        let response = app
            .patch_me(
                &account.access_token,
                &json!({"display_name": "X", field: value}),
            )
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem.errors[0].code, "unknown_field", "{field}");
    }
    let me: Value = app
        .get_me(&account.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["display_name"], "Ada L.");
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let here = app.signed_up("ada@example.com").await;
    let elsewhere = app.signed_in("ada@example.com", PASSWORD).await;

    let wrong = app
        .change_password(
            &here.access_token,
            "Wrong-Horse-Battery-9-Staple",
            NEW_PASSWORD,
        )
        .await;
    let problem = assert_problem(wrong, 400).await;
    assert_eq!(problem.errors[0].field, "current_password");
    let weak = app
        .change_password(&here.access_token, PASSWORD, "short")
        .await;
    let problem = assert_problem(weak, 400).await;
    assert!(problem.errors.iter().all(|e| e.field == "new_password"));

    let changed = app
        .change_password(&here.access_token, PASSWORD, NEW_PASSWORD)
        .await;

    assert_eq!(changed.status(), 204);
    assert_eq!(
        app.get_me(&here.access_token).await.status(),
        200,
        "this session stays"
    );
    assert_eq!(
        app.get_me(&elsewhere.access_token).await.status(),
        401,
        "others end"
    );
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD).await.status(),
        200
    );
    assert_eq!(
        app.mail_count("ada@example.com", "password_changed").await,
        1
    );
    assert_eq!(app.audit_events("account.password_changed").await.len(), 1);
    assert_eq!(
        app.audit_events("account.reauthentication_failed")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn forgot_password_answers_202_whatever_the_email() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    let known = app.forgot_password("ada@example.com").await;
    let unknown = app.forgot_password("nobody@example.com").await;
    let garbage = app.forgot_password("not an email").await;

    for response in [known, unknown, garbage] {
        assert_eq!(response.status(), 202);
        assert_eq!(response.text().await.unwrap(), "");
    }
    let token = app.mailed_token("ada@example.com", "password_reset").await;
    assert!(token.starts_with("bwpr_"));
    assert_eq!(
        app.mail_count("nobody@example.com", "password_reset").await,
        0
    );
}

#[tokio::test]
async fn a_reset_token_works_once_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    app.forgot_password("ada@example.com").await;
    let token = app.mailed_token("ada@example.com", "password_reset").await;

    // A new password that breaks the policy does not spend the token.
    let weak = app.reset_password(&token, "short").await;
    assert_eq!(weak.status(), 400);
    let reset = app.reset_password(&token, NEW_PASSWORD).await;
    let again = app
        .reset_password(&token, "Third-Horse-Battery-5-Staple")
        .await;

    assert_eq!(reset.status(), 204);
    let problem = assert_problem(again, 400).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:invalid-token");
    assert_eq!(app.get_me(&account.access_token).await.status(), 401);
    assert_eq!(app.refresh(&account.refresh_token).await.status(), 401);
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD).await.status(),
        200
    );
    assert_eq!(app.audit_events("account.password_reset").await.len(), 1);
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    app.forgot_password("ada@example.com").await;
    let token = app.mailed_token("ada@example.com", "password_reset").await;
    sqlx::query(
        "update one_time_tokens set created_at = now() - interval '1 hour', \
         expires_at = now() - interval '1 second'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let response = app.reset_password(&token, NEW_PASSWORD).await;

    assert_problem(response, 400).await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn reset_and_verification_tokens_do_not_cross() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    let verify = app.mailed_token("ada@example.com", "verify_email").await;
    app.forgot_password("ada@example.com").await;
    let reset = app.mailed_token("ada@example.com", "password_reset").await;

    assert_eq!(
        app.reset_password(&verify, NEW_PASSWORD).await.status(),
        400
    );
    assert_eq!(app.verify_email(&reset).await.status(), 400);
}

#[tokio::test]
async fn reset_mails_are_capped_per_address() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    for _ in 0..6 {
        assert_eq!(app.forgot_password("ada@example.com").await.status(), 202);
    }

    // The mails are queued after the answers; give them a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.mail_count("ada@example.com", "password_reset").await, 3);
}

#[tokio::test]
async fn the_email_is_verified_once_with_the_mailed_token() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let token = app.mailed_token("ada@example.com", "verify_email").await;

    let first = app.verify_email(&token).await;
    let second = app.verify_email(&token).await;

    assert_eq!(first.status(), 204);
    assert_problem(second, 400).await;
    let me: Value = app
        .get_me(&account.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);
    assert_eq!(app.audit_events("account.email_verified").await.len(), 1);
}

#[tokio::test]
async fn the_outbox_never_holds_a_token_in_the_clear() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    app.forgot_password("ada@example.com").await;
    let verify = app.mailed_token("ada@example.com", "verify_email").await;
    let reset = app.mailed_token("ada@example.com", "password_reset").await;

    let dump: Vec<String> = sqlx::query_scalar("select to_jsonb(m)::text from mail_outbox m")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let tokens: Vec<String> = sqlx::query_scalar("select to_jsonb(t)::text from one_time_tokens t")
        .fetch_all(&app.pool)
        .await
        .unwrap();

    for row in dump.iter().chain(&tokens) {
        assert!(!row.contains(&verify) && !row.contains(&reset), "{row}");
        assert!(!row.contains(&verify[5..]) && !row.contains(&reset[5..]));
    }
}

#[tokio::test]
async fn deleting_the_account_needs_the_password_and_erases_it() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    let wrong = app
        .delete_me(&account.access_token, "Wrong-Horse-Battery-9-Staple")
        .await;
    assert_eq!(assert_problem(wrong, 400).await.errors[0].field, "password");
    let deleted = app.delete_me(&account.access_token, PASSWORD).await;

    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get_me(&account.access_token).await.status(), 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 401);
    let row: (String, String, Option<String>) =
        sqlx::query_as("select email, display_name, password_hash from users where id = $1::uuid")
            .bind(&account.user_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!row.0.contains("ada"), "email erased: {}", row.0);
    assert_eq!(row.1, "Deleted user");
    assert!(row.2.is_none());
    // The address is free again.
    assert_eq!(
        app.register("ada@example.com", PASSWORD, "Ada")
            .await
            .status(),
        201
    );
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    assert_eq!(app.audit_events("account.deleted").await.len(), 1);
}
