//! `/api/v1/auth/mfa/*`: TOTP setup, enable and disable (from a session), and the second step of
//! an MFA sign-in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use bulwark_domain::auth::{AuthService, MfaSignInError};
use bulwark_domain::mfa::MfaProof;
use bulwark_domain::mfa_service::{MfaError, MfaService};
use bulwark_web::ProblemError;
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::{Problem, types};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{TokenPairResponse, account_problem, expose};
use crate::private_json;

/// The answer to a correct password of an MFA account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"mfa_required": true, "mfa_token": "bwmf_Xx3-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))]
pub struct MfaRequiredResponse {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single-purpose: valid only at `/auth/mfa/verify`, for 5 minutes and 5 attempts.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub mfa_token: SecretString,
}

/// `{mfa_token, code}` or `{mfa_token, recovery_code}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mfa_token": "bwmf_Xx3-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "code": "123456"}))]
pub struct MfaVerifyRequest {
    /// From the login answer.
    #[schema(value_type = String)]
    pub mfa_token: SecretString,
    /// Six digits from the authenticator.
    pub code: Option<String>,
    /// One of the recovery codes (`xxxx-xxxx-xxxx-xxxx`), instead of `code`.
    #[schema(value_type = Option<String>)]
    pub recovery_code: Option<SecretString>,
}

impl std::fmt::Debug for MfaVerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaVerifyRequest([REDACTED])")
    }
}

/// `{password?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpSetupRequest {
    /// Required when the sign-in is older than 10 minutes (step-up).
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for TotpSetupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetupRequest([REDACTED])")
    }
}

/// A new TOTP secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32, for typing into an authenticator.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
    /// `otpauth://totp/…`, for authenticators that take a link.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub otpauth_url: SecretString,
    /// The same link as a QR code: a standalone SVG document.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub qr_svg: SecretString,
}

/// `{code}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "123456"}))]
pub struct TotpEnableRequest {
    /// Six digits from the authenticator that was just set up.
    pub code: String,
}

impl std::fmt::Debug for TotpEnableRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnableRequest([REDACTED])")
    }
}

/// The recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten single-use codes; each stands in for the authenticator once.
    #[schema(value_type = Vec<String>)]
    #[serde(serialize_with = "expose_all")]
    pub recovery_codes: Vec<SecretString>,
}

impl std::fmt::Debug for RecoveryCodesResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodesResponse([REDACTED])")
    }
}

fn expose_all<S: serde::Serializer>(
    secrets: &[SecretString],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(secrets.iter().map(ExposeSecret::expose_secret))
}

/// `{password, code}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableRequest {
    /// The account's password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// A current code from the authenticator, or a recovery code.
    pub code: String,
}

impl std::fmt::Debug for TotpDisableRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpDisableRequest([REDACTED])")
    }
}

fn problem(error: MfaError) -> ProblemError {
    match error {
        MfaError::Invalid(violations) => identity::invalid(violations),
        MfaError::NoSetup => ProblemError::new(Problem::new(
            StatusCode::CONFLICT,
            types::ABOUT_BLANK,
            "Conflict",
            "There is no MFA setup in progress: start with /auth/mfa/totp/setup.",
        )),
        MfaError::NotEnabled => ProblemError::new(Problem::new(
            StatusCode::CONFLICT,
            types::ABOUT_BLANK,
            "Conflict",
            "MFA is not enabled.",
        )),
        MfaError::Account(e) => account_problem(e),
        MfaError::Unexpected(e) => identity::unexpected(e),
    }
}

fn invalid_mfa() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::UNAUTHORIZED,
        types::INVALID_CREDENTIALS,
        "Invalid credentials",
        "The code or the MFA token is invalid, used or expired.",
    ))
}

/// Second step of an MFA sign-in.
///
/// The `mfa_token` from `/auth/login` with a TOTP code (the current one, or one step either side)
/// or a recovery code. A code is accepted once; a token allows 5 attempts within 5 minutes; wrong
/// codes also count against the account's sign-in throttle.
#[utoipa::path(
    tag = "auth",
    operation_id = "verify_mfa",
    security(()),
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Signed in.", body = TokenPairResponse),
        (status = 400, description = "Neither or both of `code` and `recovery_code`, or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong, replayed or spent code; unknown, expired or exhausted token (one answer).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failures for this account (`Retry-After`).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/mfa/verify")]
pub async fn verify_mfa(
    service: web::Data<AuthService>,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<MfaVerifyRequest>,
) -> Result<HttpResponse, ProblemError> {
    let MfaVerifyRequest {
        mfa_token,
        code,
        recovery_code,
    } = body.into_inner();
    let proof = match (code, recovery_code) {
        (Some(code), None) => MfaProof::Totp(code),
        (None, Some(recovery)) => MfaProof::RecoveryCode(recovery),
        _ => {
            return Err(identity::invalid(vec![
                bulwark_domain::user::FieldViolation {
                    field: "code",
                    code: "one_of",
                    message: "Send exactly one of `code` and `recovery_code`.".to_owned(),
                },
            ]));
        }
    };
    match service
        .verify_mfa(&origin, mfa_token.expose_secret(), proof)
        .await
    {
        Ok(pair) => Ok(private_json(StatusCode::OK, &TokenPairResponse::from(pair))),
        Err(MfaSignInError::InvalidToken | MfaSignInError::InvalidCode) => Err(invalid_mfa()),
        Err(MfaSignInError::Throttled { retry_after }) => Err(identity::throttled(retry_after)),
        Err(MfaSignInError::Unexpected(e)) => Err(identity::unexpected(e)),
    }
}

/// Start a TOTP setup.
///
/// Returns a new secret (base32, `otpauth://` link and QR code), shown once and inactive until
/// `/auth/mfa/totp/enable` confirms it with a code. A step-up operation: a sign-in within the last
/// 10 minutes, or the password. While MFA is on, a new setup replaces the secret only once enabled.
#[utoipa::path(
    tag = "auth",
    operation_id = "setup_totp",
    security(("bearer" = [])),
    request_body = TotpSetupRequest,
    responses(
        (status = 200, description = "The secret, shown once.", body = TotpSetupResponse),
        (status = 400, description = "A wrong password, or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required` or `session-required` (an API key).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/mfa/totp/setup")]
pub async fn setup_totp(
    service: web::Data<MfaService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<TotpSetupRequest>,
) -> Result<HttpResponse, ProblemError> {
    let enrolment = service
        .setup(&actor, &origin, body.password.as_ref())
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::OK,
        &TotpSetupResponse {
            secret: enrolment.secret_base32,
            otpauth_url: enrolment.otpauth_url,
            qr_svg: enrolment.qr_svg,
        },
    ))
}

/// Turn MFA on with a code from the authenticator just set up.
#[utoipa::path(
    tag = "auth",
    operation_id = "enable_totp",
    security(("bearer" = [])),
    request_body = TotpEnableRequest,
    responses(
        (status = 200, description = "MFA is on; the recovery codes, shown once.", body = RecoveryCodesResponse),
        (status = 400, description = "A wrong code (`code`), or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`session-required` (an API key).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No setup in progress.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/mfa/totp/enable")]
pub async fn enable_totp(
    service: web::Data<MfaService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<TotpEnableRequest>,
) -> Result<HttpResponse, ProblemError> {
    let codes = service
        .enable(&actor, &origin, &body.code)
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::OK,
        &RecoveryCodesResponse {
            recovery_codes: codes,
        },
    ))
}

/// Turn MFA off (the password and a current or recovery code).
#[utoipa::path(
    tag = "auth",
    operation_id = "disable_totp",
    security(("bearer" = [])),
    request_body = TotpDisableRequest,
    responses(
        (status = 204, description = "MFA is off; the secret and recovery codes are deleted."),
        (status = 400, description = "A wrong password or code, or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`session-required` (an API key).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "MFA is not enabled.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/mfa/totp/disable")]
pub async fn disable_totp(
    service: web::Data<MfaService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    body: web::Json<TotpDisableRequest>,
) -> Result<HttpResponse, ProblemError> {
    let TotpDisableRequest { password, code } = body.into_inner();
    service
        .disable(&actor, &origin, &password, &code)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}
