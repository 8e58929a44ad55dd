//! `GET /metrics`: Prometheus text for a scraper with the metrics token, nothing for anyone else;
//! labels are route templates, never raw paths (an id in a label would be a leak and an unbounded
//! series).

use crate::helpers::TestApp;

const TOKEN: &str = "metrics-token-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn metrics_are_hidden_without_a_configured_token() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_scraper_with_the_token_reads_bounded_series() {
    let app = TestApp::spawn_with(&[
        ("METRICS_TOKEN", TOKEN),
        ("RATE_LIMIT_AUTH_PER_WINDOW", "1"),
    ])
    .await;
    for token in [None, Some("wrong"), Some(&TOKEN[1..])] {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{token:?}");
    }

    let id = uuid::Uuid::new_v4();
    let response = app
        .client
        .get(app.url(&format!("/api/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for _ in 0..2 {
        let _ = app.login("nobody@example.com", "Wrong-Password-123").await;
    }

    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"bulwark_http_requests_total{route="/api/v1/documents/{id}",method="GET",status="401"} 1"#),
        "{text}"
    );
    assert!(!text.contains(&id.to_string()), "a raw path in a label");
    assert!(
        text.contains(r#"bulwark_rate_limited_total{policy="auth"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("bulwark_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    for gauge in [
        "bulwark_websocket_connections 0",
        "bulwark_db_pool_connections ",
        "bulwark_db_pool_idle_connections ",
    ] {
        assert!(text.contains(gauge), "{gauge}: {text}");
    }
}
