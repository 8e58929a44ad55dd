//! "Is this session still live?" on every authenticated request, cheaply and without going stale.
//!
//! A positive answer is cached for at most `ttl` ([`DEFAULT_TTL`] unless configured). A revocation
//! removes the entry:
//! - on the instance that revoked, at once ([`CachedLiveness::forget`], called by the service that
//!   revokes);
//! - on every instance, within milliseconds, through PostgreSQL `LISTEN`/`NOTIFY`: the
//!   `sessions_notify_revoked_*` triggers send the session id on `session_revoked` at commit, and
//!   the `users_notify_principal_changed` trigger sends the ids of a user's live sessions when
//!   the user's role, lock or deletion changes.
//!
//! What is cached is the session's *principal* — its user, the user's current role and the sign-in
//! time — so a demotion takes effect on the next request just as a revocation does.
//!
//! An answer read from the database is cached only if no invalidation happened while it was being
//! read (an *epoch* counter): otherwise a request that read "live" just before a revocation
//! committed could put the stale answer back after the notification had removed it.
//!
//! Failure modes are closed, never open: until the listener has connected nothing is cached (every
//! check asks the database), the cache is emptied whenever the listener reconnects (it may have
//! missed notifications), and a check that cannot reach the database is an error, which callers
//! turn into a refusal. The one window of staleness is a connection loss that the listener has not
//! noticed yet (a silent network partition), bounded by `ttl`. The listener holds one connection of
//! the pool for as long as it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bulwark_domain::session::{SessionLiveness, SessionPrincipal, SessionStore, SessionStoreError};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::session::PgSessionStore;

/// The notification channel (see the migration).
pub const CHANNEL: &str = "session_revoked";
/// How long a positive answer is trusted when nothing is configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Most entries kept; past it the cache starts over (a flood of distinct sessions cannot grow memory).
const MAX_ENTRIES: usize = 100_000;

/// The liveness check with its cache.
#[derive(Debug, Clone)]
pub struct CachedLiveness {
    store: PgSessionStore,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<Uuid, (Instant, SessionPrincipal)>>>,
    listening: Arc<AtomicBool>,
    /// Bumped by every invalidation; see the module docs.
    epoch: Arc<AtomicU64>,
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
            epoch: Arc::default(),
        }
    }

    /// Whether the session is live (and its user neither locked nor deleted).
    ///
    /// # Errors
    /// [`SessionStoreError`] when the database cannot answer and no fresh cached answer exists.
    pub async fn is_live(&self, session_id: Uuid) -> Result<bool, SessionStoreError> {
        Ok(self.principal(session_id).await?.is_some())
    }

    /// The session's principal (user, current role, sign-in time), or `None` when the session is
    /// not live or its user is locked or deleted.
    ///
    /// # Errors
    /// [`SessionStoreError`] when the database cannot answer and no fresh cached answer exists.
    pub async fn principal(
        &self,
        session_id: Uuid,
    ) -> Result<Option<SessionPrincipal>, SessionStoreError> {
        if self.listening.load(Ordering::Acquire) {
            let cached = self
                .lock()
                .get(&session_id)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, principal)| *principal);
            if cached.is_some() {
                return Ok(cached);
            }
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let principal = self.store.principal(session_id).await?;
        match principal {
            Some(principal) => self.remember(session_id, principal, epoch),
            None => {
                self.lock().remove(&session_id);
            }
        }
        Ok(principal)
    }

    /// Caches an answer, unless an invalidation happened since `epoch_before` was read.
    fn remember(&self, session_id: Uuid, principal: SessionPrincipal, epoch_before: u64) {
        let mut cache = self.lock();
        // Checked under the lock: `forget` and `reset` bump the epoch under the same lock.
        if !self.listening.load(Ordering::Acquire)
            || self.epoch.load(Ordering::Acquire) != epoch_before
        {
            return;
        }
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(session_id, (Instant::now(), principal));
    }

    /// Drops the cached answer for these sessions (call it right after revoking them).
    pub fn forget(&self, session_ids: &[Uuid]) {
        let mut cache = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for id in session_ids {
            cache.remove(id);
        }
    }

    /// Whether the listener is connected (and answers may come from the cache).
    #[must_use]
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Instant, SessionPrincipal)>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation is a
        // single insert/remove/clear), so a poisoned lock is still safe to use.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reset(&self, listening: bool) {
        let mut cache = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        cache.clear();
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

/// The port the request path uses; the inherent methods above are the implementation.
#[async_trait]
impl SessionLiveness for CachedLiveness {
    async fn principal(
        &self,
        session_id: Uuid,
    ) -> Result<Option<SessionPrincipal>, SessionStoreError> {
        CachedLiveness::principal(self, session_id).await
    }

    fn forget(&self, session_ids: &[Uuid]) {
        CachedLiveness::forget(self, session_ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    fn principal() -> SessionPrincipal {
        SessionPrincipal {
            user_id: Uuid::nil(),
            role: bulwark_domain::user::Role::User,
            authenticated_at: time::OffsetDateTime::UNIX_EPOCH,
            mfa_enabled: false,
            plan: bulwark_domain::user::Plan::Free,
        }
    }

    fn offline() -> CachedLiveness {
        // A pool that never connects: these tests exercise the cache alone.
        let pool = PgPoolOptions::new().connect_lazy_with(PgConnectOptions::new().port(1));
        let liveness = CachedLiveness::new(pool, Duration::from_secs(3600));
        liveness.listening.store(true, Ordering::Release);
        liveness
    }

    #[tokio::test]
    async fn an_answer_read_before_a_revocation_is_not_cached_after_it() {
        let liveness = offline();
        let id = Uuid::new_v4();
        // A request reads the epoch, then its query says "live"…
        let before = liveness.epoch.load(Ordering::Acquire);
        // …while a revocation's notification is handled…
        liveness.forget(&[id]);
        // …so its answer must not be cached.
        liveness.remember(id, principal(), before);
        assert!(!liveness.lock().contains_key(&id));

        // An answer read after the revocation is cached as usual.
        let after = liveness.epoch.load(Ordering::Acquire);
        liveness.remember(id, principal(), after);
        assert!(liveness.lock().contains_key(&id));
    }

    #[tokio::test]
    async fn a_reconnect_invalidates_answers_in_flight_and_cached() {
        let liveness = offline();
        let (cached, in_flight) = (Uuid::new_v4(), Uuid::new_v4());
        liveness.remember(cached, principal(), liveness.epoch.load(Ordering::Acquire));
        let before = liveness.epoch.load(Ordering::Acquire);

        liveness.reset(true);
        liveness.remember(in_flight, principal(), before);

        assert!(liveness.lock().is_empty());
    }

    #[tokio::test]
    async fn nothing_is_cached_while_not_listening() {
        let liveness = offline();
        liveness.reset(false);
        let id = Uuid::new_v4();
        liveness.remember(id, principal(), liveness.epoch.load(Ordering::Acquire));
        assert!(liveness.lock().is_empty());
    }
}
