//! The contract's security headers, on every response — success, error, 404, panic.
//!
//! Only headers a handler did not set itself are added, which is how the API-docs page gets its
//! relaxed `Content-Security-Policy` and a cacheable response its own `Cache-Control`. Everything
//! else gets `Cache-Control: no-store`: an API response is personal until proven otherwise.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// Which optional headers to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityHeaders {
    /// Send `Strict-Transport-Security`: only when clients reach us over TLS (directly or through a
    /// TLS-terminating proxy). On plain HTTP the header is meaningless and browsers ignore it.
    pub hsts: bool,
    /// Path prefix of the interactive API docs page (development only), which gets [`DOCS_CSP`].
    pub docs_prefix: Option<&'static str>,
}

/// The docs page runs Swagger UI's own scripts and inline styles — all served by us, nothing from a
/// CDN — so it needs a little more than [`API_CSP`], and no more.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `default-src 'none'`: an API response must never be rendered as a document that runs anything.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// Two years, as the contract asks (ASVS 3.4.1 wants at least one).
pub const HSTS: &str = "max-age=63072000; includeSubDomains";
/// Every powerful browser feature off.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), display-capture=(), \
    encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), \
    midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), \
    sync-xhr=(), usb=(), xr-spatial-tracking=()";

const FIXED: [(HeaderName, &str); 7] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CONTENT_SECURITY_POLICY, API_CSP),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("permissions-policy"),
        PERMISSIONS_POLICY,
    ),
];

/// Adds the headers after the inner service answered.
///
/// # Errors
/// Passes on an error of the inner service unchanged (the problem middleware inside renders errors
/// with these same headers, see [`insert`]).
pub async fn apply(
    config: SecurityHeaders,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_docs = config
        .docs_prefix
        .is_some_and(|prefix| req.path().starts_with(prefix));
    let mut res = next.call(req).await?;
    insert(res.headers_mut(), config, is_docs);
    Ok(res)
}

/// Puts the security headers into a header map, keeping any a handler set itself (except on the
/// docs page, whose CSP is always [`DOCS_CSP`]).
pub fn insert(headers: &mut HeaderMap, config: SecurityHeaders, is_docs: bool) {
    if is_docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    for (name, value) in FIXED {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if config.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    // Nothing should set these, but nothing should be able to leak them either.
    headers.remove(header::SERVER);
    headers.remove(HeaderName::from_static("x-powered-by"));
}
