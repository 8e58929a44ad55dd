//! # bulwark-domain
//!
//! The middle of the hexagon. Everything here is plain Rust: types that are valid by construction
//! (parse, don't validate), the rules and policies of the service, the *ports* (traits) that the
//! outside world implements, and — as the issues land — the use-case services that REST, GraphQL and
//! WebSocket all call. There is exactly one place where "may this actor do this to this object" is
//! decided, and it lives in this crate.
//!
//! **Never imports** an IO crate: no sqlx, actix, tokio, reqwest, redis. A test in
//! `tests/api/architecture.rs` reads this crate's manifest and fails if one appears. Adapters depend
//! on the domain, never the other way round.
//!
//! What exists today (the foundation):
//! - [`audit`]: the append-only security audit trail — its event type and the [`audit::AuditLog`]
//!   port, implemented by `bulwark-persistence`.
//! - [`health`]: the [`health::DependencyProbe`] port used by the readiness endpoint.
//! - [`user`]: `Email`, `DisplayName`, `Role` — parsed once, valid by construction.
//! - [`password`]: the password policy (composition or ASVS style, zxcvbn, blocklist, context) and
//!   the [`password::PasswordHasher`] port.
//! - [`token`]: access-token claims and the [`token::AccessTokens`] port.
//! - [`session`]: sessions, rotating refresh tokens and the [`session::SessionStore`] port.
//! - [`sealing`]: the [`sealing::Sealer`] port for secrets kept at rest.
//! - [`throttle`]: sign-in backoff and lockout per submitted email and per address, and its ports.
//! - [`opaque`]: refresh, verification and reset tokens (minted in `bulwark-security`, stored as
//!   digests) and the one-time token store.
//! - [`mail`]: what the service mails, and the [`mail::Mailer`] port (an outbox in PostgreSQL).
//! - [`context`]: [`context::Origin`] and [`context::Actor`], the explicit request context.
//! - [`error`]: [`error::Unexpected`], the failure the client did not cause.
//! - [`policy`]: roles, permissions, and the function-level "may this actor do this?".
//! - [`webhook_target`]: the SSRF policy for outbound webhooks — which URLs may be registered and
//!   which resolved addresses may be dialled ([`webhook_target::WebhookUrl`],
//!   [`webhook_target::check_resolved`]).
//!
//! The use cases, in the order to read them:
//! - [`auth::AuthService`]: login, refresh, logout, sessions, and bearer token → actor.
//! - [`account::AccountService`]: registration, profile, password change and reset, email
//!   verification, deletion.

pub mod abuse;
pub mod account;
pub mod admin;
pub mod api_key;
pub mod api_keys;
pub mod attachment;
pub mod audit;
pub mod auth;
pub mod context;
pub mod document;
pub mod documents;
pub mod error;
pub mod events;
pub mod flow;
pub mod health;
pub mod listing;
pub mod mail;
pub mod mfa;
pub mod mfa_service;
pub mod oauth;
pub mod oauth_signin;
pub mod opaque;
pub mod password;
pub mod policy;
pub mod quota;
pub mod rate_limit;
pub mod sealing;
pub mod session;
pub mod throttle;
pub mod token;
pub mod user;
pub mod webhook;
pub mod webhook_target;
pub mod webhooks;

/// What the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// Runs a future to completion on this thread. The services and the abuse watch are plain
    /// futures over their ports (the fakes never wait), so a minimal executor is enough.
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }
}
