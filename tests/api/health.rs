//! `/health/live` and `/health/ready`.

use std::net::TcpListener;
use std::time::Duration;

use crate::helpers::{TestApp, assert_problem, assert_security_headers};

#[tokio::test]
async fn liveness_answers_ok() {
    let app = TestApp::spawn().await;

    let response = app.get_liveness().await;

    assert_eq!(response.status(), 200);
    assert_security_headers(&response);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readiness_answers_ok_when_the_database_answers() {
    let app = TestApp::spawn().await;

    let response = app.get_readiness().await;

    assert_eq!(response.status(), 200);
    assert_security_headers(&response);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
}

#[tokio::test]
async fn readiness_is_503_when_nothing_listens_on_the_database_port() {
    // A port that was free a moment ago: connections are refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_configured(|config| {
        config.database.connect = config.database.connect.clone().port(port);
    })
    .await;

    let response = app.get_readiness().await;

    assert_security_headers(&response);
    assert_eq!(response.headers()["retry-after"], "5");
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:service-unavailable");
    // The public endpoint does not say which dependency failed, nor how.
    assert!(!problem.detail.to_lowercase().contains("postgres"));
    assert!(!problem.detail.contains(&port.to_string()));
    // Liveness is not readiness: the process is still up.
    assert_eq!(app.get_liveness().await.status(), 200);
}

#[tokio::test]
async fn readiness_is_503_when_the_database_accepts_but_never_answers() {
    // A listener that accepts TCP connections but never speaks PostgreSQL: the connection attempt
    // hangs, and only the readiness timeout ends the wait.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let app = TestApp::spawn_configured(|config| {
        config.database.connect = config.database.connect.clone().port(port);
        config.http.readiness_timeout = Duration::from_millis(300);
    })
    .await;

    let response = app.get_readiness().await;

    assert_problem(response, 503).await;
    drop(blackhole);
}

#[tokio::test]
async fn readiness_turns_503_when_the_database_disappears() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get_readiness().await.status(), 200);

    // Drop the app's database under it (force ends its connections).
    let server = bulwark_testkit::server_url();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"drop database "{}" with (force)"#,
        app.db.name()
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    let response = app.get_readiness().await;

    assert_problem(response, 503).await;
}
