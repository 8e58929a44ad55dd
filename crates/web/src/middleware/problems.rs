//! Every error becomes an RFC 9457 problem, and every panic a generic 500.
//!
//! Errors reach a client from many places that never see our types: the router (404, 405), actix's
//! body and header limits (413, 431), CORS (a refused origin), a timeout (408), a handler that
//! panics. Rather than configuring each of them, this middleware looks at every response on its way
//! out: if the status is 4xx/5xx it re-renders the body as `application/problem+json`, using the
//! [`Problem`] a handler attached (see [`ProblemError`](crate::ProblemError)) or the generic problem
//! for the status. Headers such as `Retry-After`, `WWW-Authenticate` or `Allow` are kept.
//!
//! A 5xx is logged here, once, with its cause and the request id; the client gets only the id.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use futures_util::FutureExt;

use crate::problem::{PROBLEM_JSON, Problem};
use crate::middleware::request_context::RequestId;

/// Renders error responses as problems and turns panics into 500s.
///
/// # Errors
/// None in practice: inner errors are converted into responses here.
pub async fn problem_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let http_req = req.request().clone();
    // AssertUnwindSafe: after a panic we only read the request head and build a fresh response;
    // no state that the panicking code may have left half-updated is touched.
    let outcome = AssertUnwindSafe(next.call(req)).catch_unwind().await;
    let res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(error)) => ServiceResponse::from_err(error, http_req),
        Err(panic) => {
            tracing::error!(panic = %panic_message(panic.as_ref()), "handler panicked");
            ServiceResponse::new(http_req, HttpResponse::InternalServerError().finish())
        }
    };

    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(res);
    }
    if status.is_server_error() {
        if let Some(error) = res.response().error() {
            tracing::error!(error = %error, status = status.as_u16(), "request failed");
        }
    }

    let (request, response) = res.into_parts();
    let mut problem =
        response.extensions().get::<Problem>().cloned().unwrap_or_else(|| Problem::for_status(status));
    problem.request_id = RequestId::of(&request).as_str().to_owned();
    // A Problem only holds strings and numbers; serialising it cannot fail. If it ever did, an empty
    // object is still a valid (if unhelpful) problem document.
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());

    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.append_header((name.clone(), value.clone()));
        }
    }
    let mut rebuilt = rebuilt.content_type(PROBLEM_JSON).body(body);
    if !response.head().keep_alive() {
        rebuilt.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(ServiceResponse::new(request, rebuilt))
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
