//! CORS from an allowlist: allowed origins get `Access-Control-Allow-Origin`, others get nothing.

use reqwest::Method;

use crate::helpers::TestApp;

const ALLOWED: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/health/live"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_headers_without_credentials() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", ALLOWED)]).await;

    let simple = app
        .client
        .get(app.url("/health/live"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], ALLOWED);
    assert!(
        simple
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-request-id"));

    let pre = preflight(&app, ALLOWED).await;
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(pre.headers()["access-control-allow-origin"], ALLOWED);
    let headers = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(headers.contains("authorization"));
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_headers() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", ALLOWED)]).await;

    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "null",
        "http://app.example.com",
    ] {
        let simple = app
            .client
            .get(app.url("/health/live"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            simple
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
        assert!(!simple.status().is_server_error());

        let pre = preflight(&app, origin).await;
        assert!(
            pre.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        assert!(
            !pre.status().is_server_error(),
            "{origin}: {}",
            pre.status()
        );
    }
}

#[tokio::test]
async fn with_no_allowlist_no_origin_is_allowed() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .get(app.url("/health/live"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();

    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn the_development_wildcard_never_allows_credentials() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "*")]).await;

    let response = app
        .client
        .get(app.url("/health/live"))
        .header("origin", "https://any.example")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}
