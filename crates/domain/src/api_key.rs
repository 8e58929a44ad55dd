//! API keys: long-lived credentials for scripts and integrations, limited to scopes.
//!
//! A key is `bwk_<prefix>_<secret>`: the prefix (12 characters, public) finds the stored row, the
//! secret (256 random bits) is never stored — only a digest of the whole key, compared in constant
//! time after the lookup. What a key may do is the intersection of its scopes and its owner's
//! current role, and never the management of credentials: an API key cannot create or revoke API
//! keys, list or end sessions, touch MFA or passwords, or reach an admin route. Those need a
//! session (see [`crate::context::Credential`]).

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::opaque::{MintError, TokenDigest};
use crate::quota::PlanLimits;
use crate::user::{FieldViolation, Role};

/// How every API key begins: the bearer credential is a key, not an access token.
pub const KEY_PREFIX: &str = "bwk_";

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read documents and their attachments (those the owner may read).
    DocumentsRead,
    /// Create, change, share and delete documents, upload attachments (as the owner may).
    DocumentsWrite,
    /// List webhooks and read their delivery logs.
    WebhooksRead,
    /// Register and remove webhooks.
    WebhooksWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Self; 4] = [
        Self::DocumentsRead,
        Self::DocumentsWrite,
        Self::WebhooksRead,
        Self::WebhooksWrite,
    ];

    /// The public and stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DocumentsRead => "documents:read",
            Self::DocumentsWrite => "documents:write",
            Self::WebhooksRead => "webhooks:read",
            Self::WebhooksWrite => "webhooks:write",
        }
    }

    /// Parses the spelling.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    const fn bit(self) -> u8 {
        match self {
            Self::DocumentsRead => 1,
            Self::DocumentsWrite => 2,
            Self::WebhooksRead => 4,
            Self::WebhooksWrite => 8,
        }
    }
}

/// A set of scopes (small and `Copy`, so an [`crate::context::Actor`] can carry it).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// The set of these scopes.
    #[must_use]
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Whether the set holds `scope`.
    #[must_use]
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The scopes, in [`Scope::ALL`] order.
    #[must_use]
    pub fn to_vec(self) -> Vec<Scope> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .collect()
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.to_vec().iter().map(|s| s.as_str()))
            .finish()
    }
}

/// Parses the scopes a client asked for: at least one, each known, none twice.
///
/// # Errors
/// A violation on `scopes`.
pub fn parse_scopes(raw: &[String]) -> Result<Scopes, FieldViolation> {
    if raw.is_empty() {
        return Err(FieldViolation::new(
            "scopes",
            "required",
            "Give the key at least one scope.",
        ));
    }
    let mut scopes = Vec::with_capacity(raw.len());
    for r in raw {
        let scope = Scope::parse(r).ok_or_else(|| {
            FieldViolation::new(
                "scopes",
                "invalid",
                "Scopes are `documents:read`, `documents:write`, `webhooks:read` and `webhooks:write`.",
            )
        })?;
        if scopes.contains(&scope) {
            return Err(FieldViolation::new(
                "scopes",
                "duplicate",
                "List each scope at most once.",
            ));
        }
        scopes.push(scope);
    }
    Ok(Scopes::of(&scopes))
}

/// A key's name: 1..=100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    /// Parses a name.
    ///
    /// # Errors
    /// A violation on `name`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldViolation::new("name", "required", "Name the key."));
        }
        if trimmed.chars().count() > 100 {
            return Err(FieldViolation::new(
                "name",
                "too_long",
                "A key name has at most 100 characters.",
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                "name",
                "invalid",
                "A key name cannot contain control characters.",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// Whose.
    pub owner_id: Uuid,
    /// The owner's label for it.
    pub name: KeyName,
    /// The public prefix (`bwk_<prefix>_…`).
    pub prefix: String,
    /// What it may do.
    pub scopes: Scopes,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
}

/// A key to store.
#[derive(Debug)]
pub struct NewApiKey {
    /// Whose.
    pub owner_id: Uuid,
    /// Label.
    pub name: KeyName,
    /// Public prefix.
    pub prefix: String,
    /// Digest of the whole key.
    pub digest: TokenDigest,
    /// Scopes.
    pub scopes: Scopes,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
}

/// A stored key found by its prefix, with what authentication needs about its owner.
#[derive(Debug, Clone)]
pub struct StoredApiKey {
    /// Id.
    pub id: Uuid,
    /// Whose.
    pub owner_id: Uuid,
    /// The digest to compare with.
    pub digest: TokenDigest,
    /// Scopes.
    pub scopes: Scopes,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// The owner's current role.
    pub owner_role: Role,
    /// Whether the owner may act at all (not locked, not deleted).
    pub owner_active: bool,
    /// Whether the owner has MFA on (with `REQUIRE_MFA_FOR_ADMINS`, an administrator's key acts as
    /// a user's until it is).
    pub owner_mfa_enabled: bool,
    /// The owner's plan now (the key's requests count toward the owner's daily quota).
    pub owner_plan: crate::user::Plan,
    /// When the key was created (the "authentication time" of its requests: never recent enough
    /// for a step-up).
    pub created_at: OffsetDateTime,
    /// When it was last used (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
}

/// A freshly minted key.
pub struct MintedApiKey {
    /// The whole key, shown once.
    pub key: SecretString,
    /// Its public prefix.
    pub prefix: String,
    /// The digest to store.
    pub digest: TokenDigest,
}

impl fmt::Debug for MintedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedApiKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The cryptography of API keys.
pub trait ApiKeyTokens: Send + Sync + fmt::Debug {
    /// A fresh key.
    ///
    /// # Errors
    /// [`MintError`] when the system RNG fails.
    fn mint(&self) -> Result<MintedApiKey, MintError>;

    /// The prefix and digest of a presented key, or `None` when it does not have a key's exact
    /// shape (then nothing is looked up).
    fn recognise(&self, presented: &str) -> Option<(String, TokenDigest)>;

    /// Whether two digests are equal, compared in constant time.
    fn same(&self, stored: &TokenDigest, presented: &TokenDigest) -> bool;
}

/// Why a key was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CreateApiKeyError {
    /// The owner has as many keys as its plan allows.
    #[error("API key quota exceeded")]
    QuotaExceeded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ApiKeyStoreError),
}

/// The API key store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the API key store is unavailable")]
pub struct ApiKeyStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of API keys.
#[async_trait]
pub trait ApiKeyRepository: Send + Sync + fmt::Debug {
    /// Stores a key unless the owner already has as many as its plan allows (counted and inserted
    /// in one transaction under the owner's row lock).
    ///
    /// # Errors
    /// [`CreateApiKeyError`].
    async fn create(
        &self,
        new: NewApiKey,
        limits: &PlanLimits,
    ) -> Result<ApiKey, CreateApiKeyError>;

    /// The owner's keys, newest first.
    ///
    /// # Errors
    /// [`ApiKeyStoreError`].
    async fn list(&self, owner_id: Uuid) -> Result<Vec<ApiKey>, ApiKeyStoreError>;

    /// Deletes one key *of this owner*; false when there was none.
    ///
    /// # Errors
    /// [`ApiKeyStoreError`].
    async fn delete(&self, owner_id: Uuid, id: Uuid) -> Result<bool, ApiKeyStoreError>;

    /// The key with this prefix, with its owner's role and standing.
    ///
    /// # Errors
    /// [`ApiKeyStoreError`].
    async fn find_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>, ApiKeyStoreError>;

    /// Records a use (to the minute: at most one write per key per minute).
    ///
    /// # Errors
    /// [`ApiKeyStoreError`].
    async fn touch(&self, id: Uuid) -> Result<(), ApiKeyStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_sets_hold_what_they_were_given() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("documents:*"), None);
        let set = Scopes::of(&[Scope::DocumentsRead, Scope::WebhooksWrite]);
        assert!(set.contains(Scope::DocumentsRead));
        assert!(!set.contains(Scope::DocumentsWrite));
        assert_eq!(
            set.to_vec(),
            vec![Scope::DocumentsRead, Scope::WebhooksWrite]
        );
        assert!(Scopes::default().is_empty());
    }

    #[test]
    fn requested_scopes_must_be_known_once_and_not_empty() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse_scopes(&[]).unwrap_err().code, "required");
        assert_eq!(parse_scopes(&s(&["admin"])).unwrap_err().code, "invalid");
        assert_eq!(
            parse_scopes(&s(&["documents:read", "documents:read"]))
                .unwrap_err()
                .code,
            "duplicate"
        );
        assert!(parse_scopes(&s(&["documents:read"])).is_ok());
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(KeyName::parse("  ci  ").unwrap().as_str(), "ci");
        assert_eq!(KeyName::parse(" ").unwrap_err().code, "required");
        assert_eq!(
            KeyName::parse(&"x".repeat(101)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(KeyName::parse("a\u{0}b").unwrap_err().code, "invalid");
    }
}
