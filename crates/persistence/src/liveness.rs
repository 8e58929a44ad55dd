//! "Is this session still live?" on every authenticated request, cheaply and without going stale.
//!
//! A positive answer is cached for at most `ttl` (default 30 s). A revocation removes the entry:
//! - on the instance that revoked, at once ([`CachedLiveness::forget`], called by the service that
//!   revokes);
//! - on every instance, within milliseconds, through PostgreSQL `LISTEN`/`NOTIFY`: the
//!   `sessions_notify_revoked_*` triggers send the session id on `session_revoked` at commit.
//!
//! Failure modes are closed, never open: while the listener is not connected nothing is cached (every
//! check asks the database), the cache is emptied whenever the listener (re)connects (it may have
//! missed notifications), and a check that cannot reach the database is an error, which callers
//! turn into a refusal. The one window of staleness is a silent network partition that the listener
//! has not noticed yet, bounded by `ttl`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bulwark_domain::session::{SessionStore, SessionStoreError};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::session::PgSessionStore;

/// The notification channel (see the migration).
pub const CHANNEL: &str = "session_revoked";
/// Most entries kept; past it the cache starts over (a flood of distinct sessions cannot grow memory).
const MAX_ENTRIES: usize = 100_000;

/// The liveness check with its cache.
#[derive(Debug, Clone)]
pub struct CachedLiveness {
    store: PgSessionStore,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<Uuid, Instant>>>,
    listening: Arc<AtomicBool>,
}

impl CachedLiveness {
    /// A liveness check over the pool. Nothing is cached until [`CachedLiveness::spawn_listener`]
    /// has connected.
    #[must_use]
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        Self {
            store: PgSessionStore::new(pool),
            ttl,
            cache: Arc::default(),
            listening: Arc::default(),
        }
    }

    /// Whether the session is live.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the database cannot answer and no fresh cached answer exists.
    pub async fn is_live(&self, session_id: Uuid) -> Result<bool, SessionStoreError> {
        if self.listening.load(Ordering::Acquire) {
            let cached = self
                .lock()
                .get(&session_id)
                .is_some_and(|at| at.elapsed() < self.ttl);
            if cached {
                return Ok(true);
            }
        }
        let live = self.store.is_live(session_id).await?;
        let mut cache = self.lock();
        if live && self.listening.load(Ordering::Acquire) {
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(session_id, Instant::now());
        } else {
            cache.remove(&session_id);
        }
        Ok(live)
    }

    /// Drops the cached answer for these sessions (call it right after revoking them).
    pub fn forget(&self, session_ids: &[Uuid]) {
        let mut cache = self.lock();
        for id in session_ids {
            cache.remove(id);
        }
    }

    /// Whether the listener is connected (and answers may come from the cache).
    #[must_use]
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation is a
        // single insert/remove/clear), so a poisoned lock is still safe to use.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reset(&self, listening: bool) {
        self.listening.store(false, Ordering::Release);
        self.lock().clear();
        self.listening.store(listening, Ordering::Release);
    }

    /// Starts the task that listens for revocations on `pool` (runs until the runtime stops).
    pub fn spawn_listener(&self, pool: PgPool) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.listen(&pool).await {
                    Ok(()) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "session revocation listener failed; retrying")
                    }
                }
                this.reset(false);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    async fn listen(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        // Connected: from here on every revocation reaches us, so caching is safe.
        self.reset(true);
        tracing::info!("listening for session revocations");
        loop {
            match listener.try_recv().await? {
                Some(notification) => match Uuid::parse_str(notification.payload()) {
                    Ok(id) => self.forget(&[id]),
                    // Not ours to interpret: play safe and drop everything.
                    Err(_) => self.reset(true),
                },
                // The connection was lost and has been re-established: notifications sent in
                // between are gone, so nothing cached can be trusted.
                None => {
                    tracing::warn!("session revocation listener reconnected; cache cleared");
                    self.reset(true);
                }
            }
        }
    }
}
