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
