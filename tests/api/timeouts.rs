//! Slow clients cannot hold connections: the request head and the whole request have deadlines.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_problem};

/// Reads until the server closes the connection (or a generous cap passes, which fails the test).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
    String::from_utf8_lossy(&received).into_owned()
}

fn port(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(&[("CLIENT_HEADER_TIMEOUT_MS", "300")]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();

    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;

    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "{received}"
    );
}

#[tokio::test]
async fn a_client_that_trickles_its_body_gets_a_408_problem_and_is_disconnected() {
    let app = TestApp::spawn_with(&[("REQUEST_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();

    stream
        .write_all(
            b"POST /__probe/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;

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
        let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
        let request = format!(
            "{head}\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();

        let received = read_until_closed(&mut stream).await;

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
