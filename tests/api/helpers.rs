//! `TestApp`: the real application on a random port, a fresh database, and one method per endpoint.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use bulwark_app::config::{Config, Env};
use bulwark_app::startup::{Application, TestRoutes};
use bulwark_persistence::PgPool;
use bulwark_persistence::outbox::PgOutbox;
use bulwark_security::sealing::KeyringSealer;
use bulwark_testkit::TestDatabase;
use bulwark_web::problem::ProblemError;
use reqwest::{Method, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

/// The contract's security headers and their exact values (HSTS is checked separately: it depends
/// on TLS).
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// A running app.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A pool on the app's database, for reading what the API does not show (the outbox, audit
    /// rows).
    pub pool: PgPool,
    /// The outbox, opened with the app's own keyring (tests read mails from it).
    pub outbox: PgOutbox,
    /// The app's signing key (PKCS#8 DER), its id and its public key: for forging tokens the app
    /// must refuse.
    pub signing_pkcs8: Vec<u8>,
    pub signing_kid: String,
    pub public_key: Vec<u8>,
    /// The configuration the app runs with (for building a second instance).
    pub config: Config,
    pub db: TestDatabase,
}

/// The password every test account uses (it passes the default policy).
pub const PASSWORD: &str = "Correct-Horse-Battery-9-Staple";

/// A registered, signed-in account.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub user_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// A configuration that passes every check: fresh keys, `APP_ENV=test`, port 0, one worker.
pub fn test_config(overrides: &[(&str, &str)]) -> Config {
    let keys = bulwark_security::keys::generate_keys().unwrap();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("APP_ENV", "test"),
        // Replaced by the test database's settings below; it only has to parse.
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused"),
        ("JWT_SIGNING_KEY_ID", &keys.jwt_key_id),
        ("JWT_SIGNING_KEY", keys.jwt_signing_key.expose_secret()),
        (
            "DATA_ENCRYPTION_KEYS",
            keys.data_encryption_keys.expose_secret(),
        ),
        ("PORT", "0"),
        ("HTTP_WORKERS", "1"),
        ("RUST_LOG", "warn"),
        // The general rate limits are out of the way of tests about something else (which make
        // hundreds of requests from one address); `rate_limits.rs` sets its own.
        ("RATE_LIMIT_IP_PER_WINDOW", "1000000"),
        ("RATE_LIMIT_USER_PER_WINDOW", "1000000"),
        ("RATE_LIMIT_AUTH_PER_WINDOW", "1000000"),
        ("RATE_LIMIT_UPGRADE_PER_WINDOW", "1000000"),
    ];
    pairs.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
    pairs.extend_from_slice(overrides);
    let env = Env::from_pairs(pairs).unwrap();
    Config::load(&env).unwrap_or_else(|problems| panic!("test config refused: {problems:?}"))
}

impl TestApp {
    /// The app with default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// The app with some variables overridden (`[("CORS_ALLOWED_ORIGINS", "https://a.example")]`).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let db = TestDatabase::migrated().await;
        let mut config = test_config(overrides);
        config.database = db.settings();
        Self::start(config, db).await
    }

    /// The app with a configuration the test edits after loading (e.g. an unreachable database).
    pub async fn spawn_configured(edit: impl FnOnce(&mut Config)) -> Self {
        let db = TestDatabase::migrated().await;
        let mut config = test_config(&[]);
        config.database = db.settings();
        edit(&mut config);
        Self::start(config, db).await
    }

    /// The app started again on the same database with a fresh configuration that `edit` adjusts
    /// (new JWT keys: sign in again). The old instance keeps running until the test ends.
    pub async fn restarted(self, edit: impl FnOnce(&mut Config)) -> Self {
        let TestApp { db, .. } = self;
        let mut config = test_config(&[]);
        config.database = db.settings();
        edit(&mut config);
        Self::start(config, db).await
    }

    /// A second, independent instance of the service on the same database (its own keys, caches
    /// and listeners), running until the test ends; returns its base URL. Sign in there to use it.
    pub async fn second_instance(&self) -> String {
        self.second_instance_with(&[]).await
    }

    /// [`second_instance`](Self::second_instance) with some variables overridden.
    pub async fn second_instance_with(&self, overrides: &[(&str, &str)]) -> String {
        let mut config = test_config(overrides);
        config.database = self.db.settings();
        let app = Application::build(&config, None)
            .await
            .expect("the second instance starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    /// Signs in on the instance at `base` (each instance has its own signing keys) and returns
    /// the access token.
    pub async fn access_token_at(&self, base: &str, email: &str) -> String {
        let pair: serde_json::Value = self
            .client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pair["access_token"].as_str().unwrap().to_owned()
    }

    async fn start(config: Config, db: TestDatabase) -> Self {
        let app = Application::build(&config, Some(probe_routes()))
            .await
            .expect("the app starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self::assemble(address, client, config, db)
    }

    /// The handle of an app already started at `address`, reached with `client`.
    pub fn assemble(
        address: String,
        client: reqwest::Client,
        config: Config,
        db: TestDatabase,
    ) -> Self {
        let pool = db.pool.clone();
        let sealer = KeyringSealer::new(&config.keys.data_encryption).unwrap();
        Self {
            address,
            client,
            outbox: PgOutbox::new(pool.clone(), Arc::new(sealer)),
            pool,
            signing_pkcs8: config.keys.jwt_signing.pkcs8_der().expose_secret().to_vec(),
            signing_kid: config.keys.jwt_signing.kid().as_str().to_owned(),
            public_key: config.keys.jwt_signing.public_key().to_vec(),
            config,
            db,
        }
    }

    /// A second instance of the service on the same database (its own caches): what a
    /// multi-instance deployment looks like from the first one.
    pub fn other_instance(&self) -> bulwark_app::startup::AppState {
        bulwark_app::startup::AppState::new(&self.config, self.db.pool.clone(), None).unwrap()
    }

    pub fn port(&self) -> u16 {
        self.address.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Sends bytes exactly as given (no client library normalises paths or framing) and returns
    /// everything the server sends until it closes the connection. Fails the test when the server
    /// keeps the connection open for 15 s.
    pub async fn raw_exchange(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port()))
            .await
            .unwrap();
        stream.write_all(request).await.unwrap();
        let mut received = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut received)).await;
        assert!(
            read.is_ok(),
            "the server kept the connection open: {}",
            String::from_utf8_lossy(&received)
        );
        String::from_utf8_lossy(&received).into_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn request(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).await
    }

    // --- One method per endpoint -------------------------------------------------------------

    pub async fn get_liveness(&self) -> Response {
        self.get("/health/live").await
    }

    pub async fn get_readiness(&self) -> Response {
        self.get("/health/ready").await
    }

    pub async fn get_openapi(&self) -> Response {
        self.get("/openapi.json").await
    }

    pub async fn get_jwks(&self) -> Response {
        self.get("/.well-known/jwks.json").await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A request with `Authorization: Bearer <token>`.
    pub async fn authed(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn register(&self, email: &str, password: &str, display_name: &str) -> Response {
        self.post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": password, "display_name": display_name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    pub async fn logout(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/v1/auth/logout",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    pub async fn logout_all(&self, access_token: &str) -> Response {
        self.authed(Method::POST, "/api/v1/auth/logout-all", access_token, None)
            .await
    }

    pub async fn list_sessions(&self, access_token: &str) -> Response {
        self.authed(Method::GET, "/api/v1/auth/sessions", access_token, None)
            .await
    }

    pub async fn revoke_session(&self, access_token: &str, id: &str) -> Response {
        self.authed(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{id}"),
            access_token,
            None,
        )
        .await
    }

    pub async fn forgot_password(&self, email: &str) -> Response {
        self.post_json("/api/v1/auth/password/forgot", &json!({"email": email}))
            .await
    }

    pub async fn reset_password(&self, token: &str, new_password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "new_password": new_password}),
        )
        .await
    }

    pub async fn verify_email(&self, token: &str) -> Response {
        self.post_json("/api/v1/auth/email/verify", &json!({"token": token}))
            .await
    }

    pub async fn get_me(&self, access_token: &str) -> Response {
        self.authed(Method::GET, "/api/v1/users/me", access_token, None)
            .await
    }

    pub async fn patch_me(&self, access_token: &str, body: &Value) -> Response {
        self.authed(Method::PATCH, "/api/v1/users/me", access_token, Some(body))
            .await
    }

    pub async fn change_password(&self, access_token: &str, current: &str, new: &str) -> Response {
        self.authed(
            Method::POST,
            "/api/v1/users/me/password",
            access_token,
            Some(&json!({"current_password": current, "new_password": new})),
        )
        .await
    }

    pub async fn delete_me(&self, access_token: &str, password: &str) -> Response {
        self.authed(
            Method::DELETE,
            "/api/v1/users/me",
            access_token,
            Some(&json!({"password": password})),
        )
        .await
    }

    /// Registers `email` with [`PASSWORD`] and signs in.
    pub async fn signed_up(&self, email: &str) -> Account {
        let registered = self.register(email, PASSWORD, "Test Person").await;
        assert_eq!(
            registered.status(),
            201,
            "{}",
            registered.text().await.unwrap()
        );
        self.signed_in(email, PASSWORD).await
    }

    /// Signs in (expects success).
    pub async fn signed_in(&self, email: &str, password: &str) -> Account {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let pair: Value = response.json().await.unwrap();
        let access_token = pair["access_token"].as_str().unwrap().to_owned();
        let me: Value = self.get_me(&access_token).await.json().await.unwrap();
        Account {
            email: email.to_owned(),
            user_id: me["id"].as_str().unwrap().to_owned(),
            access_token,
            refresh_token: pair["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// The token in the newest mail of `template` to `email`, waiting up to 5 s for it (some mails
    /// are queued after the response).
    pub async fn mailed_token(&self, email: &str, template: &str) -> String {
        for _ in 0..100 {
            if let Some(mail) = self.outbox.latest_for(email, template).await.unwrap() {
                return mail
                    .token
                    .as_ref()
                    .expect("the mail carries a token")
                    .expose_secret()
                    .to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {template} mail to {email}");
    }

    /// How many mails of `template` went to `email`.
    pub async fn mail_count(&self, email: &str, template: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from mail_outbox where lower(recipient) = lower($1) and template = $2",
        )
        .bind(email)
        .bind(template)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Audit rows of one type, oldest first, as JSON objects.
    pub async fn audit_events(&self, event_type: &str) -> Vec<Value> {
        sqlx::query_scalar::<_, Value>(
            "select to_jsonb(a) from audit_events a where event_type = $1 order by id",
        )
        .bind(event_type)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    // --- Probe routes (test-only; see `probe_routes`) -----------------------------------------

    pub async fn post_echo(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(self.url("/__probe/echo")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get_panic(&self) -> Response {
        self.get("/__probe/panic").await
    }

    pub async fn get_internal_error(&self) -> Response {
        self.get("/__probe/internal-error").await
    }
}

/// Debug events of the password hasher from every app in this test binary, as JSON lines with their
/// span list (so with the request id). Installed once, globally: the servers run on other threads.
pub fn hasher_events() -> &'static bulwark_testkit::CapturedLogs {
    static LOGS: std::sync::OnceLock<bulwark_testkit::CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = bulwark_testkit::CapturedLogs::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_span_list(true)
            .with_env_filter("warn,bulwark_security::password=debug,bulwark_web::middleware::request_context=info")
            .with_writer(move || sink.clone())
            .finish();
        // Another test binary-wide default cannot exist: this is the only place that sets one.
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// The body every error has.
#[derive(Debug, Deserialize)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub request_id: String,
    #[serde(default)]
    pub errors: Vec<FieldErrorBody>,
}

#[derive(Debug, Deserialize)]
pub struct FieldErrorBody {
    pub field: String,
    pub code: String,
    #[allow(dead_code)]
    pub message: String,
}

/// Asserts that a response is a well-formed problem of this status, with the request id of the
/// header in the body, and returns it.
pub async fn assert_problem(response: Response, status: u16) -> ProblemBody {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let problem: ProblemBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a problem ({e}): {text}"));
    assert_eq!(problem.status, status);
    assert_eq!(problem.request_id, header_id);
    assert!(
        !problem.title.is_empty() && !problem.detail.is_empty() && !problem.type_uri.is_empty()
    );
    problem
}

/// Asserts every contract security header, and the absence of `Server`/`X-Powered-By`.
pub fn assert_security_headers(response: &Response) {
    let headers = response.headers();
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{name} on {}",
            response.url()
        );
    }
    let permissions = headers
        .get("permissions-policy")
        .expect("permissions-policy")
        .to_str()
        .unwrap();
    assert!(permissions.contains("camera=()") && permissions.contains("geolocation=()"));
    assert!(
        headers.get("server").is_none(),
        "Server header leaks the stack"
    );
    assert!(headers.get("x-powered-by").is_none());
    assert!(headers.get("x-request-id").is_some());
}

/// Test-only routes: they exercise the middleware on kinds of handler the foundation does not
/// have yet (a JSON body, a panic, an internal error with a sensitive cause, a slow handler).
pub fn probe_routes() -> TestRoutes {
    Arc::new(|cfg: &mut web::ServiceConfig| {
        cfg.route("/__probe/echo", web::post().to(echo))
            .route("/__probe/panic", web::get().to(panics))
            .route("/__probe/internal-error", web::get().to(internal_error))
            .route("/__probe/slow", web::get().to(slow));
    })
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct EchoRequest {
    name: String,
    count: u8,
}

async fn echo(body: web::Json<EchoRequest>) -> web::Json<EchoRequest> {
    body
}

async fn panics() -> &'static str {
    panic!("probe handler panicked on purpose")
}

async fn internal_error() -> Result<&'static str, ProblemError> {
    Err(ProblemError::internal(std::io::Error::other(
        "connection to postgres://app:hunter2@10.0.0.5/prod failed: relation \"users\" does not exist",
    )))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}
