//! # bulwark-web
//!
//! The HTTP plumbing shared by every transport — REST, GraphQL and the WebSocket endpoints are all
//! served by one actix-web application, and each of them needs the same things from it:
//!
//! - [`problem`]: RFC 9457 `application/problem+json` errors, the only error body the service sends;
//! - [`middleware`]: request ids and the per-request tracing span, the contract's security headers,
//!   the turning of *every* error (404, 405, 413, a panic) into a problem, and a request deadline;
//! - [`extract`]: body-size, content-type and JSON-shape rules for extractors, mapped to problems;
//! - [`cors`]: CORS from an allowlist;
//! - [`access`]: deny by default — each route's declared access class (public, authenticated,
//!   permission) enforced before its handler;
//! - [`identity`]: the bearer-token extractor that yields the domain's `Actor`, the request's
//!   `Origin`, and the mapping of domain errors to problems.
//!
//! It lives in its own crate so that no transport reaches another one for these (see
//! `../../STYLE.md` of the project).
//!
//! **Never imports** a database crate, the security adapters or the app's configuration: settings
//! arrive as plain values.

pub mod access;
pub mod client_ip;
pub mod connections;
pub mod cors;
pub mod extract;
pub mod identity;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod rate_limit;
pub mod routing;
pub mod shutdown;
pub mod socket;

pub use middleware::request_context::RequestId;
pub use problem::{FieldError, Problem, ProblemError};
