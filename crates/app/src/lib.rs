//! # bulwark-app
//!
//! The composition root — the only crate that knows every other one. It reads the configuration
//! ([`config`]), sets up logging ([`telemetry`]), builds the adapters and hands them to the
//! transports ([`startup`]), and offers the `bulwark` command line (`src/main.rs`).
//!
//! Read the crates in this order to follow a request: `bulwark-web` (what every request passes
//! through) → `bulwark-transport-rest` (handlers) → `bulwark-domain` (rules and ports) →
//! `bulwark-persistence` / `bulwark-security` (adapters) → this crate (how they are wired).

pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
