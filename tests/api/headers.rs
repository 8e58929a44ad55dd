//! The contract's headers on every kind of response: request ids, security headers, caching, HSTS.

use crate::helpers::{TestApp, assert_problem, assert_security_headers};

#[tokio::test]
async fn security_headers_are_on_200_404_405_413_415_and_500() {
    let app = TestApp::spawn().await;
    let big = format!(r#"{{"name":"{}","count":1}}"#, "a".repeat(70 * 1024));

    let responses = vec![
        (200, app.get_liveness().await),
        (404, app.get("/nope").await),
        (
            405,
            app.request(reqwest::Method::DELETE, "/health/ready").await,
        ),
        (413, app.post_echo(Some("application/json"), big).await),
        (415, app.post_echo(Some("text/plain"), "x").await),
        (500, app.get_panic().await),
        (500, app.get_internal_error().await),
    ];

    for (status, response) in responses {
        assert_eq!(response.status().as_u16(), status, "{}", response.url());
        assert_security_headers(&response);
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{}",
            response.url()
        );
        // Plain HTTP without a TLS proxy: HSTS would be meaningless, and is not sent.
        assert!(
            response
                .headers()
                .get("strict-transport-security")
                .is_none()
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_when_behind_a_tls_proxy() {
    let app = TestApp::spawn_with(&[("BEHIND_TLS_PROXY", "true")]).await;

    for response in [
        app.get_liveness().await,
        app.get("/nope").await,
        app.get_panic().await,
    ] {
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
    }
}

#[tokio::test]
async fn a_well_formed_request_id_is_echoed_in_the_header_and_the_problem() {
    let app = TestApp::spawn().await;

    let ok = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["x-request-id"], "trace-42.a_b");

    let not_found = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-43")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(not_found, 404).await;
    assert_eq!(problem.request_id, "trace-43");
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_not_echoed() {
    let app = TestApp::spawn().await;
    let too_long = "a".repeat(65);

    for bad in [
        "has space",
        "<script>alert(1)</script>",
        "a\"b",
        too_long.as_str(),
        "semi;colon",
    ] {
        let response = app
            .client
            .get(app.url("/health/live"))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a fresh UUID, got {id}");
    }
}

#[tokio::test]
async fn every_response_gets_a_fresh_request_id_when_none_is_sent() {
    let app = TestApp::spawn().await;

    let first = app.get_liveness().await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let second = app.get_liveness().await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    assert_ne!(first, second);
}

#[tokio::test]
async fn the_openapi_document_is_cacheable_and_the_rest_is_not() {
    let app = TestApp::spawn().await;

    let doc = app.get_openapi().await;

    assert_eq!(doc.headers()["cache-control"], "public, max-age=300");
    assert_security_headers(&doc);
}

#[tokio::test]
async fn the_docs_ui_is_off_by_default() {
    let app = TestApp::spawn().await;

    assert_problem(app.get("/docs/").await, 404).await;
}

#[tokio::test]
async fn the_docs_ui_when_enabled_is_served_locally_with_its_own_csp() {
    let app = TestApp::spawn_with(&[("DOCS_UI", "true")]).await;

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("http"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    // Everything the page loads comes from us: no CDN.
    assert!(
        !html.contains("https://"),
        "the docs page loads something remote"
    );

    let initializer = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"));
    // The rest of the API keeps the strict policy.
    assert_eq!(
        app.get_liveness().await.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
}
