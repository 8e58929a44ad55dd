//! # bulwark-transport-graphql
//!
//! **Not built yet** — this crate is an empty skeleton that reserves the place of the GraphQL adapter
//! in the dependency graph. It exposes nothing and the application does not mount it; `/graphql`
//! answers 404 until the GraphQL issue (issue 6) lands.
//!
//! What it will hold: the async-graphql schema (in this library, so it is testable without HTTP),
//! thin actix adapters for `POST /graphql` and `/graphql/ws` (`graphql-transport-ws`, authenticated
//! in `connection_init`), guards that call the *same* domain services and policy as REST, depth /
//! complexity / alias / batch limits, and errors mapped to `extensions.code`.
//!
//! **Never imports** a database crate, the security adapters, or another transport: the shared HTTP
//! needs (actor extraction, problems, client IP) come from `bulwark-web`.
