//! What the request log says — and what it never says.

use actix_web::test as actix_test;
use bulwark_app::startup::{AppState, app};

use crate::helpers::{probe_routes, test_config};

/// Runs one request through the in-process app (with the probe routes) and returns the JSON log.
async fn log_of(request: actix_test::TestRequest) -> (u16, String) {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let mut config = test_config(&[]);
    config.database = db.settings();
    let state = AppState::new(&config, db.pool.clone(), Some(probe_routes())).unwrap();
    let service = actix_test::init_service(app(state)).await;
    let captured = bulwark_testkit::CapturedLogs::default();
    let sink = captured.clone();
    // The production format (what `LOG_FORMAT=json` writes), at every level.
    let subscriber = bulwark_app::telemetry::json_subscriber(
        tracing_subscriber::EnvFilter::new("trace"),
        move || sink.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let status = match actix_test::try_call_service(&service, request.to_request()).await {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    let log = captured.text();
    (status, log)
}

#[actix_web::test]
async fn a_panic_is_logged_with_its_message_under_the_request_id() {
    let request = actix_test::TestRequest::get()
        .uri("/__probe/panic")
        .insert_header(("x-request-id", "panic-1"));

    let (status, log) = log_of(request).await;

    assert_eq!(status, 500);
    let line = log
        .lines()
        .find(|l| l.contains("handler panicked"))
        .unwrap_or_else(|| panic!("no panic line: {log}"));
    assert!(
        line.contains("probe handler panicked on purpose") && line.contains("panic-1"),
        "{line}"
    );
}

#[actix_web::test]
async fn an_internal_error_is_logged_once_with_its_cause_under_the_request_id() {
    let request = actix_test::TestRequest::get()
        .uri("/__probe/internal-error")
        .insert_header(("x-request-id", "err-1"));

    let (status, log) = log_of(request).await;

    assert_eq!(status, 500);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("relation")).collect();
    assert_eq!(lines.len(), 1, "logged once: {log}");
    assert!(lines[0].contains("err-1"), "{}", lines[0]);
}

#[actix_web::test]
async fn the_request_log_has_the_request_id_but_no_credentials_or_query_string() {
    let request = actix_test::TestRequest::get()
        .uri("/health/live?access_token=qs-token-456&password=hunter2")
        .insert_header(("authorization", "Bearer header-token-123"))
        .insert_header(("cookie", "session=cookie-secret-789"))
        .insert_header(("x-request-id", "log-test-1"));

    let (status, log) = log_of(request).await;

    assert_eq!(status, 200);
    assert!(
        log.contains("log-test-1"),
        "the request id is logged: {log}"
    );
    assert!(log.contains("/health/live"), "the path is logged: {log}");
    for secret in [
        "header-token-123",
        "Bearer",
        "cookie-secret-789",
        "qs-token-456",
        "hunter2",
        "access_token",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}: {log}");
    }
}

#[actix_web::test]
async fn the_completion_line_says_route_status_and_latency_under_the_request_span() {
    let request = actix_test::TestRequest::get()
        .uri("/health/live")
        .insert_header(("x-request-id", "log-test-2"));

    let (status, log) = log_of(request).await;

    assert_eq!(status, 200);
    let line = log
        .lines()
        .find(|l| l.contains("request completed"))
        .unwrap_or_else(|| panic!("no completion line: {log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["route"], "/health/live", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["latency_ms"].is_u64(), "{line}");
    // The request span carries who and what, set once when the request arrived.
    let span = &line["spans"][0];
    assert_eq!(span["name"], "http.request", "{line}");
    assert_eq!(span["request_id"], "log-test-2", "{line}");
    assert_eq!(span["method"], "GET", "{line}");
    assert_eq!(span["path"], "/health/live", "{line}");
}
