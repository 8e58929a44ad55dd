//! # bulwark-transport-ws
//!
//! The WebSocket notifications adapter (`/api/v1/ws`). What exists today is the protocol itself,
//! [`notifications`]: authentication by the first message (never a token in the URL), the
//! connection closed when the access token expires, the per-user connection cap
//! ([`close::TOO_MANY_CONNECTIONS`], through [`Gatekeeper::admit`], with a ready-made
//! [`ConnectionCounter`], shared with the GraphQL socket, from `bulwark_web::connections`), subscriptions authorised through the domain policy
//! when made *and* again for every event, heartbeat and idle timeout, and the frame-size,
//! message-rate and subscription limits — written as one async function, [`serve`], over a
//! generic `Stream`/`Sink` of frames, so that every rule is unit-tested with in-memory channels
//! and paused time rather than only end to end.
//!
//! [`upgrade`] mounts it at `GET /api/v1/ws`: the Origin check against the allowlist before the
//! upgrade (403, no frame exchanged), actix-ws frames turned into [`Inbound`]/[`Outbound`], and the
//! [`Gatekeeper`] over the domain services (tokens and sessions from `AuthService`, the read
//! decision of `DocumentService`). Notifications come from the app's fan-out (PostgreSQL
//! `LISTEN`/`NOTIFY`, or Redis pub/sub; every instance). GraphQL subscriptions (`/graphql/ws`) are
//! `bulwark-transport-graphql`'s, written the same way.
//!
//! **Never imports** a database crate, the security adapters, or another transport: tokens,
//! sessions and the read policy reach the protocol only through [`Gatekeeper`].

pub mod notifications;
pub mod upgrade;

pub use bulwark_web::connections::{ConnectionCounter, ConnectionPermit};
pub use notifications::{Authenticated, Gatekeeper, Inbound, Outbound, Settings, close, serve};
pub use upgrade::{SocketState, routes};
