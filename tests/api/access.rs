//! Deny by default: every route declares who may call it, and the declaration is enforced before
//! the handler runs.

use bulwark_web::access::Access;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem};

/// `/api/v1/x/{id}` with a random UUID for every parameter.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&uuid::Uuid::new_v4().to_string());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn declared() -> Vec<(String, Method, Access)> {
    let doc = bulwark_app::api::openapi();
    let table = bulwark_transport_rest::access_table(&doc).expect("every declaration is usable");
    let mut entries: Vec<(String, Method, Access)> = table
        .entries()
        .map(|(p, m, a)| {
            (
                p.to_owned(),
                Method::from_bytes(m.as_str().as_bytes()).unwrap(),
                a,
            )
        })
        .collect();
    entries.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
    entries
}

#[test]
fn every_documented_operation_declares_its_access() {
    let doc = serde_json::to_value(bulwark_app::api::openapi()).unwrap();
    let mut undeclared = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_none() {
                undeclared.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        undeclared.is_empty(),
        "declare `security(())` (public) or `security((\"bearer\" = [...]))` on: {undeclared:?}"
    );
    assert_eq!(
        declared().len(),
        doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|i| i.as_object().unwrap().len())
            .sum::<usize>()
    );
}

#[tokio::test]
async fn every_protected_route_answers_401_with_the_challenge_before_its_handler_runs() {
    let app = TestApp::spawn().await;
    let protected: Vec<_> = declared()
        .into_iter()
        .filter(|(_, _, access)| !matches!(access, Access::Public | Access::Optional))
        .collect();
    assert!(!protected.is_empty());

    for (pattern, method, _) in protected {
        let path = concrete(&pattern);
        // A body that would be a 400 if the handler ran: the 401 must come first.
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .json(&json!({"unexpected": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some(r#"Bearer error="invalid_token""#),
            "{method} {pattern}"
        );
        assert_problem(response, 401).await;
    }
}

/// Optional authentication (`POST /graphql`): anonymous callers get in (the fields decide), but a
/// credential that is sent must be valid — a forged one is a 401 before anything runs.
#[tokio::test]
async fn optional_routes_run_anonymously_but_refuse_a_bad_credential() {
    let app = TestApp::spawn().await;
    let optional: Vec<_> = declared()
        .into_iter()
        .filter(|(_, _, access)| *access == Access::Optional)
        .collect();
    assert!(!optional.is_empty());
    for (pattern, method, _) in optional {
        let path = concrete(&pattern);
        let anonymous = app
            .client
            .request(method.clone(), app.url(&path))
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .unwrap();
        assert_ne!(anonymous.status(), 401, "{method} {pattern}");
        for credential in [
            "Bearer forged",
            "Bearer bwk_aaaaaaaaaaaa_forged",
            "Basic YTpi",
        ] {
            let refused = app
                .client
                .request(method.clone(), app.url(&path))
                .header("authorization", credential)
                .json(&json!({"query": "{ __typename }"}))
                .send()
                .await
                .unwrap();
            assert_problem(refused, 401).await;
        }
    }
}

#[tokio::test]
async fn public_routes_never_ask_for_a_token() {
    let app = TestApp::spawn().await;

    for (pattern, method, access) in declared() {
        if access != Access::Public {
            continue;
        }
        let response = app
            .client
            .request(method.clone(), app.url(&concrete(&pattern)))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 401, "{method} {pattern}");
        assert!(
            response.status().as_u16() < 500,
            "{method} {pattern}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_protected_route_is_still_a_405() {
    let app = TestApp::spawn().await;

    let response = app.request(Method::PUT, "/api/v1/users/me").await;

    assert_problem(response, 405).await;
}
