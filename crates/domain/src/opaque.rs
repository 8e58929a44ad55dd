//! Opaque secrets handed to clients: refresh tokens, email-verification and password-reset tokens.
//!
//! Each is random (256 bits from a CSPRNG, in `bulwark-security`), carries a prefix naming its
//! kind, and is stored only as a SHA-256 digest. A fast hash is right here, unlike for passwords:
//! the input already has 256 bits of entropy, so there is nothing to brute-force, and lookups stay
//! one indexed equality. A token of one kind is never accepted as another: the prefix is checked
//! before anything is looked up.

use std::fmt;

use secrecy::SecretString;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Exchanged at `/auth/refresh` for a new token pair.
    Refresh,
    /// Proves control of the account's email (`/auth/email/verify`).
    EmailVerification,
    /// Sets a new password without the old one (`/auth/password/reset`).
    PasswordReset,
    /// A webhook's signing secret: shown to its owner once, kept sealed (not hashed: deliveries
    /// need it to sign), never looked up by digest.
    WebhookSecret,
    /// The single-purpose token between a correct password and a session for an MFA account
    /// (`/auth/mfa/verify`); useless anywhere else.
    MfaChallenge,
    /// The value of the `__Host-` cookie that binds an OAuth sign-in to the browser that started
    /// it (stored as a digest with the sign-in; never looked up by kind).
    OAuthBrowser,
}

impl TokenKind {
    /// The stored spelling (`one_time_tokens.purpose`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
            Self::WebhookSecret => "webhook_secret",
            Self::MfaChallenge => "mfa_challenge",
            Self::OAuthBrowser => "oauth_browser",
        }
    }
}

/// The SHA-256 digest of a token: what the database holds instead of the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest([REDACTED])")
    }
}

/// A freshly minted token: the secret for the client (once) and the digest for the store.
pub struct MintedToken {
    /// The token text. Shown to its owner once; never stored, logged or audited.
    pub secret: SecretString,
    /// What to store.
    pub digest: TokenDigest,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Mints and recognises opaque tokens.
pub trait OpaqueTokens: Send + Sync + fmt::Debug {
    /// A fresh token of this kind.
    ///
    /// # Errors
    /// [`MintError`] when the random number generator fails (the caller answers 5xx: a token must
    /// never be made from weak randomness).
    fn mint(&self, kind: TokenKind) -> Result<MintedToken, MintError>;

    /// The digest of a presented token, or `None` when the text is not a token of this kind (wrong
    /// prefix, length or alphabet): such input never reaches the store.
    fn recognise(&self, kind: TokenKind, presented: &str) -> Option<TokenDigest>;
}

/// The random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot mint a token: the random number generator failed")]
pub struct MintError;

/// Single-use tokens (email verification, password reset), stored as digests.
#[async_trait::async_trait]
pub trait OneTimeTokenStore: Send + Sync + fmt::Debug {
    /// Stores a new token for `user_id`, valid for `ttl`. Earlier unused tokens of the same kind for
    /// the same user are invalidated: only the newest mail works.
    ///
    /// # Errors
    /// [`OneTimeTokenStoreError`] when the store fails.
    async fn issue(
        &self,
        user_id: uuid::Uuid,
        kind: TokenKind,
        digest: TokenDigest,
        ttl: std::time::Duration,
    ) -> Result<(), OneTimeTokenStoreError>;

    /// Uses a token, atomically: of concurrent calls with the same digest at most one gets the
    /// user id. `None` when the token is unknown, of another kind, used, superseded or expired.
    ///
    /// # Errors
    /// [`OneTimeTokenStoreError`] when the store fails.
    async fn consume(
        &self,
        kind: TokenKind,
        digest: TokenDigest,
    ) -> Result<Option<uuid::Uuid>, OneTimeTokenStoreError>;

    /// The user a token belongs to, without using it: `None` when it is unknown, of another kind,
    /// used, superseded or expired. (A reset checks the new password before it spends the token.)
    ///
    /// # Errors
    /// [`OneTimeTokenStoreError`] when the store fails.
    async fn peek(
        &self,
        kind: TokenKind,
        digest: TokenDigest,
    ) -> Result<Option<uuid::Uuid>, OneTimeTokenStoreError>;
}

/// The one-time token store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the one-time token store is unavailable")]
pub struct OneTimeTokenStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);
