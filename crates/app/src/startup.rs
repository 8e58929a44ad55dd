//! Wiring: from a [`Config`] to a running HTTP server.
//!
//! [`AppState`] holds everything the workers share; [`app`] builds one actix `App` from it (the
//! server calls it once per worker, the in-process tests call it directly); [`Application`] binds the
//! socket and runs the server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};
use bulwark_domain::abuse::{AbuseWatch, Detector};
use bulwark_domain::account::{AccountPorts, AccountRules, AccountService};
use bulwark_domain::admin::{AdminPorts, AdminService};
use bulwark_domain::api_keys::{ApiKeyPorts, ApiKeyService};
use bulwark_domain::audit::AuditLog;
use bulwark_domain::auth::{AuthPorts, AuthRules, AuthService};
use bulwark_domain::documents::{DocumentPorts, DocumentService};
use bulwark_domain::health::DependencyProbe;
use bulwark_domain::mfa_service::{MfaPorts, MfaRules, MfaService};
use bulwark_domain::oauth_signin::{OAuthPorts, OAuthService};
use bulwark_domain::webhooks::{WebhookPorts, WebhookService};
use bulwark_persistence::PgPool;
use bulwark_persistence::api_key::PgApiKeyRepository;
use bulwark_persistence::attachment::PgAttachmentRepository;
use bulwark_persistence::audit::PgAuditLog;
use bulwark_persistence::document::PgDocumentRepository;
use bulwark_persistence::fanout::PgFanout;
use bulwark_persistence::flow::PgFlowLimiter;
use bulwark_persistence::health::PgProbe;
use bulwark_persistence::liveness::{self, CachedLiveness};
use bulwark_persistence::mfa::PgMfaStore;
use bulwark_persistence::oauth::PgOAuthStore;
use bulwark_persistence::one_time::PgOneTimeTokenStore;
use bulwark_persistence::outbox::PgOutbox;
use bulwark_persistence::redis_fanout::RedisFanout;
use bulwark_persistence::session::PgSessionStore;
use bulwark_persistence::throttle::PgLoginThrottle;
use bulwark_persistence::user::PgUserRepository;
use bulwark_persistence::webhook::PgWebhookRepository;
use bulwark_security::api_key::PrefixedApiKeys;
use bulwark_security::html::AmmoniaSanitizer;
use bulwark_security::opaque::PrefixedTokens;
use bulwark_security::password::Argon2Hasher;
use bulwark_security::recovery::RecoveryCodeMinter;
use bulwark_security::sealing::KeyringSealer;
use bulwark_security::throttle::Sha256ThrottleKeys;
use bulwark_security::tokens::JwtAccessTokens;
use bulwark_security::totp::TotpAuthenticator;
use bulwark_security::webhook_transport::{GuardedTransport, TransportSettings};
use bulwark_transport_rest::{ApiDoc, Jwk, JwkSet, OpenApiDocument, Readiness};
use bulwark_web::access::AccessTable;
use bulwark_web::middleware::{self, SecurityHeaders};
use bulwark_web::routing::RouteTable;
use bulwark_web::shutdown::{Shutdown, ShutdownTrigger};
use bulwark_web::{cors, extract, routing};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::config::{Config, HttpSettings};

/// Open live sockets (`/api/v1/ws` and `/graphql/ws` together) per user and instance.
const WS_CONNECTIONS_PER_USER: usize = 5;

/// How many notifications a live subscriber may fall behind before it is dropped as too slow.
const FANOUT_BUFFER: usize = 256;

/// Keys (accounts, addresses, users) the abuse watch tracks at once.
const ABUSE_MAX_KEYS: usize = 50_000;

/// The fan-out of live notifications this instance publishes to and listens on.
#[derive(Debug, Clone)]
enum Fanout {
    Postgres(PgFanout),
    Redis(RedisFanout),
}

impl Fanout {
    fn new(settings: &crate::config::FanoutSettings, pool: &PgPool) -> Result<Self, StartupError> {
        use secrecy::ExposeSecret;
        Ok(match settings {
            crate::config::FanoutSettings::Postgres => {
                Self::Postgres(PgFanout::new(pool.clone(), FANOUT_BUFFER))
            }
            crate::config::FanoutSettings::Redis {
                url,
                root_certs,
                channel,
            } => Self::Redis(
                RedisFanout::with_root_certs(
                    url.expose_secret(),
                    root_certs.as_deref(),
                    channel.clone(),
                    FANOUT_BUFFER,
                )
                .map_err(|_| StartupError::Fanout)?,
            ),
        })
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<bulwark_domain::events::Notification> {
        match self {
            Self::Postgres(fanout) => fanout.subscribe(),
            Self::Redis(fanout) => fanout.subscribe(),
        }
    }

    fn publisher(&self) -> Arc<dyn bulwark_domain::events::DocumentEvents> {
        match self {
            Self::Postgres(fanout) => Arc::new(fanout.clone()),
            Self::Redis(fanout) => Arc::new(fanout.clone()),
        }
    }

    fn spawn_listener(&self) -> tokio::task::JoinHandle<()> {
        match self {
            Self::Postgres(fanout) => fanout.spawn_listener(),
            Self::Redis(fanout) => fanout.spawn_listener(),
        }
    }
}

/// The rate limiter: in process, or shared through Redis with the in-process one as fallback.
fn rate_limiter(
    settings: &crate::config::RateLimitSettings,
    metrics: &bulwark_web::metrics::Metrics,
) -> Result<Arc<dyn bulwark_domain::rate_limit::RateLimiter>, StartupError> {
    use bulwark_web::metrics::Kind;
    use bulwark_web::rate_limit::{FallbackLimiter, LocalRateLimiter};
    use secrecy::ExposeSecret;
    const FALLBACKS: &str = "bulwark_rate_limit_fallbacks_total";
    const FALLBACKS_HELP: &str =
        "Rate-limit and quota decisions taken in process because Redis could not answer.";
    let local = LocalRateLimiter::new(settings.max_keys);
    let Some(shared) = &settings.shared else {
        // Exported all the same (always 0), so dashboards and alert rules find the series.
        metrics.family(FALLBACKS, FALLBACKS_HELP, Kind::Counter, || {
            vec![(None, 0.0)]
        });
        return Ok(Arc::new(local));
    };
    let redis = bulwark_persistence::redis_limiter::RedisRateLimiter::with_root_certs(
        shared.url.expose_secret(),
        shared.root_certs.as_deref(),
        shared.prefix.clone(),
    )
    .map_err(|_| StartupError::Fanout)?;
    let limiter = Arc::new(FallbackLimiter::new(
        Arc::new(redis),
        local,
        std::time::Duration::from_secs(1),
    ));
    let counted = limiter.clone();
    #[allow(clippy::cast_precision_loss)] // a count far below 2^52
    metrics.family(FALLBACKS, FALLBACKS_HELP, Kind::Counter, move || {
        vec![(None, counted.fallbacks() as f64)]
    });
    Ok(limiter)
}

/// Completes on SIGTERM (what orchestrators send) or SIGINT (Ctrl-C). If a handler cannot be
/// installed, that signal is simply not awaited (and logged): the process can still be stopped.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let wait = |kind: SignalKind, name: &'static str| async move {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, signal = name, "cannot listen for a stop signal");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = wait(SignalKind::terminate(), "SIGTERM") => {}
        () = wait(SignalKind::interrupt(), "SIGINT") => {}
    }
}

/// The separate metrics listener (`METRICS_ADDR`): one worker, `GET /metrics` and nothing else
/// (every other path is 404). It stops with the service (its task is aborted), not on its own
/// signal.
fn metrics_listener(
    at: std::net::SocketAddr,
    metrics: web::Data<bulwark_web::metrics::Metrics>,
) -> Result<(u16, Server), StartupError> {
    let address = at.to_string();
    let bind_error = |source| StartupError::Bind {
        address: address.clone(),
        source,
    };
    let listener = TcpListener::bind(at).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    // Not a route of the API (it is not in the OpenAPI document, and not on the API's port): the
    // listener's one handler is its default service, which answers `GET /metrics` and 404s the rest.
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .default_service(web::to(bulwark_transport_rest::metrics::internal))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?
    .run();
    Ok((port, server))
}

/// The abuse watch's counters, read at every scrape.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn abuse_metrics(metrics: &bulwark_web::metrics::Metrics, watch: &Arc<AbuseWatch>) {
    use bulwark_web::metrics::Kind::Counter;
    let w = watch.clone();
    metrics.family(
        "bulwark_auth_failures_total",
        "Failed sign-ins, by factor (login: password; mfa: second factor).",
        Counter,
        move || {
            let c = w.counts();
            vec![
                (Some(("kind", "login")), c.login_failures as f64),
                (Some(("kind", "mfa")), c.mfa_failures as f64),
            ]
        },
    );
    let w = watch.clone();
    metrics.family(
        "bulwark_refresh_token_reuse_total",
        "Rotated refresh tokens presented again (each revoked its session).",
        Counter,
        move || vec![(None, w.counts().refresh_reuse as f64)],
    );
    let w = watch.clone();
    metrics.family(
        "bulwark_access_denials_total",
        "Refused accesses (another user's object, a route the role lacks).",
        Counter,
        move || vec![(None, w.counts().access_denials as f64)],
    );
    let w = watch.clone();
    metrics.family(
        "bulwark_security_alerts_total",
        "Security alerts raised by this instance's abuse watch, by rule.",
        Counter,
        move || {
            w.counts()
                .alerts
                .into_iter()
                .map(|(rule, n)| (Some(("rule", rule.name())), n as f64))
                .collect()
        },
    );
}

/// Where the interactive docs live (development only).
pub const DOCS_PREFIX: &str = "/docs/";

/// Extra routes, for the black-box test suite only (a handler that panics, one that echoes JSON):
/// they let the tests prove that every route gets the same middleware. The `bulwark` binary never
/// passes any. They must live under [`TEST_ROUTE_PREFIX`], which is public when (and only when)
/// test routes are installed.
pub const TEST_ROUTE_PREFIX: &str = "/__probe/";

/// See [`TEST_ROUTE_PREFIX`].
pub type TestRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] bulwark_persistence::MigrateError),
    /// The access-token service could not be built.
    #[error("cannot set up access tokens")]
    Tokens(#[source] bulwark_security::tokens::TokenSetupError),
    /// The OpenAPI document could not be rendered (a bug in a schema).
    #[error("cannot render the OpenAPI document")]
    OpenApi(#[source] serde_json::Error),
    /// The password hasher could not be built.
    #[error("cannot set up password hashing")]
    Hasher(#[source] bulwark_security::password::HasherSetupError),
    /// An operation's access declaration is unusable (a bug in an annotation).
    #[error("invalid access declaration")]
    Access(#[source] bulwark_transport_rest::AccessDeclarationError),
    /// `SMTP_URL` cannot be used.
    #[error("cannot set up mail delivery")]
    Smtp(#[source] crate::delivery::SmtpSetupError),
    /// `REDIS_URL` (or `REDIS_KEY_PREFIX`) cannot be used for the fan-out or the shared rate
    /// limits (the configuration checks the URL first).
    #[error("cannot set up Redis (REDIS_URL, REDIS_KEY_PREFIX)")]
    Fanout,
    /// The data-encryption keyring cannot seal.
    #[error("cannot set up data encryption")]
    Sealer(#[source] bulwark_domain::sealing::SealError),
    /// An identity provider is misconfigured or its discovery failed.
    #[error("cannot set up sign-in with an identity provider")]
    OAuth(#[source] bulwark_security::oauth::OAuthSetupError),
    /// The webhook delivery client cannot be built.
    #[error("cannot set up webhook delivery")]
    Webhooks(#[source] bulwark_security::webhook_transport::TransportBuildError),
}

/// Everything the workers share, built once.
#[derive(Clone)]
pub struct AppState {
    /// Fired when the server begins to stop (sockets close with 1001).
    shutdown_trigger: Arc<ShutdownTrigger>,
    shutdown: web::Data<Shutdown>,
    http: HttpSettings,
    headers: SecurityHeaders,
    readiness: web::Data<Readiness>,
    document: web::Data<OpenApiDocument>,
    routes: web::Data<RouteTable>,
    access: web::Data<AccessTable>,
    jwks: web::Data<JwkSet>,
    auth: web::Data<AuthService>,
    accounts: web::Data<AccountService>,
    documents: web::Data<DocumentService>,
    webhooks: web::Data<WebhookService>,
    api_keys: web::Data<ApiKeyService>,
    mfa: web::Data<MfaService>,
    oauth: web::Data<OAuthService>,
    graphql: web::Data<bulwark_transport_graphql::BulwarkSchema>,
    graphql_limits: web::Data<bulwark_transport_graphql::Limits>,
    socket: web::Data<bulwark_transport_ws::SocketState>,
    graphql_socket: web::Data<bulwark_transport_graphql::SubscriptionSocket>,
    rate_limits: web::Data<bulwark_web::rate_limit::RateLimits>,
    metrics: web::Data<bulwark_web::metrics::Metrics>,
    metrics_token: web::Data<bulwark_transport_rest::metrics::MetricsToken>,
    admin: web::Data<AdminService>,
    audit: web::Data<dyn AuditLog>,
    abuse: web::Data<AbuseWatch>,
    liveness: CachedLiveness,
    fanout: Fanout,
    outbox: PgOutbox,
    test_routes: Option<TestRoutes>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the adapters over `pool` and renders the OpenAPI document.
    ///
    /// # Errors
    /// [`StartupError::OpenApi`] when the document cannot be rendered.
    pub fn new(
        config: &Config,
        pool: PgPool,
        test_routes: Option<TestRoutes>,
    ) -> Result<Self, StartupError> {
        let http = config.http.clone();
        let doc = crate::api::openapi();
        let document = OpenApiDocument(
            bulwark_transport_rest::openapi_json(&doc)
                .map_err(StartupError::OpenApi)?
                .into(),
        );
        let access = bulwark_transport_rest::access_table(&doc).map_err(StartupError::Access)?;
        let access = if test_routes.is_some() {
            access.with_public_prefix(TEST_ROUTE_PREFIX)
        } else {
            access
        };
        let access = if http.docs_ui {
            access.with_public_prefix(DOCS_PREFIX)
        } else {
            access
        };
        let probes: Vec<Arc<dyn DependencyProbe>> = vec![Arc::new(PgProbe::new(pool.clone()))];
        let tokens = JwtAccessTokens::new(
            &config.keys.jwt_signing,
            &config.keys.jwt_verification,
            config.tokens.clone(),
        )
        .map_err(StartupError::Tokens)?;
        let jwks = JwkSet {
            keys: tokens
                .public_keys()
                .iter()
                .map(|k| Jwk::ed25519(k.kid.clone(), k.x.clone()))
                .collect(),
        };

        // The adapters behind the domain's ports, each built once and shared by every worker.
        let identity = &config.identity;
        let hasher = Arc::new(
            Argon2Hasher::new(
                identity.argon2,
                identity.pepper.clone(),
                identity.hash_concurrency,
                identity.hash_queue_wait,
            )
            .map_err(StartupError::Hasher)?,
        );
        let sealer = Arc::new(
            KeyringSealer::new(&config.keys.data_encryption).map_err(StartupError::Sealer)?,
        );
        let liveness = CachedLiveness::new(pool.clone(), liveness::DEFAULT_TTL);
        let outbox = PgOutbox::new(pool.clone(), sealer.clone());
        let users = Arc::new(PgUserRepository::new(pool.clone()));
        let sessions = Arc::new(PgSessionStore::new(pool.clone()));
        let throttle = Arc::new(PgLoginThrottle::new(pool.clone()));
        // Every audit write goes through the abuse watch, which reads the trail's warning signs
        // (failed sign-ins, reused refresh tokens, refusals) and raises `security.alert`s.
        let trail = Arc::new(PgAuditLog::new(pool.clone()));
        let audit = Arc::new(AbuseWatch::new(
            trail.clone(),
            Detector::new(config.alerts, ABUSE_MAX_KEYS),
        ));
        let opaque_tokens = Arc::new(PrefixedTokens);
        let throttle_keys = Arc::new(Sha256ThrottleKeys);
        let accounts = AccountService::new(
            AccountPorts {
                users: users.clone(),
                hasher: hasher.clone(),
                sessions: sessions.clone(),
                liveness: Arc::new(liveness.clone()),
                opaque_tokens: opaque_tokens.clone(),
                one_time_tokens: Arc::new(PgOneTimeTokenStore::new(pool.clone())),
                mailer: Arc::new(outbox.clone()),
                throttle: throttle.clone(),
                throttle_keys: throttle_keys.clone(),
                audit: audit.clone(),
            },
            AccountRules {
                password: identity.password,
                throttle: identity.account_throttle,
                reset_token_ttl: identity.reset_token_ttl,
                verification_token_ttl: identity.verification_token_ttl,
                mails_per_window: identity.mails_per_hour,
                mail_window: std::time::Duration::from_secs(60 * 60),
            },
        );
        let mfa = MfaService::new(
            MfaPorts {
                store: Arc::new(PgMfaStore::new(pool.clone())),
                totp: Arc::new(TotpAuthenticator::new(config.identity.totp_issuer.clone())),
                recovery: Arc::new(RecoveryCodeMinter),
                sealer: sealer.clone(),
                tokens: opaque_tokens.clone(),
                users: users.clone(),
                audit: audit.clone(),
            },
            MfaRules::default(),
            accounts.clone(),
        );
        let auth = AuthService::new(
            AuthPorts {
                users: users.clone(),
                hasher: hasher.clone(),
                sessions: sessions.clone(),
                liveness: Arc::new(liveness.clone()),
                access_tokens: Arc::new(tokens),
                opaque_tokens: opaque_tokens.clone(),
                throttle: throttle.clone(),
                throttle_keys: throttle_keys.clone(),
                audit: audit.clone(),
                second_factor: Arc::new(mfa.clone()),
            },
            AuthRules {
                password: identity.password,
                sessions: identity.sessions,
                account_throttle: identity.account_throttle,
                require_mfa_for_admins: identity.require_mfa_for_admins,
                ..AuthRules::default()
            },
        );
        let oauth = OAuthService::new(
            OAuthPorts {
                providers: Arc::default(),
                store: Arc::new(PgOAuthStore::new(pool.clone())),
                users: users.clone(),
                tokens: opaque_tokens.clone(),
                sealer: sealer.clone(),
                audit: audit.clone(),
            },
            auth.clone(),
            accounts.clone(),
        );
        let webhook_settings = &config.webhooks;
        let transport = GuardedTransport::new(TransportSettings {
            connect_timeout: webhook_settings.connect_timeout,
            total_timeout: webhook_settings.timeout,
            max_response_bytes: webhook_settings.max_response_bytes,
            user_agent: concat!("Bulwark-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
            test_network: webhook_settings.test_network.clone(),
        })
        .map_err(StartupError::Webhooks)?;
        let flows = Arc::new(PgFlowLimiter::new(pool.clone()));
        // Live notifications between instances (the GraphQL and WebSocket subscribers of issue 6).
        let fanout = Fanout::new(&config.fanout, &pool)?;
        let webhooks = WebhookService::new(
            WebhookPorts {
                webhooks: Arc::new(PgWebhookRepository::new(pool.clone())),
                transport: Arc::new(transport),
                sealer: sealer.clone(),
                tokens: opaque_tokens.clone(),
                audit: audit.clone(),
                flows: flows.clone(),
                flow_caps: config.flow_caps,
                limits: config.quotas,
            },
            webhook_settings.delivery,
        );
        let documents = DocumentService::new(DocumentPorts {
            documents: Arc::new(PgDocumentRepository::new(pool.clone())),
            attachments: Arc::new(PgAttachmentRepository::new(pool.clone())),
            sanitizer: Arc::new(AmmoniaSanitizer::new()),
            audit: audit.clone(),
            limits: config.quotas,
            flows,
            flow_caps: config.flow_caps,
            events: Arc::new(bulwark_domain::events::Listeners(vec![
                Arc::new(webhooks.clone()),
                fanout.publisher(),
            ])),
        });
        let audit_reader = trail;
        let audit_log: Arc<dyn AuditLog> = audit.clone();
        let abuse = audit.clone();
        let admin_ports = AdminPorts {
            users: users.clone(),
            sessions: sessions.clone(),
            liveness: Arc::new(liveness.clone()),
            audit: audit.clone(),
            audit_reader,
        };
        let api_key_ports = ApiKeyPorts {
            keys: Arc::new(PgApiKeyRepository::new(pool.clone())),
            tokens: Arc::new(PrefixedApiKeys),
            audit: audit.clone(),
            limits: config.quotas,
        };
        let admin = AdminService::new(admin_ports, accounts.clone());
        let subscribe_to = fanout.clone();
        let graphql = bulwark_transport_graphql::build(
            bulwark_transport_graphql::Services {
                documents: documents.clone(),
                accounts: accounts.clone(),
                admin: admin.clone(),
                notifications: bulwark_transport_graphql::NotificationSource::new(move || {
                    subscribe_to.subscribe()
                }),
            },
            &config.graphql,
            config.env == crate::config::AppEnv::Development,
        );
        // One count for both sockets: a user's sockets on either endpoint count together.
        let connections = bulwark_web::connections::ConnectionCounter::new(WS_CONNECTIONS_PER_USER);
        let metrics = bulwark_web::metrics::Metrics::default();
        let open = connections.clone();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        {
            metrics.gauge(
                "bulwark_websocket_connections",
                "Open WebSocket connections (both endpoints) on this instance.",
                move || open.total() as f64,
            );
            let sized = pool.clone();
            metrics.gauge(
                "bulwark_db_pool_connections",
                "Connections the database pool holds now.",
                move || f64::from(sized.size()),
            );
            let idle = pool.clone();
            metrics.gauge(
                "bulwark_db_pool_idle_connections",
                "Idle connections in the database pool.",
                move || idle.num_idle() as f64,
            );
        }
        abuse_metrics(&metrics, &audit);
        let graphql_socket = bulwark_transport_graphql::SubscriptionSocket {
            auth: auth.clone(),
            connections: connections.clone(),
            origins: http.cors.clone(),
            settings: bulwark_transport_graphql::subscriptions::Settings::default(),
        };
        let subscribe_to = fanout.clone();
        let socket = bulwark_transport_ws::SocketState {
            auth: auth.clone(),
            documents: documents.clone(),
            connections,
            subscribe: Arc::new(move || subscribe_to.subscribe()),
            origins: http.cors.clone(),
            settings: bulwark_transport_ws::Settings::default(),
        };
        let (shutdown_trigger, shutdown) = bulwark_web::shutdown::channel();
        Ok(Self {
            shutdown_trigger: Arc::new(shutdown_trigger),
            shutdown: web::Data::new(shutdown),
            socket: web::Data::new(socket),
            graphql_socket: web::Data::new(graphql_socket),
            rate_limits: web::Data::new(bulwark_web::rate_limit::RateLimits::new(
                config.rate_limits.ip.clone(),
                config.rate_limits.principal.clone(),
                &config.rate_limits.auth,
                &config.rate_limits.upgrade,
                bulwark_web::rate_limit::DailyQuotas::new(&config.quotas),
                rate_limiter(&config.rate_limits, &metrics)?,
            )),
            metrics: web::Data::new(metrics),
            metrics_token: web::Data::new(bulwark_transport_rest::metrics::MetricsToken(
                config.metrics_token.clone(),
            )),
            graphql: web::Data::new(graphql),
            graphql_limits: web::Data::new(config.graphql),
            headers: SecurityHeaders {
                // Over TLS, whether ours (`TLS_CERT_PATH`) or a proxy's: the same header either way.
                hsts: http.behind_tls_proxy || http.tls.is_some(),
                docs_prefix: http.docs_ui.then_some(DOCS_PREFIX),
            },
            readiness: web::Data::new(Readiness::new(probes, http.readiness_timeout)),
            document: web::Data::new(document),
            routes: web::Data::new(bulwark_transport_rest::route_table(&doc)),
            access: web::Data::new(access),
            jwks: web::Data::new(jwks),
            auth: web::Data::new(auth),
            admin: web::Data::new(admin),
            api_keys: web::Data::new(
                ApiKeyService::new(api_key_ports, accounts.clone())
                    .requiring_mfa_for_admins(identity.require_mfa_for_admins),
            ),
            mfa: web::Data::new(mfa),
            oauth: web::Data::new(oauth),
            accounts: web::Data::new(accounts),
            documents: web::Data::new(documents),
            webhooks: web::Data::new(webhooks),
            audit: web::Data::from(audit_log),
            abuse: web::Data::from(abuse),
            liveness,
            fanout,
            outbox,
            http,
            test_routes,
        })
    }
}

impl AppState {
    /// The same state with these identity providers (discovered by [`Application::build`], which
    /// can wait on the network; building the rest of the state cannot).
    #[must_use]
    pub fn with_oauth_providers(
        mut self,
        providers: Vec<Arc<dyn bulwark_domain::oauth::OAuthProvider>>,
    ) -> Self {
        self.oauth = web::Data::new(self.oauth.get_ref().clone().with_providers(providers));
        self
    }

    /// The account service (the command line's `create-admin` uses it).
    #[must_use]
    pub fn accounts(&self) -> &AccountService {
        &self.accounts
    }
}

/// One actix `App`: routes, extractor rules, fallback and the whole middleware stack.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.http.json_body_limit;
    let (app, _doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(extract::json_config(limit))
        .app_data(extract::payload_config(limit))
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .app_data(state.readiness.clone())
        .app_data(state.document.clone())
        .app_data(state.routes.clone())
        .app_data(web::Data::new(state.http.trusted_proxies.clone()))
        .app_data(state.access.clone())
        .app_data(state.jwks.clone())
        .app_data(state.auth.clone())
        .app_data(state.accounts.clone())
        .app_data(state.documents.clone())
        .app_data(state.webhooks.clone())
        .app_data(state.api_keys.clone())
        .app_data(state.mfa.clone())
        .app_data(state.oauth.clone())
        .app_data(state.graphql.clone())
        .app_data(state.graphql_limits.clone())
        .app_data(state.socket.clone())
        .app_data(state.graphql_socket.clone())
        .app_data(state.rate_limits.clone())
        .app_data(state.metrics.clone())
        .app_data(state.metrics_token.clone())
        .app_data(state.admin.clone())
        .app_data(state.audit.clone())
        .app_data(state.abuse.clone())
        .app_data(state.shutdown.clone())
        .configure(crate::api::routes)
        .split_for_parts();
    let app = match state.test_routes {
        Some(routes) => app.configure(|cfg| routes(cfg)),
        None => app,
    };
    let app = if state.http.docs_ui {
        // The one route outside the OpenAPI document: a browser page, not part of the API, and
        // refused by the configuration in production.
        app.service(
            utoipa_swagger_ui::SwaggerUi::new(format!("{DOCS_PREFIX}{{_:.*}}"))
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        )
    } else {
        app
    };
    let app = app.default_service(web::to(routing::fallback));
    middleware::install(
        app,
        cors::cors(&state.http.cors),
        state.headers,
        state.http.request_timeout,
    )
}

/// How often expired sessions, tokens, throttle counters and sent mail are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The hourly purge (see `bulwark_persistence::maintenance`). With several instances each purges;
/// the deletes are idempotent, so that costs a little work and nothing else.
fn spawn_purge(pool: PgPool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match bulwark_persistence::maintenance::purge_expired(&pool).await {
                Ok(purged) => tracing::info!(?purged, "purged expired rows"),
                Err(error) => tracing::warn!(error = %error, "purge failed; retrying later"),
            }
            tokio::time::sleep(PURGE_EVERY).await;
        }
    })
}

/// A bound, not yet running, server.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    redirect_port: Option<u16>,
    shutdown: Arc<ShutdownTrigger>,
    server: Server,
    pool: PgPool,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the service: pool (connecting lazily), optional migrations, bound listener.
    ///
    /// # Errors
    /// [`StartupError`] when the port cannot be bound or migrations fail.
    pub async fn build(
        config: &Config,
        test_routes: Option<TestRoutes>,
    ) -> Result<Self, StartupError> {
        let pool = bulwark_persistence::connect(&config.database);
        if config.migrate_on_start {
            bulwark_persistence::migrate(&pool)
                .await
                .map_err(StartupError::Migrate)?;
        }
        let mut providers = Vec::with_capacity(config.oauth.providers.len());
        for provider in &config.oauth.providers {
            providers.push(
                bulwark_security::oauth::build_provider(provider.clone(), &config.oauth.http)
                    .await
                    .map_err(StartupError::OAuth)?,
            );
        }
        let state =
            AppState::new(config, pool.clone(), test_routes)?.with_oauth_providers(providers);
        let oauth_ids = state.oauth.provider_ids();
        if !oauth_ids.is_empty() {
            tracing::info!(providers = ?oauth_ids, "sign-in with identity providers enabled");
        }
        // Revocations made by other instances reach this one's liveness cache through
        // LISTEN/NOTIFY; until the listener is connected, every check goes to the database.
        let mut background = vec![
            state.liveness.spawn_listener(pool.clone()),
            state.fanout.spawn_listener(),
            spawn_purge(pool.clone()),
            crate::webhooks::spawn(
                state.webhooks.get_ref().clone(),
                config.webhooks.poll_interval,
            ),
        ];
        match &config.mail {
            Some(mail) => background.push(
                crate::delivery::spawn(state.outbox.clone(), mail.clone())
                    .map_err(StartupError::Smtp)?,
            ),
            None => tracing::warn!(
                "SMTP_URL is not set: account mails (verification, reset) stay in the mail_outbox table"
            ),
        }

        let address = format!("{}:{}", config.http.host, config.http.port);
        let bind_error = |source| StartupError::Bind {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let (metrics_port, metrics_server) = match config.metrics_addr {
            Some(at) => {
                let (port, server) = metrics_listener(at, state.metrics.clone())?;
                (Some(port), Some(server))
            }
            None => (None, None),
        };
        if let Some(server) = metrics_server {
            background.push(tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(error = %error, "the metrics listener stopped");
                }
            }));
        }
        // Like the metrics listener: a task of its own, aborted (which closes its socket) when the
        // service stops. A redirect has nothing in flight worth a grace period.
        let redirect = config
            .http
            .tls
            .as_ref()
            .and_then(|tls| tls.redirect.as_ref());
        let redirect_port = match redirect {
            Some(redirect) => {
                let (port, server) = crate::tls::redirect_listener(
                    config.http.host,
                    redirect,
                    config.http.client_header_timeout,
                )?;
                background.push(tokio::spawn(async move {
                    if let Err(error) = server.await {
                        tracing::error!(error = %error, "the HTTP-to-HTTPS redirect listener stopped");
                    }
                }));
                Some(port)
            }
            None => None,
        };

        let http = &config.http;
        let shutdown = state.shutdown_trigger.clone();
        // The signals are ours (`run_until_stopped`): the sockets must hear of the shutdown before
        // actix starts waiting for connections to end.
        let server = HttpServer::new(move || app(state.clone()))
            .workers(http.workers)
            .client_request_timeout(http.client_header_timeout)
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            .shutdown_timeout(http.shutdown_grace.as_secs())
            .disable_signals();
        // With TLS the listener speaks nothing else: a plain-HTTP request fails the handshake.
        let server = match &http.tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls.server_config()),
            None => server.listen(listener),
        }
        .map_err(bind_error)?
        .run();
        Ok(Self {
            port,
            metrics_port,
            redirect_port,
            server,
            shutdown,
            pool,
            background,
        })
    }

    /// The port actually bound (useful with `PORT=0`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, when `METRICS_ADDR` is set.
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// The port of the plain-HTTP redirect listener, when `TLS_REDIRECT_PORT` is set.
    #[must_use]
    pub fn redirect_port(&self) -> Option<u16> {
        self.redirect_port
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully: the listener closes at once (new
    /// connections are refused), every WebSocket is closed with 1001 (going away), and in-flight
    /// requests get `SHUTDOWN_GRACE_SECS` to finish; then the background tasks stop and the pool
    /// closes.
    ///
    /// # Errors
    /// An IO error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        let result = tokio::select! {
            result = &mut server => result,
            () = stop_signal() => {
                tracing::info!("stopping: no new connections; sockets told to go away; finishing in-flight requests");
                self.shutdown.fire();
                // The stop is carried out by the server future itself: both are driven together.
                let ((), result) = tokio::join!(handle.stop(true), server);
                result
            }
        };
        for task in &self.background {
            task.abort();
        }
        self.pool.close().await;
        result
    }
}
