//! Slow clients cannot hold connections: the request head and the whole request have deadlines,
//! and bodies must declare their length.

use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(&[("CLIENT_HEADER_TIMEOUT_MS", "300")]).await;

    let received = app
        .raw_exchange(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await;

    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "{received}"
    );
}

#[tokio::test]
async fn a_client_that_trickles_its_body_gets_a_408_problem_and_is_disconnected() {
    let app = TestApp::spawn_with(&[("REQUEST_TIMEOUT_SECS", "1")]).await;

    let received = app
        .raw_exchange(
            b"POST /__probe/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .await;

    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    let lower = received.to_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{received}"
    );
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{received}"
    );
    assert!(lower.contains("x-request-id: "), "{received}");
}

#[tokio::test]
async fn a_handler_past_the_deadline_is_cut_off_with_a_408_problem() {
    let app = TestApp::spawn_with(&[("REQUEST_TIMEOUT_SECS", "1")]).await;

    let response = app.get("/__probe/slow").await;

    assert_eq!(response.headers()["connection"], "close");
    assert_problem(response, 408).await;
    assert_eq!(app.get_liveness().await.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_is_refused_with_411_and_never_holds_the_connection() {
    // A chunked body that never ends, to routes that read a body, don't, or don't exist.
    let app = TestApp::spawn().await;

    for head in [
        "POST /api/v1/nothing-here HTTP/1.1",
        "POST /health/live HTTP/1.1",
        "GET /health/live HTTP/1.1",
        "POST /__probe/echo HTTP/1.1",
    ] {
        let request = format!(
            "{head}\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        );

        let received = app.raw_exchange(request.as_bytes()).await;

        assert!(received.starts_with("HTTP/1.1 411"), "{head}: {received}");
        let lower = received.to_lowercase();
        assert!(lower.contains("connection: close"), "{head}: {received}");
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{head}: {received}"
        );
        assert!(
            lower.contains("x-content-type-options: nosniff") && lower.contains("x-request-id: "),
            "{head}: {received}"
        );
    }
}
