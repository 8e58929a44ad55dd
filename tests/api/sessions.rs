//! Refresh-token rotation and reuse detection, immediate revocation, and session control.

use std::time::{Duration, Instant};

use bulwark_domain::context::Origin;
use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_problem};

async fn pair(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    let (access, next) = pair(app.refresh(&account.refresh_token).await).await;

    assert_ne!(next, account.refresh_token);
    assert_eq!(app.get_me(&access).await.status(), 200);
    // The old one is dead; the new one works once.
    let (_, after) = pair(app.refresh(&next).await).await;
    assert_ne!(after, next);
}

#[tokio::test]
async fn replaying_a_rotated_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let (newer_access, newer_refresh) = pair(app.refresh(&account.refresh_token).await).await;

    let replay = app.refresh(&account.refresh_token).await;

    let problem = assert_problem(replay, 401).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:invalid-token");
    assert_eq!(
        app.refresh(&newer_refresh).await.status(),
        401,
        "the newer token died too"
    );
    assert_eq!(
        app.get_me(&newer_access).await.status(),
        401,
        "and its access token"
    );
    let reuse = app.audit_events("auth.refresh_reuse").await;
    assert_eq!(reuse.len(), 1);
    assert!(!reuse[0].to_string().contains(&account.refresh_token));
}

#[tokio::test]
async fn of_ten_parallel_refreshes_exactly_one_succeeds() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    let responses = join_all((0..10).map(|_| app.refresh(&account.refresh_token))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn garbage_refresh_tokens_are_refused_without_a_5xx() {
    let app = TestApp::spawn().await;

    for token in [
        "",
        "bwrt_",
        "bwrt_short",
        "' or 1=1 --",
        &"bwrt_".repeat(1000),
    ] {
        let response = app.refresh(token).await;
        assert_eq!(response.status(), 401, "{token}");
    }
}

#[tokio::test]
async fn after_logout_the_old_access_token_is_refused_on_the_next_request() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    assert_eq!(app.get_me(&account.access_token).await.status(), 200);

    let logout = app.logout(&account.refresh_token).await;

    assert_eq!(logout.status(), 204);
    assert_eq!(app.get_me(&account.access_token).await.status(), 401);
    assert_eq!(app.refresh(&account.refresh_token).await.status(), 401);
    // Logging out again answers the same.
    assert_eq!(app.logout(&account.refresh_token).await.status(), 204);
    assert_eq!(app.audit_events("auth.logout").await.len(), 1);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_caller_only() {
    let app = TestApp::spawn().await;
    let first = app.signed_up("ada@example.com").await;
    let second = app.signed_in("ada@example.com", PASSWORD).await;
    let stranger = app.signed_up("bob@example.com").await;

    let response = app.logout_all(&first.access_token).await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.get_me(&first.access_token).await.status(), 401);
    assert_eq!(app.get_me(&second.access_token).await.status(), 401);
    assert_eq!(app.refresh(&second.refresh_token).await.status(), 401);
    assert_eq!(app.get_me(&stranger.access_token).await.status(), 200);
    assert_eq!(app.audit_events("auth.logout_all").await.len(), 1);
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = TestApp::spawn().await;
    let first = app.signed_up("ada@example.com").await;
    let second = app.signed_in("ada@example.com", PASSWORD).await;
    app.signed_up("bob@example.com").await;

    let response = app.list_sessions(&second.access_token).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "only the caller's sessions");
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    for item in items {
        for field in [
            "id",
            "created_at",
            "last_used_at",
            "ip",
            "user_agent",
            "current",
        ] {
            assert!(item.get(field).is_some(), "{field}");
        }
    }
    drop(first);
}

#[tokio::test]
async fn revoking_one_session_ends_it_and_only_it() {
    let app = TestApp::spawn().await;
    let first = app.signed_up("ada@example.com").await;
    let second = app.signed_in("ada@example.com", PASSWORD).await;
    let sessions: Value = app
        .list_sessions(&second.access_token)
        .await
        .json()
        .await
        .unwrap();
    let other = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app.revoke_session(&second.access_token, &other).await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.get_me(&first.access_token).await.status(), 401);
    assert_eq!(app.get_me(&second.access_token).await.status(), 200);
    assert_eq!(app.audit_events("auth.session_revoked").await.len(), 1);
}

#[tokio::test]
async fn another_users_session_id_answers_404_like_a_missing_one() {
    let app = TestApp::spawn().await;
    let victim = app.signed_up("ada@example.com").await;
    let attacker = app.signed_up("bob@example.com").await;
    let victim_sessions: Value = app
        .list_sessions(&victim.access_token)
        .await
        .json()
        .await
        .unwrap();
    let victim_session = victim_sessions["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let foreign = app
        .revoke_session(&attacker.access_token, &victim_session)
        .await;
    let missing = app
        .revoke_session(&attacker.access_token, &uuid::Uuid::new_v4().to_string())
        .await;
    let malformed = app
        .revoke_session(&attacker.access_token, "not-a-uuid")
        .await;

    let foreign = assert_problem(foreign, 404).await;
    let missing = assert_problem(missing, 404).await;
    assert_eq!(foreign.detail, missing.detail);
    assert_eq!(malformed.status(), 404);
    assert_eq!(
        app.get_me(&victim.access_token).await.status(),
        200,
        "untouched"
    );
}

#[tokio::test]
async fn an_administrative_lock_on_another_instance_refuses_the_old_token_within_a_second() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    // Warm this instance's liveness cache: the lock must get through it.
    assert_eq!(app.get_me(&account.access_token).await.status(), 200);
    assert_eq!(app.get_me(&account.access_token).await.status(), 200);

    let other = app.other_instance();
    let user_id = account.user_id.parse().unwrap();
    other
        .accounts()
        .set_locked(None, &Origin::default(), user_id, true)
        .await
        .unwrap();

    // The other instance revoked the sessions; the NOTIFY reaches this one's cache.
    let started = Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(3) {
        if app.get_me(&account.access_token).await.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "the locked account's token is refused");
    assert_eq!(app.refresh(&account.refresh_token).await.status(), 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 401);
    assert_eq!(app.audit_events("account.locked").await.len(), 1);
}
