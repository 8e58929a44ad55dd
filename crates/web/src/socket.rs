//! What the two live sockets (`/api/v1/ws` and `/graphql/ws`) share below their protocols: the
//! frames as a protocol sees them ([`Inbound`], [`Outbound`]), the actix-ws session turned into a
//! `Stream` and a `Sink` of those frames ([`frames`], [`sink`]) so that each protocol is a plain
//! async function tested with in-memory channels, the per-connection message-rate window
//! ([`RateWindow`]), and the timer arithmetic that can never overflow ([`deadline`],
//! [`time_left`]).
//!
//! The Origin check every upgrade makes first is [`crate::cors::socket_origin_refusal`]; the
//! per-user connection cap is [`crate::connections`].

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use actix_ws::{CloseCode, CloseReason, Message, ProtocolError};
use bulwark_domain::context::Actor;
use futures_util::{Sink, Stream, StreamExt};
use tokio::time::Instant;

/// A frame from the client, as the transport hands it over.
///
/// `Debug` prints sizes, never contents: the first text frame carries an access token.
#[derive(Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text frame (a whole message: the transport joins continuation frames).
    Text(String),
    /// A binary frame (refused: the protocol is JSON text).
    Binary(Vec<u8>),
    /// A ping; answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (the answer to our heartbeat).
    Pong(Vec<u8>),
    /// The client closed the connection.
    Close,
    /// The transport saw a frame over the size limit (and did not buffer it).
    TooLarge,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Self::Binary(bytes) => write!(f, "Binary({} bytes)", bytes.len()),
            Self::Ping(bytes) => write!(f, "Ping({} bytes)", bytes.len()),
            Self::Pong(bytes) => write!(f, "Pong({} bytes)", bytes.len()),
            Self::Close => f.write_str("Close"),
            Self::TooLarge => f.write_str("TooLarge"),
        }
    }
}

/// A frame for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A JSON text message.
    Text(String),
    /// A heartbeat ping.
    Ping(Vec<u8>),
    /// The answer to the client's ping.
    Pong(Vec<u8>),
    /// The last frame of the connection.
    Close {
        /// The close code (each protocol lists its own in its `close` module).
        code: u16,
        /// A short reason for humans; never anything internal.
        reason: String,
    },
}

/// A token the gatekeeper accepted: whose it is, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The actor the token belongs to.
    pub actor: Actor,
    /// When the token stops being valid (its `exp`): the connection closes then (4401 on `/api/v1/ws`, 4403 on `/graphql/ws`). A
    /// credential without an expiry can give a time far in the future; timers are capped at
    /// thirty years, so no value can overflow.
    pub expires_at: SystemTime,
}

/// The shortest heartbeat: a zero period would ping in a tight loop.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(1);

/// A duration long enough to mean "never" (thirty years), to which timers are clamped.
pub const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `now + after`, clamped to [`FAR_FUTURE`]: adding an unbounded configured duration to an
/// `Instant` could overflow, and overflowing panics.
#[must_use]
pub fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    // `now + 30 years` cannot overflow a monotonic clock; if it somehow did, the timer fires now,
    // which closes the connection — the safe side.
    now.checked_add(after.min(FAR_FUTURE)).unwrap_or(now)
}

/// How long until `expires_at`, as of the wall-clock time `now`: zero if it has passed (never a
/// panic, whatever the two times). What is left is turned into a timer by [`deadline`], which
/// caps it.
#[must_use]
pub fn time_left(expires_at: SystemTime, now: SystemTime) -> Duration {
    expires_at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// The inbound frames of the last second, to enforce "at most N in any one-second window".
///
/// Written by hand rather than taken from a rate-limiting crate: it is per connection, in memory,
/// and a log of at most N instants (20 by default) is exact for *any* window — a fixed window
/// would let 2N through across a boundary — and small enough to read in full. The limits shared
/// between connections and instances (per user, per IP) are the rate limiter's, not this.
#[derive(Debug)]
pub struct RateWindow {
    max: usize,
    recent: VecDeque<Instant>,
}

impl RateWindow {
    const WINDOW: Duration = Duration::from_secs(1);

    /// A window admitting `max_per_second` frames in any one second.
    #[must_use]
    pub fn new(max_per_second: u32) -> Self {
        Self {
            max: usize::try_from(max_per_second).unwrap_or(usize::MAX),
            recent: VecDeque::new(),
        }
    }

    /// Records a frame at `now`; false if it is one too many. Holds at most `max` instants.
    pub fn admit(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&at| now.duration_since(at) >= Self::WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

/// The frames of an actix-ws session as a protocol sees them. Fragmented messages are not part of
/// either protocol and arrive as an empty binary frame (which both refuse); a frame over the size
/// the stream was given (`max_frame_size`) arrives as [`Inbound::TooLarge`], unbuffered.
pub fn frames(stream: actix_ws::MessageStream) -> Pin<Box<dyn Stream<Item = Inbound>>> {
    Box::pin(stream.filter_map(|message| async move {
        match message {
            Ok(Message::Text(text)) => Some(Inbound::Text(text.to_string())),
            Ok(Message::Binary(bytes)) => Some(Inbound::Binary(bytes.to_vec())),
            Ok(Message::Ping(bytes)) => Some(Inbound::Ping(bytes.to_vec())),
            Ok(Message::Pong(bytes)) => Some(Inbound::Pong(bytes.to_vec())),
            Ok(Message::Close(_)) => Some(Inbound::Close),
            Ok(Message::Continuation(_)) => Some(Inbound::Binary(Vec::new())),
            Ok(Message::Nop) => None,
            Err(ProtocolError::Overflow) => Some(Inbound::TooLarge),
            Err(_) => Some(Inbound::Close),
        }
    }))
}

/// What both sockets ask of the sessions: who an access token belongs to and until when, whether
/// that session is still live (and acting with the same role), and a place in the per-user
/// connection count. Each socket's gatekeeper delegates here, so the two cannot drift apart.
#[derive(Debug, Clone)]
pub struct SessionGate {
    /// Tokens and sessions.
    pub auth: bulwark_domain::auth::AuthService,
    /// Open sockets per user (one count for both endpoints).
    pub connections: crate::connections::ConnectionCounter,
    /// The daily request quotas (None: not counted — tests without the limits registered).
    pub limits: Option<actix_web::web::Data<crate::rate_limit::RateLimits>>,
    /// Where messages are counted (None: not counted).
    pub metrics: Option<actix_web::web::Data<crate::metrics::Metrics>>,
    /// The endpoint, as the metrics label (`/api/v1/ws`, `/graphql/ws`).
    pub endpoint: &'static str,
}

impl SessionGate {
    /// The actor of an access token and the token's expiry as a wall-clock time (None: refused).
    pub async fn authenticate(&self, token: &str) -> Option<Authenticated> {
        let (actor, expires_at) = self.auth.authenticate_with_expiry(token).await.ok()?;
        Some(Authenticated {
            actor,
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(expires_at),
        })
    }

    /// A permit for one more socket of this actor's user (None: the user is at the cap).
    #[must_use]
    pub fn admit(&self, actor: &Actor) -> Option<Box<dyn std::any::Any + Send>> {
        self.connections
            .admit(actor.user_id)
            .map(|permit| Box::new(permit) as Box<dyn std::any::Any + Send>)
    }

    /// Whether the session is still live, its user's, and acting with the same role.
    pub async fn still_live(&self, actor: &Actor) -> bool {
        self.auth.still_live(actor).await
    }

    /// Counts one message the client sent: in the metrics, and toward its user's daily request
    /// quota — the same count as REST and GraphQL requests.
    ///
    /// # Errors
    /// The day's quota is used up: how long until it renews.
    pub async fn count_message(&self, actor: &Actor) -> Result<(), Duration> {
        if let Some(metrics) = &self.metrics {
            metrics.websocket_message(self.endpoint);
        }
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        match crate::rate_limit::count_daily(limits, actor, 1).await {
            Ok(_) => Ok(()),
            Err(decision) => {
                if let Some(metrics) = &self.metrics {
                    metrics.rate_limited(crate::rate_limit::DailyQuotas::NAME);
                }
                Err(Duration::from_secs(decision.retry_after_secs()))
            }
        }
    }

    /// The gate of a socket upgraded by `req`, with what the app registered.
    #[must_use]
    pub fn of(
        req: &actix_web::HttpRequest,
        auth: bulwark_domain::auth::AuthService,
        connections: crate::connections::ConnectionCounter,
        endpoint: &'static str,
    ) -> Self {
        Self {
            auth,
            connections,
            limits: req
                .app_data::<actix_web::web::Data<crate::rate_limit::RateLimits>>()
                .cloned(),
            metrics: req
                .app_data::<actix_web::web::Data<crate::metrics::Metrics>>()
                .cloned(),
            endpoint,
        }
    }
}

/// The sink is gone: the peer left or the session was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// An actix-ws session as a sink of [`Outbound`] frames. After a close frame, every further send
/// fails with [`Closed`].
pub fn sink(session: actix_ws::Session) -> Pin<Box<dyn Sink<Outbound, Error = Closed>>> {
    Box::pin(futures_util::sink::unfold(
        Some(session),
        |session: Option<actix_ws::Session>, frame: Outbound| async move {
            let Some(mut session) = session else {
                return Err(Closed);
            };
            match frame {
                Outbound::Text(text) => session.text(text).await.map_err(|_| Closed)?,
                Outbound::Ping(bytes) => session.ping(&bytes).await.map_err(|_| Closed)?,
                Outbound::Pong(bytes) => session.pong(&bytes).await.map_err(|_| Closed)?,
                Outbound::Close { code, reason } => {
                    let _ = session
                        .close(Some(CloseReason {
                            code: CloseCode::from(code),
                            description: Some(reason),
                        }))
                        .await;
                    return Ok(None);
                }
            }
            Ok(Some(session))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_time_left_is_never_negative_and_its_timer_never_overflows() {
        let now = SystemTime::now();
        let second = Duration::from_secs(1);
        assert_eq!(time_left(now + 90 * second, now), 90 * second);
        assert_eq!(time_left(now, now), Duration::ZERO);
        assert_eq!(time_left(now - second, now), Duration::ZERO);
        assert_eq!(time_left(SystemTime::UNIX_EPOCH, now), Duration::ZERO);
        assert_eq!(deadline(Duration::ZERO), Instant::now());
        assert_eq!(deadline(Duration::MAX), Instant::now() + FAR_FUTURE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_window_admits_n_in_any_second_and_no_more() {
        let mut window = RateWindow::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(window.admit(start));
        }
        assert!(
            !window.admit(start + Duration::from_millis(999)),
            "a fourth within the second"
        );
        // A refused frame is not recorded: one second after the three, there is room for three more.
        let later = start + Duration::from_secs(1);
        for _ in 0..3 {
            assert!(window.admit(later));
        }
        assert!(!window.admit(later));
    }
}
