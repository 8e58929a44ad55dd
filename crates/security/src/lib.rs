//! # bulwark-security
//!
//! Cryptography behind the domain's ports. Today: parsing, checking and generating the service's key
//! material ([`keys`]). The identity, MFA and API-key issues add argon2id password hashing, EdDSA
//! access tokens with a JWKS, TOTP and envelope encryption here, each implementing a port of
//! `bulwark-domain`.
//!
//! Rules this crate keeps:
//! - One crypto backend, aws-lc-rs, for everything (two backends make rustls panic at start-up and
//!   double the audit surface). No hand-written primitives.
//! - Key material lives in `secrecy` types; `Debug` never prints it, and no error message contains it.
//!
//! **Never imports** a transport (actix, async-graphql) or a database crate.

pub mod keys;
pub mod password;
pub mod refresh;
pub mod tokens;
