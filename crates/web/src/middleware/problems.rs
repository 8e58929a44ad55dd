//! Every error becomes an RFC 9457 problem, and every panic a generic 500.
//!
//! Errors reach a client from many places that never see our types: the router (404, 405), actix's
//! body limits (413), CORS (a refused origin), the deadline (408), a handler that panics. (Errors of
//! actix-http's request *parser* never reach the app at all; see the [module list](super).) Rather than configuring each of them, this middleware looks at every response on its way
//! out: if the status is 4xx/5xx it re-renders the body as `application/problem+json`, using the
//! [`Problem`] a handler attached (see [`ProblemError`]) or the generic problem for the status.
//! Headers such as `Retry-After`, `WWW-Authenticate` or `Allow` are kept.
//!
//! Two paths have no response to re-render: an inner service that returns `Err`, and a panic. An
//! actix middleware cannot hold on to the request while the router runs (the router needs the only
//! reference to it), so it cannot build a response of its own afterwards. Instead it returns an error
//! that renders itself *completely* — problem body, `X-Request-Id` and the security headers — which
//! actix's dispatcher turns into the response. Either way the client sees the same shape.
//!
//! A 5xx is logged here, once, with its cause and the request id; the client gets only the id.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use futures_util::FutureExt;

use crate::middleware::request_context::{RequestId, X_REQUEST_ID};
use crate::middleware::security_headers::{self, SecurityHeaders};
use crate::problem::{PROBLEM_JSON, Problem, ProblemError};

/// Renders error responses as problems and turns panics into 500s.
///
/// # Errors
/// A self-rendering problem error when the inner service failed with `Err` or panicked.
pub async fn problem_responses(
    headers: SecurityHeaders,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(RequestId::generate);
    // AssertUnwindSafe: after a panic nothing the panicking code touched is used again; we only build
    // a fresh error value.
    let outcome = AssertUnwindSafe(Guarded(Box::pin(next.call(req))))
        .catch_unwind()
        .await;
    let res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(error)) => {
            let status = error.as_response_error().status_code();
            let problem = error
                .as_error::<ProblemError>()
                .map_or_else(|| Problem::for_status(status), |e| e.problem().clone());
            if status.is_server_error() {
                tracing::error!(error = %error, status = status.as_u16(), "request failed");
            }
            return Err(StandaloneProblem::new(problem, &request_id, headers).into());
        }
        Err(panic) => {
            let location = PANIC_LOCATION
                .with(|l| l.borrow_mut().take())
                .unwrap_or_default();
            tracing::error!(panic = %panic_message(panic.as_ref()), location = %location, "handler panicked");
            let problem = Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(StandaloneProblem::new(problem, &request_id, headers).into());
        }
    };

    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(res);
    }
    if status.is_server_error()
        && let Some(error) = res.response().error()
    {
        tracing::error!(error = %error, status = status.as_u16(), "request failed");
    }

    let (request, response) = res.into_parts();
    let mut problem = response
        .extensions()
        .get::<Problem>()
        .cloned()
        .unwrap_or_else(|| Problem::for_status(status));
    problem.request_id = request_id.as_str().to_owned();

    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.append_header((name.clone(), value.clone()));
        }
    }
    let mut rebuilt = rebuilt.content_type(PROBLEM_JSON).body(render(&problem));
    if !response.head().keep_alive() {
        rebuilt
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(ServiceResponse::new(request, rebuilt))
}

fn render(problem: &Problem) -> Vec<u8> {
    // A Problem holds only strings and numbers; serialising it cannot fail. Were it ever to, an
    // empty object is still a valid (if unhelpful) problem document.
    serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec())
}

/// A problem that renders the complete response itself (see the module docs for why).
struct StandaloneProblem {
    problem: Problem,
    headers: SecurityHeaders,
}

impl StandaloneProblem {
    fn new(mut problem: Problem, request_id: &RequestId, headers: SecurityHeaders) -> Self {
        request_id.as_str().clone_into(&mut problem.request_id);
        Self { problem, headers }
    }
}

impl fmt::Debug for StandaloneProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StandaloneProblem({})", self.problem.status)
    }
}

impl fmt::Display for StandaloneProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.problem.title, self.problem.status)
    }
}

impl ResponseError for StandaloneProblem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code())
            .content_type(PROBLEM_JSON)
            .body(render(&self.problem));
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&self.problem.request_id) {
            headers.insert(X_REQUEST_ID, id);
        }
        security_headers::insert(headers, self.headers, false);
        if self.problem.status == StatusCode::REQUEST_TIMEOUT.as_u16() {
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        response
    }
}

thread_local! {
    /// True while this thread polls a request inside [`problem_responses`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic happened, noted by the panic hook.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// For the process's panic hook: is this panic about to be caught (and logged once, with the request
/// id) by [`problem_responses`]? If so the hook should only call [`note_panic_location`] and stay
/// silent, so that each handler panic makes exactly one log line.
#[must_use]
pub fn panic_is_caught_here() -> bool {
    GUARDED.with(Cell::get)
}

/// Remembers the panic's source location for the log line of [`problem_responses`].
pub fn note_panic_location(location: String) {
    PANIC_LOCATION.with(|l| *l.borrow_mut() = Some(location));
}

/// Marks the thread as guarded while the inner future is polled. actix runs a request's future on
/// one thread, so a thread-local is exact here.
struct Guarded<F>(Pin<Box<F>>);

impl<F: Future> Future for Guarded<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let previous = GUARDED.with(|g| g.replace(true));
        let result = self.0.as_mut().poll(cx);
        GUARDED.with(|g| g.set(previous));
        result
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
