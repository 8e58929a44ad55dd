//! The object-level inventory (OWASP API1): every route that takes an object id, called by another
//! user on the first user's objects. The routes come from the OpenAPI document, so a new route with
//! an id fails this test until it is added to the table below — and with it, to the attack.

use std::collections::BTreeSet;

use bulwark_security::webhook_transport::StaticHosts;
use reqwest::Method;
use serde_json::{Value, json};

use crate::attachments::multipart;
use crate::helpers::assert_problem;
use crate::webhooks::{app_with_network, ip};

/// What another user gets on a route: 404 for an object it may not see (as for one that does not
/// exist), 403 where the route itself is not theirs (admin routes: function level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    NotFound,
    Forbidden,
}

/// The request body a route needs to get as far as its object check.
#[derive(Debug, Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    Multipart,
}

/// Every route with an object id: method, OpenAPI path, the body to send, the answer.
const ROUTES: [(&str, &str, Body, Expected); 12] = [
    (
        "GET",
        "/api/v1/documents/{id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "PATCH",
        "/api/v1/documents/{id}",
        Body::Json(r#"{"title": "pwned", "visibility": "public"}"#),
        Expected::NotFound,
    ),
    (
        "DELETE",
        "/api/v1/documents/{id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "POST",
        "/api/v1/documents/{id}/shares",
        Body::Json(r#"{"user_id": "{mallory}", "permission": "write"}"#),
        Expected::NotFound,
    ),
    (
        "DELETE",
        "/api/v1/documents/{id}/shares/{user_id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "POST",
        "/api/v1/documents/{id}/attachments",
        Body::Multipart,
        Expected::NotFound,
    ),
    (
        "GET",
        "/api/v1/documents/{id}/attachments/{attachment_id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "DELETE",
        "/api/v1/webhooks/{id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "GET",
        "/api/v1/webhooks/{id}/deliveries",
        Body::None,
        Expected::NotFound,
    ),
    (
        "DELETE",
        "/api/v1/auth/sessions/{id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "DELETE",
        "/api/v1/auth/api-keys/{id}",
        Body::None,
        Expected::NotFound,
    ),
    (
        "PATCH",
        "/api/v1/admin/users/{id}",
        Body::Json(r#"{"role": "admin"}"#),
        Expected::Forbidden,
    ),
];

#[test]
fn the_table_lists_every_route_that_takes_an_id() {
    let doc = bulwark_app::api::openapi();
    let table = bulwark_transport_rest::access_table(&doc).unwrap();
    let documented: BTreeSet<(String, String)> = table
        .entries()
        // Object ids are the `{id}` and `{…_id}` parameters; `{provider}` names configuration.
        .filter(|(path, _, _)| path.contains("id}"))
        .map(|(path, method, _)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    let tested: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path, _, _)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(
        documented, tested,
        "every route with an object id must be in the BOLA table"
    );
}

#[tokio::test]
async fn another_user_reaches_none_of_the_first_users_objects_on_any_route() {
    let hosts = StaticHosts::default();
    hosts.set("hooks.test", vec![ip("93.184.215.14")]);
    let app = app_with_network(&hosts, false, 1).await;
    let ada = app.signed_up("ada@example.com").await;
    let carol = app.signed_up("carol@example.com").await;
    let mallory = app.signed_up("mallory@example.com").await;

    // Ada's objects: a private document shared with Carol, with an attachment; a webhook; a
    // session; an API key.
    let document = app.document(&ada, "private").await;
    let document_id = document["id"].as_str().unwrap().to_owned();
    let shared = app
        .share_document(&ada.access_token, &document_id, &carol.user_id, "read")
        .await;
    assert_eq!(shared.status(), 201);
    let upload = app
        .upload(
            &ada.access_token,
            &document_id,
            &[("file", "notes.txt", "text/plain", b"plain notes")],
        )
        .await;
    assert_eq!(upload.status(), 201);
    let attachment: Value = upload.json().await.unwrap();
    let webhook: Value = app
        .create_webhook(
            &ada.access_token,
            &json!({"url": "https://hooks.test/in", "events": ["document.updated"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let api_key = app.api_key(&ada, &["documents:read"]).await;
    let sessions: Value = app
        .list_sessions(&ada.access_token)
        .await
        .json()
        .await
        .unwrap();
    let session_id = sessions["items"][0]["id"].as_str().unwrap().to_owned();
    let document_version = app
        .get_document(&ada.access_token, &document_id)
        .await
        .json::<Value>()
        .await
        .unwrap()["version"]
        .clone();

    for (method, template, body, expected) in ROUTES {
        let id = if template.starts_with("/api/v1/webhooks") {
            webhook["id"].as_str().unwrap()
        } else if template.starts_with("/api/v1/auth/api-keys") {
            api_key["id"].as_str().unwrap()
        } else if template.starts_with("/api/v1/auth/sessions") {
            &session_id
        } else if template.starts_with("/api/v1/admin/users") {
            &ada.user_id
        } else {
            &document_id
        };
        let path = template
            .replace("{id}", id)
            .replace("{user_id}", &carol.user_id)
            .replace("{attachment_id}", attachment["id"].as_str().unwrap());
        let mut request = app
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&path),
            )
            .bearer_auth(&mallory.access_token)
            .header("if-match", format!("\"{document_version}\""));
        request = match body {
            Body::None => request,
            Body::Json(raw) => request
                .header("content-type", "application/json")
                .body(raw.replace("{mallory}", &mallory.user_id)),
            Body::Multipart => {
                let (content_type, bytes) =
                    multipart(&[("file", "x.txt", "text/plain", b"planted")]);
                request.header("content-type", content_type).body(bytes)
            }
        };
        let response = request.send().await.unwrap();
        let status = match expected {
            Expected::NotFound => 404,
            Expected::Forbidden => 403,
        };
        let problem = assert_problem(response, status).await;
        if expected == Expected::NotFound {
            // Nothing in the answer tells a foreign object from a missing one.
            assert_eq!(problem.type_uri, "about:blank", "{method} {template}");
        }
    }

    // Ada's objects are exactly as they were.
    let after: Value = app
        .get_document(&ada.access_token, &document_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["title"], document["title"]);
    assert_eq!(after["visibility"], "private");
    assert_eq!(after["version"], document_version);
    assert_eq!(
        after["shares"],
        json!([{"user_id": carol.user_id, "permission": "read"}])
    );
    let download = app
        .download(
            &ada.access_token,
            &document_id,
            attachment["id"].as_str().unwrap(),
        )
        .await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"plain notes");
    let attachments: i64 = sqlx::query_scalar("select count(*) from attachments")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attachments, 1);
    let webhooks: Value = app
        .list_webhooks(&ada.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(webhooks["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get_me(&ada.access_token).await.status(), 200);
    let by_key = app
        .authed(
            Method::GET,
            "/api/v1/documents",
            api_key["key"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(by_key.status(), 200);
    let me: Value = app.get_me(&ada.access_token).await.json().await.unwrap();
    assert_eq!(me["role"], "user");
    // Mallory's own session still works: being refused is not being signed out.
    assert_eq!(app.get_me(&mallory.access_token).await.status(), 200);
}
