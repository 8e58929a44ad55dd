//! Every error is an RFC 9457 problem: router errors, body errors, handler errors, panics.

use reqwest::Method;

use crate::helpers::{TestApp, assert_problem, assert_security_headers};

#[tokio::test]
async fn an_unknown_path_is_a_404_problem() {
    let app = TestApp::spawn().await;

    let response = app.get("/api/v1/does-not-exist").await;

    assert_security_headers(&response);
    let problem = assert_problem(response, 404).await;
    assert_eq!(problem.type_uri, "about:blank");
    assert_eq!(problem.title, "Not Found");
}

#[tokio::test]
async fn malformed_json_to_an_unknown_path_is_a_4xx_problem_never_5xx() {
    // The acceptance check of the foundation issue, literally.
    let app = TestApp::spawn().await;

    let response = app
        .client
        .post(app.url("/api/v1/anything"))
        .header("content-type", "application/json")
        .body(r#"{"x":"#)
        .send()
        .await
        .unwrap();

    assert!(
        response.status().is_client_error(),
        "got {}",
        response.status()
    );
    assert_problem(response, 404).await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = TestApp::spawn().await;

    let response = app.request(Method::POST, "/health/live").await;

    assert_security_headers(&response);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert_problem(response, 405).await;
}

#[tokio::test]
async fn head_is_answered_like_get_without_a_body() {
    let app = TestApp::spawn().await;

    let response = app.request(Method::HEAD, "/health/live").await;

    assert_eq!(response.status(), 200);
    assert_security_headers(&response);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_well_formed_json_body_is_accepted() {
    let app = TestApp::spawn().await;

    let response = app
        .post_echo(Some("application/json"), r#"{"name":"a","count":3}"#)
        .await;

    assert_eq!(response.status(), 200);
    assert_security_headers(&response);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"name": "a", "count": 3})
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;

    for body in [
        r#"{"name":"#,
        "not json",
        r#"{"name":"a","count":3"#,
        "",
        "{\"name\": \"a\",,}",
    ] {
        let response = app.post_echo(Some("application/json"), body).await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(
            problem.type_uri, "urn:bulwark:problem:malformed-json",
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_field_is_a_400_naming_the_field_not_silently_dropped() {
    // Mass assignment: a client must not be able to slip `role` (or anything else) past a DTO.
    let app = TestApp::spawn().await;

    let response = app
        .post_echo(
            Some("application/json"),
            r#"{"name":"a","count":3,"role":"admin"}"#,
        )
        .await;

    let problem = assert_problem(response, 400).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:validation-error");
    assert_eq!(problem.errors.len(), 1);
    assert_eq!(
        (
            problem.errors[0].field.as_str(),
            problem.errors[0].code.as_str()
        ),
        ("role", "unknown_field")
    );
}

#[tokio::test]
async fn missing_and_mistyped_fields_are_400s_that_do_not_echo_values() {
    let app = TestApp::spawn().await;

    let missing = assert_problem(
        app.post_echo(Some("application/json"), r#"{"name":"a"}"#)
            .await,
        400,
    )
    .await;
    assert_eq!(
        (
            missing.errors[0].field.as_str(),
            missing.errors[0].code.as_str()
        ),
        ("count", "required")
    );

    let response = app
        .post_echo(
            Some("application/json"),
            r#"{"name":"a","count":"s3cret-value"}"#,
        )
        .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("s3cret"),
        "the rejected value was echoed: {text}"
    );

    let out_of_range = app
        .post_echo(Some("application/json"), r#"{"name":"a","count":300}"#)
        .await;
    assert_problem(out_of_range, 400).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = TestApp::spawn().await;
    let big = format!(r#"{{"name":"{}","count":1}}"#, "a".repeat(70 * 1024));

    let response = app.post_echo(Some("application/json"), big).await;

    assert_security_headers(&response);
    let problem = assert_problem(response, 413).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:payload-too-large");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_read() {
    // Ten megabytes announced, none sent: the answer must come at once, without waiting for (or
    // buffering) the body, and the connection must not wait for it either.
    let app = TestApp::spawn().await;

    let text = app
        .raw_exchange(b"POST /__probe/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
        .await;

    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("urn:bulwark:problem:payload-too-large"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_content_type_is_a_415_problem() {
    let app = TestApp::spawn().await;

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = app
            .post_echo(content_type, r#"{"name":"a","count":3}"#)
            .await;
        assert_security_headers(&response);
        let problem = assert_problem(response, 415).await;
        assert_eq!(
            problem.type_uri, "urn:bulwark:problem:unsupported-media-type",
            "{content_type:?}"
        );
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_generic_500_and_the_app_keeps_serving() {
    let app = TestApp::spawn().await;

    let response = app.get_panic().await;

    assert_security_headers(&response);
    let problem = assert_problem(response, 500).await;
    assert_eq!(problem.type_uri, "about:blank");
    assert!(!problem.detail.contains("panicked"), "{}", problem.detail);
    // The worker survived.
    assert_eq!(app.get_liveness().await.status(), 200);
}

#[tokio::test]
async fn an_internal_error_reveals_nothing_of_its_cause() {
    let app = TestApp::spawn().await;

    let response = app.get_internal_error().await;

    assert_security_headers(&response);
    let text = response.text().await.unwrap();
    for secret in [
        "hunter2",
        "10.0.0.5",
        "postgres",
        "relation",
        "users",
        "io::Error",
        "bulwark_",
    ] {
        assert!(!text.contains(secret), "500 body leaks {secret:?}: {text}");
    }
    let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], 500);
}

#[tokio::test]
async fn trace_and_other_unrouted_methods_are_refused() {
    let app = TestApp::spawn().await;

    for method in ["TRACE", "PROPFIND", "CONNECT"] {
        let response = app
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                "/health/live",
            )
            .await;
        // CONNECT's target is an authority, not a path, so no route matches it at all (404).
        let expected = if method == "CONNECT" { 404 } else { 405 };
        assert_eq!(response.status(), expected, "{method}");
        assert!(
            !response.text().await.unwrap().contains("TRACE /health"),
            "{method} echoed the request"
        );
    }
}

#[tokio::test]
async fn nothing_from_the_repository_or_file_system_is_served() {
    // Raw requests: an HTTP client library would normalise `..` and `%2e%2e` away before sending.
    let app = TestApp::spawn().await;

    for path in [
        "/.git/config",
        "/.env",
        "/Cargo.toml",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/docs/../.env",
        "/health/..%2f..%2f.env",
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

        let text = app.raw_exchange(request.as_bytes()).await.to_lowercase();

        assert!(
            text.starts_with("http/1.1 404") || text.starts_with("http/1.1 400"),
            "{path}: {text}"
        );
        assert!(
            !text.contains("postgres") && !text.contains("[package]") && !text.contains("root:"),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn a_request_with_both_content_length_and_transfer_encoding_is_rejected() {
    // Request smuggling (ASVS 4.2.1): a request whose framing is ambiguous must not be interpreted.
    let app = TestApp::spawn().await;

    let text = app
        .raw_exchange(
            b"POST /__probe/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await;

    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "a smuggled second request was answered: {text}"
    );
}

#[tokio::test]
async fn a_repeated_query_parameter_is_a_400_never_a_silent_pick() {
    // HTTP parameter pollution: `?limit=1&limit=100` must not mean whichever one a layer picks.
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    for query in [
        "limit=1&limit=100",
        "tag=a&tag=b",
        "cursor=x&limit=5&cursor=y",
    ] {
        let response = app
            .authed(
                Method::GET,
                &format!("/api/v1/documents?{query}"),
                &ada.access_token,
                None,
            )
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(
            problem.type_uri, "urn:bulwark:problem:validation-error",
            "{query}"
        );
    }
    // The same parameters once each are fine.
    let once = app
        .authed(
            Method::GET,
            "/api/v1/documents?limit=5&tag=a",
            &ada.access_token,
            None,
        )
        .await;
    assert_eq!(once.status(), 200);
}
