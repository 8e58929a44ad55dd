//! Single-use tokens (email verification, password reset) in PostgreSQL (see
//! `migrations/*_one_time_tokens.sql`).
//!
//! Consuming is one statement whose `where` clause is the whole decision: `update … set used_at =
//! now() where token_hash = $1 and purpose = $2 and used_at is null and expires_at > now() and the
//! user is not deleted`. PostgreSQL's row lock makes concurrent callers with the same token wait
//! for the first; when it commits they re-check `used_at is null`, find it false and update
//! nothing. Exactly one caller gets the user id.

use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::opaque::{OneTimeTokenStore, OneTimeTokenStoreError, TokenDigest, TokenKind};
use sqlx::PgPool;
use uuid::Uuid;

/// The PostgreSQL one-time token store.
#[derive(Debug, Clone)]
pub struct PgOneTimeTokenStore {
    pool: PgPool,
}

impl PgOneTimeTokenStore {
    /// A store over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> OneTimeTokenStoreError {
    OneTimeTokenStoreError(crate::classify(error))
}

/// A refresh token was handed to the one-time store: a wiring bug, refused before any SQL.
#[derive(Debug, thiserror::Error)]
#[error("refresh tokens are not one-time tokens (they belong to the session store)")]
struct NotOneTime;

/// The user to issue a token for does not exist, or is deleted.
#[derive(Debug, thiserror::Error)]
#[error("cannot issue a one-time token for user {0}: no such (undeleted) user")]
struct NoSuchUser(Uuid);

/// The stored `purpose` of a kind; `None` for refresh tokens, webhook secrets and MFA challenges,
/// which are never stored here.
fn purpose(kind: TokenKind) -> Option<&'static str> {
    match kind {
        TokenKind::EmailVerification | TokenKind::PasswordReset => Some(kind.as_str()),
        TokenKind::Refresh
        | TokenKind::WebhookSecret
        | TokenKind::MfaChallenge
        | TokenKind::OAuthBrowser => None,
    }
}

#[async_trait]
impl OneTimeTokenStore for PgOneTimeTokenStore {
    #[tracing::instrument(name = "one_time_tokens.issue", skip_all, fields(%user_id, kind = kind.as_str()))]
    async fn issue(
        &self,
        user_id: Uuid,
        kind: TokenKind,
        digest: TokenDigest,
        ttl: Duration,
    ) -> Result<(), OneTimeTokenStoreError> {
        let purpose = purpose(kind).ok_or_else(|| store_error(NotOneTime))?;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Two requests issuing for one user take turns on the user's row, so "supersede, then
        // insert" cannot interleave into two unused tokens (the partial unique index would refuse
        // the second insert anyway; this makes the second request succeed instead of failing).
        let user = sqlx::query_scalar!(
            "select id from users where id = $1 and deleted_at is null for no key update",
            user_id,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if user.is_none() {
            return Err(store_error(NoSuchUser(user_id)));
        }
        // Only the newest mail works: earlier unused tokens of this purpose are spent.
        sqlx::query!(
            r#"
            update one_time_tokens set used_at = now()
            where user_id = $1 and purpose = $2 and used_at is null
            "#,
            user_id,
            purpose,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query!(
            r#"
            insert into one_time_tokens (token_hash, user_id, purpose, expires_at)
            values ($1, $2, $3, now() + make_interval(secs => $4))
            "#,
            &digest.0[..],
            user_id,
            purpose,
            ttl.as_secs_f64(),
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "one_time_tokens.consume", skip_all, fields(kind = kind.as_str()))]
    async fn consume(
        &self,
        kind: TokenKind,
        digest: TokenDigest,
    ) -> Result<Option<Uuid>, OneTimeTokenStoreError> {
        let Some(purpose) = purpose(kind) else {
            return Ok(None);
        };
        sqlx::query_scalar!(
            r#"
            update one_time_tokens t set used_at = now()
            where t.token_hash = $1 and t.purpose = $2 and t.used_at is null and t.expires_at > now()
              and exists (select 1 from users u where u.id = t.user_id and u.deleted_at is null)
            returning t.user_id
            "#,
            &digest.0[..],
            purpose,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn peek(
        &self,
        kind: TokenKind,
        digest: TokenDigest,
    ) -> Result<Option<Uuid>, OneTimeTokenStoreError> {
        let Some(purpose) = purpose(kind) else {
            return Ok(None);
        };
        // The same conditions as `consume`, without spending the token.
        sqlx::query_scalar!(
            r#"
            select t.user_id from one_time_tokens t
            where t.token_hash = $1 and t.purpose = $2 and t.used_at is null and t.expires_at > now()
              and exists (select 1 from users u where u.id = t.user_id and u.deleted_at is null)
            "#,
            &digest.0[..],
            purpose,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)
    }
}
