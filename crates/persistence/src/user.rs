//! Users in PostgreSQL.
//!
//! The administrators' user list pages by keyset on `(created_at desc, id desc)` and searches
//! literally, exactly as documents do (see [`crate::document`] for why, at length); deleted
//! (anonymised) accounts are invisible to every method, the listing included.

use async_trait::async_trait;
use bulwark_domain::document::Cursor;
use bulwark_domain::password::PasswordHash;
use bulwark_domain::user::{
    CreateUserError, Credentials, DisplayName, Email, NewUser, Plan, Role, User, UserPage,
    UserQuery, UserRepository, UserStoreError, UserSummary,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::listing::{like_literal, page_and_fetch, split_page};

/// The PostgreSQL user repository.
#[derive(Debug, Clone)]
pub struct PgUserRepository {
    pool: PgPool,
}

impl PgUserRepository {
    /// A repository over the service's pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> UserStoreError {
    UserStoreError(crate::classify(error))
}

/// A stored row that no longer parses is a broken invariant (someone wrote around the domain
/// types): an error for the log, never a half-valid `User`.
#[derive(Debug, thiserror::Error)]
#[error("users row {0} holds a value the domain refuses: {1}")]
struct CorruptRow(Uuid, &'static str);

/// A `users` row as the user queries select it.
struct UserRow {
    id: Uuid,
    email: String,
    display_name: String,
    role: String,
    email_verified_at: Option<OffsetDateTime>,
    locked: bool,
    created_at: OffsetDateTime,
    mfa_enabled: bool,
}

impl UserRow {
    fn into_user(self) -> Result<User, UserStoreError> {
        let id = self.id;
        Ok(User {
            id,
            email: Email::parse(&self.email).map_err(|_| store_error(CorruptRow(id, "email")))?,
            display_name: DisplayName::parse(&self.display_name)
                .map_err(|_| store_error(CorruptRow(id, "display_name")))?,
            role: Role::from_stored(&self.role)
                .ok_or_else(|| store_error(CorruptRow(id, "role")))?,
            email_verified_at: self.email_verified_at,
            locked: self.locked,
            created_at: self.created_at,
            mfa_enabled: self.mfa_enabled,
        })
    }
}

/// A `users` row as the administrators' queries select it: the user and its plan.
struct SummaryRow {
    id: Uuid,
    email: String,
    display_name: String,
    role: String,
    email_verified_at: Option<OffsetDateTime>,
    locked: bool,
    created_at: OffsetDateTime,
    plan: String,
    mfa_enabled: bool,
}

impl SummaryRow {
    fn into_summary(self) -> Result<UserSummary, UserStoreError> {
        let user = UserRow {
            id: self.id,
            email: self.email,
            display_name: self.display_name,
            role: self.role,
            email_verified_at: self.email_verified_at,
            locked: self.locked,
            created_at: self.created_at,
            mfa_enabled: self.mfa_enabled,
        }
        .into_user()?;
        let plan =
            Plan::parse(&self.plan).ok_or_else(|| store_error(CorruptRow(user.id, "plan")))?;
        Ok(UserSummary { user, plan })
    }
}

#[async_trait]
impl UserRepository for PgUserRepository {
    #[tracing::instrument(name = "users.create", skip_all)]
    async fn create(&self, new: NewUser) -> Result<User, CreateUserError> {
        let row = sqlx::query_as!(
            UserRow,
            r#"
            insert into users (email, display_name, password_hash, role)
            values ($1, $2, $3, $4)
            returning id, email, display_name, role, email_verified_at, locked_at is not null as "locked!", created_at,
                      false as "mfa_enabled!"
            "#,
            new.email.as_str(),
            new.display_name.as_str(),
            new.password_hash.as_str(),
            new.role.as_str(),
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
            Some("users_email_key") => CreateUserError::EmailTaken,
            _ => CreateUserError::Store(store_error(e)),
        })?;
        Ok(row.into_user()?)
    }

    async fn find(&self, id: Uuid) -> Result<Option<User>, UserStoreError> {
        let row = sqlx::query_as!(
            UserRow,
            r#"
            select id, email, display_name, role, email_verified_at, locked_at is not null as "locked!", created_at,
                   exists (select 1 from mfa_totp m where m.user_id = users.id and m.enabled_at is not null) as "mfa_enabled!"
            from users where id = $1 and deleted_at is null
            "#,
            id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(UserRow::into_user).transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, UserStoreError> {
        let row = sqlx::query!(
            r#"
            select id, password_hash, locked_at is not null as "locked!"
            from users where lower(email) = lower($1) and deleted_at is null
            "#,
            email.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|r| Credentials {
            user_id: r.id,
            password_hash: r.password_hash.map(PasswordHash::from_stored),
            locked: r.locked,
        }))
    }

    #[tracing::instrument(name = "users.set_password_hash", skip_all, fields(%id))]
    async fn set_password_hash(&self, id: Uuid, hash: &PasswordHash) -> Result<(), UserStoreError> {
        sqlx::query!(
            "update users set password_hash = $2, updated_at = now() where id = $1 and deleted_at is null",
            id,
            hash.as_str(),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn credentials_by_id(&self, id: Uuid) -> Result<Option<Credentials>, UserStoreError> {
        let row = sqlx::query!(
            r#"
            select id, password_hash, locked_at is not null as "locked!"
            from users where id = $1 and deleted_at is null
            "#,
            id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|r| Credentials {
            user_id: r.id,
            password_hash: r.password_hash.map(PasswordHash::from_stored),
            locked: r.locked,
        }))
    }

    #[tracing::instrument(name = "users.update_display_name", skip_all, fields(%id))]
    async fn update_display_name(
        &self,
        id: Uuid,
        display_name: &DisplayName,
    ) -> Result<Option<User>, UserStoreError> {
        let row = sqlx::query_as!(
            UserRow,
            r#"
            update users set display_name = $2, updated_at = now()
            where id = $1 and deleted_at is null
            returning id, email, display_name, role, email_verified_at, locked_at is not null as "locked!", created_at,
                      exists (select 1 from mfa_totp m where m.user_id = users.id and m.enabled_at is not null) as "mfa_enabled!"
            "#,
            id,
            display_name.as_str(),
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(UserRow::into_user).transpose()
    }

    #[tracing::instrument(name = "users.mark_email_verified", skip_all, fields(%id))]
    async fn mark_email_verified(&self, id: Uuid) -> Result<bool, UserStoreError> {
        // Idempotent: the first verification's time is kept.
        let result = sqlx::query!(
            r#"
            update users
            set email_verified_at = coalesce(email_verified_at, now()),
                updated_at = case when email_verified_at is null then now() else updated_at end
            where id = $1 and deleted_at is null
            "#,
            id,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(name = "users.set_locked", skip_all, fields(%id, locked = locked))]
    async fn set_locked(&self, id: Uuid, locked: bool) -> Result<bool, UserStoreError> {
        // Locking a locked account keeps the time it was first locked.
        let result = sqlx::query!(
            r#"
            update users
            set locked_at = case when $2 then coalesce(locked_at, now()) end,
                updated_at = now()
            where id = $1 and deleted_at is null
            "#,
            id,
            locked,
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(name = "users.list", skip_all, fields(limit = query.limit, search = query.q.is_some()))]
    async fn list(&self, query: &UserQuery) -> Result<UserPage, UserStoreError> {
        let (page, fetch) = page_and_fetch(query.limit);
        let pattern = query.q.as_deref().map(like_literal);
        // The same shape as the documents listing: the first page starts after ('infinity', the
        // largest uuid) rather than under a `$1 is null or …` guard, so the row comparison is an
        // index condition on users_created_at_id_idx in every plan PostgreSQL may cache. That index
        // holds only undeleted rows, and `deleted_at is null` here is what lets the planner use it.
        // The search is a filter on that scan, over the email or the display name; `escape '\'`
        // names the character `like_literal` escaped with, so the term matches only itself.
        let rows = sqlx::query_as!(
            SummaryRow,
            r#"
            select id, email, display_name, role, email_verified_at,
                   locked_at is not null as "locked!", created_at, plan,
                   exists (select 1 from mfa_totp m where m.user_id = users.id and m.enabled_at is not null) as "mfa_enabled!"
            from users
            where deleted_at is null
              and (created_at, id) < (coalesce($1::timestamptz, 'infinity'),
                                      coalesce($2::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
              and ($3::text is null
                   or email ilike ('%' || $3 || '%') escape '\'
                   or display_name ilike ('%' || $3 || '%') escape '\')
            order by created_at desc, id desc
            limit $4
            "#,
            query.after.map(|c| c.created_at),
            query.after.map(|c| c.id),
            pattern,
            fetch,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;

        let (rows, more) = split_page(rows, page);
        let items = rows
            .into_iter()
            .map(SummaryRow::into_summary)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if more {
            items.last().map(|s| Cursor {
                created_at: s.user.created_at,
                id: s.user.id,
            })
        } else {
            None
        };
        Ok(UserPage { items, next })
    }

    async fn summary(&self, id: Uuid) -> Result<Option<UserSummary>, UserStoreError> {
        let row = sqlx::query_as!(
            SummaryRow,
            r#"
            select id, email, display_name, role, email_verified_at,
                   locked_at is not null as "locked!", created_at, plan,
                   exists (select 1 from mfa_totp m where m.user_id = users.id and m.enabled_at is not null) as "mfa_enabled!"
            from users where id = $1 and deleted_at is null
            "#,
            id,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(SummaryRow::into_summary).transpose()
    }

    #[tracing::instrument(name = "users.set_role", skip_all, fields(%id, role = role.as_str()))]
    async fn set_role(&self, id: Uuid, role: Role) -> Result<bool, UserStoreError> {
        // A changed role also tells every instance to forget the cached principal of the user's
        // sessions (the users_notify_principal_changed trigger), so it counts from the next request.
        let result = sqlx::query!(
            "update users set role = $2, updated_at = now() where id = $1 and deleted_at is null",
            id,
            role.as_str(),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(name = "users.set_plan", skip_all, fields(%id, plan = plan.as_str()))]
    async fn set_plan(&self, id: Uuid, plan: Plan) -> Result<bool, UserStoreError> {
        let result = sqlx::query!(
            "update users set plan = $2, updated_at = now() where id = $1 and deleted_at is null",
            id,
            plan.as_str(),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(name = "users.delete_and_anonymise", skip_all, fields(%id))]
    async fn delete_and_anonymise(&self, id: Uuid) -> Result<bool, UserStoreError> {
        // The placeholder email is unique (it holds the id), fits users_email_length_check (60
        // characters) and is under `.invalid`, a top-level domain that never resolves (RFC 2606):
        // no mail can reach it, and the old address is free for a new account at once.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let result = sqlx::query!(
            r#"
            update users
            set email = 'deleted-' || id::text || '@deleted.invalid',
                display_name = 'Deleted user',
                password_hash = null,
                email_verified_at = null,
                updated_at = now(),
                deleted_at = now()
            where id = $1 and deleted_at is null
            "#,
            id,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        // The account's credentials and outbound channels go with it: its API keys (already
        // useless: they authenticate only for an undeleted owner) and its webhooks.
        sqlx::query!("delete from api_keys where owner_id = $1", id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query!("delete from webhooks where owner_id = $1", id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }
}
