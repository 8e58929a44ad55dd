//! Typed configuration from the environment, checked once at start-up.
//!
//! Every setting comes from an environment variable (`.env.example` documents each one). Loading
//! collects *every* problem before giving up, so an operator fixes the whole list in one go; each
//! problem is one line naming the variable and what is wrong — never its value, since most of the
//! values that can be wrong are secrets.
//!
//! Secrets (`DATABASE_URL`, `JWT_SIGNING_KEY`, `DATA_ENCRYPTION_KEYS`) can also be given as a file
//! path in `<NAME>_FILE` (Docker and Kubernetes secrets). They are refused when missing, malformed,
//! too short, non-random, or still equal to the placeholder in `.env.example`.
//!
//! `.env` is read only when the *process* environment says `APP_ENV=development`; an unset
//! `APP_ENV` means production, so a forgotten variable fails closed rather than open.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use bulwark_domain::account::MAX_RESET_TOKEN_TTL;
use bulwark_domain::password::{PasswordPolicy, PolicyStyle};
use bulwark_domain::session::SessionPolicy;
use bulwark_domain::throttle::ThrottlePolicy;
use bulwark_domain::token::MAX_ACCESS_TOKEN_TTL_SECS;
use bulwark_persistence::{DatabaseSettings, PgConnectOptions};
use bulwark_security::keys::{DataKeyring, JwtSigningKey, KeyId};
use bulwark_security::password::{
    Argon2Settings, MIN_ITERATIONS, MIN_MEMORY_KIB, MIN_PEPPER_BYTES,
};
use bulwark_security::tokens::{TokenSettings, VerificationKey};
use bulwark_web::client_ip::{Cidr, ForwardingHeader, TrustedProxies};
use bulwark_web::cors::CorsPolicy;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,actix_http::h1::dispatcher=off";

/// `.env.example`, compiled in: its secret values are the placeholders that must never be used.
const ENV_EXAMPLE: &str = include_str!("../../../.env.example");

/// Variables that may be given through a file named by `<NAME>_FILE`.
const FILE_CAPABLE: [&str; 6] = [
    "DATABASE_URL",
    "JWT_SIGNING_KEY",
    "JWT_SIGNING_KEY_ID",
    "DATA_ENCRYPTION_KEYS",
    "PASSWORD_PEPPER",
    "SMTP_URL",
];

/// Where the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// A developer's machine: `.env` is read, the docs UI may be on, logs are text.
    Development,
    /// The test suite: like development, but nothing is read from `.env`.
    Test,
    /// Everything strict: TLS required, no wildcard CORS, no docs UI, JSON logs.
    Production,
}

impl FromStr for AppEnv {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "development" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" => Ok(Self::Production),
            _ => Err(()),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production default).
    Json,
    /// Human-readable lines (development default).
    Text,
}

/// The identity providers to sign in with, and how to reach them.
#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    /// Each configured provider (discovered at start-up; an unreachable issuer stops the start).
    pub providers: Vec<bulwark_security::oauth::ProviderConfig>,
    /// Timeouts and the response cap of calls to providers.
    pub http: bulwark_security::oauth::HttpSettings,
}

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Attempts, backoff, leases, and whether plain `http` may be registered (development only).
    pub delivery: bulwark_domain::webhooks::DeliveryPolicy,
    /// Longest wait for a receiver's TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest whole attempt, reading the (capped) response included.
    pub timeout: Duration,
    /// Largest response body read from a receiver; a larger one fails the attempt.
    pub max_response_bytes: usize,
    /// How often the worker looks for due deliveries when the queue was empty.
    pub poll_interval: Duration,
    /// Test-only network adjustments (receivers on loopback, fixed DNS answers). Never read from
    /// the environment: only the test harness sets this, in code, so no deployment can switch the
    /// SSRF policy off by configuration.
    pub test_network: Option<bulwark_security::webhook_transport::TestNetwork>,
}

/// The whole configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the service runs.
    pub env: AppEnv,
    /// HTTP server settings.
    pub http: HttpSettings,
    /// PostgreSQL settings.
    pub database: DatabaseSettings,
    /// `DATABASE_URL` as given, for creating the database in development.
    pub database_url: SecretString,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Key material.
    pub keys: Keys,
    /// Passwords, sessions, throttling and account mails.
    pub identity: IdentitySettings,
    /// Quotas by plan.
    pub quotas: bulwark_domain::quota::PlanLimits,
    /// Caps on sensitive flows.
    pub flow_caps: bulwark_domain::flow::FlowCaps,
    /// SMTP delivery of the outbox; `None` keeps mail in the outbox.
    pub mail: Option<crate::delivery::MailSettings>,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Sign-in with identity providers (none configured: the OAuth routes answer 404).
    pub oauth: OAuthSettings,
    /// GraphQL limits.
    pub graphql: bulwark_transport_graphql::Limits,
    /// How live notifications travel between instances.
    pub fanout: FanoutSettings,
    /// The general rate limits.
    pub rate_limits: RateLimitSettings,
    /// `METRICS_TOKEN`: the bearer token a Prometheus scraper sends to `GET /metrics` (unset: the
    /// route answers 404). At least 32 characters.
    pub metrics_token: Option<SecretString>,
    /// `METRICS_ADDR`: a separate listener serving only `GET /metrics`, without a token — bind it
    /// to an interface only the scraper reaches (unset: no such listener).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// When the abuse watch raises a security alert.
    pub alerts: bulwark_domain::abuse::Thresholds,
    /// Access-token settings.
    pub tokens: TokenSettings,
    /// Logging.
    pub log: LogSettings,
}

/// The general rate limits of every route (GCRA; see `bulwark_web::rate_limit`).
#[derive(Debug)]
pub struct RateLimitSettings {
    /// Every request per client IP (`RATE_LIMIT_IP_PER_WINDOW` per `RATE_LIMIT_WINDOW_SECS`).
    pub ip: bulwark_domain::rate_limit::RatePolicy,
    /// Authenticated requests per user or API key (`RATE_LIMIT_USER_PER_WINDOW`).
    pub principal: bulwark_domain::rate_limit::RatePolicy,
    /// Each sign-in and recovery route, per client IP (`RATE_LIMIT_AUTH_PER_WINDOW`).
    pub auth: bulwark_domain::rate_limit::RatePolicy,
    /// Each socket upgrade route, per client IP (`RATE_LIMIT_UPGRADE_PER_WINDOW`).
    pub upgrade: bulwark_domain::rate_limit::RatePolicy,
    /// Most keys the in-process limiter remembers (`RATE_LIMIT_MAX_KEYS`).
    pub max_keys: usize,
    /// With `REDIS_URL`: the limits are shared by every instance through Redis (keys under
    /// `REDIS_KEY_PREFIX`), with the in-process limiter as the fallback.
    pub shared: Option<SharedLimits>,
}

/// Where the instances share their rate-limit state.
pub struct SharedLimits {
    /// `REDIS_URL` (a secret: it may hold a password).
    pub url: SecretString,
    /// `REDIS_TLS_CA_PATH`'s certificates (PEM), for a `rediss://` server of a private CA.
    pub root_certs: Option<Vec<u8>>,
    /// `REDIS_KEY_PREFIX`: deployments sharing one Redis need different prefixes.
    pub prefix: String,
}

impl fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLimits")
            .field("url", &"[REDACTED]")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Reads the general rate limits.
// The casts are lossless: each number was range-checked by `number`.
#[allow(clippy::cast_possible_truncation)]
fn rate_limit_settings(r: &mut Reader<'_>) -> RateLimitSettings {
    use bulwark_domain::rate_limit::RatePolicy;
    let window = Duration::from_secs(r.number("RATE_LIMIT_WINDOW_SECS", 60, 1..=3600));
    let ip = r.number("RATE_LIMIT_IP_PER_WINDOW", 600, 1..=1_000_000) as u32;
    let user = r.number("RATE_LIMIT_USER_PER_WINDOW", 300, 1..=1_000_000) as u32;
    let auth = r.number("RATE_LIMIT_AUTH_PER_WINDOW", 20, 1..=1_000_000) as u32;
    let upgrade = r.number("RATE_LIMIT_UPGRADE_PER_WINDOW", 30, 1..=1_000_000) as u32;
    let max_keys = r.number("RATE_LIMIT_MAX_KEYS", 100_000, 1000..=10_000_000) as usize;
    RateLimitSettings {
        ip: RatePolicy::new("ip", ip, window),
        principal: RatePolicy::new("user", user, window),
        auth: RatePolicy::new("auth", auth, window),
        upgrade: RatePolicy::new("upgrade", upgrade, window),
        max_keys,
        // The URL itself is checked (and refused with a message) by `fanout_settings`.
        shared: r.env.get("REDIS_URL").map(|url| SharedLimits {
            url: SecretString::from(url.to_owned()),
            root_certs: redis_root_certs(r.env),
            prefix: r
                .env
                .get("REDIS_KEY_PREFIX")
                .unwrap_or("bulwark")
                .to_owned(),
        }),
    }
}

/// Reads when the abuse watch alerts (`bulwark_domain::abuse`): events per `ALERT_WINDOW_SECS`;
/// 0 turns a rule off.
// The casts are lossless: each number was range-checked by `number`.
#[allow(clippy::cast_possible_truncation)]
fn alert_settings(r: &mut Reader<'_>) -> bulwark_domain::abuse::Thresholds {
    let d = bulwark_domain::abuse::Thresholds::default();
    let mut count =
        |name: &str, default: u32| r.number(name, u64::from(default), 0..=1_000_000) as u32;
    let login_failures_global = count("ALERT_LOGIN_FAILURES_GLOBAL", d.login_failures_global);
    let login_failures_per_account = count(
        "ALERT_LOGIN_FAILURES_PER_ACCOUNT",
        d.login_failures_per_account,
    );
    let login_failures_per_ip = count("ALERT_LOGIN_FAILURES_PER_IP", d.login_failures_per_ip);
    let refresh_reuse = count("ALERT_REFRESH_REUSE", d.refresh_reuse);
    let access_denials_per_user = count("ALERT_ACCESS_DENIALS_PER_USER", d.access_denials_per_user);
    let rate_limited_per_ip = count("ALERT_RATE_LIMITED_PER_IP", d.rate_limited_per_ip);
    let rate_limited_global = count("ALERT_RATE_LIMITED_GLOBAL", d.rate_limited_global);
    bulwark_domain::abuse::Thresholds {
        window: Duration::from_secs(r.number("ALERT_WINDOW_SECS", d.window.as_secs(), 1..=86_400)),
        login_failures_global,
        login_failures_per_account,
        login_failures_per_ip,
        refresh_reuse,
        access_denials_per_user,
        rate_limited_per_ip,
        rate_limited_global,
    }
}

/// How live notifications (GraphQL subscriptions, `/api/v1/ws`) reach every instance.
pub enum FanoutSettings {
    /// PostgreSQL `LISTEN`/`NOTIFY` on the service's own database (the default: nothing more to run).
    Postgres,
    /// Redis pub/sub (`REDIS_URL` set), on this channel.
    Redis {
        /// `REDIS_URL`: it may hold a password, so it is a secret and never printed.
        url: SecretString,
        /// `REDIS_TLS_CA_PATH`'s certificates (PEM), for a `rediss://` server of a private CA.
        root_certs: Option<Vec<u8>>,
        /// `REDIS_FANOUT_CHANNEL`: deployments sharing one Redis need different channels.
        channel: String,
    },
}

impl fmt::Debug for FanoutSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres => f.write_str("Postgres"),
            Self::Redis { channel, .. } => f
                .debug_struct("Redis")
                .field("url", &"[REDACTED]")
                .field("channel", channel)
                .finish(),
        }
    }
}

/// Reads the fan-out: Redis when `REDIS_URL` is set (checked now, never echoed), else PostgreSQL.
fn fanout_settings(r: &mut Reader<'_>) -> FanoutSettings {
    let channel = r
        .env
        .get("REDIS_FANOUT_CHANNEL")
        .unwrap_or("bulwark:document_events")
        .to_owned();
    let ca_path = r.env.get("REDIS_TLS_CA_PATH").map(str::to_owned);
    let Some(url) = r.env.get("REDIS_URL").map(str::to_owned) else {
        if ca_path.is_some() {
            r.fail("REDIS_TLS_CA_PATH", "needs a rediss:// REDIS_URL; unset it");
        }
        return FanoutSettings::Postgres;
    };
    if let Some(path) = &ca_path
        && let Err(error) = crate::tls::read_chain(Path::new(path))
    {
        r.fail("REDIS_TLS_CA_PATH", &error.to_string());
        return FanoutSettings::Postgres;
    }
    let root_certs = redis_root_certs(r.env);
    use bulwark_persistence::redis_fanout::{RedisFanout, RedisFanoutError, RedisUrlError};
    match RedisFanout::with_root_certs(&url, root_certs.as_deref(), channel.clone(), 1) {
        Ok(_) => FanoutSettings::Redis {
            url: SecretString::from(url),
            root_certs,
            channel,
        },
        Err(RedisFanoutError::EmptyChannel) => {
            r.fail("REDIS_FANOUT_CHANNEL", "must not be empty");
            FanoutSettings::Postgres
        }
        Err(RedisFanoutError::Url(RedisUrlError::RootCerts)) => {
            r.fail(
                "REDIS_TLS_CA_PATH",
                "is only for a rediss:// REDIS_URL (TLS); unset it or use rediss://",
            );
            FanoutSettings::Postgres
        }
        Err(_) => {
            r.fail(
                "REDIS_URL",
                "must be a redis:// or rediss:// (TLS) URL: redis[s]://[user:password@]host[:port][/db] (unix sockets, RESP3 and #insecure are not supported)",
            );
            FanoutSettings::Postgres
        }
    }
}

/// `REDIS_TLS_CA_PATH`'s content, when set and readable (`fanout_settings` reports the problems).
fn redis_root_certs(env: &Env) -> Option<Vec<u8>> {
    env.get("REDIS_TLS_CA_PATH")
        .and_then(|path| std::fs::read(path).ok())
}

/// Reads in-process HTTPS: `TLS_CERT_PATH` and `TLS_KEY_PATH` (both or neither; the files are read
/// and the key matched to the certificate now, so a bad pair stops the start rather than every
/// handshake), and `TLS_REDIRECT_PORT`, whose redirects go to `PUBLIC_URL`'s https origin.
fn tls_settings(r: &mut Reader<'_>, port: u64) -> Option<crate::tls::TlsSettings> {
    let redirect_port = r.parse("TLS_REDIRECT_PORT", None, |raw| {
        raw.parse::<u16>()
            .map(Some)
            .map_err(|_| "must be a port number from 0 to 65535 (0: any free port)".to_owned())
    });
    let cert = r.env.get("TLS_CERT_PATH").map(str::to_owned);
    let key = r.env.get("TLS_KEY_PATH").map(str::to_owned);
    let together = "TLS_CERT_PATH and TLS_KEY_PATH go together: set both (HTTPS) or neither";
    match (&cert, &key) {
        (None, None) => {
            if redirect_port.is_some() {
                r.fail(
                    "TLS_REDIRECT_PORT",
                    "needs TLS_CERT_PATH and TLS_KEY_PATH (it redirects plain HTTP to the HTTPS listener); unset it",
                );
            }
            return None;
        }
        (Some(_), None) => r.fail("TLS_KEY_PATH", &format!("is missing; {together}")),
        (None, Some(_)) => r.fail("TLS_CERT_PATH", &format!("is missing; {together}")),
        (Some(_), Some(_)) => {}
    }
    let redirect = redirect_port.and_then(|redirect_port| {
        if redirect_port != 0 && u64::from(redirect_port) == port {
            r.fail("TLS_REDIRECT_PORT", "must differ from PORT");
            return None;
        }
        let how = "must be the https:// URL clients reach this service at when TLS_REDIRECT_PORT is set: the redirect's target (never the request's Host header)";
        match r.env.get("PUBLIC_URL").and_then(crate::tls::https_origin) {
            Some(origin) => Some(crate::tls::Redirect {
                port: redirect_port,
                origin,
            }),
            None => {
                // The mail settings may have reported PUBLIC_URL already: one line per variable.
                if !r.problems.iter().any(|p| p.var == "PUBLIC_URL") {
                    r.fail("PUBLIC_URL", how);
                }
                None
            }
        }
    });
    // Each file is read even when the other variable is missing, so every problem shows at once.
    let (cert_error, key_error) = match (&cert, &key) {
        (Some(cert), Some(key)) => {
            match crate::tls::load(Path::new(cert), Path::new(key), redirect) {
                Ok(settings) => return Some(settings),
                Err(problems) => {
                    for (var, error) in problems {
                        r.fail(var, &error.to_string());
                    }
                    return None;
                }
            }
        }
        (Some(cert), None) => (crate::tls::read_chain(Path::new(cert)).err(), None),
        (None, Some(key)) => (None, crate::tls::read_key(Path::new(key)).err()),
        (None, None) => (None, None),
    };
    if let Some(error) = cert_error {
        r.fail("TLS_CERT_PATH", &error.to_string());
    }
    if let Some(error) = key_error {
        r.fail("TLS_KEY_PATH", &error.to_string());
    }
    None
}

/// `DATABASE_URL`'s TLS options, checked now rather than at the first connection: a root
/// certificate file (`sslrootcert`) must be readable PEM. With one given, `sslmode=require` means
/// `verify-ca`, as libpq has it (sqlx alone would encrypt without checking anything and ignore
/// the file).
fn database_tls(
    r: &mut Reader<'_>,
    url: &str,
    connect: PgConnectOptions,
) -> Option<PgConnectOptions> {
    use bulwark_persistence::pool::PgSslMode;
    let root_cert = url::Url::parse(url).ok().and_then(|parsed| {
        parsed
            .query_pairs()
            .find(|(k, _)| matches!(&**k, "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
            .map(|(_, v)| v.into_owned())
    });
    let Some(root_cert) = root_cert else {
        return Some(connect);
    };
    // The file's content is public (a CA certificate), but the URL is not: name the parameter only.
    match crate::tls::read_chain(Path::new(&root_cert)) {
        Ok(_) => {}
        Err(error) => {
            r.fail("DATABASE_URL", &format!("sslrootcert {error}"));
            return None;
        }
    }
    Some(if matches!(connect.get_ssl_mode(), PgSslMode::Require) {
        connect.ssl_mode(PgSslMode::VerifyCa)
    } else {
        connect
    })
}

/// Passwords, sessions, throttling and account mails.
pub struct IdentitySettings {
    /// argon2id cost (at least the OWASP minimum).
    pub argon2: Argon2Settings,
    /// The optional pepper (argon2's secret input), at least 32 bytes.
    pub pepper: Option<SecretSlice<u8>>,
    /// Most password hashes computed at once.
    pub hash_concurrency: usize,
    /// Longest wait for a hashing slot before answering 503.
    pub hash_queue_wait: Duration,
    /// The password policy.
    pub password: PasswordPolicy,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Sign-in throttle per submitted email.
    pub account_throttle: ThrottlePolicy,
    /// Reset-token lifetime (at most 30 minutes).
    pub reset_token_ttl: Duration,
    /// Verification-token lifetime.
    pub verification_token_ttl: Duration,
    /// Most mails of one kind to one address per hour.
    pub mails_per_hour: u32,
    /// The issuer name authenticator apps show next to TOTP codes (`TOTP_ISSUER`).
    pub totp_issuer: String,
    /// Administrators act as administrators only with MFA on (`REQUIRE_MFA_FOR_ADMINS`).
    pub require_mfa_for_admins: bool,
}

impl fmt::Debug for IdentitySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentitySettings")
            .field("argon2", &self.argon2)
            .field("pepper", &self.pepper.as_ref().map(|_| "[REDACTED]"))
            .field("hash_concurrency", &self.hash_concurrency)
            .field("password", &self.password)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0: any free port).
    pub port: u16,
    /// Worker threads.
    pub workers: usize,
    /// Largest accepted JSON body.
    pub json_body_limit: usize,
    /// Deadline of a whole request.
    pub request_timeout: Duration,
    /// How long a client may take to send the request head.
    pub client_header_timeout: Duration,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long readiness waits for each dependency.
    pub readiness_timeout: Duration,
    /// A proxy in front terminates TLS (enables HSTS; allows plain HTTP in production).
    pub behind_tls_proxy: bool,
    /// HTTPS served in process (`TLS_CERT_PATH`, `TLS_KEY_PATH`, `TLS_REDIRECT_PORT`): the main
    /// listener speaks TLS only, and HSTS is sent.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Allowed browser origins.
    pub cors: CorsPolicy,
    /// Serve the interactive API docs at `/docs/`.
    pub docs_ui: bool,
    /// Our reverse proxies (`TRUSTED_PROXIES`) and the header they set (`CLIENT_IP_HEADER`): the
    /// client's address is read from that header only when the peer is one of them.
    pub trusted_proxies: TrustedProxies,
}

/// Key material.
#[derive(Debug)]
pub struct Keys {
    /// Signs access tokens.
    pub jwt_signing: JwtSigningKey,
    /// Public keys of earlier signing keys, still accepted during a rotation.
    pub jwt_verification: Vec<VerificationKey>,
    /// Encrypts secrets at rest.
    pub data_encryption: DataKeyring,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
    /// `RUST_LOG`-style filter.
    pub filter: String,
}

/// One thing wrong with the configuration: the variable and what is wrong, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// The variables the configuration reads, with `<NAME>_FILE` indirections already resolved.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Env {
    /// The process environment, plus `.env` (without overriding) when `APP_ENV=development`.
    ///
    /// # Errors
    /// A problem when `.env` exists but cannot be parsed, or a `_FILE` cannot be read.
    pub fn from_process() -> Result<Self, Vec<ConfigProblem>> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        if vars.get("APP_ENV").map(String::as_str) == Some("development")
            && Path::new(".env").exists()
        {
            // Read into our own map rather than `std::env::set_var`: mutating the process
            // environment is unsound once threads exist, and it would leak `.env` into children.
            let entries =
                dotenvy::from_path_iter(".env").and_then(Iterator::collect::<Result<Vec<_>, _>>);
            match entries {
                Ok(entries) => {
                    for (k, v) in entries {
                        vars.entry(k).or_insert(v);
                    }
                }
                Err(_) => {
                    return Err(vec![problem(
                        ".env",
                        "cannot be parsed (expected NAME=value lines)",
                    )]);
                }
            }
        }
        Self::from_map(vars)
    }

    /// An environment from explicit pairs (tests).
    ///
    /// # Errors
    /// As [`Env::from_process`].
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Vec<ConfigProblem>> {
        Self::from_map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn from_map(mut vars: HashMap<String, String>) -> Result<Self, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        for name in FILE_CAPABLE {
            let file_var = format!("{name}_FILE");
            let Some(path) = vars.get(&file_var).filter(|p| !p.is_empty()).cloned() else {
                continue;
            };
            if vars.get(name).is_some_and(|v| !v.is_empty()) {
                problems.push(problem(
                    name,
                    &format!("is set both directly and through {file_var}; set one"),
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(content) => {
                    vars.insert(
                        name.to_owned(),
                        content.trim_end_matches(['\r', '\n']).to_owned(),
                    );
                }
                Err(_) => problems.push(problem(&file_var, "names a file that cannot be read")),
            }
        }
        if problems.is_empty() {
            Ok(Self { vars })
        } else {
            Err(problems)
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

fn problem(var: &str, message: &str) -> ConfigProblem {
    ConfigProblem {
        var: var.to_owned(),
        message: message.to_owned(),
    }
}

/// Collects problems while reading variables.
struct Reader<'a> {
    env: &'a Env,
    problems: Vec<ConfigProblem>,
}

impl Reader<'_> {
    fn fail(&mut self, var: &str, message: &str) {
        self.problems.push(problem(var, message));
    }

    /// A required secret, checked against `.env.example`'s placeholder.
    fn secret(&mut self, name: &str, how_to_fix: &str) -> Option<SecretString> {
        let Some(value) = self.env.get(name) else {
            self.fail(name, &format!("is missing; {how_to_fix}"));
            return None;
        };
        if is_placeholder(name, value) {
            self.fail(
                name,
                &format!("is still the placeholder from .env.example; {how_to_fix}"),
            );
            return None;
        }
        Some(SecretString::from(value.to_owned()))
    }

    fn parse<T>(
        &mut self,
        name: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.env.get(name) {
            None => default,
            Some(raw) => parse(raw).unwrap_or_else(|message| {
                self.fail(name, &message);
                default
            }),
        }
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        self.parse(name, default, |raw| match raw {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("must be `true` or `false`".to_owned()),
        })
    }

    fn number(&mut self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> u64 {
        self.parse(name, default, |raw| {
            raw.parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    )
                })
        })
    }
}

/// The value is `.env.example`'s, or visibly a placeholder of any kind (`PLACEHOLDER`, `change-me`)
/// — an edited placeholder (another host, an added query string) is still one.
fn is_placeholder(name: &str, value: &str) -> bool {
    let lowered = value.to_ascii_lowercase();
    placeholder(name).is_some_and(|p| p == value)
        || ["placeholder", "change-me", "changeme", "replace-me"]
            .iter()
            .any(|word| lowered.contains(word))
}

fn placeholder(name: &str) -> Option<&'static str> {
    ENV_EXAMPLE.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

impl Config {
    /// Reads and checks the whole configuration.
    ///
    /// # Errors
    /// Every problem found, one per variable.
    pub fn load(env: &Env) -> Result<Self, Vec<ConfigProblem>> {
        let mut r = Reader {
            env,
            problems: Vec::new(),
        };

        let app_env = r.parse("APP_ENV", AppEnv::Production, |raw| {
            raw.parse()
                .map_err(|()| "must be `development`, `test` or `production`".to_owned())
        });
        // An unparseable APP_ENV is already an error; the production rules are then skipped so that
        // the operator reads one line about APP_ENV rather than a cascade.
        let production = app_env == AppEnv::Production && r.problems.is_empty();

        // Secrets.
        let keygen = "create one with `bulwark keygen` (or `make env`)";
        let database_url = r.secret("DATABASE_URL", "set it to a postgres:// URL");
        let connect = database_url.as_ref().and_then(|url| {
            let url = url.expose_secret();
            let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
            match PgConnectOptions::from_str(url) {
                Ok(options) if scheme_ok => database_tls(&mut r, url, options),
                _ => {
                    // sqlx's parse error may quote the URL, password included: say nothing specific.
                    r.fail("DATABASE_URL", "is not a valid postgres:// URL");
                    None
                }
            }
        });
        let jwt_key = r.secret("JWT_SIGNING_KEY", keygen);
        let jwt_kid = match env.get("JWT_SIGNING_KEY_ID") {
            None => {
                r.fail("JWT_SIGNING_KEY_ID", &format!("is missing; {keygen}"));
                None
            }
            Some(raw) if is_placeholder("JWT_SIGNING_KEY_ID", raw) => {
                r.fail(
                    "JWT_SIGNING_KEY_ID",
                    &format!("is still a placeholder; {keygen}"),
                );
                None
            }
            Some(raw) => KeyId::parse(raw)
                .map_err(|e| r.fail("JWT_SIGNING_KEY_ID", &e.to_string()))
                .ok(),
        };
        // The key is checked even when its id is missing, so that both problems are reported at once.
        let jwt_signing = jwt_key.and_then(|key| {
            let kid = jwt_kid.clone().or_else(|| KeyId::parse("unset").ok())?;
            let parsed = JwtSigningKey::parse(kid, &key)
                .map_err(|e| r.fail("JWT_SIGNING_KEY", &e.to_string()))
                .ok();
            parsed.filter(|_| jwt_kid.is_some())
        });
        let jwt_verification = r.parse("JWT_VERIFICATION_KEYS", Vec::new(), |raw| {
            VerificationKey::parse_list(raw).map_err(|e| e.to_string())
        });
        if let Some(signing) = &jwt_signing {
            let current = VerificationKey::of(signing);
            if jwt_verification
                .iter()
                .any(|k| k.kid() == signing.kid() && k != &current)
            {
                r.fail(
                    "JWT_VERIFICATION_KEYS",
                    "names the signing key's id with a different key",
                );
            }
        }
        let token_ttl = r.number("ACCESS_TOKEN_TTL_SECS", 600, 60..=MAX_ACCESS_TOKEN_TTL_SECS);
        let token_issuer = r.parse("JWT_ISSUER", "bulwark".to_owned(), claim_text);
        let token_audience = r.parse("JWT_AUDIENCE", "bulwark-api".to_owned(), claim_text);
        let data_encryption = r.secret("DATA_ENCRYPTION_KEYS", keygen).and_then(|raw| {
            DataKeyring::parse(&raw)
                .map_err(|e| r.fail("DATA_ENCRYPTION_KEYS", &e.to_string()))
                .ok()
        });

        let identity = identity_settings(&mut r);
        let mail = mail_settings(&mut r, production);
        let quotas = quota_settings(&mut r);
        let webhooks = webhook_settings(&mut r, app_env == AppEnv::Development);
        let oauth = oauth_settings(&mut r, production);
        let graphql = graphql_limits(&mut r);
        let fanout = fanout_settings(&mut r);
        let rate_limits = rate_limit_settings(&mut r);
        let metrics_token = match env.get("METRICS_TOKEN") {
            None | Some("") => None,
            Some(token) if token.len() < 32 || is_placeholder("METRICS_TOKEN", token) => {
                r.fail(
                    "METRICS_TOKEN",
                    "must be at least 32 random characters (e.g. `openssl rand -hex 32`), or unset",
                );
                None
            }
            Some(token) => Some(SecretString::from(token.to_owned())),
        };
        let metrics_addr = r.parse("METRICS_ADDR", None, |raw| {
            if raw.is_empty() {
                return Ok(None);
            }
            raw.parse::<std::net::SocketAddr>()
                .map(Some)
                .map_err(|_| "must be an address and port, e.g. 127.0.0.1:9464".to_owned())
        });
        let alerts = alert_settings(&mut r);
        let flow_caps = {
            let defaults = bulwark_domain::flow::FlowCaps::default();
            bulwark_domain::flow::FlowCaps {
                share: bulwark_domain::flow::FlowCap {
                    max: r.number(
                        "SHARES_PER_HOUR",
                        u64::from(defaults.share.max),
                        1..=100_000,
                    ) as u32,
                    window: Duration::from_secs(60 * 60),
                },
                webhook_create: bulwark_domain::flow::FlowCap {
                    max: r.number(
                        "WEBHOOKS_PER_HOUR",
                        u64::from(defaults.webhook_create.max),
                        1..=100_000,
                    ) as u32,
                    window: Duration::from_secs(60 * 60),
                },
            }
        };

        // HTTP.
        let host = r.parse("HOST", IpAddr::from([127, 0, 0, 1]), |raw| {
            raw.parse()
                .map_err(|_| "must be an IP address such as 127.0.0.1 or 0.0.0.0".to_owned())
        });
        let port = r.number("PORT", 8080, 0..=65535);
        let default_workers = std::thread::available_parallelism().map_or(2, usize::from) as u64;
        let workers = r.number("HTTP_WORKERS", default_workers, 1..=256);
        let json_body_limit = r.number("JSON_BODY_LIMIT_BYTES", 64 * 1024, 1024..=10 * 1024 * 1024);
        let request_timeout = r.number("REQUEST_TIMEOUT_SECS", 30, 1..=600);
        let client_header_timeout = r.number("CLIENT_HEADER_TIMEOUT_MS", 5000, 100..=60_000);
        let shutdown_grace = r.number("SHUTDOWN_GRACE_SECS", 30, 0..=300);
        let readiness_timeout = r.number("READINESS_TIMEOUT_MS", 2000, 100..=10_000);
        let behind_tls_proxy = r.flag("BEHIND_TLS_PROXY", false);
        let docs_ui = r.flag("DOCS_UI", false);
        let cors = r.parse(
            "CORS_ALLOWED_ORIGINS",
            CorsPolicy::AllowList(Vec::new()),
            parse_cors,
        );
        let trusted_proxies = r.parse("TRUSTED_PROXIES", Vec::new(), |raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| c.parse::<Cidr>().map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        });
        let client_ip_header = r.parse("CLIENT_IP_HEADER", ForwardingHeader::default(), |raw| {
            raw.parse()
                .map_err(|()| "must be `x-forwarded-for` or `forwarded`".to_owned())
        });
        let tls_requested = env.get("TLS_CERT_PATH").is_some() || env.get("TLS_KEY_PATH").is_some();
        let tls = tls_settings(&mut r, port);

        // Database.
        let max_connections = r.number("DATABASE_MAX_CONNECTIONS", 10, 1..=1000);
        let acquire_timeout = r.number("DATABASE_ACQUIRE_TIMEOUT_SECS", 3, 1..=60);
        let statement_timeout = r.number("DATABASE_STATEMENT_TIMEOUT_MS", 5000, 100..=600_000);
        let migrate_on_start = r.flag("MIGRATE_ON_START", false);

        // Logging.
        let format = r.parse(
            "LOG_FORMAT",
            if production {
                LogFormat::Json
            } else {
                LogFormat::Text
            },
            |raw| match raw {
                "json" => Ok(LogFormat::Json),
                "text" => Ok(LogFormat::Text),
                _ => Err("must be `json` or `text`".to_owned()),
            },
        );
        // actix-http logs every malformed request it refuses at ERROR, before any request exists:
        // a client could flood the error log. Those refusals are visible at the proxy.
        let filter = r.parse("RUST_LOG", DEFAULT_LOG_FILTER.to_owned(), |raw| {
            tracing_subscriber::EnvFilter::try_new(raw)
                .map(|_| raw.to_owned())
                .map_err(|_| "is not a valid tracing filter (e.g. `info,bulwark=debug`)".to_owned())
        });

        // Production rules: each of these is fine on a laptop and a vulnerability on the internet.
        if production {
            if cors == CorsPolicy::AnyOrigin {
                r.fail(
                    "CORS_ALLOWED_ORIGINS",
                    "must list origins in production; `*` is refused",
                );
            }
            if docs_ui {
                r.fail(
                    "DOCS_UI",
                    "must be false in production (the OpenAPI document stays at /openapi.json)",
                );
            }
            // TLS asked for but unusable is already reported on its own variables.
            if !behind_tls_proxy && !tls_requested {
                r.fail("BEHIND_TLS_PROXY", "plain HTTP is refused in production; serve HTTPS (TLS_CERT_PATH and TLS_KEY_PATH) or terminate TLS in a proxy and set BEHIND_TLS_PROXY=true");
            }
        }

        let (
            Some(connect),
            Some(database_url),
            Some(jwt_signing),
            Some(data_encryption),
            Some(identity),
            true,
        ) = (
            connect,
            database_url,
            jwt_signing,
            data_encryption,
            identity,
            r.problems.is_empty(),
        )
        else {
            return Err(r.problems);
        };
        // The casts below are lossless: each number was range-checked above.
        #[allow(clippy::cast_possible_truncation)]
        Ok(Self {
            env: app_env,
            http: HttpSettings {
                host,
                port: port as u16,
                workers: workers as usize,
                json_body_limit: json_body_limit as usize,
                request_timeout: Duration::from_secs(request_timeout),
                client_header_timeout: Duration::from_millis(client_header_timeout),
                shutdown_grace: Duration::from_secs(shutdown_grace),
                readiness_timeout: Duration::from_millis(readiness_timeout),
                behind_tls_proxy,
                tls,
                cors,
                docs_ui,
                trusted_proxies: TrustedProxies::new(trusted_proxies, client_ip_header),
            },
            database: DatabaseSettings {
                connect,
                max_connections: max_connections as u32,
                acquire_timeout: Duration::from_secs(acquire_timeout),
                statement_timeout: Duration::from_millis(statement_timeout),
            },
            database_url,
            migrate_on_start,
            keys: Keys {
                jwt_signing,
                jwt_verification,
                data_encryption,
            },
            identity,
            quotas,
            flow_caps,
            mail,
            webhooks,
            oauth,
            graphql,
            fanout,
            rate_limits,
            metrics_token,
            metrics_addr,
            alerts,
            tokens: TokenSettings {
                issuer: token_issuer,
                audience: token_audience,
                ttl: Duration::from_secs(token_ttl),
                leeway: Duration::from_secs(5),
            },
            log: LogSettings { format, filter },
        })
    }

    /// What is allowed but deserves a warning in the log at start-up (`bulwark serve` writes
    /// these once logging is set up).
    ///
    /// In production, a database reached across a network without `sslmode=verify-full`: warned
    /// about, not refused, because a private link (a VPN, a service mesh's mTLS, a sidecar) can
    /// make it safe, and the configuration cannot see that.
    #[must_use]
    pub fn warnings(&self) -> Vec<&'static str> {
        use bulwark_persistence::pool::{Transport, transport};
        let mut warnings = Vec::new();
        if self.env == AppEnv::Production {
            match transport(&self.database.connect) {
                Transport::Local | Transport::Verified => {}
                Transport::EncryptedUnverified => warnings.push(
                    "DATABASE_URL: the database is reached across a network with TLS that does not check the server's name (sslmode=require or verify-ca); use sslmode=verify-full",
                ),
                Transport::MaybePlain => warnings.push(
                    "DATABASE_URL: the database is reached across a network possibly in plain text (sslmode is disable, allow or prefer, the default); use sslmode=verify-full",
                ),
            }
        }
        warnings
    }
}

/// Reads the quotas of each plan.
// The casts are lossless: each number was range-checked by `number`.
#[allow(clippy::cast_possible_truncation)]
fn quota_settings(r: &mut Reader<'_>) -> bulwark_domain::quota::PlanLimits {
    use bulwark_domain::quota::{Limits, PlanLimits};
    const MIB: u64 = 1024 * 1024;
    let defaults = PlanLimits::default();
    // The names are spelled out (not built with `format!`) so that the check that every variable
    // is documented in .env.example can see them.
    let mut limits = |[documents, attachments, webhooks, api_keys, requests]: [&str; 5],
                      d: Limits| Limits {
        documents: r.number(documents, u64::from(d.documents), 1..=10_000_000) as u32,
        attachment_bytes: r.number(attachments, d.attachment_bytes / MIB, 1..=10_000_000) * MIB,
        webhooks: r.number(webhooks, u64::from(d.webhooks), 0..=10_000) as u32,
        api_keys: r.number(api_keys, u64::from(d.api_keys), 0..=10_000) as u32,
        requests_per_day: r.number(requests, u64::from(d.requests_per_day), 1..=1_000_000_000)
            as u32,
    };
    let free = limits(
        [
            "QUOTA_FREE_DOCUMENTS",
            "QUOTA_FREE_ATTACHMENT_MIB",
            "QUOTA_FREE_WEBHOOKS",
            "QUOTA_FREE_API_KEYS",
            "QUOTA_FREE_REQUESTS_PER_DAY",
        ],
        defaults.free,
    );
    let pro = limits(
        [
            "QUOTA_PRO_DOCUMENTS",
            "QUOTA_PRO_ATTACHMENT_MIB",
            "QUOTA_PRO_WEBHOOKS",
            "QUOTA_PRO_API_KEYS",
            "QUOTA_PRO_REQUESTS_PER_DAY",
        ],
        defaults.pro,
    );
    PlanLimits { free, pro }
}

/// Reads the identity providers: GitHub and Google by client id and secret, and one generic OpenID
/// Connect issuer. A provider is configured when its client id is set; its secret is then
/// required. Callback URLs are `OAUTH_CALLBACK_BASE_URL` + `/api/v1/auth/oauth/{id}/callback`,
/// matched exactly by the provider (register that URL there).
fn oauth_settings(r: &mut Reader<'_>, production: bool) -> OAuthSettings {
    use bulwark_security::oauth::ProviderConfig;
    let base = r.parse(
        "OAUTH_CALLBACK_BASE_URL",
        "http://127.0.0.1:8080".to_owned(),
        |raw| {
            let raw = raw.trim_end_matches('/');
            let https = raw.starts_with("https://");
            if (https || (!production && raw.starts_with("http://")))
                && !raw.contains(char::is_whitespace)
                && !raw.contains(['?', '#'])
            {
                Ok(raw.to_owned())
            } else if production {
                Err("must be an https:// URL without query or fragment in production".to_owned())
            } else {
                Err("must be an http:// or https:// URL without query or fragment".to_owned())
            }
        },
    );
    let callback = |id: &str| format!("{base}/api/v1/auth/oauth/{id}/callback");
    let mut providers = Vec::new();
    let how = "set it to the client secret the provider issued (or unset the client id)";
    if let Some(client_id) = r.env.get("OAUTH_GITHUB_CLIENT_ID").map(str::to_owned)
        && let Some(secret) = r.secret("OAUTH_GITHUB_CLIENT_SECRET", how)
    {
        providers.push(ProviderConfig::github(
            client_id,
            secret,
            callback("github"),
        ));
    }
    if let Some(client_id) = r.env.get("OAUTH_GOOGLE_CLIENT_ID").map(str::to_owned)
        && let Some(secret) = r.secret("OAUTH_GOOGLE_CLIENT_SECRET", how)
    {
        providers.push(ProviderConfig::google(
            client_id,
            secret,
            callback("google"),
        ));
    }
    if let Some(client_id) = r.env.get("OAUTH_OIDC_CLIENT_ID").map(str::to_owned) {
        let id = r.parse("OAUTH_OIDC_ID", "oidc".to_owned(), |raw| {
            let ok = (1..=32).contains(&raw.len())
                && raw.starts_with(|c: char| c.is_ascii_lowercase())
                && raw
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !["github", "google"].contains(&raw);
            ok.then(|| raw.to_owned()).ok_or_else(|| {
                "must be 1..=32 of a-z, 0-9 and `-`, starting with a letter, and not github or google".to_owned()
            })
        });
        let issuer = r.env.get("OAUTH_OIDC_ISSUER").map(str::to_owned);
        let secret = r.secret("OAUTH_OIDC_CLIENT_SECRET", how);
        match (issuer, secret) {
            (Some(issuer), Some(client_secret)) => providers.push(ProviderConfig::Oidc {
                redirect_uri: callback(&id),
                id,
                issuer,
                client_id,
                client_secret,
                scopes: Vec::new(),
            }),
            (None, _) => r.fail(
                "OAUTH_OIDC_ISSUER",
                "is required with OAUTH_OIDC_CLIENT_ID (the issuer URL, e.g. https://login.example.com)",
            ),
            (Some(_), None) => {}
        }
    }
    OAuthSettings {
        providers,
        http: bulwark_security::oauth::HttpSettings::default(),
    }
}

/// Reads the GraphQL limits (safe defaults; see `bulwark_transport_graphql::armour`).
// The casts are lossless: each number was range-checked by `number`.
#[allow(clippy::cast_possible_truncation)]
fn graphql_limits(r: &mut Reader<'_>) -> bulwark_transport_graphql::Limits {
    let d = bulwark_transport_graphql::Limits::default();
    let n =
        |r: &mut Reader<'_>, name: &str, default: usize, range: std::ops::RangeInclusive<u64>| {
            r.number(name, default as u64, range) as usize
        };
    bulwark_transport_graphql::Limits {
        max_bytes: n(r, "GRAPHQL_MAX_QUERY_BYTES", d.max_bytes, 256..=1024 * 1024),
        max_tokens: n(r, "GRAPHQL_MAX_TOKENS", d.max_tokens, 16..=100_000),
        max_aliases: n(r, "GRAPHQL_MAX_ALIASES", d.max_aliases, 0..=1000),
        max_root_fields: n(r, "GRAPHQL_MAX_ROOT_FIELDS", d.max_root_fields, 1..=1000),
        max_depth: n(r, "GRAPHQL_MAX_DEPTH", d.max_depth, 2..=100),
        max_complexity: n(
            r,
            "GRAPHQL_MAX_COMPLEXITY",
            d.max_complexity,
            10..=1_000_000,
        ),
        batching: r.flag("GRAPHQL_BATCHING", d.batching),
        max_batch: n(r, "GRAPHQL_MAX_BATCH", d.max_batch, 1..=100),
    }
}

/// Reads the webhook delivery settings. Plain `http` targets are allowed in development only.
// The casts are lossless: each number was range-checked by `number`.
#[allow(clippy::cast_possible_truncation)]
fn webhook_settings(r: &mut Reader<'_>, development: bool) -> WebhookSettings {
    use bulwark_domain::webhooks::DeliveryPolicy;
    let defaults = DeliveryPolicy::default();
    let max_attempts = r.number(
        "WEBHOOK_MAX_ATTEMPTS",
        u64::from(defaults.max_attempts),
        1..=20,
    );
    let retry_base = r.number(
        "WEBHOOK_RETRY_BASE_SECS",
        defaults.retry_base.as_secs(),
        1..=3600,
    );
    let connect_timeout = r.number("WEBHOOK_CONNECT_TIMEOUT_SECS", 5, 1..=30);
    let timeout = r.number("WEBHOOK_TIMEOUT_SECS", 10, 1..=60);
    let poll_interval = r.number("WEBHOOK_POLL_INTERVAL_MS", 1000, 50..=60_000);
    if connect_timeout > timeout {
        r.fail(
            "WEBHOOK_CONNECT_TIMEOUT_SECS",
            "must not exceed WEBHOOK_TIMEOUT_SECS",
        );
    }
    let timeout = Duration::from_secs(timeout);
    WebhookSettings {
        delivery: DeliveryPolicy {
            allow_http: development,
            max_attempts: max_attempts as u32,
            retry_base: Duration::from_secs(retry_base),
            // A lease outlives the longest attempt, so a slow receiver is never sent the same
            // delivery twice by two workers.
            lease: timeout + Duration::from_secs(30),
            ..defaults
        },
        connect_timeout: Duration::from_secs(connect_timeout),
        timeout,
        max_response_bytes: 64 * 1024,
        poll_interval: Duration::from_millis(poll_interval),
        test_network: None,
    }
}

/// Reads the SMTP settings: `None` when `SMTP_URL` is unset.
fn mail_settings(r: &mut Reader<'_>, production: bool) -> Option<crate::delivery::MailSettings> {
    let smtp_url = r.env.get("SMTP_URL")?.to_owned();
    if is_placeholder("SMTP_URL", &smtp_url) {
        r.fail("SMTP_URL", "is still a placeholder; set it or remove it");
        return None;
    }
    let encrypted = smtp_url.starts_with("smtps://") || smtp_url.contains("tls=required");
    if !(smtp_url.starts_with("smtp://") || smtp_url.starts_with("smtps://")) {
        // Never quote the URL: it may hold a password.
        r.fail("SMTP_URL", "must be an smtp:// or smtps:// URL");
        return None;
    }
    if production && !encrypted {
        r.fail(
            "SMTP_URL",
            "must use TLS in production (smtps://, or smtp://…?tls=required)",
        );
        return None;
    }
    let from = r.parse(
        "MAIL_FROM",
        "Bulwark <no-reply@localhost>".to_owned(),
        |raw| {
            raw.parse::<lettre::message::Mailbox>()
                .map(|_| raw.to_owned())
                .map_err(|_| {
                    "must be a mailbox such as `Bulwark <no-reply@example.com>`".to_owned()
                })
        },
    );
    let public_url = r.parse("PUBLIC_URL", "http://127.0.0.1:8080".to_owned(), |raw| {
        let https = raw.starts_with("https://");
        if (https || (!production && raw.starts_with("http://")))
            && !raw.contains(char::is_whitespace)
        {
            Ok(raw.trim_end_matches('/').to_owned())
        } else if production {
            Err("must be an https:// URL in production".to_owned())
        } else {
            Err("must be an http:// or https:// URL".to_owned())
        }
    });
    let from = from.parse().ok()?;
    Some(crate::delivery::MailSettings {
        smtp_url: SecretString::from(smtp_url),
        from,
        public_url,
    })
}

/// Reads the identity settings; `None` when one of them is wrong (the problem is recorded).
// The casts are lossless: each number was range-checked by `number`.
#[allow(clippy::cast_possible_truncation)]
fn identity_settings(r: &mut Reader<'_>) -> Option<IdentitySettings> {
    const DAY: u64 = 24 * 60 * 60;
    let before = r.problems.len();
    let argon2 = Argon2Settings {
        memory_kib: r.number(
            "ARGON2_MEMORY_KIB",
            u64::from(MIN_MEMORY_KIB),
            u64::from(MIN_MEMORY_KIB)..=4 * 1024 * 1024,
        ) as u32,
        iterations: r.number(
            "ARGON2_ITERATIONS",
            u64::from(MIN_ITERATIONS),
            u64::from(MIN_ITERATIONS)..=20,
        ) as u32,
        parallelism: r.number("ARGON2_PARALLELISM", 1, 1..=16) as u32,
    };
    // Optional; when set, it must be strong (and it is a secret: placeholders are refused).
    let pepper = match r.env.get("PASSWORD_PEPPER") {
        None => None,
        Some(raw) if is_placeholder("PASSWORD_PEPPER", raw) => {
            r.fail(
                "PASSWORD_PEPPER",
                "is still a placeholder; remove it or set base64 of 32 random bytes",
            );
            None
        }
        Some(raw) => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(bytes) if bytes.len() >= MIN_PEPPER_BYTES => Some(SecretSlice::from(bytes)),
                _ => {
                    r.fail(
                        "PASSWORD_PEPPER",
                        &format!("must be base64 of at least {MIN_PEPPER_BYTES} random bytes"),
                    );
                    None
                }
            }
        }
    };
    let cpus = std::thread::available_parallelism().map_or(2, usize::from) as u64;
    let hash_concurrency = r.number("PASSWORD_HASH_CONCURRENCY", cpus, 1..=256) as usize;
    let hash_queue_wait = r.number("PASSWORD_HASH_QUEUE_WAIT_MS", 2000, 10..=60_000);

    let defaults = PasswordPolicy::default();
    let style = r.parse("PASSWORD_POLICY", defaults.style, |raw| match raw {
        "composition" => Ok(PolicyStyle::Composition),
        "asvs" => Ok(PolicyStyle::Asvs),
        _ => Err("must be `composition` or `asvs`".to_owned()),
    });
    let password = PasswordPolicy {
        style,
        min_chars: r.number("PASSWORD_MIN_LENGTH", defaults.min_chars as u64, 12..=64) as usize,
        max_chars: r.number("PASSWORD_MAX_LENGTH", defaults.max_chars as u64, 64..=1024) as usize,
        min_score: r.number("PASSWORD_MIN_SCORE", u64::from(defaults.min_score), 3..=4) as u8,
    };

    let session_defaults = SessionPolicy::default();
    let idle = r.number(
        "SESSION_IDLE_TIMEOUT_SECS",
        session_defaults.idle_timeout.as_secs(),
        300..=90 * DAY,
    );
    let absolute = r.number(
        "SESSION_MAX_LIFETIME_SECS",
        session_defaults.absolute_lifetime.as_secs(),
        300..=365 * DAY,
    );
    if idle > absolute {
        r.fail(
            "SESSION_IDLE_TIMEOUT_SECS",
            "must not exceed SESSION_MAX_LIFETIME_SECS",
        );
    }

    let throttle_defaults = ThrottlePolicy::default();
    let free_failures = r.number(
        "LOGIN_FREE_FAILURES",
        u64::from(throttle_defaults.free_failures),
        0..=20,
    ) as u32;
    let lock_after = r.number(
        "LOGIN_LOCK_AFTER",
        u64::from(throttle_defaults.lock_after),
        3..=100,
    ) as u32;
    let lock_secs = r.number(
        "LOGIN_LOCK_SECS",
        throttle_defaults.lock_duration.as_secs(),
        60..=DAY,
    );
    if free_failures >= lock_after {
        r.fail(
            "LOGIN_FREE_FAILURES",
            "must be smaller than LOGIN_LOCK_AFTER",
        );
    }

    let reset_ttl = r.number(
        "PASSWORD_RESET_TOKEN_TTL_SECS",
        MAX_RESET_TOKEN_TTL.as_secs(),
        60..=MAX_RESET_TOKEN_TTL.as_secs(),
    );
    let verification_ttl = r.number("EMAIL_VERIFICATION_TOKEN_TTL_SECS", DAY, 600..=7 * DAY);
    let mails_per_hour = r.number("ACCOUNT_MAILS_PER_HOUR", 3, 1..=20) as u32;
    let require_mfa_for_admins = r.flag("REQUIRE_MFA_FOR_ADMINS", false);
    // Shown by authenticator apps and written into the otpauth:// link (percent-encoded there).
    let totp_issuer = r.parse("TOTP_ISSUER", "Bulwark".to_owned(), |raw| {
        let ok = (1..=64).contains(&raw.chars().count())
            && !raw.chars().any(|c| c.is_control() || c == ':');
        ok.then(|| raw.to_owned())
            .ok_or_else(|| "must be 1..=64 characters without `:` or control characters".to_owned())
    });

    (r.problems.len() == before).then(|| IdentitySettings {
        argon2,
        pepper,
        hash_concurrency,
        hash_queue_wait: Duration::from_millis(hash_queue_wait),
        password,
        sessions: SessionPolicy {
            idle_timeout: Duration::from_secs(idle),
            absolute_lifetime: Duration::from_secs(absolute),
        },
        account_throttle: ThrottlePolicy {
            free_failures,
            lock_after,
            lock_duration: Duration::from_secs(lock_secs),
            ..throttle_defaults
        },
        reset_token_ttl: Duration::from_secs(reset_ttl),
        verification_token_ttl: Duration::from_secs(verification_ttl),
        mails_per_hour,
        totp_issuer,
        require_mfa_for_admins,
    })
}

/// `iss`/`aud` values: 1..=128 printable ASCII characters without spaces (a URL or a name).
fn claim_text(raw: &str) -> Result<String, String> {
    if (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(raw.to_owned())
    } else {
        Err("must be 1 to 128 printable characters without spaces".to_owned())
    }
}

/// `*` or a comma-separated list of origins, each exactly `scheme://host[:port]`.
fn parse_cors(raw: &str) -> Result<CorsPolicy, String> {
    if raw == "*" {
        return Ok(CorsPolicy::AnyOrigin);
    }
    raw.split(',')
        .map(str::trim)
        .map(|origin| {
            if is_origin(origin) {
                Ok(origin.to_owned())
            } else {
                Err("must be `*` or a comma-separated list of lower-case origins like https://app.example.com (scheme, host, optional port; no path)".to_owned())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(CorsPolicy::AllowList)
}

fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    // `[v6 address]` or a DNS name / IPv4 address, then an optional `:port`, and nothing else.
    let (host_ok, port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((address, tail)) => (address.parse::<std::net::Ipv6Addr>().is_ok(), tail),
            None => (false, ""),
        }
    } else {
        let end = rest.find(':').unwrap_or(rest.len());
        let host = &rest[..end];
        let ok = (1..=253).contains(&host.len())
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'));
        (ok, &rest[end..])
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
        });
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_security::keys::generate_keys;

    /// The secrets whose `.env.example` value is a placeholder that must be replaced.
    const SECRETS: [&str; 3] = ["DATABASE_URL", "JWT_SIGNING_KEY", "DATA_ENCRYPTION_KEYS"];

    fn valid_pairs() -> Vec<(String, String)> {
        let keys = generate_keys().unwrap();
        vec![
            ("APP_ENV".into(), "test".into()),
            (
                "DATABASE_URL".into(),
                "postgres://app:pw@127.0.0.1:5432/bulwark".into(),
            ),
            ("JWT_SIGNING_KEY_ID".into(), keys.jwt_key_id.clone()),
            (
                "JWT_SIGNING_KEY".into(),
                keys.jwt_signing_key.expose_secret().to_owned(),
            ),
            (
                "DATA_ENCRYPTION_KEYS".into(),
                keys.data_encryption_keys.expose_secret().to_owned(),
            ),
        ]
    }

    fn load(pairs: &[(String, String)]) -> Result<Config, Vec<ConfigProblem>> {
        Config::load(&Env::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?)
    }

    fn with(mut pairs: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
        pairs.retain(|(k, _)| k != key);
        pairs.push((key.into(), value.into()));
        pairs
    }

    fn vars(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.var.as_str()).collect()
    }

    #[test]
    fn a_complete_environment_loads_with_safe_defaults() {
        let config = load(&valid_pairs()).unwrap();
        assert_eq!(config.env, AppEnv::Test);
        assert_eq!(config.http.json_body_limit, 64 * 1024);
        assert_eq!(config.http.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(config.http.cors, CorsPolicy::AllowList(vec![]));
        assert!(!config.http.docs_ui);
        assert_eq!(config.database.acquire_timeout, Duration::from_secs(3));
    }

    #[test]
    fn proxies_and_the_redis_fanout_are_checked_and_never_echo_a_secret() {
        let trusted = load(&with(
            with(valid_pairs(), "TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            "CLIENT_IP_HEADER",
            "Forwarded",
        ))
        .unwrap();
        assert!(
            trusted
                .http
                .trusted_proxies
                .trusts(IpAddr::from([10, 1, 2, 3]))
        );
        assert!(
            !trusted
                .http
                .trusted_proxies
                .trusts(IpAddr::from([11, 1, 2, 3]))
        );
        assert_eq!(
            load(&valid_pairs()).unwrap().http.trusted_proxies,
            TrustedProxies::default(),
            "nobody is trusted by default"
        );
        for (name, value) in [
            ("METRICS_TOKEN", "too-short-hunter2"),
            ("TRUSTED_PROXIES", "10.0.0.1/8"),
            ("TRUSTED_PROXIES", "everyone"),
            ("CLIENT_IP_HEADER", "x-real-ip"),
            (
                "REDIS_URL",
                "rediss://:hunter2-secret@cache.internal:6380/#insecure",
            ),
            ("REDIS_URL", "redis+unix:///tmp/hunter2-secret.sock"),
            ("REDIS_URL", "not a url hunter2-secret"),
        ] {
            let problems = load(&with(valid_pairs(), name, value)).unwrap_err();
            assert_eq!(vars(&problems), [name], "{value}");
            assert!(!problems[0].message.contains("hunter2"), "{problems:?}");
        }
        let redis = load(&with(
            valid_pairs(),
            "REDIS_URL",
            "redis://:hunter2@127.0.0.1:6379",
        ))
        .unwrap();
        assert!(matches!(redis.fanout, FanoutSettings::Redis { .. }));
        assert!(!format!("{:?}", redis.fanout).contains("hunter2"));
        let rediss = load(&with(
            valid_pairs(),
            "REDIS_URL",
            "rediss://:hunter2@cache.internal:6380",
        ))
        .unwrap();
        assert!(matches!(rediss.fanout, FanoutSettings::Redis { .. }));
        assert!(rediss.rate_limits.shared.is_some());
        assert!(matches!(
            load(&valid_pairs()).unwrap().fanout,
            FanoutSettings::Postgres
        ));
    }

    #[test]
    fn every_missing_secret_is_reported_at_once() {
        let problems = load(&[("APP_ENV".into(), "test".into())]).unwrap_err();
        assert_eq!(
            vars(&problems),
            [
                "DATABASE_URL",
                "JWT_SIGNING_KEY",
                "JWT_SIGNING_KEY_ID",
                "DATA_ENCRYPTION_KEYS"
            ]
        );
    }

    #[test]
    fn edited_placeholders_are_refused_too() {
        let cases = [
            (
                "DATABASE_URL",
                "postgres://bulwark:PLACEHOLDER-change-me@db.internal:5432/bulwark?sslmode=require",
            ),
            ("DATABASE_URL", "postgres://app:changeme@127.0.0.1/app"),
            ("JWT_SIGNING_KEY_ID", "jwt-PLACEHOLDER"),
            ("DATA_ENCRYPTION_KEYS", "dek-placeholder:AAAA"),
        ];
        for (name, value) in cases {
            let problems = load(&with(valid_pairs(), name, value)).unwrap_err();
            assert_eq!(vars(&problems), [name], "{value}");
            assert!(problems[0].message.contains("placeholder"), "{value}");
        }
    }

    #[test]
    fn placeholders_from_env_example_are_refused() {
        for name in SECRETS {
            let value = placeholder(name).unwrap();
            let problems = load(&with(valid_pairs(), name, value)).unwrap_err();
            assert_eq!(vars(&problems), [name]);
            assert!(problems[0].message.contains("placeholder"));
        }
    }

    #[test]
    fn problems_never_quote_the_secret() {
        let bad_url = "mysql://user:sup3r-s3cret@db/x";
        let pairs = with(
            with(valid_pairs(), "DATABASE_URL", bad_url),
            "DATA_ENCRYPTION_KEYS",
            "k1:c3VwM3Itc2VjcmV0",
        );
        let problems = load(&pairs).unwrap_err();
        let text = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!text.contains("sup3r"), "{text}");
        assert!(!text.contains("c3VwM3Itc2VjcmV0"), "{text}");
    }

    #[test]
    fn unset_app_env_means_production_and_production_is_strict() {
        let mut pairs = valid_pairs();
        pairs.retain(|(k, _)| k != "APP_ENV");
        let pairs = with(with(pairs, "CORS_ALLOWED_ORIGINS", "*"), "DOCS_UI", "true");
        let problems = load(&pairs).unwrap_err();
        assert_eq!(
            vars(&problems),
            ["CORS_ALLOWED_ORIGINS", "DOCS_UI", "BEHIND_TLS_PROXY"]
        );

        let pairs = with(
            with(valid_pairs(), "APP_ENV", "production"),
            "BEHIND_TLS_PROXY",
            "true",
        );
        let config = load(&pairs).unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn malformed_numbers_flags_and_origins_are_reported() {
        let pairs = [
            ("PORT", "http"),
            ("BEHIND_TLS_PROXY", "yes"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://ok.example, https://bad.example/path",
            ),
            ("JSON_BODY_LIMIT_BYTES", "1"),
            ("APP_ENV", "staging"),
            ("TLS_CERT_PATH", "/nonexistent/cert.pem"),
            ("RUST_LOG", "info,[[["),
        ]
        .into_iter()
        .fold(valid_pairs(), |acc, (k, v)| with(acc, k, v));
        let mut got = vars(&load(&pairs).unwrap_err())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        got.sort();
        assert_eq!(
            got,
            [
                "APP_ENV",
                "BEHIND_TLS_PROXY",
                "CORS_ALLOWED_ORIGINS",
                "JSON_BODY_LIMIT_BYTES",
                "PORT",
                "RUST_LOG",
                "TLS_CERT_PATH",
                "TLS_KEY_PATH"
            ]
        );
    }

    /// A directory of this test's own with a development certificate and key in it.
    fn tls_files(name: &str) -> (std::path::PathBuf, String, String) {
        let dir =
            std::env::temp_dir().join(format!("bulwark-config-{name}-{}", uuid::Uuid::new_v4()));
        let (cert, key) = crate::tls::write_dev_cert(&dir, false).unwrap();
        (dir, cert.display().to_string(), key.display().to_string())
    }

    #[test]
    fn tls_needs_both_files_and_a_key_that_matches_the_certificate() {
        let (dir, cert, key) = tls_files("pair");
        let pairs = with(
            with(valid_pairs(), "TLS_CERT_PATH", &cert),
            "TLS_KEY_PATH",
            &key,
        );
        let config = load(&pairs).unwrap();
        let tls = config.http.tls.as_ref().unwrap();
        assert!(tls.redirect.is_none());
        assert!(!format!("{config:?}").contains("PRIVATE KEY"));

        // One alone: the missing one is named.
        let problems = load(&with(valid_pairs(), "TLS_CERT_PATH", &cert)).unwrap_err();
        assert_eq!(vars(&problems), ["TLS_KEY_PATH"]);
        assert!(problems[0].message.contains("go together"), "{problems:?}");
        let problems = load(&with(valid_pairs(), "TLS_KEY_PATH", &key)).unwrap_err();
        assert_eq!(vars(&problems), ["TLS_CERT_PATH"]);

        // Another certificate's key: refused, and the key itself is never quoted.
        let (other_dir, _, other_key) = tls_files("other");
        let problems = load(&with(
            with(valid_pairs(), "TLS_CERT_PATH", &cert),
            "TLS_KEY_PATH",
            &other_key,
        ))
        .unwrap_err();
        assert_eq!(vars(&problems), ["TLS_KEY_PATH"]);
        assert!(
            problems[0].message.contains("does not belong"),
            "{problems:?}"
        );
        let key_pem = std::fs::read_to_string(&other_key).unwrap();
        let body = key_pem.lines().nth(1).unwrap();
        assert!(!format!("{problems:?}").contains(body));

        // Swapped: neither file holds what it should.
        let problems = load(&with(
            with(valid_pairs(), "TLS_CERT_PATH", &key),
            "TLS_KEY_PATH",
            &cert,
        ))
        .unwrap_err();
        assert_eq!(vars(&problems), ["TLS_CERT_PATH", "TLS_KEY_PATH"]);
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(other_dir).unwrap();
    }

    #[test]
    fn the_redirect_listener_needs_tls_and_an_https_public_url() {
        let (dir, cert, key) = tls_files("redirect");
        let tls = with(
            with(valid_pairs(), "TLS_CERT_PATH", &cert),
            "TLS_KEY_PATH",
            &key,
        );
        let config = load(&with(
            with(tls.clone(), "TLS_REDIRECT_PORT", "80"),
            "PUBLIC_URL",
            "https://api.example.com/app",
        ))
        .unwrap();
        let redirect = config.http.tls.unwrap().redirect.unwrap();
        assert_eq!(redirect.port, 80);
        assert_eq!(redirect.origin, "https://api.example.com");

        for (pairs, var) in [
            // No PUBLIC_URL (its default is http://), or an http:// one.
            (with(tls.clone(), "TLS_REDIRECT_PORT", "80"), "PUBLIC_URL"),
            (
                with(
                    with(tls.clone(), "TLS_REDIRECT_PORT", "80"),
                    "PUBLIC_URL",
                    "http://api.example.com",
                ),
                "PUBLIC_URL",
            ),
            // The HTTPS port itself, and no TLS at all.
            (
                with(
                    with(
                        with(tls.clone(), "TLS_REDIRECT_PORT", "8443"),
                        "PORT",
                        "8443",
                    ),
                    "PUBLIC_URL",
                    "https://api.example.com",
                ),
                "TLS_REDIRECT_PORT",
            ),
            (
                with(
                    with(valid_pairs(), "TLS_REDIRECT_PORT", "80"),
                    "PUBLIC_URL",
                    "https://api.example.com",
                ),
                "TLS_REDIRECT_PORT",
            ),
            (
                with(tls.clone(), "TLS_REDIRECT_PORT", "http"),
                "TLS_REDIRECT_PORT",
            ),
        ] {
            assert_eq!(vars(&load(&pairs).unwrap_err()), [var], "{pairs:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn production_accepts_https_served_in_process_instead_of_a_proxy() {
        let (dir, cert, key) = tls_files("production");
        let production = with(valid_pairs(), "APP_ENV", "production");
        let pairs = with(
            with(production.clone(), "TLS_CERT_PATH", &cert),
            "TLS_KEY_PATH",
            &key,
        );
        assert!(load(&pairs).unwrap().http.tls.is_some());
        // TLS asked for but broken: that is the problem, not a missing proxy.
        let broken = with(
            with(production, "TLS_CERT_PATH", &cert),
            "TLS_KEY_PATH",
            "/nonexistent/key.pem",
        );
        assert_eq!(vars(&load(&broken).unwrap_err()), ["TLS_KEY_PATH"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn database_tls_options_are_parsed_and_checked_at_start_up() {
        use bulwark_persistence::pool::PgSslMode;
        let (dir, cert, _) = tls_files("database");
        let url = |query: &str| format!("postgres://app:pw@db.internal:5432/bulwark?{query}");

        let full = load(&with(
            valid_pairs(),
            "DATABASE_URL",
            &url(&format!("sslmode=verify-full&sslrootcert={cert}")),
        ))
        .unwrap();
        assert!(matches!(
            full.database.connect.get_ssl_mode(),
            PgSslMode::VerifyFull
        ));
        // libpq's rule: `require` with a root certificate checks the chain (sqlx alone would not).
        let require = load(&with(
            valid_pairs(),
            "DATABASE_URL",
            &url(&format!("sslmode=require&sslrootcert={cert}")),
        ))
        .unwrap();
        assert!(matches!(
            require.database.connect.get_ssl_mode(),
            PgSslMode::VerifyCa
        ));

        for query in [
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".to_owned(),
            format!("sslmode=verify-full&sslrootcert={dir}", dir = dir.display()),
            "sslmode=sometimes".to_owned(),
        ] {
            let problems = load(&with(valid_pairs(), "DATABASE_URL", &url(&query))).unwrap_err();
            assert_eq!(vars(&problems), ["DATABASE_URL"], "{query}");
            assert!(!problems[0].message.contains("pw@"), "{problems:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn production_warns_about_a_database_across_a_network_without_verify_full() {
        let production = with(
            with(valid_pairs(), "APP_ENV", "production"),
            "BEHIND_TLS_PROXY",
            "true",
        );
        let warnings = |url: &str| {
            load(&with(production.clone(), "DATABASE_URL", url))
                .unwrap()
                .warnings()
        };
        assert!(warnings("postgres://app:pw@127.0.0.1/bulwark").is_empty());
        assert!(warnings("postgres://app:pw@db.internal/bulwark?sslmode=verify-full").is_empty());
        for url in [
            "postgres://app:pw@db.internal/bulwark",
            "postgres://app:pw@db.internal/bulwark?sslmode=require",
            "postgres://app:pw@10.0.0.5/bulwark?sslmode=disable",
        ] {
            let found = warnings(url);
            assert_eq!(found.len(), 1, "{url}");
            assert!(
                found[0].contains("verify-full") && !found[0].contains("pw"),
                "{url}"
            );
        }
        // Only production warns: a developer's database across the room is their business.
        assert!(
            load(&with(
                valid_pairs(),
                "DATABASE_URL",
                "postgres://app:pw@db.internal/bulwark"
            ))
            .unwrap()
            .warnings()
            .is_empty()
        );
    }

    #[test]
    fn a_redis_ca_file_goes_with_rediss_only_and_must_hold_certificates() {
        let (dir, cert, key) = tls_files("redis");
        let rediss = with(valid_pairs(), "REDIS_URL", "rediss://cache.internal:6380");
        let config = load(&with(rediss.clone(), "REDIS_TLS_CA_PATH", &cert)).unwrap();
        let FanoutSettings::Redis { root_certs, .. } = &config.fanout else {
            panic!("not redis");
        };
        assert!(root_certs.is_some());
        assert!(config.rate_limits.shared.unwrap().root_certs.is_some());

        for pairs in [
            with(rediss.clone(), "REDIS_TLS_CA_PATH", &key),
            with(rediss, "REDIS_TLS_CA_PATH", "/nonexistent/ca.pem"),
            with(
                with(valid_pairs(), "REDIS_URL", "redis://127.0.0.1:6379"),
                "REDIS_TLS_CA_PATH",
                &cert,
            ),
            with(valid_pairs(), "REDIS_TLS_CA_PATH", &cert),
        ] {
            assert_eq!(
                vars(&load(&pairs).unwrap_err()),
                ["REDIS_TLS_CA_PATH"],
                "{pairs:?}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn token_settings_have_safe_defaults_and_bounds() {
        let config = load(&valid_pairs()).unwrap();
        assert_eq!(config.tokens.ttl, Duration::from_secs(600));
        assert!(config.keys.jwt_verification.is_empty());
        for (var, value) in [
            ("ACCESS_TOKEN_TTL_SECS", "901"),
            ("ACCESS_TOKEN_TTL_SECS", "0"),
            ("JWT_ISSUER", "has space"),
            ("JWT_VERIFICATION_KEYS", "k1:AAAA"),
        ] {
            assert_eq!(
                vars(&load(&with(valid_pairs(), var, value)).unwrap_err()),
                [var],
                "{var}={value}"
            );
        }
    }

    #[test]
    fn a_verification_key_may_not_reuse_the_signing_keys_id_for_another_key() {
        let pairs = valid_pairs();
        let kid = pairs
            .iter()
            .find(|(k, _)| k == "JWT_SIGNING_KEY_ID")
            .unwrap()
            .1
            .clone();
        let other = generate_keys().unwrap();
        let other_key =
            JwtSigningKey::parse(KeyId::parse(&kid).unwrap(), &other.jwt_signing_key).unwrap();
        let entry = VerificationKey::of(&other_key).to_env_entry();
        assert_eq!(
            vars(&load(&with(pairs, "JWT_VERIFICATION_KEYS", &entry)).unwrap_err()),
            ["JWT_VERIFICATION_KEYS"]
        );
    }

    #[test]
    fn origins_are_scheme_host_and_optional_port() {
        for ok in [
            "https://app.example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
            "https://[::1]",
            "http://10.0.0.1:80",
        ] {
            assert!(is_origin(ok), "{ok}");
        }
        // Browsers send origins in lower case, so an upper-case entry could never match.
        for bad in [
            "app.example.com",
            "https://",
            "https://a.example/",
            "https://a.example:0",
            "ftp://a",
            "https://a b",
            "null",
            "https://a:b:80",
            "https://App.example.com",
            "https://[::1",
            "https://[zz]:1",
            "https://a.example:",
            "https://a.example:99999",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("bulwark-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut pairs = valid_pairs();
        let key = pairs
            .iter()
            .find(|(k, _)| k == "JWT_SIGNING_KEY")
            .unwrap()
            .1
            .clone();
        std::fs::write(dir.join("jwt"), format!("{key}\n")).unwrap();
        pairs.retain(|(k, _)| k != "JWT_SIGNING_KEY");
        let path = dir.join("jwt").display().to_string();
        pairs.push(("JWT_SIGNING_KEY_FILE".into(), path.clone()));
        assert!(load(&pairs).is_ok());

        pairs.push(("JWT_SIGNING_KEY".into(), key));
        assert_eq!(vars(&load(&pairs).unwrap_err()), ["JWT_SIGNING_KEY"]);

        let mut pairs = valid_pairs();
        pairs.retain(|(k, _)| k != "DATA_ENCRYPTION_KEYS");
        pairs.push((
            "DATA_ENCRYPTION_KEYS_FILE".into(),
            "/nonexistent/bulwark".into(),
        ));
        assert_eq!(
            vars(&load(&pairs).unwrap_err()),
            ["DATA_ENCRYPTION_KEYS_FILE"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn identity_settings_default_to_the_contract_and_refuse_weaker_ones() {
        let config = load(&valid_pairs()).unwrap();
        let identity = &config.identity;
        assert_eq!(identity.argon2, Argon2Settings::default());
        assert_eq!(identity.password.min_chars, 12);
        assert_eq!(identity.password.max_chars, 128);
        assert_eq!(identity.password.style, PolicyStyle::Composition);
        assert!(identity.pepper.is_none());
        assert!(identity.reset_token_ttl <= MAX_RESET_TOKEN_TTL);

        for (var, value) in [
            ("ARGON2_MEMORY_KIB", "4096"),
            ("ARGON2_ITERATIONS", "1"),
            ("PASSWORD_MIN_LENGTH", "8"),
            ("PASSWORD_MIN_SCORE", "2"),
            ("PASSWORD_RESET_TOKEN_TTL_SECS", "3600"),
            ("PASSWORD_PEPPER", "c2hvcnQ="),
            ("PASSWORD_POLICY", "none"),
            ("LOGIN_LOCK_AFTER", "1"),
        ] {
            let problems = load(&with(valid_pairs(), var, value)).unwrap_err();
            assert_eq!(vars(&problems), vec![var], "{var}={value}");
        }
        let asvs = load(&with(valid_pairs(), "PASSWORD_POLICY", "asvs")).unwrap();
        assert_eq!(asvs.identity.password.style, PolicyStyle::Asvs);
    }

    #[test]
    fn smtp_is_optional_and_must_be_encrypted_in_production() {
        assert!(load(&valid_pairs()).unwrap().mail.is_none());
        let mailpit = load(&with(valid_pairs(), "SMTP_URL", "smtp://127.0.0.1:1025")).unwrap();
        assert!(mailpit.mail.is_some());

        let production = with(
            with(valid_pairs(), "APP_ENV", "production"),
            "BEHIND_TLS_PROXY",
            "true",
        );
        let plain = with(
            production.clone(),
            "SMTP_URL",
            "smtp://user:hunter2@mail.example.com:25",
        );
        let problems = load(&plain).unwrap_err();
        assert_eq!(vars(&problems), vec!["SMTP_URL"]);
        assert!(
            !format!("{problems:?}").contains("hunter2"),
            "never the URL"
        );
        let tls = with(
            production,
            "SMTP_URL",
            "smtps://user:pw@mail.example.com:465",
        );
        let tls = with(tls, "PUBLIC_URL", "https://app.example.com");
        assert!(load(&tls).unwrap().mail.is_some());
    }
}
