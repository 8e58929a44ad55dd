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
