//! With the production panic hook installed, a handler panic is logged exactly once, with its
//! message, its location and the request id. (A test binary of its own: the hook is process-wide.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::{test as actix_test, web};
use bulwark_app::config::{Config, Env};
use bulwark_app::startup::{AppState, app};
use secrecy::ExposeSecret;

async fn panics() -> &'static str {
    panic!("exploding on purpose")
}

#[actix_web::test]
async fn a_handler_panic_is_logged_once_with_message_location_and_request_id() {
    bulwark_app::telemetry::install_panic_hook();
    let keys = bulwark_security::keys::generate_keys().unwrap();
    let env = Env::from_pairs([
        ("APP_ENV", "test"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused"),
        ("JWT_SIGNING_KEY_ID", keys.jwt_key_id.as_str()),
        ("JWT_SIGNING_KEY", keys.jwt_signing_key.expose_secret()),
        (
            "DATA_ENCRYPTION_KEYS",
            keys.data_encryption_keys.expose_secret(),
        ),
    ])
    .unwrap();
    let config = Config::load(&env).unwrap();
    // The pool connects lazily and this request never touches it.
    let pool = bulwark_persistence::connect(&config.database);
    let routes: bulwark_app::startup::TestRoutes = Arc::new(|cfg: &mut web::ServiceConfig| {
        cfg.route("/__probe/boom", web::get().to(panics));
    });
    let service =
        actix_test::init_service(app(AppState::new(&config, pool, Some(routes)).unwrap())).await;
    let captured = bulwark_testkit::CapturedLogs::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let request = actix_test::TestRequest::get()
        .uri("/__probe/boom")
        .insert_header(("x-request-id", "boom-1"))
        .to_request();
    let status = match actix_test::try_call_service(&service, request).await {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };

    assert_eq!(status, 500);
    let log = captured.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("exploding on purpose"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one line about the panic:\n{log}");
    assert!(lines[0].contains("boom-1"), "{}", lines[0]);
    assert!(
        lines[0].contains("panic_logging.rs"),
        "the location is logged: {}",
        lines[0]
    );
}
