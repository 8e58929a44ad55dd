//! The `graphql-transport-ws` protocol of `/graphql/ws`, written over any [`Stream`] of
//! [`Inbound`] frames and any [`Sink`] of [`Outbound`] frames, like the notifications socket: the
//! actix upgrade only translates frames and calls [`serve`]; the tests below drive the same
//! function with in-memory channels and paused time.
//!
//! # The conversation
//!
//! ```text
//! client                                                      server
//! {"type":"connection_init",
//!  "payload":{"authorization":"Bearer <access JWT>"}}  →                 (within init_timeout)
//!                                                      ←  {"type":"connection_ack"}
//! {"id":"1","type":"subscribe","payload":{"query":
//!   "subscription { documentChanged(id: \"…\") { kind version } }"}}  →
//!                                                      ←  {"id":"1","type":"next","payload":
//!                                                            {"data":{"documentChanged":{…}}}}
//! {"id":"1","type":"complete"}                         →     (the client stops it), or
//!                                                      ←  {"id":"1","type":"complete"}  (it ended)
//! {"type":"ping"}                                      →
//!                                                      ←  {"type":"pong"}
//! ```
//!
//! An operation refused before it runs (the armour, a query or mutation, a malformed request)
//! gets `{"id","type":"error","payload":[GraphQL errors]}`; one refused while it runs (say
//! `NOT_FOUND` for a document the caller may not read) gets a `next` carrying `errors`, then
//! `complete` — as the protocol specifies. Every error carries `extensions.code`.
//!
//! # Close codes
//!
//! The protocol's own ([`close`]): 4400 a message that is not one of the protocol's, 4401 a
//! `subscribe` before the `connection_ack`, 4403 a missing or refused token (the contract), 4408
//! no `connection_init` in time, 4409 a `subscribe` reusing the id of a running operation, 4429 a
//! second `connection_init`. Ours on top: 4403 also when the session ends (revoked, signed out) or
//! the access token expires — the socket presented the token once, so its life is the token's;
//! 4429 (reason `Too many connections`) when the user already has as many sockets open as allowed;
//! 1009 a frame over the size limit; 1008 too many messages per second; 1000 idle.
//!
//! # Security decisions, and why
//!
//! - **The token travels in `connection_init`, never in the URL** (URLs are logged everywhere; a
//!   cookie would ride along on a cross-site upgrade). Nothing runs before it was accepted.
//! - **Only subscriptions run here.** Queries and mutations go to `POST /graphql`, so the HTTP
//!   limits, logs and (issue 7) rate charges that guard them cannot be bypassed by sending the
//!   same document over the socket. Each `subscribe` passes the same armour as `POST /graphql`.
//! - **Authorisation at subscribe time and for every event** is the resolvers' (they ask
//!   `DocumentService::get` when subscribing and `DocumentService::may_hear` before each event);
//!   this loop adds the session check before every `next` and on every heartbeat, so a revoked
//!   session stops receiving at once and is closed within one heartbeat even when idle.
//! - **Bounded everything**: operations per connection ([`Settings::max_subscriptions`], refused
//!   with a `RATE_LIMITED` error), frame size, message rate, idle time, the per-user socket count,
//!   and a subscription that falls behind the fan-out ends instead of buffering.

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bulwark_domain::context::Actor;
pub use bulwark_web::socket::{Authenticated, Inbound, Outbound};
use bulwark_web::socket::{MIN_HEARTBEAT, RateWindow, deadline, time_left};
use futures_util::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The WebSocket subprotocol spoken here.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Close codes (RFC 6455's and the `graphql-transport-ws` protocol's).
pub mod close {
    /// Idle for too long.
    pub const NORMAL: u16 = 1000;
    /// The server is going away.
    pub const GOING_AWAY: u16 = 1001;
    /// Too many messages per second.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// A message that is not one of the protocol's.
    pub const BAD_MESSAGE: u16 = 4400;
    /// `subscribe` before `connection_ack`.
    pub const UNAUTHORIZED: u16 = 4401;
    /// A missing or refused token; the session ended or the token expired.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// A `subscribe` reusing the id of a running operation.
    pub const DUPLICATE_ID: u16 = 4409;
    /// A second `connection_init`, or one socket too many for this user.
    pub const TOO_MANY: u16 = 4429;
}

/// What the protocol asks of the rest of the application about the caller. None of these can
/// fail: an implementation that cannot answer answers *no* (and logs why).
#[async_trait]
pub trait Gatekeeper: Send + Sync {
    /// The actor of an access token and its expiry (None: refused, closed 4403).
    async fn authenticate(&self, token: &str) -> Option<Authenticated>;

    /// A place for one more socket of this user, held until the connection ends (None: 4429).
    fn admit(&self, actor: &Actor) -> Option<Box<dyn Any + Send>>;

    /// Whether the actor's session is still live (before every `next` and on every heartbeat).
    async fn still_live(&self, actor: &Actor) -> bool;

    /// Counts one `subscribe` toward the user's daily request quota (the same count as REST and
    /// GraphQL over HTTP). `Err`: used up, renewing after this long.
    async fn count_message(&self, actor: &Actor) -> Result<(), Duration>;
}

/// Runs operations for the protocol.
pub trait Operations: Send + Sync {
    /// Starts one operation (the `payload` of a `subscribe`) for the actor: either refused before
    /// it runs, with the GraphQL errors to send, or the stream of its results (each the JSON
    /// `payload` of one `next`), which ends when the operation completes.
    ///
    /// # Errors
    /// The GraphQL errors (JSON) of an operation refused before it runs.
    fn start(&self, actor: &Actor, payload: Value) -> Result<BoxStream<'static, Value>, Value>;
}

/// The limits and timers of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a new connection has to send `connection_init` (default 10 s).
    pub init_timeout: Duration,
    /// How often the server pings and re-checks the session (default 25 s; at least 1 s).
    pub heartbeat: Duration,
    /// How long a connection may go without any inbound frame, pongs included (default 60 s).
    pub idle_timeout: Duration,
    /// The largest text message accepted, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// How many inbound frames any one second may hold (default 20).
    pub max_messages_per_second: u32,
    /// How many operations may run at once on one connection (default 10).
    pub max_subscriptions: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 64 * 1024,
            max_messages_per_second: 20,
            max_subscriptions: 10,
        }
    }
}

/// The longest operation id accepted (so that the 4409 close reason stays within the 123 bytes
/// a close frame can carry).
const MAX_ID_LEN: usize = 64;

/// Runs one connection, from its first frame to its close frame (see the module documentation).
/// Returns the actor whose token was accepted, if any, once the connection is over and its permit
/// was dropped.
pub async fn serve<I, O>(
    mut inbound: I,
    outbound: O,
    gate: &dyn Gatekeeper,
    operations: &dyn Operations,
    settings: &Settings,
) -> Option<Actor>
where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Outbound> + Unpin,
{
    let mut connection = Connection {
        outbound,
        gate,
        operations,
        settings,
        rate: RateWindow::new(settings.max_messages_per_second),
        running: HashMap::new(),
        results: SelectAll::new(),
        generation: 0,
    };
    let Authenticated { actor, expires_at } = match connection.initialise(&mut inbound).await {
        Ok(authenticated) => authenticated,
        Err(end) => {
            connection.finish(end, None).await;
            return None;
        }
    };
    let time_left = time_left(expires_at, SystemTime::now());
    if time_left.is_zero() {
        connection.finish(End::session_ended(), Some(&actor)).await;
        return Some(actor);
    }
    let expires = deadline(time_left);
    let Some(permit) = gate.admit(&actor) else {
        let end = End::close(close::TOO_MANY, "Too many connections");
        connection.finish(end, Some(&actor)).await;
        return Some(actor);
    };
    let Err(end) = connection.session(&actor, &mut inbound, expires).await;
    connection.finish(end, Some(&actor)).await;
    drop(permit);
    Some(actor)
}

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// With a close frame.
    Close { code: u16, reason: String },
    /// Without one: the client closed or went away, or the sink failed.
    Quietly,
}

impl End {
    fn close(code: u16, reason: &str) -> Self {
        Self::Close {
            code,
            reason: reason.to_owned(),
        }
    }

    fn forbidden() -> Self {
        Self::close(close::FORBIDDEN, "Forbidden")
    }

    fn session_ended() -> Self {
        Self::close(close::FORBIDDEN, "Session ended")
    }

    fn bad_message() -> Self {
        Self::close(close::BAD_MESSAGE, "Invalid message received")
    }
}

/// The client's messages. Unknown fields are refused, as everywhere else in the API.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<InitPayload>,
    },
    Ping {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: Value,
    },
    Complete {
        id: String,
    },
}

/// `connection_init`'s payload: the credential, and nothing else is looked at.
#[derive(Deserialize)]
struct InitPayload {
    #[serde(default)]
    authorization: Option<String>,
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The end of the connection if the token expired (`expires` has come).
fn unexpired(expires: Instant) -> Result<(), End> {
    if Instant::now() >= expires {
        Err(End::session_ended())
    } else {
        Ok(())
    }
}

/// One result of a running operation: `(id, generation, Some(payload))`, or `None` once it ended.
type Tagged = (String, u64, Option<Value>);

/// The state of one connection.
struct Connection<'a, O> {
    outbound: O,
    gate: &'a dyn Gatekeeper,
    operations: &'a dyn Operations,
    settings: &'a Settings,
    rate: RateWindow,
    /// Running operations: id → (generation, abort handle). The generation tells a result of
    /// this operation from one of an earlier operation that used the same id.
    running: HashMap<String, (u64, AbortHandle)>,
    results: SelectAll<BoxStream<'static, Tagged>>,
    generation: u64,
}

impl<O> Connection<'_, O>
where
    O: Sink<Outbound> + Unpin,
{
    /// Until `connection_init` is accepted (pings are answered meanwhile).
    async fn initialise<I>(&mut self, inbound: &mut I) -> Result<Authenticated, End>
    where
        I: Stream<Item = Inbound> + Unpin,
    {
        let timeout = tokio::time::sleep_until(deadline(self.settings.init_timeout));
        tokio::pin!(timeout);
        loop {
            let frame = tokio::select! {
                frame = inbound.next() => frame,
                () = &mut timeout => {
                    return Err(End::close(close::INIT_TIMEOUT, "Connection initialisation timeout"));
                }
            };
            let Some(text) = self.on_frame(frame).await? else {
                continue;
            };
            match serde_json::from_str::<ClientMessage>(&text) {
                Ok(ClientMessage::ConnectionInit { payload }) => {
                    let token = payload
                        .and_then(|p| p.authorization)
                        .and_then(|a| bearer(&a).map(str::to_owned));
                    let Some(token) = token else {
                        return Err(End::forbidden());
                    };
                    return self
                        .gate
                        .authenticate(&token)
                        .await
                        .ok_or_else(End::forbidden);
                }
                Ok(ClientMessage::Ping { .. }) => self.send_json(&json!({"type": "pong"})).await?,
                Ok(ClientMessage::Pong { .. }) => {}
                Ok(ClientMessage::Subscribe { .. } | ClientMessage::Complete { .. }) => {
                    return Err(End::close(close::UNAUTHORIZED, "Unauthorized"));
                }
                Err(_) => return Err(End::bad_message()),
            }
        }
    }

    /// After `connection_ack`, until something ends the connection (at the latest at `expires`).
    async fn session<I>(
        &mut self,
        actor: &Actor,
        inbound: &mut I,
        expires: Instant,
    ) -> Result<Infallible, End>
    where
        I: Stream<Item = Inbound> + Unpin,
    {
        self.send_json(&json!({"type": "connection_ack"})).await?;
        let heartbeat_every = self.settings.heartbeat.max(MIN_HEARTBEAT);
        let heartbeat = tokio::time::sleep_until(deadline(heartbeat_every));
        let idle = tokio::time::sleep_until(deadline(self.settings.idle_timeout));
        let expiry = tokio::time::sleep_until(expires);
        tokio::pin!(heartbeat, idle, expiry);
        loop {
            // Nothing at all is handled once the token has expired, whatever else is ready: checked
            // before waiting and again by each branch once woken, as a frame or a result can wake
            // the `select!` after `expires` but before the expiry's timer has fired.
            unexpired(expires)?;
            tokio::select! {
                frame = inbound.next() => {
                    unexpired(expires)?;
                    idle.as_mut().reset(deadline(self.settings.idle_timeout));
                    if let Some(text) = self.on_frame(frame).await? {
                        self.on_message(actor, &text).await?;
                    }
                }
                // `SelectAll` of nothing is ready at once with `None`: polled only when something runs.
                Some(result) = self.results.next(), if !self.results.is_empty() => {
                    unexpired(expires)?;
                    self.on_result(actor, result).await?;
                }
                () = &mut heartbeat => {
                    unexpired(expires)?;
                    heartbeat.as_mut().reset(deadline(heartbeat_every));
                    if !self.gate.still_live(actor).await {
                        return Err(End::session_ended());
                    }
                    self.send(Outbound::Ping(Vec::new())).await?;
                }
                () = &mut idle => return Err(End::close(close::NORMAL, "idle")),
                () = &mut expiry => return Err(End::session_ended()),
            }
        }
    }

    /// The frame-level rules shared by both phases: the text of a text frame, `None` for frames
    /// handled here (pings, pongs), or the end of the connection.
    async fn on_frame(&mut self, frame: Option<Inbound>) -> Result<Option<String>, End> {
        let frame = match frame {
            None | Some(Inbound::Close) => return Err(End::Quietly),
            Some(frame) => frame,
        };
        if !self.rate.admit(Instant::now()) {
            return Err(End::close(close::POLICY, "rate"));
        }
        match frame {
            Inbound::Text(text) if text.len() > self.settings.max_frame_bytes => {
                Err(End::close(close::TOO_BIG, "frame too large"))
            }
            Inbound::Text(text) => Ok(Some(text)),
            Inbound::TooLarge => Err(End::close(close::TOO_BIG, "frame too large")),
            Inbound::Binary(_) => Err(End::bad_message()),
            Inbound::Ping(payload) => {
                self.send(Outbound::Pong(payload)).await?;
                Ok(None)
            }
            Inbound::Pong(_) => Ok(None),
            Inbound::Close => Err(End::Quietly),
        }
    }

    /// One message after the acknowledgement.
    async fn on_message(&mut self, actor: &Actor, text: &str) -> Result<(), End> {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::ConnectionInit { .. }) => Err(End::close(
                close::TOO_MANY,
                "Too many initialisation requests",
            )),
            Ok(ClientMessage::Ping { .. }) => self.send_json(&json!({"type": "pong"})).await,
            Ok(ClientMessage::Pong { .. }) => Ok(()),
            Ok(ClientMessage::Subscribe { id, payload }) => {
                self.subscribe(actor, id, payload).await
            }
            Ok(ClientMessage::Complete { id }) => {
                // The client stopped it: no `complete` is owed. An unknown id is already done.
                if let Some((_, handle)) = self.running.remove(&id) {
                    handle.abort();
                }
                Ok(())
            }
            Err(_) => Err(End::bad_message()),
        }
    }

    async fn subscribe(&mut self, actor: &Actor, id: String, payload: Value) -> Result<(), End> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(End::bad_message());
        }
        if self.running.contains_key(&id) {
            return Err(End::close(
                close::DUPLICATE_ID,
                &format!("Subscriber for {id} already exists"),
            ));
        }
        // The cap comes first: an operation over it costs no parsing and no database read.
        if self.running.len() >= self.settings.max_subscriptions {
            let errors = json!([{
                "message": format!(
                    "At most {} operations run at once on one connection.",
                    self.settings.max_subscriptions
                ),
                "extensions": { "code": "RATE_LIMITED" },
            }]);
            return self
                .send_json(&json!({"id": id, "type": "error", "payload": errors}))
                .await;
        }
        // Each operation is a request of the day's quota, counted before it is parsed or run.
        if let Err(retry_after) = self.gate.count_message(actor).await {
            let errors = json!([{
                "message": "Your plan's requests for today are used up; they renew at midnight UTC.",
                "extensions": { "code": "QUOTA_EXCEEDED", "retryAfter": retry_after.as_secs() },
            }]);
            return self
                .send_json(&json!({"id": id, "type": "error", "payload": errors}))
                .await;
        }
        match self.operations.start(actor, payload) {
            Err(errors) => {
                self.send_json(&json!({"id": id, "type": "error", "payload": errors}))
                    .await
            }
            Ok(stream) => {
                self.generation += 1;
                let generation = self.generation;
                let (handle, registration) = AbortHandle::new_pair();
                let (tag, end_tag) = (id.clone(), id.clone());
                let results = Abortable::new(stream, registration)
                    .map(move |payload| (tag.clone(), generation, Some(payload)))
                    .chain(futures_util::stream::once(async move {
                        (end_tag, generation, None)
                    }));
                self.results.push(results.boxed());
                self.running.insert(id, (generation, handle));
                Ok(())
            }
        }
    }

    /// A result, or the end, of a running operation.
    async fn on_result(
        &mut self,
        actor: &Actor,
        (id, generation, payload): Tagged,
    ) -> Result<(), End> {
        // A result of an operation the client completed (or of an earlier one with this id).
        if self
            .running
            .get(&id)
            .is_none_or(|(current, _)| *current != generation)
        {
            return Ok(());
        }
        match payload {
            Some(payload) => {
                if !self.gate.still_live(actor).await {
                    return Err(End::session_ended());
                }
                self.send_json(&json!({"id": id, "type": "next", "payload": payload}))
                    .await
            }
            None => {
                self.running.remove(&id);
                self.send_json(&json!({"id": id, "type": "complete"})).await
            }
        }
    }

    async fn send_json(&mut self, message: &Value) -> Result<(), End> {
        self.send(Outbound::Text(message.to_string())).await
    }

    async fn send(&mut self, frame: Outbound) -> Result<(), End> {
        self.outbound.send(frame).await.map_err(|_| End::Quietly)
    }

    /// Stops every running operation and sends the close frame, if the connection ends with one.
    async fn finish(&mut self, end: End, actor: Option<&Actor>) {
        for (_, handle) in self.running.values() {
            handle.abort();
        }
        self.running.clear();
        let user_id = actor.map(|actor| actor.user_id);
        match end {
            End::Quietly => tracing::debug!(?user_id, "GraphQL socket ended"),
            End::Close { code, reason } => {
                tracing::debug!(?user_id, code, %reason, "GraphQL socket closed by the server");
                let _ = self.outbound.send(Outbound::Close { code, reason }).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
