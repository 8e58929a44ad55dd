//! `/api/v1/auth/api-keys`: create (shown once), list and revoke API keys — from a session only.
//!
//! These routes declare no `api_key` requirement, so an API key is refused here before any
//! handler runs (403 `session-required`), and the service refuses it again.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use bulwark_domain::api_key::ApiKey;
use bulwark_domain::api_keys::{ApiKeyError, ApiKeyInput, ApiKeyService};
use bulwark_web::ProblemError;
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::Problem;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::account_problem;
use crate::private_json;

/// An API key as listed (never the key).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "name": "CI deploy",
    "prefix": "k7m2q4x9a3b5",
    "scopes": ["documents:read"],
    "expires_at": "2027-06-01T00:00:00Z",
    "last_used_at": null,
    "created_at": "2026-11-28T09:00:00Z"
}))]
pub struct ApiKeyResponse {
    /// Id.
    pub id: Uuid,
    /// The owner's label.
    pub name: String,
    /// The public prefix: the key reads `bwk_<prefix>_…`.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<&'static str>,
    /// When it stops working (`null`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Last use, to the minute (`null`: never used).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name.as_str().to_owned(),
            prefix: key.prefix,
            scopes: key.scopes.to_vec().iter().map(|s| s.as_str()).collect(),
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            created_at: key.created_at,
        }
    }
}

/// A key just created: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key's record.
    #[serde(flatten)]
    pub api_key: ApiKeyResponse,
    /// `bwk_<prefix>_<secret>`: send it as `Authorization: Bearer <key>`. Store it now.
    pub key: String,
}

/// The caller's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Newest first.
    pub items: Vec<ApiKeyResponse>,
}

/// `{name, scopes, expires_at?, password?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI deploy", "scopes": ["documents:read"], "expires_at": "2027-06-01T00:00:00Z"}))]
pub struct CreateApiKeyRequest {
    /// 1..=100 characters.
    pub name: String,
    /// One or more of `documents:read`, `documents:write`, `webhooks:read`, `webhooks:write`.
    pub scopes: Vec<String>,
    /// RFC 3339, in the future; omit for a key that does not expire.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// Required when the sign-in is older than 10 minutes (step-up).
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for CreateApiKeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateApiKeyRequest")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `/api-keys/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiKeyPath {
    /// The key's id.
    pub id: Uuid,
}

fn problem(error: ApiKeyError) -> ProblemError {
    match error {
        ApiKeyError::Invalid(violations) => identity::invalid(violations),
        ApiKeyError::NotFound => ProblemError::status(StatusCode::NOT_FOUND),
        ApiKeyError::QuotaExceeded(kind) => identity::quota_exceeded(kind),
        ApiKeyError::Account(e) => account_problem(e),
        ApiKeyError::Unexpected(e) => identity::unexpected(e),
    }
}

/// Create an API key.
///
/// A step-up operation: the session must have signed in within the last 10 minutes, or the request
/// must carry the password. The key is shown once and stored only as a digest.
#[utoipa::path(
    tag = "auth",
    operation_id = "create_api_key",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is shown this once.", body = CreatedApiKeyResponse),
        (status = 400, description = "Invalid fields (every one listed), a wrong password, or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required` (sign-in older than 10 minutes and no password), `session-required` (an API key), or `quota-exceeded`.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords (`Retry-After`).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/api-keys")]
pub async fn create_api_key(
    service: web::Data<ApiKeyService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ProblemError> {
    let CreateApiKeyRequest {
        name,
        scopes,
        expires_at,
        password,
    } = body.into_inner();
    let created = service
        .create(
            &actor,
            &origin,
            ApiKeyInput {
                name,
                scopes,
                expires_at,
                password,
            },
        )
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::CREATED,
        &CreatedApiKeyResponse {
            api_key: created.api_key.into(),
            key: created.key.expose_secret().to_owned(),
        },
    ))
}

/// List the caller's API keys (never the keys themselves).
#[utoipa::path(
    tag = "auth",
    operation_id = "list_api_keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's keys, newest first.", body = ApiKeyList),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`session-required`: an API key cannot list keys.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/auth/api-keys")]
pub async fn list_api_keys(
    service: web::Data<ApiKeyService>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ProblemError> {
    let keys = service.list(&actor).await.map_err(problem)?;
    Ok(private_json(
        StatusCode::OK,
        &ApiKeyList {
            items: keys.into_iter().map(ApiKeyResponse::from).collect(),
        },
    ))
}

/// Revoke an API key: the next request with it is a 401.
#[utoipa::path(
    tag = "auth",
    operation_id = "revoke_api_key",
    security(("bearer" = [])),
    params(ApiKeyPath),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`session-required`: an API key cannot revoke keys.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key of the caller's.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/api/v1/auth/api-keys/{id}")]
pub async fn revoke_api_key(
    service: web::Data<ApiKeyService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<ApiKeyPath>,
) -> Result<HttpResponse, ProblemError> {
    service
        .revoke(&actor, &origin, path.id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}
