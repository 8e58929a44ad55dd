//! `GET /openapi.json`: the machine-readable contract.

use std::sync::Arc;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, web};

/// The rendered document, built once at start-up and shared by all workers.
#[derive(Debug, Clone)]
pub struct OpenApiDocument(pub Arc<str>);

/// The OpenAPI 3.1 document of this API — byte for byte `openapi/openapi.json`.
#[utoipa::path(
    tag = "meta",
    operation_id = "get_openapi_document",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json")),
)]
#[get("/openapi.json")]
pub async fn openapi_json(doc: web::Data<OpenApiDocument>) -> HttpResponse {
    // Public and identical for everyone, so a cache may keep it for a while.
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header(("cache-control", "public, max-age=300"))
        .body(doc.0.to_string())
}
