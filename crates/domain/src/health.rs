//! Readiness of the things the service depends on.
//!
//! The readiness endpoint asks each configured dependency (PostgreSQL today, Redis later) whether it
//! answers. The domain only defines the question; the adapters answer it.

use async_trait::async_trait;

/// A dependency that can be asked whether it currently answers.
#[async_trait]
pub trait DependencyProbe: Send + Sync + std::fmt::Debug {
    /// A short, stable, non-secret name used in logs ("postgres", "redis").
    fn name(&self) -> &'static str;

    /// Checks the dependency once. Implementations should be cheap (`SELECT 1`, `PING`); the caller
    /// bounds the time it waits.
    ///
    /// # Errors
    /// [`ProbeError`] when the dependency cannot be reached or does not answer correctly. The error's
    /// text goes to the server log only, never to a client.
    async fn check(&self) -> Result<(), ProbeError>;
}

/// Why a dependency is not ready. Carries a message for the operator's log.
#[derive(Debug, thiserror::Error)]
#[error("{dependency} is not ready: {reason}")]
pub struct ProbeError {
    /// The probe's name.
    pub dependency: &'static str,
    /// What went wrong, for the log.
    pub reason: String,
}
