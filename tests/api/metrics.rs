//! `GET /metrics`: Prometheus text for a scraper with the metrics token, nothing for anyone else;
//! labels are route templates, never raw paths (an id in a label would be a leak and an unbounded
//! series).

use crate::helpers::TestApp;

/// The metrics token the tests configure (`METRICS_TOKEN`).
pub const TOKEN: &str = "metrics-token-0123456789abcdef0123456789abcdef";

impl TestApp {
    /// The Prometheus text of `GET /metrics`, scraped with [`TOKEN`] (the app must be spawned with
    /// it as `METRICS_TOKEN`).
    pub async fn scrape_metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

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

/// The metric names (`# TYPE` lines) a scrape exports.
fn exported(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_separate_listener_serves_the_metrics_without_a_token_and_nothing_else() {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let mut config = crate::helpers::test_config(&[("METRICS_ADDR", "127.0.0.1:0")]);
    config.database = db.settings();
    let app = bulwark_app::startup::Application::build(&config, None)
        .await
        .unwrap();
    let main = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!(
        "http://127.0.0.1:{}",
        app.metrics_port().expect("the metrics listener is bound")
    );
    assert_ne!(main, metrics);
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    let scrape = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert_eq!(scrape.headers()["cache-control"], "no-store");
    let text = scrape.text().await.unwrap();
    assert!(
        exported(&text).contains(&(
            "bulwark_http_requests_total".to_owned(),
            "counter".to_owned()
        )),
        "{text}"
    );
    // Nothing of the API is served there…
    for path in [
        "/api/v1/documents",
        "/health/ready",
        "/graphql",
        "/openapi.json",
    ] {
        let response = client.get(format!("{metrics}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // …and the API's own /metrics still needs its token (none configured: 404).
    let response = client.get(format!("{main}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    drop(db);
}

#[tokio::test]
async fn every_metric_the_shipped_alert_rules_use_is_exported() {
    use yaml_rust2::YamlLoader;
    let app = TestApp::spawn_with(&[("METRICS_TOKEN", TOKEN)]).await;
    let text = app.scrape_metrics().await;
    let exported = exported(&text);
    let known = |name: &str| {
        exported.iter().any(|(n, kind)| {
            n == name
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(n)))
        })
    };

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy/prometheus/alerts.yml");
    let rules = YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for group in rules[0]["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("warning" | "critical")
                ),
                "{name}: severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: summary"
            );
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|token| token.starts_with("bulwark_"))
                .collect();
            assert!(!names.is_empty(), "{name} uses no metric of ours");
            for metric in names {
                assert!(
                    known(metric),
                    "{name} uses `{metric}`, which is not exported"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 9, "{checked}");
    // The security counters the rules watch exist even before anything happened.
    for series in [
        "bulwark_auth_failures_total{kind=\"login\"} 0",
        "bulwark_refresh_token_reuse_total 0",
        "bulwark_access_denials_total 0",
        "bulwark_security_alerts_total{rule=\"refresh_reuse\"} 0",
        "bulwark_rate_limit_fallbacks_total",
    ] {
        assert!(text.contains(series), "{series}: {text}");
    }
}
