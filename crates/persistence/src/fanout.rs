//! Multi-instance fan-out of document notifications through PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! Publishing is a `pg_notify` on the `document_events` channel; every instance (the publisher
//! included) listens on it and hands each notification to its local subscribers through a tokio
//! broadcast channel. No broker to run: the database every instance already uses carries the
//! events. Payloads carry ids only (topic, event, owner, version) — each subscriber re-reads what
//! it shows through the domain policy, so a notification can never leak content to the wrong user.
//!
//! Delivery is best effort, as for any live feed: a notification published while an instance's
//! listener is reconnecting is lost for that instance's subscribers (the listener logs it), and a
//! subscriber that falls behind the broadcast buffer is told so (the socket closes it).

use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::events::{DocumentEvent, DocumentEvents, EVENT_NAMES, Notification, Topic};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The channel the notifications travel on.
pub const CHANNEL: &str = "document_events";

/// The wire form of a notification (JSON, well under `NOTIFY`'s 8000-byte limit).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    topic: String,
    event: String,
    owner_id: Uuid,
    version: Option<i32>,
    #[serde(default)]
    shared_with: Option<Uuid>,
}

/// Reads a notification off the wire; `None` for anything that is not exactly one (shared with
/// [`crate::redis_fanout`], so both transports speak the same form).
pub(crate) fn decode(payload: &str) -> Option<Notification> {
    let wire: Wire = serde_json::from_str(payload).ok()?;
    if !EVENT_NAMES.contains(&wire.event.as_str()) {
        return None;
    }
    Some(Notification {
        topic: Topic::parse(&wire.topic)?,
        event: wire.event,
        owner_id: wire.owner_id,
        version: wire.version,
        shared_with: wire.shared_with,
    })
}

/// The wire form of a notification (shared with [`crate::redis_fanout`]).
pub(crate) fn encode(notification: &Notification) -> Option<String> {
    serde_json::to_string(&Wire {
        topic: notification.topic.to_string(),
        event: notification.event.clone(),
        owner_id: notification.owner_id,
        version: notification.version,
        shared_with: notification.shared_with,
    })
    .ok()
}

/// Publishes document notifications to every instance and receives them from every instance.
#[derive(Debug, Clone)]
pub struct PgFanout {
    pool: PgPool,
    local: broadcast::Sender<Notification>,
}

impl PgFanout {
    /// A fan-out over the service's pool; each local subscriber may fall `capacity` notifications
    /// behind before it is told it lagged.
    #[must_use]
    pub fn new(pool: PgPool, capacity: usize) -> Self {
        let (local, _) = broadcast::channel(capacity.max(1));
        Self { pool, local }
    }

    /// A receiver of every notification from every instance, from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.local.subscribe()
    }

    /// Starts the task that listens on [`CHANNEL`] (runs until the runtime stops; reconnects). The
    /// listener holds one connection of the pool for good, like the revocation listener.
    pub fn spawn_listener(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = this.listen().await {
                    tracing::warn!(error = %error, "document event listener failed; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    async fn listen(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        tracing::info!("listening for document events");
        loop {
            match listener.try_recv().await? {
                Some(notification) => match decode(notification.payload()) {
                    // No receiver is not an error: nobody is subscribed on this instance.
                    Some(decoded) => {
                        let _ = self.local.send(decoded);
                    }
                    None => tracing::warn!("ignored a malformed document event"),
                },
                None => tracing::warn!(
                    "document event listener reconnected; events sent meanwhile were missed"
                ),
            }
        }
    }
}

#[async_trait]
impl DocumentEvents for PgFanout {
    async fn publish(&self, event: DocumentEvent) {
        let notification = Notification::of(&event);
        let Some(payload) = encode(&notification) else {
            return;
        };
        if let Err(error) = sqlx::query!("select pg_notify($1, $2)", CHANNEL, payload)
            .execute(&self.pool)
            .await
        {
            // Live notifications are best effort; the change itself is committed.
            tracing::warn!(error = %error, "could not publish a document event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_round_trips_and_refuses_anything_else() {
        let n = Notification {
            topic: Topic::Document(Uuid::from_u128(9)),
            event: "document.updated".to_owned(),
            owner_id: Uuid::from_u128(1),
            version: Some(3),
            shared_with: None,
        };
        assert_eq!(decode(&encode(&n).unwrap()), Some(n.clone()));
        let shared = Notification {
            event: "document.shared".to_owned(),
            version: None,
            shared_with: Some(Uuid::from_u128(2)),
            ..n
        };
        assert_eq!(decode(&encode(&shared).unwrap()), Some(shared));
        for bad in [
            "",
            "{}",
            r#"{"topic":"user:1","event":"document.updated","owner_id":"00000000-0000-0000-0000-000000000001","version":null}"#,
            r#"{"topic":"document:00000000-0000-0000-0000-000000000009","event":"rm -rf","owner_id":"00000000-0000-0000-0000-000000000001","version":null}"#,
            r#"{"topic":"document:00000000-0000-0000-0000-000000000009","event":"document.updated","owner_id":"00000000-0000-0000-0000-000000000001","version":1,"extra":1}"#,
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
