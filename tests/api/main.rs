//! Bulwark's black-box API suite: one test binary, one module per area (Zero To Production's
//! `tests/api` layout). Each test starts the real application on port 0 against a database of its
//! own, talks HTTP to it, and drops the database at the end.
//!
//! Run it with `make test` (or `cargo test -p bulwark-tests`); it needs the PostgreSQL server at
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

mod abuse;
mod access;
mod account;
mod admin;
mod api_keys;
mod architecture;
mod attachments;
mod audit;
mod bola;
mod client_ip;
mod compose;
mod cors;
mod database;
mod documents;
mod errors;
mod faults;
mod graphql;
mod graphql_ws;
mod headers;
mod health;
mod helpers;
mod jwks;
mod logging;
mod login;
mod mail;
mod metrics;
mod mfa;
mod oauth;
mod openapi;
mod quotas;
mod rate_limits;
mod registration;
mod rotation;
mod sessions;
mod timeouts;
mod tls;
mod tokens;
mod webhooks;
mod websocket;
