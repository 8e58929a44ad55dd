//! Caps on sensitive business flows (OWASP API6): how often one user may do something that is
//! cheap for them and costly for others — sharing a document with someone (an unsolicited access
//! grant, and the first step of spam), registering a webhook.
//!
//! A cap is "at most N per window per user", counted and recorded atomically per user and flow
//! (concurrent requests cannot slip past it). Over the cap the request gets 429 with `Retry-After`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

/// A capped flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Sharing a document with a user.
    Share,
    /// Registering a webhook.
    WebhookCreate,
}

impl Flow {
    /// The stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Share => "share",
            Self::WebhookCreate => "webhook_create",
        }
    }
}

/// At most `max` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCap {
    /// How many.
    pub max: u32,
    /// Within how long.
    pub window: Duration,
}

/// The caps of every flow (from configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCaps {
    /// Shares per user.
    pub share: FlowCap,
    /// Webhook registrations per user.
    pub webhook_create: FlowCap,
}

impl Default for FlowCaps {
    fn default() -> Self {
        let hour = Duration::from_secs(60 * 60);
        Self {
            share: FlowCap {
                max: 50,
                window: hour,
            },
            webhook_create: FlowCap {
                max: 10,
                window: hour,
            },
        }
    }
}

/// Counts flow events.
#[async_trait]
pub trait FlowLimiter: Send + Sync + fmt::Debug {
    /// Records one event of `flow` for `user_id` if fewer than `cap.max` happened within
    /// `cap.window`; otherwise records nothing and says how long until the oldest one leaves the
    /// window. Atomic per user and flow.
    ///
    /// # Errors
    /// [`FlowStoreError`] when the store fails.
    async fn try_record(
        &self,
        user_id: Uuid,
        flow: Flow,
        cap: FlowCap,
    ) -> Result<Result<(), Duration>, FlowStoreError>;
}

/// The flow store failed; the source says why (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("the flow counter store is unavailable")]
pub struct FlowStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);
