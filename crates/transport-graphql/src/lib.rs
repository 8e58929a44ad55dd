//! # bulwark-transport-graphql
//!
//! The GraphQL adapter: an async-graphql schema over the *same* domain services and policy as REST
//! ([`schema`]), the armour that runs before the executor ([`armour`]: query bytes and tokens
//! before parsing, aliases and root fields after), and the thin actix adapter for `POST /graphql`
//! ([`http`]). Resolvers hold no authorisation logic: they pass the request's actor to a service,
//! which decides, and map its errors to `extensions.code`.
//!
//! Subscriptions run over `GET /graphql/ws` ([`socket`]: Origin allowlist and subprotocol at the
//! upgrade) speaking `graphql-transport-ws` ([`subscriptions`]: written over a generic
//! Stream/Sink and unit-tested with paused time). The subscription resolvers read the app's
//! fan-out ([`schema::NotificationSource`]) and ask the document policy before every event.
//!
//! **Never imports** a database crate, the security adapters, or another transport: the shared HTTP
//! needs (actor extraction, problems, client IP) come from `bulwark-web`.

pub mod armour;
pub mod http;
pub mod schema;
pub mod socket;
pub mod subscriptions;

pub use armour::Limits;
pub use http::routes;
pub use schema::{BulwarkSchema, NotificationSource, Services, build, sdl};
pub use socket::SubscriptionSocket;
