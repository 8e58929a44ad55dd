//! What the request log says — and what it never says.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::test as actix_test;
use bulwark_app::startup::{AppState, app};

use crate::helpers::test_config;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_web::test]
async fn the_request_log_has_the_request_id_but_no_credentials_or_query_string() {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let mut config = test_config(&[]);
    config.database = db.settings();
    let service =
        actix_test::init_service(app(AppState::new(&config, db.pool.clone(), None).unwrap())).await;
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let request = actix_test::TestRequest::get()
        .uri("/health/live?access_token=qs-token-456&password=hunter2")
        .insert_header(("authorization", "Bearer header-token-123"))
        .insert_header(("cookie", "session=cookie-secret-789"))
        .insert_header(("x-request-id", "log-test-1"))
        .to_request();
    let response = actix_test::call_service(&service, request).await;
    assert_eq!(response.status(), 200);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
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
