//! # bulwark-transport-ws
//!
//! **Not built yet** — this crate is an empty skeleton that reserves the place of the WebSocket
//! adapter in the dependency graph. It exposes nothing and the application does not mount it;
//! `/api/v1/ws` answers 404 until the WebSocket issue (issue 6) lands.
//!
//! What it will hold: the `/api/v1/ws` notification protocol written over a generic `Sink`/`Stream`
//! (so it is unit-testable with channels), Origin checks at the upgrade, authentication by the first
//! message (never a token in the URL), per-subscription and per-event authorisation through the
//! domain policy, frame-size and message-rate limits, and multi-instance fan-out.
//!
//! **Never imports** a database crate, the security adapters, or another transport.
