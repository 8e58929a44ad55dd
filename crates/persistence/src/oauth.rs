//! OAuth sign-ins in flight and linked identities in PostgreSQL (see `migrations/*_oauth.sql`).
//!
//! The state and the browser cookie are hashed *by the database* (`sha256`) on the way in and on
//! the lookup, so neither is ever stored, and the application needs no hashing of its own for
//! them. Taking a state is one `delete … returning` that needs the provider, the state and the
//! cookie to match and the row to be fresh: single use, and race-free.

use async_trait::async_trait;
use bulwark_domain::oauth::ProviderIdentity;
use bulwark_domain::oauth_signin::{
    LinkOutcome, OAuthStore, OAuthStoreError, PendingSignIn, TakenSignIn,
};
use bulwark_domain::user::{DisplayName, Email, Role, User};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

/// The PostgreSQL OAuth store.
#[derive(Debug, Clone)]
pub struct PgOAuthStore {
    pool: PgPool,
}

impl PgOAuthStore {
    /// A store over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> OAuthStoreError {
    OAuthStoreError(crate::classify(error))
}

/// Whether a database error is the violation of this constraint.
fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == constraint)
}

/// Emails longer than the column allows are not kept (the email is informational here).
fn stored_email(identity: &ProviderIdentity) -> Option<&str> {
    identity
        .email
        .as_deref()
        .filter(|e| e.chars().count() <= 254)
}

#[async_trait]
impl OAuthStore for PgOAuthStore {
    #[tracing::instrument(name = "oauth.put_state", skip_all, fields(provider = %pending.provider))]
    async fn put_state(&self, pending: PendingSignIn) -> Result<(), OAuthStoreError> {
        let ttl_micros = i64::try_from(pending.ttl.as_micros()).unwrap_or(i64::MAX);
        sqlx::query!(
            r#"
            insert into oauth_states
                (state_digest, browser_digest, provider, sealed_verifier, sealed_nonce, link_user_id, expires_at)
            values (sha256(convert_to($1, 'UTF8')), sha256(convert_to($2, 'UTF8')), $3, $4, $5, $6,
                    now() + $7::bigint * interval '1 microsecond')
            "#,
            pending.state.expose_secret(),
            pending.browser.expose_secret(),
            pending.provider,
            pending.sealed_verifier,
            pending.sealed_nonce,
            pending.link_user_id,
            ttl_micros,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    #[tracing::instrument(name = "oauth.take_state", skip_all, fields(%provider))]
    async fn take_state(
        &self,
        provider: &str,
        state: &str,
        browser: &str,
    ) -> Result<Option<TakenSignIn>, OAuthStoreError> {
        let row = sqlx::query!(
            r#"
            delete from oauth_states
            where state_digest = sha256(convert_to($1, 'UTF8'))
              and browser_digest = sha256(convert_to($2, 'UTF8'))
              and provider = $3
              and expires_at > now()
            returning sealed_verifier, sealed_nonce, link_user_id
            "#,
            state,
            browser,
            provider,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|r| TakenSignIn {
            sealed_verifier: r.sealed_verifier,
            sealed_nonce: r.sealed_nonce,
            link_user_id: r.link_user_id,
        }))
    }

    #[tracing::instrument(name = "oauth.find_identity", skip_all, fields(%provider))]
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Uuid>, OAuthStoreError> {
        sqlx::query_scalar!(
            r#"
            select i.user_id from oauth_identities i
            join users u on u.id = i.user_id
            where i.provider = $1 and i.subject = $2 and u.deleted_at is null
            "#,
            provider,
            subject,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)
    }

    #[tracing::instrument(name = "oauth.link", skip_all, fields(%provider, %user_id))]
    async fn link(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        user_id: Uuid,
    ) -> Result<LinkOutcome, OAuthStoreError> {
        let inserted = sqlx::query!(
            r#"
            insert into oauth_identities (provider, subject, user_id, email)
            values ($1, $2, $3, $4)
            on conflict (provider, subject) do nothing
            "#,
            provider,
            identity.subject,
            user_id,
            stored_email(identity),
        )
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(done) if done.rows_affected() == 1 => Ok(LinkOutcome::Linked),
            // The identity exists: linked already to this user is fine, to another is not.
            Ok(_) => {
                let owner = self.find_identity(provider, &identity.subject).await?;
                Ok(if owner == Some(user_id) {
                    LinkOutcome::Linked
                } else {
                    LinkOutcome::Conflict
                })
            }
            // The user has another identity of this provider.
            Err(e) if violates(&e, "oauth_identities_user_provider_key") => {
                Ok(LinkOutcome::Conflict)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    #[tracing::instrument(name = "oauth.create_user", skip_all, fields(%provider))]
    async fn create_user(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        email: &Email,
        display_name: &DisplayName,
    ) -> Result<Option<User>, OAuthStoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let created = sqlx::query!(
            r#"
            insert into users (email, display_name, password_hash, role, email_verified_at)
            values ($1, $2, null, 'user', case when $3 then now() end)
            returning id, email_verified_at, created_at
            "#,
            email.as_str(),
            display_name.as_str(),
            identity.email_verified,
        )
        .fetch_one(&mut *tx)
        .await;
        let row = match created {
            Ok(row) => row,
            Err(e) if violates(&e, "users_email_key") => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        sqlx::query!(
            "insert into oauth_identities (provider, subject, user_id, email) values ($1, $2, $3, $4)",
            provider,
            identity.subject,
            row.id,
            stored_email(identity),
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(User {
            id: row.id,
            email: email.clone(),
            display_name: display_name.clone(),
            role: Role::User,
            email_verified_at: row.email_verified_at,
            locked: false,
            created_at: row.created_at,
            mfa_enabled: false,
        }))
    }
}
