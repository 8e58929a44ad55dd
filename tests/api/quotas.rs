//! The daily request quota of each plan, end to end: one count per user across REST, GraphQL and
//! the messages of both WebSockets (an API key's requests count toward its owner's day); over it,
//! 429 `quota-exceeded` with `Retry-After` until midnight UTC on every transport, while the
//! account's own security routes stay open; a plan change counts from the very next request.

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Account, TestApp, assert_problem};
use crate::metrics::TOKEN as METRICS_TOKEN;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const DOCUMENTS: &str = "/api/v1/documents";

/// The `"day"` item of the `RateLimit` header: the requests left today.
fn day_remaining(response: &Response) -> Option<u32> {
    response
        .headers()
        .get_all("ratelimit")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|item| item.strip_prefix("\"day\";r="))
        .and_then(|rest| rest.split(';').next())
        .and_then(|r| r.parse().ok())
}

/// Seconds until the next midnight UTC.
fn until_midnight() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    86_400 - now % 86_400
}

async fn left_today(app: &TestApp, token: &str) -> u32 {
    let response = app.authed(Method::GET, DOCUMENTS, token, None).await;
    assert_eq!(response.status(), 200);
    day_remaining(&response).expect("a counted request carries the day's RateLimit item")
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn send(socket: &mut Socket, message: &Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// `/api/v1/ws`, authenticated.
async fn notifications(app: &TestApp, account: &Account) -> Socket {
    let url = app.url("/api/v1/ws").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send(
        &mut socket,
        &json!({"type": "auth", "token": account.access_token}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["type"], "ready");
    socket
}

/// `/graphql/ws`, acknowledged.
async fn subscriptions(app: &TestApp, account: &Account) -> Socket {
    let url = app.url("/graphql/ws").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init",
        "payload": {"authorization": format!("Bearer {}", account.access_token)}});
    send(&mut socket, &init).await;
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    socket
}

async fn assert_quota_exceeded(response: Response) {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Until midnight UTC (the test may straddle a second).
    assert!(
        retry_after.abs_diff(until_midnight()) <= 2,
        "Retry-After {retry_after}, midnight in {}",
        until_midnight()
    );
    assert_eq!(day_remaining(&response), Some(0));
    let problem = assert_problem(response, 429).await;
    assert!(
        problem.type_uri.ends_with("quota-exceeded"),
        "{}",
        problem.type_uri
    );
}

#[tokio::test]
async fn one_daily_count_across_rest_graphql_and_both_sockets_then_429_quota_exceeded_everywhere() {
    let app = TestApp::spawn_with(&[
        ("QUOTA_FREE_REQUESTS_PER_DAY", "12"),
        ("METRICS_TOKEN", METRICS_TOKEN),
    ])
    .await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;

    // REST: one each, and the headers say so.
    let left = left_today(&app, &ada.access_token).await;
    let listed = app
        .authed(Method::GET, DOCUMENTS, &ada.access_token, None)
        .await;
    assert_eq!(
        listed
            .headers()
            .get_all("ratelimit-policy")
            .iter()
            .filter(|v| *v == r#""day";q=12;w=86400"#)
            .count(),
        1
    );
    assert_eq!(day_remaining(&listed), Some(left - 1));

    // GraphQL over HTTP: one.
    let graphql = app
        .graphql_as(Some(&ada.access_token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(graphql.status(), 200);
    assert_eq!(day_remaining(&graphql), Some(left - 2));

    // A message over each socket: one each (the upgrade itself carries no credential).
    let mut socket = notifications(&app, &ada).await;
    send(
        &mut socket,
        &json!({"type": "unsubscribe", "topic": format!("document:{}", uuid::Uuid::new_v4())}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["type"], "unsubscribed");
    let mut graphql_socket = subscriptions(&app, &ada).await;
    send(
        &mut graphql_socket,
        &json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { myNotifications { documentId } }"}}),
    )
    .await;
    // Messages are handled in order: the pong says the subscribe was counted. Pings are the
    // protocol's keep-alive, not requests: they are not counted.
    send(&mut graphql_socket, &json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut graphql_socket).await["type"], "pong");
    assert_eq!(left_today(&app, &ada.access_token).await, left - 5);

    // An API key's requests count toward its owner's day (creating it is account security: free).
    let key = app.api_key(&ada, &["documents:read"]).await;
    let key = key["key"].as_str().unwrap();
    let with_key = app.authed(Method::GET, DOCUMENTS, key, None).await;
    assert_eq!(with_key.status(), 200);
    assert_eq!(day_remaining(&with_key), Some(left - 6));

    // Spend the rest, then every transport is refused.
    for _ in 0..left - 6 {
        let response = app
            .authed(Method::GET, DOCUMENTS, &ada.access_token, None)
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_quota_exceeded(
        app.authed(Method::GET, DOCUMENTS, &ada.access_token, None)
            .await,
    )
    .await;
    assert_quota_exceeded(app.authed(Method::GET, DOCUMENTS, key, None).await).await;
    assert_quota_exceeded(
        app.graphql_as(Some(&ada.access_token), "{ me { id } }", json!({}))
            .await,
    )
    .await;
    send(
        &mut socket,
        &json!({"type": "unsubscribe", "topic": format!("document:{}", uuid::Uuid::new_v4())}),
    )
    .await;
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["code"], "QUOTA_EXCEEDED", "{refused}");
    assert!(refused["retry_after"].as_u64().unwrap() <= 86_400);
    send(
        &mut graphql_socket,
        &json!({"id": "2", "type": "subscribe", "payload": {"query": "subscription { myNotifications { documentId } }"}}),
    )
    .await;
    let refused = next_json(&mut graphql_socket).await;
    assert_eq!(refused["id"], "2", "{refused}");
    assert_eq!(refused["type"], "error");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "QUOTA_EXCEEDED"
    );

    // The account's own security is never counted: the user can still see and end sessions.
    let sessions = app.list_sessions(&ada.access_token).await;
    assert_eq!(sessions.status(), 200);
    assert_eq!(day_remaining(&sessions), None);
    // Bob's day is his own.
    assert_eq!(
        app.authed(Method::GET, DOCUMENTS, &bob.access_token, None)
            .await
            .status(),
        200
    );
    // Refusals are counted in the metrics under the `day` policy, and the socket messages too.
    let metrics = app.scrape_metrics().await;
    assert!(
        metrics.contains("bulwark_rate_limited_total{policy=\"day\"} 5\n"),
        "{metrics}"
    );
    for endpoint in ["/api/v1/ws", "/graphql/ws"] {
        assert!(
            metrics.contains(&format!(
                "bulwark_websocket_messages_total{{endpoint=\"{endpoint}\"}} 2\n"
            )),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_plan_upgrade_counts_from_the_very_next_request_with_the_same_token() {
    let app = TestApp::spawn_with(&[
        ("QUOTA_FREE_REQUESTS_PER_DAY", "3"),
        ("QUOTA_PRO_REQUESTS_PER_DAY", "100"),
    ])
    .await;
    let admin = app.admin("root@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    while app
        .authed(Method::GET, DOCUMENTS, &ada.access_token, None)
        .await
        .status()
        == 200
    {}
    assert_quota_exceeded(
        app.authed(Method::GET, DOCUMENTS, &ada.access_token, None)
            .await,
    )
    .await;

    let upgraded = app
        .admin_patch_user(&admin.access_token, &ada.user_id, &json!({"plan": "pro"}))
        .await;
    assert_eq!(upgraded.status(), 200);

    // The cached principal was dropped by the plan change: the same token now counts toward the
    // pro quota, and today's requests so far (3) still count.
    let response = app
        .authed(Method::GET, DOCUMENTS, &ada.access_token, None)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(day_remaining(&response), Some(100 - 4));
}
