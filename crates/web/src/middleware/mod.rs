//! The middleware stack every response passes through, outermost first:
//!
//! 1. [`request_context`] — gives the request an id and a tracing span, logs its completion, echoes
//!    `X-Request-Id`, answers HEAD as GET;
//! 2. the request metrics ([`crate::metrics::record`]): every final status, by route template;
//! 3. [`security_headers`] — the contract's security headers on every response;
//! 4. [`length_required`] — refuses chunked request bodies (411) before any routing;
//! 5. [`problems`] — turns every error (router 404/405, extractor errors, timeouts, a panic) into an
//!    RFC 9457 problem, and logs 5xx causes once;
//! 6. [`timeout`] — the request deadline;
//! 7. CORS (see [`crate::cors`]), so its rejections become problems too and preflights never need
//!    credentials;
//! 8. the per-IP rate limit (see [`crate::rate_limit`]), before any authentication work;
//! 9. access (see [`crate::access`]) — authentication and function-level authorisation per the
//!    route's declared access class;
//! 10. the per-user / per-API-key rate limit — innermost, once the caller is known.
//!
//! [`install`] applies them in this order so that no caller can get it wrong.
//!
//! What none of them can touch: errors that actix-http produces while *parsing* a request (a
//! malformed request line or header, a head too large (431) or too slow (408), conflicting
//! `Content-Length`/`Transfer-Encoding`). No request exists yet, so the app never sees them; they
//! are sent with an empty body and without the security headers. A TLS-terminating proxy in front
//! normally answers these itself.

pub mod length_required;
pub mod problems;
pub mod request_context;
pub mod security_headers;
pub mod timeout;

use std::time::Duration;

use actix_cors::Cors;
use actix_web::App;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;

pub use security_headers::SecurityHeaders;

/// Wraps an actix `App` in the whole stack.
pub fn install<T, B>(
    app: App<T>,
    cors: Cors,
    headers: SecurityHeaders,
    request_timeout: Duration,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
>
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    app.wrap(from_fn(crate::rate_limit::per_principal))
        .wrap(from_fn(crate::access::enforce))
        .wrap(from_fn(crate::rate_limit::per_ip))
        .wrap(cors)
        .wrap(from_fn(move |req, next| {
            timeout::deadline(request_timeout, req, next)
        }))
        .wrap(from_fn(move |req, next| {
            problems::problem_responses(headers, req, next)
        }))
        .wrap(from_fn(length_required::require_length))
        .wrap(from_fn(move |req, next| {
            security_headers::apply(headers, req, next)
        }))
        .wrap(from_fn(crate::metrics::record))
        .wrap(from_fn(request_context::request_context))
}
