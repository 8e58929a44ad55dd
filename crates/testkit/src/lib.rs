//! # bulwark-testkit
//!
//! Test support shared by the repository tests and the black-box suite: [`TestDatabase`], a fresh
//! PostgreSQL database per test, migrated, and dropped when the value is dropped (also when the test
//! panics). Tests never touch a database they did not create, so they can run in parallel with each
//! other and beside anything else on the same server.
//!
//! The server is `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); the
//! role needs `CREATEDB`. Only a dev-dependency: it never reaches the `bulwark` binary.
//!
//! [`fake_oauth`] is a fake identity provider on 127.0.0.1 — an OpenID Connect issuer and GitHub in
//! one, with knobs for each way a provider can misbehave — for the OAuth adapters' tests.

#![allow(clippy::expect_used)] // test support: a failure here is a failed test, said loudly.

pub mod fake_oauth;

use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use bulwark_persistence::{DatabaseSettings, PgConnectOptions, PgPool};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Where the tests' PostgreSQL server is.
#[must_use]
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    server: PgConnectOptions,
    /// Connection options for this database.
    pub connect: PgConnectOptions,
    /// A small pool on this database (2 connections: the server allows 100 in all, and tests run
    /// in parallel).
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates a fresh database with every migration applied.
    ///
    /// # Panics
    /// When the server cannot be reached or migrations fail: the test cannot run.
    pub async fn migrated() -> Self {
        let db = Self::empty().await;
        bulwark_persistence::migrate(&db.pool)
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// Creates a fresh, empty database.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn empty() -> Self {
        let server = PgConnectOptions::from_str(&server_url())
            .expect("TEST_DATABASE_URL is a postgres:// URL");
        let name = format!("bulwark_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect_with(&server).await.unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL server (TEST_DATABASE_URL, default 127.0.0.1:5432): {e}")
        });
        // Identifiers cannot be bound as parameters; `name` is built above from a UUID's hex digits
        // only, so interpolating it is safe.
        sqlx::query(AssertSqlSafe(format!(r#"create database "{name}""#)))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;

        let connect = server.clone().database(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(connect.clone());
        Self {
            name,
            server,
            connect,
            pool,
        }
    }

    /// Settings for the app's own pool on this database (kept small for the same reason; two of
    /// them are held for good by the app's listeners — revocations and document events).
    #[must_use]
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            connect: self.connect.clone(),
            max_connections: 5,
            acquire_timeout: std::time::Duration::from_secs(3),
            statement_timeout: std::time::Duration::from_secs(5),
        }
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's async runtime, which cannot be blocked on; a helper thread
        // with its own small runtime does the dropping. `with (force)` ends the connections that
        // the test's pools still hold.
        let (name, server) = (self.name.clone(), self.server.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect_with(&server).await.ok()?;
                sqlx::query(AssertSqlSafe(format!(
                    r#"drop database if exists "{name}" with (force)"#
                )))
                .execute(&mut admin)
                .await
                .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A log sink for tests: give `move || logs.clone()` to a tracing subscriber's `with_writer`, then
/// read what was logged with [`CapturedLogs::text`].
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
