//! `GET /api/v1/ws`: the notifications socket end to end (the protocol's every rule is unit-tested
//! in `crates/transport-ws`). The attacks: a foreign page's Origin, a forged token, another user's
//! document, a session ended while the socket is open, an oversized frame.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{Account, TestApp};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket_at(base: &str) -> Socket {
    let url = format!("{}/api/v1/ws", base.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

impl TestApp {
    async fn socket(
        &self,
        origin: Option<&str>,
    ) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let url = self.url("/api/v1/ws").replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    /// An authenticated socket (`ready` received).
    async fn signed_in_socket(&self, account: &Account) -> Socket {
        let mut socket = self.socket(None).await.unwrap();
        send(
            &mut socket,
            json!({"type": "auth", "token": account.access_token}),
        )
        .await;
        assert_eq!(next(&mut socket).await["type"], "ready");
        socket
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON text message (pings are answered by the client library and skipped).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(close) => panic!("closed: {close:?}"),
            _ => {}
        }
    }
}

/// The close code the server ends with.
async fn closed_with(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(close)))) => return close.map(|c| c.code),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

async fn subscribe(socket: &mut Socket, document_id: &str) -> Value {
    send(
        socket,
        json!({"type": "subscribe", "topic": format!("document:{document_id}")}),
    )
    .await;
    next(socket).await
}

#[tokio::test]
async fn a_foreign_pages_origin_is_refused_at_the_upgrade() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    match app.socket(Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("the upgrade was not refused: {:?}", other.map(|_| ())),
    }
    // The allowed origin, and a client that sends none (not a browser), get through.
    assert!(app.socket(Some("https://app.example")).await.is_ok());
    assert!(app.socket(None).await.is_ok());
}

#[tokio::test]
async fn an_update_reaches_a_subscriber_with_ids_only() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let mut socket = app.signed_in_socket(&ada).await;
    assert_eq!(subscribe(&mut socket, id).await["type"], "subscribed");

    // The fan-out listener connects asynchronously: change until the event arrives.
    let mut version = 1;
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = app
                .patch_document(
                    &ada.access_token,
                    id,
                    Some(version),
                    &json!({"title": "Changed"}),
                )
                .await;
            assert_eq!(response.status(), 200);
            version += 1;
            if let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(Duration::from_millis(500), socket.next()).await
            {
                return serde_json::from_str::<Value>(&text).unwrap();
            }
        }
    })
    .await
    .expect("an event arrived");
    assert_eq!(event["type"], "event");
    assert_eq!(event["topic"], format!("document:{id}"));
    assert_eq!(event["event"], "document.updated");
    assert!(event["data"]["version"].as_i64().unwrap() >= 2);
    assert!(!event.to_string().contains("secret plans"), "{event}");
}

#[tokio::test]
async fn another_users_document_is_refused_and_its_events_never_arrive() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let private = app.document(&ada, "private").await;
    let id = private["id"].as_str().unwrap();
    let mut socket = app.signed_in_socket(&bob).await;

    let refused = subscribe(&mut socket, id).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "FORBIDDEN");
    assert!(!app.audit_events("document.access_denied").await.is_empty());

    for version in 1..=3 {
        let response = app
            .patch_document(
                &ada.access_token,
                id,
                Some(version),
                &json!({"title": "Secret"}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let nothing = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(_)) => {}
                _ => return String::new(),
            }
        }
    })
    .await;
    assert!(nothing.is_err(), "bob received: {nothing:?}");
}

#[tokio::test]
async fn a_forged_token_closes_the_socket_with_4401() {
    let app = TestApp::spawn().await;
    let mut socket = app.socket(None).await.unwrap();
    send(&mut socket, json!({"type": "auth", "token": "forged"})).await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::from(4401)));
}

#[tokio::test]
async fn no_auth_message_within_ten_seconds_closes_with_4408() {
    let app = TestApp::spawn().await;
    let mut socket = app.socket(None).await.unwrap();
    let started = std::time::Instant::now();
    // `closed_with` waits up to 10 s per frame: the close comes at 10 s, after nothing else.
    let code = tokio::time::timeout(Duration::from_secs(15), socket.next())
        .await
        .expect("closed in time");
    match code {
        Some(Ok(Message::Close(close))) => {
            assert_eq!(close.map(|c| c.code), Some(CloseCode::from(4408)));
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(9), "closed early");
}

#[tokio::test]
async fn logging_out_ends_the_open_socket() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let other = app
        .signed_in("ada@example.com", crate::helpers::PASSWORD)
        .await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();
    let mut socket = app.signed_in_socket(&ada).await;
    assert_eq!(subscribe(&mut socket, id).await["type"], "subscribed");

    assert_eq!(app.logout(&ada.refresh_token).await.status(), 204);
    // The next event finds the session gone: the socket closes instead of delivering it.
    let mut version = 1;
    let code = tokio::time::timeout(Duration::from_secs(10), async {
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
    assert_eq!(code, Some(CloseCode::from(4401)));
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_with_1009() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let mut socket = app.signed_in_socket(&ada).await;
    let huge = json!({"type": "subscribe", "topic": "x".repeat(70 * 1024)});
    let _ = socket.send(Message::Text(huge.to_string().into())).await;
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::Size));
}

/// Two instances on one database: a change made through the first reaches a subscriber of the
/// second (through PostgreSQL `NOTIFY`), and only through the policy.
#[tokio::test]
async fn an_update_through_one_instance_reaches_a_subscriber_of_another() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let document = app.document(&ada, "private").await;
    let id = document["id"].as_str().unwrap();

    let second = app.second_instance().await;
    let pair: Value = app
        .client
        .post(format!("{second}/api/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut socket = socket_at(&second).await;
    send(
        &mut socket,
        json!({"type": "auth", "token": pair["access_token"]}),
    )
    .await;
    assert_eq!(next(&mut socket).await["type"], "ready");
    assert_eq!(subscribe(&mut socket, id).await["type"], "subscribed");

    let mut version = 1;
    let event = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let response = app
                .patch_document(
                    &ada.access_token,
                    id,
                    Some(version),
                    &json!({"title": "Elsewhere"}),
                )
                .await;
            assert_eq!(response.status(), 200);
            version += 1;
            if let Ok(Some(Ok(Message::Text(text)))) =
                tokio::time::timeout(Duration::from_millis(500), socket.next()).await
            {
                return serde_json::from_str::<Value>(&text).unwrap();
            }
        }
    })
    .await
    .expect("the event crossed instances");
    assert_eq!(event["type"], "event");
    assert_eq!(event["topic"], format!("document:{id}"));
}

#[tokio::test]
async fn a_sixth_socket_of_one_user_is_refused_with_4429() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(app.signed_in_socket(&ada).await);
    }
    let mut sixth = app.socket(None).await.unwrap();
    send(
        &mut sixth,
        json!({"type": "auth", "token": ada.access_token}),
    )
    .await;
    assert_eq!(closed_with(&mut sixth).await, Some(CloseCode::from(4429)));

    // Closing one frees its slot.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let mut again = None;
    for _ in 0..40 {
        let mut socket = app.socket(None).await.unwrap();
        send(
            &mut socket,
            json!({"type": "auth", "token": ada.access_token}),
        )
        .await;
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(2), socket.next()).await
        {
            again = Some(text.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.unwrap().contains("ready"));
}

#[tokio::test]
async fn a_flood_of_messages_closes_with_1008() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let mut socket = app.signed_in_socket(&ada).await;
    for _ in 0..40 {
        if socket
            .send(Message::Text(
                r#"{"type":"unsubscribe","topic":"document:00000000-0000-4000-8000-000000000000"}"#
                    .into(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::Policy));
}

/// A deletion cannot be re-read through the policy (the document and its shares are gone): it is
/// told to the owner, and to nobody it was merely shared with.
#[tokio::test]
async fn a_deletion_reaches_the_owner_and_not_whom_it_was_shared_with() {
    let app = TestApp::spawn().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let document = app.document(&ada, "shared").await;
    let id = document["id"].as_str().unwrap();
    let response = app
        .share_document(&ada.access_token, id, &bob.user_id, "read")
        .await;
    assert_eq!(response.status(), 201);
    let mut ada_socket = app.signed_in_socket(&ada).await;
    let mut bob_socket = app.signed_in_socket(&bob).await;
    assert_eq!(subscribe(&mut ada_socket, id).await["type"], "subscribed");
    assert_eq!(subscribe(&mut bob_socket, id).await["type"], "subscribed");

    // Both hear updates (the fan-out is live for both)…
    let mut version = 1;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = app
                .patch_document(&ada.access_token, id, Some(version), &json!({"title": "v"}))
                .await;
            assert_eq!(response.status(), 200);
            version += 1;
            if let Ok(Some(Ok(Message::Text(_)))) =
                tokio::time::timeout(Duration::from_millis(500), bob_socket.next()).await
            {
                return;
            }
        }
    })
    .await
    .expect("Bob heard an update");

    // …but only the owner hears the deletion.
    assert_eq!(
        app.delete_document(&ada.access_token, id).await.status(),
        204
    );
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = next(&mut ada_socket).await;
            if event["event"] == "document.deleted" {
                return event;
            }
        }
    })
    .await
    .expect("Ada heard the deletion");
    assert_eq!(deleted["topic"], format!("document:{id}"));
    let heard_by_bob = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match bob_socket.next().await {
                Some(Ok(Message::Text(text))) if text.contains("document.deleted") => {
                    return text.to_string();
                }
                Some(Ok(_)) => {}
                _ => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(heard_by_bob.is_err(), "Bob heard: {heard_by_bob:?}");
}
