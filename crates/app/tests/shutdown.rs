//! SIGTERM, as an orchestrator sends it, to the real `bulwark serve` process: a request already in
//! flight still gets its answer, new connections are refused at once, open WebSockets are closed
//! with 1001 (going away), and the process exits 0 well within the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulwark_testkit::TestDatabase;
use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const PASSWORD: &str = "Correct-Horse-Battery-9-Staple";
const GRACE_SECS: u64 = 20;

/// The server process, killed if the test ends before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(db: &TestDatabase, port: u16) -> Server {
    let keys = bulwark_security::keys::generate_keys().unwrap();
    let server = bulwark_testkit::server_url();
    let (base, _) = server.rsplit_once('/').unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env("DATABASE_URL", format!("{base}/{}", db.name()))
        .env("DATABASE_MAX_CONNECTIONS", "4")
        .env("JWT_SIGNING_KEY_ID", &keys.jwt_key_id)
        .env("JWT_SIGNING_KEY", keys.jwt_signing_key.expose_secret())
        .env(
            "DATA_ENCRYPTION_KEYS",
            keys.data_encryption_keys.expose_secret(),
        )
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("HTTP_WORKERS", "1")
        .env("SHUTDOWN_GRACE_SECS", GRACE_SECS.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bulwark binary starts");
    Server(child)
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(response) = client.get(format!("{base}/health/ready")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become ready within 30 s");
}

async fn access_token(client: &reqwest::Client, base: &str) -> String {
    let registered = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&serde_json::json!({
            "email": "ada@example.com", "password": PASSWORD, "display_name": "Ada"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_sends_1001_and_exits_in_time() {
    let db = TestDatabase::migrated().await;
    let port = free_port();
    let mut server = spawn_server(&db, port);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let token = access_token(&client, &base).await;

    // An authenticated notifications socket.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/v1/ws"))
            .await
            .unwrap();
    socket
        .send(Message::Text(
            serde_json::json!({"type": "auth", "token": token})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let ready = socket.next().await.unwrap().unwrap();
    assert!(ready.to_text().unwrap().contains("ready"), "{ready:?}");
    // And a GraphQL subscriptions socket, not even past `connection_init`.
    let mut request = format!("ws://127.0.0.1:{port}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut graphql, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // A request in flight: its head and half its body are sent, the rest comes after SIGTERM.
    let body = serde_json::json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        in_flight,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    in_flight.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = Instant::now();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());

    // Both sockets are told to go away.
    for socket in [&mut socket, &mut graphql] {
        let close = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => {}
                    other => panic!("the socket ended without a close frame: {other:?}"),
                }
            }
        })
        .await
        .expect("a close frame within 5 s");
        assert_eq!(close.expect("a close code").code, CloseCode::Away);
    }

    // New connections are refused (the listener is closed), while the old one is still served.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "new connections are still accepted");

    // The request in flight completes with a real answer.
    in_flight.write_all(rest.as_bytes()).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = in_flight.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight sign-in was answered: {answer:?}"
    );
    assert!(answer.contains("access_token"));

    // And the process exits, successfully, well within the grace period.
    let exited = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(GRACE_SECS),
            "still running after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "{exited:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(GRACE_SECS / 2),
        "took {:?}: nothing should have waited for the grace period",
        stopping.elapsed()
    );
}
