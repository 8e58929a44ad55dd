//! `/api/v1/admin`: users, their role, lock and plan, and the audit trail. Administrators only:
//! each route declares its permission, which only the `admin` role has (others get 403).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, patch, web};
use bulwark_domain::admin::{
    AdminError, AdminService, AuditListRequest, UserAdminPatch, UserListRequest,
    encode_audit_cursor,
};
use bulwark_domain::audit::{AuditPage, AuditRecord};
use bulwark_domain::documents::encode_cursor;
use bulwark_domain::user::{UserPage, UserSummary};
use bulwark_web::ProblemError;
use bulwark_web::identity::{self, Authenticated, ClientOrigin};
use bulwark_web::problem::Problem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::private_json;

/// A user as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "7d3c1a2b-4e5f-4a6b-8c9d-0e1f2a3b4c5d",
    "email": "ada@example.com",
    "display_name": "Ada",
    "role": "user",
    "email_verified": true,
    "locked": false,
    "plan": "free",
    "created_at": "2026-11-28T09:00:00Z"
}))]
pub struct AdminUserResponse {
    /// Id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `user`, `moderator` or `admin`.
    pub role: &'static str,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Whether an administrator locked the account.
    pub locked: bool,
    /// `free` or `pro`.
    pub plan: &'static str,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<UserSummary> for AdminUserResponse {
    fn from(summary: UserSummary) -> Self {
        let user = summary.user;
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.as_str().to_owned(),
            role: user.role.as_str(),
            email_verified: user.email_verified_at.is_some(),
            locked: user.locked,
            plan: summary.plan.as_str(),
            created_at: user.created_at,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserList {
    /// Newest first.
    pub items: Vec<AdminUserResponse>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl From<UserPage> for AdminUserList {
    fn from(page: UserPage) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(AdminUserResponse::from)
                .collect(),
            next_cursor: page.next.as_ref().map(encode_cursor),
        }
    }
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 1042,
    "occurred_at": "2026-11-28T09:00:00Z",
    "type": "auth.login_failed",
    "outcome": "failure",
    "actor_user_id": null,
    "subject_type": "user",
    "subject_id": "7d3c1a2b-4e5f-4a6b-8c9d-0e1f2a3b4c5d",
    "ip": "203.0.113.7",
    "user_agent": "curl/8.5.0",
    "request_id": "3f0d8c1e-8d4b-4a43-9d5e-1f1c2b3a4d5e",
    "detail": {"reason": "wrong_password"}
}))]
pub struct AuditEventResponse {
    /// Position in the trail.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// What (`auth.login`, `document.shared`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Who acted.
    pub actor_user_id: Option<Uuid>,
    /// What kind of thing it was about.
    pub subject_type: Option<String>,
    /// Which one.
    pub subject_id: Option<Uuid>,
    /// From where.
    pub ip: Option<String>,
    /// With which client.
    pub user_agent: Option<String>,
    /// The request id, to find the server log lines.
    pub request_id: Option<String>,
    /// Details (never secrets).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditRecord> for AuditEventResponse {
    fn from(record: AuditRecord) -> Self {
        let (subject_type, subject_id) = record
            .subject
            .map_or((None, None), |(t, id)| (Some(t), Some(id)));
        Self {
            id: record.id,
            occurred_at: record.occurred_at,
            event_type: record.event_type,
            outcome: record.outcome,
            actor_user_id: record.actor_user_id,
            subject_type,
            subject_id,
            ip: record.ip.map(|ip| ip.to_string()),
            user_agent: record.user_agent,
            request_id: record.request_id,
            detail: record.detail,
        }
    }
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    /// Newest first.
    pub items: Vec<AuditEventResponse>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl From<AuditPage> for AuditEventList {
    fn from(page: AuditPage) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(AuditEventResponse::from)
                .collect(),
            next_cursor: page.next_before_id.map(encode_audit_cursor),
        }
    }
}

/// User listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Text to find in emails and display names (literal, case-insensitive).
    pub q: Option<String>,
}

/// Audit listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events by or about this user.
    pub user_id: Option<Uuid>,
}

/// `{role?, locked?, plan?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "moderator", "locked": false, "plan": "pro"}))]
pub struct AdminUserPatch {
    /// `user`, `moderator` or `admin`.
    pub role: Option<String>,
    /// Lock (every session ends at once) or unlock.
    pub locked: Option<bool>,
    /// `free` or `pro`.
    pub plan: Option<String>,
}

/// `/admin/users/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user id.
    pub id: Uuid,
}

fn problem(error: AdminError) -> ProblemError {
    match error {
        AdminError::Invalid(violations) => identity::invalid(violations),
        AdminError::Forbidden => bulwark_web::access::forbidden(),
        AdminError::NotFound => ProblemError::status(StatusCode::NOT_FOUND),
        AdminError::Unexpected(e) => identity::unexpected(e),
    }
}

/// List users (newest first), optionally searching emails and names.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_users",
    security(("bearer" = ["users:read"])),
    params(UserListParams),
    responses(
        (status = 200, description = "A page of users.", body = AdminUserList),
        (status = 400, description = "A bad parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/admin/users")]
pub async fn list_users(
    service: web::Data<AdminService>,
    Authenticated(actor): Authenticated,
    params: web::Query<UserListParams>,
) -> Result<HttpResponse, ProblemError> {
    let UserListParams { limit, cursor, q } = params.into_inner();
    let page = service
        .list_users(&actor, &UserListRequest { limit, cursor, q })
        .await
        .map_err(problem)?;
    Ok(private_json(StatusCode::OK, &AdminUserList::from(page)))
}

/// Change a user's role, lock or plan.
///
/// Each change is audited. A lock ends every session of the user at once; a role change counts
/// from the user's next request. Administrators cannot change their own role or lock themselves.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_update_user",
    security(("bearer" = ["users:manage"])),
    params(UserPath),
    request_body = AdminUserPatch,
    responses(
        (status = 200, description = "The user after the change.", body = AdminUserResponse),
        (status = 400, description = "A bad value, an unknown field, or a change to oneself.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/api/v1/admin/users/{id}")]
pub async fn update_user(
    service: web::Data<AdminService>,
    Authenticated(actor): Authenticated,
    ClientOrigin(origin): ClientOrigin,
    path: web::Path<UserPath>,
    body: web::Json<AdminUserPatch>,
) -> Result<HttpResponse, ProblemError> {
    let AdminUserPatch { role, locked, plan } = body.into_inner();
    let summary = service
        .update_user(
            &actor,
            &origin,
            path.id,
            UserAdminPatch { role, locked, plan },
        )
        .await
        .map_err(problem)?;
    Ok(private_json(
        StatusCode::OK,
        &AdminUserResponse::from(summary),
    ))
}

/// Read the audit trail, newest first, optionally by type or user.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_audit_events",
    security(("bearer" = ["audit:read"])),
    params(AuditListParams),
    responses(
        (status = 200, description = "A page of events.", body = AuditEventList),
        (status = 400, description = "A bad parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator.", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/v1/admin/audit-events")]
pub async fn list_audit_events(
    service: web::Data<AdminService>,
    Authenticated(actor): Authenticated,
    params: web::Query<AuditListParams>,
) -> Result<HttpResponse, ProblemError> {
    let AuditListParams {
        limit,
        cursor,
        event_type,
        user_id,
    } = params.into_inner();
    let page = service
        .audit_events(
            &actor,
            &AuditListRequest {
                limit,
                cursor,
                event_type,
                user_id,
            },
        )
        .await
        .map_err(problem)?;
    Ok(private_json(StatusCode::OK, &AuditEventList::from(page)))
}
