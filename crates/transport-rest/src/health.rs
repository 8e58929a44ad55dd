//! `GET /health/live` and `GET /health/ready`.
//!
//! *Live* says the process answers HTTP: an orchestrator restarts the process when it stops. *Ready*
//! says the process can serve real requests because its dependencies answer: a load balancer
//! stops sending traffic while it is 503, without restarting anything. Mixing the two up turns a
//! database outage into a restart storm.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{get, web};
use bulwark_domain::health::DependencyProbe;
use bulwark_web::problem::{Problem, ProblemError, types};
use futures_util::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

/// The probes the readiness endpoint runs, and how long it waits for each.
#[derive(Debug, Clone)]
pub struct Readiness {
    probes: Vec<Arc<dyn DependencyProbe>>,
    timeout: Duration,
}

impl Readiness {
    /// Readiness over these probes; each gets `timeout` to answer.
    #[must_use]
    pub fn new(probes: Vec<Arc<dyn DependencyProbe>>, timeout: Duration) -> Self {
        Self { probes, timeout }
    }
}

/// A healthy answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthStatus {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(
    tag = "health",
    operation_id = "get_liveness",
    security(()),
    responses((status = 200, description = "The process answers.", body = HealthStatus)),
)]
#[get("/health/live")]
pub async fn live() -> web::Json<HealthStatus> {
    web::Json(HealthStatus { status: "ok" })
}

/// Every dependency answers.
///
/// # Errors
/// A 503 problem (with `Retry-After`) when any dependency fails or does not answer in time. Which one
/// failed is logged, not told: the endpoint is public.
#[utoipa::path(
    tag = "health",
    operation_id = "get_readiness",
    security(()),
    responses(
        (status = 200, description = "Every dependency answers.", body = HealthStatus),
        (status = 503, description = "A dependency does not answer in time.", body = bulwark_web::Problem,
         content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait."))),
    ),
)]
#[get("/health/ready")]
pub async fn ready(
    readiness: web::Data<Readiness>,
) -> Result<web::Json<HealthStatus>, ProblemError> {
    let timeout = readiness.timeout;
    let checks = readiness.probes.iter().map(|probe| async move {
        match actix_web::rt::time::timeout(timeout, probe.check()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(dependency = probe.name(), error = %error, "dependency not ready");
                false
            }
            Err(_) => {
                tracing::warn!(
                    dependency = probe.name(),
                    "dependency did not answer in time"
                );
                false
            }
        }
    });
    if join_all(checks).await.into_iter().all(|ok| ok) {
        Ok(web::Json(HealthStatus { status: "ok" }))
    } else {
        Err(ProblemError::new(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            types::SERVICE_UNAVAILABLE,
            "Service unavailable",
            "A dependency is not available. Retry later.",
        ))
        .with_header(RETRY_AFTER, HeaderValue::from_static("5")))
    }
}
