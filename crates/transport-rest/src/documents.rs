//! `/api/v1/documents`: the example resource, with object-level authorisation on every verb.
//!
//! A document the caller may not read answers 404 on every route, exactly like an id that does not
//! exist. Changes need `If-Match` with the version from the `ETag` (optimistic concurrency).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use bulwark_domain::document::{Document, DocumentPage, Share};
use bulwark_domain::documents::{
    DocumentError, DocumentInput, DocumentPatch, DocumentService, DocumentView, ListRequest,
    encode_cursor,
};
use bulwark_web::ProblemError;
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::{Problem, types};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::private_json;

/// Largest JSON body on these routes: a 100 KiB document body, JSON-escaped, plus the rest.
pub const DOCUMENT_JSON_LIMIT: usize = 256 * 1024;

/// A document as the caller may see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5b0c8f7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f",
    "owner_id": "7d3c1a2b-4e5f-4a6b-8c9d-0e1f2a3b4c5d",
    "title": "Release notes",
    "body": "<p><strong>Fixed</strong>: the login throttle.</p>",
    "visibility": "shared",
    "tags": ["release", "2026"],
    "created_at": "2026-11-28T09:00:00Z",
    "updated_at": "2026-11-28T09:30:00Z",
    "version": 3,
    "shares": [{"user_id": "0b6f1c52-5d0e-4f7e-9a3c-2b1e0f9d8c7a", "permission": "read"}]
}))]
pub struct DocumentResponse {
    /// Id.
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: Uuid,
    /// Title.
    pub title: String,
    /// Body: HTML sanitised to an allowlist on the way in.
    pub body: String,
    /// `private`, `shared` or `public`.
    pub visibility: &'static str,
    /// Tags.
    pub tags: Vec<String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Bumped by every change; the `ETag`.
    pub version: i32,
    /// Who it is shared with — only for its owner and admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<ShareResponse>>,
}

impl DocumentResponse {
    fn of(document: Document, shares: Option<Vec<Share>>) -> Self {
        Self {
            id: document.id,
            owner_id: document.owner_id,
            title: document.title.as_str().to_owned(),
            body: document.body.as_str().to_owned(),
            visibility: document.visibility.as_str(),
            tags: document
                .tags
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            created_at: document.created_at,
            updated_at: document.updated_at,
            version: document.version,
            shares: shares.map(|s| s.into_iter().map(ShareResponse::from).collect()),
        }
    }
}

/// One share.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareResponse {
    /// With whom.
    pub user_id: Uuid,
    /// `read` or `write`.
    pub permission: &'static str,
}

impl From<Share> for ShareResponse {
    fn from(share: Share) -> Self {
        Self {
            user_id: share.user_id,
            permission: share.permission.as_str(),
        }
    }
}

/// A page of documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    /// The documents, newest first (without share lists).
    pub items: Vec<DocumentResponse>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl From<DocumentPage> for DocumentList {
    fn from(page: DocumentPage) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(|d| DocumentResponse::of(d, None))
                .collect(),
            next_cursor: page.next.as_ref().map(encode_cursor),
        }
    }
}

/// `{title, body, visibility?, tags?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Release notes", "body": "<p>Draft</p>", "visibility": "private", "tags": ["release"]}))]
pub struct CreateDocumentRequest {
    /// 1..=200 characters.
    pub title: String,
    /// HTML, at most 100 KiB; sanitised to an allowlist (scripts, event handlers, styles and
    /// non-http(s) links are removed).
    pub body: String,
    /// `private` (default), `shared` or `public`.
    pub visibility: Option<String>,
    /// At most 10, each 1..=32 of `[a-z0-9-]`.
    pub tags: Option<Vec<String>>,
}

/// `{title?, body?, visibility?, tags?}`. `owner_id`, `id`, `version` are refused (400).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Release notes (final)"}))]
pub struct UpdateDocumentRequest {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// New visibility — owner and admins only.
    pub visibility: Option<String>,
    /// New tags (replace the old ones).
    pub tags: Option<Vec<String>>,
}

/// `{user_id, permission}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": "0b6f1c52-5d0e-4f7e-9a3c-2b1e0f9d8c7a", "permission": "read"}))]
pub struct ShareRequest {
    /// The user to share with.
    pub user_id: Uuid,
    /// `read` or `write`.
    pub permission: String,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Case-insensitive text to find in titles (matched literally; at most 100 characters).
    pub q: Option<String>,
    /// Only documents with this tag.
    pub tag: Option<String>,
}

/// `/documents/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DocumentPath {
    /// The document id.
    pub id: Uuid,
}

/// `/documents/{id}/shares/{user_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SharePath {
    /// The document id.
    pub id: Uuid,
    /// The user the document is shared with.
    pub user_id: Uuid,
}

fn problem(error: DocumentError) -> ProblemError {
    match error {
        DocumentError::Invalid(violations) => identity::invalid(violations),
        DocumentError::NotFound => ProblemError::status(StatusCode::NOT_FOUND),
        DocumentError::Forbidden => bulwark_web::access::forbidden(),
        DocumentError::Stale => ProblemError::new(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            types::STALE_VERSION,
            "Precondition Failed",
            "The document changed since you read it; fetch it again and retry.",
        )),
        DocumentError::QuotaExceeded(kind) => identity::quota_exceeded(kind),
        DocumentError::RateLimited { retry_after } => identity::rate_limited(retry_after),
        DocumentError::Unexpected(e) => identity::unexpected(e),
    }
}

/// The `ETag` of a version: a strong, quoted validator.
fn etag(version: i32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// What is wrong with `If-Match`.
#[derive(Debug, Clone, Copy)]
enum BadPrecondition {
    /// Not sent.
    Missing,
    /// Not one strong validator of ours.
    Unusable,
}

impl From<BadPrecondition> for ProblemError {
    fn from(bad: BadPrecondition) -> Self {
        match bad {
            BadPrecondition::Missing => ProblemError::new(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                types::PRECONDITION_REQUIRED,
                "Precondition Required",
                "Send If-Match with the ETag of the version you are changing.",
            )),
            BadPrecondition::Unusable => ProblemError::new(Problem::new(
                StatusCode::PRECONDITION_FAILED,
                types::STALE_VERSION,
                "Precondition Failed",
                "If-Match does not name a version of this document.",
            )),
        }
    }
}

/// The version in `If-Match: "<version>"`. Missing → 428 (RFC 6585: the client must say which
/// version it changes); anything but one strong validator of ours (`*`, a list, a weak `W/`) → 412.
fn if_match(req: &HttpRequest) -> Result<i32, BadPrecondition> {
    let value = req
        .headers()
        .get(header::IF_MATCH)
        .ok_or(BadPrecondition::Missing)?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix('"')?.strip_suffix('"')?.parse().ok())
        .ok_or(BadPrecondition::Unusable)
}

fn document_response(status: StatusCode, view: DocumentView) -> HttpResponse {
    let tag = etag(view.document.version);
    let mut response = private_json(status, &DocumentResponse::of(view.document, view.shares));
    response.headers_mut().insert(header::ETAG, tag);
    response
}

/// Create a document (owned by the caller).
#[utoipa::path(
    tag = "documents",
    operation_id = "create_document",
    security(("bearer" = []), ("api_key" = ["documents:write"])),
    request_body = CreateDocumentRequest,
    responses(
        (status = 201, description = "Created.", body = DocumentResponse,
         headers(("ETag" = String, description = "The version, quoted."))),
        (status = 400, description = "Invalid fields (every one listed) or an unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's plan allows no more documents (`quota-exceeded`).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 256 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("")]
pub async fn create_document(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    body: web::Json<CreateDocumentRequest>,
) -> Result<HttpResponse, ProblemError> {
    let CreateDocumentRequest {
        title,
        body,
        visibility,
        tags,
    } = body.into_inner();
    let view = service
        .create(
            &actor,
            DocumentInput {
                title,
                body,
                visibility,
                tags,
            },
        )
        .await
        .map_err(problem)?;
    Ok(document_response(StatusCode::CREATED, view))
}

/// List the documents the caller may read, newest first.
#[utoipa::path(
    tag = "documents",
    operation_id = "list_documents",
    security(("bearer" = []), ("api_key" = ["documents:read"])),
    params(ListParams),
    responses(
        (status = 200, description = "A page.", body = DocumentList),
        (status = 400, description = "A bad parameter (limit out of 1..100, malformed cursor, q or tag).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("")]
pub async fn list_documents(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ProblemError> {
    let ListParams {
        limit,
        cursor,
        q,
        tag,
    } = params.into_inner();
    let page = service
        .list(
            &actor,
            &ListRequest {
                limit,
                cursor,
                q,
                tag,
                owner: None,
            },
        )
        .await
        .map_err(problem)?;
    Ok(private_json(StatusCode::OK, &DocumentList::from(page)))
}

/// One document.
#[utoipa::path(
    tag = "documents",
    operation_id = "get_document",
    security(("bearer" = []), ("api_key" = ["documents:read"])),
    params(DocumentPath),
    responses(
        (status = 200, description = "The document.", body = DocumentResponse,
         headers(("ETag" = String, description = "The version, quoted; send it back in If-Match."))),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document, or one the caller may not read.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/{id}")]
pub async fn get_document(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<DocumentPath>,
) -> Result<HttpResponse, ProblemError> {
    let view = service
        .get(&actor, &origin, path.id)
        .await
        .map_err(problem)?;
    Ok(document_response(StatusCode::OK, view))
}

/// Change a document.
///
/// Writers (the owner, a write share, an admin) may change title, body and tags; only the owner
/// and admins may change visibility.
#[utoipa::path(
    tag = "documents",
    operation_id = "update_document",
    security(("bearer" = []), ("api_key" = ["documents:write"])),
    params(DocumentPath, ("If-Match" = String, Header, description = "The ETag of the version being changed.")),
    request_body = UpdateDocumentRequest,
    responses(
        (status = 200, description = "The changed document.", body = DocumentResponse),
        (status = 400, description = "Invalid fields or an unknown one (`owner_id`, `id`, `version`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may read but not make this change.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document, or one the caller may not read.", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The version in If-Match is not the current one.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 256 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/{id}")]
pub async fn update_document(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    req: HttpRequest,
    path: web::Path<DocumentPath>,
    body: web::Json<UpdateDocumentRequest>,
) -> Result<HttpResponse, ProblemError> {
    let version = if_match(&req)?;
    let UpdateDocumentRequest {
        title,
        body,
        visibility,
        tags,
    } = body.into_inner();
    let view = service
        .update(
            &actor,
            &origin,
            path.id,
            version,
            DocumentPatch {
                title,
                body,
                visibility,
                tags,
            },
        )
        .await
        .map_err(problem)?;
    Ok(document_response(StatusCode::OK, view))
}

/// Delete a document (owner or admin).
#[utoipa::path(
    tag = "documents",
    operation_id = "delete_document",
    security(("bearer" = []), ("api_key" = ["documents:write"])),
    params(DocumentPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may read but not delete it.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document, or one the caller may not read.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/{id}")]
pub async fn delete_document(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<DocumentPath>,
) -> Result<HttpResponse, ProblemError> {
    service
        .delete(&actor, &origin, path.id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Share a document (owner or admin).
#[utoipa::path(
    tag = "documents",
    operation_id = "share_document",
    security(("bearer" = []), ("api_key" = ["documents:write"])),
    params(DocumentPath),
    request_body = ShareRequest,
    responses(
        (status = 201, description = "Shared (or the permission changed).", body = ShareResponse),
        (status = 400, description = "Unknown user, the owner itself, or a bad permission.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may read but not share it.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document, or one the caller may not read.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 256 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many shares lately (a per-user cap, 50 an hour by default).", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ),
)]
#[post("/{id}/shares")]
pub async fn share_document(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<DocumentPath>,
    body: web::Json<ShareRequest>,
) -> Result<HttpResponse, ProblemError> {
    let share = service
        .share(&actor, &origin, path.id, body.user_id, &body.permission)
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::CREATED,
        &ShareResponse::from(share),
    ))
}

/// Stop sharing a document with a user (owner or admin).
#[utoipa::path(
    tag = "documents",
    operation_id = "unshare_document",
    security(("bearer" = []), ("api_key" = ["documents:write"])),
    params(SharePath),
    responses(
        (status = 204, description = "No longer shared."),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may read but not manage it.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document (or not readable), or no such share.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/{id}/shares/{user_id}")]
pub async fn unshare_document(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<SharePath>,
) -> Result<HttpResponse, ProblemError> {
    service
        .unshare(&actor, &origin, path.id, path.user_id)
        .await
        .map_err(problem)?;
    Ok(HttpResponse::NoContent().finish())
}

/// The attachment as stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "filename": "report.pdf", "content_type": "application/pdf", "size": 48213}))]
pub struct AttachmentResponse {
    /// Id.
    pub id: Uuid,
    /// The sanitised file name.
    pub filename: String,
    /// The type sniffed from the bytes (the declared one is ignored).
    pub content_type: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// `multipart/form-data` with one field, `file`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AttachmentUpload {
    /// The file: PNG, JPEG, PDF or plain UTF-8 text, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// `/documents/{id}/attachments/{attachment_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AttachmentPath {
    /// The document id.
    pub id: Uuid,
    /// The attachment id.
    pub attachment_id: Uuid,
}

/// The most a whole upload request may declare: the file and the multipart framing around it.
const MAX_UPLOAD_REQUEST_BYTES: usize =
    bulwark_domain::attachment::MAX_ATTACHMENT_BYTES + 16 * 1024;

fn too_large() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        types::PAYLOAD_TOO_LARGE,
        "Payload Too Large",
        "A file has at most 5 MiB.",
    ))
}

fn bad_upload(detail: &'static str) -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::BAD_REQUEST,
        types::VALIDATION,
        "Validation failed",
        detail,
    ))
}

/// Reads the one `file` field, counting bytes as they arrive: past the limit the upload is refused
/// without reading the rest.
async fn read_file(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(String, Vec<u8>), ProblemError> {
    use futures_util::StreamExt;
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|_| bad_upload("The multipart body is malformed."))?;
        if field.name() != Some("file") {
            return Err(bad_upload("Only one field, `file`, is accepted."));
        }
        if file.is_some() {
            return Err(bad_upload("Send one file per request."));
        }
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .unwrap_or_default()
            .to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| bad_upload("The multipart body is malformed."))?;
            if bytes.len() + chunk.len() > bulwark_domain::attachment::MAX_ATTACHMENT_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some((filename, bytes));
    }
    file.ok_or_else(|| bad_upload("The field `file` is required."))
}

/// Attach a file to a document (writers only).
///
/// The type is decided from the bytes against an allowlist (PNG, JPEG, PDF, plain text); the
/// declared type and the file name are not trusted (the name is sanitised). The bytes count
/// against the document owner's quota.
#[utoipa::path(
    tag = "documents",
    operation_id = "upload_attachment",
    security(("bearer" = []), ("api_key" = ["documents:write"])),
    params(DocumentPath),
    request_body(content = AttachmentUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored.", body = AttachmentResponse),
        (status = 400, description = "No `file`, several files, an empty file or a type not on the allowlist.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may read but not change the document, or the owner's attachment quota is used up (`quota-exceeded`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document, or one the caller may not read.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over 5 MiB (refused from the declared length, or as soon as the stream passes it).", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart/form-data.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/{id}/attachments")]
pub async fn upload_attachment(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    req: HttpRequest,
    path: web::Path<DocumentPath>,
    payload: web::Payload,
) -> Result<HttpResponse, ProblemError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        return Err(ProblemError::status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_REQUEST_BYTES) {
        return Err(too_large());
    }
    // Who may attach is decided before a byte of the body is read.
    service
        .authorize_attach(&actor, &origin, path.id)
        .await
        .map_err(problem)?;
    let (filename, bytes) = read_file(&req, payload).await?;
    let attachment = service
        .attach(&actor, &origin, path.id, &filename, bytes)
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::CREATED,
        &AttachmentResponse {
            id: attachment.id,
            filename: attachment.filename,
            content_type: attachment.content_type.as_str(),
            size: attachment.size,
        },
    ))
}

/// Download an attachment (anyone who may read the document).
///
/// Always served as a download (`Content-Disposition: attachment`), with `nosniff` and a
/// sandboxing CSP, so a file is never rendered as a page of this origin.
#[utoipa::path(
    tag = "documents",
    operation_id = "download_attachment",
    security(("bearer" = []), ("api_key" = ["documents:read"])),
    params(AttachmentPath),
    responses(
        (status = 200, description = "The bytes, as the type sniffed at upload: PNG, JPEG, PDF, or UTF-8 text.",
         content(("image/png"), ("image/jpeg"), ("application/pdf"), ("text/plain")),
         headers(("Content-Disposition" = String, description = "`attachment; filename=\"…\"`"))),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such document or attachment, or a document the caller may not read.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/{id}/attachments/{attachment_id}")]
pub async fn download_attachment(
    service: web::Data<DocumentService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<AttachmentPath>,
) -> Result<HttpResponse, ProblemError> {
    let (attachment, bytes) = service
        .attachment(&actor, &origin, path.id, path.attachment_id)
        .await
        .map_err(problem)?;
    // The stored name is already reduced to `[A-Za-z0-9._ -]`: nothing to escape in the quotes.
    let disposition = format!("attachment; filename=\"{}\"", attachment.filename);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, attachment.content_type.content_type()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox; frame-ancestors 'none'",
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(bytes))
}
