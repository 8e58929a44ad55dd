//! Request bodies must declare their length: `Transfer-Encoding` → 411 Length Required.
//!
//! A chunked body has no declared end. When a handler does not read it (a 404, a route without a
//! body), actix-http *drains* it to keep the connection reusable, and that drain has no deadline: a
//! client that starts a chunked body and never finishes it holds a connection forever. Every body
//! this API accepts is small and of known size, so it simply refuses chunked requests, as RFC 9110
//! §15.5.12 allows, before any routing.
//!
//! The refusal has to keep the unread body *alive* until the response is written: actix closes a
//! connection whose request body is still unread but wanted, and drains one whose body was dropped.
//! So the response body below holds the request's payload until it has been sent.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;

use crate::middleware::request_context::{RequestId, X_REQUEST_ID};
use crate::problem::{PROBLEM_JSON, Problem};

/// Refuses requests with a `Transfer-Encoding` header.
///
/// # Errors
/// Passes on an error of the inner service unchanged.
pub async fn require_length(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    if !req.headers().contains_key(header::TRANSFER_ENCODING) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let id = RequestId::of(req.request());
    let (request, payload) = req.into_parts();
    let mut problem = Problem::new(
        StatusCode::LENGTH_REQUIRED,
        "about:blank",
        "Length Required",
        "Send the request body with a Content-Length header; chunked transfer encoding is not accepted.",
    );
    problem.request_id = id.as_str().to_owned();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = HttpResponse::build(StatusCode::LENGTH_REQUIRED)
        .content_type(PROBLEM_JSON)
        .message_body(BoxBody::new(HoldPayload {
            body: Some(Bytes::from(body)),
            _payload: payload,
        }))?;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(request, response).map_into_right_body())
}

/// A fixed body that keeps the request payload alive until it has been sent.
struct HoldPayload {
    body: Option<Bytes>,
    _payload: Payload,
}

impl MessageBody for HoldPayload {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.body.as_ref().map_or(0, |b| b.len() as u64))
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(self.get_mut().body.take().map(Ok))
    }
}
