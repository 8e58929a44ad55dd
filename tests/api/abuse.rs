//! Abuse detection end to end: the audit trail's warning signs and the 429s are counted over a
//! sliding window, and crossing a threshold writes exactly one `security.alert` audit event per
//! window and rule and key (the windowing itself is unit-tested in `crates/domain/src/abuse.rs`).
//! The attacks: guessing one account's password, replaying a stolen refresh token, walking other
//! users' documents, and hammering a rate limit.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::metrics::TOKEN as METRICS_TOKEN;

/// The `security.alert` rows of one rule.
async fn alerts(app: &TestApp, rule: &str) -> Vec<Value> {
    app.audit_events("security.alert")
        .await
        .into_iter()
        .filter(|row| row["detail"]["rule"] == rule)
        .collect()
}

#[tokio::test]
async fn guessing_one_accounts_password_raises_one_alert_naming_the_account_and_no_secret() {
    let app = TestApp::spawn_with(&[
        ("ALERT_LOGIN_FAILURES_PER_ACCOUNT", "3"),
        ("METRICS_TOKEN", METRICS_TOKEN),
    ])
    .await;
    let ada = app.signed_up("ada@example.com").await;
    for _ in 0..4 {
        let response = app.login("ada@example.com", "Wrong-guess-1!").await;
        assert_eq!(response.status(), 401);
    }

    let raised = alerts(&app, "login_failures_per_account").await;
    assert_eq!(
        raised.len(),
        1,
        "the 3rd failure alerts, the 4th does not: {raised:?}"
    );
    let alert = &raised[0];
    assert_eq!(alert["outcome"], "denied");
    assert_eq!(alert["subject_type"], "user");
    assert_eq!(alert["subject_id"], ada.user_id.as_str());
    assert_eq!(alert["detail"]["count"], 3);
    assert_eq!(alert["detail"]["window_seconds"], 300);
    assert_eq!(alert["detail"]["scope"], "account");
    let text = alert.to_string();
    assert!(!text.contains("ada@example.com") && !text.contains("Wrong-guess"));
    // Below their thresholds, the other rules stayed quiet.
    assert!(alerts(&app, "login_failures_per_ip").await.is_empty());
    assert!(alerts(&app, "login_failures_global").await.is_empty());

    let text = app.scrape_metrics().await;
    assert!(
        text.contains("bulwark_auth_failures_total{kind=\"login\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("bulwark_security_alerts_total{rule=\"login_failures_per_account\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_replayed_refresh_token_raises_an_alert_at_once() {
    let app = TestApp::spawn_with(&[("METRICS_TOKEN", METRICS_TOKEN)]).await;
    let ada = app.signed_up("ada@example.com").await;
    assert_eq!(app.refresh(&ada.refresh_token).await.status(), 200);
    assert_eq!(app.refresh(&ada.refresh_token).await.status(), 401);

    let raised = alerts(&app, "refresh_reuse").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["subject_id"], ada.user_id.as_str());
    assert_eq!(raised[0]["detail"]["scope"], "user");
    assert!(!raised[0].to_string().contains(&ada.refresh_token));
    let text = app.scrape_metrics().await;
    assert!(
        text.contains("bulwark_refresh_token_reuse_total 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn walking_other_users_documents_raises_one_alert_for_the_walker() {
    let app = TestApp::spawn_with(&[
        ("ALERT_ACCESS_DENIALS_PER_USER", "5"),
        ("METRICS_TOKEN", METRICS_TOKEN),
    ])
    .await;
    let mallory = app.signed_up("mallory@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    let created = app
        .authed(
            Method::POST,
            "/api/v1/documents",
            &ada.access_token,
            Some(&serde_json::json!({"title": "Ada's", "body": "private"})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..8 {
        let probe = app
            .authed(
                Method::GET,
                &format!("/api/v1/documents/{id}"),
                &mallory.access_token,
                None,
            )
            .await;
        assert_eq!(probe.status(), 404);
    }
    let raised = alerts(&app, "access_denials_per_user").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["subject_id"], mallory.user_id.as_str());
    let text = app.scrape_metrics().await;
    assert!(text.contains("bulwark_access_denials_total 8\n"), "{text}");
}

/// 20 requests at once from one address; how many were refused.
async fn storm(app: &TestApp) -> usize {
    let mut refused = 0;
    for _ in 0..20 {
        if app.get("/.well-known/jwks.json").await.status() == 429 {
            refused += 1;
        }
    }
    refused
}

#[tokio::test]
async fn a_429_storm_raises_exactly_one_alert_per_window() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_IP_PER_WINDOW", "2"),
        ("ALERT_RATE_LIMITED_PER_IP", "5"),
        ("ALERT_RATE_LIMITED_GLOBAL", "0"),
        ("ALERT_WINDOW_SECS", "3"),
    ])
    .await;
    assert!(storm(&app).await >= 15);
    let raised = alerts(&app, "rate_limited_per_ip").await;
    assert_eq!(raised.len(), 1, "one alert in the first window: {raised:?}");
    assert_eq!(raised[0]["ip"], "127.0.0.1");
    assert_eq!(raised[0]["detail"]["scope"], "address");
    assert!(
        alerts(&app, "rate_limited_global").await.is_empty(),
        "a rule at 0 is off"
    );

    // Still within the window: the storm goes on, no second alert.
    assert!(storm(&app).await >= 15);
    assert_eq!(alerts(&app, "rate_limited_per_ip").await.len(), 1);

    // The next window: one more.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert!(storm(&app).await >= 15);
    assert_eq!(alerts(&app, "rate_limited_per_ip").await.len(), 2);
}
