//! Passwords: the policy a new password must meet, and the port that hashes and verifies them.
//!
//! The policy is configurable between two styles:
//!
//! - **`composition`** (the default, what the service's contract asks for): 12..=128 characters, upper
//!   case, lower case, a digit and a symbol, a zxcvbn score of at least 3, not a known common
//!   password, and not containing the email's local part or the display name;
//! - **`asvs`** (ASVS 5.0, 6.2.5): the same without the composition rules, which NIST and ASVS now
//!   advise against because they push people to `Password1!`.
//!
//! A password is never truncated, trimmed or case-folded (ASVS 6.2.8). It *is* normalised to Unicode
//! NFKC (as NIST SP 800-63B advises), before it is measured and before it is hashed or verified, so
//! `é` typed as one code point or as `e` + accent is the same password and counts as one character.
//! One longer than the maximum is refused before anything else looks at it — not zxcvbn and
//! certainly not argon2 — so a megabyte-long "password" costs nothing.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use zxcvbn::matching::patterns::MatchPattern;

use crate::user::{DisplayName, Email, FieldViolation};

/// Which rule set [`PasswordPolicy`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyStyle {
    /// Length, composition (upper, lower, digit, symbol), strength, blocklist, context.
    Composition,
    /// Length, strength, blocklist, context — no composition rules (ASVS 5.0 6.2.5).
    Asvs,
}

/// The rules a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Rule set.
    pub style: PolicyStyle,
    /// Fewest characters (Unicode scalar values).
    pub min_chars: usize,
    /// Most characters. ASVS 6.2.9 wants at least 64 to be allowed.
    pub max_chars: usize,
    /// Lowest zxcvbn score (0..=4).
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            style: PolicyStyle::Composition,
            min_chars: 12,
            max_chars: 128,
            min_score: 3,
        }
    }
}

/// A password that met the policy. Only [`PasswordPolicy::check`] makes one.
pub struct Password(SecretString);

impl Password {
    /// The password, for the hasher. Expose it only on the line that uses it.
    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl Password {
    /// A password that has just verified against its stored hash, to be hashed again with the
    /// current parameters. It skips the policy on purpose: a policy that tightened since the
    /// password was chosen is enforced at the next password change, not by locking the user out.
    pub(crate) fn verified(candidate: &SecretString) -> Self {
        Self(normalize(candidate))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// Context-specific words a password may not contain: the user's own identifiers. Either may be
/// missing (a registration whose email did not parse is still told every password rule it broke).
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    /// The account's email.
    pub email: Option<&'a Email>,
    /// The account's display name.
    pub display_name: Option<&'a DisplayName>,
}

/// A composition rule: its code, what it asks for, and the character test.
type CompositionRule = (&'static str, &'static str, fn(char) -> bool);

/// Identifiers shorter than this are not searched for inside a password: "contains `al`" would
/// refuse half of all passwords of anyone called Al, for no security gain.
const MIN_CONTEXT_LEN: usize = 3;

impl PasswordPolicy {
    /// A violation on `field` when the candidate is longer than the policy allows — asked before
    /// anything else looks at a password (it is never hashed). Counting stops one past the
    /// maximum, so a huge input costs no more than a long one.
    #[must_use]
    pub fn refuse_overlong(
        &self,
        field: &'static str,
        candidate: &SecretString,
    ) -> Option<FieldViolation> {
        let max = self.max_chars;
        (candidate.expose_secret().chars().take(max + 1).count() > max).then(|| {
            FieldViolation::new(
                field,
                "too_long",
                format!("A password has at most {max} characters."),
            )
        })
    }

    /// Checks a candidate password and, when every rule holds, returns it as a [`Password`].
    ///
    /// # Errors
    /// Every rule that failed, each as a [`FieldViolation`] on `password` (`field` can be renamed by
    /// the caller, e.g. to `new_password`). A too-long password reports only `too_long`.
    pub fn check(
        &self,
        candidate: SecretString,
        context: PasswordContext<'_>,
    ) -> Result<Password, Vec<FieldViolation>> {
        let too_long = || {
            vec![violation(
                "too_long",
                format!("A password has at most {} characters.", self.max_chars),
            )]
        };
        // Counting stops past the maximum: the cost of a huge input is bounded by the limit.
        if candidate
            .expose_secret()
            .chars()
            .take(self.max_chars + 1)
            .count()
            > self.max_chars
        {
            return Err(too_long());
        }
        let candidate = normalize(&candidate);
        let text = candidate.expose_secret();
        // NFKC can expand a few characters (`ﬃ` → `ffi`): measure again.
        let length = text.chars().count();
        if length > self.max_chars {
            return Err(too_long());
        }

        let mut violations = Vec::new();
        if length < self.min_chars {
            violations.push(violation(
                "too_short",
                format!("A password has at least {} characters.", self.min_chars),
            ));
        }
        if self.style == PolicyStyle::Composition {
            let rules: [CompositionRule; 4] = [
                (
                    "missing_uppercase",
                    "an upper-case letter",
                    char::is_uppercase,
                ),
                (
                    "missing_lowercase",
                    "a lower-case letter",
                    char::is_lowercase,
                ),
                ("missing_digit", "a digit", |c| c.is_ascii_digit()),
                ("missing_symbol", "a symbol or space", |c| {
                    !c.is_alphanumeric()
                }),
            ];
            for (code, what, holds) in rules {
                if !text.chars().any(holds) {
                    violations.push(violation(code, format!("A password needs {what}.")));
                }
            }
        }

        let lowered = text.to_lowercase();
        let local = context.email.map(|e| e.local_part().to_lowercase());
        if let Some(local) = &local
            && local.chars().count() >= MIN_CONTEXT_LEN
            && lowered.contains(local.as_str())
        {
            violations.push(violation(
                "contains_email",
                "A password cannot contain your email address.",
            ));
        }
        let name = context.display_name.map(|d| d.as_str().to_lowercase());
        if let Some(name) = &name
            && name.chars().count() >= MIN_CONTEXT_LEN
            && lowered.contains(name.as_str())
        {
            violations.push(violation(
                "contains_display_name",
                "A password cannot contain your display name.",
            ));
        }

        if !text.is_empty() {
            let user_inputs: Vec<&str> = [
                context.email.map(Email::as_str),
                context.email.map(Email::local_part),
                context.display_name.map(DisplayName::as_str),
            ]
            .into_iter()
            .flatten()
            .collect();
            let entropy = zxcvbn::zxcvbn(text, &user_inputs);
            if is_common(&entropy, text) {
                violations.push(violation(
                    "common_password",
                    "This password is on a list of commonly used passwords.",
                ));
            }
            if u8::from(entropy.score()) < self.min_score {
                violations.push(violation(
                    "too_weak",
                    "This password is too easy to guess; a few unrelated words make a strong one.",
                ));
            }
        }

        if violations.is_empty() {
            Ok(Password(candidate))
        } else {
            Err(violations)
        }
    }
}

/// A password as the policy measures it and the hasher sees it: Unicode NFKC. Login candidates go
/// through the same function, so a password registered on one platform verifies on another.
#[must_use]
pub fn normalize(password: &SecretString) -> SecretString {
    use unicode_normalization::UnicodeNormalization;
    SecretString::from(password.expose_secret().nfkc().collect::<String>())
}

/// The whole password is one entry (possibly with capitals or l33t substitutions) of zxcvbn's
/// list of ~30,000 passwords seen most often in breaches — a superset of the top 3,000 that
/// ASVS 6.2.4 asks for.
fn is_common(entropy: &zxcvbn::Entropy, text: &str) -> bool {
    let chars = text.chars().count();
    entropy.sequence().iter().any(|m| {
        m.i == 0
            && m.j + 1 >= chars.min(100)
            // zxcvbn does not export its `DictionaryType`; its default variant is `Passwords` (the
            // breach list), and `common_passwords_are_refused_even_when_they_meet_composition`
            // fails should that ever change.
            && matches!(&m.pattern, MatchPattern::Dictionary(d) if d.dictionary_name == Default::default())
    })
}

fn violation(code: &'static str, message: impl Into<String>) -> FieldViolation {
    FieldViolation::new("password", code, message)
}

/// A stored password hash (a PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$…`). Not a secret
/// in the way a password is, but an offline-crackable copy of one: never logged, never returned.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a stored PHC string (from the database or the hasher).
    #[must_use]
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storage.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password does not match (or there was no account: see [`PasswordHasher::verify`]).
    Mismatch,
    /// The password matches.
    Match {
        /// The stored hash uses weaker parameters than the current ones: hash the password again
        /// and store the new hash.
        needs_rehash: bool,
    },
}

/// Hashes and verifies passwords (argon2id in `bulwark-security`).
#[async_trait]
pub trait PasswordHasher: Send + Sync + fmt::Debug {
    /// Hashes a new password with a fresh random salt and the current parameters.
    ///
    /// # Errors
    /// [`HashError`] when the hasher fails (out of memory, the worker pool is gone).
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Verifies a candidate against a stored hash. With `None` (no such account) it verifies
    /// against a dummy hash of the current parameters and answers [`Verification::Mismatch`], so
    /// that an unknown account costs exactly as much time as a wrong password (ASVS 6.3.8).
    ///
    /// # Errors
    /// [`HashError`] when the stored hash cannot be parsed or the hasher fails.
    async fn verify(
        &self,
        candidate: &SecretString,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, HashError>;
}

/// The hasher failed. The source says why, for the log only.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The hasher's queue is full: more hashes are waiting than it lets wait (a sign-in flood). The
/// request gets 503 with `Retry-After` instead of queueing without bound.
#[derive(Debug, thiserror::Error)]
#[error("too many passwords are being hashed; try again shortly")]
pub struct Saturated;

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> (Email, DisplayName) {
        (
            Email::parse("ada.lovelace@example.com").unwrap(),
            DisplayName::parse("Countess Ada").unwrap(),
        )
    }

    fn codes(policy: &PasswordPolicy, password: &str) -> Vec<&'static str> {
        let (email, name) = context();
        let context = PasswordContext {
            email: Some(&email),
            display_name: Some(&name),
        };
        match policy.check(SecretString::from(password), context) {
            Ok(_) => vec![],
            Err(violations) => violations.into_iter().map(|v| v.code).collect(),
        }
    }

    const STRONG: &str = "Correct-Horse-Battery-9-Staple";

    #[test]
    fn a_long_unpredictable_password_passes_both_styles() {
        assert!(codes(&PasswordPolicy::default(), STRONG).is_empty());
        let asvs = PasswordPolicy {
            style: PolicyStyle::Asvs,
            ..PasswordPolicy::default()
        };
        assert!(codes(&asvs, "correct horse battery staple orbit").is_empty());
    }

    #[test]
    fn every_failed_rule_is_listed() {
        let got = codes(&PasswordPolicy::default(), "aaaa");
        for code in [
            "too_short",
            "missing_uppercase",
            "missing_digit",
            "missing_symbol",
            "too_weak",
        ] {
            assert!(got.contains(&code), "{code} missing from {got:?}");
        }
    }

    #[test]
    fn composition_rules_apply_only_in_composition_style() {
        let asvs = PasswordPolicy {
            style: PolicyStyle::Asvs,
            ..PasswordPolicy::default()
        };
        let password = "correct horse battery staple orbit";
        assert_eq!(
            codes(&PasswordPolicy::default(), password),
            ["missing_uppercase", "missing_digit"]
        );
        assert!(codes(&asvs, password).is_empty());
    }

    #[test]
    fn common_passwords_are_refused_even_when_they_meet_composition() {
        for common in ["Password123!", "P@ssw0rd1234", "Qwerty123456!"] {
            let got = codes(&PasswordPolicy::default(), common);
            assert!(
                got.contains(&"too_weak") || got.contains(&"common_password"),
                "{common}: {got:?}"
            );
        }
        assert!(
            codes(
                &PasswordPolicy {
                    min_chars: 8,
                    ..PasswordPolicy::default()
                },
                "password"
            )
            .contains(&"common_password")
        );
    }

    #[test]
    fn the_users_own_identifiers_are_refused() {
        assert!(
            codes(&PasswordPolicy::default(), "Xy9!ada.lovelace#Qz").contains(&"contains_email")
        );
        assert!(
            codes(&PasswordPolicy::default(), "Xy9!COUNTESS ADA#Qz-77")
                .contains(&"contains_display_name")
        );
    }

    #[test]
    fn too_long_is_refused_alone_and_without_further_work() {
        // A MiB: refused by the length check alone (no composition, context or strength findings
        // are reported, because none of those checks ran).
        let huge = "A1!a".repeat(256 * 1024);
        assert_eq!(codes(&PasswordPolicy::default(), &huge), ["too_long"]);
        let exactly_max: String = STRONG.chars().cycle().take(128).collect();
        assert!(!codes(&PasswordPolicy::default(), &exactly_max).contains(&"too_long"));
        let one_more: String = STRONG.chars().cycle().take(129).collect();
        assert_eq!(codes(&PasswordPolicy::default(), &one_more), ["too_long"]);
    }

    #[test]
    fn passwords_are_measured_after_unicode_normalisation() {
        // Six accented letters typed as letter + combining accent are six characters, not twelve.
        let decomposed = "e\u{301}".repeat(6);
        assert!(codes(&PasswordPolicy::default(), &decomposed).contains(&"too_short"));
        let (email, name) = context();
        let context = PasswordContext {
            email: Some(&email),
            display_name: Some(&name),
        };
        let composed = PasswordPolicy::default()
            .check(
                SecretString::from("Caf\u{e9}-Horse-Battery-9-Staple"),
                context,
            )
            .unwrap();
        let decomposed = PasswordPolicy::default()
            .check(
                SecretString::from("Cafe\u{301}-Horse-Battery-9-Staple"),
                context,
            )
            .unwrap();
        assert_eq!(
            composed.secret().expose_secret(),
            decomposed.secret().expose_secret()
        );
    }

    #[test]
    fn passwords_are_not_trimmed_or_case_folded() {
        let (email, name) = context();
        let padded = format!("  {STRONG}  ");
        let password = PasswordPolicy::default()
            .check(
                SecretString::from(padded.clone()),
                PasswordContext {
                    email: Some(&email),
                    display_name: Some(&name),
                },
            )
            .unwrap();
        assert_eq!(password.secret().expose_secret(), padded);
        assert_eq!(format!("{password:?}"), "Password([REDACTED])");
    }
}
