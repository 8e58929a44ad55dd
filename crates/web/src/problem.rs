//! RFC 9457 problem details: the one shape of every error the service returns.
//!
//! Handlers return [`ProblemError`]. Its `error_response` only *attaches* the [`Problem`] to the
//! response; the [`problem_responses`](crate::middleware::problems::problem_responses) middleware
//! renders it, adding the request id. Keeping rendering in one place is what lets a 404 from the
//! router, a 413 from the body limit and a panic all come out in the same shape.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Problem `type`s of this service. `about:blank` means "nothing beyond the HTTP status" (RFC 9457
/// §4.2.1); the others are stable URNs that clients can match on.
pub mod types {
    /// Nothing more specific than the status code.
    pub const ABOUT_BLANK: &str = "about:blank";
    /// The request body or parameters failed validation; see `errors`.
    pub const VALIDATION: &str = "urn:bulwark:problem:validation-error";
    /// The body is not well-formed JSON.
    pub const MALFORMED_JSON: &str = "urn:bulwark:problem:malformed-json";
    /// The body is larger than this endpoint accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "urn:bulwark:problem:payload-too-large";
    /// The body's media type is not accepted here.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "urn:bulwark:problem:unsupported-media-type";
    /// A dependency is not available; retry later.
    pub const SERVICE_UNAVAILABLE: &str = "urn:bulwark:problem:service-unavailable";
    /// The caller's plan allows no more of this (documents, attachment bytes, webhooks).
    pub const QUOTA_EXCEEDED: &str = "urn:bulwark:problem:quota-exceeded";
    /// A conditional request named a version that is not the current one.
    pub const STALE_VERSION: &str = "urn:bulwark:problem:stale-version";
    /// A change was sent without `If-Match`.
    pub const PRECONDITION_REQUIRED: &str = "urn:bulwark:problem:precondition-required";
    /// Authenticated, but the caller's role does not allow this.
    pub const FORBIDDEN: &str = "urn:bulwark:problem:forbidden";
    /// No valid credentials (missing, malformed, expired or revoked token).
    pub const UNAUTHENTICATED: &str = "urn:bulwark:problem:unauthenticated";
    /// Sign-in failed. Deliberately one type for unknown email, wrong password and locked account.
    pub const INVALID_CREDENTIALS: &str = "urn:bulwark:problem:invalid-credentials";
    /// Too many requests or failed attempts; see `Retry-After`.
    pub const RATE_LIMITED: &str = "urn:bulwark:problem:rate-limited";
    /// A refresh, reset or verification token is unknown, used or expired.
    pub const INVALID_TOKEN: &str = "urn:bulwark:problem:invalid-token";
    /// A sensitive operation needs a recent sign-in or the password (403).
    pub const REAUTHENTICATION_REQUIRED: &str = "urn:bulwark:problem:reauthentication-required";
    /// The account's role needs MFA on first (`REQUIRE_MFA_FOR_ADMINS`) (403).
    pub const MFA_REQUIRED: &str = "urn:bulwark:problem:mfa-required";
    /// The route needs a session; an API key cannot do this (403).
    pub const SESSION_REQUIRED: &str = "urn:bulwark:problem:session-required";
}

/// One RFC 9457 problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:bulwark:problem:validation-error",
    "title": "Validation failed",
    "status": 400,
    "detail": "The request body does not match the expected schema.",
    "request_id": "3f0d8c1e-8d4b-4a43-9d5e-1f1c2b3a4d5e",
    "errors": [{"field": "role", "code": "unknown_field", "message": "This field is not accepted."}]
}))]
pub struct Problem {
    /// A URI identifying the problem type.
    #[serde(rename = "type")]
    pub type_uri: Cow<'static, str>,
    /// A short summary of the problem type.
    pub title: Cow<'static, str>,
    /// The HTTP status code.
    pub status: u16,
    /// What happened, for a human. Never internals.
    pub detail: Cow<'static, str>,
    /// The request id, to quote when reporting a problem (also in `X-Request-Id`).
    pub request_id: String,
    /// Field-level errors of a validation problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name as the client sent it (`password`, `tags[2]`).
    pub field: Cow<'static, str>,
    /// A stable machine-readable code (`too_short`, `unknown_field`).
    pub code: Cow<'static, str>,
    /// A human-readable explanation.
    pub message: Cow<'static, str>,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// A problem with an explicit type, title and detail. `request_id` is filled in when rendered.
    pub fn new(
        status: StatusCode,
        type_uri: &'static str,
        title: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            type_uri: Cow::Borrowed(type_uri),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            request_id: String::new(),
            errors: Vec::new(),
        }
    }

    /// The generic problem for a status: `about:blank`, the status's reason phrase, and a fixed,
    /// cause-free detail. Used for every error response that no handler described.
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, types::ABOUT_BLANK, title, generic_detail(status))
    }

    /// Adds field errors (validation problems).
    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }
}

fn generic_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request could not be understood.",
        401 => "Authentication is required.",
        403 => "You are not allowed to do this.",
        404 => "There is nothing here.",
        405 => "This method is not allowed on this resource.",
        406 => "No acceptable representation is available.",
        // The deadline covers a slow client and a slow handler alike; say nothing about which.
        408 => "The request was not completed in time.",
        409 => "The request conflicts with the current state of the resource.",
        411 => "A Content-Length is required.",
        412 => "A precondition of the request failed.",
        413 => "The request body is too large.",
        414 => "The request URI is too long.",
        415 => "This media type is not supported here.",
        422 => "The request could not be processed.",
        429 => "Too many requests; retry later.",
        431 => "The request headers are too large.",
        503 => "The service is temporarily unavailable; retry later.",
        s if s >= 500 => "An internal error occurred. Quote the request id when reporting it.",
        _ => "The request failed.",
    }
}

/// An error that becomes a problem response. The public [`Problem`] is chosen explicitly where the
/// error is created; the optional `cause` is for the server log only.
pub struct ProblemError {
    problem: Problem,
    headers: Vec<(HeaderName, HeaderValue)>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProblemError {
    /// An error answered with this problem.
    #[must_use]
    pub fn new(problem: Problem) -> Self {
        Self {
            problem,
            headers: Vec::new(),
            cause: None,
        }
    }

    /// The generic problem for a status.
    #[must_use]
    pub fn status(status: StatusCode) -> Self {
        Self::new(Problem::for_status(status))
    }

    /// A 500 whose cause is logged (once, by the problem middleware, with the request id) and never
    /// shown.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The public problem.
    #[must_use]
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

// Display is what the server log shows for this error; it is never written into a response body.
impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.problem.title, self.problem.status)?;
        let mut source = self
            .cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static));
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProblemError({self})")
    }
}

impl std::error::Error for ProblemError {}

impl ResponseError for ProblemError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        let mut response = response.finish();
        response.extensions_mut().insert(self.problem.clone());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_problems_say_nothing_about_the_cause() {
        let problem = Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.type_uri, "about:blank");
        assert_eq!(problem.title, "Internal Server Error");
        assert!(!problem.detail.to_lowercase().contains("sql"));
    }

    #[test]
    fn internal_errors_keep_their_cause_for_the_log_only() {
        let error = ProblemError::internal(std::io::Error::other("connection refused to 10.0.0.5"));
        assert!(error.to_string().contains("connection refused"));
        assert!(!error.problem().detail.contains("connection refused"));
        let json = serde_json::to_string(error.problem()).unwrap();
        assert!(!json.contains("10.0.0.5"));
    }

    #[test]
    fn serialises_with_rfc9457_member_names() {
        let problem = Problem::for_status(StatusCode::NOT_FOUND)
            .with_errors(vec![FieldError::new("id", "invalid", "Not a UUID.")]);
        let json = serde_json::to_value(&problem).unwrap();
        for key in ["type", "title", "status", "detail", "request_id", "errors"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["status"], 404);
    }
}
