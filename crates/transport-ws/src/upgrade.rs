//! `GET /api/v1/ws`: the upgrade, and the [`Gatekeeper`] over the domain services.
//!
//! The Origin header is checked against the same allowlist as CORS *before* the upgrade (403, no
//! frame exchanged): a WebSocket is not covered by the same-origin policy, so without this check
//! any page a signed-in user visits could open the socket in their name (cross-site WebSocket
//! hijacking). A client that sends no Origin is not a browser and gets no ambient credential.
//! Everything after the upgrade is [`serve`]'s: authentication by the first message, per-topic
//! authorisation through the document service, limits.

use std::any::Any;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use bulwark_domain::auth::AuthService;
use bulwark_domain::context::{Actor, Origin};
use bulwark_domain::documents::DocumentService;
use bulwark_domain::events::{Notification, Topic};
use bulwark_web::ProblemError;
use bulwark_web::cors::{CorsPolicy, socket_origin_refusal};
use bulwark_web::identity::ClientOrigin;
use bulwark_web::problem::{Problem, types};
use tokio::sync::broadcast;

use bulwark_web::connections::ConnectionCounter;
use bulwark_web::shutdown::{Shutdown, until_shutdown};
use bulwark_web::socket::{SessionGate, frames, sink};

use crate::notifications::{Authenticated, Gatekeeper, Settings, serve};

/// Where a connection gets the live notifications from (the fan-out of every instance).
pub type Subscribe = Arc<dyn Fn() -> broadcast::Receiver<Notification> + Send + Sync>;

/// What the socket route needs, built once by the app.
#[derive(Clone)]
pub struct SocketState {
    /// Tokens and sessions.
    pub auth: AuthService,
    /// The read policy of documents.
    pub documents: DocumentService,
    /// Open sockets per user.
    pub connections: ConnectionCounter,
    /// The live notifications.
    pub subscribe: Subscribe,
    /// The allowed browser origins (the CORS allowlist).
    pub origins: CorsPolicy,
    /// The protocol's limits.
    pub settings: Settings,
}

impl std::fmt::Debug for SocketState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketState")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// The [`Gatekeeper`] of one connection, over the domain services.
struct DomainGatekeeper {
    sessions: SessionGate,
    state: SocketState,
    origin: Origin,
}

#[async_trait::async_trait]
impl Gatekeeper for DomainGatekeeper {
    async fn authenticate(&self, token: &str) -> Option<Authenticated> {
        self.sessions.authenticate(token).await
    }

    fn admit(&self, actor: &Actor) -> Option<Box<dyn Any + Send>> {
        self.sessions.admit(actor)
    }

    async fn still_live(&self, actor: &Actor) -> bool {
        self.sessions.still_live(actor).await
    }

    async fn count_message(&self, actor: &Actor) -> Result<(), std::time::Duration> {
        self.sessions.count_message(actor).await
    }

    async fn may_read(&self, actor: &Actor, topic: &Topic) -> bool {
        match topic {
            // The same decision as `GET /documents/{id}` (and audited the same way when refused).
            Topic::Document(id) => self
                .state
                .documents
                .get(actor, &self.origin, *id)
                .await
                .is_ok(),
        }
    }

    async fn may_hear(&self, actor: &Actor, notification: &Notification) -> bool {
        self.state.documents.may_hear(actor, notification).await
    }
}

/// Open the notifications socket.
///
/// A WebSocket upgrade. The first message must be `{"type":"auth","token":"<access token>"}`
/// within 10 s (never a token in the URL); then `{"type":"subscribe","topic":"document:<id>"}`.
/// Events arrive as `{"type":"event","topic","event","data"}` with ids only. Close codes: 4401
/// (unauthenticated, session ended, token expired), 4408 (no auth in time), 4429 (too many
/// sockets), 1008 (message rate, binary frames, too slow), 1009 (frame over 64 KiB).
#[utoipa::path(
    tag = "notifications",
    operation_id = "notifications_socket",
    security(()),
    responses(
        (status = 101, description = "Switching protocols: the socket is open."),
        (status = 400, description = "Not a WebSocket upgrade request.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's Origin is not allowed (cross-site WebSocket hijacking).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/ws")]
pub async fn notifications_socket(
    state: web::Data<SocketState>,
    ClientOrigin(origin): ClientOrigin,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ProblemError> {
    if let Some(refusal) = socket_origin_refusal(&state.origins, &req) {
        return Err(refusal);
    }
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|_| {
        ProblemError::new(Problem::new(
            StatusCode::BAD_REQUEST,
            types::ABOUT_BLANK,
            "Bad Request",
            "Not a WebSocket upgrade request.",
        ))
    })?;
    let stream = stream.max_frame_size(state.settings.max_frame_bytes);
    let state = state.get_ref().clone();
    let gate = SessionGate::of(
        &req,
        state.auth.clone(),
        state.connections.clone(),
        "/api/v1/ws",
    );
    let events = (state.subscribe)();
    let shutdown = req
        .app_data::<web::Data<Shutdown>>()
        .map(|s| s.get_ref().clone());
    let closing = session.clone();
    // The connection's logs carry the upgrade request's span (its request id).
    let span = tracing::Span::current();
    actix_web::rt::spawn(tracing::Instrument::instrument(
        until_shutdown(
            async move {
                let settings = state.settings.clone();
                let sessions = gate;
                let gate = DomainGatekeeper {
                    sessions,
                    state,
                    origin,
                };
                let _ = serve(frames(stream), sink(session), events, &gate, &settings).await;
            },
            closing,
            shutdown,
        ),
        span,
    ));
    Ok(response)
}

/// Registers `GET /api/v1/ws` (the app mounts it next to the REST routes).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(notifications_socket);
}
