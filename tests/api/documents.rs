//! `/api/v1/documents`: object-level authorisation (the BOLA matrix), property-level rules,
//! optimistic concurrency, sanitising, and injection probes.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, assert_problem};

impl TestApp {
    pub async fn create_document(&self, token: &str, body: &Value) -> Response {
        self.authed(Method::POST, "/api/v1/documents", token, Some(body))
            .await
    }

    pub async fn get_document(&self, token: &str, id: &str) -> Response {
        self.authed(Method::GET, &format!("/api/v1/documents/{id}"), token, None)
            .await
    }

    pub async fn list_documents(&self, token: &str, query: &str) -> Response {
        self.authed(
            Method::GET,
            &format!("/api/v1/documents{query}"),
            token,
            None,
        )
        .await
    }

    pub async fn patch_document(
        &self,
        token: &str,
        id: &str,
        version: Option<i64>,
        body: &Value,
    ) -> Response {
        let mut request = self
            .client
            .patch(self.url(&format!("/api/v1/documents/{id}")))
            .bearer_auth(token)
            .json(body);
        if let Some(version) = version {
            request = request.header("if-match", format!("\"{version}\""));
        }
        request.send().await.unwrap()
    }

    pub async fn delete_document(&self, token: &str, id: &str) -> Response {
        self.authed(
            Method::DELETE,
            &format!("/api/v1/documents/{id}"),
            token,
            None,
        )
        .await
    }

    pub async fn share_document(
        &self,
        token: &str,
        id: &str,
        user_id: &str,
        permission: &str,
    ) -> Response {
        self.authed(
            Method::POST,
            &format!("/api/v1/documents/{id}/shares"),
            token,
            Some(&json!({"user_id": user_id, "permission": permission})),
        )
        .await
    }

    pub async fn unshare_document(&self, token: &str, id: &str, user_id: &str) -> Response {
        self.authed(
            Method::DELETE,
            &format!("/api/v1/documents/{id}/shares/{user_id}"),
            token,
            None,
        )
        .await
    }

    /// Creates a document and returns its JSON.
    pub async fn document(&self, owner: &Account, visibility: &str) -> Value {
        let response = self
            .create_document(
                &owner.access_token,
                &json!({"title": "Plans", "body": "<p>secret plans</p>", "visibility": visibility, "tags": ["plans"]}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Gives an account another role (the admin API comes later) and signs it in again, so the
    /// returned tokens act with the new role from their first request.
    pub async fn promote(&self, account: &Account, role: &str) -> Account {
        sqlx::query("update users set role = $2 where id = $1::uuid")
            .bind(&account.user_id)
            .bind(role)
            .execute(&self.pool)
            .await
            .unwrap();
        self.signed_in(&account.email, crate::helpers::PASSWORD)
            .await
    }
}

fn id(doc: &Value) -> String {
    doc["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_owner_creates_reads_changes_and_deletes() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;

    let created = app
        .create_document(
            &ada.access_token,
            &json!({"title": " Plans ", "body": "<p>x</p>", "tags": ["a", "b", "a"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["etag"], "\"1\"");
    let doc: Value = created.json().await.unwrap();
    assert_eq!(doc["title"], "Plans");
    assert_eq!(doc["visibility"], "private");
    assert_eq!(doc["tags"], json!(["a", "b"]));
    assert_eq!(doc["owner_id"], ada.user_id.as_str());
    assert_eq!(doc["shares"], json!([]));

    let fetched = app.get_document(&ada.access_token, &id(&doc)).await;
    assert_eq!(fetched.headers()["etag"], "\"1\"");
    let patched = app
        .patch_document(
            &ada.access_token,
            &id(&doc),
            Some(1),
            &json!({"title": "New"}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.headers()["etag"], "\"2\"");
    assert_eq!(patched.json::<Value>().await.unwrap()["title"], "New");
    assert_eq!(
        app.delete_document(&ada.access_token, &id(&doc))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.get_document(&ada.access_token, &id(&doc))
            .await
            .status(),
        404
    );
}

/// Every route with a document id, as the attacker `bob` on `ada`'s private document: 404 each, and
/// the document is untouched afterwards.
#[tokio::test]
async fn another_users_private_document_is_404_on_every_verb_and_stays_unchanged() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = id(&doc);
    let missing = uuid::Uuid::new_v4().to_string();

    for target in [&doc_id, &missing] {
        let token = &bob.access_token;
        let responses = [
            ("GET", app.get_document(token, target).await),
            (
                "PATCH",
                app.patch_document(token, target, Some(1), &json!({"title": "pwned"}))
                    .await,
            ),
            ("DELETE", app.delete_document(token, target).await),
            (
                "POST shares",
                app.share_document(token, target, &bob.user_id, "write")
                    .await,
            ),
            (
                "DELETE shares",
                app.unshare_document(token, target, &ada.user_id).await,
            ),
        ];
        for (verb, response) in responses {
            let problem = assert_problem(response, 404).await;
            assert_eq!(problem.type_uri, "about:blank", "{verb}");
        }
    }

    let after: Value = app
        .get_document(&ada.access_token, &doc_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["title"], doc["title"]);
    assert_eq!(after["version"], 1);
    assert_eq!(after["shares"], json!([]));
    let listed: Value = app
        .list_documents(&bob.access_token, "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    assert!(!app.audit_events("document.access_denied").await.is_empty());
}

#[tokio::test]
async fn a_public_document_is_readable_but_not_writable_by_others() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let doc = app.document(&ada, "public").await;

    let read: Value = app
        .get_document(&bob.access_token, &id(&doc))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["title"], "Plans");
    assert!(read.get("shares").is_none(), "only the owner sees shares");
    for response in [
        app.patch_document(
            &bob.access_token,
            &id(&doc),
            Some(1),
            &json!({"title": "x"}),
        )
        .await,
        app.delete_document(&bob.access_token, &id(&doc)).await,
        app.share_document(&bob.access_token, &id(&doc), &bob.user_id, "write")
            .await,
    ] {
        let problem = assert_problem(response, 403).await;
        assert_eq!(problem.type_uri, "urn:bulwark:problem:forbidden");
    }
    let listed: Value = app
        .list_documents(&bob.access_token, "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn read_and_write_shares_grant_exactly_what_they_say() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let reader = app.signed_up("reader@example.com").await;
    let writer = app.signed_up("writer@example.com").await;
    let doc = app.document(&ada, "shared").await;
    let doc_id = id(&doc);
    assert_eq!(
        app.share_document(&ada.access_token, &doc_id, &reader.user_id, "read")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.share_document(&ada.access_token, &doc_id, &writer.user_id, "write")
            .await
            .status(),
        201
    );

    assert_eq!(
        app.get_document(&reader.access_token, &doc_id)
            .await
            .status(),
        200
    );
    let reader_patch = app
        .patch_document(
            &reader.access_token,
            &doc_id,
            Some(1),
            &json!({"title": "r"}),
        )
        .await;
    assert_eq!(reader_patch.status(), 403);
    let writer_patch = app
        .patch_document(
            &writer.access_token,
            &doc_id,
            Some(1),
            &json!({"title": "w", "tags": ["x"]}),
        )
        .await;
    assert_eq!(writer_patch.status(), 200);
    // A writer may not change visibility, share or delete.
    let writer_visibility = app
        .patch_document(
            &writer.access_token,
            &doc_id,
            Some(2),
            &json!({"visibility": "public"}),
        )
        .await;
    assert_eq!(writer_visibility.status(), 403);
    assert_eq!(
        app.delete_document(&writer.access_token, &doc_id)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.share_document(&writer.access_token, &doc_id, &writer.user_id, "write")
            .await
            .status(),
        403
    );

    // Made private, the shares grant nothing.
    let private = app
        .patch_document(
            &ada.access_token,
            &doc_id,
            Some(2),
            &json!({"visibility": "private"}),
        )
        .await;
    assert_eq!(private.status(), 200);
    assert_eq!(
        app.get_document(&reader.access_token, &doc_id)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get_document(&writer.access_token, &doc_id)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.audit_events("document.visibility_changed").await.len(),
        1
    );
    assert_eq!(app.audit_events("document.shared").await.len(), 2);
}

#[tokio::test]
async fn moderators_read_everything_and_change_nothing_admins_manage_everything() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let moderator = app.signed_up("mod@example.com").await;
    let admin = app.signed_up("admin@example.com").await;
    let moderator = app.promote(&moderator, "moderator").await;
    let admin = app.promote(&admin, "admin").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = id(&doc);

    assert_eq!(
        app.get_document(&moderator.access_token, &doc_id)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.patch_document(
            &moderator.access_token,
            &doc_id,
            Some(1),
            &json!({"title": "m"})
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.delete_document(&moderator.access_token, &doc_id)
            .await
            .status(),
        403
    );
    let listed: Value = app
        .list_documents(&moderator.access_token, "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    assert_eq!(
        app.patch_document(
            &admin.access_token,
            &doc_id,
            Some(1),
            &json!({"visibility": "public"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.delete_document(&admin.access_token, &doc_id)
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn a_demoted_moderator_loses_access_on_the_next_request() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let moderator = app.signed_up("mod@example.com").await;
    let moderator = app.promote(&moderator, "moderator").await;
    let doc = app.document(&ada, "private").await;
    assert_eq!(
        app.get_document(&moderator.access_token, &id(&doc))
            .await
            .status(),
        200
    );

    // Demoted behind its back: the same tokens, no new sign-in.
    sqlx::query("update users set role = 'user' where id = $1::uuid")
        .bind(&moderator.user_id)
        .execute(&app.pool)
        .await
        .unwrap();

    let mut refused = false;
    for _ in 0..60 {
        if app
            .get_document(&moderator.access_token, &id(&doc))
            .await
            .status()
            == 404
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the demotion took effect without a new sign-in");
}

#[tokio::test]
async fn mass_assignment_of_owner_id_version_and_id_is_refused() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let doc = app.document(&ada, "private").await;

    for (field, value) in [
        ("owner_id", json!(bob.user_id)),
        ("id", json!(uuid::Uuid::new_v4())),
        ("version", json!(99)),
        ("role", json!("admin")),
    ] {
        let mut create = json!({"title": "t", "body": "b"});
        create[field] = value.clone();
        let problem =
            assert_problem(app.create_document(&ada.access_token, &create).await, 400).await;
        assert_eq!(problem.errors[0].code, "unknown_field", "{field}");
        let patch = json!({field: value});
        let problem = assert_problem(
            app.patch_document(&ada.access_token, &id(&doc), Some(1), &patch)
                .await,
            400,
        )
        .await;
        assert_eq!(problem.errors[0].code, "unknown_field", "{field}");
    }
    let after: Value = app
        .get_document(&ada.access_token, &id(&doc))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["owner_id"], ada.user_id.as_str());
    assert_eq!(after["version"], 1);
}

#[tokio::test]
async fn changes_need_the_current_version() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "private").await;

    let missing = app
        .patch_document(&ada.access_token, &id(&doc), None, &json!({"title": "x"}))
        .await;
    assert_eq!(
        assert_problem(missing, 428).await.type_uri,
        "urn:bulwark:problem:precondition-required"
    );
    let first = app
        .patch_document(
            &ada.access_token,
            &id(&doc),
            Some(1),
            &json!({"title": "one"}),
        )
        .await;
    assert_eq!(first.status(), 200);
    let stale = app
        .patch_document(
            &ada.access_token,
            &id(&doc),
            Some(1),
            &json!({"title": "two"}),
        )
        .await;
    assert_eq!(
        assert_problem(stale, 412).await.type_uri,
        "urn:bulwark:problem:stale-version"
    );
    let garbage = app
        .client
        .patch(app.url(&format!("/api/v1/documents/{}", id(&doc))))
        .bearer_auth(&ada.access_token)
        .header("if-match", "*")
        .json(&json!({"title": "three"}))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 412);
    let now: Value = app
        .get_document(&ada.access_token, &id(&doc))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["title"], "one");
}

#[tokio::test]
async fn stored_xss_comes_back_sanitised() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let payload = r#"<p>ok</p><script>alert(1)</script><img src=x onerror=alert(1)><a href="javascript:alert(1)">x</a><svg onload=alert(1)></svg><iframe src="https://evil.example"></iframe><p style="color:red" onclick="x()">y</p>"#;

    let created: Value = app
        .create_document(
            &ada.access_token,
            &json!({"title": "<b>t</b>", "body": payload}),
        )
        .await
        .json()
        .await
        .unwrap();
    let body = created["body"].as_str().unwrap().to_lowercase();

    for forbidden in [
        "<script",
        "onerror",
        "onload",
        "onclick",
        "javascript:",
        "<iframe",
        "<svg",
        "style=",
    ] {
        assert!(!body.contains(forbidden), "{forbidden} survived in {body}");
    }
    assert!(body.contains("<p>ok</p>"));
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    for n in 0..7 {
        app.create_document(
            &ada.access_token,
            &json!({"title": format!("doc {n}"), "body": ""}),
        )
        .await;
    }

    let mut seen = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let page: Value = app
            .list_documents(&ada.access_token, &query)
            .await
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["title"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 7);
    assert_eq!(sorted.len(), 7);
    assert_eq!(seen[0], "doc 6", "newest first");
}

#[tokio::test]
async fn injection_probes_in_q_tag_cursor_and_limit_never_leak_or_fail() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    app.document(&ada, "private").await;
    app.create_document(
        &bob.access_token,
        &json!({"title": "100% sure_thing", "body": ""}),
    )
    .await;

    let probes = [
        "?q=%27%20OR%201%3D1--",
        "?q=%25",
        "?q=_",
        "?q=%5C",
        "?q=a%00b",
        "?tag=%27%20OR%201%3D1--",
        "?tag=plans%00",
        "?cursor=%27%20OR%201%3D1--",
        "?cursor=c1.1.00000000000000000000000000000000",
        "?limit=0",
        "?limit=101",
        "?limit=-1",
        "?limit=abc",
        "?unknown=1",
    ];
    for probe in probes {
        let response = app.list_documents(&bob.access_token, probe).await;
        let status = response.status().as_u16();
        assert!(status == 200 || status == 400, "{probe}: {status}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("secret plans") && !text.contains("Plans"),
            "{probe} leaked: {text}"
        );
    }
    // Literal matching: `%` and `_` are not wildcards.
    let percent: Value = app
        .list_documents(&bob.access_token, "?q=%25%20sure_")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(percent["items"].as_array().unwrap().len(), 1);
    let underscore_as_wildcard: Value = app
        .list_documents(&bob.access_token, "?q=100_")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(underscore_as_wildcard["items"], json!([]));
}

#[tokio::test]
async fn tags_filter_and_invalid_input_is_listed() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    app.create_document(
        &ada.access_token,
        &json!({"title": "a", "body": "", "tags": ["red"]}),
    )
    .await;
    app.create_document(
        &ada.access_token,
        &json!({"title": "b", "body": "", "tags": ["blue"]}),
    )
    .await;

    let red: Value = app
        .list_documents(&ada.access_token, "?tag=red")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(red["items"].as_array().unwrap().len(), 1);
    assert_eq!(red["items"][0]["title"], "a");

    let bad = app
        .create_document(
            &ada.access_token,
            &json!({"title": "", "body": "x".repeat(101 * 1024), "visibility": "everyone", "tags": ["Bad Tag"]}),
        )
        .await;
    let problem = assert_problem(bad, 400).await;
    let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["title", "body", "visibility", "tags"]);
}

#[tokio::test]
async fn sharing_with_an_unknown_user_or_the_owner_is_a_400_and_unsharing_works() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let doc = app.document(&ada, "shared").await;
    let doc_id = id(&doc);

    let unknown = app
        .share_document(
            &ada.access_token,
            &doc_id,
            &uuid::Uuid::new_v4().to_string(),
            "read",
        )
        .await;
    assert_eq!(
        assert_problem(unknown, 400).await.errors[0].code,
        "unknown_user"
    );
    let owner = app
        .share_document(&ada.access_token, &doc_id, &ada.user_id, "read")
        .await;
    assert_eq!(owner.status(), 400);
    let bad_permission = app
        .share_document(&ada.access_token, &doc_id, &bob.user_id, "owner")
        .await;
    assert_eq!(bad_permission.status(), 400);

    app.share_document(&ada.access_token, &doc_id, &bob.user_id, "read")
        .await;
    assert_eq!(
        app.get_document(&bob.access_token, &doc_id).await.status(),
        200
    );
    assert_eq!(
        app.unshare_document(&ada.access_token, &doc_id, &bob.user_id)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.get_document(&bob.access_token, &doc_id).await.status(),
        404
    );
    assert_eq!(
        app.unshare_document(&ada.access_token, &doc_id, &bob.user_id)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn of_fifty_parallel_creates_at_the_quota_exactly_the_quota_succeeds() {
    let app = TestApp::spawn_with(&[
        ("QUOTA_FREE_DOCUMENTS", "10"),
        ("QUOTA_PRO_DOCUMENTS", "12"),
    ])
    .await;
    let ada = app.signed_up("ada@example.com").await;
    let body = json!({"title": "t", "body": ""});

    let responses = futures_util::future::join_all(
        (0..50).map(|_| app.create_document(&ada.access_token, &body)),
    )
    .await;

    let created = responses.iter().filter(|r| r.status() == 201).count();
    assert_eq!(created, 10);
    for response in responses.into_iter().filter(|r| r.status() != 201) {
        let problem = assert_problem(response, 403).await;
        assert_eq!(problem.type_uri, "urn:bulwark:problem:quota-exceeded");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from documents")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 10);

    // The pro plan allows two more.
    sqlx::query("update users set plan = 'pro' where id = $1::uuid")
        .bind(&ada.user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let more = futures_util::future::join_all(
        (0..5).map(|_| app.create_document(&ada.access_token, &body)),
    )
    .await;
    assert_eq!(more.iter().filter(|r| r.status() == 201).count(), 2);
}

#[tokio::test]
async fn sharing_is_capped_per_user_even_under_concurrency() {
    let app = TestApp::spawn_with(&[("SHARES_PER_HOUR", "3")]).await;
    let ada = app.signed_up("ada@example.com").await;
    let doc = app.document(&ada, "shared").await;
    let doc_id = id(&doc);
    let strangers: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();

    let responses = futures_util::future::join_all(
        strangers
            .iter()
            .map(|user| app.share_document(&ada.access_token, &doc_id, user, "read")),
    )
    .await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s != 429).count(),
        3,
        "{statuses:?}"
    );
    for response in responses.into_iter().filter(|r| r.status() == 429) {
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry_after));
        assert_eq!(
            assert_problem(response, 429).await.type_uri,
            "urn:bulwark:problem:rate-limited"
        );
    }
    // Another user has a cap of its own.
    let bob = app.signed_up("bob@example.com").await;
    let bobs = app.document(&bob, "shared").await;
    assert_eq!(
        app.share_document(&bob.access_token, &id(&bobs), &ada.user_id, "read")
            .await
            .status(),
        201
    );
}
