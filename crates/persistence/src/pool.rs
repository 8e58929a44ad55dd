//! Building the connection pool.
//!
//! Two limits make the service degrade instead of hang when PostgreSQL is slow or gone:
//! - an **acquire timeout** (a few seconds): a request waits that long for a connection, then fails
//!   with a clear 503 instead of piling up;
//! - a **statement timeout**, set per connection at start-up: a runaway query is cancelled by the
//!   server itself. `idle_in_transaction_session_timeout` does the same for a transaction left open.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// How to reach PostgreSQL and how hard to lean on it.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// Host, port, database, user and password (parsed from `DATABASE_URL`).
    pub connect: PgConnectOptions,
    /// Upper bound of open connections.
    pub max_connections: u32,
    /// How long a request waits for a free connection.
    pub acquire_timeout: Duration,
    /// Server-side limit of a single statement.
    pub statement_timeout: Duration,
}

// `PgConnectOptions`' own Debug prints the password; ours does not.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("database", &self.connect.get_database())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// Creates the pool without connecting: the first connection is made on first use, so the service
/// starts (and reports "not ready") while the database is still coming up.
#[must_use]
pub fn connect(settings: &DatabaseSettings) -> PgPool {
    let millis = settings.statement_timeout.as_millis().to_string();
    let connect = settings
        .connect
        .clone()
        .application_name("bulwark")
        .options([
            ("statement_timeout", millis.as_str()),
            ("idle_in_transaction_session_timeout", millis.as_str()),
        ]);
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(connect)
}
