//! `GET /graphql/ws`: the upgrade of the subscription socket, and the [`Gatekeeper`] and
//! [`Operations`] of [`serve`] over the domain services and the schema.
//!
//! Before the upgrade: the Origin allowlist (403, as for `/api/v1/ws`: cross-site WebSocket
//! hijacking) and the subprotocol, which must be offered (`Sec-WebSocket-Protocol:
//! graphql-transport-ws`, else 400). Everything after is [`serve`]'s.

use std::any::Any;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use bulwark_domain::auth::AuthService;
use bulwark_domain::context::{Actor, Origin};
use bulwark_web::ProblemError;
use bulwark_web::connections::ConnectionCounter;
use bulwark_web::cors::{CorsPolicy, socket_origin_refusal};
use bulwark_web::identity::ClientOrigin;
use bulwark_web::problem::{Problem, types};
use bulwark_web::shutdown::{Shutdown, until_shutdown};
use bulwark_web::socket::{SessionGate, frames, sink};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;

use crate::armour::{Limits, OperationType};
use crate::http::{prepare, refused, with_codes};
use crate::schema::{BulwarkSchema, RequestContext};
use crate::subscriptions::{Authenticated, Gatekeeper, Operations, PROTOCOL, Settings, serve};

/// What the subscription socket needs besides the schema and the limits, built once by the app.
#[derive(Clone)]
pub struct SubscriptionSocket {
    /// Tokens and sessions.
    pub auth: AuthService,
    /// Open sockets per user (shared with `/api/v1/ws`).
    pub connections: ConnectionCounter,
    /// The allowed browser origins (the CORS allowlist).
    pub origins: CorsPolicy,
    /// The protocol's limits.
    pub settings: Settings,
}

impl std::fmt::Debug for SubscriptionSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionSocket")
            .field("connections", &self.connections)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The [`Gatekeeper`] over the domain's `AuthService`.
struct DomainGatekeeper(SessionGate);

#[async_trait::async_trait]
impl Gatekeeper for DomainGatekeeper {
    async fn authenticate(&self, token: &str) -> Option<Authenticated> {
        self.0.authenticate(token).await
    }

    fn admit(&self, actor: &Actor) -> Option<Box<dyn Any + Send>> {
        self.0.admit(actor)
    }

    async fn still_live(&self, actor: &Actor) -> bool {
        self.0.still_live(actor).await
    }

    async fn count_message(&self, actor: &Actor) -> Result<(), std::time::Duration> {
        self.0.count_message(actor).await
    }
}

/// [`Operations`] over the schema: the same armour as `POST /graphql`, subscriptions only.
struct SchemaOperations {
    schema: BulwarkSchema,
    limits: Limits,
    origin: Origin,
}

fn errors_of(response: &async_graphql::Response) -> Value {
    serde_json::to_value(&response.errors).unwrap_or(Value::Array(Vec::new()))
}

impl Operations for SchemaOperations {
    fn start(&self, actor: &Actor, payload: Value) -> Result<BoxStream<'static, Value>, Value> {
        let context = RequestContext {
            actor: Some(*actor),
            origin: self.origin.clone(),
        };
        let (request, checked) =
            prepare(&self.limits, context, &payload).map_err(|r| errors_of(&r))?;
        if checked.kind != OperationType::Subscription {
            return Err(errors_of(&refused(
                "Only subscriptions run over /graphql/ws; send queries and mutations to POST /graphql.",
            )));
        }
        Ok(self
            .schema
            .execute_stream(request)
            .map(|response| {
                serde_json::to_value(with_codes(response)).unwrap_or_else(|error| {
                    tracing::error!(error = %error, "a subscription result did not serialise");
                    serde_json::json!({
                        "errors": [{"message": "Internal error.", "extensions": {"code": "INTERNAL"}}]
                    })
                })
            })
            .boxed())
    }
}

fn offers_protocol(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim() == PROTOCOL)
}

/// Open the GraphQL subscription socket.
///
/// A WebSocket upgrade speaking `graphql-transport-ws` (offer it in `Sec-WebSocket-Protocol`).
/// The first message is `{"type":"connection_init","payload":{"authorization":"Bearer <access
/// token>"}}` within 10 s (never a token in the URL); then `subscribe` messages carrying
/// subscription operations of the schema in `openapi/schema.graphql` (`documentChanged(id)`,
/// `myNotifications`). Only subscriptions run here. Close codes: 4400 (not a protocol message),
/// 4401 (subscribe before the acknowledgement), 4403 (bad token, session ended, token expired),
/// 4408 (no `connection_init` in time), 4409 (an id already running), 4429 (a second
/// `connection_init`, or too many sockets), 1008 (message rate), 1009 (frame over 64 KiB).
#[utoipa::path(
    tag = "graphql",
    operation_id = "graphql_socket",
    security(()),
    responses(
        (status = 101, description = "Switching protocols: the socket is open (`Sec-WebSocket-Protocol: graphql-transport-ws`)."),
        (status = 400, description = "Not a WebSocket upgrade, or the graphql-transport-ws subprotocol is not offered.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The page's Origin is not allowed (cross-site WebSocket hijacking).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/graphql/ws")]
pub async fn graphql_socket(
    state: web::Data<SubscriptionSocket>,
    schema: web::Data<BulwarkSchema>,
    limits: web::Data<Limits>,
    ClientOrigin(origin): ClientOrigin,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ProblemError> {
    if let Some(refusal) = socket_origin_refusal(&state.origins, &req) {
        return Err(refusal);
    }
    let bad_request = |detail: &'static str| {
        ProblemError::new(Problem::new(
            StatusCode::BAD_REQUEST,
            types::ABOUT_BLANK,
            "Bad Request",
            detail,
        ))
    };
    if !offers_protocol(&req) {
        return Err(bad_request(
            "Offer the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol).",
        ));
    }
    let (response, session, stream) = actix_ws::handle_with_protocols(&req, body, &[PROTOCOL])
        .map_err(|_| bad_request("Not a WebSocket upgrade request."))?;
    let stream = stream.max_frame_size(state.settings.max_frame_bytes);
    let closing = session.clone();
    let settings = state.settings.clone();
    let gate = DomainGatekeeper(SessionGate::of(
        &req,
        state.auth.clone(),
        state.connections.clone(),
        "/graphql/ws",
    ));
    let operations = SchemaOperations {
        schema: schema.get_ref().clone(),
        limits: *limits.get_ref(),
        origin,
    };
    // The connection's logs carry the upgrade request's span (its request id).
    let span = tracing::Span::current();
    let shutdown = req
        .app_data::<web::Data<Shutdown>>()
        .map(|s| s.get_ref().clone());
    actix_web::rt::spawn(tracing::Instrument::instrument(
        until_shutdown(
            async move {
                let _ = serve(frames(stream), sink(session), &gate, &operations, &settings).await;
            },
            closing,
            shutdown,
        ),
        span,
    ));
    Ok(response)
}
