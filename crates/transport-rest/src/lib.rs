//! # bulwark-transport-rest
//!
//! The REST adapter: actix-web handlers that extract, parse into domain types, call a domain
//! service and map the answer back — nothing more. No SQL, no hashing, no business rule and no
//! authorisation decision is made in this crate.
//!
//! Routes are registered **only** through [`routes`], with `utoipa-actix-web`: a handler without a
//! `#[utoipa::path]` annotation cannot be registered there, so every route the service answers is in
//! the OpenAPI document by construction. Two tests in `tests/api/openapi.rs` hold the rest of the
//! line: the checked-in `openapi/openapi.json` must equal what the code generates, and every
//! documented operation must be answered (not 404/405) by the running app.
//!
//! **Never imports** a database crate, the security adapters or another transport.

pub mod docs;
pub mod health;
pub mod jwks;

use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;

pub use docs::OpenApiDocument;
pub use health::Readiness;
pub use jwks::{Jwk, JwkSet};

/// The document's fixed parts: info, tags, shared schemas. Paths are added by [`routes`].
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Bulwark API",
        description = "A security-first reference backend. Every error is RFC 9457 `application/problem+json`; \
                       every response carries `X-Request-Id` and the security headers listed in docs/security.md.",
        license(name = "MIT OR Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness and readiness for orchestrators."),
        (name = "meta", description = "This document."),
        (name = "auth", description = "Authentication: keys, tokens, sessions."),
    ),
    components(schemas(bulwark_web::Problem, bulwark_web::FieldError)),
)]
pub struct ApiDoc;

/// Registers every REST route (and, with it, its OpenAPI operation).
pub fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(health::live)
        .service(health::ready)
        .service(docs::openapi_json)
        .service(jwks::jwks);
}

/// The OpenAPI document of the routes in [`routes`]; `bulwark openapi` prints it and `make openapi`
/// writes it to `openapi/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    let (_app, doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    doc
}

/// Every documented path with its methods, for the 405 fallback (`bulwark_web::routing`).
#[must_use]
pub fn route_table(doc: &utoipa::openapi::OpenApi) -> bulwark_web::routing::RouteTable {
    use actix_web::http::Method;
    bulwark_web::routing::RouteTable::new(doc.paths.paths.iter().map(|(path, item)| {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::HEAD, item.head.is_some()),
            (Method::OPTIONS, item.options.is_some()),
        ]
        .into_iter()
        .filter_map(|(method, present)| present.then_some(method))
        .collect();
        (path.clone(), methods)
    }))
}

/// The document rendered exactly as `openapi/openapi.json` holds it: pretty JSON, a final newline.
///
/// # Errors
/// A serialisation error, which would be a bug in a schema definition.
pub fn openapi_json(doc: &utoipa::openapi::OpenApi) -> Result<String, serde_json::Error> {
    doc.to_pretty_json().map(|mut json| {
        json.push('\n');
        json
    })
}
