//! Who a user is: an email, a display name, a role. Each is a type that cannot hold an invalid
//! value — handlers parse raw strings into them once, and nothing downstream re-checks.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::password::PasswordHash;

/// Why a piece of user input was refused: a stable code and a human message, per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's name as clients send it (`email`, `display_name`, `password`).
    pub field: &'static str,
    /// A stable, machine-readable code (`invalid_format`, `too_short`).
    pub code: &'static str,
    /// A human-readable explanation, safe to show.
    pub message: String,
}

impl FieldViolation {
    pub(crate) fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

/// Longest email address accepted (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address, normalised: surrounding whitespace trimmed and the domain lower-cased.
///
/// The local part keeps its case (RFC 5321 lets a server treat `Ada` and `ada` as different
/// mailboxes), but uniqueness in the database is case-insensitive over the whole address, so
/// `Ada@x.io` and `ada@x.io` cannot be two accounts.
///
/// The accepted syntax is a deliberate subset of RFC 5322 (an allowlist, ASVS 2.2.1): an unquoted
/// local part of printable characters without spaces or specials, and a DNS domain of at least two
/// labels of letters, digits and hyphens (internationalised domains in their `xn--` form). Quoted
/// local parts, comments and IP-literal domains are legal but exotic, and each has been a way to
/// confuse a downstream parser; no real user needs them to sign up.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalises an email address.
    ///
    /// # Errors
    /// A [`FieldViolation`] for `email` with code `invalid_format` or `too_long`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let trimmed = raw.trim();
        if trimmed.len() > MAX_EMAIL_LEN {
            return Err(FieldViolation::new(
                "email",
                "too_long",
                format!("An email address has at most {MAX_EMAIL_LEN} characters."),
            ));
        }
        let invalid = || {
            FieldViolation::new(
                "email",
                "invalid_format",
                "This is not a valid email address.",
            )
        };
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
        if !is_local_part(local) || !is_domain(domain) {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The normalised address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    #[must_use]
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

// An email address is personal data: logs and panics get a masked form.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "Email(***@{domain})")
    }
}

fn is_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
}

fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    (3..=253).contains(&domain.len())
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        // The top-level label is never all digits (that would be an IP address).
        && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// The name other users see. Trimmed, 1..=100 characters, no control characters and no invisible
/// format characters (bidirectional overrides, zero-width characters): see `is_format_character`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name.
    ///
    /// # Errors
    /// A [`FieldViolation`] for `display_name`: `required`, `too_long` or `invalid_characters`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldViolation::new(
                "display_name",
                "required",
                "A display name is required.",
            ));
        }
        if trimmed.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(FieldViolation::new(
                "display_name",
                "too_long",
                format!("A display name has at most {MAX_DISPLAY_NAME_CHARS} characters."),
            ));
        }
        let forbidden = |c: char| c.is_control() || is_format_character(c);
        if trimmed.chars().any(forbidden) {
            return Err(FieldViolation::new(
                "display_name",
                "invalid_characters",
                "A display name cannot contain control, invisible or text-direction characters.",
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

/// Unicode's "format" characters (general category Cf, Unicode 15): invisible, they change how
/// text around them is displayed — direction overrides, zero-width spaces and joiners, soft
/// hyphens, tags — which is how `ad\u{200B}min` passes for `admin`. None belongs in a name shown to
/// other users. (Emoji written with zero-width joiners are refused with them.)
fn is_format_character(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{0890}'..='\u{0891}'
        | '\u{08E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// What a user may do. Permissions per role are decided by the domain's policy (the authorisation
/// issue); this type only names the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everyone.
    User,
    /// May read any document; may not change roles.
    Moderator,
    /// Everything.
    Admin,
}

impl Role {
    /// The stored spelling (matches the `users_role_check` constraint).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Moderator => "moderator",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored spelling.
    #[must_use]
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "moderator" => Some(Self::Moderator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A user's plan: which quotas apply (the limits per plan are configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The default.
    Free,
    /// Higher limits.
    Pro,
}

impl Plan {
    /// The stored and public spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
        }
    }

    /// Parses the spelling.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "free" => Some(Self::Free),
            "pro" => Some(Self::Pro),
            _ => None,
        }
    }
}

/// A user as an administrator sees it in the user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The user.
    pub user: User,
    /// Its plan.
    pub plan: Plan,
}

/// A page of users, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The users.
    pub items: Vec<UserSummary>,
    /// Where the next page starts.
    pub next: Option<crate::document::Cursor>,
}

/// A user listing, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Page size, 1..=100.
    pub limit: u32,
    /// Continue after this position (`created_at`, `id`).
    pub after: Option<crate::document::Cursor>,
    /// Case-insensitive substring of the email or display name, matched literally.
    pub q: Option<String>,
}

/// A user as the service knows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub display_name: DisplayName,
    /// Role.
    pub role: Role,
    /// When the email was verified, if it was.
    pub email_verified_at: Option<OffsetDateTime>,
    /// Locked by an administrator (cannot sign in).
    pub locked: bool,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// Whether a second factor (TOTP) is on.
    pub mfa_enabled: bool,
}

/// What signing in needs to know about an account, looked up by email.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account.
    pub user_id: Uuid,
    /// Its password hash; `None` for accounts without a password (OAuth only).
    pub password_hash: Option<PasswordHash>,
    /// Locked by an administrator.
    pub locked: bool,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email (unique, case-insensitively).
    pub email: Email,
    /// Display name.
    pub display_name: DisplayName,
    /// Hash of the (policy-checked) password.
    pub password_hash: PasswordHash,
    /// Role; `User` except for `bulwark create-admin`.
    pub role: Role,
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// An account with this email exists (the `users_email_key` constraint).
    #[error("the email is taken")]
    EmailTaken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] UserStoreError),
}

/// The user store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the user store is unavailable")]
pub struct UserStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of users. Deleted accounts are invisible to every method.
#[async_trait]
pub trait UserRepository: Send + Sync + fmt::Debug {
    /// Creates a user.
    ///
    /// # Errors
    /// [`CreateUserError::EmailTaken`] when the email is in use (whatever its case);
    /// [`CreateUserError::Store`] otherwise.
    async fn create(&self, new: NewUser) -> Result<User, CreateUserError>;

    /// The user with this id.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn find(&self, id: Uuid) -> Result<Option<User>, UserStoreError>;

    /// What signing in needs, by email (case-insensitively).
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, UserStoreError>;

    /// Replaces the password hash (a password change, a reset, or a rehash at login).
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn set_password_hash(&self, id: Uuid, hash: &PasswordHash) -> Result<(), UserStoreError>;

    /// What re-authentication needs, by id (a password change, an account deletion).
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn credentials_by_id(&self, id: Uuid) -> Result<Option<Credentials>, UserStoreError>;

    /// Sets the display name; `None` when there is no such (undeleted) user.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn update_display_name(
        &self,
        id: Uuid,
        display_name: &DisplayName,
    ) -> Result<Option<User>, UserStoreError>;

    /// Marks the email verified (idempotent). Returns false when there is no such user.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn mark_email_verified(&self, id: Uuid) -> Result<bool, UserStoreError>;

    /// Locks or unlocks the account. Returns false when there is no such user.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn set_locked(&self, id: Uuid, locked: bool) -> Result<bool, UserStoreError>;

    /// A page of (undeleted) users, newest first, optionally filtered.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, UserStoreError>;

    /// One (undeleted) user with its plan.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn summary(&self, id: Uuid) -> Result<Option<UserSummary>, UserStoreError>;

    /// Sets the role. Returns false when there is no such user.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn set_role(&self, id: Uuid, role: Role) -> Result<bool, UserStoreError>;

    /// Sets the plan. Returns false when there is no such user.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn set_plan(&self, id: Uuid, plan: Plan) -> Result<bool, UserStoreError>;

    /// Deletes the account: the row stays (audit rows point at it) but its personal data is erased —
    /// the email becomes a placeholder no one can sign in with (which frees the address), the
    /// display name is replaced and the password hash removed. Returns false when there was no such
    /// user.
    ///
    /// # Errors
    /// [`UserStoreError`] when the store fails.
    async fn delete_and_anonymise(&self, id: Uuid) -> Result<bool, UserStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_their_domain_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace@example.com");
        assert_eq!(email.local_part(), "Ada.Lovelace");
        for ok in [
            "a@b.co",
            "first+tag@sub.example.org",
            "o'neil@xn--bcher-kva.example",
            "x_y-z@a-b.io",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn exotic_or_broken_emails_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "\"quoted\"@c.com",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@b.com\r\nBcc: x@y.z",
            "<a@b.com>",
            "a@b.com,c@d.com",
            "ädä@b.com",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_masks_the_address() {
        let printed = format!("{:?}", Email::parse("secret.person@example.com").unwrap());
        assert!(!printed.contains("secret.person"), "{printed}");
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert_eq!(
            DisplayName::parse("Łukasz 李").unwrap().as_str(),
            "Łukasz 李"
        );
        assert_eq!(DisplayName::parse("   ").unwrap_err().code, "required");
        assert_eq!(
            DisplayName::parse(&"x".repeat(101)).unwrap_err().code,
            "too_long"
        );
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        for bad in [
            "a\u{0}b",
            "line\nbreak",
            "admin\u{202e}nimda",
            "tab\there",
            "\u{2066}x",
            "ad\u{200B}min",
            "ad\u{00AD}min",
            "a\u{061C}b",
            "x\u{FEFF}",
            "a\u{E0041}",
        ] {
            assert_eq!(
                DisplayName::parse(bad).unwrap_err().code,
                "invalid_characters",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn roles_round_trip_their_stored_spelling() {
        for role in [Role::User, Role::Moderator, Role::Admin] {
            assert_eq!(Role::from_stored(role.as_str()), Some(role));
        }
        assert_eq!(Role::from_stored("root"), None);
    }
}
