//! # bulwark-security
//!
//! Cryptography behind the domain's ports: the service's key material ([`keys`]), argon2id password
//! hashing with a bounded queue ([`password`]), EdDSA access tokens and the JWKS ([`tokens`]),
//! prefixed opaque tokens — refresh, email verification, password reset — ([`opaque`], with
//! [`refresh`] as the refresh tokens' own face of it), throttle keys for emails and client
//! addresses ([`throttle`]), AES-256-GCM sealing of secrets at rest ([`sealing`]), the allowlist
//! HTML sanitiser for document bodies ([`html`], on ammonia) and the HMAC signatures of webhook
//! deliveries ([`webhook_signature`]) with the SSRF-safe HTTP transport that sends them
//! ([`webhook_transport`], on reqwest with rustls). TOTP and API-key hashing join them with the
//! MFA issue.
//!
//! Rules this crate keeps:
//! - One crypto backend, aws-lc-rs, for everything (two backends make rustls panic at start-up and
//!   double the audit surface). No hand-written primitives.
//! - Key material lives in `secrecy` types; `Debug` never prints it, and no error message contains it.
//!
//! **Never imports** a transport (actix, async-graphql) or a database crate.

pub mod html;
pub mod keys;
pub mod opaque;
pub mod password;
pub mod refresh;
pub mod sealing;
pub mod throttle;
pub mod tokens;
pub mod webhook_signature;
pub mod webhook_transport;
