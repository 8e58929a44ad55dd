//! # bulwark-persistence
//!
//! The outbound database adapter: a PostgreSQL pool built with safe limits ([`pool`]), the embedded
//! migrations ([`MIGRATOR`]), and repositories that implement the ports of `bulwark-domain`:
//! [`audit::PgAuditLog`] (append, and the admin listing), [`health::PgProbe`],
//! [`user::PgUserRepository`] (with the admin listing, roles and plans),
//! [`session::PgSessionStore`] with its cache [`liveness::CachedLiveness`],
//! [`throttle::PgLoginThrottle`], [`one_time::PgOneTimeTokenStore`] (verification and reset
//! tokens), [`outbox::PgOutbox`] (mail, secrets sealed), [`document::PgDocumentRepository`]
//! (documents and their shares: keyset paging, literal title search) and
//! [`webhook::PgWebhookRepository`] (webhooks, and their delivery queue: `skip locked`, leases).
//!
//! Rules this crate keeps:
//! - Only `sqlx::query!`/`query_as!` (checked against the schema at compile time, offline through
//!   the committed `.sqlx/` cache) — never SQL assembled from strings. Parameters are always bound.
//! - Constraint names from `migrations/` are mapped to domain errors; raw database errors never
//!   leave this crate as anything the client could see.
//!
//! **Never imports** a transport (actix, async-graphql) or the app's configuration.

pub mod api_key;
pub mod attachment;
pub mod audit;
pub mod document;
pub mod fanout;
pub mod flow;
pub mod health;
mod listing;
pub mod liveness;
pub mod maintenance;
pub mod mfa;
pub mod oauth;
pub mod one_time;
pub mod outbox;
pub mod pool;
mod quota;
pub mod redis_fanout;
pub mod redis_limiter;
pub mod rotation;
pub mod session;
#[cfg(test)]
pub(crate) mod test_redis;
pub mod throttle;
pub mod user;
pub mod webhook;

/// The migrations in `migrations/`, embedded in the binary at compile time so that `bulwark migrate`
/// needs no files on the server.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

pub use pool::{DatabaseSettings, connect};
pub use sqlx::PgPool;
pub use sqlx::migrate::MigrateError;
pub use sqlx::postgres::PgConnectOptions;

/// Applies every pending migration (idempotent; sqlx takes an advisory lock so two instances
/// starting together do not race).
///
/// # Errors
/// [`MigrateError`] when the database cannot be reached, a migration fails, or an applied
/// migration was edited after it landed (its checksum changed).
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// Creates the database named in `url` when it does not exist yet (development convenience; in
/// production the database is provisioned by the operator and the app's role cannot create one).
///
/// # Errors
/// A database error when the server cannot be reached or the role may not create databases.
pub async fn create_database_if_missing(url: &str) -> Result<bool, sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    if sqlx::Postgres::database_exists(url).await? {
        Ok(false)
    } else {
        sqlx::Postgres::create_database(url).await.map(|()| true)
    }
}
