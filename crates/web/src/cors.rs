//! CORS from an allowlist (ASVS 3.4.2).
//!
//! The API authenticates with bearer tokens, never cookies, so it never allows credentials — and
//! therefore never needs the dangerous combination of a reflected origin with
//! `Access-Control-Allow-Credentials: true`. A request from an origin outside the list gets no
//! `Access-Control-Allow-Origin` at all: the browser will not hand the response to that page.

use actix_cors::Cors;
use actix_web::http::{Method, header};

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Exactly these origins (`https://app.example.com`). An empty list allows none.
    AllowList(Vec<String>),
    /// Any origin, answered with `*` (development only; the configuration refuses it in production).
    AnyOrigin,
}

impl CorsPolicy {
    /// Whether a page of this origin may call the API (and open its sockets).
    #[must_use]
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::AnyOrigin => true,
            Self::AllowList(allowed) => allowed.iter().any(|a| a == origin),
        }
    }
}

/// The check every WebSocket upgrade makes before upgrading: a browser page's `Origin` must be on
/// the allowlist, else 403 and no frame is exchanged.
///
/// A WebSocket is not covered by the same-origin policy, so without this check any page a
/// signed-in user visits could open a socket in their name (cross-site WebSocket hijacking). A
/// client that sends no `Origin` is not a browser, and carries no ambient credential to abuse.
///
/// Returns the 403 problem+json to answer when the origin is not allowed (or not readable).
#[must_use]
pub fn socket_origin_refusal(
    policy: &CorsPolicy,
    req: &actix_web::HttpRequest,
) -> Option<crate::ProblemError> {
    let page = req.headers().get(header::ORIGIN)?;
    if page.to_str().is_ok_and(|o| policy.allows(o)) {
        return None;
    }
    tracing::warn!(
        path = req.path(),
        "WebSocket upgrade from a disallowed origin refused"
    );
    Some(crate::ProblemError::new(crate::Problem::new(
        actix_web::http::StatusCode::FORBIDDEN,
        crate::problem::types::FORBIDDEN,
        "Forbidden",
        "This origin may not open the socket.",
    )))
}

/// Response headers a browser page may read.
const EXPOSED: [&str; 7] = [
    "x-request-id",
    "etag",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "www-authenticate",
    "location",
];

/// The actix-cors middleware for a policy.
pub fn cors(policy: &CorsPolicy) -> Cors {
    let base = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers(EXPOSED)
        .max_age(600);
    match policy {
        CorsPolicy::AnyOrigin => base.allow_any_origin().send_wildcard(),
        CorsPolicy::AllowList(origins) => origins
            .iter()
            .fold(base, |cors, origin| cors.allowed_origin(origin)),
    }
}
