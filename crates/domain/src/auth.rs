//! Signing in and staying signed in: login, refresh, logout, session control, and turning a bearer
//! token into an [`Actor`].
//!
//! The order of the login steps is the security design, so it is spelled out here:
//!
//! 1. An over-long password is refused before anything else (it is never hashed).
//! 2. The throttle is asked first, per submitted email *and* per client address. A blocked key is
//!    answered 429 at once: no lookup, no hash — a flood costs the service nothing.
//! 3. The account is looked up; an unknown email, an email that does not even parse, and an account
//!    without a password all verify against the hasher's dummy hash, so every failure costs one
//!    argon2 verification, the same as a wrong password.
//! 4. Every failure — unknown account, wrong password, locked account — is the same
//!    [`LoginError::InvalidCredentials`] and counts against the same throttle keys. Only the audit
//!    row says which it was.
//! 5. Success re-hashes the password when the parameters rose, clears the account's throttle, opens
//!    a session and issues the token pair.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use uuid::Uuid;

use crate::audit::{AuditDetail, AuditLog, AuditValue, EventType, NewAuditEvent, Outcome};
use crate::context::{Actor, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::mfa::{MfaProof, SecondFactor};
use crate::opaque::{OpaqueTokens, TokenKind};
use crate::password::{Password, PasswordHasher, PasswordPolicy, Verification, normalize};
use crate::session::{
    NewSession, RefreshTokenHash, RevocationReason, Rotation, SessionInfo, SessionLiveness,
    SessionPolicy, SessionStore,
};
use crate::throttle::{LoginThrottle, ThrottleKey, ThrottleKeys, ThrottlePolicy};
use crate::token::{AccessTokens, TokenRejection};
use crate::user::{Email, FieldViolation, Role, UserRepository};

/// The audit event types this module writes.
pub mod events {
    /// A successful sign-in.
    pub const LOGIN: &str = "auth.login";
    /// A failed sign-in; `detail.reason` says why (internal only).
    pub const LOGIN_FAILED: &str = "auth.login_failed";
    /// A throttle key reached its lock.
    pub const LOCKOUT: &str = "auth.lockout";
    /// A refresh token was exchanged.
    pub const REFRESH: &str = "auth.refresh";
    /// A rotated refresh token was presented again: the session is revoked.
    pub const REFRESH_REUSE: &str = "auth.refresh_reuse";
    /// A session ended by logout.
    pub const LOGOUT: &str = "auth.logout";
    /// Every session of a user ended by logout-all.
    pub const LOGOUT_ALL: &str = "auth.logout_all";
    /// One session revoked from the session list.
    pub const SESSION_REVOKED: &str = "auth.session_revoked";
    /// A correct password of an MFA account: a challenge was handed out instead of a session.
    pub const MFA_CHALLENGED: &str = "auth.mfa_challenged";
    /// A second factor was refused (wrong, replayed or spent code; dead challenge).
    pub const MFA_FAILED: &str = "auth.mfa_failed";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 10] = [
        MFA_CHALLENGED,
        MFA_FAILED,
        LOGIN,
        LOGIN_FAILED,
        LOCKOUT,
        REFRESH,
        REFRESH_REUSE,
        LOGOUT,
        LOGOUT_ALL,
        SESSION_REVOKED,
    ];
}

/// Most sessions listed for one user (the list is not paginated: a user with more live sessions
/// than this should revoke them all, and sees the most recently used).
pub const MAX_LISTED_SESSIONS: u32 = 100;

/// The ports the authentication service uses.
#[derive(Debug, Clone)]
pub struct AuthPorts {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// argon2id.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// The cached liveness check.
    pub liveness: Arc<dyn SessionLiveness>,
    /// Access tokens (JWT).
    pub access_tokens: Arc<dyn AccessTokens>,
    /// Refresh tokens.
    pub opaque_tokens: Arc<dyn OpaqueTokens>,
    /// Failure counts.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Throttle key derivation.
    pub throttle_keys: Arc<dyn ThrottleKeys>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// The second factor of accounts that have one.
    pub second_factor: Arc<dyn SecondFactor>,
}

/// The configurable rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthRules {
    /// Password lengths (only `max_chars` matters at sign-in).
    pub password: PasswordPolicy,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Throttle per submitted email.
    pub account_throttle: ThrottlePolicy,
    /// Throttle per client address ([`ThrottlePolicy::per_address`] by default).
    pub address_throttle: AddressThrottle,
    /// Administrators act as administrators only with MFA on (`REQUIRE_MFA_FOR_ADMINS`).
    pub require_mfa_for_admins: bool,
}

/// The per-address throttle policy (a newtype so that `Default` gives the lenient one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressThrottle(pub ThrottlePolicy);

impl Default for AddressThrottle {
    fn default() -> Self {
        Self(ThrottlePolicy::per_address())
    }
}

/// What a successful sign-in or refresh hands the client.
pub struct TokenPair {
    /// The access token (a JWT).
    pub access_token: SecretString,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The refresh token (opaque, single use).
    pub refresh_token: SecretString,
    /// The session both belong to.
    pub session_id: Uuid,
    /// Whose.
    pub user_id: Uuid,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("session_id", &self.session_id)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The role an account acts with: its own, except that with `require_mfa` an administrator without
/// MFA acts as a plain user (and the second value says a role was withheld).
#[must_use]
pub fn effective_role(role: Role, mfa_enabled: bool, require_mfa: bool) -> (Role, bool) {
    if require_mfa && role == Role::Admin && !mfa_enabled {
        (Role::User, true)
    } else {
        (role, false)
    }
}

/// What a correct password leads to.
#[derive(Debug)]
pub enum SignIn {
    /// A session.
    Session(TokenPair),
    /// The account has MFA: present a code with this single-purpose token (`/auth/mfa/verify`).
    MfaRequired {
        /// The challenge token (`bwmf_…`), valid for minutes and a few attempts.
        mfa_token: SecretString,
    },
}

/// Why the second step of an MFA sign-in failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum MfaSignInError {
    /// The challenge token is unknown, expired, used, or out of attempts.
    #[error("invalid or expired MFA token")]
    InvalidToken,
    /// The code is wrong, replayed, or a spent recovery code.
    #[error("invalid code")]
    InvalidCode,
    /// Too many failures for this account: retry after the duration.
    #[error("too many failed attempts")]
    Throttled {
        /// How long until a new attempt is considered.
        retry_after: Duration,
    },
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Why sign-in failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password, locked or deleted account: always this, never which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures for this email or this address: retry after the duration.
    #[error("too many failed sign-in attempts")]
    Throttled {
        /// How long until a new attempt is considered.
        retry_after: Duration,
    },
    /// The input cannot be a password (too long); nothing was hashed.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, used, expired or revoked refresh token — or a reused one, which also ended its
    /// session.
    #[error("invalid refresh token")]
    InvalidToken,
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    /// The token failed verification (the reason is for the log).
    #[error("access token rejected: {0}")]
    Rejected(TokenRejection),
    /// The token is valid but its session was revoked or expired.
    #[error("the session has ended")]
    SessionEnded,
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// No live session with this id belongs to the caller (another user's looks the same).
    #[error("no such session")]
    NotFound,
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// One entry of the caller's session list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    /// The session.
    pub session: SessionInfo,
    /// Whether it is the session of the token that asked.
    pub current: bool,
}

/// Sign-in, refresh, logout and session control.
#[derive(Debug, Clone)]
pub struct AuthService {
    ports: AuthPorts,
    rules: AuthRules,
}

/// Parses an audit event type from one of the constants in [`events`] (and the account module's).
pub(crate) fn event(
    origin: &Origin,
    name: &'static str,
    outcome: Outcome,
) -> Result<NewAuditEvent, Unexpected> {
    let event_type = EventType::parse(name).or_unexpected("audit event type")?;
    Ok(origin.event(event_type, outcome))
}

/// A detail with one `reason`.
pub(crate) fn reason(reason: &'static str) -> Result<AuditDetail, Unexpected> {
    AuditDetail::new()
        .with("reason", AuditValue::Text(reason.to_owned()))
        .or_unexpected("audit detail")
}

impl AuthService {
    /// A service over these ports and rules.
    #[must_use]
    pub fn new(ports: AuthPorts, rules: AuthRules) -> Self {
        Self { ports, rules }
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    /// Signs in with email and password; see the module docs for the order of the steps.
    ///
    /// # Errors
    /// [`LoginError`]: `Invalid` for an over-long password, `Throttled` while a key is blocked,
    /// `InvalidCredentials` for every failure, `Unexpected` when a port fails.
    #[tracing::instrument(name = "auth.login", skip_all)]
    pub async fn login(
        &self,
        origin: &Origin,
        submitted_email: &str,
        password: SecretString,
    ) -> Result<SignIn, LoginError> {
        if let Some(too_long) = self.rules.password.refuse_overlong("password", &password) {
            return Err(LoginError::Invalid(vec![too_long]));
        }

        let account_key = self.ports.throttle_keys.account(submitted_email);
        let address_key = origin.ip.map(|ip| self.ports.throttle_keys.address(ip));
        if let Some(retry_after) = self.blocked_for(account_key, address_key).await? {
            return Err(LoginError::Throttled { retry_after });
        }

        let email = Email::parse(submitted_email).ok();
        let credentials = match &email {
            Some(email) => self
                .ports
                .users
                .credentials(email)
                .await
                .or_unexpected("credentials lookup")?,
            None => None,
        };
        let stored = credentials.as_ref().and_then(|c| c.password_hash.as_ref());
        let verification = self
            .ports
            .hasher
            .verify(&normalize(&password), stored)
            .await
            .or_unexpected("password verification")?;

        let failure = match (&credentials, verification) {
            (None, _) => Some("unknown_account"),
            (Some(c), _) if c.password_hash.is_none() => Some("no_password"),
            (Some(_), Verification::Mismatch) => Some("wrong_password"),
            (Some(c), Verification::Match { .. }) if c.locked => Some("account_locked"),
            (Some(_), Verification::Match { .. }) => None,
        };
        let (Some(credentials), None) = (&credentials, failure) else {
            let user_id = credentials.as_ref().map(|c| c.user_id);
            let why = failure.unwrap_or("unknown_account");
            self.fail_login(origin, user_id, why, account_key, address_key)
                .await?;
            return Err(LoginError::InvalidCredentials);
        };

        let user_id = credentials.user_id;
        if let Verification::Match { needs_rehash: true } = verification {
            self.rehash(user_id, &password).await;
        }
        // With MFA the password is only half: the account's failure count stays until the second
        // factor passes, and wrong codes add to it (see `verify_mfa`), so a stolen password buys a
        // bounded number of guesses at the code, not a fresh five with every login.
        if let Some(challenge) = self.challenge_if_required(origin, user_id).await? {
            return Ok(challenge);
        }
        self.ports
            .throttle
            .clear(account_key)
            .await
            .or_unexpected("throttle clear")?;
        Ok(SignIn::Session(
            self.signed_in(origin, user_id, None).await?,
        ))
    }

    /// The MFA challenge, when the account has a second factor: what every way in (password,
    /// provider) answers instead of a session.
    async fn challenge_if_required(
        &self,
        origin: &Origin,
        user_id: Uuid,
    ) -> Result<Option<SignIn>, Unexpected> {
        if !self.ports.second_factor.required(user_id).await? {
            return Ok(None);
        }
        let mfa_token = self.ports.second_factor.challenge(user_id).await?;
        self.record(event(origin, events::MFA_CHALLENGED, Outcome::Success)?.with_actor(user_id))
            .await?;
        Ok(Some(SignIn::MfaRequired { mfa_token }))
    }

    /// Opens the session of a completed sign-in and audits it (`detail` says how, when not by
    /// password alone).
    async fn signed_in(
        &self,
        origin: &Origin,
        user_id: Uuid,
        detail: Option<AuditDetail>,
    ) -> Result<TokenPair, Unexpected> {
        let pair = self.open_session(origin, user_id).await?;
        let mut login = event(origin, events::LOGIN, Outcome::Success)?
            .with_actor(user_id)
            .with_subject("session", pair.session_id);
        if let Some(detail) = detail {
            login = login.with_detail(detail);
        }
        self.record(login).await?;
        Ok(pair)
    }

    /// Signs in a user who proved who they are some other way (an identity provider): the second
    /// factor still guards the account, so an MFA account gets the challenge, not a session.
    pub(crate) async fn sign_in_verified(
        &self,
        origin: &Origin,
        user_id: Uuid,
        via: &str,
    ) -> Result<SignIn, Unexpected> {
        if let Some(challenge) = self.challenge_if_required(origin, user_id).await? {
            return Ok(challenge);
        }
        let detail = AuditDetail::new()
            .with("via", AuditValue::Text(via.to_owned()))
            .or_unexpected("audit detail")?;
        Ok(SignIn::Session(
            self.signed_in(origin, user_id, Some(detail)).await?,
        ))
    }

    /// The second step of an MFA sign-in: the challenge token from `login` and a TOTP code or a
    /// recovery code. A wrong code counts against the challenge (a few attempts) and against the
    /// account's sign-in throttle; a code is accepted once.
    ///
    /// # Errors
    /// [`MfaSignInError`].
    #[tracing::instrument(name = "auth.verify_mfa", skip_all)]
    pub async fn verify_mfa(
        &self,
        origin: &Origin,
        mfa_token: &str,
        proof: MfaProof,
    ) -> Result<TokenPair, MfaSignInError> {
        let Some(user_id) = self.ports.second_factor.attempt(mfa_token).await? else {
            self.record(
                event(origin, events::MFA_FAILED, Outcome::Failure)?
                    .with_detail(reason("invalid_token")?),
            )
            .await?;
            return Err(MfaSignInError::InvalidToken);
        };
        let user = self
            .ports
            .users
            .find(user_id)
            .await
            .or_unexpected("user lookup")?;
        let Some(user) = user else {
            return Err(MfaSignInError::InvalidToken);
        };
        let account_key = self.ports.throttle_keys.account(user.email.as_str());
        let address_key = origin.ip.map(|ip| self.ports.throttle_keys.address(ip));
        if let Some(retry_after) = self.blocked_for(account_key, address_key).await? {
            return Err(MfaSignInError::Throttled { retry_after });
        }
        if !self.ports.second_factor.check(user_id, &proof).await? {
            self.ports
                .throttle
                .record_failure(account_key, self.rules.account_throttle)
                .await
                .or_unexpected("throttle count")?;
            self.record(
                event(origin, events::MFA_FAILED, Outcome::Failure)?
                    .with_actor(user_id)
                    .with_detail(reason("wrong_code")?),
            )
            .await?;
            return Err(MfaSignInError::InvalidCode);
        }
        if !self.ports.second_factor.finish(mfa_token).await? {
            return Err(MfaSignInError::InvalidToken);
        }
        // Locked (or deleted) between the password and the code: no session.
        let credentials = self
            .ports
            .users
            .credentials_by_id(user_id)
            .await
            .or_unexpected("credentials lookup")?;
        if credentials.is_none_or(|c| c.locked) {
            return Err(MfaSignInError::InvalidToken);
        }
        self.ports
            .throttle
            .clear(account_key)
            .await
            .or_unexpected("throttle clear")?;
        let detail = AuditDetail::new()
            .with(
                "second_factor",
                AuditValue::Text(
                    match proof {
                        MfaProof::Totp(_) => "totp",
                        MfaProof::RecoveryCode(_) => "recovery_code",
                    }
                    .to_owned(),
                ),
            )
            .or_unexpected("audit detail")?;
        let pair = self.signed_in(origin, user_id, Some(detail)).await?;
        Ok(pair)
    }

    /// The longer block of the two keys, if either is blocked.
    async fn blocked_for(
        &self,
        account: ThrottleKey,
        address: Option<ThrottleKey>,
    ) -> Result<Option<Duration>, Unexpected> {
        let throttle = &self.ports.throttle;
        let by_account = throttle
            .blocked_for(account)
            .await
            .or_unexpected("throttle check")?;
        let by_address = match address {
            Some(key) => throttle
                .blocked_for(key)
                .await
                .or_unexpected("throttle check")?,
            None => None,
        };
        Ok(by_account.max(by_address))
    }

    /// Counts a failure against both keys and writes the audit rows (one for the failure, one more
    /// when a key has just reached its lock).
    async fn fail_login(
        &self,
        origin: &Origin,
        user_id: Option<Uuid>,
        why: &'static str,
        account_key: ThrottleKey,
        address_key: Option<ThrottleKey>,
    ) -> Result<(), Unexpected> {
        let throttle = &self.ports.throttle;
        let account_policy = self.rules.account_throttle;
        let account_block = throttle
            .record_failure(account_key, account_policy)
            .await
            .or_unexpected("throttle count")?;
        let address_policy = self.rules.address_throttle.0;
        let address_block = match address_key {
            Some(key) => throttle
                .record_failure(key, address_policy)
                .await
                .or_unexpected("throttle count")?,
            None => None,
        };

        let mut failed =
            event(origin, events::LOGIN_FAILED, Outcome::Failure)?.with_detail(reason(why)?);
        if let Some(id) = user_id {
            failed = failed.with_subject("user", id);
        }
        self.record(failed).await?;

        let locked = [
            ("account", account_block, account_policy),
            ("address", address_block, address_policy),
        ]
        .into_iter()
        .filter(|(_, block, policy)| *block == Some(policy.lock_duration));
        for (scope, _, policy) in locked {
            let detail = AuditDetail::new()
                .with("scope", AuditValue::Text(scope.to_owned()))
                .and_then(|d| {
                    d.with(
                        "lock_seconds",
                        AuditValue::Integer(
                            i64::try_from(policy.lock_duration.as_secs()).unwrap_or(i64::MAX),
                        ),
                    )
                })
                .or_unexpected("audit detail")?;
            let mut lockout = event(origin, events::LOCKOUT, Outcome::Denied)?.with_detail(detail);
            if let (Some(id), "account") = (user_id, scope) {
                lockout = lockout.with_subject("user", id);
            }
            self.record(lockout).await?;
        }
        Ok(())
    }

    /// Stores a hash with the current parameters. A failure here must not fail the sign-in that
    /// has already succeeded: the old hash still verifies, and the next sign-in tries again.
    async fn rehash(&self, user_id: Uuid, password: &SecretString) {
        let password = Password::verified(password);
        let stored = match self.ports.hasher.hash(&password).await {
            Ok(hash) => self
                .ports
                .users
                .set_password_hash(user_id, &hash)
                .await
                .map_err(|e| Unexpected::new("rehash store", e)),
            Err(e) => Err(Unexpected::new("rehash", e)),
        };
        if let Err(error) = stored {
            tracing::warn!(%user_id, error = %error, "could not upgrade a password hash");
        }
    }

    /// Creates a session with its first refresh token and issues the pair.
    async fn open_session(&self, origin: &Origin, user_id: Uuid) -> Result<TokenPair, Unexpected> {
        let refresh = self
            .ports
            .opaque_tokens
            .mint(TokenKind::Refresh)
            .or_unexpected("refresh token")?;
        let session_id = self
            .ports
            .sessions
            .create(
                NewSession {
                    user_id,
                    first_token: RefreshTokenHash(refresh.digest.0),
                    ip: origin.ip,
                    user_agent: origin.user_agent.clone(),
                },
                self.rules.sessions,
            )
            .await
            .or_unexpected("session create")?;
        let access = self
            .ports
            .access_tokens
            .issue(user_id, session_id)
            .or_unexpected("access token")?;
        Ok(TokenPair {
            access_token: access.token,
            expires_in: access.expires_in,
            refresh_token: refresh.secret,
            session_id,
            user_id,
        })
    }

    /// Exchanges a refresh token for a new pair. A token presented a second time revokes its whole
    /// session and is audited as a reuse.
    ///
    /// # Errors
    /// [`RefreshError::InvalidToken`] for anything but a current token; `Unexpected` when a port
    /// fails.
    pub async fn refresh(
        &self,
        origin: &Origin,
        presented: &str,
    ) -> Result<TokenPair, RefreshError> {
        let Some(digest) = self
            .ports
            .opaque_tokens
            .recognise(TokenKind::Refresh, presented)
        else {
            return Err(RefreshError::InvalidToken);
        };
        let next = self
            .ports
            .opaque_tokens
            .mint(TokenKind::Refresh)
            .or_unexpected("refresh token")?;
        let rotation = self
            .ports
            .sessions
            .rotate(
                RefreshTokenHash(digest.0),
                RefreshTokenHash(next.digest.0),
                self.rules.sessions,
            )
            .await
            .or_unexpected("session rotate")?;
        match rotation {
            Rotation::Rotated {
                session_id,
                user_id,
            } => {
                let access = self
                    .ports
                    .access_tokens
                    .issue(user_id, session_id)
                    .or_unexpected("access token")?;
                self.record(
                    event(origin, events::REFRESH, Outcome::Success)?
                        .with_actor(user_id)
                        .with_subject("session", session_id),
                )
                .await?;
                Ok(TokenPair {
                    access_token: access.token,
                    expires_in: access.expires_in,
                    refresh_token: next.secret,
                    session_id,
                    user_id,
                })
            }
            Rotation::Reused {
                session_id,
                user_id,
            } => {
                self.ports.liveness.forget(&[session_id]);
                self.record(
                    event(origin, events::REFRESH_REUSE, Outcome::Denied)?
                        .with_subject("session", session_id)
                        .with_detail(
                            AuditDetail::new()
                                .with("user_id", AuditValue::Text(user_id.to_string()))
                                .or_unexpected("audit detail")?,
                        ),
                )
                .await?;
                Err(RefreshError::InvalidToken)
            }
            Rotation::Rejected => Err(RefreshError::InvalidToken),
        }
    }

    /// Ends the session of a refresh token. Answers the same whether or not the token was current
    /// (logging out twice is not an error, and a stranger learns nothing).
    ///
    /// # Errors
    /// `Unexpected` when a port fails.
    pub async fn logout(&self, origin: &Origin, presented: &str) -> Result<(), Unexpected> {
        let Some(digest) = self
            .ports
            .opaque_tokens
            .recognise(TokenKind::Refresh, presented)
        else {
            return Ok(());
        };
        let revoked = self
            .ports
            .sessions
            .revoke_by_token(RefreshTokenHash(digest.0), RevocationReason::Logout)
            .await
            .or_unexpected("session revoke")?;
        if let Some((session_id, user_id)) = revoked {
            self.ports.liveness.forget(&[session_id]);
            self.record(
                event(origin, events::LOGOUT, Outcome::Success)?
                    .with_actor(user_id)
                    .with_subject("session", session_id),
            )
            .await?;
        }
        Ok(())
    }

    /// Ends every session of the caller, this one included.
    ///
    /// # Errors
    /// `Unexpected` when a port fails.
    pub async fn logout_all(&self, actor: &Actor, origin: &Origin) -> Result<(), Unexpected> {
        let ended = self
            .ports
            .sessions
            .revoke_all(actor.user_id, None, RevocationReason::LogoutAll)
            .await
            .or_unexpected("session revoke")?;
        self.ports.liveness.forget(&ended);
        let count = i64::try_from(ended.len()).unwrap_or(i64::MAX);
        self.record(
            event(origin, events::LOGOUT_ALL, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_detail(
                    AuditDetail::new()
                        .with("sessions", AuditValue::Integer(count))
                        .or_unexpected("audit detail")?,
                ),
        )
        .await
    }

    /// The caller's live sessions, marking the one it asks from.
    ///
    /// # Errors
    /// `Unexpected` when the store fails.
    pub async fn sessions(&self, actor: &Actor) -> Result<Vec<ListedSession>, Unexpected> {
        let sessions = self
            .ports
            .sessions
            .list(actor.user_id, MAX_LISTED_SESSIONS)
            .await
            .or_unexpected("session list")?;
        Ok(sessions
            .into_iter()
            .map(|session| ListedSession {
                current: session.id == actor.session_id,
                session,
            })
            .collect())
    }

    /// Revokes one of the caller's sessions.
    ///
    /// # Errors
    /// [`RevokeSessionError::NotFound`] when the caller has no live session with this id (whether or
    /// not someone else does); `Unexpected` when a port fails.
    pub async fn revoke_session(
        &self,
        actor: &Actor,
        origin: &Origin,
        session_id: Uuid,
    ) -> Result<(), RevokeSessionError> {
        let revoked = self
            .ports
            .sessions
            .revoke(actor.user_id, session_id, RevocationReason::SessionRevoked)
            .await
            .or_unexpected("session revoke")?;
        if !revoked {
            return Err(RevokeSessionError::NotFound);
        }
        self.ports.liveness.forget(&[session_id]);
        self.record(
            event(origin, events::SESSION_REVOKED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("session", session_id),
        )
        .await?;
        Ok(())
    }

    /// Turns a bearer access token into an [`Actor`]: the token must verify and its session must
    /// still be live (revocation takes effect on the next request).
    ///
    /// # Errors
    /// [`AuthenticationError`]; all of them are the same 401 to the client.
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor, AuthenticationError> {
        self.authenticate_with_expiry(bearer)
            .await
            .map(|(actor, _)| actor)
    }

    /// Like [`Self::authenticate`], also giving the token's expiry (seconds since the epoch): a
    /// long-lived connection (a WebSocket) must end when its token does.
    ///
    /// # Errors
    /// As [`Self::authenticate`].
    pub async fn authenticate_with_expiry(
        &self,
        bearer: &str,
    ) -> Result<(Actor, u64), AuthenticationError> {
        let claims = self
            .ports
            .access_tokens
            .verify(bearer)
            .map_err(AuthenticationError::Rejected)?;
        let principal = self
            .ports
            .liveness
            .principal(claims.session_id)
            .await
            .or_unexpected("session liveness")?;
        // A token whose `sub` is not its session's user was not issued by us (or the key leaked):
        // refused like an ended session.
        let Some(principal) = principal.filter(|p| p.user_id == claims.user_id) else {
            return Err(AuthenticationError::SessionEnded);
        };
        let (role, role_withheld) = effective_role(
            principal.role,
            principal.mfa_enabled,
            self.rules.require_mfa_for_admins,
        );
        Ok((
            Actor {
                user_id: claims.user_id,
                session_id: claims.session_id,
                role,
                authenticated_at: principal.authenticated_at,
                credential: crate::context::Credential::Session,
                role_withheld,
                plan: principal.plan,
            },
            claims.expires_at,
        ))
    }

    /// Whether the actor's session is still live, still its user's, and still acting with the
    /// role it authenticated with (a revoked session, a locked or deleted account, a changed role
    /// or MFA requirement: false). A long-lived connection fixed its actor when it authenticated;
    /// a demoted moderator must not keep reading every document through it, so any change of
    /// role ends it and the client reconnects as who it is now. A store that cannot answer
    /// answers false: the connection is closed rather than kept open on a guess.
    pub async fn still_live(&self, actor: &Actor) -> bool {
        match self.ports.liveness.principal(actor.session_id).await {
            Ok(Some(principal)) if principal.user_id == actor.user_id => {
                let (role, _) = effective_role(
                    principal.role,
                    principal.mfa_enabled,
                    self.rules.require_mfa_for_admins,
                );
                role == actor.role
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The login orchestration against in-memory ports: what runs, and how often, for each kind of
    //! failure. (The black-box suite proves the same end to end; here the count of verifications
    //! is observable exactly.)

    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::audit::AuditError;
    use crate::opaque::{MintError, MintedToken, TokenDigest};
    use crate::password::{HashError, Password, PasswordHash};
    use crate::session::SessionStoreError;
    use crate::testing::block_on;
    use crate::throttle::ThrottleStoreError;
    use crate::token::{AccessClaims, IssuedAccessToken, TokenIssueError};
    use crate::user::{CreateUserError, Credentials, DisplayName, NewUser, User, UserStoreError};

    #[test]
    fn every_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    const GOOD: &str = "Correct-Horse-Battery-9-Staple";

    #[derive(Debug, Default)]
    struct Fakes {
        verifications: AtomicUsize,
        hashes: AtomicUsize,
        failures: Mutex<HashMap<[u8; 32], u32>>,
        events: Mutex<Vec<String>>,
        sessions: AtomicUsize,
        locked: bool,
    }

    #[derive(Debug, Clone)]
    struct Ports(Arc<Fakes>);

    fn ada_id() -> Uuid {
        Uuid::from_u128(1)
    }

    #[async_trait]
    impl UserRepository for Ports {
        async fn create(&self, _: NewUser) -> Result<User, CreateUserError> {
            unreachable!()
        }
        async fn find(&self, _: Uuid) -> Result<Option<User>, UserStoreError> {
            Ok(None)
        }
        async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, UserStoreError> {
            Ok(email
                .as_str()
                .eq_ignore_ascii_case("ada@example.com")
                .then(|| Credentials {
                    user_id: ada_id(),
                    password_hash: Some(PasswordHash::from_stored("stored".into())),
                    locked: self.0.locked,
                }))
        }
        async fn set_password_hash(&self, _: Uuid, _: &PasswordHash) -> Result<(), UserStoreError> {
            Ok(())
        }
        async fn credentials_by_id(&self, _: Uuid) -> Result<Option<Credentials>, UserStoreError> {
            Ok(None)
        }
        async fn update_display_name(
            &self,
            _: Uuid,
            _: &DisplayName,
        ) -> Result<Option<User>, UserStoreError> {
            Ok(None)
        }
        async fn mark_email_verified(&self, _: Uuid) -> Result<bool, UserStoreError> {
            Ok(false)
        }
        async fn set_locked(&self, _: Uuid, _: bool) -> Result<bool, UserStoreError> {
            Ok(false)
        }
        async fn delete_and_anonymise(&self, _: Uuid) -> Result<bool, UserStoreError> {
            Ok(false)
        }
        async fn list(
            &self,
            _: &crate::user::UserQuery,
        ) -> Result<crate::user::UserPage, UserStoreError> {
            unreachable!()
        }
        async fn summary(
            &self,
            _: Uuid,
        ) -> Result<Option<crate::user::UserSummary>, UserStoreError> {
            Ok(None)
        }
        async fn set_role(&self, _: Uuid, _: crate::user::Role) -> Result<bool, UserStoreError> {
            Ok(false)
        }
        async fn set_plan(&self, _: Uuid, _: crate::user::Plan) -> Result<bool, UserStoreError> {
            Ok(false)
        }
    }

    #[async_trait]
    impl PasswordHasher for Ports {
        async fn hash(&self, _: &Password) -> Result<PasswordHash, HashError> {
            self.0.hashes.fetch_add(1, Ordering::SeqCst);
            Ok(PasswordHash::from_stored("new".into()))
        }
        async fn verify(
            &self,
            candidate: &SecretString,
            stored: Option<&PasswordHash>,
        ) -> Result<Verification, HashError> {
            self.0.verifications.fetch_add(1, Ordering::SeqCst);
            Ok(match stored {
                Some(_) if candidate.expose_secret() == GOOD => {
                    Verification::Match { needs_rehash: true }
                }
                _ => Verification::Mismatch,
            })
        }
    }

    #[async_trait]
    impl SessionStore for Ports {
        async fn create(&self, _: NewSession, _: SessionPolicy) -> Result<Uuid, SessionStoreError> {
            self.0.sessions.fetch_add(1, Ordering::SeqCst);
            Ok(Uuid::from_u128(7))
        }
        async fn rotate(
            &self,
            _: RefreshTokenHash,
            _: RefreshTokenHash,
            _: SessionPolicy,
        ) -> Result<Rotation, SessionStoreError> {
            Ok(Rotation::Rejected)
        }
        async fn is_live(&self, _: Uuid) -> Result<bool, SessionStoreError> {
            Ok(true)
        }
        async fn principal(
            &self,
            _: Uuid,
        ) -> Result<Option<crate::session::SessionPrincipal>, SessionStoreError> {
            Ok(None)
        }
        async fn revoke(
            &self,
            _: Uuid,
            _: Uuid,
            _: RevocationReason,
        ) -> Result<bool, SessionStoreError> {
            Ok(false)
        }
        async fn revoke_by_token(
            &self,
            _: RefreshTokenHash,
            _: RevocationReason,
        ) -> Result<Option<(Uuid, Uuid)>, SessionStoreError> {
            Ok(None)
        }
        async fn revoke_all(
            &self,
            _: Uuid,
            _: Option<Uuid>,
            _: RevocationReason,
        ) -> Result<Vec<Uuid>, SessionStoreError> {
            Ok(Vec::new())
        }
        async fn list(&self, _: Uuid, _: u32) -> Result<Vec<SessionInfo>, SessionStoreError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl SessionLiveness for Ports {
        async fn principal(
            &self,
            _: Uuid,
        ) -> Result<Option<crate::session::SessionPrincipal>, SessionStoreError> {
            Ok(None)
        }
        fn forget(&self, _: &[Uuid]) {}
    }

    impl AccessTokens for Ports {
        fn issue(
            &self,
            user_id: Uuid,
            session_id: Uuid,
        ) -> Result<IssuedAccessToken, TokenIssueError> {
            Ok(IssuedAccessToken {
                token: SecretString::from("jwt"),
                expires_in: 600,
                claims: AccessClaims {
                    user_id,
                    session_id,
                    token_id: Uuid::nil(),
                    issued_at: 0,
                    expires_at: 600,
                },
            })
        }
        fn verify(&self, _: &str) -> Result<AccessClaims, TokenRejection> {
            Err(TokenRejection::Malformed)
        }
    }

    impl OpaqueTokens for Ports {
        fn mint(&self, _: TokenKind) -> Result<MintedToken, MintError> {
            Ok(MintedToken {
                secret: SecretString::from("bwrt_x"),
                digest: TokenDigest([0; 32]),
            })
        }
        fn recognise(&self, _: TokenKind, _: &str) -> Option<TokenDigest> {
            None
        }
    }

    #[async_trait]
    impl LoginThrottle for Ports {
        async fn blocked_for(
            &self,
            key: ThrottleKey,
        ) -> Result<Option<Duration>, ThrottleStoreError> {
            let failures = self
                .0
                .failures
                .lock()
                .unwrap()
                .get(&key.0)
                .copied()
                .unwrap_or(0);
            let delay = ThrottlePolicy::default().delay_after(failures);
            Ok((!delay.is_zero()).then_some(delay))
        }
        async fn record_failure(
            &self,
            key: ThrottleKey,
            policy: ThrottlePolicy,
        ) -> Result<Option<Duration>, ThrottleStoreError> {
            let mut failures = self.0.failures.lock().unwrap();
            let count = failures.entry(key.0).or_default();
            *count += 1;
            let delay = policy.delay_after(*count);
            Ok((!delay.is_zero()).then_some(delay))
        }
        async fn clear(&self, key: ThrottleKey) -> Result<(), ThrottleStoreError> {
            self.0.failures.lock().unwrap().remove(&key.0);
            Ok(())
        }
    }

    impl ThrottleKeys for Ports {
        fn account(&self, submitted_email: &str) -> ThrottleKey {
            let mut key = [0u8; 32];
            for (i, b) in submitted_email
                .trim()
                .to_lowercase()
                .bytes()
                .take(31)
                .enumerate()
            {
                key[i + 1] = b;
            }
            ThrottleKey(key)
        }
        fn address(&self, _: IpAddr) -> ThrottleKey {
            ThrottleKey([0xff; 32])
        }
    }

    #[async_trait]
    impl AuditLog for Ports {
        async fn record(&self, event: NewAuditEvent) -> Result<(), AuditError> {
            let reason = event
                .detail
                .to_json()
                .get("reason")
                .and_then(|r| r.as_str().map(str::to_owned));
            let line = match reason {
                Some(r) => format!("{}:{r}", event.event_type.as_str()),
                None => event.event_type.as_str().to_owned(),
            };
            self.0.events.lock().unwrap().push(line);
            Ok(())
        }
    }

    /// Accounts without MFA (the MFA flow is proved end to end in `tests/api/mfa.rs`).
    #[derive(Debug)]
    struct NoSecondFactor;

    #[async_trait::async_trait]
    impl SecondFactor for NoSecondFactor {
        async fn required(&self, _: Uuid) -> Result<bool, Unexpected> {
            Ok(false)
        }
        async fn challenge(&self, _: Uuid) -> Result<SecretString, Unexpected> {
            unreachable!("no account here has MFA")
        }
        async fn attempt(&self, _: &str) -> Result<Option<Uuid>, Unexpected> {
            Ok(None)
        }
        async fn check(&self, _: Uuid, _: &MfaProof) -> Result<bool, Unexpected> {
            Ok(false)
        }
        async fn finish(&self, _: &str) -> Result<bool, Unexpected> {
            Ok(false)
        }
    }

    fn service(locked: bool) -> (AuthService, Arc<Fakes>) {
        let fakes = Arc::new(Fakes {
            locked,
            ..Fakes::default()
        });
        let p = Ports(fakes.clone());
        let ports = AuthPorts {
            users: Arc::new(p.clone()),
            hasher: Arc::new(p.clone()),
            sessions: Arc::new(p.clone()),
            liveness: Arc::new(p.clone()),
            access_tokens: Arc::new(p.clone()),
            opaque_tokens: Arc::new(p.clone()),
            throttle: Arc::new(p.clone()),
            throttle_keys: Arc::new(p.clone()),
            audit: Arc::new(p),
            second_factor: Arc::new(NoSecondFactor),
        };
        (AuthService::new(ports, AuthRules::default()), fakes)
    }

    fn origin() -> Origin {
        Origin {
            ip: Some(IpAddr::from([192, 0, 2, 1])),
            user_agent: Some("test".into()),
            request_id: Some("r1".into()),
        }
    }

    #[test]
    fn unknown_email_wrong_password_and_locked_account_each_cost_one_verification() {
        for (email, password, locked, reason) in [
            ("nobody@example.com", GOOD, false, "unknown_account"),
            ("not an email", GOOD, false, "unknown_account"),
            (
                "ada@example.com",
                "Wrong-Horse-Battery-9-Staple",
                false,
                "wrong_password",
            ),
            ("ada@example.com", GOOD, true, "account_locked"),
        ] {
            let (service, fakes) = service(locked);
            let result = block_on(service.login(&origin(), email, SecretString::from(password)));
            assert!(
                matches!(result, Err(LoginError::InvalidCredentials)),
                "{email}"
            );
            assert_eq!(fakes.verifications.load(Ordering::SeqCst), 1, "{email}");
            assert_eq!(fakes.sessions.load(Ordering::SeqCst), 0, "{email}");
            assert_eq!(
                *fakes.events.lock().unwrap(),
                vec![format!("auth.login_failed:{reason}")]
            );
        }
    }

    #[test]
    fn success_rehashes_when_asked_opens_one_session_and_clears_the_backoff() {
        let (service, fakes) = service(false);
        for _ in 0..3 {
            let _ = block_on(service.login(
                &origin(),
                "ada@example.com",
                SecretString::from("Wrong-1!"),
            ));
        }
        let signed_in =
            block_on(service.login(&origin(), "Ada@Example.com", SecretString::from(GOOD)))
                .unwrap();
        let SignIn::Session(pair) = signed_in else {
            panic!("no MFA here");
        };
        assert_eq!(pair.user_id, ada_id());
        assert_eq!(fakes.hashes.load(Ordering::SeqCst), 1, "re-hashed once");
        assert_eq!(fakes.sessions.load(Ordering::SeqCst), 1);
        assert!(
            fakes
                .failures
                .lock()
                .unwrap()
                .get(&Ports(fakes.clone()).account("ada@example.com").0)
                .is_none()
        );
        assert_eq!(fakes.events.lock().unwrap().last().unwrap(), "auth.login");
    }

    #[test]
    fn a_blocked_key_is_answered_without_any_verification() {
        let (service, fakes) = service(false);
        for _ in 0..4 {
            let _ = block_on(service.login(
                &origin(),
                "ada@example.com",
                SecretString::from("Wrong-1!"),
            ));
        }
        let before = fakes.verifications.load(Ordering::SeqCst);

        let result =
            block_on(service.login(&origin(), "ada@example.com", SecretString::from(GOOD)));

        assert!(matches!(result, Err(LoginError::Throttled { .. })));
        assert_eq!(fakes.verifications.load(Ordering::SeqCst), before);
    }

    #[test]
    fn an_over_long_password_is_refused_before_the_throttle_or_the_hasher() {
        let (service, fakes) = service(false);
        let result = block_on(service.login(
            &origin(),
            "ada@example.com",
            SecretString::from("x".repeat(129)),
        ));
        assert!(matches!(result, Err(LoginError::Invalid(_))));
        assert_eq!(fakes.verifications.load(Ordering::SeqCst), 0);
        assert!(fakes.failures.lock().unwrap().is_empty());
    }
}
