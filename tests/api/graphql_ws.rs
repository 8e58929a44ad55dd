//! `GET /graphql/ws`: GraphQL subscriptions over `graphql-transport-ws`, end to end (every rule of
//! the protocol is unit-tested in `crates/transport-graphql/src/subscriptions/tests.rs`). The
//! attacks: a foreign page's Origin, no or a forged token, subscribing before authenticating,
//! another user's document (BOLA), access lost while subscribed, a session ended while the socket
//! is open, queries and mutations smuggled over the socket, oversized frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{Account, TestApp};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CHANGED: &str =
    "subscription($id: ID!) { documentChanged(id: $id) { documentId kind version } }";
const MINE: &str = "subscription { myNotifications { documentId kind version reason } }";

async fn connect(
    base: &str,
    origin: Option<&str>,
    protocol: bool,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/graphql/ws", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    if protocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

fn base(app: &TestApp) -> String {
    app.url("")
}

/// A socket past `connection_ack`.
async fn acknowledged(base: &str, token: &str) -> Socket {
    let mut socket = connect(base, None, true).await.unwrap();
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(next(&mut socket).await, json!({"type": "connection_ack"}));
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

async fn start(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    send(
        socket,
        json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
}

/// The next JSON text message within `wait` (None if none came).
async fn next_within(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Close(close))) => panic!("closed: {close:?}"),
                Some(Ok(_)) => {}
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await
    .ok()
}

async fn next(socket: &mut Socket) -> Value {
    next_within(socket, Duration::from_secs(10))
        .await
        .expect("a message in time")
}

/// The close code the server ends with.
async fn closed_with(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
            Ok(Some(Ok(Message::Close(close)))) => return close.map(|c| c.code),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// Changes the document through REST until `socket` receives a message (the fan-out listener
/// connects asynchronously), and returns that message.
async fn change_until_heard(
    app: &TestApp,
    owner: &Account,
    id: &str,
    socket: &mut Socket,
) -> Value {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let current: Value = app
                .authed(
                    reqwest::Method::GET,
                    &format!("/api/v1/documents/{id}"),
                    &owner.access_token,
                    None,
                )
                .await
                .json()
                .await
                .unwrap();
            let version = current["version"].as_i64().unwrap();
            let response = app
                .patch_document(
                    &owner.access_token,
                    id,
                    Some(version),
                    &json!({"title": "Changed"}),
                )
                .await;
            assert_eq!(response.status(), 200);
            if let Some(message) = next_within(socket, Duration::from_millis(500)).await {
                return message;
            }
        }
    })
    .await
    .expect("an event arrived")
}

/// Nothing but pings for `wait`.
async fn silent_for(socket: &mut Socket, wait: Duration) {
    if let Some(message) = next_within(socket, wait).await {
        panic!("received: {message}");
    }
}

#[tokio::test]
async fn the_upgrade_checks_the_origin_and_the_subprotocol() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let base = base(&app);
    match connect(&base, Some("https://evil.example"), true).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("the upgrade was not refused: {:?}", other.map(|_| ())),
    }
    match connect(&base, None, false).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!(
            "an upgrade without the subprotocol: {:?}",
            other.map(|_| ())
        ),
    }
    assert!(
        connect(&base, Some("https://app.example"), true)
            .await
            .is_ok()
    );
    assert!(connect(&base, None, true).await.is_ok());
}

#[tokio::test]
async fn connection_init_decides_who_is_connected() {
    let app = TestApp::spawn().await;
    let base = base(&app);
    let ada = app.signed_up("ada@example.com").await;

    // No token, a forged one, a token where the contract does not look for it: 4403.
    for init in [
        json!({"type": "connection_init"}),
        json!({"type": "connection_init", "payload": {"authorization": "Bearer forged"}}),
        json!({"type": "connection_init", "payload": {"authorization": ada.access_token}}),
    ] {
        let mut socket = connect(&base, None, true).await.unwrap();
        send(&mut socket, init.clone()).await;
        assert_eq!(
            closed_with(&mut socket).await,
            Some(CloseCode::from(4403)),
            "{init}"
        );
    }

    // Subscribing before the acknowledgement: 4401, and nothing runs.
    let mut socket = connect(&base, None, true).await.unwrap();
    start(&mut socket, "1", MINE, json!({})).await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::from(4401)));

    // A second connection_init: 4429.
    let mut socket = acknowledged(&base, &ada.access_token).await;
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", ada.access_token)}}),
    )
    .await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::from(4429)));

    // A frame over 64 KiB: 1009.
    let mut socket = acknowledged(&base, &ada.access_token).await;
    let huge = "x".repeat(70 * 1024);
    start(&mut socket, "1", &huge, json!({})).await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::Size));
}

#[tokio::test]
async fn no_connection_init_within_ten_seconds_closes_with_4408() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&base(&app), None, true).await.unwrap();
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::from(4408)));
}

#[tokio::test]
async fn a_subscriber_hears_changes_of_its_document_with_ids_only() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let mut socket = acknowledged(&base(&app), &ada.access_token).await;
    start(&mut socket, "changes", CHANGED, json!({"id": id})).await;

    let event = change_until_heard(&app, &ada, id, &mut socket).await;
    assert_eq!(event["id"], "changes");
    assert_eq!(event["type"], "next");
    let changed = &event["payload"]["data"]["documentChanged"];
    assert_eq!(changed["documentId"], id);
    assert_eq!(changed["kind"], "UPDATED");
    assert!(changed["version"].as_i64().unwrap() >= 2);
    assert!(!event.to_string().contains("secret plans"), "{event}");

    // The owner hears of the deletion too.
    assert_eq!(
        app.delete_document(&ada.access_token, id).await.status(),
        204
    );
    let mut deleted = next(&mut socket).await;
    while deleted["payload"]["data"]["documentChanged"]["kind"] == "UPDATED" {
        deleted = next(&mut socket).await;
    }
    assert_eq!(
        deleted["payload"]["data"]["documentChanged"]["kind"],
        "DELETED"
    );

    // Reusing the id of a running operation: 4409.
    start(&mut socket, "changes", MINE, json!({})).await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::from(4409)));
}

#[tokio::test]
async fn queries_and_mutations_do_not_run_over_the_socket() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let mut socket = acknowledged(&base(&app), &ada.access_token).await;

    start(&mut socket, "q", "{ me { id } }", json!({})).await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["id"], "q");
    assert_eq!(refused["type"], "error");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    // Nothing in the query is to blame: no (0-based, hence invalid) location.
    assert!(
        refused["payload"][0].get("locations").is_none(),
        "{refused}"
    );

    start(
        &mut socket,
        "m",
        "mutation { createDocument(input: {title: \"t\", body: \"b\"}) { id } }",
        json!({}),
    )
    .await;
    let refused = next(&mut socket).await;
    assert_eq!(
        (refused["id"].as_str(), refused["type"].as_str()),
        (Some("m"), Some("error"))
    );
    let documents: i64 = sqlx::query_scalar("select count(*) from documents")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(documents, 0, "the mutation ran");

    // The armour applies as over HTTP: 100 aliases are refused before anything runs.
    let aliases: String = (0..100)
        .map(|i| format!("a{i}: myNotifications {{ kind }} "))
        .collect();
    start(
        &mut socket,
        "a",
        &format!("subscription {{ {aliases} }}"),
        json!({}),
    )
    .await;
    let refused = next(&mut socket).await;
    assert_eq!(
        (refused["id"].as_str(), refused["type"].as_str()),
        (Some("a"), Some("error"))
    );

    // And a subscription is refused over POST /graphql.
    let body = app.graphql(&ada, MINE, json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
}

#[tokio::test]
async fn another_users_document_is_not_found_and_its_events_never_arrive() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let private = app.document(&ada, "private").await;
    let id = private["id"].as_str().unwrap();
    let mut socket = acknowledged(&base(&app), &bob.access_token).await;

    start(&mut socket, "spy", CHANGED, json!({"id": id})).await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["id"], "spy");
    assert_eq!(refused["type"], "next");
    assert_eq!(refused["payload"]["data"], Value::Null);
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "NOT_FOUND"
    );
    assert_eq!(
        next(&mut socket).await,
        json!({"id": "spy", "type": "complete"})
    );
    assert!(!app.audit_events("document.access_denied").await.is_empty());

    // Ada's socket proves the fan-out is live before Bob's silence is measured.
    let mut ada_socket = acknowledged(&base(&app), &ada.access_token).await;
    start(&mut ada_socket, "1", CHANGED, json!({"id": id})).await;
    change_until_heard(&app, &ada, id, &mut ada_socket).await;
    silent_for(&mut socket, Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn losing_access_stops_the_events_without_a_word() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let shared = app.document(&ada, "shared").await;
    let id = shared["id"].as_str().unwrap();
    let response = app
        .share_document(&ada.access_token, id, &bob.user_id, "read")
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let mut socket = acknowledged(&base(&app), &bob.access_token).await;
    start(&mut socket, "1", CHANGED, json!({"id": id})).await;
    let heard = change_until_heard(&app, &ada, id, &mut socket).await;
    assert_eq!(
        heard["payload"]["data"]["documentChanged"]["kind"],
        "UPDATED"
    );

    let response = app
        .unshare_document(&ada.access_token, id, &bob.user_id)
        .await;
    assert_eq!(response.status(), 204);
    // Drain what was already on its way, then change it again: nothing reaches Bob.
    while next_within(&mut socket, Duration::from_millis(300))
        .await
        .is_some()
    {}
    for _ in 0..3 {
        let now: Value = app
            .authed(
                reqwest::Method::GET,
                &format!("/api/v1/documents/{id}"),
                &ada.access_token,
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        let response = app
            .patch_document(
                &ada.access_token,
                id,
                now["version"].as_i64(),
                &json!({"title": "Private now"}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    silent_for(&mut socket, Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn my_notifications_reach_the_owner_and_whom_a_document_is_shared_with() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let carol = app.signed_up("carol@example.com").await;
    let document = app.document(&ada, "shared").await;
    let id = document["id"].as_str().unwrap();
    let base = base(&app);
    let mut sockets = Vec::new();
    for account in [&ada, &bob, &carol] {
        let mut socket = acknowledged(&base, &account.access_token).await;
        start(&mut socket, "mine", MINE, json!({})).await;
        sockets.push(socket);
    }
    let [mut ada_socket, mut bob_socket, mut carol_socket] = sockets.try_into().ok().unwrap();

    // Share (again and again: the permission flips) until Bob hears of it.
    let heard = tokio::time::timeout(Duration::from_secs(15), async {
        for permission in ["read", "write"].iter().cycle() {
            let response = app
                .share_document(&ada.access_token, id, &bob.user_id, permission)
                .await;
            assert!(response.status().is_success());
            if let Some(message) = next_within(&mut bob_socket, Duration::from_millis(500)).await {
                return message;
            }
        }
        unreachable!()
    })
    .await
    .expect("Bob heard of the share");
    let notification = &heard["payload"]["data"]["myNotifications"];
    assert_eq!(notification["documentId"], id);
    assert_eq!(notification["kind"], "SHARED");
    assert_eq!(notification["reason"], "SHARED_WITH_YOU");

    let owner = next(&mut ada_socket).await;
    assert_eq!(
        owner["payload"]["data"]["myNotifications"]["reason"],
        "OWNER"
    );

    // A new document of Ada's: Ada hears of it, nobody else.
    while next_within(&mut ada_socket, Duration::from_millis(300))
        .await
        .is_some()
    {}
    while next_within(&mut bob_socket, Duration::from_millis(300))
        .await
        .is_some()
    {}
    let created = app.document(&ada, "public").await;
    let heard = next(&mut ada_socket).await;
    let notification = &heard["payload"]["data"]["myNotifications"];
    assert_eq!(notification["kind"], "CREATED");
    assert_eq!(notification["documentId"], created["id"]);
    assert_eq!(notification["version"], 1);
    silent_for(&mut bob_socket, Duration::from_millis(1000)).await;
    silent_for(&mut carol_socket, Duration::from_millis(1000)).await;
}

#[tokio::test]
async fn logging_out_closes_the_subscription_socket_with_4403() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let other = app
        .signed_in("ada@example.com", crate::helpers::PASSWORD)
        .await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let mut socket = acknowledged(&base(&app), &ada.access_token).await;
    start(&mut socket, "1", CHANGED, json!({"id": id})).await;

    assert_eq!(app.logout(&ada.refresh_token).await.status(), 204);
    let code = tokio::time::timeout(Duration::from_secs(15), async {
        let mut version = 1;
        loop {
            let response = app
                .patch_document(
                    &other.access_token,
                    id,
                    Some(version),
                    &json!({"title": "After"}),
                )
                .await;
            assert_eq!(response.status(), 200);
            version += 1;
            match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
                Ok(Some(Ok(Message::Close(close)))) => return close.map(|c| c.code),
                Ok(Some(Ok(Message::Text(text)))) => panic!("delivered after logout: {text}"),
                Ok(None | Some(Err(_))) => return None,
                _ => {}
            }
        }
    })
    .await
    .expect("the socket closed");
    assert_eq!(code, Some(CloseCode::from(4403)));
}

/// A socket fixed its actor when it authenticated: a moderator demoted while subscribed to a
/// document only moderators may read is closed at the next event, never told of it.
#[tokio::test]
async fn a_changed_role_ends_the_socket() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let mallory = app.signed_up("mallory@example.com").await;
    let mallory = app.promote(&mallory, "moderator").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let mut socket = acknowledged(&base(&app), &mallory.access_token).await;
    start(&mut socket, "1", CHANGED, json!({"id": id})).await;
    let heard = change_until_heard(&app, &ada, id, &mut socket).await;
    assert_eq!(heard["type"], "next", "a moderator reads every document");

    sqlx::query("update users set role = 'user' where id = $1::uuid")
        .bind(&mallory.user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let code = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let now: Value = app
                .authed(
                    reqwest::Method::GET,
                    &format!("/api/v1/documents/{id}"),
                    &ada.access_token,
                    None,
                )
                .await
                .json()
                .await
                .unwrap();
            let response = app
                .patch_document(
                    &ada.access_token,
                    id,
                    now["version"].as_i64(),
                    &json!({"title": "Demoted"}),
                )
                .await;
            assert_eq!(response.status(), 200);
            match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
                Ok(Some(Ok(Message::Close(close)))) => return close.map(|c| c.code),
                Ok(Some(Ok(Message::Text(text)))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    assert_ne!(
                        message["payload"]["data"]["documentChanged"]["version"],
                        now["version"].as_i64().unwrap() + 1,
                        "told of a change after the demotion"
                    );
                }
                Ok(None | Some(Err(_))) => return None,
                _ => {}
            }
        }
    })
    .await
    .expect("the socket closed");
    assert_eq!(code, Some(CloseCode::from(4403)));
}

/// Two instances on one database: a change made through the first reaches a GraphQL subscriber
/// of the second.
#[tokio::test]
async fn an_update_through_one_instance_reaches_a_subscriber_of_another() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let second = app.second_instance().await;
    let token = app.access_token_at(&second, "ada@example.com").await;
    let mut socket = acknowledged(&second, &token).await;
    start(&mut socket, "1", CHANGED, json!({"id": id})).await;

    let event = change_until_heard(&app, &ada, id, &mut socket).await;
    assert_eq!(
        event["payload"]["data"]["documentChanged"]["documentId"],
        id
    );
}

/// With `REDIS_URL` set, the notifications travel through Redis pub/sub instead: two instances
/// on one channel hear each other, and what arrives on the channel reaches the subscriber (and
/// only through the policy: the subscriber still had to be allowed to subscribe).
#[tokio::test]
async fn with_redis_configured_the_events_cross_instances_through_redis() {
    let channel = format!("bulwark-test:{}", uuid::Uuid::new_v4());
    let redis = [
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_FANOUT_CHANNEL", channel.as_str()),
        ("REDIS_KEY_PREFIX", channel.as_str()),
    ];
    let app = TestApp::spawn_with(&redis).await;
    let ada = app.signed_up("ada@example.com").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let second = app.second_instance_with(&redis).await;
    let token = app.access_token_at(&second, "ada@example.com").await;
    let mut socket = acknowledged(&second, &token).await;
    start(&mut socket, "1", CHANGED, json!({"id": id})).await;

    let event = change_until_heard(&app, &ada, id, &mut socket).await;
    assert_eq!(
        event["payload"]["data"]["documentChanged"]["documentId"],
        id
    );

    // The channel is Redis's: a message published there by hand arrives too.
    let payload = json!({
        "topic": format!("document:{id}"),
        "event": "document.updated",
        "owner_id": ada.user_id,
        "version": 99,
    });
    let published = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "6379",
            "publish",
            &channel,
            &payload.to_string(),
        ])
        .output()
        .expect("redis-cli runs");
    assert!(published.status.success());
    let mut heard = next(&mut socket).await;
    while heard["payload"]["data"]["documentChanged"]["version"] != 99 {
        heard = next(&mut socket).await;
    }
    assert_eq!(
        heard["payload"]["data"]["documentChanged"]["kind"],
        "UPDATED"
    );
}

/// Every subscription field, with an operation that reaches it; the schema's subscription fields
/// are compared with this table, so a new one fails until it is listed and attacked below.
pub const SUBSCRIPTION_FIELDS: [(&str, &str); 2] = [
    (
        "documentChanged",
        "subscription { documentChanged(id: \"00000000-0000-4000-8000-000000000000\") { kind } }",
    ),
    ("myNotifications", MINE),
];

#[tokio::test]
async fn every_subscription_field_refuses_anonymous_callers_and_strangers() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    // Anonymous: the connection itself is refused before any field can run.
    let mut socket = connect(&base(&app), None, true).await.unwrap();
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::from(4403)));
    // Signed in, on nothing of one's own: refused, never an event.
    let mut socket = acknowledged(&base(&app), &ada.access_token).await;
    for (name, query) in SUBSCRIPTION_FIELDS {
        start(&mut socket, name, query, json!({})).await;
        if name == "documentChanged" {
            let refused = next(&mut socket).await;
            assert_eq!(
                refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
                "{name}: {refused}"
            );
            assert_eq!(next(&mut socket).await["type"], "complete");
        }
    }
    silent_for(&mut socket, Duration::from_millis(500)).await;
}
