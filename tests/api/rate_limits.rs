//! The general rate limits end to end: exactly the quota passes and the next request is refused
//! with the IETF headers and a `Retry-After` that lets the client in when it has waited; the
//! allowance comes back; the attacks — rotating `X-Forwarded-For` from an untrusted peer, path
//! variants, many addresses for one account — never reach a fresh bucket.

use std::time::Duration;

use reqwest::{Method, Response};

use crate::helpers::{TestApp, assert_problem};

const JWKS: &str = "/.well-known/jwks.json";

impl TestApp {
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Vec<&'a str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn exactly_the_quota_passes_then_429_with_headers_and_the_allowance_comes_back() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_IP_PER_WINDOW", "5"),
        ("RATE_LIMIT_WINDOW_SECS", "2"),
    ])
    .await;
    for remaining in (0..5).rev() {
        let response = app.get_with(JWKS, &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-policy"), [r#""ip";q=5;w=2"#]);
        let limit = header(&response, "ratelimit");
        assert_eq!(limit.len(), 1);
        assert!(
            limit[0].starts_with(&format!(r#""ip";r={remaining};t="#)),
            "{limit:?}"
        );
    }
    let refused = app.get_with(JWKS, &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "ratelimit-policy"), [r#""ip";q=5;w=2"#]);
    assert!(header(&refused, "ratelimit")[0].starts_with(r#""ip";r=0;t="#));
    let retry_after: u64 = header(&refused, "retry-after")[0].parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(refused, 429).await;
    assert!(
        problem.type_uri.ends_with("rate-limited"),
        "{}",
        problem.type_uri
    );

    // Waiting exactly Retry-After is enough (it is rounded up, never down).
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.get_with(JWKS, &[]).await.status(), 200);
    // After a whole window the whole quota is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..5 {
        assert_eq!(app.get_with(JWKS, &[]).await.status(), 200);
    }
    assert_eq!(app.get_with(JWKS, &[]).await.status(), 429);
}

#[tokio::test]
async fn a_client_using_90_percent_of_its_limit_never_sees_a_429() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_IP_PER_WINDOW", "20"),
        ("RATE_LIMIT_WINDOW_SECS", "2"),
    ])
    .await;
    // Three windows in a row, each with 18 of the 20 allowed, sent as a burst.
    for window in 0..3 {
        for i in 0..18 {
            let response = app.get_with(JWKS, &[]).await;
            assert_eq!(response.status(), 200, "window {window}, request {i}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn headers_and_path_variants_from_an_untrusted_peer_never_reach_a_fresh_bucket() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_IP_PER_WINDOW", "3")]).await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let spoof = format!("198.51.100.{i}");
        let path = [
            "/.well-known/jwks.json",
            "/.well-known/jwks.json/",
            "//.well-known/jwks.json",
            "/.WELL-KNOWN/jwks.json",
            "/.well-known/jwks.json;x",
            "/.well-known/%6Awks.json",
        ][i % 6];
        let response = app
            .get_with(
                path,
                &[
                    ("x-forwarded-for", &spoof),
                    ("forwarded", &format!("for={spoof}")),
                ],
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    let passed = statuses.iter().filter(|s| **s != 429).count();
    assert_eq!(passed, 3, "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_bucket() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_IP_PER_WINDOW", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let a = [("x-forwarded-for", "203.0.113.1")];
    let b = [("x-forwarded-for", "203.0.113.2")];
    assert_eq!(app.get_with(JWKS, &a).await.status(), 200);
    assert_eq!(app.get_with(JWKS, &a).await.status(), 200);
    assert_eq!(app.get_with(JWKS, &a).await.status(), 429);
    // A left-most lie does not make a new client either.
    let lying = [("x-forwarded-for", "198.51.100.9, 203.0.113.1")];
    assert_eq!(app.get_with(JWKS, &lying).await.status(), 429);
    assert_eq!(app.get_with(JWKS, &b).await.status(), 200);
    // IPv6 clients are counted by their /64.
    let v6a = [("x-forwarded-for", "2001:db8:1:2::a")];
    let v6b = [("x-forwarded-for", "2001:db8:1:2:ffff::b")];
    assert_eq!(app.get_with(JWKS, &v6a).await.status(), 200);
    assert_eq!(app.get_with(JWKS, &v6b).await.status(), 200);
    assert_eq!(app.get_with(JWKS, &v6a).await.status(), 429);
}

#[tokio::test]
async fn an_account_is_limited_whatever_address_it_comes_from() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_USER_PER_WINDOW", "3"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let ada = app.signed_up("ada@example.com").await;
    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..5 {
        let response = app
            .client
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(&ada.access_token)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    // `signed_up` already read /users/me once.
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    let refused = last.unwrap();
    let policies = header(&refused, "ratelimit-policy");
    assert!(policies.contains(&r#""user";q=3;w=60"#), "{policies:?}");
    // Every policy that applied is reported on an allowed response of an authenticated route:
    // the user's, the daily quota's and the address's.
    let other = app.signed_up("bob@example.com").await;
    let response = app
        .authed(Method::GET, "/api/v1/users/me", &other.access_token, None)
        .await;
    assert_eq!(response.status(), 200);
    let mut policies = header(&response, "ratelimit-policy");
    policies.sort_unstable();
    assert_eq!(
        policies,
        [
            r#""day";q=10000;w=86400"#,
            r#""ip";q=1000000;w=60"#,
            r#""user";q=3;w=60"#
        ]
    );
}

#[tokio::test]
async fn health_probes_are_not_limited() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_IP_PER_WINDOW", "2")]).await;
    for _ in 0..10 {
        let response = app.get_with("/health/live", &[]).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "ratelimit").is_empty());
    }
}

/// A GraphQL operation is charged its cost: 100 aliased fields in one request cost 100, so the
/// aliases cannot multiply what one request is allowed.
#[tokio::test]
async fn a_graphql_operation_is_charged_its_cost() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_USER_PER_WINDOW", "150"),
        ("GRAPHQL_MAX_ALIASES", "100"),
        ("GRAPHQL_MAX_ROOT_FIELDS", "100"),
    ])
    .await;
    let ada = app.signed_up("ada@example.com").await;
    let aliases: String = (0..100).map(|i| format!("a{i}: __typename ")).collect();
    let query = format!("{{ {aliases} }}");
    let first = app
        .graphql_as(Some(&ada.access_token), &query, serde_json::json!({}))
        .await;
    assert_eq!(first.status(), 200);
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["extensions"]["cost"], 100, "{body}");
    // 1 (sign-in's /users/me) + 100 spent of 150: a second such operation does not fit…
    let second = app
        .graphql_as(Some(&ada.access_token), &query, serde_json::json!({}))
        .await;
    assert_eq!(second.status(), 429);
    assert!(!header(&second, "retry-after").is_empty());
    // …but a cheap one still does.
    let cheap = app
        .graphql_as(
            Some(&ada.access_token),
            "{ me { id } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(cheap.status(), 200);
}

#[test]
fn every_strictly_limited_route_exists() {
    let doc = serde_json::to_value(bulwark_app::api::openapi()).unwrap();
    for (route, _) in bulwark_web::rate_limit::STRICT_ROUTES {
        assert!(
            doc["paths"].get(route).is_some(),
            "{route} is not a route: its strict limit would never apply"
        );
    }
}

#[tokio::test]
async fn each_sign_in_route_has_a_stricter_limit_per_address() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_AUTH_PER_WINDOW", "3")]).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = app
            .login(&format!("nobody{i}@example.com"), "Wrong-Password-123")
            .await;
        statuses.push(response.status().as_u16());
        if i == 4 {
            let policies = header(&response, "ratelimit-policy");
            assert!(policies.contains(&r#""auth";q=3;w=60"#), "{policies:?}");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // Another sensitive route has its own bucket; an ordinary route is not touched.
    let refresh = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": "bogus"}))
        .send()
        .await
        .unwrap();
    assert_ne!(refresh.status(), 429);
    assert_eq!(app.get_with(JWKS, &[]).await.status(), 200);
}

#[tokio::test]
async fn one_accounts_sign_in_is_limited_across_rotating_addresses() {
    let app = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.signed_up("ada@example.com").await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let response = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(
                &serde_json::json!({"email": "ada@example.com", "password": "Wrong-Password-123"}),
            )
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let first_refusal = statuses.iter().position(|s| *s == 429).unwrap();
    assert!(
        statuses[first_refusal..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn socket_upgrades_have_their_own_limit_per_address() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_UPGRADE_PER_WINDOW", "2")]).await;
    let url = app.url("/api/v1/ws").replacen("http://", "ws://", 1);
    assert!(tokio_tungstenite::connect_async(&url).await.is_ok());
    assert!(tokio_tungstenite::connect_async(&url).await.is_ok());
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("a third upgrade was not refused: {:?}", other.map(|_| ())),
    }
}

/// A Redis of the test's own, on a free port, killed when dropped.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two instances sharing a Redis allow the limit once between them; when that Redis dies, no
/// request fails and each instance goes on limiting on its own.
#[tokio::test]
async fn instances_sharing_redis_allow_the_limit_once_and_survive_losing_it() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let prefix = format!("bulwark-test-{}", uuid::Uuid::new_v4());
    let overrides = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("REDIS_FANOUT_CHANNEL", prefix.as_str()),
        ("RATE_LIMIT_IP_PER_WINDOW", "20"),
    ];
    let app = TestApp::spawn_with(&overrides).await;
    let second = app.second_instance_with(&overrides).await;
    let bases = [app.url(""), second];

    let mut allowed = 0;
    for i in 0..40 {
        let response = app
            .client
            .get(format!("{}{JWKS}", bases[i % 2]))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(allowed, 20, "two instances together allow the limit once");

    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(app.get_with(JWKS, &[]).await.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s < 500), "{statuses:?}");
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!(passed <= 20, "the local fallback limits too: {statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}
