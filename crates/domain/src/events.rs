//! Domain events: what happened to a document, told to whoever listens once the change is stored.
//!
//! The document service publishes; today the webhook service listens (it queues deliveries to the
//! owner's webhooks), and the GraphQL and WebSocket fan-out will listen through the same port.
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
