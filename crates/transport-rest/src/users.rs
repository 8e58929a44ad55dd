//! Accounts: `POST /api/v1/auth/register` and `/api/v1/users/me`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use bulwark_domain::account::{AccountService, Registration};
use bulwark_domain::user::User;
use bulwark_web::ProblemError;
use bulwark_web::identity::{Authenticated, ClientOrigin};
use bulwark_web::problem::Problem;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::account_problem;
use crate::private_json;

/// A user as the user itself sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "7d3c1a2b-4e5f-4a6b-8c9d-0e1f2a3b4c5d",
    "email": "ada@example.com",
    "display_name": "Ada",
    "role": "user",
    "email_verified": false,
    "mfa_enabled": false,
    "created_at": "2026-11-28T09:00:00Z"
}))]
pub struct UserResponse {
    /// Id.
    pub id: Uuid,
    /// Email (the domain part lower-cased).
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `user`, `moderator` or `admin`.
    pub role: &'static str,
    /// Whether the email has been verified.
    pub email_verified: bool,
    /// Whether a second factor (TOTP) is enabled.
    pub mfa_enabled: bool,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.as_str().to_owned(),
            role: user.role.as_str(),
            email_verified: user.email_verified_at.is_some(),
            mfa_enabled: user.mfa_enabled,
            created_at: user.created_at,
        }
    }
}

/// `{"user": User}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredUser {
    /// The new account.
    pub user: UserResponse,
}

/// `{email, password, display_name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "Correct-Horse-Battery-9-Staple", "display_name": "Ada"}))]
pub struct RegisterRequest {
    /// Email (at most 254 characters).
    pub email: String,
    /// Password: 12..128 characters, upper and lower case, a digit and a symbol, a zxcvbn score of
    /// at least 3, and not containing the email's local part or the display name.
    #[schema(value_type = String)]
    pub password: SecretString,
    /// Display name (1..100 characters).
    pub display_name: String,
}

/// `{display_name}`: the only field a user may change here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Ada L."}))]
pub struct UpdateMeRequest {
    /// The new display name.
    pub display_name: String,
}

/// `{current_password, new_password}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "Correct-Horse-Battery-9-Staple", "new_password": "Another-Horse-Battery-7-Staple"}))]
pub struct ChangePasswordRequest {
    /// The password now.
    #[schema(value_type = String)]
    pub current_password: SecretString,
    /// The new password (the policy applies).
    #[schema(value_type = String)]
    pub new_password: SecretString,
}

/// `{password}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "Correct-Horse-Battery-9-Staple"}))]
pub struct DeleteMeRequest {
    /// The current password, to confirm.
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// Create an account.
///
/// A taken email answers exactly like a new one — 201 with a user of the same shape — and the
/// owner of the address is mailed about the attempt; a new account is mailed a verification link.
/// So registration cannot be used to find out who has an account (see docs/security.md). A
/// password over 128 characters is refused before anything is hashed; every failed rule of every
/// field is listed in `errors`. Fields other than these three (`role`, `email_verified`, `id`)
/// are refused with 400.
#[utoipa::path(
    tag = "users",
    operation_id = "register",
    security(()),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered (or, indistinguishably, the email was taken and its owner was told).", body = RegisteredUser),
        (status = 400, description = "Validation failed; every failed rule listed.", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "urn:bulwark:problem:validation-error", "title": "Validation failed", "status": 400, "detail": "One or more fields are invalid; see `errors`.", "request_id": "3f0d8c1e-8d4b-4a43-9d5e-1f1c2b3a4d5e",
                          "errors": [{"field": "password", "code": "too_short", "message": "A password has at least 12 characters."}, {"field": "password", "code": "missing_symbol", "message": "A password needs a symbol or space."}]})),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The password hasher is saturated; retry shortly.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/register")]
pub async fn register(
    service: web::Data<AccountService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ProblemError> {
    let RegisterRequest {
        email,
        password,
        display_name,
    } = body.into_inner();
    let registration = Registration {
        email,
        password,
        display_name,
    };
    let user = service
        .register(&origin, registration)
        .await
        .map_err(account_problem)?;
    Ok(private_json(
        StatusCode::CREATED,
        &RegisteredUser {
            user: UserResponse::from(user),
        },
    ))
}

/// The caller's account.
#[utoipa::path(
    tag = "users",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account.", body = UserResponse),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/users/me")]
pub async fn get_me(
    service: web::Data<AccountService>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ProblemError> {
    let user = service.me(&actor).await.map_err(account_problem)?;
    Ok(private_json(StatusCode::OK, &UserResponse::from(user)))
}

/// Change the caller's display name.
#[utoipa::path(
    tag = "users",
    operation_id = "update_me",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated account.", body = UserResponse),
        (status = 400, description = "Invalid name, or a field that cannot be changed here (`role`, `email`, `id`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/api/v1/users/me")]
pub async fn update_me(
    service: web::Data<AccountService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<UpdateMeRequest>,
) -> Result<HttpResponse, ProblemError> {
    let user = service
        .update_profile(&actor, &origin, &body.display_name)
        .await
        .map_err(account_problem)?;
    Ok(private_json(StatusCode::OK, &UserResponse::from(user)))
}

/// Change the caller's password; every other session ends.
///
/// Wrong current passwords count against the account's sign-in throttle, so a stolen access token
/// cannot be used to guess the password.
#[utoipa::path(
    tag = "users",
    operation_id = "change_password",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every other session has ended."),
        (status = 400, description = "Wrong current password (`current_password`: `incorrect`) or a new password that breaks the policy.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/users/me/password")]
pub async fn change_password(
    service: web::Data<AccountService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ProblemError> {
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    service
        .change_password(&actor, &origin, &current_password, new_password)
        .await
        .map_err(account_problem)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete the caller's account.
///
/// Every session ends at once; the email, display name and password hash are erased (the row is
/// kept, anonymised, so that the audit trail still points somewhere). The address can be
/// registered again.
#[utoipa::path(
    tag = "users",
    operation_id = "delete_me",
    security(("bearer" = [])),
    request_body = DeleteMeRequest,
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "Wrong password.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/api/v1/users/me")]
pub async fn delete_me(
    service: web::Data<AccountService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<DeleteMeRequest>,
) -> Result<HttpResponse, ProblemError> {
    service
        .delete(&actor, &origin, &body.into_inner().password)
        .await
        .map_err(account_problem)?;
    Ok(HttpResponse::NoContent().finish())
}
