//! `GET /metrics`: the Prometheus text of [`Metrics`], for a scraper holding `METRICS_TOKEN`.
//!
//! Metrics describe traffic, errors and capacity — reconnaissance for an attacker — so they are
//! never public: without a configured token the route answers 404 (as if it did not exist), and a
//! scrape must send `Authorization: Bearer <METRICS_TOKEN>`, compared in constant time. The token
//! is not a user credential: it opens this route and nothing else.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use bulwark_web::identity::unauthenticated;
use bulwark_web::metrics::Metrics;
use bulwark_web::problem::{Problem, ProblemError};
use secrecy::{ExposeSecret, SecretString};

/// The scrape token, registered by the app (`None`: the route answers 404).
#[derive(Debug, Clone, Default)]
pub struct MetricsToken(pub Option<SecretString>);

/// Equal, in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Prometheus metrics.
///
/// Requests by route template, method and status with a latency histogram, rate-limit refusals by
/// policy, and gauges (database pool, open sockets, limiter fallbacks), in the Prometheus text
/// format. Only with `Authorization: Bearer <METRICS_TOKEN>`; 404 when no token is configured.
#[utoipa::path(
    tag = "health",
    operation_id = "get_metrics",
    security(()),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain"),
        (status = 401, description = "No or a wrong metrics token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Metrics are not enabled (no METRICS_TOKEN).", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/metrics")]
pub async fn metrics(
    req: HttpRequest,
    token: web::Data<MetricsToken>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ProblemError> {
    let Some(expected) = &token.0 else {
        return Err(ProblemError::new(Problem::for_status(
            StatusCode::NOT_FOUND,
        )));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(presented.as_bytes(), expected.expose_secret().as_bytes()) {
        tracing::warn!("metrics scrape with a wrong token");
        return Err(unauthenticated());
    }
    Ok(exposition(&metrics))
}

/// Everything the separate metrics listener (`METRICS_ADDR`) answers: `GET /metrics` without a
/// token — that listener is bound where only the scraper reaches it — and 404 for anything else.
pub async fn internal(req: HttpRequest, registry: web::Data<Metrics>) -> HttpResponse {
    if req.method() == actix_web::http::Method::GET && req.path() == "/metrics" {
        exposition(&registry)
    } else {
        HttpResponse::NotFound().finish()
    }
}

/// The text exposition, never cached.
fn exposition(registry: &Metrics) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(registry.render())
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
