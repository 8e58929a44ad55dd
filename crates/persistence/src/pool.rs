//! Building the connection pool.
//!
//! Two limits make the service degrade instead of hang when PostgreSQL is slow or gone:
//! - an **acquire timeout** (a few seconds): a request waits that long for a connection, then fails
//!   with a clear 503 instead of piling up;
//! - a **statement timeout**, set per connection at start-up: a runaway query is cancelled by the
//!   server itself. `idle_in_transaction_session_timeout` does the same for a transaction left open.
//!
//! TLS to PostgreSQL is sqlx's (rustls on aws-lc-rs, the Mozilla roots plus `sslrootcert`), chosen by
//! `sslmode` in `DATABASE_URL`: `verify-full` checks the chain and the host name, `verify-ca` only
//! the chain, `require` encrypts without checking who answers, and `prefer` (sqlx's default, as
//! libpq's) falls back to plain text when the server offers no TLS. [`transport`] tells them apart
//! so that the service can warn in production.

use std::time::Duration;

use sqlx::PgPool;
/// `sslmode` of `DATABASE_URL` (re-exported: the configuration adjusts it, see [`transport`]).
pub use sqlx::postgres::PgSslMode;
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

/// How well the connection to PostgreSQL is protected, judged from the connect options alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket or a loopback host: the traffic never leaves the machine.
    Local,
    /// TLS with the chain and the host name checked (`sslmode=verify-full`).
    Verified,
    /// TLS without the host name checked (`verify-ca`), or without any check (`require`): safe from
    /// a passive listener, not from whoever can answer in the server's place.
    EncryptedUnverified,
    /// `disable`, `allow` or `prefer`: plain text whenever the server (or someone in between)
    /// declines TLS.
    MaybePlain,
}

/// How the connection described by `options` is protected.
#[must_use]
pub fn transport(options: &PgConnectOptions) -> Transport {
    let host = options.get_host();
    let local = options.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        return Transport::Local;
    }
    match options.get_ssl_mode() {
        PgSslMode::VerifyFull => Transport::Verified,
        PgSslMode::VerifyCa | PgSslMode::Require => Transport::EncryptedUnverified,
        PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer => Transport::MaybePlain,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn of(url: &str) -> Transport {
        transport(&PgConnectOptions::from_str(url).unwrap())
    }

    #[test]
    fn only_verify_full_counts_as_verified_across_a_network() {
        assert_eq!(
            of("postgres://u:p@db.internal/app?sslmode=verify-full"),
            Transport::Verified
        );
        for mode in ["verify-ca", "require"] {
            assert_eq!(
                of(&(String::from("postgres://u:p@db.internal/app?sslmode=") + mode)),
                Transport::EncryptedUnverified,
                "{mode}"
            );
        }
        for mode in ["prefer", "allow", "disable"] {
            assert_eq!(
                of(&(String::from("postgres://u:p@10.0.0.5/app?sslmode=") + mode)),
                Transport::MaybePlain,
                "{mode}"
            );
        }
    }

    #[test]
    fn loopback_and_unix_sockets_are_local_whatever_the_mode() {
        for url in [
            "postgres://u:p@127.0.0.1/app",
            "postgres://u:p@localhost:5432/app?sslmode=disable",
            "postgres://u:p@[::1]/app",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/app",
        ] {
            assert_eq!(of(url), Transport::Local, "{url}");
        }
    }
}
