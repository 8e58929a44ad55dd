//! Who is calling, for every transport: the bearer-token extractor that yields an [`Actor`], the
//! request's [`Origin`], and the mapping of the domain's errors to problems.
//!
//! The decision itself is the domain's (`AuthService::authenticate`: signature, algorithm, type,
//! issuer, audience, time, and the session still live, with the user's current role). The access
//! middleware ([`crate::access`]) calls it for every route that is not public; this module finds the
//! token in the request and turns every refusal into the one 401 the contract names — the reason
//! goes to the log, never to the client.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use bulwark_domain::context::{Actor, Origin};
use bulwark_domain::error::Unexpected;
use bulwark_domain::user::FieldViolation;

use crate::RequestId;
use crate::problem::{FieldError, Problem, ProblemError, types};

/// Longest bearer token looked at. Our JWTs are ~400 bytes; anything far longer is refused before
/// it is parsed.
pub const MAX_BEARER_LEN: usize = 4096;

/// The contract's challenge on every 401 of a protected route (RFC 6750 §3).
pub const BEARER_CHALLENGE: &str = r#"Bearer error="invalid_token""#;

/// The request's origin: the client's address, the user agent and the request id.
///
/// The address is [`TrustedProxies::client_ip`](crate::client_ip::TrustedProxies::client_ip):
/// the TCP peer, or the client behind it when the peer is one of `TRUSTED_PROXIES` (the app
/// registers them as `web::Data<TrustedProxies>`; without them the peer is the client, the safe
/// default — a client cannot choose its own address by sending a header).
#[derive(Debug, Clone)]
pub struct ClientOrigin(pub Origin);

impl ClientOrigin {
    /// The origin of a request.
    #[must_use]
    pub fn of(req: &HttpRequest) -> Origin {
        Origin {
            ip: client_ip(req),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            request_id: Some(RequestId::of(req).as_str().to_owned()),
        }
    }
}

impl FromRequest for ClientOrigin {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self(Self::of(req))))
    }
}

/// The client's address (see [`crate::client_ip`]): the one function every limiter, the audit log
/// and the session list use.
#[must_use]
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    match req.app_data::<actix_web::web::Data<crate::client_ip::TrustedProxies>>() {
        Some(trusted) => trusted.client_ip(peer, req.headers()),
        None => peer.map(crate::client_ip::canonical),
    }
}

/// An authenticated caller. A handler that takes this cannot run without a valid access token of
/// a live session.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Actor);

/// The 401 every refusal gets, with the contract's challenge.
#[must_use]
pub fn unauthenticated() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::UNAUTHORIZED,
        types::UNAUTHENTICATED,
        "Unauthenticated",
        "A valid access token is required.",
    ))
    .with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(BEARER_CHALLENGE),
    )
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 9110
/// §11.1), or `None` for anything else.
#[must_use]
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        // Two Authorization headers: ambiguous, refused rather than guessed.
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && (1..=MAX_BEARER_LEN).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic());
    well_formed.then_some(token)
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    /// The actor that the access middleware ([`crate::access::enforce`]) authenticated for this
    /// request. Absent — the route is declared public yet its handler wants an actor — it fails
    /// closed with 401 (and the route-declaration tests catch the inconsistency).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let actor = req.extensions().get::<Actor>().copied();
        std::future::ready(actor.map(Self).ok_or_else(|| unauthenticated().into()))
    }
}

/// A failure the client did not cause: 503 with `Retry-After` when a bounded resource is
/// saturated or a dependency (the database) is unreachable — the client may simply retry, and
/// nothing says which dependency or why — else a 500 whose cause only the log sees.
#[must_use]
pub fn unexpected(error: Unexpected) -> ProblemError {
    if error.is_unavailable() {
        // The whole chain for the operator (it names the failing step and the driver's error).
        tracing::error!(error = ?error, "a dependency is unavailable");
        return ProblemError::new(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            types::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "The service cannot complete this request right now; retry shortly.",
        ))
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if error.is_saturation() {
        tracing::warn!(error = %error, "saturated");
        return ProblemError::new(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            types::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "The service is busy; retry shortly.",
        ))
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    ProblemError::internal(error)
}

/// 400 listing every field error.
#[must_use]
pub fn invalid(violations: Vec<FieldViolation>) -> ProblemError {
    let errors = violations
        .into_iter()
        .map(|v| FieldError::new(v.field, v.code, v.message))
        .collect();
    ProblemError::new(
        Problem::new(
            StatusCode::BAD_REQUEST,
            types::VALIDATION,
            "Validation failed",
            "One or more fields are invalid; see `errors`.",
        )
        .with_errors(errors),
    )
}

/// 403 `quota-exceeded`: the caller's plan allows no more of this.
#[must_use]
pub fn quota_exceeded(kind: bulwark_domain::quota::QuotaKind) -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::FORBIDDEN,
        types::QUOTA_EXCEEDED,
        "Quota exceeded",
        format!("Your plan allows no more {}.", kind.as_str()),
    ))
}

/// 429 `quota-exceeded`: the plan's requests for today are used up; `Retry-After` says when the
/// UTC day turns.
#[must_use]
pub fn daily_quota_exceeded(retry_after: Duration) -> ProblemError {
    let seconds = bulwark_domain::rate_limit::ceil_secs(retry_after).max(1);
    ProblemError::new(Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        types::QUOTA_EXCEEDED,
        "Quota exceeded",
        "Your plan's requests for today are used up; they renew at midnight UTC (see Retry-After).",
    ))
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// 429 with `Retry-After` for a capped flow (too many of something lately).
#[must_use]
pub fn rate_limited(retry_after: Duration) -> ProblemError {
    // Rounded up: a client that waits exactly this long must be let in.
    let seconds = bulwark_domain::rate_limit::ceil_secs(retry_after).max(1);
    ProblemError::new(Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        types::RATE_LIMITED,
        "Too Many Requests",
        "You did this too often lately; retry after the time in Retry-After.",
    ))
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// 403 `reauthentication-required`: sign in again, or send the password with the request.
#[must_use]
pub fn reauthentication_required() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::FORBIDDEN,
        types::REAUTHENTICATION_REQUIRED,
        "Re-authentication required",
        "This needs a sign-in within the last 10 minutes, or your password in `password`.",
    ))
}

/// 403 `session-required`: an API key cannot do this.
#[must_use]
pub fn session_required() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::FORBIDDEN,
        types::SESSION_REQUIRED,
        "Session required",
        "API keys cannot do this; use a signed-in session.",
    ))
}

/// 429 with `Retry-After` in whole seconds (at least 1).
#[must_use]
pub fn throttled(retry_after: Duration) -> ProblemError {
    let seconds = retry_after.as_secs().max(1);
    let value = HeaderValue::from(seconds);
    ProblemError::new(Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        types::RATE_LIMITED,
        "Too Many Requests",
        "Too many failed attempts; retry after the time in Retry-After.",
    ))
    .with_header(header::RETRY_AFTER, value)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn token_of(value: &str) -> Option<String> {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request();
        bearer_token(&req).map(str::to_owned)
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_must_be_printable() {
        assert_eq!(token_of("Bearer abc.def").as_deref(), Some("abc.def"));
        assert_eq!(token_of("bearer abc.def").as_deref(), Some("abc.def"));
        assert_eq!(token_of("Basic dXNlcjpwYXNz"), None);
        assert_eq!(token_of("Bearer"), None);
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of("Bearer a b"), None);
        assert_eq!(
            token_of(&format!("Bearer {}", "a".repeat(MAX_BEARER_LEN + 1))),
            None
        );
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let req = TestRequest::default()
            .append_header((header::AUTHORIZATION, "Bearer one"))
            .append_header((header::AUTHORIZATION, "Bearer two"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
    }
}
