//! The `/api/v1/ws` notification protocol, written over any [`Stream`] of [`Inbound`] frames and
//! any [`Sink`] of [`Outbound`] frames.
//!
//! Every security decision of a live connection is taken here, so this is the part that has to be
//! tested exhaustively, and a real socket is the worst place to do that. The actix upgrade
//! ([`crate::upgrade`]) only translates frames into [`Inbound`] and [`Outbound`] and calls
//! [`serve`]; the tests below drive the same function with in-memory channels and paused time.
//!
//! # The conversation
//!
//! ```text
//! client                                          server
//! {"type":"auth","token":"<access JWT>"}   →                              (within auth_timeout)
//!                                          ←  {"type":"ready"}
//! {"type":"subscribe","topic":"document:<id>"} →
//!                                          ←  {"type":"subscribed","topic":"document:<id>"}
//!                                          ←  {"type":"event","topic":"document:<id>",
//!                                              "event":"document.updated","data":{"version":3}}
//! {"type":"unsubscribe","topic":"document:<id>"} →
//!                                          ←  {"type":"unsubscribed","topic":"document:<id>"}
//!                                          ←  {"type":"error","code":"FORBIDDEN","topic":"…"}
//! ```
//!
//! Error codes are `BAD_REQUEST` (malformed JSON, an unknown `type`, a malformed topic),
//! `FORBIDDEN` and `TOO_MANY_SUBSCRIPTIONS`; an error answers one message and the connection
//! stays. Everything that ends the connection is a close frame with a code from [`close`].
//!
//! Between the `auth` message and `ready`, two more checks can close the connection instead: a
//! token that has already expired (4401 `session ended`), and a user who already has as many
//! sockets open as allowed (4429 `too many connections`, see below).
//!
//! # Why the token travels in the first message, and never in the URL
//!
//! The browser's `WebSocket` API cannot set an `Authorization` header, which leaves three places
//! for a credential: a cookie, the URL, or a message. A URL is written down everywhere — proxy
//! and load-balancer access logs, the server's own request log, browser history — so a token in
//! `?token=` outlives the connection in places nobody audits. A cookie would be sent by the
//! browser on a cross-site upgrade (cross-site WebSocket hijacking). A message travels inside the
//! TLS channel, is read once, and is written nowhere. So the first message must be
//! `{"type":"auth"}`, within [`Settings::auth_timeout`], and no other message and no other place
//! is ever looked at for a token: an unauthenticated peer gets one frame and ten seconds, then
//! it is closed. (Ignoring a token in the URL is the upgrade's job: this module never sees it.)
//!
//! # Why every event is authorised again
//!
//! A subscription is a decision taken at one moment. Afterwards the document can be unshared or
//! deleted, the user demoted or locked, the session signed out. If access were checked only when
//! subscribing, a socket opened yesterday would keep streaming to someone who lost access this
//! morning. So before each event is delivered the connection asks again whether the session is
//! still live ([`Gatekeeper::still_live`]: no → close 4401) and whether the actor may still read
//! the topic ([`Gatekeeper::may_hear`], which goes through the same domain policy as REST and
//! GraphQL: no → the event is dropped without a word, so that the drop itself tells nothing).
//! The heartbeat asks about the session too, so a revoked session is closed within one heartbeat
//! even when nothing happens. Events carry ids and a version only, never content: a client that
//! wants the document reads it over REST, through the policy, like any other read.
//!
//! The price is two gatekeeper calls per delivered event, and only for topics the connection
//! subscribed to; events of other topics cost a set lookup.
//!
//! # Why a connection ends when its access token expires
//!
//! Over HTTP an access token is presented with every request, so it stops working the moment it
//! expires. A socket presents it once. Without a limit, a token stolen a minute before its expiry
//! would buy a connection that lasts as long as its session — days — and the short lifetime of
//! access tokens, the reason they can be bearer tokens at all, would mean nothing here. So
//! [`Gatekeeper::authenticate`] returns the token's `exp` with the actor ([`Authenticated`]), and
//! the connection closes with 4401 `session ended` when it passes: a timer in the same loop as
//! the heartbeat, which no client message, event or pong moves. A client reconnects with a fresh
//! token, as it would refresh one over HTTP. A token already expired when it arrives (the
//! gatekeeper's clock and ours disagree, or its validation allows some leeway) closes the
//! connection before `ready` and before it takes a place in the connection count.
//!
//! `exp` is a wall-clock time and the timers run on the monotonic clock, so it is converted once,
//! right after authentication, into "this much from now" (never negative, capped like every other
//! timer, so a time in the past or in the year 30000 cannot panic). A wall clock set back or
//! forward afterwards does not move it.
//!
//! # Why the number of sockets per user is capped
//!
//! Each socket costs a task, a broadcast receiver and a heartbeat for as long as it stays open.
//! Right after authentication [`serve`] asks [`Gatekeeper::admit`] for a permit — an opaque guard
//! such as a [`ConnectionPermit`](crate::ConnectionPermit) — and a user who already has the
//! maximum is closed with 4429 `too many connections` before `ready`. The permit is a local of
//! [`serve`], so the place is given back however the connection ends: `serve` returning, or its
//! future being dropped mid-connection (an aborted task, a shutdown). A count the caller had to
//! decrement when `serve` returned would leak a place every time the future was dropped instead.
//!
//! # Limits, and what they protect
//!
//! - A frame over [`Settings::max_frame_bytes`] closes with 1009. The transport should be set to
//!   the same limit and report [`Inbound::TooLarge`] without buffering the frame; the length check
//!   here is the backstop.
//! - More than [`Settings::max_messages_per_second`] inbound frames (of any kind, pings included)
//!   in any one-second window close with 1008 `rate`.
//! - At most [`Settings::max_subscriptions`] topics per connection.
//! - A connection whose broadcast receiver lags (the client reads more slowly than events arrive)
//!   is closed with 1008 `too slow` rather than buffered for: memory per connection stays bounded
//!   whatever the client does.
//! - The server pings every [`Settings::heartbeat`]; a connection from which no frame at all (a
//!   pong included) arrived for [`Settings::idle_timeout`] is closed with 1000 `idle`. Browsers
//!   answer pings on their own, so a live tab never idles out, and a dead peer cannot hold a
//!   connection open.
//!
//! The Origin check belongs to the caller, at the upgrade, before [`serve`] sees a frame.

use std::any::Any;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bulwark_domain::context::Actor;
use bulwark_domain::events::{Notification, Topic};
#[cfg(test)]
use bulwark_web::socket::FAR_FUTURE;
pub use bulwark_web::socket::{Authenticated, Inbound, Outbound};
use bulwark_web::socket::{MIN_HEARTBEAT, RateWindow, deadline, time_left};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// The close codes of `/api/v1/ws`: the standard ones (RFC 6455 §7.4.1) and, in the 4000–4999
/// range left to applications, the HTTP status they mirror plus 4000.
pub mod close {
    /// The connection is done (here: idle for too long).
    pub const NORMAL: u16 = 1000;
    /// The server is going away (the event stream ended: shutting down).
    pub const GOING_AWAY: u16 = 1001;
    /// A policy was broken: a binary frame, too many messages, a client too slow to keep up.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// No valid authentication, or the session ended (revoked, signed out, or the access token
    /// expired).
    pub const UNAUTHENTICATED: u16 = 4401;
    /// Authenticated, but not allowed to connect.
    pub const FORBIDDEN: u16 = 4403;
    /// No authentication message within the time allowed.
    pub const AUTH_TIMEOUT: u16 = 4408;
    /// The user already has as many connections as allowed.
    pub const TOO_MANY_CONNECTIONS: u16 = 4429;
}

/// What the protocol asks of the rest of the application: who a token belongs to, whether that
/// actor may (still) listen, and whether it may open one more socket.
///
/// None of these can fail: an implementation that cannot answer (the database is down, say) must
/// answer *no* — refuse the token, call the session dead, deny the read, refuse the permit — and
/// log why. The connection then closes or drops the event, which is the safe side.
#[async_trait]
pub trait Gatekeeper: Send + Sync {
    /// The actor of an access token and the token's expiry (None: refused).
    async fn authenticate(&self, token: &str) -> Option<Authenticated>;

    /// A place for one more socket of this actor's user, or `None` if the user already has as
    /// many as allowed (the connection then closes with 4429).
    ///
    /// The permit is whatever guard the implementation needs: [`serve`] holds it, untouched,
    /// until the connection is over and then drops it, including when its future is dropped
    /// mid-connection. [`ConnectionCounter`](crate::ConnectionCounter) is a ready-made one:
    /// `counter.admit(actor.user_id).map(|permit| Box::new(permit) as _)`.
    fn admit(&self, actor: &Actor) -> Option<Box<dyn Any + Send>>;

    /// Whether the actor's session is still live (checked on every heartbeat and before every
    /// delivered event).
    async fn still_live(&self, actor: &Actor) -> bool;

    /// Whether the actor may subscribe to / receive events of this topic (re-read through the
    /// domain policy each time). A document that does not exist is simply one the actor may not
    /// read: the client cannot tell the two apart.
    async fn may_read(&self, actor: &Actor, topic: &Topic) -> bool;

    /// Whether the actor may be told of this event of a topic it subscribed to, decided again for
    /// every event (the domain's `DocumentService::may_hear`: the read policy, not audited, and a
    /// deletion — which cannot be re-read — only for the owner and those who read everything).
    async fn may_hear(&self, actor: &Actor, notification: &Notification) -> bool;

    /// Counts one message of the client toward its user's daily request quota (the same count as
    /// REST and GraphQL). `Err`: used up, renewing after this long.
    async fn count_message(&self, actor: &Actor) -> Result<(), Duration>;
}

/// The limits and timers of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a new connection has to send its `auth` message (default 10 s).
    pub auth_timeout: Duration,
    /// How often the server pings and re-checks the session (default 25 s; anything under one
    /// second counts as one second).
    pub heartbeat: Duration,
    /// How long a connection may go without any inbound frame, pongs included (default 60 s).
    pub idle_timeout: Duration,
    /// The largest text message accepted, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// How many inbound frames, of any kind, any one second may hold (default 20).
    pub max_messages_per_second: u32,
    /// How many topics one connection may subscribe to (default 20).
    pub max_subscriptions: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 64 * 1024,
            max_messages_per_second: 20,
            max_subscriptions: 20,
        }
    }
}

/// Runs one connection from its first frame to its close frame: authentication, token expiry,
/// the per-user connection cap, subscriptions, event delivery, heartbeat and limits (see the
/// module documentation for the protocol).
///
/// `events` is this connection's receiver of the fan-out; events published before the client has
/// authenticated are skipped (it has no subscription yet).
///
/// Returns once the connection is over, after the close frame (if any) was sent and the
/// connection's permit (see [`Gatekeeper::admit`]) was dropped: the actor whose token the
/// gatekeeper accepted (for the caller's log), even if the token had already expired or the
/// connection was refused a permit, or `None` if no token was accepted. The peer closing, the
/// inbound stream ending or the sink failing end the connection without a close frame.
pub async fn serve<I, O>(
    mut inbound: I,
    outbound: O,
    events: broadcast::Receiver<Notification>,
    gate: &dyn Gatekeeper,
    settings: &Settings,
) -> Option<Actor>
where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Outbound> + Unpin,
{
    let mut connection = Connection {
        outbound,
        gate,
        settings,
        rate: RateWindow::new(settings.max_messages_per_second),
        subscriptions: HashSet::new(),
    };
    let Authenticated { actor, expires_at } = match connection.authenticate(&mut inbound).await {
        Ok(authenticated) => authenticated,
        Err(end) => {
            connection.finish(end, None).await;
            return None;
        }
    };
    // The wall-clock `exp` becomes a monotonic deadline once, here: both clocks are read now.
    let time_left = time_left(expires_at, SystemTime::now());
    let expires = deadline(time_left);
    if time_left.is_zero() {
        // Expired already: not a successful authentication, so it takes no place in the count.
        connection.finish(End::session_ended(), Some(&actor)).await;
        return Some(actor);
    }
    // Held for the rest of this function, and dropped with its future if that is dropped first:
    // the place is given back however the connection ends.
    let Some(permit) = gate.admit(&actor) else {
        let end = End::close(close::TOO_MANY_CONNECTIONS, "too many connections");
        connection.finish(end, Some(&actor)).await;
        return Some(actor);
    };
    // Whatever was published while the client authenticated belongs to no subscription of its
    // own; starting from the tail keeps that backlog from counting as lag against it.
    let events = events.resubscribe();
    let Err(end) = connection
        .session(&actor, &mut inbound, events, expires)
        .await;
    connection.finish(end, Some(&actor)).await;
    drop(permit);
    Some(actor)
}

/// The end of the connection if the token expired (`expires` has come).
fn unexpired(expires: Instant) -> Result<(), End> {
    if Instant::now() >= expires {
        Err(End::session_ended())
    } else {
        Ok(())
    }
}

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// With a close frame.
    Close {
        /// The close code.
        code: u16,
        /// The reason sent with it.
        reason: &'static str,
    },
    /// Without one: the client closed or went away, or the sink failed.
    Quietly,
}

impl End {
    const fn close(code: u16, reason: &'static str) -> Self {
        Self::Close { code, reason }
    }

    const fn unauthenticated() -> Self {
        Self::close(close::UNAUTHENTICATED, "unauthenticated")
    }

    const fn session_ended() -> Self {
        Self::close(close::UNAUTHENTICATED, "session ended")
    }

    const fn too_big() -> Self {
        Self::close(close::TOO_BIG, "frame too large")
    }
}

/// What a client may send. Unknown fields are refused, as everywhere else in the API.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMessage {
    /// The first message, and only the first.
    Auth { token: String },
    /// Start receiving a topic's events.
    Subscribe { topic: String },
    /// Stop receiving a topic's events.
    Unsubscribe { topic: String },
}

/// The `code` of an error message.
#[derive(Debug, Clone, Copy)]
enum ErrorCode {
    BadRequest,
    Forbidden,
    TooManySubscriptions,
    QuotaExceeded,
}

impl ErrorCode {
    const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::Forbidden => "FORBIDDEN",
            Self::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
        }
    }

    /// The error message. The topic is echoed only once it has parsed: the server never reflects
    /// input it could not make sense of.
    fn message(self, topic: Option<&Topic>) -> Value {
        match topic {
            Some(topic) => {
                json!({ "type": "error", "code": self.as_str(), "topic": topic.to_string() })
            }
            None => json!({ "type": "error", "code": self.as_str() }),
        }
    }
}

/// The state of one connection.
struct Connection<'a, O> {
    outbound: O,
    gate: &'a dyn Gatekeeper,
    settings: &'a Settings,
    rate: RateWindow,
    subscriptions: HashSet<Topic>,
}

impl<O> Connection<'_, O>
where
    O: Sink<Outbound> + Unpin,
{
    /// Waits for the `auth` message and turns its token into an actor and an expiry.
    async fn authenticate<I>(&mut self, inbound: &mut I) -> Result<Authenticated, End>
    where
        I: Stream<Item = Inbound> + Unpin,
    {
        let frame = match tokio::time::timeout(self.settings.auth_timeout, inbound.next()).await {
            Err(_elapsed) => return Err(End::close(close::AUTH_TIMEOUT, "authentication timeout")),
            Ok(None | Some(Inbound::Close)) => return Err(End::Quietly),
            Ok(Some(frame)) => frame,
        };
        self.check_rate()?;
        let text = match frame {
            Inbound::Text(text) => text,
            Inbound::TooLarge => return Err(End::too_big()),
            // Not even a ping first: browsers never send one of their own, so a peer that does is
            // not a client of ours, and "the first frame is auth" is simpler to reason about.
            Inbound::Binary(_) | Inbound::Ping(_) | Inbound::Pong(_) | Inbound::Close => {
                return Err(End::unauthenticated());
            }
        };
        self.check_size(&text)?;
        match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Auth { token }) => self
                .gate
                .authenticate(&token)
                .await
                .ok_or_else(End::unauthenticated),
            Ok(ClientMessage::Subscribe { .. } | ClientMessage::Unsubscribe { .. }) | Err(_) => {
                Err(End::unauthenticated())
            }
        }
    }

    /// The authenticated part of the connection, until something ends it (at the latest at
    /// `expires`, when the access token does).
    async fn session<I>(
        &mut self,
        actor: &Actor,
        inbound: &mut I,
        mut events: broadcast::Receiver<Notification>,
        expires: Instant,
    ) -> Result<Infallible, End>
    where
        I: Stream<Item = Inbound> + Unpin,
    {
        self.send_json(&json!({ "type": "ready" })).await?;
        let heartbeat_every = self.settings.heartbeat.max(MIN_HEARTBEAT);
        let heartbeat = tokio::time::sleep_until(deadline(heartbeat_every));
        let idle = tokio::time::sleep_until(deadline(self.settings.idle_timeout));
        let expiry = tokio::time::sleep_until(expires);
        tokio::pin!(heartbeat, idle, expiry);
        loop {
            // `select!` picks at random among the branches ready at once, so when the token
            // expires while frames or events are waiting too, the timer could lose a few turns:
            // this makes sure nothing at all is handled once it has expired.
            // Checked again by each branch once woken: a frame or an event can wake the
            // `select!` after `expires` but before the expiry's timer has fired.
            unexpired(expires)?;
            // Every branch is cancel-safe (a frame or an event not taken now is taken next turn),
            // and none is preferred: a busy topic must not starve the client's own messages.
            tokio::select! {
                frame = inbound.next() => {
                    unexpired(expires)?;
                    let Some(frame) = frame else { return Err(End::Quietly) };
                    idle.as_mut().reset(deadline(self.settings.idle_timeout));
                    self.on_frame(actor, frame).await?;
                }
                received = events.recv() => {
                    unexpired(expires)?;
                    self.on_event(actor, received).await?;
                }
                () = &mut heartbeat => {
                    unexpired(expires)?;
                    heartbeat.as_mut().reset(deadline(heartbeat_every));
                    self.on_heartbeat(actor).await?;
                }
                () = &mut idle => return Err(End::close(close::NORMAL, "idle")),
                // Never reset: client messages, events and pongs do not extend a token.
                () = &mut expiry => return Err(End::session_ended()),
            }
        }
    }

    /// One frame from an authenticated client.
    async fn on_frame(&mut self, actor: &Actor, frame: Inbound) -> Result<(), End> {
        if frame == Inbound::Close {
            return Err(End::Quietly);
        }
        self.check_rate()?;
        match frame {
            Inbound::Text(text) => {
                self.check_size(&text)?;
                self.on_message(actor, &text).await
            }
            Inbound::TooLarge => Err(End::too_big()),
            Inbound::Binary(_) => Err(End::close(close::POLICY, "text frames only")),
            Inbound::Ping(payload) => self.send(Outbound::Pong(payload)).await,
            // Proof of life: the idle timer has already been reset.
            Inbound::Pong(_) => Ok(()),
            Inbound::Close => Err(End::Quietly),
        }
    }

    /// One JSON message from an authenticated client. Whatever it is, it gets one answer and the
    /// connection stays.
    async fn on_message(&mut self, actor: &Actor, text: &str) -> Result<(), End> {
        // Every message is a request of the day's quota; over it, each gets an error and the
        // connection stays (events, which the client did not ask for, still arrive).
        if let Err(retry_after) = self.gate.count_message(actor).await {
            let mut reply = ErrorCode::QuotaExceeded.message(None);
            reply["retry_after"] = json!(retry_after.as_secs());
            return self.send_json(&reply).await;
        }
        let reply = match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::Subscribe { topic }) => self.subscribe(actor, &topic).await,
            Ok(ClientMessage::Unsubscribe { topic }) => self.unsubscribe(&topic),
            // The connection authenticated once, with its first message; a token anywhere else
            // is never looked at.
            Ok(ClientMessage::Auth { .. }) | Err(_) => ErrorCode::BadRequest.message(None),
        };
        self.send_json(&reply).await
    }

    async fn subscribe(&mut self, actor: &Actor, raw: &str) -> Value {
        let Some(topic) = Topic::parse(raw) else {
            return ErrorCode::BadRequest.message(None);
        };
        // The cap is checked before the policy: a client over it costs us no database read.
        if !self.subscriptions.contains(&topic)
            && self.subscriptions.len() >= self.settings.max_subscriptions
        {
            return ErrorCode::TooManySubscriptions.message(Some(&topic));
        }
        if self.gate.may_read(actor, &topic).await {
            self.subscriptions.insert(topic);
            json!({ "type": "subscribed", "topic": topic.to_string() })
        } else {
            // Subscribing again after losing access ends the old subscription too.
            self.subscriptions.remove(&topic);
            ErrorCode::Forbidden.message(Some(&topic))
        }
    }

    fn unsubscribe(&mut self, raw: &str) -> Value {
        let Some(topic) = Topic::parse(raw) else {
            return ErrorCode::BadRequest.message(None);
        };
        // Idempotent: unsubscribing from a topic one never had is already done.
        self.subscriptions.remove(&topic);
        json!({ "type": "unsubscribed", "topic": topic.to_string() })
    }

    /// One event from the fan-out: delivered only if subscribed and still allowed.
    async fn on_event(
        &mut self,
        actor: &Actor,
        received: Result<Notification, RecvError>,
    ) -> Result<(), End> {
        let notification = match received {
            Ok(notification) => notification,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(user_id = %actor.user_id, missed, "websocket client too slow");
                return Err(End::close(close::POLICY, "too slow"));
            }
            Err(RecvError::Closed) => return Err(End::close(close::GOING_AWAY, "going away")),
        };
        // A document's creation predates any subscription to it (see `Notification::is_creation`).
        if !self.subscriptions.contains(&notification.topic) || notification.is_creation() {
            return Ok(());
        }
        if !self.gate.still_live(actor).await {
            return Err(End::session_ended());
        }
        if !self.gate.may_hear(actor, &notification).await {
            // Access was revoked since subscribing. Dropped without a word: an error here would
            // tell the client that something happened to a document it may no longer see.
            return Ok(());
        }
        let data = match notification.version {
            Some(version) => json!({ "version": version }),
            None => json!({}),
        };
        self.send_json(&json!({
            "type": "event",
            "topic": notification.topic.to_string(),
            "event": notification.event,
            "data": data,
        }))
        .await
    }

    async fn on_heartbeat(&mut self, actor: &Actor) -> Result<(), End> {
        if !self.gate.still_live(actor).await {
            return Err(End::session_ended());
        }
        self.send(Outbound::Ping(Vec::new())).await
    }

    /// Counts one inbound frame against the rate limit.
    fn check_rate(&mut self) -> Result<(), End> {
        if self.rate.admit(Instant::now()) {
            Ok(())
        } else {
            Err(End::close(close::POLICY, "rate"))
        }
    }

    fn check_size(&self, text: &str) -> Result<(), End> {
        if text.len() > self.settings.max_frame_bytes {
            Err(End::too_big())
        } else {
            Ok(())
        }
    }

    async fn send_json(&mut self, message: &Value) -> Result<(), End> {
        self.send(Outbound::Text(message.to_string())).await
    }

    async fn send(&mut self, frame: Outbound) -> Result<(), End> {
        self.outbound.send(frame).await.map_err(|_| {
            tracing::debug!("websocket sink failed; ending the connection");
            End::Quietly
        })
    }

    /// Sends the close frame, if the connection ends with one.
    async fn finish(&mut self, end: End, actor: Option<&Actor>) {
        let user_id = actor.map(|actor| actor.user_id);
        match end {
            End::Quietly => tracing::debug!(?user_id, "websocket ended"),
            End::Close { code, reason } => {
                tracing::debug!(?user_id, code, reason, "websocket closed by the server");
                let frame = Outbound::Close {
                    code,
                    reason: reason.to_owned(),
                };
                if self.outbound.send(frame).await.is_err() {
                    tracing::debug!(?user_id, "close frame not delivered");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The protocol driven through in-memory channels, with tokio's clock paused: a test that
    //! waits "ten seconds" waits for nothing, and the instants it observes are exact.

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use bulwark_domain::context::Credential;
    use bulwark_domain::user::Role;
    use time::OffsetDateTime;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use uuid::Uuid;

    use super::*;
    use crate::ConnectionCounter;

    const GOOD_TOKEN: &str = "the-good-access-token";

    /// How many sockets the fake gate allows one user unless a test says otherwise.
    const DEFAULT_CAP: usize = 3;

    fn the_actor() -> Actor {
        Actor {
            user_id: Uuid::from_u128(1),
            session_id: Uuid::from_u128(2),
            role: Role::User,
            authenticated_at: OffsetDateTime::UNIX_EPOCH,
            credential: Credential::Session,
            role_withheld: false,
            plan: bulwark_domain::user::Plan::Free,
        }
    }

    fn document(n: u128) -> Topic {
        Topic::Document(Uuid::from_u128(0xD0C0_0000 + n))
    }

    /// When the tokens the fake gate accepts expire, as of the moment it accepts one.
    #[derive(Debug, Clone, Copy)]
    enum Expiry {
        /// This long after authentication.
        In(Duration),
        /// This long before authentication: already expired.
        Ago(Duration),
        /// At this wall-clock time.
        At(SystemTime),
    }

    /// A gatekeeper whose answers the test sets, and which counts the questions it is asked. Its
    /// permits come from a real [`ConnectionCounter`].
    #[derive(Debug)]
    struct FakeGate {
        live: AtomicBool,
        readable: Mutex<HashSet<Topic>>,
        tokens_seen: Mutex<Vec<String>>,
        expiry: Mutex<Expiry>,
        connections: ConnectionCounter,
        still_live_calls: AtomicUsize,
        may_read_calls: AtomicUsize,
        admit_calls: AtomicUsize,
        /// Requests left in the day's quota.
        quota_left: AtomicUsize,
    }

    impl FakeGate {
        fn new() -> Arc<Self> {
            Self::with_cap(DEFAULT_CAP)
        }

        /// A gate allowing each user `max_per_user` sockets.
        fn with_cap(max_per_user: usize) -> Arc<Self> {
            Arc::new(Self {
                live: AtomicBool::new(true),
                readable: Mutex::new(HashSet::new()),
                tokens_seen: Mutex::new(Vec::new()),
                // Longer than any test runs, so that only the tests about expiry see one.
                expiry: Mutex::new(Expiry::In(Duration::from_secs(3600))),
                connections: ConnectionCounter::new(max_per_user),
                still_live_calls: AtomicUsize::new(0),
                may_read_calls: AtomicUsize::new(0),
                admit_calls: AtomicUsize::new(0),
                quota_left: AtomicUsize::new(usize::MAX),
            })
        }

        fn expire(&self, expiry: Expiry) {
            *self.expiry.lock().unwrap() = expiry;
        }

        /// The sockets `the_actor()` holds a permit for now.
        fn open_connections(&self) -> usize {
            self.connections.open_for(the_actor().user_id)
        }

        fn admit_calls(&self) -> usize {
            self.admit_calls.load(Ordering::SeqCst)
        }

        fn allow(&self, topic: Topic) {
            self.readable.lock().unwrap().insert(topic);
        }

        fn revoke(&self, topic: Topic) {
            self.readable.lock().unwrap().remove(&topic);
        }

        fn end_session(&self) {
            self.live.store(false, Ordering::SeqCst);
        }

        fn tokens_seen(&self) -> Vec<String> {
            self.tokens_seen.lock().unwrap().clone()
        }

        fn still_live_calls(&self) -> usize {
            self.still_live_calls.load(Ordering::SeqCst)
        }

        fn may_read_calls(&self) -> usize {
            self.may_read_calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Gatekeeper for FakeGate {
        async fn authenticate(&self, token: &str) -> Option<Authenticated> {
            self.tokens_seen.lock().unwrap().push(token.to_owned());
            let now = SystemTime::now();
            let expires_at = match *self.expiry.lock().unwrap() {
                Expiry::In(after) => now + after,
                Expiry::Ago(before) => now - before,
                Expiry::At(at) => at,
            };
            (token == GOOD_TOKEN).then(|| Authenticated {
                actor: the_actor(),
                expires_at,
            })
        }

        fn admit(&self, actor: &Actor) -> Option<Box<dyn Any + Send>> {
            assert_eq!(*actor, the_actor());
            self.admit_calls.fetch_add(1, Ordering::SeqCst);
            self.connections
                .admit(actor.user_id)
                .map(|permit| Box::new(permit) as Box<dyn Any + Send>)
        }

        async fn still_live(&self, actor: &Actor) -> bool {
            assert_eq!(*actor, the_actor());
            self.still_live_calls.fetch_add(1, Ordering::SeqCst);
            self.live.load(Ordering::SeqCst)
        }

        async fn count_message(&self, actor: &Actor) -> Result<(), Duration> {
            assert_eq!(*actor, the_actor());
            self.quota_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .map(|_| ())
                .map_err(|_| Duration::from_secs(3600))
        }

        async fn may_read(&self, actor: &Actor, topic: &Topic) -> bool {
            assert_eq!(*actor, the_actor());
            self.may_read_calls.fetch_add(1, Ordering::SeqCst);
            self.readable.lock().unwrap().contains(topic)
        }

        async fn may_hear(&self, actor: &Actor, notification: &Notification) -> bool {
            self.may_read(actor, &notification.topic).await
        }
    }

    /// The client end of a connection whose server end runs [`serve`] in a task.
    struct Client {
        to_server: mpsc::UnboundedSender<Inbound>,
        from_server: mpsc::UnboundedReceiver<Outbound>,
        events: Option<broadcast::Sender<Notification>>,
        gate: Arc<FakeGate>,
        server: JoinHandle<Option<Actor>>,
    }

    impl Client {
        fn connect() -> Self {
            Self::connect_with(Settings::default(), 16)
        }

        fn connect_with(settings: Settings, event_capacity: usize) -> Self {
            Self::connect_to(FakeGate::new(), settings, event_capacity)
        }

        /// A connection through a gate shared with others (to count their sockets together).
        fn connect_to(gate: Arc<FakeGate>, settings: Settings, event_capacity: usize) -> Self {
            let (to_server, inbound) = mpsc::unbounded_channel::<Inbound>();
            let (outbound, from_server) = mpsc::unbounded_channel::<Outbound>();
            let (events, receiver) = broadcast::channel(event_capacity);
            let inbound = Box::pin(futures_util::stream::unfold(inbound, |mut rx| async move {
                rx.recv().await.map(|frame| (frame, rx))
            }));
            let outbound = Box::pin(futures_util::sink::unfold(
                outbound,
                |tx, frame: Outbound| async move { tx.send(frame).map(|()| tx) },
            ));
            let server_gate = Arc::clone(&gate);
            let server = tokio::spawn(async move {
                serve(inbound, outbound, receiver, &*server_gate, &settings).await
            });
            Self {
                to_server,
                from_server,
                events: Some(events),
                gate,
                server,
            }
        }

        async fn authenticated() -> Self {
            Self::authenticated_with(Settings::default(), 16).await
        }

        async fn authenticated_with(settings: Settings, event_capacity: usize) -> Self {
            let mut client = Self::connect_with(settings, event_capacity);
            client.send_json(&json!({ "type": "auth", "token": GOOD_TOKEN }));
            assert_eq!(client.next_json().await, json!({ "type": "ready" }));
            client
        }

        /// Authenticated through a gate shared with other connections.
        async fn authenticated_through(gate: Arc<FakeGate>) -> Self {
            let mut client = Self::connect_to(gate, Settings::default(), 16);
            client.send_json(&json!({ "type": "auth", "token": GOOD_TOKEN }));
            assert_eq!(client.next_json().await, json!({ "type": "ready" }));
            client
        }

        /// Authenticated, subscribed to `topic` (which the gate allows), and one second on, so
        /// that the frames so far no longer count against the rate limit.
        async fn subscribed_to(topic: Topic) -> Self {
            let mut client = Self::authenticated().await;
            client.gate.allow(topic);
            client.subscribe(topic);
            assert_eq!(client.next_json().await, subscribed(topic));
            tokio::time::advance(Duration::from_secs(1)).await;
            client
        }

        fn send(&self, frame: Inbound) {
            self.to_server.send(frame).unwrap();
        }

        fn send_json(&self, message: &Value) {
            self.send(Inbound::Text(message.to_string()));
        }

        fn subscribe(&self, topic: Topic) {
            self.send_json(&json!({ "type": "subscribe", "topic": topic.to_string() }));
        }

        fn publish(&self, topic: Topic, event: &str, version: Option<i32>) {
            let notification = Notification {
                topic,
                event: event.to_owned(),
                owner_id: Uuid::from_u128(0x0BAD),
                version,
                shared_with: None,
            };
            self.events.as_ref().unwrap().send(notification).unwrap();
        }

        async fn next(&mut self) -> Outbound {
            self.from_server
                .recv()
                .await
                .expect("the server ended without another frame")
        }

        async fn next_json(&mut self) -> Value {
            match self.next().await {
                Outbound::Text(text) => serde_json::from_str(&text).unwrap(),
                other => panic!("expected a JSON text message, got {other:?}"),
            }
        }

        /// Asserts that the connection is still open and has nothing queued: a ping sent now is
        /// the very next thing answered.
        async fn assert_still_open(&mut self) {
            self.send(Inbound::Ping(b"still there?".to_vec()));
            assert_eq!(self.next().await, Outbound::Pong(b"still there?".to_vec()));
        }

        /// Expects a close frame next, then the end of the server: nothing after the close.
        async fn expect_close(mut self, code: u16, reason: &str) -> Option<Actor> {
            assert_eq!(
                self.next().await,
                Outbound::Close {
                    code,
                    reason: reason.to_owned()
                }
            );
            self.expect_end().await
        }

        /// Expects the server to end without sending anything more.
        async fn expect_end(mut self) -> Option<Actor> {
            assert_eq!(
                self.from_server.recv().await,
                None,
                "nothing may follow the end"
            );
            self.server.await.unwrap()
        }
    }

    fn subscribed(topic: Topic) -> Value {
        json!({ "type": "subscribed", "topic": topic.to_string() })
    }

    fn error(code: &str) -> Value {
        json!({ "type": "error", "code": code })
    }

    fn error_about(code: &str, topic: Topic) -> Value {
        json!({ "type": "error", "code": code, "topic": topic.to_string() })
    }

    fn updated(topic: Topic, version: i32) -> Value {
        json!({
            "type": "event",
            "topic": topic.to_string(),
            "event": "document.updated",
            "data": { "version": version },
        })
    }

    // --- Authentication ---------------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn no_auth_message_within_ten_seconds_closes_with_4408() {
        let start = Instant::now();
        let client = Client::connect();

        let who = client
            .expect_close(close::AUTH_TIMEOUT, "authentication timeout")
            .await;

        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(who, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_message_that_is_not_auth_closes_with_4401_without_asking_the_gate() {
        let topic = document(1).to_string();
        let first_frames = [
            Inbound::Text(json!({ "type": "subscribe", "topic": topic }).to_string()),
            Inbound::Text(r#"{"type":"auth","token":"#.to_owned()),
            Inbound::Text(json!({ "type": "auth" }).to_string()),
            Inbound::Text(json!({ "type": "auth", "token": GOOD_TOKEN, "extra": 1 }).to_string()),
            Inbound::Text("not json".to_owned()),
            Inbound::Binary(
                json!({ "type": "auth", "token": GOOD_TOKEN })
                    .to_string()
                    .into(),
            ),
            Inbound::Ping(Vec::new()),
            Inbound::Pong(Vec::new()),
        ];
        for first in first_frames {
            let client = Client::connect();
            let gate = Arc::clone(&client.gate);
            client.send(first.clone());

            let who = client
                .expect_close(close::UNAUTHENTICATED, "unauthenticated")
                .await;

            assert_eq!(who, None, "{first:?}");
            assert!(gate.tokens_seen().is_empty(), "{first:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_the_gate_refuses_closes_with_4401() {
        let client = Client::connect();
        let gate = Arc::clone(&client.gate);
        client.send_json(&json!({ "type": "auth", "token": "forged" }));

        let who = client
            .expect_close(close::UNAUTHENTICATED, "unauthenticated")
            .await;

        assert_eq!(who, None);
        assert_eq!(gate.tokens_seen(), ["forged"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_token_is_answered_with_ready_and_serve_returns_the_actor() {
        let client = Client::authenticated().await;
        assert_eq!(client.gate.tokens_seen(), [GOOD_TOKEN]);

        client.send(Inbound::Close);

        assert_eq!(client.expect_end().await, Some(the_actor()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_auth_message_closes_with_1009_unread() {
        let client = Client::connect();
        let gate = Arc::clone(&client.gate);
        let token = "x".repeat(65 * 1024);
        client.send_json(&json!({ "type": "auth", "token": token }));

        client.expect_close(close::TOO_BIG, "frame too large").await;

        assert!(gate.tokens_seen().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_closes_before_authenticating_is_sent_nothing() {
        let client = Client::connect();
        client.send(Inbound::Close);

        assert_eq!(client.expect_end().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_auth_message_is_a_bad_request_and_its_token_is_never_looked_at() {
        let mut client = Client::authenticated().await;

        client.send_json(&json!({ "type": "auth", "token": "someone-elses-token" }));

        assert_eq!(client.next_json().await, error("BAD_REQUEST"));
        assert_eq!(client.gate.tokens_seen(), [GOOD_TOKEN]);
        client.assert_still_open().await;
    }

    // --- Token expiry -------------------------------------------------------------------------

    /// `elapsed` is `expected`, or at most a little less. The gate reads the wall clock to set the
    /// expiry and `serve` reads it again to turn it into a timer; the paused tokio clock does not
    /// move in between but the wall clock does, by microseconds, so the timer may fire that much
    /// early (the timer wheel's millisecond ticks usually round it back) — never late.
    fn assert_about(elapsed: Duration, expected: Duration) {
        assert!(
            elapsed <= expected && expected - elapsed < Duration::from_millis(100),
            "{elapsed:?} is not {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_expiring_in_90_seconds_closes_with_4401_at_90_seconds_however_chatty_the_client()
     {
        let start = Instant::now();
        let gate = FakeGate::new();
        gate.expire(Expiry::In(Duration::from_secs(90)));
        let mut client = Client::authenticated_through(Arc::clone(&gate)).await;
        let topic = document(1).to_string();

        // Something from the client every half second until 89.5 s — pings and messages — and
        // every heartbeat answered: none of it moves the expiry, as it moves the idle timer.
        let mut heartbeats = 0;
        for n in 1..=179_u8 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let answer = if n % 2 == 0 {
                client.send(Inbound::Ping(vec![n]));
                Outbound::Pong(vec![n])
            } else {
                client.send_json(&json!({ "type": "unsubscribe", "topic": topic }));
                Outbound::Text(json!({ "type": "unsubscribed", "topic": topic }).to_string())
            };
            loop {
                match client.next().await {
                    Outbound::Ping(payload) if payload.is_empty() => {
                        heartbeats += 1;
                        client.send(Inbound::Pong(Vec::new()));
                    }
                    frame => {
                        assert_eq!(frame, answer, "at {:?}", start.elapsed());
                        break;
                    }
                }
            }
        }
        assert_eq!(start.elapsed(), Duration::from_millis(89_500));
        assert_eq!(heartbeats, 3, "at 25, 50 and 75 s");

        let who = client
            .expect_close(close::UNAUTHENTICATED, "session ended")
            .await;

        assert_about(start.elapsed(), Duration::from_secs(90));
        assert_eq!(who, Some(the_actor()));
        assert_eq!(gate.open_connections(), 0, "the place is given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_expiring_before_the_heartbeat_closes_without_waiting_for_it() {
        let start = Instant::now();
        let gate = FakeGate::new();
        gate.expire(Expiry::In(Duration::from_secs(10)));
        let client = Client::authenticated_through(Arc::clone(&gate)).await;
        let live_calls = gate.still_live_calls();

        client
            .expect_close(close::UNAUTHENTICATED, "session ended")
            .await;

        assert_about(start.elapsed(), Duration::from_secs(10));
        // The gatekeeper was not asked: the token's own expiry is enough.
        assert_eq!(gate.still_live_calls(), live_calls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_already_expired_closes_with_4401_before_ready_and_takes_no_place() {
        let start = Instant::now();
        let gate = FakeGate::new();
        for expiry in [
            Expiry::Ago(Duration::from_secs(1)),
            Expiry::At(SystemTime::UNIX_EPOCH),
        ] {
            gate.expire(expiry);
            let client = Client::connect_to(Arc::clone(&gate), Settings::default(), 16);
            client.send_json(&json!({ "type": "auth", "token": GOOD_TOKEN }));

            // The close frame is the very next frame: no `ready` before it.
            let who = client
                .expect_close(close::UNAUTHENTICATED, "session ended")
                .await;

            assert_eq!(who, Some(the_actor()), "{expiry:?}");
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(gate.admit_calls(), 0);
        assert_eq!(gate.open_connections(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurdly_distant_expiry_does_not_panic_and_the_connection_runs() {
        let far = [u64::MAX, 1 << 62, 1 << 40, 1 << 36]
            .into_iter()
            .find_map(|secs| SystemTime::now().checked_add(Duration::from_secs(secs)))
            .expect("some time far in the future");
        let gate = FakeGate::new();
        gate.expire(Expiry::At(far));
        let start = Instant::now();
        let mut client = Client::authenticated_through(gate).await;

        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        assert_eq!(start.elapsed(), Duration::from_secs(25));
        client.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_left_is_never_negative_and_its_timer_never_overflows() {
        let now = SystemTime::now();
        let second = Duration::from_secs(1);

        assert_eq!(time_left(now + 90 * second, now), 90 * second);
        assert_eq!(time_left(now, now), Duration::ZERO);
        assert_eq!(time_left(now - second, now), Duration::ZERO);
        assert_eq!(time_left(SystemTime::UNIX_EPOCH, now), Duration::ZERO);

        // Past: a timer that fires at once. Absurdly far: capped, not overflowed.
        assert_eq!(deadline(time_left(now - second, now)), Instant::now());
        let far = now.checked_add(Duration::from_secs(1 << 36)).unwrap_or(now);
        assert_eq!(
            deadline(time_left(far, now)),
            Instant::now() + FAR_FUTURE.min(time_left(far, now))
        );
    }

    // --- The per-user connection cap ---------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn a_user_over_the_connection_cap_is_closed_with_4429_before_ready() {
        let gate = FakeGate::with_cap(2);
        let mut first = Client::authenticated_through(Arc::clone(&gate)).await;
        let _second = Client::authenticated_through(Arc::clone(&gate)).await;
        assert_eq!(gate.open_connections(), 2);

        let third = Client::connect_to(Arc::clone(&gate), Settings::default(), 16);
        third.send_json(&json!({ "type": "auth", "token": GOOD_TOKEN }));

        // The close frame is the very next frame: no `ready` before it.
        let who = third
            .expect_close(close::TOO_MANY_CONNECTIONS, "too many connections")
            .await;
        assert_eq!(who, Some(the_actor()));
        assert_eq!(gate.admit_calls(), 3);
        assert_eq!(gate.open_connections(), 2, "a refusal takes no place");
        first.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_permit_is_held_while_connected_and_given_back_when_serve_returns() {
        let gate = FakeGate::with_cap(1);
        let client = Client::authenticated_through(Arc::clone(&gate)).await;
        assert_eq!(gate.open_connections(), 1);

        // Ended by the client,
        client.send(Inbound::Close);
        assert_eq!(client.expect_end().await, Some(the_actor()));
        assert_eq!(gate.open_connections(), 0);

        // and by the server.
        let client = Client::authenticated_through(Arc::clone(&gate)).await;
        client.send(Inbound::Binary(Vec::new()));
        client.expect_close(close::POLICY, "text frames only").await;
        assert_eq!(gate.open_connections(), 0);

        let mut again = Client::authenticated_through(Arc::clone(&gate)).await;
        again.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_permit_is_given_back_when_the_serving_task_is_aborted() {
        let gate = FakeGate::with_cap(1);
        let mut client = Client::authenticated_through(Arc::clone(&gate)).await;
        assert_eq!(gate.open_connections(), 1);

        client.server.abort();
        let joined = (&mut client.server).await;

        assert!(joined.is_err_and(|error| error.is_cancelled()));
        assert_eq!(gate.open_connections(), 0);
        // Dropped, not closed: nothing more was sent.
        assert_eq!(client.from_server.recv().await, None);
        let mut again = Client::authenticated_through(Arc::clone(&gate)).await;
        again.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_permit_is_given_back_when_the_serve_future_is_dropped_mid_connection() {
        let gate = FakeGate::with_cap(1);
        let auth = Inbound::Text(json!({ "type": "auth", "token": GOOD_TOKEN }).to_string());
        let inbound = futures_util::stream::iter([auth]).chain(futures_util::stream::pending());
        let (outbound, mut from_server) = mpsc::unbounded_channel::<Outbound>();
        let outbound = Box::pin(futures_util::sink::unfold(
            outbound,
            |tx, frame: Outbound| async move { tx.send(frame).map(|()| tx) },
        ));
        let (_events, receiver) = broadcast::channel(4);
        let settings = Settings::default();
        let mut serving = Box::pin(serve(inbound, outbound, receiver, &*gate, &settings));

        tokio::select! {
            _ = &mut serving => panic!("the connection ended on its own"),
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        assert_eq!(
            from_server.recv().await,
            Some(Outbound::Text(json!({ "type": "ready" }).to_string()))
        );
        assert_eq!(gate.open_connections(), 1);

        drop(serving);

        assert_eq!(gate.open_connections(), 0);
        assert_eq!(from_server.recv().await, None, "dropped, not closed");
    }

    // --- Subscriptions and events ---------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn an_allowed_subscription_delivers_events_with_ids_only() {
        let topic = document(1);
        let mut client = Client::subscribed_to(topic).await;

        client.publish(topic, "document.updated", Some(3));
        client.publish(topic, "document.deleted", None);

        // Exact equality: no owner id, no title, nothing but the topic, the name and a version.
        assert_eq!(client.next_json().await, updated(topic, 3));
        assert_eq!(
            client.next_json().await,
            json!({
                "type": "event",
                "topic": topic.to_string(),
                "event": "document.deleted",
                "data": {},
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_creation_event_of_a_subscribed_document_is_never_delivered() {
        let topic = document(1);
        let mut client = Client::subscribed_to(topic).await;

        // The fan-out may deliver the creation after the subscription began; it is old news.
        client.publish(topic, "document.created", Some(1));
        client.publish(topic, "document.updated", Some(2));

        assert_eq!(client.next_json().await, updated(topic, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_daily_quota_each_message_is_refused_and_the_events_still_arrive() {
        let (topic, other) = (document(1), document(2));
        let mut client = Client::subscribed_to(topic).await;
        client.gate.allow(other);
        // The subscribe above used one; one more is left.
        client.gate.quota_left.store(1, Ordering::SeqCst);
        client.subscribe(other);
        assert_eq!(client.next_json().await, subscribed(other));
        client.subscribe(other);
        assert_eq!(
            client.next_json().await,
            json!({ "type": "error", "code": "QUOTA_EXCEEDED", "retry_after": 3600 })
        );
        client.send_json(&json!({ "type": "unsubscribe", "topic": topic.to_string() }));
        assert_eq!(
            client.next_json().await["code"],
            "QUOTA_EXCEEDED",
            "an unsubscribe counts too, and is refused"
        );
        // Events are not requests: the subscriptions made keep delivering.
        client.publish(topic, "document.updated", Some(5));
        assert_eq!(client.next_json().await, updated(topic, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_subscription_is_forbidden_and_its_events_never_arrive() {
        let (allowed, refused) = (document(1), document(2));
        let mut client = Client::subscribed_to(allowed).await;

        client.subscribe(refused);
        assert_eq!(client.next_json().await, error_about("FORBIDDEN", refused));
        client.publish(refused, "document.updated", Some(7));
        client.publish(allowed, "document.updated", Some(8));

        // The broadcast channel keeps order: had the refused event been delivered, it would come
        // first.
        assert_eq!(client.next_json().await, updated(allowed, 8));
    }

    #[tokio::test(start_paused = true)]
    async fn events_of_topics_not_subscribed_never_arrive_and_cost_no_gate_call() {
        let (subscribed_topic, other) = (document(1), document(2));
        let mut client = Client::subscribed_to(subscribed_topic).await;
        client.gate.allow(other);
        let (live_calls, read_calls) =
            (client.gate.still_live_calls(), client.gate.may_read_calls());

        client.publish(other, "document.updated", Some(1));
        client.publish(subscribed_topic, "document.updated", Some(2));

        assert_eq!(client.next_json().await, updated(subscribed_topic, 2));
        // One check each, for the subscribed event only.
        assert_eq!(client.gate.still_live_calls(), live_calls + 1);
        assert_eq!(client.gate.may_read_calls(), read_calls + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn access_revoked_after_subscribing_drops_the_next_event_silently() {
        let (revoked, kept) = (document(1), document(2));
        let mut client = Client::subscribed_to(revoked).await;
        client.gate.allow(kept);
        client.subscribe(kept);
        assert_eq!(client.next_json().await, subscribed(kept));

        client.gate.revoke(revoked);
        client.publish(revoked, "document.updated", Some(5));
        client.publish(kept, "document.updated", Some(6));

        assert_eq!(client.next_json().await, updated(kept, 6));
        client.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn subscribing_again_after_losing_access_ends_the_old_subscription() {
        let (lost, kept) = (document(1), document(2));
        let mut client = Client::subscribed_to(lost).await;
        client.gate.allow(kept);
        client.subscribe(kept);
        assert_eq!(client.next_json().await, subscribed(kept));

        client.gate.revoke(lost);
        client.subscribe(lost);
        assert_eq!(client.next_json().await, error_about("FORBIDDEN", lost));
        // Access comes back, but the subscription does not: the client was told it had none.
        client.gate.allow(lost);
        client.publish(lost, "document.updated", Some(3));
        client.publish(kept, "document.updated", Some(4));

        assert_eq!(client.next_json().await, updated(kept, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_session_closes_with_4401_at_the_next_event() {
        let topic = document(1);
        let client = Client::subscribed_to(topic).await;

        client.gate.end_session();
        client.publish(topic, "document.updated", Some(2));

        let who = client
            .expect_close(close::UNAUTHENTICATED, "session ended")
            .await;
        assert_eq!(who, Some(the_actor()));
    }

    #[tokio::test(start_paused = true)]
    async fn unsubscribing_stops_the_events_and_is_idempotent() {
        let (left, kept) = (document(1), document(2));
        let mut client = Client::subscribed_to(left).await;
        client.gate.allow(kept);
        client.subscribe(kept);
        assert_eq!(client.next_json().await, subscribed(kept));

        for _ in 0..2 {
            client.send_json(&json!({ "type": "unsubscribe", "topic": left.to_string() }));
            assert_eq!(
                client.next_json().await,
                json!({ "type": "unsubscribed", "topic": left.to_string() })
            );
        }
        client.publish(left, "document.updated", Some(1));
        client.publish(kept, "document.updated", Some(2));

        assert_eq!(client.next_json().await, updated(kept, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_subscription_cap_refuses_one_more_topic_without_asking_the_policy() {
        let settings = Settings {
            max_subscriptions: 3,
            ..Settings::default()
        };
        let mut client = Client::authenticated_with(settings, 16).await;
        for n in 1..=4 {
            client.gate.allow(document(n));
        }
        for n in 1..=3 {
            client.subscribe(document(n));
            assert_eq!(client.next_json().await, subscribed(document(n)));
        }
        let read_calls = client.gate.may_read_calls();

        client.subscribe(document(4));
        assert_eq!(
            client.next_json().await,
            error_about("TOO_MANY_SUBSCRIPTIONS", document(4))
        );
        assert_eq!(client.gate.may_read_calls(), read_calls);

        // Subscribing again to a topic already held is not one more.
        client.subscribe(document(2));
        assert_eq!(client.next_json().await, subscribed(document(2)));
        // Leaving one makes room.
        client.send_json(&json!({ "type": "unsubscribe", "topic": document(1).to_string() }));
        client.next_json().await;
        client.subscribe(document(4));
        assert_eq!(client.next_json().await, subscribed(document(4)));
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_messages_get_bad_request_and_the_connection_stays() {
        let mut client = Client::authenticated().await;
        let messages = [
            "not json at all".to_owned(),
            json!({ "type": "shout", "topic": document(1).to_string() }).to_string(),
            json!({ "topic": document(1).to_string() }).to_string(),
            json!({ "type": "subscribe" }).to_string(),
            json!({ "type": "subscribe", "topic": document(1).to_string(), "x": 1 }).to_string(),
            json!(["subscribe"]).to_string(),
        ];
        for message in messages {
            client.send(Inbound::Text(message));
            assert_eq!(client.next_json().await, error("BAD_REQUEST"));
        }
        client.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_topic_is_a_bad_request_that_echoes_nothing() {
        let mut client = Client::authenticated().await;
        let id = Uuid::from_u128(7);
        for topic in [
            "user:1",
            "document:",
            "<script>",
            &format!("document:{}", id.simple()),
        ] {
            client.send_json(&json!({ "type": "subscribe", "topic": topic }));
            assert_eq!(client.next_json().await, error("BAD_REQUEST"), "{topic}");
            client.send_json(&json!({ "type": "unsubscribe", "topic": topic }));
            assert_eq!(client.next_json().await, error("BAD_REQUEST"), "{topic}");
        }
        assert_eq!(client.gate.may_read_calls(), 0);
        client.assert_still_open().await;
    }

    // --- Frames and limits -------------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn a_ping_is_answered_with_a_pong_of_the_same_payload() {
        let mut client = Client::authenticated().await;

        client.send(Inbound::Ping(vec![1, 2, 3]));

        assert_eq!(client.next().await, Outbound::Pong(vec![1, 2, 3]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_binary_frame_closes_with_1008() {
        let client = Client::authenticated().await;

        client.send(Inbound::Binary(vec![0; 4]));

        client.expect_close(close::POLICY, "text frames only").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_65_kib_text_message_closes_with_1009_and_64_kib_does_not() {
        let mut client = Client::authenticated().await;
        // Exactly at the limit: parsed (and refused as a message), not a size violation.
        client.send(Inbound::Text("x".repeat(64 * 1024)));
        assert_eq!(client.next_json().await, error("BAD_REQUEST"));

        client.send(Inbound::Text("x".repeat(65 * 1024)));

        client.expect_close(close::TOO_BIG, "frame too large").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_the_transport_found_too_large_closes_with_1009() {
        let client = Client::authenticated().await;

        client.send(Inbound::TooLarge);

        client.expect_close(close::TOO_BIG, "frame too large").await;
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_frames_in_a_second_are_fine() {
        let mut client = Client::authenticated().await;
        // A second later the auth message no longer counts.
        tokio::time::advance(Duration::from_secs(1)).await;

        for n in 0..20_u8 {
            client.send(Inbound::Ping(vec![n]));
        }
        for n in 0..20_u8 {
            assert_eq!(client.next().await, Outbound::Pong(vec![n]));
        }

        tokio::time::advance(Duration::from_secs(1)).await;
        client.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_twenty_first_frame_in_a_second_closes_with_1008() {
        let mut client = Client::authenticated().await;
        tokio::time::advance(Duration::from_secs(1)).await;

        for n in 0..21_u8 {
            client.send(Inbound::Ping(vec![n]));
        }

        for n in 0..20_u8 {
            assert_eq!(client.next().await, Outbound::Pong(vec![n]));
        }
        client.expect_close(close::POLICY, "rate").await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_window_slides_so_a_burst_across_a_second_boundary_is_caught() {
        let mut client = Client::authenticated().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let pings = |client: &Client, count: u8| {
            for n in 0..count {
                client.send(Inbound::Ping(vec![n]));
            }
        };

        pings(&client, 10);
        for _ in 0..10 {
            client.next().await;
        }
        tokio::time::advance(Duration::from_millis(600)).await;
        pings(&client, 10);
        for _ in 0..10 {
            client.next().await;
        }
        // 1.2 s after the first burst: it has left the window, the second has not. A fixed
        // window starting on the whole second would count only the 11 below.
        tokio::time::advance(Duration::from_millis(600)).await;
        pings(&client, 11);

        for _ in 0..10 {
            assert!(matches!(client.next().await, Outbound::Pong(_)));
        }
        client.expect_close(close::POLICY, "rate").await;
    }

    // --- Heartbeat and idle ---------------------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn the_server_pings_every_25_seconds_and_rechecks_the_session() {
        let start = Instant::now();
        let mut client = Client::authenticated().await;
        let live_calls = client.gate.still_live_calls();

        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        assert_eq!(start.elapsed(), Duration::from_secs(25));
        assert_eq!(client.gate.still_live_calls(), live_calls + 1);
        client.send(Inbound::Pong(Vec::new()));

        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        assert_eq!(start.elapsed(), Duration::from_secs(50));
        assert_eq!(client.gate.still_live_calls(), live_calls + 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_session_closes_with_4401_at_the_next_heartbeat() {
        let start = Instant::now();
        let client = Client::authenticated().await;

        client.gate.end_session();

        let who = client
            .expect_close(close::UNAUTHENTICATED, "session ended")
            .await;
        assert_eq!(start.elapsed(), Duration::from_secs(25));
        assert_eq!(who, Some(the_actor()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_closed_as_idle_after_60_seconds() {
        let start = Instant::now();
        let mut client = Client::authenticated().await;

        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        client.expect_close(close::NORMAL, "idle").await;

        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_answers_pings_is_never_idle() {
        let start = Instant::now();
        let mut client = Client::authenticated().await;

        for _ in 0..8 {
            assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
            client.send(Inbound::Pong(Vec::new()));
        }

        assert_eq!(start.elapsed(), Duration::from_secs(200));
        client.assert_still_open().await;
    }

    // --- The event stream and the transport ------------------------------------------------

    #[tokio::test(start_paused = true)]
    async fn a_receiver_that_lags_closes_with_1008_instead_of_buffering() {
        let topic = document(1);
        let mut client = Client::authenticated_with(Settings::default(), 2).await;
        client.gate.allow(topic);
        client.subscribe(topic);
        assert_eq!(client.next_json().await, subscribed(topic));

        // Nothing yields in between, so the server cannot keep up with a channel of two.
        for version in 1..=4 {
            client.publish(topic, "document.updated", Some(version));
        }

        client.expect_close(close::POLICY, "too slow").await;
    }

    #[tokio::test(start_paused = true)]
    async fn events_published_before_authentication_do_not_count_as_lag() {
        let mut client = Client::connect_with(Settings::default(), 2);
        for version in 1..=4 {
            client.publish(document(1), "document.updated", Some(version));
        }

        client.send_json(&json!({ "type": "auth", "token": GOOD_TOKEN }));

        assert_eq!(client.next_json().await, json!({ "type": "ready" }));
        client.assert_still_open().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_event_stream_closes_with_1001() {
        let mut client = Client::authenticated().await;

        drop(client.events.take());

        client.expect_close(close::GOING_AWAY, "going away").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_close_ends_the_connection_with_nothing_more_sent() {
        let topic = document(1);
        let client = Client::subscribed_to(topic).await;

        client.send(Inbound::Close);

        // Not even a close frame; and had the server stayed, its heartbeat would show up here.
        assert_eq!(client.expect_end().await, Some(the_actor()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_sink_ends_the_connection() {
        let gate = FakeGate::new();
        let inbound = futures_util::stream::iter([Inbound::Text(
            json!({ "type": "auth", "token": GOOD_TOKEN }).to_string(),
        )]);
        let outbound = Box::pin(futures_util::sink::unfold(
            (),
            |(), _frame: Outbound| async { Err::<(), _>("the peer is gone") },
        ));
        let (_events, receiver) = broadcast::channel(4);
        let start = Instant::now();

        let who = serve(inbound, outbound, receiver, &*gate, &Settings::default()).await;

        assert_eq!(who, Some(the_actor()));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "it did not wait for a timer"
        );
    }

    // --- Small parts -------------------------------------------------------------------------

    #[test]
    fn the_default_settings_are_the_documented_ones() {
        let settings = Settings::default();
        assert_eq!(settings.auth_timeout, Duration::from_secs(10));
        assert_eq!(settings.heartbeat, Duration::from_secs(25));
        assert_eq!(settings.idle_timeout, Duration::from_secs(60));
        assert_eq!(settings.max_frame_bytes, 65_536);
        assert_eq!(settings.max_messages_per_second, 20);
        assert_eq!(settings.max_subscriptions, 20);
    }

    #[test]
    fn the_debug_of_an_inbound_frame_never_shows_its_content() {
        let frame = Inbound::Text(json!({ "type": "auth", "token": GOOD_TOKEN }).to_string());

        let printed = format!("{frame:?}");

        assert!(!printed.contains(GOOD_TOKEN), "{printed}");
        assert!(printed.starts_with("Text("), "{printed}");
    }

    #[tokio::test(start_paused = true)]
    async fn timers_set_to_absurd_durations_do_not_panic() {
        let settings = Settings {
            auth_timeout: Duration::MAX,
            heartbeat: Duration::ZERO,
            idle_timeout: Duration::MAX,
            ..Settings::default()
        };
        let start = Instant::now();
        let mut client = Client::authenticated_with(settings, 4).await;

        // A zero heartbeat counts as one second.
        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        client.assert_still_open().await;
    }
}
