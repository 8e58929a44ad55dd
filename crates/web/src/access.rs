//! Deny by default: every route's access class, enforced before its handler runs.
//!
//! Each REST operation declares who may call it in its OpenAPI `security` requirement — the same
//! declaration clients read:
//! - `security(())` (an empty requirement): **public**;
//! - `security(("bearer" = []))`: **authenticated** — a valid access token of a live session;
//! - `security(("bearer" = ["users:manage"]))`: **permission** — authenticated, and the caller's
//!   role grants that [`Permission`].
//!
//! A second, alternative requirement `("api_key" = ["documents:read"])` says that an API key with
//! that scope may call the route too. Without it, an API key is refused with 403 (`session-required`):
//! keys never reach credential management, sessions, MFA, passwords or admin routes, because those
//! routes do not declare them — deny by default again.
//!
//! [`enforce`] looks the matched route up in the [`AccessTable`] built from those declarations
//! and authenticates (401) or authorises (403) before the handler is called; the handler's
//! [`Authenticated`](crate::identity::Authenticated) extractor then reads the actor this middleware
//! stored. A route that declares nothing is treated as authenticated (and a test fails the build
//! for it), so forgetting a declaration can never make a route public. A handler that forgets the
//! extractor is still behind the check.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use bulwark_domain::api_key::Scope;
use bulwark_domain::api_keys::{ApiKeyRejection, ApiKeyService};
use bulwark_domain::audit::{AuditDetail, AuditLog, AuditValue, EventType, Outcome};
use bulwark_domain::auth::{AuthService, AuthenticationError};
use bulwark_domain::context::Actor;
use bulwark_domain::policy::{self, Permission};

use crate::identity::{bearer_token, session_required, unauthenticated, unexpected};
use crate::problem::{Problem, ProblemError};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// Anyone; a bearer credential, when sent, must be valid and makes the caller an actor
    /// (GraphQL: its fields decide per field). Declared as `security((), ("bearer" = []))`.
    Optional,
    /// An authenticated caller whose role grants the permission.
    Permission(Permission),
}

/// The access class of every (method, route pattern).
#[derive(Debug, Clone, Default)]
pub struct AccessTable {
    routes: Arc<HashMap<String, HashMap<Method, Access>>>,
    /// The scope an API key needs on a route; routes not listed refuse API keys.
    api_keys: Arc<HashMap<String, HashMap<Method, Scope>>>,
    /// Routes under these prefixes are public: pages outside the API (the development docs UI)
    /// and the test suite's probe routes.
    public_prefixes: Vec<&'static str>,
}

impl AccessTable {
    /// A table from `(pattern, method, access)` entries.
    #[must_use]
    pub fn new(entries: impl IntoIterator<Item = (String, Method, Access)>) -> Self {
        let mut routes: HashMap<String, HashMap<Method, Access>> = HashMap::new();
        for (pattern, method, access) in entries {
            routes.entry(pattern).or_default().insert(method, access);
        }
        Self {
            routes: Arc::new(routes),
            api_keys: Arc::default(),
            public_prefixes: Vec::new(),
        }
    }

    /// Declares which routes accept an API key, and with which scope.
    #[must_use]
    pub fn with_api_key_scopes(
        mut self,
        entries: impl IntoIterator<Item = (String, Method, Scope)>,
    ) -> Self {
        let mut api_keys: HashMap<String, HashMap<Method, Scope>> = HashMap::new();
        for (pattern, method, scope) in entries {
            api_keys.entry(pattern).or_default().insert(method, scope);
        }
        self.api_keys = Arc::new(api_keys);
        self
    }

    /// The scope an API key needs on this route; `None`: API keys are refused here.
    #[must_use]
    pub fn api_key_scope(&self, method: &Method, pattern: &str) -> Option<Scope> {
        self.api_keys.get(pattern)?.get(method).copied()
    }

    /// Every route that accepts API keys, with its scope (for tests and documentation).
    pub fn api_key_entries(&self) -> impl Iterator<Item = (&str, &Method, Scope)> {
        self.api_keys.iter().flat_map(|(pattern, methods)| {
            methods
                .iter()
                .map(move |(method, scope)| (pattern.as_str(), method, *scope))
        })
    }

    /// Makes every route under `prefix` public (the docs UI, the test suite's probe routes).
    #[must_use]
    pub fn with_public_prefix(mut self, prefix: &'static str) -> Self {
        self.public_prefixes.push(prefix);
        self
    }

    /// What a request to `pattern` (the route actix matched) with `method` needs. `None` when the
    /// pattern is declared but not for this method: the router answers 405 without running
    /// anything. An undeclared pattern needs authentication (deny by default).
    #[must_use]
    pub fn access(&self, method: &Method, pattern: &str) -> Option<Access> {
        if self.public_prefixes.iter().any(|p| pattern.starts_with(p)) {
            return Some(Access::Public);
        }
        match self.routes.get(pattern) {
            Some(methods) => methods.get(method).copied(),
            None => Some(Access::Authenticated),
        }
    }

    /// Every declared entry (for tests and documentation).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Method, Access)> {
        self.routes.iter().flat_map(|(pattern, methods)| {
            methods
                .iter()
                .map(move |(method, access)| (pattern.as_str(), method, *access))
        })
    }
}

/// 403 for an authenticated caller whose role does not grant the route's permission.
#[must_use]
pub fn forbidden() -> ProblemError {
    ProblemError::new(Problem::new(
        StatusCode::FORBIDDEN,
        crate::problem::types::FORBIDDEN,
        "Forbidden",
        "You are not allowed to do this.",
    ))
}

/// The middleware: authenticate and authorise per the route's declared access. A refusal is an
/// ordinary error *response* (not an `Err`), so it keeps its headers (`WWW-Authenticate`) and the
/// problem middleware renders it like any other.
///
/// # Errors
/// Only what the inner service returns.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match check(&req).await {
        Ok(Some(actor)) => {
            req.extensions_mut().insert(actor);
        }
        Ok(None) => {}
        Err(refusal) => return Ok(req.error_response(refusal).map_into_right_body()),
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The actor the route needs (`None` for a public or unmatched route), or the refusal.
async fn check(req: &ServiceRequest) -> Result<Option<Actor>, ProblemError> {
    // No matched route: the router answers 404 (or 405) and nothing runs.
    let Some(pattern) = crate::routing::route_pattern(req.request()) else {
        return Ok(None);
    };
    let Some(table) = req.app_data::<web::Data<AccessTable>>() else {
        return Err(ProblemError::internal("the access table is not registered"));
    };
    let access = match table.access(req.method(), &pattern) {
        None | Some(Access::Public) => return Ok(None),
        Some(access) => access,
    };
    let Some(token) = bearer_token(req.request()) else {
        if access == Access::Optional
            && !req
                .headers()
                .contains_key(actix_web::http::header::AUTHORIZATION)
        {
            return Ok(None);
        }
        tracing::debug!("no usable bearer token");
        return Err(unauthenticated());
    };
    let actor = if ApiKeyService::looks_like_key(token) {
        let actor = authenticate_key(req, token).await?;
        // An API key may call only the routes that declare its scope.
        let Some(scope) = table.api_key_scope(req.method(), &pattern) else {
            tracing::warn!(user_id = %actor.user_id, route = %pattern, "API key on a session-only route");
            record_denial(req, &actor, "session", &pattern).await?;
            return Err(session_required());
        };
        if !actor.has_scope(scope) {
            tracing::warn!(user_id = %actor.user_id, scope = scope.as_str(), route = %pattern, "API key without the scope");
            record_denial(req, &actor, scope.as_str(), &pattern).await?;
            return Err(forbidden());
        }
        actor
    } else {
        authenticate_session(req, token).await?
    };
    if let Access::Permission(permission) = access
        && !policy::allows(&actor, permission)
    {
        tracing::warn!(
            user_id = %actor.user_id,
            role = actor.role.as_str(),
            permission = permission.as_str(),
            route = %pattern,
            "permission denied"
        );
        record_denial(req, &actor, permission.as_str(), &pattern).await?;
        if actor.role_withheld {
            return Err(ProblemError::new(Problem::new(
                StatusCode::FORBIDDEN,
                crate::problem::types::MFA_REQUIRED,
                "MFA required",
                "Your role needs a second factor: turn on MFA (/api/v1/auth/mfa/totp/setup) first.",
            )));
        }
        return Err(forbidden());
    }
    Ok(Some(actor))
}

/// The actor of a session's access token, or the 401.
async fn authenticate_session(req: &ServiceRequest, token: &str) -> Result<Actor, ProblemError> {
    let Some(service) = req.app_data::<web::Data<AuthService>>() else {
        return Err(ProblemError::internal("the auth service is not registered"));
    };
    match service.authenticate(token).await {
        Ok(actor) => Ok(actor),
        Err(AuthenticationError::Unexpected(e)) => Err(unexpected(e)),
        Err(refused) => {
            tracing::info!(reason = %refused, "access token refused");
            Err(unauthenticated())
        }
    }
}

/// The actor of an API key, or the 401 (unknown, revoked, expired, or its owner cannot act: one
/// answer for all).
async fn authenticate_key(req: &ServiceRequest, token: &str) -> Result<Actor, ProblemError> {
    let Some(service) = req.app_data::<web::Data<ApiKeyService>>() else {
        return Err(ProblemError::internal(
            "the API key service is not registered",
        ));
    };
    match service.authenticate(token).await {
        Ok(actor) => Ok(actor),
        Err(ApiKeyRejection::Unexpected(e)) => Err(unexpected(e)),
        Err(refused) => {
            tracing::info!(reason = %refused, "API key refused");
            Err(unauthenticated())
        }
    }
}

/// The audit event of a refused function-level call (ASVS 16.3.2).
pub const DENIED_EVENT: &str = bulwark_domain::abuse::AUTHZ_DENIED;

/// Writes the audit row of a refusal. Failing to write it fails the request (no fail-open).
async fn record_denial(
    req: &ServiceRequest,
    actor: &Actor,
    required: &str,
    pattern: &str,
) -> Result<(), ProblemError> {
    let Some(audit) = req.app_data::<web::Data<dyn AuditLog>>() else {
        return Err(ProblemError::internal("the audit log is not registered"));
    };
    let origin = crate::identity::ClientOrigin::of(req.request());
    let event_type = EventType::parse(DENIED_EVENT).map_err(ProblemError::internal)?;
    let detail = AuditDetail::new()
        .with("permission", AuditValue::Text(required.to_owned()))
        .and_then(|d| {
            d.with(
                "route",
                AuditValue::Text(format!("{} {pattern}", req.method())),
            )
        })
        .map_err(ProblemError::internal)?;
    audit
        .record(
            origin
                .event(event_type, Outcome::Denied)
                .with_actor(actor.user_id)
                .with_detail(detail),
        )
        .await
        .map_err(|e| {
            crate::identity::unexpected(bulwark_domain::error::Unexpected::new("audit", e))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_denial_event_type_is_well_formed() {
        assert!(EventType::parse(DENIED_EVENT).is_ok());
    }

    #[test]
    fn declared_routes_answer_their_class_and_undeclared_ones_need_authentication() {
        let table = AccessTable::new([
            ("/health/live".to_owned(), Method::GET, Access::Public),
            (
                "/api/v1/admin/users".to_owned(),
                Method::GET,
                Access::Permission(Permission::UsersRead),
            ),
        ]);
        assert_eq!(
            table.access(&Method::GET, "/health/live"),
            Some(Access::Public)
        );
        assert_eq!(
            table.access(&Method::GET, "/api/v1/admin/users"),
            Some(Access::Permission(Permission::UsersRead))
        );
        // Declared path, other method: the router's 405, nothing runs.
        assert_eq!(table.access(&Method::DELETE, "/health/live"), None);
        // Not declared at all: deny by default.
        assert_eq!(
            table.access(&Method::GET, "/forgotten"),
            Some(Access::Authenticated)
        );
    }
}
