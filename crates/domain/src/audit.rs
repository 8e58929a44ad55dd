//! The security audit trail: who did what, when, from where, with which outcome.
//!
//! Audit events answer ASVS 16.2.1 (who/what/when/where) and 16.2.5 (no credentials in logs). They are
//! stored append-only: the `audit_events` table rejects UPDATE, DELETE and TRUNCATE with a trigger, so
//! no statement the application sends can rewrite history. Only the table's owner can disable the
//! trigger, which is why production should run the service as a role that does not own it (see the
//! migration and docs/security.md).
//!
//! Secrets are kept out by construction: the free-form [`AuditDetail`] accepts only flat scalar values
//! under keys that do not look like credentials, and the database repeats that check for the most
//! common names (defence in depth).

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;
use uuid::Uuid;

/// Longest `user_agent` kept; longer ones are cut (on a character boundary). A header is attacker
/// controlled and the audit table must not become a storage service.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest string value inside [`AuditDetail`].
pub const MAX_DETAIL_STRING_CHARS: usize = 256;
/// Most entries inside [`AuditDetail`].
pub const MAX_DETAIL_ENTRIES: usize = 16;

/// Fragments that may not appear in a detail key: a detail about a password or token must never be
/// tempted to carry the password or token itself.
const FORBIDDEN_KEY_FRAGMENTS: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "hash",
    "otp",
    "recovery",
    "cookie",
    "authorization",
    "credential",
];

/// The kind of event, dotted and lower case: `auth.login_failed`, `session.revoked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType(String);

impl EventType {
    /// Parses an event type: 3..=64 characters, segments of `[a-z][a-z0-9_]*` joined by dots, at least
    /// two segments.
    ///
    /// # Errors
    /// [`AuditInputError::EventType`] when the text does not have that shape.
    pub fn parse(raw: &str) -> Result<Self, AuditInputError> {
        let segments: Vec<&str> = raw.split('.').collect();
        let well_formed = (3..=64).contains(&raw.len())
            && segments.len() >= 2
            && segments.iter().all(|s| {
                let mut chars = s.chars();
                chars.next().is_some_and(|c| c.is_ascii_lowercase())
                    && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(AuditInputError::EventType)
        }
    }

    /// The event type as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the attempted action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action happened.
    Success,
    /// The action was attempted and failed (wrong password, expired token).
    Failure,
    /// The action was refused by an access-control decision.
    Denied,
}

impl Outcome {
    /// The stored spelling (matches the `audit_events_outcome_check` constraint).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// A scalar value in an [`AuditDetail`]. Deliberately no nested objects or arrays: nothing can hide
/// below the key checks.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditValue {
    /// Text, at most [`MAX_DETAIL_STRING_CHARS`] characters.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A flag.
    Flag(bool),
}

/// Free-form context of an event (`{"reason": "wrong_password", "attempt": 3}`), checked on insert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditDetail(BTreeMap<String, AuditValue>);

impl AuditDetail {
    /// An empty detail.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry.
    ///
    /// # Errors
    /// [`AuditInputError::DetailKey`] when the key is not `[a-z][a-z0-9_]{0,63}` or contains a
    /// credential-like fragment (`password`, `token`, `secret`, …);
    /// [`AuditInputError::DetailValue`] when a text value is too long;
    /// [`AuditInputError::TooManyEntries`] past [`MAX_DETAIL_ENTRIES`].
    pub fn with(mut self, key: &str, value: AuditValue) -> Result<Self, AuditInputError> {
        let mut chars = key.chars();
        let shaped = key.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !shaped || FORBIDDEN_KEY_FRAGMENTS.iter().any(|f| key.contains(f)) {
            return Err(AuditInputError::DetailKey);
        }
        if let AuditValue::Text(text) = &value
            && text.chars().count() > MAX_DETAIL_STRING_CHARS
        {
            return Err(AuditInputError::DetailValue);
        }
        if self.0.len() >= MAX_DETAIL_ENTRIES && !self.0.contains_key(key) {
            return Err(AuditInputError::TooManyEntries);
        }
        self.0.insert(key.to_owned(), value);
        Ok(self)
    }

    /// The detail as a JSON object, for storage.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let map = self
            .0
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    AuditValue::Text(t) => serde_json::Value::from(t.as_str()),
                    AuditValue::Integer(i) => serde_json::Value::from(*i),
                    AuditValue::Flag(b) => serde_json::Value::from(*b),
                };
                (k.clone(), value)
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

/// One event to append to the audit trail.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// What happened.
    pub event_type: EventType,
    /// How it ended.
    pub outcome: Outcome,
    /// Who: the acting user, when known (an unknown email at login has none).
    pub actor_user_id: Option<Uuid>,
    /// What it was done to: `("session", id)`, `("document", id)`.
    pub subject: Option<(String, Uuid)>,
    /// Where from: the client IP as the service determined it.
    pub ip: Option<IpAddr>,
    /// Where from: the client's user agent, cut to [`MAX_USER_AGENT_CHARS`].
    pub user_agent: Option<String>,
    /// The request that caused it, to join the audit row with the server log.
    pub request_id: Option<String>,
    /// Extra context without secrets.
    pub detail: AuditDetail,
}

impl NewAuditEvent {
    /// An event with only its type and outcome; add the rest with the `with_*` methods.
    #[must_use]
    pub fn new(event_type: EventType, outcome: Outcome) -> Self {
        Self {
            event_type,
            outcome,
            actor_user_id: None,
            subject: None,
            ip: None,
            user_agent: None,
            request_id: None,
            detail: AuditDetail::new(),
        }
    }

    /// Sets who acted.
    #[must_use]
    pub fn with_actor(mut self, user_id: Uuid) -> Self {
        self.actor_user_id = Some(user_id);
        self
    }

    /// Sets what the event is about: a kind (`user`, `session`) and an id.
    #[must_use]
    pub fn with_subject(mut self, kind: &str, id: Uuid) -> Self {
        self.subject = Some((kind.to_owned(), id));
        self
    }

    /// Sets where the request came from; the user agent is cut to [`MAX_USER_AGENT_CHARS`].
    #[must_use]
    pub fn with_origin(mut self, ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        self.ip = ip;
        self.user_agent = user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: &str) -> Self {
        self.request_id = Some(request_id.to_owned());
        self
    }

    /// Sets the detail.
    #[must_use]
    pub fn with_detail(mut self, detail: AuditDetail) -> Self {
        self.detail = detail;
        self
    }
}

/// Input that cannot become an audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditInputError {
    /// See [`EventType::parse`].
    #[error("an event type is dotted lower-case words, e.g. `auth.login_failed`")]
    EventType,
    /// See [`AuditDetail::with`].
    #[error("a detail key is lower-case snake case and never names a credential")]
    DetailKey,
    /// See [`AuditDetail::with`].
    #[error("a detail text value is at most {MAX_DETAIL_STRING_CHARS} characters")]
    DetailValue,
    /// See [`AuditDetail::with`].
    #[error("a detail holds at most {MAX_DETAIL_ENTRIES} entries")]
    TooManyEntries,
}

/// The append-only audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// Appends one event.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] when the store cannot be written. Callers of security-relevant
    /// actions treat that as a failure of the action (no fail-open: ASVS 16.5.3).
    async fn record(&self, event: NewAuditEvent) -> Result<(), AuditError>;
}

/// One stored audit event, as the audit API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Position in the trail (increasing).
    pub id: i64,
    /// When.
    pub occurred_at: time::OffsetDateTime,
    /// What.
    pub event_type: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Who acted.
    pub actor_user_id: Option<Uuid>,
    /// What it was about.
    pub subject: Option<(String, Uuid)>,
    /// From where.
    pub ip: Option<IpAddr>,
    /// With which client.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The detail object.
    pub detail: serde_json::Value,
}

/// An audit listing, already parsed: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Page size, 1..=100.
    pub limit: u32,
    /// Only events with an id below this (the cursor).
    pub before_id: Option<i64>,
    /// Only this event type.
    pub event_type: Option<EventType>,
    /// Only events whose actor or subject is this user.
    pub user_id: Option<Uuid>,
}

/// A page of audit events.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The events, newest first.
    pub items: Vec<AuditRecord>,
    /// The id to pass as `before_id` for the next page.
    pub next_before_id: Option<i64>,
}

/// Reading the audit trail (the admin API).
#[async_trait]
pub trait AuditReader: Send + Sync + std::fmt::Debug {
    /// A page of events.
    ///
    /// # Errors
    /// [`AuditError::Unavailable`] when the store cannot be read.
    async fn list(&self, query: &AuditQuery) -> Result<AuditPage, AuditError>;
}

/// The audit trail could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed; the source says why (for the log only).
    #[error("the audit store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_dotted_lower_case_words() {
        assert!(EventType::parse("auth.login_failed").is_ok());
        assert!(EventType::parse("session.family.revoked").is_ok());
        for bad in [
            "",
            "auth",
            "Auth.login",
            "auth..login",
            "auth.login failed",
            ".auth",
            "a.b\n",
            "auth.1x",
        ] {
            assert_eq!(
                EventType::parse(bad),
                Err(AuditInputError::EventType),
                "{bad:?}"
            );
        }
        assert!(EventType::parse(&format!("a.{}", "b".repeat(63))).is_err());
    }

    #[test]
    fn detail_keys_that_name_credentials_are_refused() {
        for key in [
            "password",
            "new_password",
            "refresh_token",
            "secret",
            "password_hash",
            "otp",
            "recovery_code",
            "authorization",
        ] {
            let result = AuditDetail::new().with(key, AuditValue::Text("x".into()));
            assert_eq!(result, Err(AuditInputError::DetailKey), "{key}");
        }
    }

    #[test]
    fn detail_keys_must_be_snake_case() {
        for key in ["", "Reason", "re-ason", "1reason", "reason ", "réason"] {
            assert!(
                AuditDetail::new()
                    .with(key, AuditValue::Flag(true))
                    .is_err(),
                "{key:?}"
            );
        }
    }

    #[test]
    fn detail_values_and_entries_are_bounded() {
        let long = "x".repeat(MAX_DETAIL_STRING_CHARS + 1);
        assert_eq!(
            AuditDetail::new().with("reason", AuditValue::Text(long)),
            Err(AuditInputError::DetailValue)
        );

        let mut detail = AuditDetail::new();
        for i in 0..MAX_DETAIL_ENTRIES {
            detail = detail
                .with(&format!("k{i}"), AuditValue::Integer(1))
                .unwrap();
        }
        assert_eq!(
            detail.clone().with("one_more", AuditValue::Integer(1)),
            Err(AuditInputError::TooManyEntries)
        );
        // Replacing an existing key is not growth.
        assert!(detail.with("k0", AuditValue::Integer(2)).is_ok());
    }

    #[test]
    fn detail_serialises_to_a_flat_json_object() {
        let detail = AuditDetail::new()
            .with("reason", AuditValue::Text("wrong_password".into()))
            .unwrap()
            .with("attempt", AuditValue::Integer(3))
            .unwrap()
            .with("locked", AuditValue::Flag(false))
            .unwrap();
        assert_eq!(
            detail.to_json(),
            serde_json::json!({"reason": "wrong_password", "attempt": 3, "locked": false})
        );
    }

    #[test]
    fn user_agent_is_cut_on_a_character_boundary() {
        let ua = "é".repeat(MAX_USER_AGENT_CHARS + 10);
        let event = NewAuditEvent::new(EventType::parse("auth.login").unwrap(), Outcome::Success)
            .with_origin(None, Some(&ua));
        assert_eq!(
            event.user_agent.unwrap().chars().count(),
            MAX_USER_AGENT_CHARS
        );
    }
}
