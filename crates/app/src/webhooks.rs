//! The webhook delivery worker: a background task of every instance that works the queue in
//! PostgreSQL (see `bulwark_domain::webhooks::WebhookService::deliver_due`).
//!
//! Several instances may run it at once: claims use `FOR UPDATE SKIP LOCKED`, so each due delivery
//! goes to one worker, and a worker that dies releases its deliveries when their lease ends.

use std::time::Duration;

use bulwark_domain::webhooks::WebhookService;

/// Runs rounds until the task is aborted: after a round that found work, the next starts at once
/// (more may be due); after an empty or failed one, it waits `poll_interval`.
pub fn spawn(service: WebhookService, poll_interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match service.deliver_due().await {
                Ok(0) => tokio::time::sleep(poll_interval).await,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = ?error, "the webhook queue cannot be read; retrying later");
                    tokio::time::sleep(poll_interval).await;
                }
            }
        }
    })
}
