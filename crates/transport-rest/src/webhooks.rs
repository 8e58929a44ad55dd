//! `/api/v1/webhooks`: URLs the caller registers to be told about its documents — the service's
//! outbound (SSRF) surface.
//!
//! Every rule lives in the domain (`WebhookService`, `webhook_target`) and in the delivery
//! transport; these handlers extract, call and map. A webhook belongs to its owner alone: another
//! user's answers 404 on every route.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use bulwark_domain::webhook::{Delivery, Webhook};
use bulwark_domain::webhooks::{WebhookError, WebhookInput, WebhookService};
use bulwark_web::ProblemError;
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::Problem;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::private_json;

/// A registered webhook (its secret is shown only when it is created).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "3f1e2d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
    "url": "https://hooks.example.com/bulwark",
    "events": ["document.updated", "document.deleted"],
    "created_at": "2026-11-28T09:00:00Z"
}))]
pub struct WebhookResponse {
    /// Id.
    pub id: Uuid,
    /// Where deliveries go (normalised).
    pub url: String,
    /// What it subscribes to.
    pub events: Vec<&'static str>,
    /// Registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Webhook> for WebhookResponse {
    fn from(webhook: Webhook) -> Self {
        Self {
            id: webhook.id,
            url: webhook.url.as_str().to_owned(),
            events: webhook.events.iter().map(|e| e.as_str()).collect(),
            created_at: webhook.created_at,
        }
    }
}

/// A webhook just registered, with its signing secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "3f1e2d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
    "url": "https://hooks.example.com/bulwark",
    "events": ["document.updated"],
    "created_at": "2026-11-28T09:00:00Z",
    "secret": "bwhs_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
}))]
pub struct CreatedWebhookResponse {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// The HMAC-SHA256 key of the `Bulwark-Signature` header (`t=<unix>,v1=<hex>` over
    /// `"<t>." + body`). Store it now: it is never shown again.
    pub secret: String,
}

/// The caller's webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Newest first.
    pub items: Vec<WebhookResponse>,
}

/// One delivery attempt series.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "9a8b7c6d-5e4f-4321-8765-4a3b2c1d0e9f",
    "event": "document.updated",
    "status": "delivered",
    "attempts": 1,
    "last_response_status": 200,
    "last_error": null,
    "created_at": "2026-11-28T09:00:00Z",
    "updated_at": "2026-11-28T09:00:01Z"
}))]
pub struct DeliveryResponse {
    /// Id (also sent to the receiver in `Bulwark-Delivery`, to deduplicate on).
    pub id: Uuid,
    /// The event.
    pub event: &'static str,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `refused` (the target resolved
    /// to a forbidden address).
    pub status: &'static str,
    /// Attempts made.
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub last_response_status: Option<u16>,
    /// Why the last attempt failed, in our words.
    pub last_error: Option<String>,
    /// Queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Delivery> for DeliveryResponse {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event: d.event.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_response_status: d.last_response_status,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A webhook's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub items: Vec<DeliveryResponse>,
}

/// `{url, events}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/bulwark", "events": ["document.updated", "document.shared"]}))]
pub struct CreateWebhookRequest {
    /// `https://` (plain `http://` in development only), at most 2048 bytes, no credentials, no
    /// fragment; the host must resolve only to public addresses.
    pub url: String,
    /// One to four of `document.created`, `document.updated`, `document.deleted`,
    /// `document.shared`, each once.
    pub events: Vec<String>,
}

/// `/webhooks/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// The webhook id.
    pub id: Uuid,
}

/// Delivery-log parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// How many entries, 1..=100 (default 20).
    pub limit: Option<u32>,
}

fn problem(error: WebhookError) -> ProblemError {
    match error {
        WebhookError::Invalid(violations) => identity::invalid(violations),
        WebhookError::NotFound => ProblemError::status(StatusCode::NOT_FOUND),
        WebhookError::Forbidden => bulwark_web::access::forbidden(),
        WebhookError::QuotaExceeded(kind) => identity::quota_exceeded(kind),
        WebhookError::RateLimited { retry_after } => identity::rate_limited(retry_after),
        WebhookError::Unexpected(e) => identity::unexpected(e),
    }
}

/// Register a webhook.
///
/// The URL is checked against the SSRF policy as written (scheme, credentials, internal names,
/// forbidden address literals in any notation) and on every address its host resolves to now;
/// every delivery checks again the address it connects to. Deliveries are `POST`s of
/// `{event, occurred_at, data}` with `Bulwark-Signature`, `Bulwark-Delivery` and `Bulwark-Event`
/// headers; redirects are never followed.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "create_webhook",
    security(("bearer" = []), ("api_key" = ["webhooks:write"])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Registered; the secret is shown this once.", body = CreatedWebhookResponse),
        (status = 400, description = "Invalid fields (every one listed): a forbidden target is a `url` error (`scheme_not_allowed`, `credentials_in_url`, `forbidden_host`, `forbidden_address`, `unresolvable`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's plan allows no more webhooks (`quota-exceeded`).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations lately (`rate-limited`, with `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/webhooks")]
pub async fn create_webhook(
    service: web::Data<WebhookService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<CreateWebhookRequest>,
) -> Result<HttpResponse, ProblemError> {
    let CreateWebhookRequest { url, events } = body.into_inner();
    let created = service
        .create(&actor, &origin, WebhookInput { url, events })
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::CREATED,
        &CreatedWebhookResponse {
            webhook: created.webhook.into(),
            secret: created.secret.expose_secret().to_owned(),
        },
    ))
}

/// List the caller's webhooks.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhooks",
    security(("bearer" = []), ("api_key" = ["webhooks:read"])),
    responses(
        (status = 200, description = "The caller's webhooks, newest first (no secrets).", body = WebhookList),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/webhooks")]
pub async fn list_webhooks(
    service: web::Data<WebhookService>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ProblemError> {
    let items = service.list(&actor).await.map_err(problem)?;
    Ok(private_json(
        StatusCode::OK,
        &WebhookList {
            items: items.into_iter().map(WebhookResponse::from).collect(),
        },
    ))
}

/// Remove a webhook, its pending deliveries and its log.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "delete_webhook",
    security(("bearer" = []), ("api_key" = ["webhooks:write"])),
    params(WebhookPath),
    responses(
        (status = 204, description = "Removed."),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook of the caller's.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/api/v1/webhooks/{id}")]
pub async fn delete_webhook(
    service: web::Data<WebhookService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ProblemError> {
    service
        .delete(&actor, &origin, path.id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's delivery log, newest first.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    security(("bearer" = []), ("api_key" = ["webhooks:read"])),
    params(WebhookPath, DeliveryParams),
    responses(
        (status = 200, description = "The newest deliveries.", body = DeliveryList),
        (status = 400, description = "`limit` out of 1..=100, or an unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook of the caller's.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    service: web::Data<WebhookService>,
    Authenticated(actor): Authenticated,
    path: web::Path<WebhookPath>,
    params: web::Query<DeliveryParams>,
) -> Result<HttpResponse, ProblemError> {
    let items = service
        .deliveries(&actor, path.id, params.limit)
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::OK,
        &DeliveryList {
            items: items.into_iter().map(DeliveryResponse::from).collect(),
        },
    ))
}
