//! `POST /api/v1/auth/login`: no account enumeration, throttling for real and unknown emails, and
//! locked or deleted accounts refused like any failure.

use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_problem};

/// The body with its `request_id` removed (the only part allowed to differ).
async fn body_without_request_id(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let mut body: Value = response.json().await.unwrap();
    body.as_object_mut().unwrap().remove("request_id");
    (status, body)
}

#[tokio::test]
async fn login_returns_a_token_pair_that_is_not_cached() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    let response = app.login("ADA@example.com", PASSWORD).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pair: Value = response.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 600);
    assert!(pair["refresh_token"].as_str().unwrap().starts_with("bwrt_"));
    let me = app.get_me(pair["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn login_with_wrong_password_is_indistinguishable_from_unknown_email() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    let wrong_password = app
        .login("ada@example.com", "Wrong-Horse-Battery-9-Staple")
        .await;
    let unknown_email = app
        .login("nobody@example.com", "Wrong-Horse-Battery-9-Staple")
        .await;
    let not_an_email = app
        .login("not an email", "Wrong-Horse-Battery-9-Staple")
        .await;

    let a = body_without_request_id(wrong_password).await;
    let b = body_without_request_id(unknown_email).await;
    let c = body_without_request_id(not_an_email).await;
    assert_eq!(a.0, 401);
    assert_eq!(a, b, "byte-identical bar request_id");
    assert_eq!(a, c);
    assert_eq!(a.1["type"], "urn:bulwark:problem:invalid-credentials");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_each_run_exactly_one_password_verification() {
    let events = crate::helpers::hasher_events();
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    let mut counts = Vec::new();
    for (email, id) in [
        (
            "ada@example.com",
            format!("wrong-password-{}", uuid::Uuid::new_v4().simple()),
        ),
        (
            "nobody@example.com",
            format!("unknown-email-{}", uuid::Uuid::new_v4().simple()),
        ),
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-request-id", &id)
            .json(&serde_json::json!({"email": email, "password": "Wrong-Horse-Battery-9-Staple"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let verifications = events
            .text()
            .lines()
            .filter(|line| line.contains("password verification") && line.contains(&id))
            .count();
        counts.push(verifications);
    }

    assert_eq!(counts, vec![1, 1], "one argon2 verification each");
    assert!(!events.text().contains("Wrong-Horse"), "never the password");
}

#[tokio::test]
async fn repeated_failures_throttle_existing_and_unknown_emails_alike() {
    let app = TestApp::spawn_with(&[("LOGIN_FREE_FAILURES", "2"), ("LOGIN_LOCK_AFTER", "4")]).await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    for email in ["ada@example.com", "nobody@example.com"] {
        for _ in 0..2 {
            assert_eq!(
                app.login(email, "Wrong-Horse-Battery-9-Staple")
                    .await
                    .status(),
                401
            );
        }
        // The third failure starts the backoff; the next attempt is refused without a check.
        assert_eq!(
            app.login(email, "Wrong-Horse-Battery-9-Staple")
                .await
                .status(),
            401
        );
        let throttled = app.login(email, PASSWORD).await;
        let retry_after: u64 = throttled.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
        let problem = assert_problem(throttled, 429).await;
        assert_eq!(problem.type_uri, "urn:bulwark:problem:rate-limited");
    }
}

#[tokio::test]
async fn reaching_the_lock_is_audited_as_a_lockout() {
    let app = TestApp::spawn_with(&[("LOGIN_FREE_FAILURES", "2"), ("LOGIN_LOCK_AFTER", "3")]).await;

    for _ in 0..3 {
        app.login("nobody@example.com", "Wrong-Horse-Battery-9-Staple")
            .await;
    }

    let lockouts = app.audit_events("auth.lockout").await;
    assert_eq!(lockouts.len(), 1);
    assert_eq!(lockouts[0]["detail"]["scope"], "account");
    let locked = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(locked.status(), 429);
}

#[tokio::test]
async fn a_successful_login_clears_the_backoff() {
    let app =
        TestApp::spawn_with(&[("LOGIN_FREE_FAILURES", "2"), ("LOGIN_LOCK_AFTER", "10")]).await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    for _ in 0..2 {
        app.login("ada@example.com", "Wrong-Horse-Battery-9-Staple")
            .await;
    }
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    for _ in 0..2 {
        app.login("ada@example.com", "Wrong-Horse-Battery-9-Staple")
            .await;
    }

    // Two more free failures after the success: no backoff yet.
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_locked_account_cannot_sign_in_and_looks_like_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    sqlx::query("update users set locked_at = now() where lower(email) = 'ada@example.com'")
        .execute(&app.pool)
        .await
        .unwrap();

    let locked = body_without_request_id(app.login("ada@example.com", PASSWORD).await).await;
    let unknown = body_without_request_id(app.login("nobody@example.com", PASSWORD).await).await;

    assert_eq!(locked.0, 401);
    assert_eq!(locked, unknown);
    let reasons: Vec<Value> = app
        .audit_events("auth.login_failed")
        .await
        .into_iter()
        .map(|e| e["detail"]["reason"].clone())
        .collect();
    assert_eq!(reasons[0], "account_locked");
}

#[tokio::test]
async fn an_over_long_password_at_login_is_refused_without_hashing() {
    let app = TestApp::spawn().await;

    let problem = assert_problem(app.login("ada@example.com", &"x".repeat(5000)).await, 400).await;

    assert_eq!(problem.errors[0].code, "too_long");
    assert!(app.audit_events("auth.login_failed").await.is_empty());
}

#[tokio::test]
async fn login_events_are_audited_with_origin_and_never_a_secret() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    let ok = app.login("ada@example.com", PASSWORD).await;
    let pair: Value = ok.json().await.unwrap();
    app.login("ada@example.com", "Wrong-Horse-Battery-9-Staple")
        .await;

    let success = app.audit_events("auth.login").await;
    let failure = app.audit_events("auth.login_failed").await;

    assert_eq!(success.len(), 1);
    assert_eq!(failure.len(), 1);
    for event in success.iter().chain(&failure) {
        let text = event.to_string();
        assert!(event["ip"].is_string() && event["request_id"].is_string());
        assert!(!text.contains(PASSWORD) && !text.contains("Wrong-Horse"));
        assert!(!text.contains(pair["access_token"].as_str().unwrap()));
        assert!(!text.contains(pair["refresh_token"].as_str().unwrap()));
    }
    assert!(success[0]["actor_user_id"].is_string());
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_slowed_down_too() {
    // Each email stays below its own throttle; the address does not.
    let app = TestApp::spawn().await;

    for n in 0..21 {
        let response = app
            .login(
                &format!("user{n}@example.com"),
                "Wrong-Horse-Battery-9-Staple",
            )
            .await;
        assert_eq!(response.status(), 401, "attempt {n}");
    }
    let next = app
        .login("fresh@example.com", "Wrong-Horse-Battery-9-Staple")
        .await;

    assert_eq!(next.status(), 429);
    assert!(next.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_login_flood_is_answered_503_with_retry_after_while_other_requests_are_served() {
    let app = TestApp::spawn_with(&[
        ("PASSWORD_HASH_CONCURRENCY", "1"),
        ("PASSWORD_HASH_QUEUE_WAIT_MS", "10"),
        ("HTTP_WORKERS", "2"),
    ])
    .await;

    let emails: Vec<String> = (0..12).map(|n| format!("u{n}@example.com")).collect();
    let logins = emails.iter().map(|email| app.login(email, PASSWORD));
    let (responses, health) =
        tokio::join!(futures_util::future::join_all(logins), app.get_liveness());

    assert_eq!(health.status(), 200, "the executor was not starved");
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "some waited too long: {statuses:?}"
    );
    assert!(statuses.contains(&401), "some were served: {statuses:?}");
    for response in responses.into_iter().filter(|r| r.status() == 503) {
        assert_eq!(response.headers()["retry-after"], "1");
        let problem = assert_problem(response, 503).await;
        assert_eq!(problem.type_uri, "urn:bulwark:problem:service-unavailable");
    }
}
