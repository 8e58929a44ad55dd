//! Request ids and the per-request span.
//!
//! Every request gets an id: the client's `X-Request-Id` when it is well formed (so that a trace can
//! cross services), else a fresh UUID. The id goes into the span, every problem body, every audit
//! event and the response's `X-Request-Id` header.
//!
//! What is logged about a request is deliberately small: method, route pattern, path (never the
//! query string, which is where careless clients put tokens), peer address, status and latency.
//! Headers — `Authorization`, `Cookie` — and bodies are never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{ConnectionType, Method};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{Ready, ready};
use tracing::Instrument;

/// The response (and request) header carrying the request id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted incoming id.
const MAX_LEN: usize = 64;

/// The id of the current request. Extract it in a handler, or read it with [`RequestId::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts an incoming id when it is 1..=64 characters of `[A-Za-z0-9._-]`. Anything else (too
    /// long, spaces, control characters that could forge log lines) is replaced, not echoed.
    #[must_use]
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_well_formed(v))
            .map_or_else(Self::generate, |v| Self(v.to_owned()))
    }

    /// A fresh random id.
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id of a request that went through [`request_context`]; a fresh one otherwise.
    #[must_use]
    pub fn of(req: &HttpRequest) -> Self {
        req.extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_else(Self::generate)
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_well_formed(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// The outermost middleware: id, span, completion log line, `X-Request-Id`.
///
/// # Errors
/// Passes on an error of the inner service unchanged (a self-rendering problem from the problem
/// middleware), after logging it.
pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = RequestId::from_header(req.headers().get(X_REQUEST_ID));
    req.extensions_mut().insert(id.clone());

    // HEAD is GET without the body (RFC 9110 §9.3.2): route it as GET. actix-http decided when it
    // parsed the request that the response to a HEAD carries no body, so nothing else changes.
    let method = req.method().clone();
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    // A chunked body has no declared end. If the handler never reads it (a 404, a route without a
    // body), actix would keep the connection open waiting for the rest, with no deadline: a client
    // could hold connections forever by starting a chunked body and never finishing it. Such a
    // response therefore closes the connection.
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);

    // Every field of the span is known now and set once: the JSON formatter keeps a span's fields
    // as a JSON string, and each later `record` would parse and rewrite it. What is known only at
    // the end (route, status, latency) goes on the completion event instead.
    // The client behind our proxies, when the peer is one (see `client_ip`).
    let client = crate::identity::client_ip(req.request());
    let span = tracing::info_span!(
        "http.request",
        request_id = %id.as_str(),
        method = %method,
        path = %req.path(),
        peer = req.peer_addr().map(|peer| tracing::field::display(peer.ip())),
        client_ip = client.map(tracing::field::display),
    );
    let latency_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res,
        Err(error) => {
            // A self-rendering problem (panic, deadline): actix's dispatcher turns it into the
            // response, which already carries the id. Log the outcome here all the same.
            let status = error.as_response_error().status_code().as_u16();
            span.in_scope(|| tracing::warn!(status, latency_ms = latency_ms(), "request failed"));
            return Err(error);
        }
    };

    let route = crate::routing::route_pattern(res.request());
    let route = route.as_deref().map(tracing::field::display);
    let status = res.status().as_u16();
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(route, status, latency_ms = latency_ms(), "request failed");
        } else {
            tracing::info!(
                route,
                status,
                latency_ms = latency_ms(),
                "request completed"
            );
        }
    });

    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    if chunked {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_kept() {
        for id in ["abc", "3f0d8c1e-8d4b-4a43-9d5e-1f1c2b3a4d5e", "trace_1.2-3"] {
            let value = HeaderValue::from_str(id).unwrap();
            assert_eq!(RequestId::from_header(Some(&value)).as_str(), id);
        }
    }

    #[test]
    fn malformed_ids_are_replaced_not_echoed() {
        let long = "a".repeat(MAX_LEN + 1);
        for id in ["", "a b", "x\ty", "<script>", "a\"b", long.as_str(), "ünï"] {
            let Ok(value) = HeaderValue::from_str(id) else {
                continue;
            };
            let got = RequestId::from_header(Some(&value));
            assert_ne!(got.as_str(), id);
            assert!(uuid::Uuid::parse_str(got.as_str()).is_ok());
        }
    }
}
