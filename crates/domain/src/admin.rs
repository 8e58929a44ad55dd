//! The administration use cases: the user list, role, lock and plan changes, and the audit trail.
//!
//! Each use case checks its permission itself, even though the REST route already declared it:
//! GraphQL and other callers reach the same service, and a check in the one place that does the
//! work cannot be forgotten by a new transport. Every change is audited, and a change of role or
//! lock counts from the affected user's very next request (its cached principal is dropped here at
//! once, and on other instances through the database notification).

use std::sync::Arc;

use uuid::Uuid;

use crate::account::AccountService;
use crate::audit::{
    AuditDetail, AuditLog, AuditPage, AuditQuery, AuditReader, AuditValue, EventType,
    NewAuditEvent, Outcome,
};
use crate::auth::event;
use crate::context::{Actor, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::listing;
use crate::policy::{self, Permission};
use crate::session::{SessionLiveness, SessionStore};
use crate::user::{FieldViolation, Plan, Role, UserPage, UserQuery, UserRepository, UserSummary};

/// The audit event types this module writes.
pub mod events {
    /// A user's role changed.
    pub const ROLE_CHANGED: &str = "account.role_changed";
    /// A user's plan changed.
    pub const PLAN_CHANGED: &str = "account.plan_changed";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 2] = [ROLE_CHANGED, PLAN_CHANGED];
}

/// The ports of the admin service.
#[derive(Debug, Clone)]
pub struct AdminPorts {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Sessions (to find the ones whose cached role must go).
    pub sessions: Arc<dyn SessionStore>,
    /// The liveness cache.
    pub liveness: Arc<dyn SessionLiveness>,
    /// Writing the audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// Reading it.
    pub audit_reader: Arc<dyn AuditReader>,
}

/// A user listing as the client asked for it.
#[derive(Debug, Clone, Default)]
pub struct UserListRequest {
    /// Page size.
    pub limit: Option<u32>,
    /// Cursor of the previous page.
    pub cursor: Option<String>,
    /// Search in emails and display names.
    pub q: Option<String>,
}

/// An audit listing as the client asked for it.
#[derive(Debug, Clone, Default)]
pub struct AuditListRequest {
    /// Page size.
    pub limit: Option<u32>,
    /// Cursor of the previous page.
    pub cursor: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events by or about this user.
    pub user_id: Option<Uuid>,
}

/// The changes an administrator asks for (absent: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserAdminPatch {
    /// `user`, `moderator` or `admin`.
    pub role: Option<String>,
    /// Lock or unlock.
    pub locked: Option<bool>,
    /// `free` or `pro`.
    pub plan: Option<String>,
}

/// Why an admin operation failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Field errors.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// The actor lacks the permission.
    #[error("not allowed")]
    Forbidden,
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Encodes an audit cursor: `a1.<id of the last event>`.
#[must_use]
pub fn encode_audit_cursor(before_id: i64) -> String {
    format!("a1.{before_id}")
}

fn decode_audit_cursor(raw: &str) -> Result<i64, FieldViolation> {
    raw.strip_prefix("a1.")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| FieldViolation::new("cursor", "invalid", "The cursor is not valid."))
}

fn parse_role(raw: &str) -> Result<Role, FieldViolation> {
    Role::from_stored(raw).ok_or_else(|| {
        FieldViolation::new("role", "invalid", "Role is `user`, `moderator` or `admin`.")
    })
}

/// Users, roles, locks, plans and the audit trail.
#[derive(Debug, Clone)]
pub struct AdminService {
    ports: AdminPorts,
    accounts: AccountService,
}

impl AdminService {
    /// A service over these ports; locking goes through `accounts` (one implementation of "lock
    /// and end every session").
    #[must_use]
    pub fn new(ports: AdminPorts, accounts: AccountService) -> Self {
        Self { ports, accounts }
    }

    fn require(actor: &Actor, permission: Permission) -> Result<(), AdminError> {
        if policy::allows(actor, permission) {
            Ok(())
        } else {
            Err(AdminError::Forbidden)
        }
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    /// A page of users.
    ///
    /// # Errors
    /// `Forbidden` without `users:read`; `Invalid`; `Unexpected`.
    pub async fn list_users(
        &self,
        actor: &Actor,
        request: &UserListRequest,
    ) -> Result<UserPage, AdminError> {
        Self::require(actor, Permission::UsersRead)?;
        let mut violations = Vec::new();
        let limit = listing::limit(request.limit, &mut violations);
        let after = listing::cursor(request.cursor.as_deref(), &mut violations);
        let q = listing::search(request.q.as_deref(), &mut violations);
        if !violations.is_empty() {
            return Err(AdminError::Invalid(violations));
        }
        let query = UserQuery { limit, after, q };
        Ok(self
            .ports
            .users
            .list(&query)
            .await
            .or_unexpected("user list")?)
    }

    /// Changes a user's role, lock and plan. An administrator cannot change its own role or lock
    /// itself (the last administrator could otherwise lock everyone out).
    ///
    /// # Errors
    /// `Forbidden` without `users:manage`; `Invalid`; `NotFound`; `Unexpected`.
    pub async fn update_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        user_id: Uuid,
        patch: UserAdminPatch,
    ) -> Result<UserSummary, AdminError> {
        Self::require(actor, Permission::UsersManage)?;
        let mut violations = Vec::new();
        let role = patch
            .role
            .as_deref()
            .and_then(|r| parse_role(r).map_err(|v| violations.push(v)).ok());
        let plan = patch.plan.as_deref().and_then(|p| {
            Plan::parse(p)
                .ok_or_else(|| {
                    violations.push(FieldViolation::new(
                        "plan",
                        "invalid",
                        "Plan is `free` or `pro`.",
                    ));
                })
                .ok()
        });
        if user_id == actor.user_id && (patch.role.is_some() || patch.locked == Some(true)) {
            violations.push(FieldViolation::new(
                "id",
                "self_change",
                "Administrators cannot change their own role or lock themselves.",
            ));
        }
        if !violations.is_empty() {
            return Err(AdminError::Invalid(violations));
        }
        let before = self
            .ports
            .users
            .summary(user_id)
            .await
            .or_unexpected("user lookup")?
            .ok_or(AdminError::NotFound)?;

        if let Some(role) = role.filter(|r| *r != before.user.role) {
            self.ports
                .users
                .set_role(user_id, role)
                .await
                .or_unexpected("role change")?;
            self.forget_principal(user_id).await?;
            let detail = AuditDetail::new()
                .with(
                    "from",
                    AuditValue::Text(before.user.role.as_str().to_owned()),
                )
                .and_then(|d| d.with("to", AuditValue::Text(role.as_str().to_owned())))
                .or_unexpected("audit detail")?;
            self.record(
                event(origin, events::ROLE_CHANGED, Outcome::Success)?
                    .with_actor(actor.user_id)
                    .with_subject("user", user_id)
                    .with_detail(detail),
            )
            .await?;
        }
        if let Some(locked) = patch.locked.filter(|l| *l != before.user.locked) {
            self.accounts
                .set_locked(Some(actor), origin, user_id, locked)
                .await
                .map_err(|e| match e {
                    crate::account::AccountError::NotFound => AdminError::NotFound,
                    other => AdminError::Unexpected(Unexpected::new("lock", other)),
                })?;
        }
        if let Some(plan) = plan.filter(|p| *p != before.plan) {
            self.ports
                .users
                .set_plan(user_id, plan)
                .await
                .or_unexpected("plan change")?;
            // The cached principal holds the plan (its daily request quota).
            self.forget_principal(user_id).await?;
            let detail = AuditDetail::new()
                .with("from", AuditValue::Text(before.plan.as_str().to_owned()))
                .and_then(|d| d.with("to", AuditValue::Text(plan.as_str().to_owned())))
                .or_unexpected("audit detail")?;
            self.record(
                event(origin, events::PLAN_CHANGED, Outcome::Success)?
                    .with_actor(actor.user_id)
                    .with_subject("user", user_id)
                    .with_detail(detail),
            )
            .await?;
        }
        self.ports
            .users
            .summary(user_id)
            .await
            .or_unexpected("user lookup")?
            .ok_or(AdminError::NotFound)
    }

    /// Drops this instance's cached principal of every live session of the user, so the new role
    /// or plan counts from its very next request here; other instances hear it from the database
    /// (the trigger of migrations 08 and 19).
    async fn forget_principal(&self, user_id: Uuid) -> Result<(), Unexpected> {
        let sessions = self
            .ports
            .sessions
            .list(user_id, u32::MAX)
            .await
            .or_unexpected("session list")?;
        let ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
        self.ports.liveness.forget(&ids);
        Ok(())
    }

    /// A page of the audit trail, newest first.
    ///
    /// # Errors
    /// `Forbidden` without `audit:read`; `Invalid`; `Unexpected`.
    pub async fn audit_events(
        &self,
        actor: &Actor,
        request: &AuditListRequest,
    ) -> Result<AuditPage, AdminError> {
        Self::require(actor, Permission::AuditRead)?;
        let mut violations = Vec::new();
        let limit = listing::limit(request.limit, &mut violations);
        let before_id = match request.cursor.as_deref() {
            None => None,
            Some(raw) => decode_audit_cursor(raw)
                .map_err(|v| violations.push(v))
                .ok(),
        };
        let event_type = match request.event_type.as_deref() {
            None => None,
            Some(raw) => EventType::parse(raw)
                .map_err(|_| {
                    violations.push(FieldViolation::new(
                        "type",
                        "invalid",
                        "type is dotted lower-case words, e.g. `auth.login_failed`.",
                    ));
                })
                .ok(),
        };
        if !violations.is_empty() {
            return Err(AdminError::Invalid(violations));
        }
        let query = AuditQuery {
            limit,
            before_id,
            event_type,
            user_id: request.user_id,
        };
        Ok(self
            .ports
            .audit_reader
            .list(&query)
            .await
            .or_unexpected("audit list")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn audit_cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_audit_cursor(&encode_audit_cursor(42)).unwrap(), 42);
        for bad in ["", "42", "a1.", "a1.-1", "a1.0", "a1.x", "' OR 1=1--"] {
            assert!(decode_audit_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
