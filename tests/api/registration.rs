//! `POST /api/v1/auth/register`: the password policy, mass assignment, and a taken email that
//! answers like a new one.

use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, ProblemBody, TestApp, assert_problem};

fn codes(problem: &ProblemBody, field: &str) -> Vec<String> {
    problem
        .errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.code.clone())
        .collect()
}

#[tokio::test]
async fn registration_returns_the_user_without_secrets_and_mails_a_verification_link() {
    let app = TestApp::spawn().await;

    let response = app.register("Ada@Example.COM", PASSWORD, "Ada").await;

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(
        user["email"], "Ada@example.com",
        "the domain is lower-cased"
    );
    assert_eq!(user["display_name"], "Ada");
    assert_eq!(user["role"], "user");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["mfa_enabled"], false);
    let text = body.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains("argon2"));
    let token = app.mailed_token("ada@example.com", "verify_email").await;
    assert!(token.starts_with("bwev_"));
}

#[tokio::test]
async fn every_failed_password_rule_is_listed() {
    let app = TestApp::spawn().await;

    let response = app.register("ada@example.com", "ada", "Ada").await;

    let problem = assert_problem(response, 400).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:validation-error");
    let codes = codes(&problem, "password");
    for expected in [
        "too_short",
        "missing_uppercase",
        "missing_digit",
        "missing_symbol",
        "contains_email",
        "too_weak",
    ] {
        assert!(
            codes.contains(&expected.to_owned()),
            "{expected} missing from {codes:?}"
        );
    }
}

#[tokio::test]
async fn a_common_password_and_one_containing_the_display_name_are_refused() {
    let app = TestApp::spawn().await;

    let common = assert_problem(
        app.register("a@example.com", "Password123!", "Ann").await,
        400,
    )
    .await;
    let named = assert_problem(
        app.register("b@example.com", "Zebediah-Horse-9-Battery!", "Zebediah")
            .await,
        400,
    )
    .await;

    assert!(
        codes(&common, "password")
            .iter()
            .any(|c| c == "common_password" || c == "too_weak")
    );
    assert!(codes(&named, "password").contains(&"contains_display_name".to_owned()));
}

#[tokio::test]
async fn invalid_email_and_display_name_are_listed_together_with_password_rules() {
    let app = TestApp::spawn().await;

    let problem = assert_problem(app.register("not-an-email", "short", "").await, 400).await;

    let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"email"), "{fields:?}");
    assert!(fields.contains(&"display_name"), "{fields:?}");
    assert!(fields.contains(&"password"), "{fields:?}");
}

#[tokio::test]
async fn a_huge_password_is_refused_fast_without_hashing() {
    let app = TestApp::spawn().await;

    // Over the body limit: refused while reading.
    let mib = "A1!a".repeat(256 * 1024);
    let started = Instant::now();
    let too_big = app.register("a@example.com", &mib, "Ann").await;
    assert_eq!(too_big.status(), 413);
    // Under the body limit but over the policy maximum: refused before any hash.
    let long = "A1!a".repeat(1000);
    let too_long = assert_problem(app.register("a@example.com", &long, "Ann").await, 400).await;
    assert_eq!(codes(&too_long, "password"), vec!["too_long"]);
    // Nothing was created.
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
    // Not a timing assertion of the service: a generous bound that only a hash of a megabyte (or a
    // hang) would break.
    assert!(started.elapsed().as_secs() < 10);
}

#[tokio::test]
async fn mass_assignment_fields_are_refused() {
    let app = TestApp::spawn().await;

    for (field, value) in [
        ("role", json!("admin")),
        ("email_verified", json!(true)),
        ("id", json!("7d3c1a2b-4e5f-4a6b-8c9d-0e1f2a3b4c5d")),
    ] {
        let mut body =
            json!({"email": "a@example.com", "password": PASSWORD, "display_name": "Ann"});
        body[field] = value;
        let response = app.post_json("/api/v1/auth/register", &body).await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem.errors[0].field, field);
        assert_eq!(problem.errors[0].code, "unknown_field");
    }
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "no request created an account");
}

#[tokio::test]
async fn a_taken_email_answers_like_a_new_one_and_tells_only_the_owner() {
    let app = TestApp::spawn().await;
    let first = app.register("ada@example.com", PASSWORD, "Ada").await;
    let first: Value = first.json().await.unwrap();

    let second = app
        .register(
            "ADA@example.com",
            "Another-Horse-Battery-7-Staple",
            "Mallory",
        )
        .await;

    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v["user"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&first), keys(&second), "the same shape");
    assert_ne!(first["user"]["id"], second["user"]["id"]);
    assert_eq!(app.mail_count("ada@example.com", "account_exists").await, 1);
    // The original account is untouched: its password still works, the stranger's does not.
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("ada@example.com", "Another-Horse-Battery-7-Staple")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn registration_is_audited_without_secrets() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com", PASSWORD, "Ada").await;
    app.register("ada@example.com", PASSWORD, "Ada").await;

    let events = app.audit_events("account.registered").await;

    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(events[1]["outcome"], "failure");
    assert_eq!(events[1]["detail"]["reason"], "email_taken");
    for event in &events {
        assert!(!event.to_string().contains(PASSWORD));
        assert!(event["request_id"].is_string());
        assert!(event["ip"].is_string());
    }
}
