//! Domain events: what happened to a document, told to whoever listens once the change is stored.
//!
//! The document service publishes; today the webhook service listens (it queues deliveries to the
//! owner's webhooks) and so does the live fan-out (GraphQL subscriptions and `/api/v1/ws`, through
//! PostgreSQL or Redis), through the same port.
//! Events carry ids, not content: a listener that shows something to someone reads it again
//! through the policy, so an event can never leak what its receiver may not see.
//!
//! Publishing cannot fail from the publisher's point of view. The change is already committed when
//! the event is published; answering the client with an error then would invite a retry of
//! something that happened. A listener that cannot do its part logs it loudly — see
//! `docs/architecture.md` ("Webhook events are queued after the change commits").

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::document::SharePermission;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentChange {
    /// It was created (version 1).
    Created,
    /// Its title, body, tags or visibility changed; this is its new version.
    Updated {
        /// The new version.
        version: i32,
    },
    /// It was deleted.
    Deleted,
    /// It was shared with a user (or a share's permission changed).
    Shared {
        /// With whom.
        user_id: Uuid,
        /// Read or write.
        permission: SharePermission,
    },
}

/// Something that happened to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentEvent {
    /// The document.
    pub document_id: Uuid,
    /// Its owner (whose webhooks hear of it).
    pub owner_id: Uuid,
    /// What happened.
    pub change: DocumentChange,
    /// When.
    pub occurred_at: OffsetDateTime,
}

/// Where the document service publishes its events.
#[async_trait]
pub trait DocumentEvents: Send + Sync + fmt::Debug {
    /// Hands an event to the listeners. Never fails for the caller: see the module documentation.
    async fn publish(&self, event: DocumentEvent);
}

/// A publisher with no listeners (tools and tests that need a document service and nothing else).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoListeners;

#[async_trait]
impl DocumentEvents for NoListeners {
    async fn publish(&self, _event: DocumentEvent) {}
}

/// What a live subscriber can listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// The changes of one document (`document:<id>`).
    Document(Uuid),
}

impl Topic {
    /// Parses `document:<uuid>`.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        let id = raw.strip_prefix("document:")?;
        // Only the canonical hyphenated form: one spelling per topic.
        let id = Uuid::parse_str(id)
            .ok()
            .filter(|u| u.hyphenated().to_string() == id)?;
        Some(Self::Document(id))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Document(id) => write!(f, "document:{id}"),
        }
    }
}

/// A document event as it travels between instances and to live subscribers: ids only (every
/// receiver re-reads through the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The topic it belongs to.
    pub topic: Topic,
    /// `document.created`, `document.updated`, `document.deleted` or `document.shared`.
    pub event: String,
    /// The document's owner.
    pub owner_id: Uuid,
    /// The new version, for updates.
    pub version: Option<i32>,
    /// For `document.shared`: the user it was shared with (whose own feed hears of it).
    pub shared_with: Option<Uuid>,
}

impl Notification {
    /// The notification of a document event.
    #[must_use]
    pub fn of(event: &DocumentEvent) -> Self {
        let (name, version, shared_with) = match &event.change {
            DocumentChange::Created => (CREATED, Some(1), None),
            DocumentChange::Updated { version } => (UPDATED, Some(*version), None),
            DocumentChange::Deleted => (DELETED, None, None),
            DocumentChange::Shared { user_id, .. } => (SHARED, None, Some(*user_id)),
        };
        Self {
            topic: Topic::Document(event.document_id),
            event: name.to_owned(),
            owner_id: event.owner_id,
            version,
            shared_with,
        }
    }

    /// Whether this is a deletion (which can no longer be re-read: see
    /// [`DocumentService::may_hear`](crate::documents::DocumentService::may_hear)).
    #[must_use]
    pub fn is_deletion(&self) -> bool {
        self.event == DELETED
    }

    /// Whether it is a document's creation. A subscription to *one* document can only be made
    /// once the document exists, so its creation is news from before the subscription — late
    /// news, when the fan-out delivers it after the subscription began — and such subscriptions
    /// skip it; a personal feed (`myNotifications`) does not.
    #[must_use]
    pub fn is_creation(&self) -> bool {
        self.event == CREATED
    }

    /// Whether it concerns this user directly: a document they own, or one just shared with them
    /// (the filter of a personal feed, before the policy is asked).
    #[must_use]
    pub fn concerns(&self, user_id: Uuid) -> bool {
        self.owner_id == user_id || self.shared_with == Some(user_id)
    }
}

/// The event names a notification can carry.
pub const CREATED: &str = "document.created";
/// See [`CREATED`].
pub const UPDATED: &str = "document.updated";
/// See [`CREATED`].
pub const DELETED: &str = "document.deleted";
/// See [`CREATED`].
pub const SHARED: &str = "document.shared";
/// Every event name, for adapters that decode notifications from the wire.
pub const EVENT_NAMES: [&str; 4] = [CREATED, UPDATED, DELETED, SHARED];

/// Publishes to several listeners (webhooks and the live fan-out), one after the other.
#[derive(Debug, Clone, Default)]
pub struct Listeners(pub Vec<std::sync::Arc<dyn DocumentEvents>>);

#[async_trait]
impl DocumentEvents for Listeners {
    async fn publish(&self, event: DocumentEvent) {
        for listener in &self.0 {
            listener.publish(event.clone()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_have_one_spelling() {
        let id = Uuid::from_u128(0x00ab_cdef_0000_4000_8000_0000_0000_00ff);
        let topic = Topic::Document(id);
        assert_eq!(Topic::parse(&topic.to_string()), Some(topic));
        assert_eq!(Topic::parse(&format!("document:{}", id.simple())), None);
        assert_eq!(
            Topic::parse(&format!("document:{}", id.to_string().to_uppercase())),
            None
        );
        assert_eq!(Topic::parse("user:1"), None);
        assert_eq!(Topic::parse("document:"), None);
    }
}
