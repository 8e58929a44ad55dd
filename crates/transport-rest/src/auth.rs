//! `/api/v1/auth`: sign-in, token refresh, logout, sessions, password reset and email
//! verification.
//!
//! Every handler is the same four steps: extract (typed JSON with unknown fields refused), parse,
//! call the domain service, map the answer. Responses that carry tokens say `Cache-Control:
//! no-store`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use bulwark_domain::account::{AccountError, AccountService};
use bulwark_domain::auth::{
    AuthService, ListedSession, LoginError, RefreshError, RevokeSessionError, SignIn, TokenPair,
};
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::{Problem, ProblemError, types};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::private_json;

/// `{email, password}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "Correct-Horse-Battery-9-Staple"}))]
pub struct LoginRequest {
    /// The account's email.
    pub email: String,
    /// The password (at most 128 characters; never logged).
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// `{refresh_token}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "bwrt_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))]
pub struct RefreshRequest {
    /// The current refresh token of the session.
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

/// A new access token and the next refresh token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6Imp3dC0zZjlhMWMyYiIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwOi8vbG9jYWxob3N0OjgwODAifQ.c2ln",
    "token_type": "Bearer",
    "expires_in": 600,
    "refresh_token": "bwrt_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
}))]
pub struct TokenPairResponse {
    /// A signed JWT (EdDSA) for `Authorization: Bearer`.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub access_token: SecretString,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires (at most 900).
    pub expires_in: u64,
    /// Single use: exchange it at `/auth/refresh`; presenting it twice ends the session.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub refresh_token: SecretString,
}

/// What a correct password gets: a token pair, or the MFA challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// Signed in.
    Session(TokenPairResponse),
    /// Second factor required.
    MfaRequired(crate::mfa::MfaRequiredResponse),
}

/// Writes a secret into a response body: the one place a token leaves the secret wrapper.
pub(crate) fn expose<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

impl From<TokenPair> for TokenPairResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
        }
    }
}

/// One live session of the caller.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0b6f1c52-5d0e-4f7e-9a3c-2b1e0f9d8c7a",
    "created_at": "2026-11-28T09:00:00Z",
    "last_used_at": "2026-11-28T09:30:00Z",
    "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0",
    "current": true
}))]
pub struct SessionResponse {
    /// The session id (the `sid` claim of its access tokens).
    pub id: Uuid,
    /// When it signed in.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its refresh token was last used.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// Where it signed in from.
    pub ip: Option<String>,
    /// The user agent it signed in with.
    pub user_agent: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl From<ListedSession> for SessionResponse {
    fn from(listed: ListedSession) -> Self {
        let s = listed.session;
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip.map(|ip| ip.to_string()),
            user_agent: s.user_agent,
            current: listed.current,
        }
    }
}

/// The caller's live sessions, most recently used first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions.
    pub items: Vec<SessionResponse>,
}

/// `{email}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct ForgotPasswordRequest {
    /// The account's email.
    pub email: String,
}

/// `{token, new_password}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "bwpr_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "new_password": "Another-Horse-Battery-7-Staple"}))]
pub struct ResetPasswordRequest {
    /// The token from the reset mail (single use, valid 30 minutes).
    #[schema(value_type = String)]
    pub token: SecretString,
    /// The new password (the password policy applies).
    #[schema(value_type = String)]
    pub new_password: SecretString,
}

/// `{token}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "bwev_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))]
pub struct VerifyEmailRequest {
    /// The token from the verification mail.
    #[schema(value_type = String)]
    pub token: SecretString,
}

fn invalid_credentials() -> ProblemError {
    // One body for unknown email, wrong password, locked and deleted accounts.
    ProblemError::new(Problem::new(
        StatusCode::UNAUTHORIZED,
        types::INVALID_CREDENTIALS,
        "Invalid credentials",
        "The email or password is incorrect.",
    ))
}

pub(crate) fn invalid_token() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::BAD_REQUEST,
        types::INVALID_TOKEN,
        "Invalid token",
        "The token is invalid, used or expired.",
    ))
}

fn invalid_refresh_token() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::UNAUTHORIZED,
        types::INVALID_TOKEN,
        "Invalid token",
        "The refresh token is invalid, used or expired. Sign in again.",
    ))
}

/// Maps the account service's errors (shared with `/users`).
pub(crate) fn account_problem(error: AccountError) -> ProblemError {
    match error {
        AccountError::Invalid(violations) => identity::invalid(violations),
        AccountError::WrongPassword { field } => ProblemError::new(
            Problem::new(
                StatusCode::BAD_REQUEST,
                types::VALIDATION,
                "Validation failed",
                "The current password is incorrect.",
            )
            .with_errors(vec![bulwark_web::FieldError::new(
                field,
                "incorrect",
                "The current password is incorrect.",
            )]),
        ),
        AccountError::Throttled { retry_after } => identity::throttled(retry_after),
        AccountError::InvalidToken => invalid_token(),
        AccountError::NotFound => identity::unauthenticated(),
        // Only `create_admin` (the command line) reports this; no route reaches it.
        AccountError::EmailTaken => ProblemError::status(StatusCode::CONFLICT),
        AccountError::ReauthenticationRequired => identity::reauthentication_required(),
        AccountError::SessionRequired => identity::session_required(),
        AccountError::Unexpected(e) => identity::unexpected(e),
    }
}

/// Sign in with email and password.
///
/// Unknown email, wrong password and a locked or deleted account all answer the same 401 body
/// after the same work (one argon2 verification). Failures are counted per submitted email and
/// per client address: after a few, each further attempt must wait (exponential backoff), then the
/// email is locked for 15 minutes — 429 with `Retry-After`, whether or not the account exists.
#[utoipa::path(
    tag = "auth",
    operation_id = "login",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in (`TokenPair`), or — for an account with MFA — `{mfa_required: true, mfa_token}`: send a code with the token to `/auth/mfa/verify`.", body = LoginResponse,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "Malformed body, unknown field, or a password over the maximum length.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid credentials (always the same body).", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "urn:bulwark:problem:invalid-credentials", "title": "Invalid credentials", "status": 401, "detail": "The email or password is incorrect.", "request_id": "3f0d8c1e-8d4b-4a43-9d5e-1f1c2b3a4d5e"})),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts for this email or address.", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The password hasher is saturated; retry shortly.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/login")]
pub async fn login(
    service: web::Data<AuthService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ProblemError> {
    let LoginRequest { email, password } = body.into_inner();
    match service.login(&origin, &email, password).await {
        Ok(SignIn::Session(pair)) => {
            Ok(private_json(StatusCode::OK, &TokenPairResponse::from(pair)))
        }
        Ok(SignIn::MfaRequired { mfa_token }) => Ok(private_json(
            StatusCode::OK,
            &crate::mfa::MfaRequiredResponse {
                mfa_required: true,
                mfa_token,
            },
        )),
        Err(LoginError::InvalidCredentials) => Err(invalid_credentials()),
        Err(LoginError::Throttled { retry_after }) => Err(identity::throttled(retry_after)),
        Err(LoginError::Invalid(violations)) => Err(identity::invalid(violations)),
        Err(LoginError::Unexpected(e)) => Err(identity::unexpected(e)),
    }
}

/// Exchange a refresh token for a new token pair.
///
/// The presented token dies; the answer carries its successor. Presenting a token that was
/// already exchanged means a copy exists: the whole session is revoked (its access tokens stop
/// working at once) and the event is audited.
#[utoipa::path(
    tag = "auth",
    operation_id = "refresh",
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The next pair.", body = TokenPairResponse),
        (status = 400, description = "Malformed body or unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, used, expired or revoked refresh token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/refresh")]
pub async fn refresh(
    service: web::Data<AuthService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ProblemError> {
    match service
        .refresh(&origin, body.refresh_token.expose_secret())
        .await
    {
        Ok(pair) => Ok(private_json(StatusCode::OK, &TokenPairResponse::from(pair))),
        Err(RefreshError::InvalidToken) => Err(invalid_refresh_token()),
        Err(RefreshError::Unexpected(e)) => Err(identity::unexpected(e)),
    }
}

/// End the session of a refresh token.
///
/// Answers 204 whether or not the token was current, so logging out twice is harmless. The
/// session's access tokens are refused from the next request on.
#[utoipa::path(
    tag = "auth",
    operation_id = "logout",
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session has ended (or had already)."),
        (status = 400, description = "Malformed body or unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/logout")]
pub async fn logout(
    service: web::Data<AuthService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ProblemError> {
    service
        .logout(&origin, body.refresh_token.expose_secret())
        .await
        .map_err(identity::unexpected)?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of the caller, this one included.
#[utoipa::path(
    tag = "auth",
    operation_id = "logout_all",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session has ended."),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
    ),
)]
#[post("/api/v1/auth/logout-all")]
pub async fn logout_all(
    service: web::Data<AuthService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
) -> Result<HttpResponse, ProblemError> {
    service
        .logout_all(&actor, &origin)
        .await
        .map_err(identity::unexpected)?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's live sessions.
#[utoipa::path(
    tag = "auth",
    operation_id = "list_sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions, most recently used first (at most 100).", body = SessionList),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/auth/sessions")]
pub async fn list_sessions(
    service: web::Data<AuthService>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ProblemError> {
    let sessions = service
        .sessions(&actor)
        .await
        .map_err(identity::unexpected)?;
    let items = sessions.into_iter().map(SessionResponse::from).collect();
    Ok(private_json(StatusCode::OK, &SessionList { items }))
}

/// End one of the caller's sessions.
///
/// Another user's session id answers 404 exactly like an id that does not exist.
#[utoipa::path(
    tag = "auth",
    operation_id = "revoke_session",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session id.")),
    responses(
        (status = 204, description = "The session has ended."),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no live session with this id.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/api/v1/auth/sessions/{id}")]
pub async fn revoke_session(
    service: web::Data<AuthService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ProblemError> {
    match service.revoke_session(&actor, &origin, *id).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(RevokeSessionError::NotFound) => Err(ProblemError::status(StatusCode::NOT_FOUND)),
        Err(RevokeSessionError::Unexpected(e)) => Err(identity::unexpected(e)),
    }
}

/// Ask for a password-reset mail.
///
/// Always 202, at once: the lookup and the mail happen after the answer, so neither the status nor
/// the time taken says whether the address has an account. The mail carries a single-use token,
/// valid 30 minutes; at most 3 such mails go to one address per hour.
#[utoipa::path(
    tag = "auth",
    operation_id = "forgot_password",
    security(()),
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "Accepted (whatever the email)."),
        (status = 400, description = "Malformed body or unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/password/forgot")]
pub async fn forgot_password(
    service: web::Data<AccountService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<ForgotPasswordRequest>,
) -> HttpResponse {
    let email = body.into_inner().email;
    let service = service.into_inner();
    actix_web::rt::spawn(async move {
        if let Err(error) = service.forgot_password(&origin, &email).await {
            tracing::error!(
                error = %error,
                request_id = origin.request_id.as_deref().unwrap_or(""),
                "password reset request failed"
            );
        }
    });
    HttpResponse::Accepted().finish()
}

/// Set a new password with the token from a reset mail.
///
/// The token is spent only when the new password passes the policy. Every session of the account
/// ends, and a notice is mailed.
#[utoipa::path(
    tag = "auth",
    operation_id = "reset_password",
    security(()),
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "The password is set; every session has ended."),
        (status = 400, description = "Invalid, used or expired token (`invalid-token`), or a new password that breaks the policy (`validation-error`, every rule listed).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/password/reset")]
pub async fn reset_password(
    service: web::Data<AccountService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ProblemError> {
    let ResetPasswordRequest {
        token,
        new_password,
    } = body.into_inner();
    service
        .reset_password(&origin, token.expose_secret(), new_password)
        .await
        .map_err(account_problem)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Confirm the email address with the token from the verification mail.
#[utoipa::path(
    tag = "auth",
    operation_id = "verify_email",
    security(()),
    request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "The address is verified."),
        (status = 400, description = "Invalid, used or expired token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/email/verify")]
pub async fn verify_email(
    service: web::Data<AccountService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<VerifyEmailRequest>,
) -> Result<HttpResponse, ProblemError> {
    service
        .verify_email(&origin, body.token.expose_secret())
        .await
        .map_err(account_problem)?;
    Ok(HttpResponse::NoContent().finish())
}
