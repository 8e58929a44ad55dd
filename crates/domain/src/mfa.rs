//! Multi-factor authentication: the ports of the second factor — TOTP (RFC 6238) and one-time
//! recovery codes.
//!
//! The rules that use them (enrolment needs a fresh authentication, a code is accepted once, a
//! recovery code once, every event audited) live in the MFA use cases; the adapters here only do
//! the cryptography: mint a secret and say how to show it, tell which time step a code matches,
//! mint recovery codes and digest a presented one.

use std::fmt;

use secrecy::{SecretSlice, SecretString};
use time::OffsetDateTime;

use crate::opaque::{MintError, TokenDigest};

/// A new TOTP secret and the ways to show it to the user, once, at setup. Every field reveals the
/// secret (the QR code encodes the `otpauth://` URL), so every field is secret.
pub struct TotpEnrolment {
    /// The raw secret (160 bits from the CSPRNG): sealed and stored, never shown as such.
    pub secret: SecretSlice<u8>,
    /// The secret in base32 without padding, for typing into an authenticator by hand.
    pub secret_base32: SecretString,
    /// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_url: SecretString,
    /// The `otpauth://` URL as a QR code: a complete SVG document.
    pub qr_svg: SecretString,
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrolment([REDACTED])")
    }
}

/// TOTP: six digits, 30-second steps, HMAC-SHA1 — what every authenticator app speaks.
pub trait Totp: Send + Sync + fmt::Debug {
    /// A fresh secret for `account` (the label the authenticator shows: the user's email).
    ///
    /// # Errors
    /// [`MintError`] when the system RNG fails.
    fn enrol(&self, account: &str) -> Result<TotpEnrolment, MintError>;

    /// The rebuilt enrolment of an existing secret (the same URL and QR code), for showing a
    /// pending setup again.
    fn show(&self, secret: &SecretSlice<u8>, account: &str) -> TotpEnrolment;

    /// The time step (`unix time / 30`) whose code `code` is, checking the step of `now` and one
    /// step either side (clock drift); `None` for anything else, including input that is not six
    /// ASCII digits. Comparisons are constant-time. The caller refuses a step it has already
    /// accepted (a code is single-use).
    fn verify(&self, secret: &SecretSlice<u8>, code: &str, now: OffsetDateTime) -> Option<i64>;
}

/// Recovery codes: single-use codes that stand in for the authenticator. Random (at least 80
/// bits each), shown once, stored as digests.
pub trait RecoveryCodes: Send + Sync + fmt::Debug {
    /// `count` fresh codes with their digests.
    ///
    /// # Errors
    /// [`MintError`] when the system RNG fails.
    fn mint(&self, count: usize) -> Result<Vec<(SecretString, TokenDigest)>, MintError>;

    /// The digest of a presented code, after normalising what people do when they type one (case,
    /// spaces, dashes); `None` when it does not have a code's shape (nothing is looked up then).
    fn recognise(&self, presented: &str) -> Option<TokenDigest>;
}

/// A user's TOTP record.
#[derive(Clone)]
pub struct TotpRecord {
    /// The active secret, sealed; `None` while MFA is off.
    pub sealed_secret: Option<String>,
    /// A setup not yet confirmed, sealed.
    pub pending_sealed_secret: Option<String>,
    /// The last time step accepted (codes of this step or earlier are refused).
    pub last_used_step: Option<i64>,
}

impl fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpRecord")
            .field("enabled", &self.sealed_secret.is_some())
            .field("pending", &self.pending_sealed_secret.is_some())
            .field("last_used_step", &self.last_used_step)
            .finish()
    }
}

/// A counted attempt on a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeAttempt {
    /// Whose sign-in it is.
    pub user_id: uuid::Uuid,
}

/// The MFA store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the MFA store is unavailable")]
pub struct MfaStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of TOTP secrets, recovery codes and sign-in challenges.
#[async_trait::async_trait]
pub trait MfaStore: Send + Sync + fmt::Debug {
    /// Whether the user has MFA on.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn enabled(&self, user_id: uuid::Uuid) -> Result<bool, MfaStoreError>;

    /// The user's TOTP record, if any.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn totp(&self, user_id: uuid::Uuid) -> Result<Option<TotpRecord>, MfaStoreError>;

    /// Stores a pending (unconfirmed) secret, replacing an earlier pending one; the active secret,
    /// if any, is untouched.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn set_pending(&self, user_id: uuid::Uuid, sealed: &str) -> Result<(), MfaStoreError>;

    /// Turns MFA on with `sealed_secret` (the confirmed pending secret, sealed for the active
    /// column) as of `step`, clears the pending secret and replaces every recovery code with
    /// `recovery_codes` — in one transaction. False when there was no pending secret.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn enable(
        &self,
        user_id: uuid::Uuid,
        sealed_secret: &str,
        step: i64,
        recovery_codes: &[TokenDigest],
    ) -> Result<bool, MfaStoreError>;

    /// Turns MFA off: the secret, any pending one and every recovery code are deleted. False when
    /// it was off.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn disable(&self, user_id: uuid::Uuid) -> Result<bool, MfaStoreError>;

    /// Records `step` as used if it is later than the last used one (atomic): false for a replay.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn use_step(&self, user_id: uuid::Uuid, step: i64) -> Result<bool, MfaStoreError>;

    /// Spends an unused recovery code of the user (atomic): false when unknown or spent.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn use_recovery_code(
        &self,
        user_id: uuid::Uuid,
        digest: &TokenDigest,
    ) -> Result<bool, MfaStoreError>;

    /// Stores a sign-in challenge.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn create_challenge(
        &self,
        user_id: uuid::Uuid,
        digest: &TokenDigest,
        ttl: std::time::Duration,
    ) -> Result<(), MfaStoreError>;

    /// Counts one attempt on a live challenge with fewer than `max_attempts` attempts (atomic):
    /// `None` when it is unknown, expired or used up.
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn attempt_challenge(
        &self,
        digest: &TokenDigest,
        max_attempts: u32,
    ) -> Result<Option<ChallengeAttempt>, MfaStoreError>;

    /// Deletes a challenge (it succeeded); false when it was already gone (a concurrent success).
    ///
    /// # Errors
    /// [`MfaStoreError`].
    async fn consume_challenge(&self, digest: &TokenDigest) -> Result<bool, MfaStoreError>;
}

/// What a user presents as the second factor.
pub enum MfaProof {
    /// A six-digit code from the authenticator.
    Totp(String),
    /// One of the recovery codes.
    RecoveryCode(SecretString),
}

impl fmt::Debug for MfaProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Totp(_) => f.write_str("MfaProof::Totp([REDACTED])"),
            Self::RecoveryCode(_) => f.write_str("MfaProof::RecoveryCode([REDACTED])"),
        }
    }
}

/// The second factor as the sign-in flow sees it: whether an account needs one, the challenge
/// between password and session, and checking a proof. The MFA service implements it; the sign-in
/// service (`AuthService`) only asks.
#[async_trait::async_trait]
pub trait SecondFactor: Send + Sync + fmt::Debug {
    /// Whether the user must present a second factor to sign in.
    ///
    /// # Errors
    /// [`crate::error::Unexpected`].
    async fn required(&self, user_id: uuid::Uuid) -> Result<bool, crate::error::Unexpected>;

    /// A fresh single-purpose challenge token for the user's sign-in.
    ///
    /// # Errors
    /// [`crate::error::Unexpected`].
    async fn challenge(
        &self,
        user_id: uuid::Uuid,
    ) -> Result<SecretString, crate::error::Unexpected>;

    /// Counts an attempt on a presented challenge token: whose sign-in it is, or `None` when the
    /// token is not a live challenge with attempts left.
    ///
    /// # Errors
    /// [`crate::error::Unexpected`].
    async fn attempt(
        &self,
        presented: &str,
    ) -> Result<Option<uuid::Uuid>, crate::error::Unexpected>;

    /// Whether the proof is good for the user — a TOTP code of a step not used before, or an
    /// unspent recovery code — spending it when it is.
    ///
    /// # Errors
    /// [`crate::error::Unexpected`].
    async fn check(
        &self,
        user_id: uuid::Uuid,
        proof: &MfaProof,
    ) -> Result<bool, crate::error::Unexpected>;

    /// Ends a challenge that succeeded; false when another request already ended it.
    ///
    /// # Errors
    /// [`crate::error::Unexpected`].
    async fn finish(&self, presented: &str) -> Result<bool, crate::error::Unexpected>;
}
