//! Going away: how a stopping server tells its open sockets.
//!
//! On SIGTERM the app stops accepting connections and gives in-flight requests the grace period
//! (`SHUTDOWN_GRACE_SECS`) to finish. A WebSocket is not a request that finishes: left alone, it
//! would hold the shutdown for the whole grace period and then be cut without a word. So the app
//! fires a [`ShutdownTrigger`] first, and every socket — whatever its protocol or state, even
//! before it authenticated — closes with **1001 (going away)**, which tells a client to reconnect,
//! to another instance, rather than to report an error.
//!
//! The sockets watch a [`Shutdown`] (a cheap clone of a `watch` channel's receiver, registered as
//! `web::Data<Shutdown>`); [`until_shutdown`] wraps a socket's whole connection in it, so neither
//! protocol needs to know.

use std::future::Future;

use tokio::sync::watch;

/// The close code of a socket the server is leaving.
pub const GOING_AWAY: u16 = 1001;

/// Fires the shutdown (held by the app).
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Says when the shutdown has begun (held by whatever must react).
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A trigger and the signal it fires.
#[must_use]
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger(sender), Shutdown(receiver))
}

impl ShutdownTrigger {
    /// Begins the shutdown: every [`Shutdown::begun`] completes. Firing twice is harmless.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Completes once the shutdown has begun (at once if it already has). Never completes if the
    /// trigger is dropped without firing.
    pub async fn begun(&self) {
        let mut receiver = self.0.clone();
        if receiver.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs a socket's `connection` until it ends by itself, or the shutdown begins: then the
/// connection is dropped (its permits and subscriptions with it) and the socket closed with
/// [`GOING_AWAY`].
pub async fn until_shutdown(
    connection: impl Future<Output = ()>,
    session: actix_ws::Session,
    shutdown: Option<Shutdown>,
) {
    let Some(shutdown) = shutdown else {
        return connection.await;
    };
    tokio::select! {
        () = connection => {}
        () = shutdown.begun() => {
            let reason = actix_ws::CloseReason {
                code: actix_ws::CloseCode::Away,
                description: Some("server shutting down".to_owned()),
            };
            let _ = session.close(Some(reason)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_watcher_hears_the_shutdown_even_one_that_starts_watching_after_it() {
        let (trigger, shutdown) = channel();
        let early = shutdown.clone();
        let waiting = tokio::spawn(async move { early.begun().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        trigger.fire();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        // A watcher that starts after the fact completes at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), shutdown.begun())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trigger_that_never_fired_is_not_a_shutdown() {
        let (trigger, shutdown) = channel();
        drop(trigger);
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(3600), shutdown.begun()).await;
        assert!(waited.is_err());
    }
}
