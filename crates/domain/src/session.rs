//! Sessions and their refresh tokens.
//!
//! A session is one sign-in. Its id is the `sid` of every access token issued in it and the family of
//! its refresh tokens. Refresh tokens rotate on every use; a token presented a second time means a copy
//! exists somewhere, and the whole session is revoked (ASVS 10.4.5) — including when two requests race
//! with the same token: the first wins, the second is indistinguishable from a thief and ends the
//! session.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::user::Role;

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long expires (ASVS 7.3.1). Default 14 days.
    pub idle_timeout: Duration,
    /// No session outlives this, however active (ASVS 7.3.2, 10.4.8). Default 30 days.
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(14 * 86_400),
            absolute_lifetime: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A refresh token as given to (and presented by) a client. Opaque; only its hash is stored.
pub struct RefreshToken(SecretString);

impl RefreshToken {
    /// Wraps a token string (made by the token generator, or presented by a client).
    #[must_use]
    pub fn new(token: SecretString) -> Self {
        Self(token)
    }

    /// The token. Expose it only on the line that uses it.
    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

/// The SHA-256 of a refresh token: what the database stores and looks up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenHash(pub [u8; 32]);

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenHash(..)")
    }
}

/// Why a session ended (stored; matches `sessions_revoked_reason_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// The user logged out of this session.
    Logout,
    /// The user logged out everywhere.
    LogoutAll,
    /// The password was changed (other sessions end).
    PasswordChange,
    /// The password was reset (all sessions end).
    PasswordReset,
    /// An administrator locked the account.
    AccountLocked,
    /// The account was deleted.
    AccountDeleted,
    /// A rotated refresh token was presented again.
    RefreshReuse,
    /// The user revoked this session from the session list.
    SessionRevoked,
    /// An administrator ended it.
    Admin,
}

impl RevocationReason {
    /// The stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::PasswordChange => "password_change",
            Self::PasswordReset => "password_reset",
            Self::AccountLocked => "account_locked",
            Self::AccountDeleted => "account_deleted",
            Self::RefreshReuse => "refresh_reuse",
            Self::SessionRevoked => "session_revoked",
            Self::Admin => "admin",
        }
    }
}

/// A new session, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Whose.
    pub user_id: Uuid,
    /// Hash of the first refresh token.
    pub first_token: RefreshTokenHash,
    /// Where from.
    pub ip: Option<IpAddr>,
    /// The client's user agent (cut to 512 characters by the store).
    pub user_agent: Option<String>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now used, and the next one is stored.
    Rotated {
        /// The session (the `sid` of the new access token).
        session_id: Uuid,
        /// Its user.
        user_id: Uuid,
    },
    /// The token had been used before: the session is now revoked. Write an audit event.
    Reused {
        /// The revoked session.
        session_id: Uuid,
        /// Its user.
        user_id: Uuid,
    },
    /// Unknown token, or its session is revoked or expired.
    Rejected,
}

/// Storage of sessions and refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Creates a session with its first refresh token (generation 1).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails (or the user does not exist).
    async fn create(
        &self,
        new: NewSession,
        policy: SessionPolicy,
    ) -> Result<Uuid, SessionStoreError>;

    /// Exchanges `presented` for `next`, atomically: of several concurrent calls with the same token,
    /// exactly one sees [`Rotation::Rotated`].
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails.
    async fn rotate(
        &self,
        presented: RefreshTokenHash,
        next: RefreshTokenHash,
        policy: SessionPolicy,
    ) -> Result<Rotation, SessionStoreError>;

    /// Whether the session exists, is not revoked and has not expired.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails. Callers deny access then (no fail-open).
    async fn is_live(&self, session_id: Uuid) -> Result<bool, SessionStoreError>;

    /// The principal of a live session whose user is neither locked nor deleted.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails.
    async fn principal(
        &self,
        session_id: Uuid,
    ) -> Result<Option<SessionPrincipal>, SessionStoreError>;

    /// Revokes one session of one user. Returns false when there was no such live session *of that
    /// user* (so a user cannot revoke another user's session, nor learn that it exists).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails.
    async fn revoke(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevocationReason,
    ) -> Result<bool, SessionStoreError>;

    /// Revokes the session that `token` (the current, unused refresh token) belongs to — logout.
    /// Returns `(session_id, user_id)`, or `None` when the token is unknown, already used, or its
    /// session already ended (logout answers the same either way).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails.
    async fn revoke_by_token(
        &self,
        token: RefreshTokenHash,
        reason: RevocationReason,
    ) -> Result<Option<(Uuid, Uuid)>, SessionStoreError>;

    /// Revokes every live session of a user, except `keep` when given. Returns their ids (to drop
    /// them from the local liveness cache at once).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails.
    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: RevocationReason,
    ) -> Result<Vec<Uuid>, SessionStoreError>;

    /// The user's live sessions, most recently used first (at most `limit`).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the store fails.
    async fn list(&self, user_id: Uuid, limit: u32) -> Result<Vec<SessionInfo>, SessionStoreError>;
}

/// A live session as its owner sees it in `GET /auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (`sid`).
    pub id: Uuid,
    /// When it was created (the sign-in).
    pub created_at: OffsetDateTime,
    /// When its refresh token was last used.
    pub last_used_at: OffsetDateTime,
    /// Where it signed in from.
    pub ip: Option<IpAddr>,
    /// The user agent it signed in with.
    pub user_agent: Option<String>,
}

/// Who a live session acts as: its user, the user's current role, and when it signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPrincipal {
    /// The session's user.
    pub user_id: Uuid,
    /// The user's role now.
    pub role: Role,
    /// When the session was created (the sign-in).
    pub authenticated_at: OffsetDateTime,
    /// Whether the user has a second factor on.
    pub mfa_enabled: bool,
    /// The user's plan now (which daily request quota applies).
    pub plan: crate::user::Plan,
}

/// The check every authenticated request makes: is the token's session still live, and as whom?
/// Implemented with a cache that the revoking instance clears at once and other instances clear on
/// a database notification (`bulwark-persistence::liveness`) — also when the user's role changes.
#[async_trait]
pub trait SessionLiveness: Send + Sync + fmt::Debug {
    /// The session's principal; `None` when the session is not live or its user is locked or
    /// deleted.
    ///
    /// # Errors
    /// [`SessionStoreError`] when there is no fresh answer; the caller refuses the request.
    async fn principal(
        &self,
        session_id: Uuid,
    ) -> Result<Option<SessionPrincipal>, SessionStoreError>;

    /// Drops any cached answer for these sessions; called right after revoking them.
    fn forget(&self, session_ids: &[Uuid]);
}

/// The session store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the session store is unavailable")]
pub struct SessionStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);
