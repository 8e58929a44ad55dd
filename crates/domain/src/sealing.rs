//! Secrets at rest: values the service must be able to read back (TOTP seeds, webhook signing
//! secrets, messages waiting in the outbox) are stored sealed, never in the clear.
//!
//! Sealing binds the ciphertext to a *context* — which column of which row it belongs to — so a
//! sealed value copied into another row or column does not open there.

use std::fmt;

use secrecy::SecretSlice;

/// Seals and opens secrets (AES-256-GCM with the data-encryption keyring in `bulwark-security`).
pub trait Sealer: Send + Sync + fmt::Debug {
    /// Seals `plaintext` for `context` (e.g. `b"users.totp_secret:<user id>"`) with the active key.
    /// The result is text, safe to store in any column.
    ///
    /// # Errors
    /// [`SealError::Crypto`] when encryption fails (the system RNG failed).
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, SealError>;

    /// Opens a sealed value for the same `context`.
    ///
    /// # Errors
    /// [`SealError::Malformed`] for text that is not a sealed value; [`SealError::UnknownKey`]
    /// when its key is no longer in the keyring; [`SealError::Crypto`] when it was tampered with or
    /// belongs to another context.
    fn open(&self, sealed: &str, context: &[u8]) -> Result<SecretSlice<u8>, SealError>;

    /// Whether the value was sealed with a key other than the active one (re-seal it after a key
    /// rotation).
    fn needs_reseal(&self, sealed: &str) -> bool;
}

/// Why a value could not be sealed or opened. None of these says anything about the plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not in the sealed format.
    #[error("not a sealed value")]
    Malformed,
    /// Sealed with a key that is not in the keyring.
    #[error("sealed with an unknown key")]
    UnknownKey,
    /// Authentication failed (tampered, wrong context) or the cipher failed.
    #[error("cannot open or seal the value")]
    Crypto,
}
