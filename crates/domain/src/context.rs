//! Who is asking, and from where: the explicit request context every use case receives.
//!
//! Transports build these once per request (REST from the peer address and headers, GraphQL and
//! WebSocket from their connection) and pass them in. Services never reach for ambient state, which
//! is what makes every authorisation decision and every audit row checkable in one place.

use std::net::IpAddr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::api_key::{Scope, Scopes};
use crate::audit::{EventType, NewAuditEvent, Outcome};
use crate::user::Role;

/// Where a request came from, for the audit trail and for throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client address (the TCP peer, or the right-most untrusted proxy hop).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header as sent (the audit log cuts it to 512 characters).
    pub user_agent: Option<String>,
    /// The request id, to join audit rows with the server log.
    pub request_id: Option<String>,
}

impl Origin {
    /// An audit event of this type and outcome, stamped with this origin.
    #[must_use]
    pub fn event(&self, event_type: EventType, outcome: Outcome) -> NewAuditEvent {
        let event = NewAuditEvent::new(event_type, outcome)
            .with_origin(self.ip, self.user_agent.as_deref());
        match &self.request_id {
            Some(id) => event.with_request_id(id),
            None => event,
        }
    }
}

/// An authenticated caller: a user acting through one session, with the role it has *now* (read
/// with the session on every request, so a demotion or a lock counts from the next request on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The user (`sub`).
    pub user_id: Uuid,
    /// The session the access token belongs to (`sid`).
    pub session_id: Uuid,
    /// The user's role.
    pub role: Role,
    /// When the session signed in (for "recent authentication" rules); for an API key, when the
    /// key was created (never recent enough for a step-up: API keys cannot step up).
    pub authenticated_at: OffsetDateTime,
    /// How the caller authenticated.
    pub credential: Credential,
    /// The account's role is higher than `role`, but `REQUIRE_MFA_FOR_ADMINS` withholds it until
    /// the account turns MFA on (then an admin route says so rather than a bare 403).
    pub role_withheld: bool,
    /// The user's plan: which daily request quota the request counts toward (as of the session's
    /// cached principal, which a plan change clears).
    pub plan: crate::user::Plan,
}

/// How a caller authenticated: with a session's access token, or with an API key and its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An access token of a live session: everything the role allows.
    Session,
    /// An API key: only its scopes (within the role), and never credential management. The
    /// actor's `session_id` is then the key's id.
    ApiKey {
        /// What the key may do.
        scopes: Scopes,
    },
}

impl Actor {
    /// Whether the actor may use `scope`: a session may do anything its role allows, an API key
    /// only what its scopes name.
    #[must_use]
    pub const fn has_scope(&self, scope: Scope) -> bool {
        match self.credential {
            Credential::Session => true,
            Credential::ApiKey { scopes } => scopes.contains(scope),
        }
    }

    /// Whether the actor authenticated with a session (what managing credentials, MFA, passwords
    /// and sessions requires).
    #[must_use]
    pub const fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session)
    }
}
