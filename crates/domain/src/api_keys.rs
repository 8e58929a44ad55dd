//! The API-key use cases: create (shown once), list, revoke — all from a session only — and turn
//! a presented key into an [`Actor`].
//!
//! Creating a key is a step-up operation: a key outlives the session that made it, so minting one
//! needs a sign-in within the last ten minutes or the password (see [`AccountService::step_up`]).
//! Authentication reads the key's row on every request (one indexed lookup by prefix): revoking a
//! key, locking or deleting its owner, or the key's expiry counts from the next request, and the
//! key acts with its owner's role *now*.

use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::{AccountError, AccountService};
use crate::api_key::{
    ApiKey, ApiKeyRepository, ApiKeyTokens, CreateApiKeyError, KeyName, NewApiKey, parse_scopes,
};
use crate::audit::{AuditDetail, AuditLog, AuditValue, NewAuditEvent, Outcome};
use crate::auth::event;
use crate::context::{Actor, Credential, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::quota::{PlanLimits, QuotaKind};
use crate::user::FieldViolation;

/// The audit event types this module writes.
pub mod events {
    /// A key was created.
    pub const CREATED: &str = "api_key.created";
    /// A key was revoked.
    pub const REVOKED: &str = "api_key.revoked";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 2] = [CREATED, REVOKED];
}

/// A key as the client asked for it.
#[derive(Debug, Default)]
pub struct ApiKeyInput {
    /// A label.
    pub name: String,
    /// Scopes (`documents:read`, …).
    pub scopes: Vec<String>,
    /// When it stops working (in the future), if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// The password, when the sign-in is older than the step-up window.
    pub password: Option<SecretString>,
}

/// A key just created, with the key itself — the only time it is shown.
pub struct CreatedApiKey {
    /// The key's record.
    pub api_key: ApiKey,
    /// `bwk_<prefix>_<secret>`.
    pub key: SecretString,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("api_key", &self.api_key)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// Why an API-key operation failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Field errors, every one of them.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// No such key of the caller's.
    #[error("no such API key")]
    NotFound,
    /// The owner's plan allows no more keys.
    #[error("quota exceeded")]
    QuotaExceeded(QuotaKind),
    /// The step-up check failed (API key caller, stale sign-in, wrong password, throttled).
    #[error(transparent)]
    Account(AccountError),
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<AccountError> for ApiKeyError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Unexpected(e) => Self::Unexpected(e),
            other => Self::Account(other),
        }
    }
}

/// Why a presented key authenticates nobody. One answer for all of them at the edge (401).
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyRejection {
    /// Not a key's shape, unknown prefix, or wrong secret.
    #[error("unknown API key")]
    Unknown,
    /// Past its expiry.
    #[error("expired API key")]
    Expired,
    /// Its owner is locked or deleted.
    #[error("the key's owner cannot act")]
    OwnerInactive,
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// The ports of the API-key service.
#[derive(Debug, Clone)]
pub struct ApiKeyPorts {
    /// Keys.
    pub keys: Arc<dyn ApiKeyRepository>,
    /// Minting and recognising keys.
    pub tokens: Arc<dyn ApiKeyTokens>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// Quotas by plan.
    pub limits: PlanLimits,
}

/// API keys: create, list, revoke, authenticate.
#[derive(Debug, Clone)]
pub struct ApiKeyService {
    ports: ApiKeyPorts,
    accounts: AccountService,
    require_mfa_for_admins: bool,
}

impl ApiKeyService {
    /// A service over these ports; `accounts` does the step-up check.
    #[must_use]
    pub fn new(ports: ApiKeyPorts, accounts: AccountService) -> Self {
        Self {
            ports,
            accounts,
            require_mfa_for_admins: false,
        }
    }

    /// The same service with `REQUIRE_MFA_FOR_ADMINS` applied to keys too.
    #[must_use]
    pub fn requiring_mfa_for_admins(mut self, required: bool) -> Self {
        self.require_mfa_for_admins = required;
        self
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    fn session_only(actor: &Actor) -> Result<(), ApiKeyError> {
        if actor.is_session() {
            Ok(())
        } else {
            Err(ApiKeyError::Account(AccountError::SessionRequired))
        }
    }

    /// Creates a key for the actor (a session with a recent sign-in or the password).
    ///
    /// # Errors
    /// `Account(SessionRequired | ReauthenticationRequired | WrongPassword | Throttled)`,
    /// `Invalid` listing every bad field, `QuotaExceeded`, `Unexpected`.
    pub async fn create(
        &self,
        actor: &Actor,
        origin: &Origin,
        input: ApiKeyInput,
    ) -> Result<CreatedApiKey, ApiKeyError> {
        Self::session_only(actor)?;
        let name = KeyName::parse(&input.name);
        let scopes = parse_scopes(&input.scopes);
        let expiry = match input.expires_at {
            Some(at) if at <= OffsetDateTime::now_utc() => Err(FieldViolation::new(
                "expires_at",
                "in_the_past",
                "An expiry must be in the future.",
            )),
            other => Ok(other),
        };
        let (Ok(name), Ok(scopes), Ok(expires_at)) = (&name, &scopes, &expiry) else {
            let violations = [name.err(), scopes.err(), expiry.err()]
                .into_iter()
                .flatten()
                .collect();
            return Err(ApiKeyError::Invalid(violations));
        };
        self.accounts
            .step_up(actor, origin, input.password.as_ref())
            .await?;
        let minted = self.ports.tokens.mint().or_unexpected("API key")?;
        let api_key = self
            .ports
            .keys
            .create(
                NewApiKey {
                    owner_id: actor.user_id,
                    name: name.clone(),
                    prefix: minted.prefix,
                    digest: minted.digest,
                    scopes: *scopes,
                    expires_at: *expires_at,
                },
                &self.ports.limits,
            )
            .await
            .map_err(|e| match e {
                CreateApiKeyError::QuotaExceeded => ApiKeyError::QuotaExceeded(QuotaKind::ApiKeys),
                CreateApiKeyError::Store(e) => Unexpected::new("API key create", e).into(),
            })?;
        let scope_list = api_key
            .scopes
            .to_vec()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let detail = AuditDetail::new()
            .with("prefix", AuditValue::Text(api_key.prefix.clone()))
            .and_then(|d| d.with("scopes", AuditValue::Text(scope_list)))
            .or_unexpected("audit detail")?;
        self.record(
            event(origin, events::CREATED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("api_key", api_key.id)
                .with_detail(detail),
        )
        .await?;
        Ok(CreatedApiKey {
            api_key,
            key: minted.key,
        })
    }

    /// The actor's keys (a session only).
    ///
    /// # Errors
    /// `Account(SessionRequired)`, `Unexpected`.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<ApiKey>, ApiKeyError> {
        Self::session_only(actor)?;
        Ok(self
            .ports
            .keys
            .list(actor.user_id)
            .await
            .or_unexpected("API key list")?)
    }

    /// Revokes one of the actor's keys (a session only); it stops working at once.
    ///
    /// # Errors
    /// `Account(SessionRequired)`, `NotFound` (also for another user's key), `Unexpected`.
    pub async fn revoke(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(), ApiKeyError> {
        Self::session_only(actor)?;
        if !self
            .ports
            .keys
            .delete(actor.user_id, id)
            .await
            .or_unexpected("API key delete")?
        {
            return Err(ApiKeyError::NotFound);
        }
        self.record(
            event(origin, events::REVOKED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("api_key", id),
        )
        .await?;
        Ok(())
    }

    /// Whether a bearer credential is an API key (by its prefix) rather than an access token.
    #[must_use]
    pub fn looks_like_key(bearer: &str) -> bool {
        bearer.starts_with(crate::api_key::KEY_PREFIX)
    }

    /// The actor a presented key acts as: its owner, with the owner's current role, limited to the
    /// key's scopes. The actor's `session_id` is the key's id.
    ///
    /// # Errors
    /// [`ApiKeyRejection`].
    pub async fn authenticate(&self, presented: &str) -> Result<Actor, ApiKeyRejection> {
        let Some((prefix, digest)) = self.ports.tokens.recognise(presented) else {
            return Err(ApiKeyRejection::Unknown);
        };
        let Some(stored) = self
            .ports
            .keys
            .find_by_prefix(&prefix)
            .await
            .or_unexpected("API key lookup")?
        else {
            return Err(ApiKeyRejection::Unknown);
        };
        if !self.ports.tokens.same(&stored.digest, &digest) {
            return Err(ApiKeyRejection::Unknown);
        }
        if stored
            .expires_at
            .is_some_and(|at| at <= OffsetDateTime::now_utc())
        {
            return Err(ApiKeyRejection::Expired);
        }
        if !stored.owner_active {
            return Err(ApiKeyRejection::OwnerInactive);
        }
        // Recorded to the minute: a busy key costs no write (and no round trip) on most requests.
        let recently_used = stored
            .last_used_at
            .is_some_and(|at| OffsetDateTime::now_utc() - at < time::Duration::minutes(1));
        if !recently_used && let Err(e) = self.ports.keys.touch(stored.id).await {
            // Bookkeeping: a failure to note the use must not refuse a valid key.
            tracing::warn!(error = ?e, key_id = %stored.id, "could not record an API key's use");
        }
        let (role, role_withheld) = crate::auth::effective_role(
            stored.owner_role,
            stored.owner_mfa_enabled,
            self.require_mfa_for_admins,
        );
        Ok(Actor {
            user_id: stored.owner_id,
            session_id: stored.id,
            role,
            authenticated_at: stored.created_at,
            credential: Credential::ApiKey {
                scopes: stored.scopes,
            },
            role_withheld,
            plan: stored.owner_plan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventType;

    #[test]
    fn every_audit_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }
}
