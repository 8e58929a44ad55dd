//! Wiring: from a [`Config`] to a running HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use bulwark_domain::health::DependencyProbe;
use bulwark_persistence::health::PgProbe;
use bulwark_persistence::PgPool;
use bulwark_transport_rest::{ApiDoc, OpenApiDocument, Readiness};
use bulwark_web::middleware::{self, SecurityHeaders};
use bulwark_web::{cors, extract};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::config::Config;

/// Where the interactive docs live (development only).
pub const DOCS_PREFIX: &str = "/docs/";

/// Extra routes, for the black-box test suite only (a handler that panics, one that echoes JSON):
/// they let the tests prove that every route gets the same middleware. The `bulwark` binary never
/// passes any.
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
    /// The OpenAPI document could not be rendered (a bug in a schema).
    #[error("cannot render the OpenAPI document")]
    OpenApi(#[source] serde_json::Error),
}

/// A bound, not yet running, server.
pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the service: pool (connecting lazily), optional migrations, bound listener.
    ///
    /// # Errors
    /// [`StartupError`] when the port cannot be bound or migrations fail.
    pub async fn build(config: &Config, test_routes: Option<TestRoutes>) -> Result<Self, StartupError> {
        let pool = bulwark_persistence::connect(&config.database);
        if config.migrate_on_start {
            bulwark_persistence::migrate(&pool).await.map_err(StartupError::Migrate)?;
        }

        let address = format!("{}:{}", config.http.host, config.http.port);
        let listener =
            TcpListener::bind(&address).map_err(|source| StartupError::Bind { address: address.clone(), source })?;
        let port = listener.local_addr().map_err(|source| StartupError::Bind { address, source })?.port();

        let server = server(config, pool.clone(), listener, test_routes)?;
        Ok(Self { port, server, pool })
    }

    /// The port actually bound (useful with `PORT=0`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests get the configured grace period),
    /// then closes the pool.
    ///
    /// # Errors
    /// An IO error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.pool.close().await;
        result
    }
}

fn server(
    config: &Config,
    pool: PgPool,
    listener: TcpListener,
    test_routes: Option<TestRoutes>,
) -> Result<Server, StartupError> {
    let http = config.http.clone();
    let document = OpenApiDocument(
        bulwark_transport_rest::openapi_json(&bulwark_transport_rest::openapi()).map_err(StartupError::OpenApi)?.into(),
    );
    let probes: Vec<Arc<dyn DependencyProbe>> = vec![Arc::new(PgProbe::new(pool))];
    let readiness = web::Data::new(Readiness::new(probes, http.readiness_timeout));
    let document = web::Data::new(document);
    let headers = SecurityHeaders { hsts: http.behind_tls_proxy, docs_prefix: http.docs_ui.then_some(DOCS_PREFIX) };

    let server = HttpServer::new(move || {
        let (app, _doc) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .app_data(extract::json_config(http.json_body_limit))
            .app_data(extract::payload_config(http.json_body_limit))
            .app_data(extract::query_config())
            .app_data(extract::path_config())
            .app_data(readiness.clone())
            .app_data(document.clone())
            .configure(bulwark_transport_rest::routes)
            .split_for_parts();
        let app = match &test_routes {
            Some(routes) => app.configure(|cfg| routes(cfg)),
            None => app,
        };
        let app = if http.docs_ui {
            app.service(
                utoipa_swagger_ui::SwaggerUi::new(format!("{DOCS_PREFIX}{{_:.*}}"))
                    .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
            )
        } else {
            app
        };
        middleware::install(app, cors::cors(&http.cors), headers, http.request_timeout)
    })
    .workers(config.http.workers)
    .client_request_timeout(config.http.client_header_timeout)
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .shutdown_timeout(config.http.shutdown_grace.as_secs())
    .listen(listener)
    .map_err(|source| StartupError::Bind { address: "listener".into(), source })?
    .run();
    Ok(server)
}
