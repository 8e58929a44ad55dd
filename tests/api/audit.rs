//! The audit trail of authentication: every event writes exactly one row, with its origin, and no
//! row anywhere holds a password, a token or a hash.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "Another-Horse-Battery-7-Staple";

#[tokio::test]
async fn a_whole_account_lifecycle_writes_one_row_per_event_and_no_secret() {
    let app = TestApp::spawn().await;
    let mut secrets: Vec<String> = vec![PASSWORD.into(), NEW_PASSWORD.into()];

    // Register, verify, sign in twice, refresh, replay, change the password, reset it, list and
    // revoke a session, log out, log out everywhere, delete.
    let first = app.signed_up("ada@example.com").await;
    let verify = app.mailed_token("ada@example.com", "verify_email").await;
    assert_eq!(app.verify_email(&verify).await.status(), 204);
    app.login("ada@example.com", "Wrong-Horse-Battery-9-Staple")
        .await;
    let refreshed: Value = app
        .refresh(&first.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.refresh(&first.refresh_token).await.status(), 401);
    let second = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(
        app.change_password(&second.access_token, PASSWORD, NEW_PASSWORD)
            .await
            .status(),
        204
    );
    app.forgot_password("ada@example.com").await;
    let reset = app.mailed_token("ada@example.com", "password_reset").await;
    assert_eq!(app.reset_password(&reset, PASSWORD).await.status(), 204);
    let third = app.signed_in("ada@example.com", PASSWORD).await;
    let fourth = app.signed_in("ada@example.com", PASSWORD).await;
    let sessions: Value = app
        .list_sessions(&fourth.access_token)
        .await
        .json()
        .await
        .unwrap();
    let third_id = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.revoke_session(&fourth.access_token, &third_id)
            .await
            .status(),
        204
    );
    let fifth = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(app.logout(&fifth.refresh_token).await.status(), 204);
    assert_eq!(app.logout_all(&fourth.access_token).await.status(), 204);
    let last = app.signed_in("ada@example.com", PASSWORD).await;
    assert_eq!(
        app.delete_me(&last.access_token, PASSWORD).await.status(),
        204
    );
    for account in [&first, &second, &third, &fourth, &fifth, &last] {
        secrets.push(account.access_token.clone());
        secrets.push(account.refresh_token.clone());
    }
    secrets.push(refreshed["access_token"].as_str().unwrap().to_owned());
    secrets.push(refreshed["refresh_token"].as_str().unwrap().to_owned());
    secrets.push(verify);
    secrets.push(reset);

    let rows: Vec<Value> = sqlx::query_scalar("select to_jsonb(a) from audit_events a order by id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        *counts
            .entry(row["event_type"].as_str().unwrap().to_owned())
            .or_default() += 1;
        let text = row.to_string();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in {text}");
        }
        assert!(!text.contains("$argon2"), "a hash in {text}");
        assert!(row["request_id"].is_string(), "{text}");
        assert!(row["ip"].is_string(), "{text}");
    }
    let expected = [
        ("account.registered", 1),
        ("account.email_verified", 1),
        ("auth.login", 6),
        ("auth.login_failed", 1),
        ("auth.refresh", 1),
        ("auth.refresh_reuse", 1),
        // A reused refresh token is a theft: the abuse watch alerts at the first one.
        ("security.alert", 1),
        ("account.password_changed", 1),
        ("account.password_reset_requested", 1),
        ("account.password_reset", 1),
        ("auth.session_revoked", 1),
        ("auth.logout", 1),
        ("auth.logout_all", 1),
        ("account.deleted", 1),
    ];
    for (event, count) in expected {
        assert_eq!(
            counts.get(event).copied().unwrap_or(0),
            count,
            "{event}: {counts:?}"
        );
    }
    assert_eq!(counts.values().sum::<usize>(), rows.len());
    assert_eq!(
        rows.len(),
        expected.iter().map(|(_, n)| n).sum::<usize>(),
        "no other rows: {counts:?}"
    );
}
