//! Access tokens: what they say, and the port that issues and verifies them.
//!
//! An access token is a short-lived (≤ 15 minutes) signed statement "user U, in session S". It
//! carries no email, role or other personal data: what the user may do is looked up at request
//! time, so a role change or a revoked session takes effect at once (with the session check of the
//! identity issue), not when the token expires.

use std::fmt;

use secrecy::SecretString;
use uuid::Uuid;

/// Longest lifetime of an access token the service accepts to issue.
pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`: the user.
    pub user_id: Uuid,
    /// `sid`: the session the token belongs to (checked for revocation on every request).
    pub session_id: Uuid,
    /// `jti`: this token's own id.
    pub token_id: Uuid,
    /// `iat`, seconds since the epoch.
    pub issued_at: u64,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

/// A freshly issued token.
pub struct IssuedAccessToken {
    /// The compact JWT.
    pub token: SecretString,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its claims.
    pub claims: AccessClaims,
}

impl fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("claims", &self.claims)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// Why a token was refused. Clients always hear the same 401; the reason is for the log and the
/// audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a JWT, or its parts do not decode.
    #[error("malformed token")]
    Malformed,
    /// Not an access token (`typ` is not `at+jwt`): a refresh, reset or other token.
    #[error("not an access token")]
    WrongType,
    /// The algorithm is not the one pinned (EdDSA): `none`, HMAC, RSA…
    #[error("algorithm not allowed")]
    WrongAlgorithm,
    /// No `kid`, or a `kid` that is not one of the configured keys.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Before `nbf`.
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not ours.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not ours.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("invalid claims")]
    InvalidClaims,
}

/// Issues and verifies access tokens (EdDSA JWTs in `bulwark-security`).
pub trait AccessTokens: Send + Sync + fmt::Debug {
    /// Issues a token for this user and session.
    ///
    /// # Errors
    /// [`TokenIssueError`] when signing fails.
    fn issue(&self, user_id: Uuid, session_id: Uuid) -> Result<IssuedAccessToken, TokenIssueError>;

    /// Verifies a token: the header first (algorithm pinned, type, key id among the configured
    /// keys — nothing of the payload is read yet), then the signature, then issuer, audience and
    /// time.
    ///
    /// # Errors
    /// The [`TokenRejection`] reason.
    fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection>;
}

/// Signing failed (a bug or a broken key).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the access token")]
pub struct TokenIssueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);
