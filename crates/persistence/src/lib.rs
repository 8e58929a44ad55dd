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

/// Boxes an adapter's error for its port, marking the database's unavailability as such
/// ([`bulwark_domain::error::Unavailable`]): the transports answer an outage with 503 and
/// `Retry-After`, and anything else with a generic 500.
pub(crate) fn classify(
    error: impl std::error::Error + Send + Sync + 'static,
) -> Box<dyn std::error::Error + Send + Sync> {
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
    match boxed.downcast::<sqlx::Error>() {
        Ok(error) if unreachable(&error) => Box::new(bulwark_domain::error::Unavailable(error)),
        Ok(error) => error,
        Err(other) => other,
    }
}

/// Whether a driver error means the database is unreachable or did not answer in time (rather
/// than that the query or the data is wrong): no connection (refused, reset, TLS, the pool's
/// acquire timeout, a closed pool), a connection the server ended (`57P01` terminated by an
/// administrator, `57P02`/`57P03` crash or start-up), a connection exception (class `08`), too
/// many connections (`53300`), or a statement cancelled by its timeout (`57014`).
fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "57014")
        }),
        _ => false,
    }
}
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

#[cfg(test)]
mod classify_tests {
    use super::classify;

    fn is_unavailable(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
        error.is::<bulwark_domain::error::Unavailable>()
    }

    #[test]
    fn an_unreachable_database_is_marked_unavailable_and_a_wrong_query_is_not() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_unavailable(classify(refused).as_ref()));
        assert!(is_unavailable(classify(sqlx::Error::PoolTimedOut).as_ref()));
        assert!(is_unavailable(classify(sqlx::Error::PoolClosed).as_ref()));
        assert!(!is_unavailable(classify(sqlx::Error::RowNotFound).as_ref()));
        assert!(!is_unavailable(
            classify(sqlx::Error::ColumnNotFound("x".into())).as_ref()
        ));
        // Not a driver error at all: boxed as it is.
        let other = classify(std::io::Error::other("not sqlx"));
        assert!(!is_unavailable(other.as_ref()));
        assert_eq!(other.to_string(), "not sqlx");
    }
}
