//! Sessions and refresh tokens in PostgreSQL (see `migrations/*_sessions.sql`).
//!
//! Rotation is one transaction whose first statement is the decision: `update … set used_at = now()
//! where token_hash = $1 and used_at is null`. PostgreSQL's row lock makes concurrent callers with
//! the same token wait for the first; when it commits they re-check `used_at is null`, find it false,
//! update nothing, and take the reuse path. Exactly one caller rotates.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::audit::MAX_USER_AGENT_CHARS;
use bulwark_domain::session::{
    NewSession, RefreshTokenHash, RevocationReason, Rotation, SessionInfo, SessionPolicy,
    SessionPrincipal, SessionStore, SessionStoreError,
};
use bulwark_domain::user::{Plan, Role};
use sqlx::PgPool;
use uuid::Uuid;

/// The PostgreSQL session store.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    /// A store over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> SessionStoreError {
    SessionStoreError(crate::classify(error))
}

/// A `users.role` value the domain does not know: a broken invariant, an error for the log.
#[derive(Debug, thiserror::Error)]
#[error("user {0} has a role the domain does not know")]
struct UnknownRole(Uuid);

/// A `users.plan` value the domain does not know (the column's check makes it impossible).
#[derive(Debug, thiserror::Error)]
#[error("user {0} has a plan the domain does not know")]
struct UnknownPlan(Uuid);

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

#[async_trait]
impl SessionStore for PgSessionStore {
    #[tracing::instrument(name = "sessions.create", skip_all, fields(user_id = %new.user_id))]
    async fn create(
        &self,
        new: NewSession,
        policy: SessionPolicy,
    ) -> Result<Uuid, SessionStoreError> {
        let user_agent = new
            .user_agent
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect::<String>());
        let ip = new.ip.map(|ip| ip.to_string());
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let session_id = sqlx::query_scalar!(
            r#"
            insert into sessions (user_id, expires_at, idle_expires_at, ip, user_agent)
            values ($1,
                    now() + make_interval(secs => $2),
                    least(now() + make_interval(secs => $3), now() + make_interval(secs => $2)),
                    $4::text::inet, $5)
            returning id
            "#,
            new.user_id,
            seconds(policy.absolute_lifetime),
            seconds(policy.idle_timeout),
            ip,
            user_agent,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query!(
            "insert into refresh_tokens (token_hash, session_id, generation) values ($1, $2, 1)",
            &new.first_token.0[..],
            session_id,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(session_id)
    }

    #[tracing::instrument(name = "sessions.rotate", skip_all)]
    async fn rotate(
        &self,
        presented: RefreshTokenHash,
        next: RefreshTokenHash,
        policy: SessionPolicy,
    ) -> Result<Rotation, SessionStoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let claimed = sqlx::query!(
            r#"
            update refresh_tokens set used_at = now()
            where token_hash = $1 and used_at is null
            returning session_id, generation
            "#,
            &presented.0[..],
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;

        let Some(claimed) = claimed else {
            // Unknown, or used before. A used token proves a copy exists: end the whole session.
            let reused = sqlx::query!(
                r#"
                update sessions set revoked_at = now(), revoked_reason = 'refresh_reuse'
                where id = (select session_id from refresh_tokens where token_hash = $1)
                  and revoked_at is null and expires_at > now() and idle_expires_at > now()
                returning id, user_id
                "#,
                &presented.0[..],
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            return Ok(reused.map_or(Rotation::Rejected, |row| Rotation::Reused {
                session_id: row.id,
                user_id: row.user_id,
            }));
        };

        let live = sqlx::query!(
            r#"
            update sessions
            set last_used_at = now(),
                idle_expires_at = least(now() + make_interval(secs => $2), expires_at)
            where id = $1 and revoked_at is null and expires_at > now() and idle_expires_at > now()
            returning user_id
            "#,
            claimed.session_id,
            seconds(policy.idle_timeout),
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(live) = live else {
            // Revoked or expired: nothing to rotate. Roll back, so the token is not marked used —
            // presenting it again is a retry of an ended session, not a theft.
            tx.rollback().await.map_err(store_error)?;
            return Ok(Rotation::Rejected);
        };

        sqlx::query!(
            "insert into refresh_tokens (token_hash, session_id, generation) values ($1, $2, $3)",
            &next.0[..],
            claimed.session_id,
            claimed.generation + 1,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Rotation::Rotated {
            session_id: claimed.session_id,
            user_id: live.user_id,
        })
    }

    async fn is_live(&self, session_id: Uuid) -> Result<bool, SessionStoreError> {
        sqlx::query_scalar!(
            r#"
            select exists (
                select 1 from sessions
                where id = $1 and revoked_at is null and expires_at > now() and idle_expires_at > now()
            ) as "live!"
            "#,
            session_id,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn principal(
        &self,
        session_id: Uuid,
    ) -> Result<Option<SessionPrincipal>, SessionStoreError> {
        let row = sqlx::query!(
            r#"
            select s.user_id, u.role, u.plan, s.created_at,
                   exists (select 1 from mfa_totp m where m.user_id = u.id and m.enabled_at is not null) as "mfa_enabled!"
            from sessions s join users u on u.id = s.user_id
            where s.id = $1 and s.revoked_at is null and s.expires_at > now() and s.idle_expires_at > now()
              and u.deleted_at is null and u.locked_at is null
            "#,
            session_id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|r| {
            Ok(SessionPrincipal {
                user_id: r.user_id,
                role: Role::from_stored(&r.role)
                    .ok_or_else(|| store_error(UnknownRole(r.user_id)))?,
                authenticated_at: r.created_at,
                mfa_enabled: r.mfa_enabled,
                plan: Plan::parse(&r.plan).ok_or_else(|| store_error(UnknownPlan(r.user_id)))?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(name = "sessions.revoke", skip_all, fields(%user_id, %session_id, reason = reason.as_str()))]
    async fn revoke(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevocationReason,
    ) -> Result<bool, SessionStoreError> {
        let result = sqlx::query!(
            r#"
            update sessions set revoked_at = now(), revoked_reason = $3
            where id = $1 and user_id = $2 and revoked_at is null
            "#,
            session_id,
            user_id,
            reason.as_str(),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(name = "sessions.revoke_by_token", skip_all, fields(reason = reason.as_str()))]
    async fn revoke_by_token(
        &self,
        token: RefreshTokenHash,
        reason: RevocationReason,
    ) -> Result<Option<(Uuid, Uuid)>, SessionStoreError> {
        let row = sqlx::query!(
            r#"
            update sessions set revoked_at = now(), revoked_reason = $2
            where id = (select session_id from refresh_tokens where token_hash = $1 and used_at is null)
              and revoked_at is null
            returning id, user_id
            "#,
            &token.0[..],
            reason.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|row| (row.id, row.user_id)))
    }

    #[tracing::instrument(name = "sessions.revoke_all", skip_all, fields(%user_id, reason = reason.as_str()))]
    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: RevocationReason,
    ) -> Result<Vec<Uuid>, SessionStoreError> {
        sqlx::query_scalar!(
            r#"
            update sessions set revoked_at = now(), revoked_reason = $3
            where user_id = $1 and revoked_at is null and ($2::uuid is null or id <> $2)
            returning id
            "#,
            user_id,
            keep,
            reason.as_str(),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn list(&self, user_id: Uuid, limit: u32) -> Result<Vec<SessionInfo>, SessionStoreError> {
        // `ip` is read through `host()`: the text of an `inet` may carry a netmask (`/32`), the
        // host part alone always parses as an `IpAddr` (and spares the build an IP-network crate,
        // as when it is bound on insert).
        let rows = sqlx::query!(
            r#"
            select id, created_at, last_used_at, host(ip) as ip, user_agent
            from sessions
            where user_id = $1 and revoked_at is null and expires_at > now() and idle_expires_at > now()
            order by last_used_at desc, created_at desc, id
            limit $2
            "#,
            user_id,
            i64::from(limit),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|row| SessionInfo {
                id: row.id,
                created_at: row.created_at,
                last_used_at: row.last_used_at,
                // Only informational: should an address ever not parse, the session is still listed.
                ip: row.ip.and_then(|ip| ip.parse::<IpAddr>().ok()),
                user_agent: row.user_agent,
            })
            .collect())
    }
}
