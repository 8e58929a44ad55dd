//! `/api/v1/auth/api-keys`: keys shown once and stored as digests; usable within their scopes and
//! nowhere else; never on credential, session, MFA, password or admin routes; dead the moment they
//! are revoked, expire, or their owner is locked; created only with a recent sign-in or the
//! password; capped per plan.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Account, PASSWORD, TestApp, assert_problem};

impl TestApp {
    pub async fn create_api_key(&self, token: &str, body: &Value) -> Response {
        self.authed(Method::POST, "/api/v1/auth/api-keys", token, Some(body))
            .await
    }

    pub async fn list_api_keys(&self, token: &str) -> Response {
        self.authed(Method::GET, "/api/v1/auth/api-keys", token, None)
            .await
    }

    pub async fn revoke_api_key(&self, token: &str, id: &str) -> Response {
        self.authed(
            Method::DELETE,
            &format!("/api/v1/auth/api-keys/{id}"),
            token,
            None,
        )
        .await
    }

    /// Creates a key with these scopes (expects success); returns `{id, key, prefix, …}`.
    pub async fn api_key(&self, owner: &Account, scopes: &[&str]) -> Value {
        let response = self
            .create_api_key(
                &owner.access_token,
                &json!({"name": "test key", "scopes": scopes}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }
}

fn key_of(created: &Value) -> String {
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_key_is_shown_once_and_stored_only_as_a_digest() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;

    let created = app
        .api_key(&ada, &["documents:read", "webhooks:read"])
        .await;
    let key = key_of(&created);
    let prefix = created["prefix"].as_str().unwrap();
    assert!(key.starts_with(&format!("bwk_{prefix}_")), "{key}");
    assert_eq!(key.len(), 4 + 12 + 1 + 43);
    assert_eq!(
        created["scopes"],
        json!(["documents:read", "webhooks:read"])
    );
    assert!(created["expires_at"].is_null());

    let list: Value = app
        .list_api_keys(&ada.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("key").is_none());
    assert_eq!(list["items"][0]["prefix"], prefix);

    let stored: Vec<u8> = sqlx::query_scalar("select secret_digest from api_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    let row: String = sqlx::query_scalar("select row_to_json(k)::text from api_keys k")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!row.contains(&key[17..]), "the secret is stored: {row}");
    assert_eq!(app.audit_events("api_key.created").await.len(), 1);
}

#[tokio::test]
async fn a_key_works_within_its_scopes_and_is_refused_everywhere_else() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let reader = key_of(&app.api_key(&ada, &["documents:read"]).await);

    // Within its scope: it acts as Ada.
    let listed: Value = app
        .authed(Method::GET, "/api/v1/documents", &reader, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], document["id"]);
    let read = app.get_document(&reader, id).await;
    assert_eq!(read.status(), 200);
    // Its use is recorded (to the minute).
    let listed_keys: Value = app
        .list_api_keys(&ada.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert!(!listed_keys["items"][0]["last_used_at"].is_null());

    // Outside it: 403 forbidden, and nothing changed.
    let write = app
        .patch_document(&reader, id, Some(1), &json!({"title": "by key"}))
        .await;
    let problem = assert_problem(write, 403).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:forbidden");
    assert_problem(
        app.create_document(&reader, &json!({"title": "t", "body": "b"}))
            .await,
        403,
    )
    .await;
    assert_problem(
        app.authed(Method::GET, "/api/v1/webhooks", &reader, None)
            .await,
        403,
    )
    .await;

    // Never on credential, session, account or admin routes, whatever its scopes.
    let everything = key_of(
        &app.api_key(
            &ada,
            &[
                "documents:read",
                "documents:write",
                "webhooks:read",
                "webhooks:write",
            ],
        )
        .await,
    );
    for (method, path, body) in [
        (Method::GET, "/api/v1/auth/api-keys", None),
        (
            Method::POST,
            "/api/v1/auth/api-keys",
            Some(json!({"name": "escalate", "scopes": ["documents:write"], "password": PASSWORD})),
        ),
        (Method::GET, "/api/v1/auth/sessions", None),
        (Method::POST, "/api/v1/auth/logout-all", None),
        (Method::GET, "/api/v1/users/me", None),
        (
            Method::PATCH,
            "/api/v1/users/me",
            Some(json!({"display_name": "Key"})),
        ),
        (
            Method::POST,
            "/api/v1/users/me/password",
            Some(
                json!({"current_password": PASSWORD, "new_password": "Another-Long-Passphrase-42"}),
            ),
        ),
        (
            Method::DELETE,
            "/api/v1/users/me",
            Some(json!({"password": PASSWORD})),
        ),
    ] {
        let response = app
            .authed(method.clone(), path, &everything, body.as_ref())
            .await;
        let problem = assert_problem(response, 403).await;
        assert_eq!(
            problem.type_uri, "urn:bulwark:problem:session-required",
            "{method} {path}"
        );
    }
    // The account is intact, and there are still exactly the two keys.
    assert_eq!(app.get_me(&ada.access_token).await.status(), 200);
    assert_eq!(
        app.signed_in("ada@example.com", PASSWORD).await.email,
        ada.email
    );
    let keys: i64 = sqlx::query_scalar("select count(*) from api_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 2);
    assert!(!app.audit_events("authz.denied").await.is_empty());
}

#[tokio::test]
async fn an_administrators_key_never_reaches_the_admin_api() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let key = key_of(
        &app.api_key(&root, &["documents:read", "documents:write"])
            .await,
    );
    for (method, path) in [
        (Method::GET, "/api/v1/admin/users"),
        (Method::GET, "/api/v1/admin/audit-events"),
    ] {
        let problem = assert_problem(app.authed(method, path, &key, None).await, 403).await;
        assert_eq!(problem.type_uri, "urn:bulwark:problem:session-required");
    }
    let promote = app
        .admin_patch_user(&key, &root.user_id, &json!({"role": "user"}))
        .await;
    assert_problem(promote, 403).await;
}

#[tokio::test]
async fn a_revoked_expired_or_forged_key_is_a_401() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let revoked = app.api_key(&ada, &["documents:read"]).await;
    let expired = app.api_key(&ada, &["documents:read"]).await;
    let live = key_of(&app.api_key(&ada, &["documents:read"]).await);

    assert_eq!(
        app.revoke_api_key(&ada.access_token, revoked["id"].as_str().unwrap())
            .await
            .status(),
        204
    );
    sqlx::query(
        "update api_keys set created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' where id = $1::uuid",
    )
    .bind(expired["id"].as_str().unwrap())
    .execute(&app.pool)
    .await
    .unwrap();
    let mut forged = live.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });

    for key in [
        key_of(&revoked),
        key_of(&expired),
        forged,
        "bwk_aaaaaaaaaaaa_".to_owned() + &"A".repeat(43),
        "bwk_not-a-key".to_owned(),
    ] {
        let response = app
            .authed(Method::GET, "/api/v1/documents", &key, None)
            .await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_problem(response, 401).await;
    }
    let ok = app
        .authed(Method::GET, "/api/v1/documents", &live, None)
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.audit_events("api_key.revoked").await.len(), 1);
}

#[tokio::test]
async fn locking_the_owner_stops_the_key_at_once() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let root = app.admin("root@example.com").await;
    let key = key_of(&app.api_key(&ada, &["documents:read"]).await);
    assert_eq!(
        app.authed(Method::GET, "/api/v1/documents", &key, None)
            .await
            .status(),
        200
    );

    let locked = app
        .admin_patch_user(&root.access_token, &ada.user_id, &json!({"locked": true}))
        .await;
    assert_eq!(locked.status(), 200);
    assert_problem(
        app.authed(Method::GET, "/api/v1/documents", &key, None)
            .await,
        401,
    )
    .await;
}

#[tokio::test]
async fn creating_a_key_needs_a_recent_sign_in_or_the_password() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    // A fresh session whose sign-in is made eleven minutes old before it is ever used (the
    // liveness cache has not seen it).
    let pair: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let stale = pair["access_token"].as_str().unwrap();
    sqlx::query(
        "update sessions set created_at = created_at - interval '11 minutes' where user_id = $1::uuid",
    )
    .bind(&ada.user_id)
    .execute(&app.pool)
    .await
    .unwrap();

    let body = json!({"name": "ci", "scopes": ["documents:read"]});
    let problem = assert_problem(app.create_api_key(stale, &body).await, 403).await;
    assert_eq!(
        problem.type_uri,
        "urn:bulwark:problem:reauthentication-required"
    );
    let wrong =
        json!({"name": "ci", "scopes": ["documents:read"], "password": "Wrong-Password-123!"});
    let problem = assert_problem(app.create_api_key(stale, &wrong).await, 400).await;
    assert_eq!(problem.errors[0].field, "password");
    let right = json!({"name": "ci", "scopes": ["documents:read"], "password": PASSWORD});
    assert_eq!(app.create_api_key(stale, &right).await.status(), 201);
    let keys: i64 = sqlx::query_scalar("select count(*) from api_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 1);
}

#[tokio::test]
async fn the_number_of_keys_is_capped_by_plan() {
    let app = TestApp::spawn_with(&[("QUOTA_FREE_API_KEYS", "2")]).await;
    let ada = app.signed_up("ada@example.com").await;
    app.api_key(&ada, &["documents:read"]).await;
    app.api_key(&ada, &["documents:read"]).await;
    let problem = assert_problem(
        app.create_api_key(
            &ada.access_token,
            &json!({"name": "third", "scopes": ["documents:read"]}),
        )
        .await,
        403,
    )
    .await;
    assert!(problem.type_uri.ends_with("quota-exceeded"));
}

#[tokio::test]
async fn invalid_key_requests_are_refused_with_every_field_named() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;

    let problem = assert_problem(
        app.create_api_key(
            &ada.access_token,
            &json!({"name": " ", "scopes": [], "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await,
        400,
    )
    .await;
    let mut fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["expires_at", "name", "scopes"]);

    for body in [
        json!({"name": "k", "scopes": ["users:manage"]}),
        json!({"name": "k", "scopes": ["documents:read", "documents:read"]}),
        json!({"name": "k", "scopes": ["documents:read"], "expires_at": "tomorrow"}),
        json!({"name": "k", "scopes": ["documents:read"], "owner_id": ada.user_id}),
        json!({"name": "k", "scopes": ["documents:read"], "prefix": "aaaaaaaaaaaa"}),
    ] {
        assert_problem(app.create_api_key(&ada.access_token, &body).await, 400).await;
    }
    let keys: i64 = sqlx::query_scalar("select count(*) from api_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0);
}
