//! The account's own life: registration, profile, password change, password reset, email
//! verification and deletion.
//!
//! Two enumeration defences shape this module:
//! - **Registration** answers a taken email exactly like a new one: the same status, the same body
//!   shape (a user that does not exist, with a fresh id), and the same work — one argon2 hash and one
//!   insert attempt either way. The owner of the address gets a mail saying someone tried; a
//!   stranger learns nothing. (The contract allowed 409; I chose this because 409 turns the
//!   registration form into an oracle for "does this person have an account", which is exactly
//!   what login and reset refuse to tell.)
//! - **Forgotten password** is always accepted. The transport runs [`AccountService::forgot_password`]
//!   after it has answered 202, so not even the time taken depends on whether the account exists.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditLog, NewAuditEvent, Outcome};
use crate::auth::{event, reason};
use crate::context::{Actor, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::mail::{Mail, MailCap, Mailer};
use crate::opaque::{OneTimeTokenStore, OpaqueTokens, TokenKind};
use crate::password::{
    Password, PasswordContext, PasswordHash, PasswordHasher, PasswordPolicy, Verification,
    normalize,
};
use crate::session::{RevocationReason, SessionLiveness, SessionStore};
use crate::throttle::{LoginThrottle, ThrottleKeys, ThrottlePolicy};
use crate::user::{
    CreateUserError, DisplayName, Email, FieldViolation, NewUser, Role, User, UserRepository,
};

/// The audit event types this module writes.
pub mod events {
    /// A new account (or an attempt with a taken email: outcome `failure`, reason `email_taken`).
    pub const REGISTERED: &str = "account.registered";
    /// The display name changed.
    pub const PROFILE_UPDATED: &str = "account.profile_updated";
    /// The password was changed by its owner.
    pub const PASSWORD_CHANGED: &str = "account.password_changed";
    /// A reset mail was asked for.
    pub const PASSWORD_RESET_REQUESTED: &str = "account.password_reset_requested";
    /// The password was reset with a mailed token.
    pub const PASSWORD_RESET: &str = "account.password_reset";
    /// The email address was verified.
    pub const EMAIL_VERIFIED: &str = "account.email_verified";
    /// The account was deleted (its personal data erased).
    pub const DELETED: &str = "account.deleted";
    /// A re-authentication (password change, deletion) failed.
    pub const REAUTH_FAILED: &str = "account.reauthentication_failed";
    /// An administrator account was created from the command line.
    pub const ADMIN_CREATED: &str = "account.admin_created";
    /// An account was locked by an administrator (every session ended).
    pub const LOCKED: &str = "account.locked";
    /// An account was unlocked.
    pub const UNLOCKED: &str = "account.unlocked";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 11] = [
        ADMIN_CREATED,
        LOCKED,
        UNLOCKED,
        REGISTERED,
        PROFILE_UPDATED,
        PASSWORD_CHANGED,
        PASSWORD_RESET_REQUESTED,
        PASSWORD_RESET,
        EMAIL_VERIFIED,
        DELETED,
        REAUTH_FAILED,
    ];
}

/// The ports the account service uses.
#[derive(Debug, Clone)]
pub struct AccountPorts {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// argon2id.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Sessions (revoked on password change, reset and deletion).
    pub sessions: Arc<dyn SessionStore>,
    /// The liveness cache, cleared after revoking.
    pub liveness: Arc<dyn SessionLiveness>,
    /// Verification and reset tokens.
    pub opaque_tokens: Arc<dyn OpaqueTokens>,
    /// Where their digests live.
    pub one_time_tokens: Arc<dyn OneTimeTokenStore>,
    /// Mail.
    pub mailer: Arc<dyn Mailer>,
    /// Re-authentication failures count against the sign-in throttle of the account.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Throttle key derivation.
    pub throttle_keys: Arc<dyn ThrottleKeys>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
}

/// The configurable rules.
#[derive(Debug, Clone, Copy)]
pub struct AccountRules {
    /// The password policy.
    pub password: PasswordPolicy,
    /// The sign-in throttle (shared with re-authentication).
    pub throttle: ThrottlePolicy,
    /// How long a reset token lives (at most 30 minutes).
    pub reset_token_ttl: Duration,
    /// How long a verification token lives.
    pub verification_token_ttl: Duration,
    /// At most this many mails of one kind to one address per [`AccountRules::mail_window`].
    pub mails_per_window: u32,
    /// See [`AccountRules::mails_per_window`].
    pub mail_window: Duration,
}

/// Longest reset-token lifetime accepted (ASVS 6.4.x: short-lived recovery secrets).
pub const MAX_RESET_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);

impl Default for AccountRules {
    fn default() -> Self {
        Self {
            password: PasswordPolicy::default(),
            throttle: ThrottlePolicy::default(),
            reset_token_ttl: MAX_RESET_TOKEN_TTL,
            verification_token_ttl: Duration::from_secs(24 * 60 * 60),
            mails_per_window: 3,
            mail_window: Duration::from_secs(60 * 60),
        }
    }
}

/// What registration needs, as the client sent it.
pub struct Registration {
    /// The email, unparsed.
    pub email: String,
    /// The password.
    pub password: SecretString,
    /// The display name, unparsed.
    pub display_name: String,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").finish_non_exhaustive()
    }
}

/// Why an account operation failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Field errors, every one of them.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// The current password given to confirm the operation is wrong.
    #[error("the password is wrong")]
    WrongPassword {
        /// The request field that held it (`current_password`, `password`).
        field: &'static str,
    },
    /// Too many failed re-authentications: retry later.
    #[error("too many failed attempts")]
    Throttled {
        /// How long until a new attempt is considered.
        retry_after: Duration,
    },
    /// The token is unknown, used, superseded or expired.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The account no longer exists.
    #[error("no such account")]
    NotFound,
    /// The email is taken (only `create_admin` says so: it runs on the operator's terminal, where
    /// there is nobody to hide it from).
    #[error("an account with this email exists")]
    EmailTaken,
    /// A sensitive operation needs a recent sign-in (within [`STEP_UP_WINDOW`]) or the password.
    #[error("re-authentication required")]
    ReauthenticationRequired,
    /// The caller authenticated with an API key, which can never manage credentials.
    #[error("not allowed with an API key")]
    SessionRequired,
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// How recent a sign-in must be for a sensitive operation (creating an API key, setting up or
/// disabling MFA) to go ahead without the password (ASVS 6.x / 7.5.x "re-authentication").
pub const STEP_UP_WINDOW: time::Duration = time::Duration::minutes(10);

/// Registration, profile, passwords, verification, deletion.
#[derive(Debug, Clone)]
pub struct AccountService {
    ports: AccountPorts,
    rules: AccountRules,
}

fn renamed(mut violations: Vec<FieldViolation>, field: &'static str) -> Vec<FieldViolation> {
    for v in &mut violations {
        v.field = field;
    }
    violations
}

impl AccountService {
    /// A service over these ports and rules.
    #[must_use]
    pub fn new(ports: AccountPorts, rules: AccountRules) -> Self {
        Self { ports, rules }
    }

    /// Every field of a registration parsed, or every violation of every field.
    fn parse_registration(
        &self,
        registration: Registration,
    ) -> Result<(Email, DisplayName, Password), AccountError> {
        let email = Email::parse(&registration.email);
        let display_name = DisplayName::parse(&registration.display_name);
        let password = self.rules.password.check(
            registration.password,
            PasswordContext {
                email: email.as_ref().ok(),
                display_name: display_name.as_ref().ok(),
            },
        );
        match (email, display_name, password) {
            (Ok(e), Ok(d), Ok(p)) => Ok((e, d, p)),
            (email, display_name, password) => {
                let mut violations: Vec<FieldViolation> = [email.err(), display_name.err()]
                    .into_iter()
                    .flatten()
                    .collect();
                violations.extend(password.err().unwrap_or_default());
                Err(AccountError::Invalid(violations))
            }
        }
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    /// Registers an account and mails a verification link; see the module docs for why a taken
    /// email answers like a new one.
    ///
    /// # Errors
    /// [`AccountError::Invalid`] listing every failed rule of every field; `Unexpected` when a port
    /// fails.
    #[tracing::instrument(name = "account.register", skip_all)]
    pub async fn register(
        &self,
        origin: &Origin,
        registration: Registration,
    ) -> Result<User, AccountError> {
        let (email, display_name, password) = self.parse_registration(registration)?;

        let password_hash = self
            .ports
            .hasher
            .hash(&password)
            .await
            .or_unexpected("password hash")?;
        let created = self
            .ports
            .users
            .create(NewUser {
                email: email.clone(),
                display_name: display_name.clone(),
                password_hash,
                role: Role::User,
            })
            .await;
        match created {
            Ok(user) => {
                self.send_token_mail(&user.id, &email, TokenKind::EmailVerification)
                    .await?;
                self.record(
                    event(origin, events::REGISTERED, Outcome::Success)?
                        .with_actor(user.id)
                        .with_subject("user", user.id),
                )
                .await?;
                Ok(user)
            }
            Err(CreateUserError::EmailTaken) => {
                self.ports
                    .mailer
                    .send_capped(&email, Mail::AccountExists, self.mail_cap())
                    .await
                    .or_unexpected("mail")?;
                self.record(
                    event(origin, events::REGISTERED, Outcome::Failure)?
                        .with_detail(reason("email_taken")?),
                )
                .await?;
                // The user the stranger is shown: the same shape as a real new account, with an id
                // that exists nowhere.
                Ok(User {
                    id: Uuid::new_v4(),
                    email,
                    display_name,
                    role: Role::User,
                    email_verified_at: None,
                    locked: false,
                    created_at: OffsetDateTime::now_utc(),
                    mfa_enabled: false,
                })
            }
            Err(CreateUserError::Store(e)) => Err(Unexpected::new("user create", e).into()),
        }
    }

    /// Creates an administrator (`bulwark create-admin`). The same policy applies as to anyone:
    /// there is no default account and no weaker rule for the most powerful one.
    ///
    /// # Errors
    /// `Invalid` listing every failed rule, `EmailTaken`, `Unexpected`.
    pub async fn create_admin(
        &self,
        origin: &Origin,
        registration: Registration,
    ) -> Result<User, AccountError> {
        let (email, display_name, password) = self.parse_registration(registration)?;
        let password_hash = self
            .ports
            .hasher
            .hash(&password)
            .await
            .or_unexpected("password hash")?;
        let user = self
            .ports
            .users
            .create(NewUser {
                email,
                display_name,
                password_hash,
                role: Role::Admin,
            })
            .await
            .map_err(|e| match e {
                CreateUserError::EmailTaken => AccountError::EmailTaken,
                CreateUserError::Store(e) => Unexpected::new("user create", e).into(),
            })?;
        self.record(
            event(origin, events::ADMIN_CREATED, Outcome::Success)?
                .with_subject("user", user.id)
                .with_detail(reason("command_line")?),
        )
        .await?;
        Ok(user)
    }

    /// Locks or unlocks an account. Locking ends every session at once (on this instance through
    /// the liveness cache, on the others through the database notification) and sign-in fails
    /// like a wrong password from then on. `actor` is the administrator when there is one; the
    /// command line passes `None`. Deciding *who* may call this is the admin API's job (its
    /// issue); this is the one place the effect is implemented.
    ///
    /// # Errors
    /// `NotFound` when there is no such account; `Unexpected`.
    pub async fn set_locked(
        &self,
        actor: Option<&Actor>,
        origin: &Origin,
        user_id: Uuid,
        locked: bool,
    ) -> Result<(), AccountError> {
        if !self
            .ports
            .users
            .set_locked(user_id, locked)
            .await
            .or_unexpected("user update")?
        {
            return Err(AccountError::NotFound);
        }
        if locked {
            self.revoke_sessions(user_id, None, RevocationReason::AccountLocked)
                .await?;
        }
        let kind = if locked {
            events::LOCKED
        } else {
            events::UNLOCKED
        };
        let mut event = event(origin, kind, Outcome::Success)?.with_subject("user", user_id);
        if let Some(actor) = actor {
            event = event.with_actor(actor.user_id);
        }
        self.record(event).await?;
        Ok(())
    }

    fn mail_cap(&self) -> MailCap {
        MailCap {
            max: self.rules.mails_per_window,
            window: self.rules.mail_window,
        }
    }

    /// Mints a one-time token and mails it, unless the address has had its cap of such mails in the
    /// window (then nothing is sent or stored, and the caller answers as usual). The digest is
    /// stored only once the mail is queued: storing it supersedes the previous token, and a capped
    /// request must not kill the link the user already has.
    async fn send_token_mail(
        &self,
        user_id: &Uuid,
        to: &Email,
        kind: TokenKind,
    ) -> Result<(), Unexpected> {
        let ttl = match kind {
            TokenKind::PasswordReset => self.rules.reset_token_ttl.min(MAX_RESET_TOKEN_TTL),
            _ => self.rules.verification_token_ttl,
        };
        let token = self
            .ports
            .opaque_tokens
            .mint(kind)
            .or_unexpected("one-time token")?;
        let mail = match kind {
            TokenKind::PasswordReset => Mail::PasswordReset {
                token: token.secret,
            },
            _ => Mail::VerifyEmail {
                token: token.secret,
            },
        };
        let template = mail.template();
        let queued = self
            .ports
            .mailer
            .send_capped(to, mail, self.mail_cap())
            .await
            .or_unexpected("mail")?;
        if !queued {
            tracing::info!(%user_id, template, "mail cap reached; nothing sent");
            return Ok(());
        }
        self.ports
            .one_time_tokens
            .issue(*user_id, kind, token.digest, ttl)
            .await
            .or_unexpected("one-time token store")
    }

    /// The caller's account.
    ///
    /// # Errors
    /// [`AccountError::NotFound`] when it was deleted meanwhile; `Unexpected` when the store fails.
    pub async fn me(&self, actor: &Actor) -> Result<User, AccountError> {
        // The account's own data is a session's business, not an integration's.
        if !actor.is_session() {
            return Err(AccountError::SessionRequired);
        }
        self.ports
            .users
            .find(actor.user_id)
            .await
            .or_unexpected("user lookup")?
            .ok_or(AccountError::NotFound)
    }

    /// Another user's profile as `actor` may see it: `None` for an unknown or deleted user. The
    /// caller decides per field what to show with [`crate::policy::may_see_private_profile`].
    ///
    /// # Errors
    /// `Unexpected`.
    pub async fn profile(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        Ok(self
            .ports
            .users
            .find(id)
            .await
            .or_unexpected("user lookup")?)
    }

    /// Changes the caller's display name.
    ///
    /// # Errors
    /// [`AccountError::Invalid`] for a bad name; `NotFound`; `Unexpected`.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        origin: &Origin,
        display_name: &str,
    ) -> Result<User, AccountError> {
        if !actor.is_session() {
            return Err(AccountError::SessionRequired);
        }
        let display_name =
            DisplayName::parse(display_name).map_err(|v| AccountError::Invalid(vec![v]))?;
        let user = self
            .ports
            .users
            .update_display_name(actor.user_id, &display_name)
            .await
            .or_unexpected("user update")?
            .ok_or(AccountError::NotFound)?;
        self.record(
            event(origin, events::PROFILE_UPDATED, Outcome::Success)?
                .with_actor(actor.user_id)
                .with_subject("user", actor.user_id),
        )
        .await?;
        Ok(user)
    }

    /// Checks the caller's current password, with the sign-in throttle of the account: a stolen
    /// access token cannot be used to guess the password here either.
    async fn reauthenticate(
        &self,
        actor: &Actor,
        origin: &Origin,
        field: &'static str,
        password: &SecretString,
    ) -> Result<User, AccountError> {
        if let Some(too_long) = self.rules.password.refuse_overlong(field, password) {
            return Err(AccountError::Invalid(vec![too_long]));
        }
        let user = self.me(actor).await?;
        let key = self.ports.throttle_keys.account(user.email.as_str());
        if let Some(retry_after) = self
            .ports
            .throttle
            .blocked_for(key)
            .await
            .or_unexpected("throttle check")?
        {
            return Err(AccountError::Throttled { retry_after });
        }
        let credentials = self
            .ports
            .users
            .credentials_by_id(actor.user_id)
            .await
            .or_unexpected("credentials lookup")?
            .ok_or(AccountError::NotFound)?;
        let verification = self
            .ports
            .hasher
            .verify(&normalize(password), credentials.password_hash.as_ref())
            .await
            .or_unexpected("password verification")?;
        if verification == Verification::Mismatch || credentials.password_hash.is_none() {
            self.ports
                .throttle
                .record_failure(key, self.rules.throttle)
                .await
                .or_unexpected("throttle count")?;
            self.record(
                event(origin, events::REAUTH_FAILED, Outcome::Failure)?
                    .with_actor(actor.user_id)
                    .with_detail(reason("wrong_password")?),
            )
            .await?;
            return Err(AccountError::WrongPassword { field });
        }
        Ok(user)
    }

    /// The step-up check of a sensitive operation: the caller must be a session (never an API
    /// key), and must either have signed in within [`STEP_UP_WINDOW`] or give the password now. A
    /// password given is always checked (throttled and audited like any re-authentication), even
    /// when the sign-in is recent.
    ///
    /// # Errors
    /// `SessionRequired`, `ReauthenticationRequired`, `WrongPassword`, `Throttled`, `Invalid` (an
    /// over-long password), `NotFound`, `Unexpected`.
    pub async fn step_up(
        &self,
        actor: &Actor,
        origin: &Origin,
        password: Option<&SecretString>,
    ) -> Result<(), AccountError> {
        if !actor.is_session() {
            return Err(AccountError::SessionRequired);
        }
        if let Some(password) = password {
            self.reauthenticate(actor, origin, "password", password)
                .await?;
            return Ok(());
        }
        let age = OffsetDateTime::now_utc() - actor.authenticated_at;
        if age > STEP_UP_WINDOW {
            return Err(AccountError::ReauthenticationRequired);
        }
        Ok(())
    }

    /// Checks a new password against the policy in the user's context (errors on `new_password`)
    /// and hashes it.
    async fn hash_new_password(
        &self,
        user: &User,
        new: SecretString,
    ) -> Result<PasswordHash, AccountError> {
        let password = self
            .rules
            .password
            .check(
                new,
                PasswordContext {
                    email: Some(&user.email),
                    display_name: Some(&user.display_name),
                },
            )
            .map_err(|v| AccountError::Invalid(renamed(v, "new_password")))?;
        Ok(self
            .ports
            .hasher
            .hash(&password)
            .await
            .or_unexpected("password hash")?)
    }

    /// Ends sessions and drops them from the liveness cache.
    async fn revoke_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        why: RevocationReason,
    ) -> Result<(), Unexpected> {
        let ended = self
            .ports
            .sessions
            .revoke_all(user_id, keep, why)
            .await
            .or_unexpected("session revoke")?;
        self.ports.liveness.forget(&ended);
        Ok(())
    }

    /// Changes the caller's password; every other session ends.
    ///
    /// # Errors
    /// `WrongPassword`, `Throttled`, `Invalid` (policy, on `new_password`), `NotFound`, `Unexpected`.
    #[tracing::instrument(name = "account.change_password", skip_all)]
    pub async fn change_password(
        &self,
        actor: &Actor,
        origin: &Origin,
        current: &SecretString,
        new: SecretString,
    ) -> Result<(), AccountError> {
        // The new password's length is checked before any hashing, too.
        if let Some(too_long) = self.rules.password.refuse_overlong("new_password", &new) {
            return Err(AccountError::Invalid(vec![too_long]));
        }
        let user = self
            .reauthenticate(actor, origin, "current_password", current)
            .await?;
        let hash = self.hash_new_password(&user, new).await?;
        self.ports
            .users
            .set_password_hash(user.id, &hash)
            .await
            .or_unexpected("password store")?;
        self.revoke_sessions(
            user.id,
            Some(actor.session_id),
            RevocationReason::PasswordChange,
        )
        .await?;
        self.ports
            .mailer
            .send(&user.email, Mail::PasswordChanged)
            .await
            .or_unexpected("mail")?;
        self.record(
            event(origin, events::PASSWORD_CHANGED, Outcome::Success)?
                .with_actor(user.id)
                .with_subject("user", user.id),
        )
        .await?;
        Ok(())
    }

    /// Mails a reset link when the address belongs to an account that may sign in. Always `Ok` for
    /// an unknown address. The transport calls this *after* answering 202 (see the module docs).
    ///
    /// # Errors
    /// `Unexpected` when a port fails (logged by the caller; the client already has its 202).
    #[tracing::instrument(name = "account.forgot_password", skip_all)]
    pub async fn forgot_password(
        &self,
        origin: &Origin,
        submitted_email: &str,
    ) -> Result<(), Unexpected> {
        let Ok(email) = Email::parse(submitted_email) else {
            return Ok(());
        };
        let credentials = self
            .ports
            .users
            .credentials(&email)
            .await
            .or_unexpected("credentials lookup")?;
        let mut requested = event(origin, events::PASSWORD_RESET_REQUESTED, Outcome::Success)?;
        match credentials {
            // A locked account gets no reset mail: a reset must not undo an administrator's lock.
            Some(c) if !c.locked => {
                self.send_token_mail(&c.user_id, &email, TokenKind::PasswordReset)
                    .await?;
                requested = requested.with_subject("user", c.user_id);
            }
            Some(c) => {
                requested = requested
                    .with_subject("user", c.user_id)
                    .with_detail(reason("account_locked")?);
            }
            None => requested = requested.with_detail(reason("unknown_account")?),
        }
        self.record(requested).await
    }

    /// Sets a new password with a mailed reset token. The token is spent only once the new password
    /// passes the policy; every session of the account ends.
    ///
    /// # Errors
    /// `InvalidToken`, `Invalid` (policy, on `new_password`), `Unexpected`.
    #[tracing::instrument(name = "account.reset_password", skip_all)]
    pub async fn reset_password(
        &self,
        origin: &Origin,
        token: &str,
        new: SecretString,
    ) -> Result<(), AccountError> {
        if let Some(too_long) = self.rules.password.refuse_overlong("new_password", &new) {
            return Err(AccountError::Invalid(vec![too_long]));
        }
        let digest = self
            .ports
            .opaque_tokens
            .recognise(TokenKind::PasswordReset, token)
            .ok_or(AccountError::InvalidToken)?;
        let tokens = &self.ports.one_time_tokens;
        let user_id = tokens
            .peek(TokenKind::PasswordReset, digest)
            .await
            .or_unexpected("one-time token lookup")?
            .ok_or(AccountError::InvalidToken)?;
        let user = self
            .ports
            .users
            .find(user_id)
            .await
            .or_unexpected("user lookup")?
            .ok_or(AccountError::InvalidToken)?;
        let hash = self.hash_new_password(&user, new).await?;
        // Spent here, atomically: of two concurrent resets with one token, one wins.
        if tokens
            .consume(TokenKind::PasswordReset, digest)
            .await
            .or_unexpected("one-time token use")?
            != Some(user_id)
        {
            return Err(AccountError::InvalidToken);
        }
        self.ports
            .users
            .set_password_hash(user_id, &hash)
            .await
            .or_unexpected("password store")?;
        // The mail reached its owner: that proves the address too.
        self.ports
            .users
            .mark_email_verified(user_id)
            .await
            .or_unexpected("user update")?;
        self.revoke_sessions(user_id, None, RevocationReason::PasswordReset)
            .await?;
        let key = self.ports.throttle_keys.account(user.email.as_str());
        self.ports
            .throttle
            .clear(key)
            .await
            .or_unexpected("throttle clear")?;
        self.ports
            .mailer
            .send(&user.email, Mail::PasswordChanged)
            .await
            .or_unexpected("mail")?;
        self.record(
            event(origin, events::PASSWORD_RESET, Outcome::Success)?
                .with_actor(user_id)
                .with_subject("user", user_id),
        )
        .await?;
        Ok(())
    }

    /// Marks the email verified with a mailed token.
    ///
    /// # Errors
    /// `InvalidToken`, `Unexpected`.
    pub async fn verify_email(&self, origin: &Origin, token: &str) -> Result<(), AccountError> {
        let digest = self
            .ports
            .opaque_tokens
            .recognise(TokenKind::EmailVerification, token)
            .ok_or(AccountError::InvalidToken)?;
        let user_id = self
            .ports
            .one_time_tokens
            .consume(TokenKind::EmailVerification, digest)
            .await
            .or_unexpected("one-time token use")?
            .ok_or(AccountError::InvalidToken)?;
        if !self
            .ports
            .users
            .mark_email_verified(user_id)
            .await
            .or_unexpected("user update")?
        {
            return Err(AccountError::InvalidToken);
        }
        self.record(
            event(origin, events::EMAIL_VERIFIED, Outcome::Success)?
                .with_actor(user_id)
                .with_subject("user", user_id),
        )
        .await?;
        Ok(())
    }

    /// Deletes the caller's account after checking the password: every session ends at once and
    /// the personal data is erased (see [`UserRepository::delete_and_anonymise`]).
    ///
    /// # Errors
    /// `WrongPassword`, `Throttled`, `Invalid`, `NotFound`, `Unexpected`.
    #[tracing::instrument(name = "account.delete", skip_all)]
    pub async fn delete(
        &self,
        actor: &Actor,
        origin: &Origin,
        password: &SecretString,
    ) -> Result<(), AccountError> {
        let user = self
            .reauthenticate(actor, origin, "password", password)
            .await?;
        self.revoke_sessions(user.id, None, RevocationReason::AccountDeleted)
            .await?;
        if !self
            .ports
            .users
            .delete_and_anonymise(user.id)
            .await
            .or_unexpected("user delete")?
        {
            return Err(AccountError::NotFound);
        }
        self.record(
            event(origin, events::DELETED, Outcome::Success)?
                .with_actor(user.id)
                .with_subject("user", user.id),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventType;

    #[test]
    fn every_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_reset_token_lifetime_never_exceeds_thirty_minutes_by_default() {
        assert!(AccountRules::default().reset_token_ttl <= MAX_RESET_TOKEN_TTL);
    }
}
