//! The whole HTTP API as one document: the REST routes, `POST /graphql` and the notifications
//! socket (`GET /api/v1/ws`), registered through
//! utoipa-actix-web, so the OpenAPI document — and the access table built from it — lists every
//! route of every transport.

use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers every route of every transport.
pub fn routes(cfg: &mut ServiceConfig<'_>) {
    bulwark_transport_rest::routes(cfg);
    bulwark_transport_graphql::routes(cfg);
    bulwark_transport_ws::routes(cfg);
}

/// The OpenAPI document of [`routes`]: what `bulwark openapi` prints and `openapi/openapi.json`
/// holds.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_app, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(bulwark_transport_rest::ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    bulwark_transport_rest::document_rate_limits(&mut doc);
    doc
}
