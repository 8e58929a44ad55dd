//! Webhooks: outbound notifications of document events to a URL the user registered, and the
//! storage port behind their delivery queue.
//!
//! Delivery is at-least-once from a queue in PostgreSQL: a worker claims due deliveries with
//! `FOR UPDATE SKIP LOCKED` (several workers never take the same one), leases them for a while (a
//! worker that dies mid-delivery releases them when the lease runs out), and records each outcome:
//! delivered, retry later with backoff, given up, or refused by the SSRF policy
//! ([`crate::webhook_target`]). The delivery log is what `GET /webhooks/{id}/deliveries` shows.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::quota::PlanLimits;
use crate::user::FieldViolation;
use crate::webhook_target::WebhookUrl;

/// The events a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A document was created.
    DocumentCreated,
    /// A document's title, body, tags or visibility changed.
    DocumentUpdated,
    /// A document was deleted.
    DocumentDeleted,
    /// A document was shared with someone.
    DocumentShared,
}

impl WebhookEvent {
    /// Every event.
    pub const ALL: [Self; 4] = [
        Self::DocumentCreated,
        Self::DocumentUpdated,
        Self::DocumentDeleted,
        Self::DocumentShared,
    ];

    /// The public and stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DocumentCreated => "document.created",
            Self::DocumentUpdated => "document.updated",
            Self::DocumentDeleted => "document.deleted",
            Self::DocumentShared => "document.shared",
        }
    }

    /// Parses the spelling.
    ///
    /// # Errors
    /// A violation on `events`.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == raw)
            .ok_or_else(|| {
                FieldViolation::new(
                    "events",
                    "invalid",
                    "Events are `document.created`, `document.updated`, `document.deleted` and `document.shared`.",
                )
            })
    }
}

/// A registered webhook (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// Whose.
    pub owner_id: Uuid,
    /// Where deliveries go (passed the registration checkpoint of the SSRF policy).
    pub url: WebhookUrl,
    /// What it subscribes to (at least one, no duplicates).
    pub events: Vec<WebhookEvent>,
    /// Registered.
    pub created_at: OffsetDateTime,
}

/// A webhook to register.
pub struct NewWebhook {
    /// Its id, chosen before it is stored: the sealed secret is bound to it (the sealing context
    /// names the row, so a sealed secret copied onto another webhook does not open).
    pub id: Uuid,
    /// Whose.
    pub owner_id: Uuid,
    /// Where.
    pub url: WebhookUrl,
    /// What.
    pub events: Vec<WebhookEvent>,
    /// The signing secret, sealed (`Sealer`): deliveries need it back to sign, so it is encrypted
    /// rather than hashed.
    pub sealed_secret: String,
}

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("id", &self.id)
            .field("owner_id", &self.owner_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
    /// The SSRF policy refused the resolved address; never retried.
    Refused,
}

impl DeliveryStatus {
    /// The public and stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    /// Parses the stored spelling.
    #[must_use]
    pub fn from_stored(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed, Self::Refused]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One entry of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Id.
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Uuid,
    /// The event.
    pub event: WebhookEvent,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub last_response_status: Option<u16>,
    /// Why the last attempt failed (no secrets, no response body), if it did.
    pub last_error: Option<String>,
    /// Queued.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// A delivery claimed by a worker, with what it needs to send it.
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Uuid,
    /// Where to send it.
    pub url: WebhookUrl,
    /// The webhook's sealed signing secret.
    pub sealed_secret: String,
    /// The event.
    pub event: WebhookEvent,
    /// The JSON body to send.
    pub payload: serde_json::Value,
    /// Attempts made before this one.
    pub attempts: u32,
}

impl fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("event", &self.event)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// It failed; try again after `after` (the caller computes the backoff).
    Retry {
        /// When to try again.
        after: Duration,
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// Why (bounded, no secrets).
        error: String,
    },
    /// It failed for the last time.
    GiveUp {
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// Why.
        error: String,
    },
    /// The SSRF policy refused the address the name resolved to.
    Refused {
        /// Why.
        error: String,
    },
}

/// The sealing context of a webhook's signing secret: the column and the row, so a sealed secret
/// opens only for the webhook it was made for.
#[must_use]
pub fn secret_context(webhook_id: Uuid) -> Vec<u8> {
    format!("webhooks.sealed_secret:{webhook_id}").into_bytes()
}

/// The request headers of a delivery besides the signature: the delivery's id (receivers
/// deduplicate on it: delivery is at-least-once) and its event.
pub mod headers {
    /// The delivery's id.
    pub const DELIVERY: &str = "Bulwark-Delivery";
    /// The event.
    pub const EVENT: &str = "Bulwark-Event";
}

/// One delivery attempt, as the transport is to send it.
pub struct OutboundDelivery<'a> {
    /// The delivery (sent in [`headers::DELIVERY`]).
    pub delivery_id: Uuid,
    /// The event (sent in [`headers::EVENT`]).
    pub event: WebhookEvent,
    /// Where to.
    pub url: &'a WebhookUrl,
    /// The exact JSON body to send (and sign).
    pub body: &'a [u8],
    /// The webhook's signing secret (the HMAC key), opened from its sealed form.
    pub secret: &'a secrecy::SecretSlice<u8>,
}

impl fmt::Debug for OutboundDelivery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("event", &self.event)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What the transport made of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver answered with this status (a redirect is an answer: it is never followed).
    Answered {
        /// The HTTP status.
        status: u16,
    },
    /// The SSRF policy refused the address (an IP literal, or what the name resolved to).
    Refused {
        /// Why, in our own words.
        reason: String,
    },
    /// No usable answer: the name did not resolve, the connection failed or timed out, TLS
    /// failed, or the response exceeded the size cap.
    Failed {
        /// Why, in our own words (never the receiver's body).
        reason: String,
    },
}

/// The network side of webhooks: resolving and checking a target, and sending a signed delivery
/// to it without ever reaching an address the SSRF policy forbids.
#[async_trait]
pub trait WebhookTransport: Send + Sync + fmt::Debug {
    /// The registration checkpoint's second half: resolves the URL's host now and checks every
    /// address ([`crate::webhook_target::check_resolved`]); an IP literal is checked as is.
    ///
    /// # Errors
    /// A violation on `url` (`unresolvable`, `forbidden_address`).
    async fn vet(&self, url: &WebhookUrl) -> Result<(), FieldViolation>;

    /// Sends one delivery: a `POST` of the body, signed, to an address checked at connect time;
    /// no proxy, no redirects, short timeouts, the response size capped.
    async fn send(&self, delivery: OutboundDelivery<'_>) -> SendOutcome;
}

/// Why a webhook was not registered.
#[derive(Debug, thiserror::Error)]
pub enum CreateWebhookError {
    /// The owner has as many webhooks as its plan allows.
    #[error("webhook quota exceeded")]
    QuotaExceeded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] WebhookStoreError),
}

/// The webhook store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the webhook store is unavailable")]
pub struct WebhookStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of webhooks and their delivery queue and log.
#[async_trait]
pub trait WebhookRepository: Send + Sync + fmt::Debug {
    /// Registers a webhook unless the owner already has as many as its plan allows (counted and
    /// inserted in one transaction under the owner's row lock).
    ///
    /// # Errors
    /// [`CreateWebhookError`].
    async fn create(
        &self,
        new: NewWebhook,
        limits: &PlanLimits,
    ) -> Result<Webhook, CreateWebhookError>;

    /// The owner's webhooks, newest first.
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn list(&self, owner_id: Uuid) -> Result<Vec<Webhook>, WebhookStoreError>;

    /// One webhook *of this owner* (another owner's is `None`, like a missing one).
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn find(&self, owner_id: Uuid, id: Uuid) -> Result<Option<Webhook>, WebhookStoreError>;

    /// Deletes one webhook of this owner, with its queue and log. False when there was none.
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn delete(&self, owner_id: Uuid, id: Uuid) -> Result<bool, WebhookStoreError>;

    /// Queues a delivery of `event` with `payload` for every webhook of `owner_id` subscribed to
    /// it; returns how many were queued.
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn enqueue(
        &self,
        owner_id: Uuid,
        event: WebhookEvent,
        payload: serde_json::Value,
    ) -> Result<u32, WebhookStoreError>;

    /// Claims up to `limit` due deliveries (pending, next attempt due) for one worker, skipping
    /// those another worker holds, and leases them for `lease` (they come back if the worker dies).
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn claim(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, WebhookStoreError>;

    /// Records the outcome of an attempt (and counts it).
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn record(
        &self,
        delivery_id: Uuid,
        outcome: DeliveryOutcome,
    ) -> Result<(), WebhookStoreError>;

    /// The delivery log of one webhook of this owner, newest first (at most `limit`).
    ///
    /// # Errors
    /// [`WebhookStoreError`].
    async fn deliveries(
        &self,
        owner_id: Uuid,
        webhook_id: Uuid,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_statuses_round_trip_their_spelling() {
        for e in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(e.as_str()).unwrap(), e);
        }
        assert!(WebhookEvent::parse("document.*").is_err());
        for s in ["pending", "delivered", "failed", "refused"] {
            assert_eq!(DeliveryStatus::from_stored(s).unwrap().as_str(), s);
        }
        assert_eq!(DeliveryStatus::from_stored("sent"), None);
    }
}
