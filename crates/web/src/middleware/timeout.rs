//! The request deadline.
//!
//! actix-web bounds how long a client may take to send the request *head*
//! (`client_request_timeout`), but not the body, and nothing bounds a handler. A client that
//! trickles a body one byte a second would hold a connection and a worker slot forever. The deadline
//! here covers the whole exchange; past it the request is dropped (which cancels the handler and
//! rolls back its transaction) and the client gets a 408 problem with `Connection: close`.
//! Database waits are bounded more tightly by the pool's acquire and statement timeouts, so a slow
//! dependency surfaces as a 503 long before this fires.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;

use crate::problem::ProblemError;

/// Runs the rest of the chain with a deadline.
///
/// # Errors
/// A 408 [`ProblemError`] past the deadline (rendered by the problem middleware); an error of the
/// inner service unchanged.
pub async fn deadline(
    limit: Duration,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match actix_web::rt::time::timeout(limit, next.call(req)).await {
        Ok(result) => result,
        Err(_elapsed) => {
            tracing::warn!(
                limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                "request deadline exceeded"
            );
            Err(ProblemError::status(StatusCode::REQUEST_TIMEOUT).into())
        }
    }
}
