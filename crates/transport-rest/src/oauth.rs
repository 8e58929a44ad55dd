//! `/api/v1/auth/oauth/{provider}/*`: sign-in with GitHub, Google or an OpenID Connect issuer, and
//! linking one to a signed-in account.
//!
//! The sign-in is bound to the browser that started it by a `__Host-` cookie (`Secure`,
//! `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`): a `state` copied out of a URL is useless in
//! another browser. `SameSite=Lax` still sends the cookie on the provider's top-level redirect
//! back, which is a GET navigation.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use bulwark_domain::auth::SignIn;
use bulwark_domain::oauth_signin::{Finished, OAuthError, OAuthService};
use bulwark_web::ProblemError;
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::{Problem, types};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{LoginResponse, TokenPairResponse, account_problem};
use crate::mfa::MfaRequiredResponse;
use crate::private_json;

/// The cookie that binds a sign-in to the browser that started it.
pub const BROWSER_COOKIE: &str = "__Host-bulwark_oauth";

/// `/oauth/{provider}/…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProviderPath {
    /// `github`, `google`, or the configured id of an OpenID Connect issuer.
    pub provider: String,
}

/// What the provider sends back.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state of the sign-in.
    pub state: Option<String>,
    /// Set by the provider when the user refused or the request was bad.
    pub error: Option<String>,
    /// The provider's words about `error` (ignored).
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// `{password?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Required when the sign-in is older than 10 minutes (step-up).
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkRequest([REDACTED])")
    }
}

/// Where to send the browser to link a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStartResponse {
    /// The provider's authorization URL: navigate the browser there (the cookie set with this
    /// answer must come back with the provider's redirect).
    pub authorize_url: String,
}

/// The answer to a linking callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedResponse {
    /// Always `true`.
    pub linked: bool,
}

fn browser_cookie(value: &str) -> Cookie<'static> {
    Cookie::build(BROWSER_COOKIE, value.to_owned())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::minutes(10))
        .finish()
}

fn cleared_cookie() -> Cookie<'static> {
    Cookie::build(BROWSER_COOKIE, "")
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::ZERO)
        .finish()
}

fn problem(error: OAuthError) -> ProblemError {
    match error {
        OAuthError::UnknownProvider => ProblemError::status(StatusCode::NOT_FOUND),
        OAuthError::InvalidState => ProblemError::new(Problem::new(
            StatusCode::BAD_REQUEST,
            types::ABOUT_BLANK,
            "Bad Request",
            "The sign-in state is missing, unknown, expired or from another browser; start again.",
        )),
        OAuthError::Refused | OAuthError::AccountUnavailable => ProblemError::new(Problem::new(
            StatusCode::UNAUTHORIZED,
            types::INVALID_CREDENTIALS,
            "Invalid credentials",
            "The sign-in with the identity provider could not be completed.",
        )),
        OAuthError::ProviderUnavailable => ProblemError::new(Problem::new(
            StatusCode::BAD_GATEWAY,
            types::ABOUT_BLANK,
            "Bad Gateway",
            "The identity provider is unavailable; try again later.",
        )),
        OAuthError::NoEmail => ProblemError::new(Problem::new(
            StatusCode::BAD_REQUEST,
            types::ABOUT_BLANK,
            "Bad Request",
            "The identity provider gave no email address; an account needs one.",
        )),
        OAuthError::UnverifiedEmail => ProblemError::new(Problem::new(
            StatusCode::BAD_REQUEST,
            types::ABOUT_BLANK,
            "Bad Request",
            "The identity provider has not verified your email address; verify it there first.",
        )),
        OAuthError::Conflict => ProblemError::new(Problem::new(
            StatusCode::CONFLICT,
            types::ABOUT_BLANK,
            "Conflict",
            "An account with this email exists. Sign in to it and link the provider from there.",
        )),
        OAuthError::Account(e) => account_problem(e),
        OAuthError::Unexpected(e) => identity::unexpected(e),
    }
}

/// Start a sign-in with an identity provider.
///
/// Redirects (302) to the provider with a fresh `state`, a PKCE S256 challenge and, for OpenID
/// Connect, a `nonce`; sets the `__Host-bulwark_oauth` cookie that binds the sign-in to this
/// browser for 10 minutes.
#[utoipa::path(
    tag = "auth",
    operation_id = "oauth_authorize",
    security(()),
    params(ProviderPath),
    responses(
        (status = 302, description = "To the provider.",
         headers(("Location" = String, description = "The provider's authorization URL."),
                 ("Set-Cookie" = String, description = "`__Host-bulwark_oauth`: Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=600"))),
        (status = 404, description = "No such provider is configured.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/auth/oauth/{provider}/authorize")]
pub async fn oauth_authorize(
    service: web::Data<OAuthService>,
    path: web::Path<ProviderPath>,
) -> Result<HttpResponse, ProblemError> {
    let started = service.start(&path.provider).await.map_err(problem)?;
    let location = HeaderValue::from_str(&started.authorize_url).map_err(|e| {
        identity::unexpected(bulwark_domain::error::Unexpected::new("authorize URL", e))
    })?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .cookie(browser_cookie(started.browser.expose_secret()))
        .finish())
}

/// The provider's redirect back.
///
/// Needs the `state` and the browser's `__Host-bulwark_oauth` cookie to match a sign-in started
/// here within 10 minutes (single use). Signs in the account of this provider identity; a new
/// identity whose email belongs to an existing account is linked only when the provider asserts
/// the email verified and the account's email is verified (otherwise 409: sign in and link). An
/// account with MFA gets the MFA challenge instead of tokens. A sign-in started by
/// `/oauth/{provider}/link` links the identity to that account instead.
#[utoipa::path(
    tag = "auth",
    operation_id = "oauth_callback",
    security(()),
    params(ProviderPath, CallbackParams),
    responses(
        (status = 200, description = "Signed in (`TokenPair`, or `{mfa_required, mfa_token}` for an MFA account), or `{linked: true}` after a link.", body = LoginResponse),
        (status = 400, description = "State missing, unknown, expired, used or from another browser; the provider reported an error; it gave no email, or (for a new account) one it has not verified.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The provider refused the code, its ID token is invalid, or the account is locked.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider is configured.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An account with this email exists and cannot be linked automatically; or the identity is linked to another account.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The identity provider is unavailable.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/auth/oauth/{provider}/callback")]
pub async fn oauth_callback(
    service: web::Data<OAuthService>,
    ClientOrigin(origin): ClientOrigin,
    req: HttpRequest,
    path: web::Path<ProviderPath>,
    params: web::Query<CallbackParams>,
) -> Result<HttpResponse, ProblemError> {
    let browser = req.cookie(BROWSER_COOKIE).map(|c| c.value().to_owned());
    let params = params.into_inner();
    let result = if params.error.is_some() {
        Err(OAuthError::InvalidState)
    } else {
        service
            .finish(
                &origin,
                &path.provider,
                params.code.as_deref().unwrap_or_default(),
                params.state.as_deref().unwrap_or_default(),
                browser.as_deref(),
            )
            .await
    };
    let mut response = match result.map_err(problem)? {
        Finished::SignedIn(SignIn::Session(pair)) => {
            private_json(StatusCode::OK, &TokenPairResponse::from(pair))
        }
        Finished::SignedIn(SignIn::MfaRequired { mfa_token }) => private_json(
            StatusCode::OK,
            &MfaRequiredResponse {
                mfa_required: true,
                mfa_token,
            },
        ),
        Finished::Linked => private_json(StatusCode::OK, &LinkedResponse { linked: true }),
    };
    // The binding is spent either way; an error answer keeps it only until it expires.
    response
        .add_cookie(&cleared_cookie())
        .map_err(|e| identity::unexpected(bulwark_domain::error::Unexpected::new("cookie", e)))?;
    Ok(response)
}

/// Start linking an identity provider to the caller's account.
///
/// A step-up operation: a sign-in within the last 10 minutes, or the password. Answers the URL to
/// navigate the browser to and sets the `__Host-bulwark_oauth` cookie; the provider's redirect
/// back to `/oauth/{provider}/callback` completes the link.
#[utoipa::path(
    tag = "auth",
    operation_id = "oauth_link",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = LinkRequest,
    responses(
        (status = 200, description = "Navigate the browser to `authorize_url`.", body = LinkStartResponse),
        (status = 400, description = "A wrong password, or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required` or `session-required`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider is configured.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api/v1/auth/oauth/{provider}/link")]
pub async fn oauth_link(
    service: web::Data<OAuthService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<ProviderPath>,
    body: web::Json<LinkRequest>,
) -> Result<HttpResponse, ProblemError> {
    let started = service
        .start_link(&actor, &origin, &path.provider, body.password.as_ref())
        .await
        .map_err(problem)?;
    let mut response = private_json(
        StatusCode::OK,
        &LinkStartResponse {
            authorize_url: started.authorize_url,
        },
    );
    response
        .add_cookie(&browser_cookie(started.browser.expose_secret()))
        .map_err(|e| identity::unexpected(bulwark_domain::error::Unexpected::new("cookie", e)))?;
    Ok(response)
}
