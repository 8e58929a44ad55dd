//! The OpenAPI document: checked in, served byte for byte, and complete.
//!
//! Completeness has two halves:
//! - every documented operation is answered by the route of exactly that pattern (checked here
//!   in-process, by asking actix which pattern matched);
//! - every registered route is documented: routes are registered only through
//!   `bulwark_transport_rest::routes`, where utoipa-actix-web refuses handlers without
//!   `#[utoipa::path]`; `architecture::routes_are_registered_only_through_the_documented_router`
//!   fails when code registers a route any other way.

use std::path::Path;

use actix_web::test as actix_test;
use bulwark_app::startup::{AppState, app};

use crate::helpers::{TestApp, test_config};

fn checked_in() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn generated() -> String {
    bulwark_transport_rest::openapi_json(&bulwark_app::api::openapi()).unwrap()
}

#[test]
fn the_checked_in_graphql_schema_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/schema.graphql");
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        checked_in == bulwark_transport_graphql::sdl(),
        "openapi/schema.graphql is out of date: run `make openapi` and commit the result"
    );
}

#[test]
fn the_checked_in_document_matches_the_code() {
    assert!(
        checked_in() == generated(),
        "openapi/openapi.json is out of date: run `make openapi` and commit the result"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_describes_errors() {
    let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(!doc["paths"].as_object().unwrap().is_empty());
}

#[test]
fn every_limited_operation_documents_its_429_with_the_rate_limit_headers() {
    let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    let mut limited = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let refusal = &operation["responses"]["429"];
            if path.starts_with("/health/") {
                assert!(
                    refusal.is_null(),
                    "{method} {path}: probes are never limited"
                );
                continue;
            }
            for header in ["Retry-After", "RateLimit-Policy", "RateLimit"] {
                assert!(
                    refusal["headers"][header].is_object(),
                    "{method} {path}: 429 without {header}"
                );
            }
            assert_eq!(
                refusal["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path}"
            );
            limited += 1;
        }
    }
    assert!(limited > 40, "{limited}");
}

#[tokio::test]
async fn openapi_json_serves_exactly_the_checked_in_bytes() {
    let app = TestApp::spawn().await;

    let response = app.get_openapi().await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(
        response.text().await.unwrap() == checked_in(),
        "served document differs from openapi/openapi.json"
    );
}

#[actix_web::test]
async fn every_documented_operation_is_answered_by_its_own_route() {
    let db = bulwark_testkit::TestDatabase::migrated().await;
    let mut config = test_config(&[]);
    config.database = db.settings();
    let state = AppState::new(&config, db.pool.clone(), None).unwrap();
    let service = actix_test::init_service(app(state)).await;

    let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    let mut checked = 0;
    for (pattern, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            // Any value fits a `{param}` for matching purposes.
            let path = pattern
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "00000000-0000-4000-8000-000000000000"
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let request = actix_test::TestRequest::default()
                .method(method.to_uppercase().parse().unwrap())
                .uri(&path)
                .to_request();
            let response = actix_test::call_service(&service, request).await;
            assert_eq!(
                response.request().match_pattern().as_deref(),
                Some(pattern.as_str()),
                "{} {pattern} is documented but no route of that pattern answered ({})",
                method.to_uppercase(),
                response.status()
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} operations checked");
}
