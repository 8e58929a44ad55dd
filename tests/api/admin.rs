//! `/api/v1/admin`: function-level authorisation, and changes that count from the next request.

use bulwark_web::access::Access;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Account, PASSWORD, TestApp, assert_problem};

impl TestApp {
    pub async fn admin_patch_user(&self, token: &str, id: &str, body: &Value) -> Response {
        self.authed(
            Method::PATCH,
            &format!("/api/v1/admin/users/{id}"),
            token,
            Some(body),
        )
        .await
    }

    /// An administrator (promoted in the database: there is no default account and no other way
    /// to make the first one but `bulwark create-admin`).
    pub async fn admin(&self, email: &str) -> Account {
        let account = self.signed_up(email).await;
        sqlx::query("update users set role = 'admin' where id = $1::uuid")
            .bind(&account.user_id)
            .execute(&self.pool)
            .await
            .unwrap();
        self.signed_in(email, PASSWORD).await
    }
}

fn admin_routes() -> Vec<(String, Method)> {
    let doc = bulwark_app::api::openapi();
    let table = bulwark_transport_rest::access_table(&doc).unwrap();
    table
        .entries()
        .filter(|(_, _, access)| matches!(access, Access::Permission(_)))
        .map(|(p, m, _)| {
            (
                p.replace("{id}", &uuid::Uuid::new_v4().to_string()),
                Method::from_bytes(m.as_str().as_bytes()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn users_and_moderators_get_403_on_every_admin_route_and_it_is_audited() {
    let app = TestApp::spawn().await;
    let user = app.signed_up("user@example.com").await;
    let moderator = app.signed_up("mod@example.com").await;
    let moderator = app.promote(&moderator, "moderator").await;
    let routes = admin_routes();
    assert!(routes.len() >= 3, "{routes:?}");

    for account in [&user, &moderator] {
        for (path, method) in &routes {
            let response = app
                .authed(
                    method.clone(),
                    path,
                    &account.access_token,
                    Some(&json!({})),
                )
                .await;
            let problem = assert_problem(response, 403).await;
            assert_eq!(
                problem.type_uri, "urn:bulwark:problem:forbidden",
                "{method} {path}"
            );
        }
    }
    let denied = app.audit_events("authz.denied").await;
    assert_eq!(denied.len(), routes.len() * 2);
    assert_eq!(denied[0]["outcome"], "denied");
    assert!(denied[0]["detail"]["permission"].is_string());
}

#[tokio::test]
async fn an_admin_lists_and_searches_users_literally() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.com").await;
    app.signed_up("ada@example.com").await;
    app.signed_up("bob_100%@example.com").await;

    let all: Value = app
        .authed(
            Method::GET,
            "/api/v1/admin/users",
            &admin.access_token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert!(all["items"][0].get("password_hash").is_none());
    let percent: Value = app
        .authed(
            Method::GET,
            "/api/v1/admin/users?q=_100%25",
            &admin.access_token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(percent["items"].as_array().unwrap().len(), 1);
    let paged: Value = app
        .authed(
            Method::GET,
            "/api/v1/admin/users?limit=2",
            &admin.access_token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let cursor = paged["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .authed(
            Method::GET,
            &format!("/api/v1/admin/users?limit=2&cursor={cursor}"),
            &admin.access_token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn a_demotion_counts_from_the_very_next_request() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    let moderator = app.signed_up("mod@example.com").await;
    let doc = app.document(&ada, "private").await;
    let doc_id = doc["id"].as_str().unwrap();

    let promoted = app
        .admin_patch_user(
            &admin.access_token,
            &moderator.user_id,
            &json!({"role": "moderator"}),
        )
        .await;
    assert_eq!(promoted.status(), 200);
    assert_eq!(promoted.json::<Value>().await.unwrap()["role"], "moderator");
    // The same token, no new sign-in: the next request already acts as a moderator…
    assert_eq!(
        app.get_document(&moderator.access_token, doc_id)
            .await
            .status(),
        200
    );

    app.admin_patch_user(
        &admin.access_token,
        &moderator.user_id,
        &json!({"role": "user"}),
    )
    .await;
    // …and, demoted, the next request no longer does.
    assert_eq!(
        app.get_document(&moderator.access_token, doc_id)
            .await
            .status(),
        404
    );
    let changes = app.audit_events("account.role_changed").await;
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1]["detail"]["from"], "moderator");
    assert_eq!(changes[1]["detail"]["to"], "user");
    assert_eq!(changes[1]["actor_user_id"], admin.user_id.as_str());
}

#[tokio::test]
async fn a_lock_ends_every_session_at_once_and_an_unlock_allows_sign_in_again() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.com").await;
    let ada = app.signed_up("ada@example.com").await;

    let locked = app
        .admin_patch_user(&admin.access_token, &ada.user_id, &json!({"locked": true}))
        .await;
    assert_eq!(locked.status(), 200);
    assert_eq!(locked.json::<Value>().await.unwrap()["locked"], true);
    assert_eq!(app.get_me(&ada.access_token).await.status(), 401);
    assert_eq!(app.refresh(&ada.refresh_token).await.status(), 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 401);

    app.admin_patch_user(&admin.access_token, &ada.user_id, &json!({"locked": false}))
        .await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    let locks = app.audit_events("account.locked").await;
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0]["actor_user_id"], admin.user_id.as_str());
    assert_eq!(app.audit_events("account.unlocked").await.len(), 1);
}

#[tokio::test]
async fn plans_change_and_bad_values_self_changes_and_unknown_fields_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.com").await;
    let ada = app.signed_up("ada@example.com").await;

    let pro = app
        .admin_patch_user(&admin.access_token, &ada.user_id, &json!({"plan": "pro"}))
        .await;
    assert_eq!(pro.json::<Value>().await.unwrap()["plan"], "pro");
    assert_eq!(app.audit_events("account.plan_changed").await.len(), 1);

    for body in [
        json!({"role": "root"}),
        json!({"plan": "enterprise"}),
        json!({"email": "x@example.com"}),
        json!({"id": uuid::Uuid::new_v4()}),
    ] {
        let response = app
            .admin_patch_user(&admin.access_token, &ada.user_id, &body)
            .await;
        assert_problem(response, 400).await;
    }
    for body in [json!({"role": "user"}), json!({"locked": true})] {
        let response = app
            .admin_patch_user(&admin.access_token, &admin.user_id, &body)
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem.errors[0].code, "self_change");
    }
    let missing = app
        .admin_patch_user(
            &admin.access_token,
            &uuid::Uuid::new_v4().to_string(),
            &json!({"plan": "pro"}),
        )
        .await;
    assert_problem(missing, 404).await;
    assert_eq!(
        app.get_me(&admin.access_token).await.status(),
        200,
        "still an admin"
    );
}

#[tokio::test]
async fn the_audit_trail_is_readable_by_admins_with_filters_and_pages() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    app.login("ada@example.com", "Wrong-Horse-Battery-9-Staple")
        .await;

    let failed: Value = app
        .authed(
            Method::GET,
            "/api/v1/admin/audit-events?type=auth.login_failed",
            &admin.access_token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["type"], "auth.login_failed");
    assert_eq!(items[0]["detail"]["reason"], "wrong_password");

    let about_ada: Value = app
        .authed(
            Method::GET,
            &format!("/api/v1/admin/audit-events?user_id={}&limit=1", ada.user_id),
            &admin.access_token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(about_ada["items"].as_array().unwrap().len(), 1);
    assert!(about_ada["next_cursor"].is_string());

    for bad in [
        "?type=DROP%20TABLE",
        "?limit=1000",
        "?cursor=%27%20OR%201%3D1--",
        "?user_id=nope",
    ] {
        let response = app
            .authed(
                Method::GET,
                &format!("/api/v1/admin/audit-events{bad}"),
                &admin.access_token,
                None,
            )
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}
