//! # bulwark-security
//!
//! Cryptography behind the domain's ports: the service's key material ([`keys`]), argon2id password
//! hashing with a bounded queue ([`password`]), EdDSA access tokens and the JWKS ([`tokens`]),
//! prefixed opaque tokens — refresh, email verification, password reset — ([`opaque`], with
//! [`refresh`] as the refresh tokens' own face of it), throttle keys for emails and client
//! addresses ([`throttle`]), AES-256-GCM sealing of secrets at rest ([`sealing`]), the allowlist
//! HTML sanitiser for document bodies ([`html`], on ammonia) and the HMAC signatures of webhook
//! deliveries ([`webhook_signature`]) with the SSRF-safe HTTP transport that sends them
//! ([`webhook_transport`], on reqwest with rustls). The second factor is here too: TOTP
//! ([`totp`], RFC 6238 on aws-lc's HMAC-SHA1, its enrolment QR code drawn as SVG) and single-use
//! recovery codes ([`recovery`]); API-key hashing joins them later.
//!
//! Sign-in with GitHub or any OpenID Connect issuer goes through [`oauth`]: PKCE, the code
//! exchange over a locked-down reqwest client, and ID tokens checked against the issuer's JWKS.
//!
//! Rules this crate keeps:
//! - One crypto backend, aws-lc-rs, for everything (two backends make rustls panic at start-up and
//!   double the audit surface). No hand-written primitives.
//! - Key material lives in `secrecy` types; `Debug` never prints it, and no error message contains it.
//!
//! **Never imports** a transport (actix, async-graphql) or a database crate.

pub mod api_key;
pub mod html;
pub mod keys;
pub mod oauth;
pub mod opaque;
pub mod password;
pub mod recovery;
pub mod refresh;
pub mod sealing;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod webhook_signature;
pub mod webhook_transport;
