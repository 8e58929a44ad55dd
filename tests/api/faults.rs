//! The database goes away and comes back. Between the app and PostgreSQL the test puts a TCP relay
//! it can cut — the way a network partition or a failover looks from the app: open connections
//! die and new ones are refused. While it is cut, every request gets a 503 problem with
//! `Retry-After` within the pool's acquire timeout (never a hang, never a 500, never a detail of
//! the database), a session check that cannot reach its store denies instead of trusting the
//! token, readiness is 503 and liveness 200; once the relay is back, the same token works again
//! without a restart. Connections the database itself terminates (`pg_terminate_backend`) are
//! replaced without a client noticing, and an app whose database port never answered says 503.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{Account, PASSWORD, TestApp, assert_problem};

/// A TCP relay to the tests' PostgreSQL server on a port of its own.
struct Relay {
    port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start() -> Self {
        let server = bulwark_testkit::server_url();
        let options: sqlx::postgres::PgConnectOptions = server.parse().unwrap();
        let target = format!("{}:{}", options.get_host(), options.get_port());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Self {
            port,
            target,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relayed = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(relayed);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// The database becomes unreachable: the listener closes (new connections are refused) and
    /// every relayed connection is dropped.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// The database is back, on the same address.
    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

/// Ada, signed up, and the id of a document she created ("Plans").
async fn ada_with_a_document(app: &TestApp) -> (Account, String) {
    let ada = app.signed_up("ada@example.com").await;
    let created = app
        .create_document(
            &ada.access_token,
            &json!({"title": "Plans", "body": "kept"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (ada, id)
}

async fn assert_unavailable(response: Response, port: u16) {
    assert_eq!(response.status(), 503, "{:?}", response.url().path());
    assert_eq!(response.headers()["retry-after"], "5");
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem.type_uri, "urn:bulwark:problem:service-unavailable");
    let detail = problem.detail.to_lowercase();
    for leak in ["postgres", "sqlx", "pool", "connection", &port.to_string()] {
        assert!(
            !detail.contains(leak),
            "the problem says {leak:?}: {detail}"
        );
    }
}

#[tokio::test]
async fn a_lost_database_is_503_with_retry_after_everywhere_and_the_service_recovers_by_itself() {
    let relay = Relay::start().await;
    let port = relay.port;
    let app = TestApp::spawn_configured(|config| {
        config.database.connect = config.database.connect.clone().port(port);
    })
    .await;
    let (ada, _) = ada_with_a_document(&app).await;

    relay.cut();

    // A valid token is not trusted on its own: the session cannot be checked, so it is refused
    // with a 503 — and so is everything that needs the database.
    assert_unavailable(
        app.authed(Method::GET, "/api/v1/documents", &ada.access_token, None)
            .await,
        port,
    )
    .await;
    assert_unavailable(app.login("ada@example.com", PASSWORD).await, port).await;
    assert_unavailable(app.get_readiness().await, port).await;
    assert_eq!(
        app.get_liveness().await.status(),
        200,
        "the process is alive"
    );
    // An anonymous request that needs no database is still served.
    assert_eq!(app.get_jwks().await.status(), 200);

    relay.restore().await;

    // Back without a restart: the pool reconnects, the revocation listener too.
    let mut ready = false;
    for _ in 0..60 {
        if app.get_readiness().await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "readiness did not come back within 15 s");
    let listed = app
        .authed(Method::GET, "/api/v1/documents", &ada.access_token, None)
        .await;
    assert_eq!(listed.status(), 200);
    let body: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(body["items"][0]["title"], "Plans", "nothing was lost");
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn an_app_whose_database_never_answered_says_503_not_500() {
    // A port where nothing listens: every connection attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_configured(|config| {
        config.database.connect = config.database.connect.clone().port(port);
    })
    .await;
    assert_unavailable(app.login("ada@example.com", PASSWORD).await, port).await;
    assert_unavailable(app.register("ada@example.com", PASSWORD, "Ada").await, port).await;
    // A token that is not even well formed is refused before any session is looked up: 401, as
    // when the database is there.
    let forged = app
        .authed(Method::GET, "/api/v1/users/me", "not-a-token", None)
        .await;
    assert_eq!(
        forged.status(),
        401,
        "a malformed token needs no database to refuse"
    );
}

#[tokio::test]
async fn connections_the_database_terminates_are_replaced_without_a_single_failed_request() {
    // An administrator's `pg_terminate_backend`, a failover or an idle-connection killer: every
    // connection the app holds is closed by the server (SQLSTATE 57P01). The pool notices each dead
    // connection when it is next handed out (sqlx checks an idle connection first) and opens a new
    // one, so clients see nothing; the revocation and event listeners reconnect by themselves.
    let app = TestApp::spawn().await;
    let (ada, id) = ada_with_a_document(&app).await;

    let terminated: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and application_name = 'bulwark') t",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(terminated >= 1, "the app held no connection to terminate");

    // More reads than the pool has connections, so every dead one is handed out once.
    for attempt in 0..(app.config.database.max_connections + 2) {
        let read = app.get_document(&ada.access_token, &id).await;
        assert_eq!(read.status(), 200, "read {attempt} after the termination");
    }
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    assert_eq!(app.get_readiness().await.status(), 200);
}
