//! Sign-in with an external identity provider: the use case around the [`OAuthProvider`] port.
//!
//! 1. **Start** (`authorize`): the provider adapter makes a fresh `state`, PKCE verifier and (OIDC)
//!    `nonce`; this service makes a random browser binding for a `__Host-` cookie, and stores the
//!    state and the binding as digests, the verifier and nonce sealed, for ten minutes.
//! 2. **Callback**: the row is taken with one atomic statement that needs the state, the cookie and
//!    the provider to match and the row to be fresh (single use; a state stolen from a URL is
//!    useless in another browser). The adapter exchanges the code and validates what it gets.
//! 3. **Account**: an identity is found by (provider, subject), never by email. A new identity
//!    whose email belongs to an existing account is linked automatically only when the provider
//!    asserts the email verified *and* the local email is verified; otherwise the answer is a
//!    conflict, and the owner links the provider while signed in (a step-up operation). A new
//!    identity with a new email creates an account without a password — only when the provider
//!    has verified that email (otherwise the account would squat an address its owner may claim
//!    later: pre-hijacking).
//!
//! Provider failures are one generic answer (502) for the client and a log line for the operator.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::account::{AccountError, AccountService};
use crate::audit::{AuditDetail, AuditLog, AuditValue, NewAuditEvent, Outcome};
use crate::auth::{AuthService, SignIn, event, reason};
use crate::context::{Actor, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::oauth::{OAuthProvider, ProviderError, ProviderIdentity};
use crate::opaque::{OpaqueTokens, TokenKind};
use crate::sealing::Sealer;
use crate::user::{DisplayName, Email, User, UserRepository};

/// The audit event types this module writes.
pub mod events {
    /// A sign-in through a provider.
    pub const SIGNED_IN: &str = "oauth.signed_in";
    /// A new account created from a provider identity.
    pub const REGISTERED: &str = "oauth.registered";
    /// A provider identity linked to an existing account.
    pub const LINKED: &str = "oauth.linked";
    /// A sign-in refused: bad state, refused code, invalid ID token, or an unverified email that
    /// matches an existing account (a takeover attempt, or a user who must link explicitly).
    pub const REFUSED: &str = "oauth.refused";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 4] = [SIGNED_IN, REGISTERED, LINKED, REFUSED];
}

/// How long a sign-in may take between `authorize` and `callback`.
pub const STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// A sign-in in flight, as stored.
pub struct PendingSignIn {
    /// The provider's id.
    pub provider: String,
    /// The `state` (stored as a digest).
    pub state: SecretString,
    /// The cookie value binding it to the browser (stored as a digest).
    pub browser: SecretString,
    /// The PKCE verifier, sealed.
    pub sealed_verifier: String,
    /// The OIDC nonce, sealed.
    pub sealed_nonce: Option<String>,
    /// Set when a signed-in user is linking a provider to their account.
    pub link_user_id: Option<Uuid>,
    /// How long it stays valid.
    pub ttl: Duration,
}

impl fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("provider", &self.provider)
            .field("link_user_id", &self.link_user_id)
            .finish_non_exhaustive()
    }
}

/// A sign-in in flight, as taken back at the callback.
pub struct TakenSignIn {
    /// The PKCE verifier, sealed.
    pub sealed_verifier: String,
    /// The OIDC nonce, sealed.
    pub sealed_nonce: Option<String>,
    /// Set when linking.
    pub link_user_id: Option<Uuid>,
}

impl fmt::Debug for TakenSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakenSignIn")
            .field("link_user_id", &self.link_user_id)
            .finish_non_exhaustive()
    }
}

/// What linking an identity came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked (or already linked to this user).
    Linked,
    /// The identity belongs to another user, or this user has another identity of this provider.
    Conflict,
}

/// The OAuth store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the OAuth store is unavailable")]
pub struct OAuthStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of sign-ins in flight and of linked identities.
#[async_trait]
pub trait OAuthStore: Send + Sync + fmt::Debug {
    /// Stores a sign-in in flight.
    ///
    /// # Errors
    /// [`OAuthStoreError`].
    async fn put_state(&self, pending: PendingSignIn) -> Result<(), OAuthStoreError>;

    /// Takes (deletes and returns) the sign-in with this state, provider and browser cookie, if it
    /// is still fresh; `None` for anything else.
    ///
    /// # Errors
    /// [`OAuthStoreError`].
    async fn take_state(
        &self,
        provider: &str,
        state: &str,
        browser: &str,
    ) -> Result<Option<TakenSignIn>, OAuthStoreError>;

    /// The user an identity belongs to.
    ///
    /// # Errors
    /// [`OAuthStoreError`].
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Uuid>, OAuthStoreError>;

    /// Links an identity to a user.
    ///
    /// # Errors
    /// [`OAuthStoreError`].
    async fn link(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        user_id: Uuid,
    ) -> Result<LinkOutcome, OAuthStoreError>;

    /// Creates an account without a password for a new identity, and links it, in one transaction.
    /// `None` when the email is taken meanwhile.
    ///
    /// # Errors
    /// [`OAuthStoreError`].
    async fn create_user(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        email: &Email,
        display_name: &DisplayName,
    ) -> Result<Option<User>, OAuthStoreError>;
}

/// The start of a sign-in, for the transport: redirect there, set the cookie.
pub struct Started {
    /// The provider's authorization URL.
    pub authorize_url: String,
    /// The value of the `__Host-` cookie that binds the sign-in to this browser.
    pub browser: SecretString,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}

/// What a callback came to.
#[derive(Debug)]
pub enum Finished {
    /// Signed in (an existing account, a linked one, or a new one) — or, for an account with MFA,
    /// the challenge: the second factor guards every way in.
    SignedIn(SignIn),
    /// The provider was linked to the signed-in user who started the sign-in.
    Linked,
}

/// Why a sign-in failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// No such provider is configured.
    #[error("unknown provider")]
    UnknownProvider,
    /// The state is missing, unknown, used, expired, for another provider, or not this browser's.
    #[error("invalid state")]
    InvalidState,
    /// The provider refused the code, or its ID token is invalid.
    #[error("the sign-in was refused")]
    Refused,
    /// The provider is unavailable or answered unusably.
    #[error("the identity provider is unavailable")]
    ProviderUnavailable,
    /// The provider gave no email, and an account needs one.
    #[error("the provider gave no email")]
    NoEmail,
    /// A new account needs an email the provider has verified (see `sign_in`).
    #[error("the provider has not verified the email")]
    UnverifiedEmail,
    /// The email belongs to an account, and the automatic link is not allowed (either side
    /// unverified); or the identity is linked elsewhere.
    #[error("an account with this email exists; sign in and link the provider")]
    Conflict,
    /// The account is locked or deleted.
    #[error("the account cannot sign in")]
    AccountUnavailable,
    /// Linking needs a session with a recent sign-in (step-up).
    #[error(transparent)]
    Account(AccountError),
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<AccountError> for OAuthError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Unexpected(e) => Self::Unexpected(e),
            other => Self::Account(other),
        }
    }
}

/// The ports of the OAuth sign-in service.
#[derive(Debug, Clone)]
pub struct OAuthPorts {
    /// The configured providers, by id.
    pub providers: Arc<HashMap<String, Arc<dyn OAuthProvider>>>,
    /// States and identities.
    pub store: Arc<dyn OAuthStore>,
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Random browser bindings.
    pub tokens: Arc<dyn OpaqueTokens>,
    /// Seals verifiers and nonces.
    pub sealer: Arc<dyn Sealer>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
}

/// OAuth 2.0 / OIDC sign-in and linking.
#[derive(Debug, Clone)]
pub struct OAuthService {
    ports: OAuthPorts,
    auth: AuthService,
    accounts: AccountService,
}

fn verifier_context(state_digest_hint: &str) -> Vec<u8> {
    format!("oauth_states.sealed_verifier:{state_digest_hint}").into_bytes()
}

fn nonce_context(state_digest_hint: &str) -> Vec<u8> {
    format!("oauth_states.sealed_nonce:{state_digest_hint}").into_bytes()
}

impl OAuthService {
    /// A service over these ports; `auth` opens sessions, `accounts` does the step-up of linking.
    #[must_use]
    pub fn new(ports: OAuthPorts, auth: AuthService, accounts: AccountService) -> Self {
        Self {
            ports,
            auth,
            accounts,
        }
    }

    /// The same service with these providers (they are discovered at start-up, after the rest of
    /// the service is built).
    #[must_use]
    pub fn with_providers(mut self, providers: Vec<Arc<dyn OAuthProvider>>) -> Self {
        self.ports.providers = Arc::new(
            providers
                .into_iter()
                .map(|p| (p.id().to_owned(), p))
                .collect(),
        );
        self
    }

    /// The ids of the configured providers.
    #[must_use]
    pub fn provider_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.ports.providers.keys().cloned().collect();
        ids.sort();
        ids
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    async fn refuse(
        &self,
        origin: &Origin,
        provider: &str,
        why: &'static str,
        user_id: Option<Uuid>,
    ) -> Result<(), Unexpected> {
        let detail = reason(why)?
            .with("provider", AuditValue::Text(provider.to_owned()))
            .or_unexpected("audit detail")?;
        let mut refused = event(origin, events::REFUSED, Outcome::Denied)?.with_detail(detail);
        if let Some(user_id) = user_id {
            refused = refused.with_actor(user_id);
        }
        self.record(refused).await
    }

    /// Starts a sign-in with `provider`.
    ///
    /// # Errors
    /// `UnknownProvider`, `Unexpected`.
    pub async fn start(&self, provider: &str) -> Result<Started, OAuthError> {
        self.begin(provider, None).await
    }

    /// Starts linking `provider` to the actor's account: a step-up operation (a session with a
    /// recent sign-in, or the password).
    ///
    /// # Errors
    /// `UnknownProvider`, `Account(SessionRequired | ReauthenticationRequired | WrongPassword |
    /// Throttled)`, `Unexpected`.
    pub async fn start_link(
        &self,
        actor: &Actor,
        origin: &Origin,
        provider: &str,
        password: Option<&SecretString>,
    ) -> Result<Started, OAuthError> {
        if !self.ports.providers.contains_key(provider) {
            return Err(OAuthError::UnknownProvider);
        }
        self.accounts.step_up(actor, origin, password).await?;
        self.begin(provider, Some(actor.user_id)).await
    }

    async fn begin(
        &self,
        provider: &str,
        link_user_id: Option<Uuid>,
    ) -> Result<Started, OAuthError> {
        let adapter = self
            .ports
            .providers
            .get(provider)
            .ok_or(OAuthError::UnknownProvider)?;
        let start = adapter.start().or_unexpected("OAuth state")?;
        let browser = self
            .ports
            .tokens
            .mint(TokenKind::OAuthBrowser)
            .or_unexpected("OAuth browser binding")?
            .secret;
        let hint = context_hint(start.state.expose_secret());
        let sealed_verifier = self
            .ports
            .sealer
            .seal(
                start.pkce_verifier.expose_secret().as_bytes(),
                &verifier_context(&hint),
            )
            .or_unexpected("seal PKCE verifier")?;
        let sealed_nonce = match &start.nonce {
            Some(nonce) => Some(
                self.ports
                    .sealer
                    .seal(nonce.expose_secret().as_bytes(), &nonce_context(&hint))
                    .or_unexpected("seal nonce")?,
            ),
            None => None,
        };
        self.ports
            .store
            .put_state(PendingSignIn {
                provider: provider.to_owned(),
                state: start.state,
                browser: browser.clone(),
                sealed_verifier,
                sealed_nonce,
                link_user_id,
                ttl: STATE_TTL,
            })
            .await
            .or_unexpected("OAuth store")?;
        Ok(Started {
            authorize_url: start.authorize_url,
            browser,
        })
    }

    /// Completes a sign-in (or a link) at the callback.
    ///
    /// # Errors
    /// [`OAuthError`].
    #[tracing::instrument(name = "oauth.finish", skip_all, fields(%provider))]
    pub async fn finish(
        &self,
        origin: &Origin,
        provider: &str,
        code: &str,
        state: &str,
        browser: Option<&str>,
    ) -> Result<Finished, OAuthError> {
        let adapter = self
            .ports
            .providers
            .get(provider)
            .ok_or(OAuthError::UnknownProvider)?
            .clone();
        let taken = match browser {
            Some(browser) if !state.is_empty() && !code.is_empty() => self
                .ports
                .store
                .take_state(provider, state, browser)
                .await
                .or_unexpected("OAuth store")?,
            _ => None,
        };
        let Some(taken) = taken else {
            self.refuse(origin, provider, "invalid_state", None).await?;
            return Err(OAuthError::InvalidState);
        };
        let hint = context_hint(state);
        let verifier = self
            .ports
            .sealer
            .open(&taken.sealed_verifier, &verifier_context(&hint))
            .or_unexpected("open PKCE verifier")?;
        let verifier = SecretString::from(
            String::from_utf8(verifier.expose_secret().to_vec()).or_unexpected("PKCE verifier")?,
        );
        let nonce = match &taken.sealed_nonce {
            Some(sealed) => {
                let opened = self
                    .ports
                    .sealer
                    .open(sealed, &nonce_context(&hint))
                    .or_unexpected("open nonce")?;
                Some(SecretString::from(
                    String::from_utf8(opened.expose_secret().to_vec()).or_unexpected("nonce")?,
                ))
            }
            None => None,
        };
        let identity = match adapter.finish(code, &verifier, nonce.as_ref()).await {
            Ok(identity) => identity,
            Err(ProviderError::Unavailable(e)) => {
                tracing::warn!(error = %e, "identity provider unavailable");
                return Err(OAuthError::ProviderUnavailable);
            }
            Err(ProviderError::Rejected) => {
                self.refuse(origin, provider, "code_rejected", None).await?;
                return Err(OAuthError::Refused);
            }
            Err(ProviderError::InvalidIdToken(e)) => {
                tracing::warn!(error = %e, "invalid ID token");
                self.refuse(origin, provider, "invalid_id_token", None)
                    .await?;
                return Err(OAuthError::Refused);
            }
        };
        match taken.link_user_id {
            Some(user_id) => self.link_to(origin, provider, &identity, user_id).await,
            None => self.sign_in(origin, provider, &identity).await,
        }
    }

    async fn link_to(
        &self,
        origin: &Origin,
        provider: &str,
        identity: &ProviderIdentity,
        user_id: Uuid,
    ) -> Result<Finished, OAuthError> {
        match self
            .ports
            .store
            .link(provider, identity, user_id)
            .await
            .or_unexpected("OAuth store")?
        {
            LinkOutcome::Linked => {
                self.audit_link(origin, provider, user_id, "explicit")
                    .await?;
                Ok(Finished::Linked)
            }
            LinkOutcome::Conflict => {
                self.refuse(origin, provider, "identity_linked_elsewhere", Some(user_id))
                    .await?;
                Err(OAuthError::Conflict)
            }
        }
    }

    async fn audit_link(
        &self,
        origin: &Origin,
        provider: &str,
        user_id: Uuid,
        how: &str,
    ) -> Result<(), Unexpected> {
        let detail = AuditDetail::new()
            .with("provider", AuditValue::Text(provider.to_owned()))
            .and_then(|d| d.with("how", AuditValue::Text(how.to_owned())))
            .or_unexpected("audit detail")?;
        self.record(
            event(origin, events::LINKED, Outcome::Success)?
                .with_actor(user_id)
                .with_detail(detail),
        )
        .await
    }

    async fn sign_in(
        &self,
        origin: &Origin,
        provider: &str,
        identity: &ProviderIdentity,
    ) -> Result<Finished, OAuthError> {
        // Known identity: its user, whatever the email says today.
        if let Some(user_id) = self
            .ports
            .store
            .find_identity(provider, &identity.subject)
            .await
            .or_unexpected("OAuth store")?
        {
            return self.session(origin, provider, user_id).await;
        }
        let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
            self.refuse(origin, provider, "no_email", None).await?;
            return Err(OAuthError::NoEmail);
        };
        if let Some(credentials) = self
            .ports
            .users
            .credentials(&email)
            .await
            .or_unexpected("credentials lookup")?
        {
            // An existing account: linked automatically only when both sides vouch for the email.
            // Otherwise anyone who registers the victim's address at a provider that does not
            // verify emails would walk into the victim's account.
            let local = self
                .ports
                .users
                .find(credentials.user_id)
                .await
                .or_unexpected("user lookup")?;
            let local_verified = local.is_some_and(|u| u.email_verified_at.is_some());
            if !(identity.email_verified && local_verified) {
                self.refuse(
                    origin,
                    provider,
                    "unverified_email_match",
                    Some(credentials.user_id),
                )
                .await?;
                return Err(OAuthError::Conflict);
            }
            match self
                .ports
                .store
                .link(provider, identity, credentials.user_id)
                .await
                .or_unexpected("OAuth store")?
            {
                LinkOutcome::Linked => {
                    self.audit_link(origin, provider, credentials.user_id, "verified_email")
                        .await?;
                }
                LinkOutcome::Conflict => {
                    self.refuse(
                        origin,
                        provider,
                        "identity_linked_elsewhere",
                        Some(credentials.user_id),
                    )
                    .await?;
                    return Err(OAuthError::Conflict);
                }
            }
            return self.session(origin, provider, credentials.user_id).await;
        }
        // A new account, without a password — only for an email the provider has verified. An
        // account created from an unverified claim would squat the address: its real owner, signing
        // up later, would recover the account by a password reset while the squatter's provider
        // identity stayed linked to it (account pre-hijacking).
        if !identity.email_verified {
            self.refuse(origin, provider, "unverified_email", None)
                .await?;
            return Err(OAuthError::UnverifiedEmail);
        }
        let display_name = identity
            .name
            .as_deref()
            .and_then(|n| DisplayName::parse(n).ok())
            .or_else(|| {
                email
                    .as_str()
                    .split('@')
                    .next()
                    .and_then(|local| DisplayName::parse(local).ok())
            })
            .ok_or_else(|| Unexpected::new("display name", "no usable display name"))?;
        let Some(user) = self
            .ports
            .store
            .create_user(provider, identity, &email, &display_name)
            .await
            .or_unexpected("OAuth store")?
        else {
            // Registered by someone else between the lookup and the insert.
            return Err(OAuthError::Conflict);
        };
        let detail = AuditDetail::new()
            .with("provider", AuditValue::Text(provider.to_owned()))
            .or_unexpected("audit detail")?;
        self.record(
            event(origin, events::REGISTERED, Outcome::Success)?
                .with_actor(user.id)
                .with_subject("user", user.id)
                .with_detail(detail),
        )
        .await?;
        self.session(origin, provider, user.id).await
    }

    async fn session(
        &self,
        origin: &Origin,
        provider: &str,
        user_id: Uuid,
    ) -> Result<Finished, OAuthError> {
        let credentials = self
            .ports
            .users
            .credentials_by_id(user_id)
            .await
            .or_unexpected("credentials lookup")?;
        if credentials.is_none_or(|c| c.locked) {
            self.refuse(origin, provider, "account_unavailable", Some(user_id))
                .await?;
            return Err(OAuthError::AccountUnavailable);
        }
        let signed_in = self
            .auth
            .sign_in_verified(origin, user_id, provider)
            .await?;
        let detail = AuditDetail::new()
            .with("provider", AuditValue::Text(provider.to_owned()))
            .or_unexpected("audit detail")?;
        self.record(
            event(origin, events::SIGNED_IN, Outcome::Success)?
                .with_actor(user_id)
                .with_detail(detail),
        )
        .await?;
        Ok(Finished::SignedIn(signed_in))
    }
}

/// A short, non-secret label of a state for the sealing context: the state itself must not be in
/// the context of a value sealed next to its digest, but a context tied to *this* sign-in stops a
/// sealed verifier from being moved to another row.
fn context_hint(state: &str) -> String {
    state.chars().rev().take(8).collect()
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
