//! `/api/v1/webhooks`: the SSRF surface (OWASP API7). Registration refuses every internal target in
//! every notation; delivery refuses a name that resolves to one at connect time (DNS rebinding);
//! redirects are never followed; deliveries are signed, retried with backoff, logged; webhooks
//! belong to their owner; the quota and the per-hour cap hold under concurrency.
//!
//! Receivers are tiny HTTP servers on 127.0.0.1 started by each test. Reaching them needs the
//! test-only `TestNetwork` (set in code, never from the environment): fixed DNS answers, and for
//! the delivery tests a loopback exemption. Every refusal test runs *without* the exemption.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_security::webhook_signature;
use bulwark_security::webhook_transport::{StaticHosts, TestNetwork};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{Account, TestApp, assert_problem};

impl TestApp {
    pub async fn create_webhook(&self, token: &str, body: &Value) -> Response {
        self.authed(Method::POST, "/api/v1/webhooks", token, Some(body))
            .await
    }

    pub async fn list_webhooks(&self, token: &str) -> Response {
        self.authed(Method::GET, "/api/v1/webhooks", token, None)
            .await
    }

    pub async fn delete_webhook(&self, token: &str, id: &str) -> Response {
        self.authed(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            token,
            None,
        )
        .await
    }

    pub async fn webhook_deliveries(&self, token: &str, id: &str) -> Response {
        self.authed(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            token,
            None,
        )
        .await
    }

    /// Registers a webhook that must be accepted; returns `{id, url, events, secret, …}`.
    pub(crate) async fn webhook(&self, owner: &Account, url: &str, events: &[&str]) -> Value {
        let response = self
            .create_webhook(&owner.access_token, &json!({"url": url, "events": events}))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Waits (up to 15 s) until the webhook's newest delivery has left `pending`, or, with
    /// `settled = false`, until it exists at all; returns it.
    pub(crate) async fn delivery(&self, owner: &Account, webhook_id: &str, settled: bool) -> Value {
        for _ in 0..300 {
            let log: Value = self
                .webhook_deliveries(&owner.access_token, webhook_id)
                .await
                .json()
                .await
                .unwrap();
            if let Some(newest) = log["items"].as_array().and_then(|items| items.first())
                && (!settled || newest["status"] != "pending")
            {
                return newest.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no settled delivery for webhook {webhook_id}");
    }

    /// Changes a document's title (a `document.updated` event).
    pub(crate) async fn touch(&self, owner: &Account, document: &Value) {
        let response = self
            .patch_document(
                &owner.access_token,
                document["id"].as_str().unwrap(),
                document["version"].as_i64(),
                &json!({"title": "Changed"}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
}

/// What a receiver was sent.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP/1.1 receiver on 127.0.0.1 that records each request and answers from a script (then
/// `200 OK`).
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(script: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let recorded = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(hit) = read_request(&mut stream).await else {
                    continue;
                };
                recorded.lock().unwrap().push(hit);
                let answer = script.lock().unwrap().pop_front().unwrap_or_else(|| {
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_owned()
                });
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self { port, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Hit> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Hit {
        method,
        path,
        headers,
        body,
    })
}

pub(crate) fn ip(raw: &str) -> IpAddr {
    raw.parse().unwrap()
}

/// An app whose webhook transport answers `hosts` from a fixed table and, with `loopback`, may
/// deliver to 127.0.0.1; plain http targets are allowed (receivers here have no TLS). Retries
/// wait a second; the worker polls every 50 ms.
pub(crate) async fn app_with_network(
    hosts: &StaticHosts,
    loopback: bool,
    max_attempts: u32,
) -> TestApp {
    let hosts = hosts.clone();
    TestApp::spawn_configured(move |config| {
        config.webhooks.test_network = Some(TestNetwork {
            allow_loopback: loopback,
            hosts,
        });
        config.webhooks.delivery.allow_http = true;
        config.webhooks.delivery.max_attempts = max_attempts;
        config.webhooks.delivery.retry_base = Duration::from_secs(1);
        config.webhooks.poll_interval = Duration::from_millis(50);
    })
    .await
}

/// Every internal target the issue lists, in every notation, is refused at registration with a
/// field error on `url` — and is audited as an SSRF attempt. No webhook is created.
#[tokio::test]
async fn internal_targets_are_refused_at_registration_in_every_notation() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up("alice@example.com").await;
    let probes = [
        ("https://127.0.0.1/hook", "forbidden_address"),
        ("https://localhost/hook", "forbidden_host"),
        ("https://api.localhost/hook", "forbidden_host"),
        ("https://0.0.0.0/hook", "forbidden_address"),
        ("https://[::1]/hook", "forbidden_address"),
        ("https://[::ffff:127.0.0.1]/hook", "forbidden_address"),
        ("https://[::ffff:8.8.8.8]/hook", "forbidden_address"),
        ("https://2130706433/hook", "forbidden_address"),
        ("https://0x7f000001/hook", "forbidden_address"),
        ("https://0177.0.0.1/hook", "forbidden_address"),
        ("https://127.1/hook", "forbidden_address"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "forbidden_address",
        ),
        ("https://10.0.0.1/hook", "forbidden_address"),
        ("https://192.168.1.1/hook", "forbidden_address"),
        ("https://172.16.0.1/hook", "forbidden_address"),
        ("https://100.64.0.1/hook", "forbidden_address"),
        ("https://[fd00::1]/hook", "forbidden_address"),
        ("https://[fe80::1]/hook", "forbidden_address"),
        ("https://224.0.0.1/hook", "forbidden_address"),
        (
            "https://metadata.google.internal/computeMetadata/v1/",
            "forbidden_host",
        ),
        ("https://printer.local/hook", "forbidden_host"),
        ("https://intranet/hook", "forbidden_host"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://example.com:70/_hello", "scheme_not_allowed"),
        ("ftp://example.com/hook", "scheme_not_allowed"),
        // Plain http outside development.
        ("http://example.com/hook", "scheme_not_allowed"),
        ("https://user:pass@example.com/hook", "credentials_in_url"),
        ("https://user@example.com/hook", "credentials_in_url"),
        ("https://example.com@127.0.0.1/hook", "credentials_in_url"),
        ("https://example.com/hook#fragment", "invalid"),
        ("not a url", "invalid"),
    ];
    for (url, code) in probes {
        let response = app
            .create_webhook(
                &alice.access_token,
                &json!({"url": url, "events": ["document.updated"]}),
            )
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem.errors.len(), 1, "{url}");
        assert_eq!(problem.errors[0].field, "url", "{url}");
        assert_eq!(problem.errors[0].code, code, "{url}");
    }

    let list: Value = app
        .list_webhooks(&alice.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    let refused = app.audit_events("webhook.target_refused").await;
    // Every probe but the malformed ones is an attempt at a target we refuse.
    assert_eq!(refused.len(), probes.len() - 2);
    assert!(refused.iter().all(|e| e["outcome"] == "denied"));
}

/// The host name is resolved at registration and every answer is checked: a name pointing at
/// loopback, or at one public and one private address, is refused; so is a name that does not
/// resolve.
#[tokio::test]
async fn a_name_that_resolves_to_an_internal_address_is_refused_at_registration() {
    let hosts = StaticHosts::default();
    hosts.set("loop.test", vec![ip("127.0.0.1")]);
    hosts.set("metadata.test", vec![ip("169.254.169.254")]);
    hosts.set("mixed.test", vec![ip("93.184.215.14"), ip("10.0.0.1")]);
    hosts.set("mapped.test", vec![ip("::ffff:10.0.0.1")]);
    let app = app_with_network(&hosts, false, 1).await;
    let alice = app.signed_up("alice@example.com").await;

    for (url, code) in [
        ("https://loop.test/hook", "forbidden_address"),
        ("https://metadata.test/hook", "forbidden_address"),
        ("https://mixed.test/hook", "forbidden_address"),
        ("https://mapped.test/hook", "forbidden_address"),
        ("https://nowhere.invalid/hook", "unresolvable"),
    ] {
        let response = app
            .create_webhook(
                &alice.access_token,
                &json!({"url": url, "events": ["document.updated"]}),
            )
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem.errors[0].field, "url", "{url}");
        assert_eq!(problem.errors[0].code, code, "{url}");
    }
}

/// The whole happy path: registration shows the secret once; an update of the owner's document
/// reaches the receiver as a signed POST that the reference verifier accepts; the log says
/// delivered.
#[tokio::test]
async fn a_delivery_is_signed_and_the_receiver_can_verify_it() {
    let receiver = Receiver::start(Vec::new()).await;
    let hosts = StaticHosts::default();
    hosts.set("receiver.test", vec![ip("127.0.0.1")]);
    let app = app_with_network(&hosts, true, 3).await;
    let alice = app.signed_up("alice@example.com").await;
    let url = format!("http://receiver.test:{}/in?src=bulwark", receiver.port);
    let webhook = app
        .webhook(&alice, &url, &["document.updated", "document.deleted"])
        .await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("bwhs_") && secret.len() == 48,
        "{secret}"
    );
    assert_eq!(webhook["url"], url);
    assert_eq!(
        webhook["events"],
        json!(["document.updated", "document.deleted"])
    );

    // Shown once: never in the listing, never stored in the clear.
    let list: Value = app
        .list_webhooks(&alice.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("secret").is_none());
    let stored: String = sqlx::query_scalar("select sealed_secret from webhooks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!stored.contains(&secret[5..]));

    let document = app.document(&alice, "private").await;
    app.touch(&alice, &document).await;
    let id = webhook["id"].as_str().unwrap();
    let delivery = app.delivery(&alice, id, true).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_response_status"], 200);
    assert_eq!(delivery["event"], "document.updated");

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.path, "/in?src=bulwark");
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["bulwark-event"], "document.updated");
    assert_eq!(
        hit.headers["bulwark-delivery"],
        delivery["id"].as_str().unwrap()
    );
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let signature = &hit.headers["bulwark-signature"];
    assert!(webhook_signature::verify(
        secret.as_bytes(),
        signature,
        &hit.body,
        now,
        300
    ));
    // Anything else does not verify: another secret, a changed body.
    assert!(!webhook_signature::verify(
        b"bwhs_another",
        signature,
        &hit.body,
        now,
        300
    ));
    let mut tampered = hit.body.clone();
    tampered.push(b' ');
    assert!(!webhook_signature::verify(
        secret.as_bytes(),
        signature,
        &tampered,
        now,
        300
    ));
    // Ids only: the receiver reads the document through the API, as whoever it is.
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["event"], "document.updated");
    assert_eq!(body["data"]["document_id"], document["id"]);
    assert_eq!(
        body["data"]["version"],
        document["version"].as_i64().unwrap() + 1
    );
    assert!(!String::from_utf8_lossy(&hit.body).contains("secret plans"));
}

/// A receiver answering 302 to another address gets its redirect ignored: the second server sees
/// nothing, and the attempt fails with the status it got.
#[tokio::test]
async fn a_redirect_from_the_receiver_is_never_followed() {
    let target = Receiver::start(Vec::new()).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://receiver.test:{}/stolen\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        target.port
    );
    let receiver = Receiver::start(vec![redirect]).await;
    let hosts = StaticHosts::default();
    hosts.set("receiver.test", vec![ip("127.0.0.1")]);
    let app = app_with_network(&hosts, true, 1).await;
    let alice = app.signed_up("alice@example.com").await;
    let webhook = app
        .webhook(
            &alice,
            &format!("http://receiver.test:{}/hook", receiver.port),
            &["document.updated"],
        )
        .await;

    let document = app.document(&alice, "private").await;
    app.touch(&alice, &document).await;
    let delivery = app
        .delivery(&alice, webhook["id"].as_str().unwrap(), true)
        .await;

    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert_eq!(delivery["last_response_status"], 302);
    assert_eq!(receiver.hits().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(target.hits().is_empty(), "the redirect was followed");
}

/// DNS rebinding: the name resolves to a public address when registered and to loopback when the
/// delivery is made. The delivery is refused on the address it would have dialled, never retried,
/// and audited; the server on loopback receives nothing.
#[tokio::test]
async fn a_name_rebound_to_loopback_after_registration_is_refused_at_delivery() {
    let internal = Receiver::start(Vec::new()).await;
    let hosts = StaticHosts::default();
    hosts.set("rebind.test", vec![ip("93.184.215.14")]);
    let app = app_with_network(&hosts, false, 5).await;
    let alice = app.signed_up("alice@example.com").await;
    let webhook = app
        .webhook(
            &alice,
            &format!("http://rebind.test:{}/hook", internal.port),
            &["document.deleted"],
        )
        .await;

    hosts.set("rebind.test", vec![ip("127.0.0.1")]);
    let document = app.document(&alice, "private").await;
    let response = app
        .delete_document(&alice.access_token, document["id"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), 204);
    let delivery = app
        .delivery(&alice, webhook["id"].as_str().unwrap(), true)
        .await;

    assert_eq!(delivery["status"], "refused", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert!(delivery["last_response_status"].is_null());
    assert!(internal.hits().is_empty());
    let audited = app.audit_events("webhook.delivery_refused").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["subject_id"], webhook["id"]);
}

/// A receiver that fails once gets the delivery again after the backoff; the log shows both
/// attempts and the final success.
#[tokio::test]
async fn a_failed_delivery_is_retried_after_a_backoff() {
    let receiver = Receiver::start(vec![
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_owned(),
    ])
    .await;
    let hosts = StaticHosts::default();
    hosts.set("receiver.test", vec![ip("127.0.0.1")]);
    let app = app_with_network(&hosts, true, 3).await;
    let alice = app.signed_up("alice@example.com").await;
    let webhook = app
        .webhook(
            &alice,
            &format!("http://receiver.test:{}/hook", receiver.port),
            &["document.shared"],
        )
        .await;
    let bob = app.signed_up("bob@example.com").await;
    let document = app.document(&alice, "shared").await;
    let response = app
        .share_document(
            &alice.access_token,
            document["id"].as_str().unwrap(),
            &bob.user_id,
            "read",
        )
        .await;
    assert_eq!(response.status(), 201);

    let id = webhook["id"].as_str().unwrap();
    let delivered = app.delivery(&alice, id, true).await;
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_eq!(delivered["attempts"], 2);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2);
    // The same delivery, twice: the receiver deduplicates on its id.
    assert_eq!(
        hits[0].headers["bulwark-delivery"],
        hits[1].headers["bulwark-delivery"]
    );
    let body: Value = serde_json::from_slice(&hits[1].body).unwrap();
    assert_eq!(body["event"], "document.shared");
    assert_eq!(body["data"]["user_id"], bob.user_id);
    assert_eq!(body["data"]["permission"], "read");
}

/// Webhooks belong to their owner alone: another user (an admin included) cannot list, delete or
/// read the log of one, and gets the same 404 as for an id that does not exist.
#[tokio::test]
async fn another_users_webhook_is_invisible() {
    let hosts = StaticHosts::default();
    hosts.set("hooks.test", vec![ip("93.184.215.14")]);
    let app = app_with_network(&hosts, false, 1).await;
    let alice = app.signed_up("alice@example.com").await;
    let mallory = app.signed_up("mallory@example.com").await;
    let root = app.admin("root@example.com").await;
    let webhook = app
        .webhook(&alice, "https://hooks.test/in", &["document.updated"])
        .await;
    let id = webhook["id"].as_str().unwrap();

    for intruder in [&mallory, &root] {
        let list: Value = app
            .list_webhooks(&intruder.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"], json!([]));
        assert_problem(app.delete_webhook(&intruder.access_token, id).await, 404).await;
        assert_problem(
            app.webhook_deliveries(&intruder.access_token, id).await,
            404,
        )
        .await;
    }
    let missing = uuid::Uuid::new_v4().to_string();
    assert_problem(app.delete_webhook(&alice.access_token, &missing).await, 404).await;

    // Still there for its owner, who may delete it (once).
    let log = app.webhook_deliveries(&alice.access_token, id).await;
    assert_eq!(log.status(), 200);
    assert_eq!(
        app.delete_webhook(&alice.access_token, id).await.status(),
        204
    );
    assert_problem(app.delete_webhook(&alice.access_token, id).await, 404).await;
    assert_eq!(app.audit_events("webhook.deleted").await.len(), 1);
}

/// Other users' document events never reach a webhook: a webhook hears of its owner's documents
/// only, even when its owner can read the document that changed.
#[tokio::test]
async fn a_webhook_hears_only_of_its_owners_documents() {
    let receiver = Receiver::start(Vec::new()).await;
    let hosts = StaticHosts::default();
    hosts.set("receiver.test", vec![ip("127.0.0.1")]);
    let app = app_with_network(&hosts, true, 1).await;
    let alice = app.signed_up("alice@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let webhook = app
        .webhook(
            &alice,
            &format!("http://receiver.test:{}/hook", receiver.port),
            &["document.updated"],
        )
        .await;

    let bobs = app.document(&bob, "public").await;
    app.touch(&bob, &bobs).await;
    let alices = app.document(&alice, "private").await;
    app.touch(&alice, &alices).await;
    app.delivery(&alice, webhook["id"].as_str().unwrap(), true)
        .await;

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let body: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(body["data"]["document_id"], alices["id"]);
}

/// `document.created` is delivered for a new document of the owner, and a webhook hears only the
/// events it subscribed to (the later update is not delivered to it).
#[tokio::test]
async fn a_created_document_is_delivered_as_document_created_and_nothing_else_is() {
    let receiver = Receiver::start(Vec::new()).await;
    let hosts = StaticHosts::default();
    hosts.set("receiver.test", vec![ip("127.0.0.1")]);
    let app = app_with_network(&hosts, true, 1).await;
    let alice = app.signed_up("alice@example.com").await;
    let webhook = app
        .webhook(
            &alice,
            &format!("http://receiver.test:{}/hook", receiver.port),
            &["document.created"],
        )
        .await;
    assert_eq!(webhook["events"], json!(["document.created"]));

    let created = app.document(&alice, "private").await;
    app.touch(&alice, &created).await;
    let delivery = app
        .delivery(&alice, webhook["id"].as_str().unwrap(), true)
        .await;
    assert_eq!(delivery["event"], "document.created");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "only the creation is delivered");
    let body: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(body["event"], "document.created");
    assert_eq!(body["data"]["document_id"], created["id"]);
    assert_eq!(body["data"]["version"], 1);
}

/// Fifty registrations at once against a quota of five: exactly five succeed, the rest get
/// `quota-exceeded`.
#[tokio::test]
async fn fifty_concurrent_registrations_never_overshoot_the_quota() {
    let hosts = StaticHosts::default();
    hosts.set("hooks.test", vec![ip("93.184.215.14")]);
    let app = {
        let hosts = hosts.clone();
        TestApp::spawn_configured(move |config| {
            config.webhooks.test_network = Some(TestNetwork {
                allow_loopback: false,
                hosts,
            });
            config.quotas.free.webhooks = 5;
            config.flow_caps.webhook_create.max = 1000;
        })
        .await
    };
    let alice = app.signed_up("alice@example.com").await;

    let bodies: Vec<Value> = (0..50)
        .map(|i| json!({"url": format!("https://hooks.test/{i}"), "events": ["document.updated"]}))
        .collect();
    let attempts = bodies
        .iter()
        .map(|body| app.create_webhook(&alice.access_token, body));
    let responses = futures_util::future::join_all(attempts).await;
    let mut created = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            403 => {
                let problem = assert_problem(response, 403).await;
                assert!(problem.type_uri.ends_with("quota-exceeded"));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 5);
    let stored: i64 = sqlx::query_scalar("select count(*) from webhooks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 5);
}

/// Registering is a sensitive flow: past the per-hour cap the answer is 429 with `Retry-After`,
/// before the target is even resolved.
#[tokio::test]
async fn registrations_past_the_hourly_cap_are_refused() {
    let hosts = StaticHosts::default();
    hosts.set("hooks.test", vec![ip("93.184.215.14")]);
    let app = {
        let hosts = hosts.clone();
        TestApp::spawn_configured(move |config| {
            config.webhooks.test_network = Some(TestNetwork {
                allow_loopback: false,
                hosts,
            });
            config.flow_caps.webhook_create.max = 2;
        })
        .await
    };
    let alice = app.signed_up("alice@example.com").await;
    for _ in 0..2 {
        app.webhook(&alice, "https://hooks.test/in", &["document.updated"])
            .await;
    }
    let response = app
        .create_webhook(
            &alice.access_token,
            &json!({"url": "https://hooks.test/in", "events": ["document.updated"]}),
        )
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 3600);
    assert_problem(response, 429).await;
}

/// Bad bodies are 400 with every field named; unknown fields (an `owner_id`, a `secret` of the
/// caller's choosing) are refused; nothing is stored.
#[tokio::test]
async fn invalid_registrations_are_refused_with_every_field_named() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up("alice@example.com").await;

    let problem = assert_problem(
        app.create_webhook(
            &alice.access_token,
            &json!({"url": "ftp://x", "events": []}),
        )
        .await,
        400,
    )
    .await;
    let mut fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["events", "url"]);

    for events in [
        json!(["document.updated", "document.updated"]),
        json!(["user.deleted"]),
        json!(["document.*"]),
    ] {
        let problem = assert_problem(
            app.create_webhook(
                &alice.access_token,
                &json!({"url": "https://hooks.example.com/in", "events": events}),
            )
            .await,
            400,
        )
        .await;
        assert_eq!(problem.errors[0].field, "events");
    }

    let long = format!("https://hooks.example.com/{}", "a".repeat(2100));
    let problem = assert_problem(
        app.create_webhook(
            &alice.access_token,
            &json!({"url": long, "events": ["document.updated"]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(problem.errors[0].code, "too_long");

    for extra in [
        json!({"url": "https://hooks.example.com/in", "events": ["document.updated"], "secret": "mine"}),
        json!({"url": "https://hooks.example.com/in", "events": ["document.updated"], "owner_id": alice.user_id}),
    ] {
        assert_problem(app.create_webhook(&alice.access_token, &extra).await, 400).await;
    }
    // An id that cannot exist is simply not found (the service-wide rule for path ids).
    assert_problem(
        app.authed(
            Method::GET,
            "/api/v1/webhooks/not-a-uuid/deliveries",
            &alice.access_token,
            None,
        )
        .await,
        404,
    )
    .await;
    let webhooks: i64 = sqlx::query_scalar("select count(*) from webhooks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(webhooks, 0);
}
