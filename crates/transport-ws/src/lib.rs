//! # bulwark-transport-ws
//!
//! The WebSocket notifications adapter (`/api/v1/ws`). What exists today is the protocol itself,
//! [`notifications`]: authentication by the first message (never a token in the URL), the
//! connection closed when the access token expires, the per-user connection cap
//! ([`close::TOO_MANY_CONNECTIONS`], through [`Gatekeeper::admit`], with a ready-made
//! [`ConnectionCounter`] in [`connections`]), subscriptions authorised through the domain policy
//! when made *and* again for every event, heartbeat and idle timeout, and the frame-size,
//! message-rate and subscription limits — written as one async function, [`serve`], over a
//! generic `Stream`/`Sink` of frames, so that every rule is unit-tested with in-memory channels
//! and paused time rather than only end to end.
//!
//! Still to come (issue 6), and until then `/api/v1/ws` is not mounted: the actix upgrade that
//! turns `actix-ws` messages into [`Inbound`]/[`Outbound`] and calls [`serve`], the Origin check
//! against the allowlist at that upgrade (403 before any frame), the [`Gatekeeper`]
//! implementation over the domain services, and the multi-instance fan-out that feeds the
//! broadcast channel.
//!
//! **Never imports** a database crate, the security adapters, or another transport: tokens,
//! sessions and the read policy reach the protocol only through [`Gatekeeper`].

pub mod connections;
pub mod notifications;

pub use connections::{ConnectionCounter, ConnectionPermit};
pub use notifications::{Authenticated, Gatekeeper, Inbound, Outbound, Settings, close, serve};
