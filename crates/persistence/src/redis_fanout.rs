//! Multi-instance fan-out of document notifications through Redis pub/sub — the alternative to
//! [`crate::fanout::PgFanout`] for deployments whose instances already share a Redis (for rate
//! limits, say).
//!
//! Publishing is a `PUBLISH` on a configurable channel over one shared, multiplexed connection
//! (a `redis` `ConnectionManager`, made on first use, that reconnects by itself); every instance
//! (the publisher included) `SUBSCRIBE`s on it with one dedicated pub/sub connection and hands
//! each notification to its local subscribers through a tokio broadcast channel. Unlike
//! `LISTEN`, this holds no database connection per instance for listening. Payloads are the very
//! wire form of [`crate::fanout`] (the same `encode`/`decode`): ids only (topic, event, owner,
//! version, shared-with user) — each subscriber re-reads what it shows through the domain policy,
//! so a notification can never leak content to the wrong user — and anything that does not
//! decode exactly is dropped.
//!
//! Delivery is best effort, as for any live feed, and more so than with Redis storing nothing: a
//! notification published while an instance's listener is disconnected is lost for that
//! instance's subscribers (the listener logs when it resubscribes), one published while the
//! publisher cannot reach Redis is lost for everyone (logged, never an error for the caller: the
//! change itself is committed — see `bulwark_domain::events`), and a subscriber that falls behind
//! the broadcast buffer is told so.
//!
//! The channel name is the caller's: Redis pub/sub channels are global to a server (the `/db` of
//! the URL does not separate them), so deployments or test runs that share one Redis stay apart
//! only by using different channels. The URL may hold a password, so it is never logged, and
//! neither this type's `Debug` nor its errors show it.
//!
//! `rediss://` URLs connect over TLS (rustls on the process's aws-lc-rs provider, TLS 1.2+), and
//! the server's certificate is checked against its host name and the Mozilla roots compiled in —
//! or only against the CA certificates given to [`RedisFanout::with_root_certs`] (a private CA).
//! The `#insecure` form (no host-name check) is refused, as are unix sockets and RESP3.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bulwark_domain::events::{DocumentEvent, DocumentEvents, Notification};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::{ConnectionAddr, ProtocolVersion, RedisError};
use tokio::sync::{OnceCell, broadcast};

use crate::fanout::{decode, encode};

/// How long a publish may take, connecting included, before it is given up (and logged).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the listener waits between a failure and its next attempt.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long the listener may take to connect and subscribe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle listener checks that its connection still answers (a connection that died
/// without a word — a dropped route, a paused server — would otherwise leave it deaf for good).
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long that check may take.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a [`RedisFanout`] could not be made. None of these show the URL.
#[derive(Debug, thiserror::Error)]
pub enum RedisFanoutError {
    /// The URL or the CA certificates are not ones this crate's Redis adapters take.
    #[error(transparent)]
    Url(#[from] RedisUrlError),
    /// The channel name is empty.
    #[error("the Redis channel name is empty")]
    EmptyChannel,
}

/// Why a URL is not one this crate's Redis adapters take — the rule the fan-out and the rate
/// limiter share. No variant holds the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
pub enum RedisUrlError {
    /// The URL does not parse as a Redis URL.
    #[error("the Redis URL is invalid: {0}")]
    Invalid(#[source] RedisError),
    /// A unix-socket, RESP3 or `rediss://…#insecure` URL: only `redis://` and `rediss://` over TCP
    /// with the default protocol are supported.
    #[error(
        "only redis:// and rediss:// URLs are supported (TCP, RESP2): no unix sockets, RESP3 or #insecure"
    )]
    Unsupported,
    /// CA certificates were given but are not PEM certificates, or the URL is not `rediss://`.
    #[error("the Redis CA certificates are not PEM certificates, or the URL is not rediss://")]
    RootCerts,
}

/// The first line of a PEM certificate.
const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// A client for `url`, which must be a `redis://` or `rediss://` URL over TCP with the default
/// protocol (RESP2) — the rule every Redis adapter of this crate shares. With `root_certs` (PEM),
/// a `rediss://` server must present a certificate issued by one of them (instead of by a
/// well-known CA). Parses only: no network I/O.
pub(crate) fn client(url: &str, root_certs: Option<&[u8]>) -> Result<redis::Client, RedisUrlError> {
    let client = redis::Client::open(url).map_err(RedisUrlError::Invalid)?;
    let info = client.get_connection_info();
    if info.redis_settings().protocol() != ProtocolVersion::RESP2 {
        return Err(RedisUrlError::Unsupported);
    }
    match (info.addr(), root_certs) {
        (ConnectionAddr::Tcp(..), None) => Ok(client),
        // `#insecure` switches the host-name check off: anyone with any valid certificate could
        // then answer in the server's place.
        (ConnectionAddr::TcpTls { insecure: true, .. }, _) => Err(RedisUrlError::Unsupported),
        (ConnectionAddr::TcpTls { .. }, None) => Ok(client),
        (ConnectionAddr::TcpTls { .. }, Some(pem)) => {
            // An empty store would fail every handshake later; say so now.
            if !pem
                .windows(CERTIFICATE_PEM.len())
                .any(|window| window == CERTIFICATE_PEM)
            {
                return Err(RedisUrlError::RootCerts);
            }
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            };
            redis::Client::build_with_tls(info.clone(), certificates)
                .map_err(|_| RedisUrlError::RootCerts)
        }
        (ConnectionAddr::Tcp(..), Some(_)) => Err(RedisUrlError::RootCerts),
        _ => Err(RedisUrlError::Unsupported),
    }
}

/// Why the listener stopped (it then reconnects).
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("Redis did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the Redis connection closed")]
    Closed,
}

/// Publishes document notifications to every instance and receives them from every instance,
/// through Redis pub/sub.
///
/// Cloning is cheap and shares everything: the local broadcast, the publishing connection.
#[derive(Clone)]
pub struct RedisFanout {
    /// Shared: with TLS compiled in, a client is a few hundred bytes.
    client: Arc<redis::Client>,
    channel: Arc<str>,
    local: broadcast::Sender<Notification>,
    /// Made on the first publish (it needs a runtime); reconnects by itself afterwards.
    publisher: Arc<OnceCell<ConnectionManager>>,
}

impl fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: it knows the address and the credentials.
        f.debug_struct("RedisFanout")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisFanout {
    /// A fan-out over the Redis at `url` (`redis[s]://[user][:password@]host[:port][/db]`) on
    /// `channel`; each local subscriber may fall `capacity` notifications behind before it is
    /// told it lagged.
    ///
    /// Only parses: no network I/O and no runtime needed here, so an unreachable Redis is not an
    /// error now — the listener retries until it is reachable (logging each failure) and
    /// publishing logs its failures.
    ///
    /// # Errors
    /// [`RedisFanoutError`] when the URL does not parse or is not a `redis://` or `rediss://` TCP
    /// URL, or the channel is empty. The error never quotes the URL.
    pub fn new(
        url: &str,
        channel: impl Into<String>,
        capacity: usize,
    ) -> Result<Self, RedisFanoutError> {
        Self::with_root_certs(url, None, channel, capacity)
    }

    /// [`RedisFanout::new`] for a `rediss://` server whose certificate is issued by a CA of
    /// `root_certs` (PEM; they replace the well-known CAs), when given.
    ///
    /// # Errors
    /// As [`RedisFanout::new`], and [`RedisUrlError::RootCerts`] when `root_certs` holds no
    /// PEM certificate or the URL is not `rediss://`.
    pub fn with_root_certs(
        url: &str,
        root_certs: Option<&[u8]>,
        channel: impl Into<String>,
        capacity: usize,
    ) -> Result<Self, RedisFanoutError> {
        let channel: String = channel.into();
        if channel.is_empty() {
            return Err(RedisFanoutError::EmptyChannel);
        }
        let client = client(url, root_certs)?;
        let (local, _) = broadcast::channel(capacity.max(1));
        Ok(Self {
            client: Arc::new(client),
            channel: channel.into(),
            local,
            publisher: Arc::new(OnceCell::new()),
        })
    }

    /// The channel the notifications travel on.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A receiver of every notification from every instance, from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.local.subscribe()
    }

    /// Starts the task that subscribes to the channel (runs until the runtime stops; reconnects
    /// one second after any failure, forever). It holds one Redis connection of its own.
    pub fn spawn_listener(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut subscribed_before = false;
            loop {
                if let Err(error) = this.listen(&mut subscribed_before).await {
                    tracing::warn!(error = %error, "redis document event listener failed; retrying");
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        })
    }

    async fn listen(&self, subscribed_before: &mut bool) -> Result<(), ListenError> {
        let (mut sink, mut stream) = within(SUBSCRIBE_TIMEOUT, self.connect()).await?;
        if *subscribed_before {
            tracing::warn!(
                "redis document event listener resubscribed; events sent meanwhile were missed"
            );
        } else {
            tracing::info!("listening for document events on redis");
        }
        *subscribed_before = true;

        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else {
                        return Err(ListenError::Closed);
                    };
                    match std::str::from_utf8(message.get_payload_bytes()).ok().and_then(decode) {
                        // No receiver is not an error: nobody is subscribed on this instance.
                        Some(decoded) => {
                            let _ = self.local.send(decoded);
                        }
                        None => tracing::warn!("ignored a malformed document event"),
                    }
                }
                _ = heartbeat.tick() => {
                    within(HEARTBEAT_TIMEOUT, async {
                        sink.ping::<redis::Value>().await.map_err(ListenError::from)
                    })
                    .await?;
                }
            }
        }
    }

    async fn connect(&self) -> Result<(PubSubSink, PubSubStream), ListenError> {
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        sink.subscribe(&*self.channel).await?;
        Ok((sink, stream))
    }

    async fn send(&self, payload: String) -> Result<(), RedisError> {
        let mut connection = self
            .publisher
            .get_or_try_init(|| async {
                // Lazy: connects on the first command, inside the publish timeout.
                ConnectionManager::new_lazy_with_config(
                    (*self.client).clone(),
                    ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(1)))
                        .set_response_timeout(Some(Duration::from_secs(1)))
                        .set_number_of_retries(2)
                        .set_max_delay(Duration::from_secs(1)),
                )
            })
            .await?
            .clone();
        redis::cmd("PUBLISH")
            .arg(&*self.channel)
            .arg(payload)
            .exec_async(&mut connection)
            .await
    }
}

/// `future`, or [`ListenError::TimedOut`] after `limit`.
async fn within<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, ListenError>>,
) -> Result<T, ListenError> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| ListenError::TimedOut(limit))?
}

#[async_trait]
impl DocumentEvents for RedisFanout {
    async fn publish(&self, event: DocumentEvent) {
        let notification = Notification::of(&event);
        let Some(payload) = encode(&notification) else {
            return;
        };
        // Live notifications are best effort; the change itself is committed.
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.send(payload)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "could not publish a document event to redis");
            }
            Err(_) => tracing::warn!(
                timeout = ?PUBLISH_TIMEOUT,
                "publishing a document event to redis timed out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use bulwark_domain::document::SharePermission;
    use bulwark_domain::events::{DocumentChange, Topic};
    use time::OffsetDateTime;
    use tokio::time::{Instant, timeout};
    use uuid::Uuid;

    use super::*;
    use crate::test_redis::{OwnRedis, free_port};

    /// The owner of the probes that tell when listeners are subscribed (skipped by `next_real`).
    const PROBE_OWNER: Uuid = Uuid::from_u128(0x0b0b);

    fn redis_url() -> String {
        std::env::var("BULWARK_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    /// A channel of this test's own, so parallel tests never hear each other.
    fn own_channel() -> String {
        String::from("bulwark-test-") + &Uuid::new_v4().to_string()
    }

    fn event(owner_id: Uuid, change: DocumentChange) -> DocumentEvent {
        DocumentEvent {
            document_id: Uuid::new_v4(),
            owner_id,
            change,
            occurred_at: OffsetDateTime::now_utc(),
        }
    }

    /// Publishes probes through `publisher` until every receiver has heard one: then every
    /// listener behind them is subscribed.
    async fn wait_until_listening(
        publisher: &RedisFanout,
        receivers: &mut [&mut broadcast::Receiver<Notification>],
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut heard = vec![false; receivers.len()];
        while heard.iter().any(|h| !h) {
            assert!(Instant::now() < deadline, "the listeners never subscribed");
            publisher
                .publish(event(PROBE_OWNER, DocumentChange::Deleted))
                .await;
            for (receiver, heard) in receivers.iter_mut().zip(heard.iter_mut()) {
                while let Ok(Ok(n)) = timeout(Duration::from_millis(100), receiver.recv()).await {
                    if n.owner_id == PROBE_OWNER {
                        *heard = true;
                    }
                }
            }
        }
    }

    /// The next notification that is not a probe (or one of `also_skip`'s owners).
    async fn next_real(
        receiver: &mut broadcast::Receiver<Notification>,
        also_skip: &[Uuid],
    ) -> Notification {
        loop {
            let n = timeout(Duration::from_secs(10), receiver.recv())
                .await
                .expect("no notification within 10 s")
                .expect("the broadcast closed or lagged");
            if n.owner_id != PROBE_OWNER && !also_skip.contains(&n.owner_id) {
                return n;
            }
        }
    }

    #[test]
    fn only_tcp_redis_urls_are_taken_and_the_password_is_never_shown() {
        let secret = "hunter2-not-for-logs";
        let fanout =
            RedisFanout::new("redis://user:hunter2-not-for-logs@127.0.0.1:6379/0", "c", 8).unwrap();
        assert!(
            RedisFanout::new("rediss://:hunter2-not-for-logs@cache.internal:6380", "c", 8).is_ok()
        );
        let mut shown = String::new();
        write!(shown, "{fanout:?}").unwrap();
        assert!(
            shown.contains("RedisFanout") && !shown.contains(secret),
            "{shown}"
        );

        for url in [
            "rediss://:hunter2-not-for-logs@127.0.0.1:6379/#insecure",
            "redis+unix:///tmp/hunter2-not-for-logs.sock",
            "redis://:hunter2-not-for-logs@127.0.0.1:6379/?protocol=resp3",
            "http://:hunter2-not-for-logs@127.0.0.1:6379",
            "not a url hunter2-not-for-logs",
        ] {
            let error = RedisFanout::new(url, "c", 8).unwrap_err();
            let mut shown = String::new();
            write!(shown, "{error} {error:?}").unwrap();
            assert!(!shown.contains(secret), "{url}: {shown}");
        }
        assert!(matches!(
            RedisFanout::new("redis://127.0.0.1:6379", "", 8),
            Err(RedisFanoutError::EmptyChannel)
        ));
        // CA certificates go with rediss:// only, and must be certificates.
        let ca = crate::test_redis::TlsFiles::new();
        assert!(
            RedisFanout::with_root_certs("rediss://127.0.0.1:1", Some(&ca.cert_pem), "c", 8)
                .is_ok()
        );
        for (url, pem) in [
            ("redis://127.0.0.1:1", &ca.cert_pem[..]),
            ("rediss://127.0.0.1:1", b"not a certificate"),
            ("rediss://127.0.0.1:1", &ca.key_pem[..]),
        ] {
            assert!(
                matches!(
                    RedisFanout::with_root_certs(url, Some(pem), "c", 8),
                    Err(RedisFanoutError::Url(RedisUrlError::RootCerts))
                ),
                "{url}"
            );
        }
    }

    /// Publishes until `receiver` hears a real notification, or gives up after 30 s.
    async fn roundtrip(fanout: &RedisFanout) -> bool {
        let mut receiver = fanout.subscribe();
        let listener = fanout.spawn_listener();
        let heard = timeout(Duration::from_secs(15), async {
            loop {
                fanout
                    .publish(event(Uuid::new_v4(), DocumentChange::Deleted))
                    .await;
                if let Ok(Ok(_)) = timeout(Duration::from_millis(200), receiver.recv()).await {
                    return;
                }
            }
        })
        .await
        .is_ok();
        listener.abort();
        heard
    }

    #[tokio::test]
    async fn notifications_travel_over_rediss_to_a_server_of_the_given_ca_only() {
        let tls = crate::test_redis::TlsFiles::new();
        let server = OwnRedis::start_tls(free_port(), &tls).await;
        let trusting =
            RedisFanout::with_root_certs(&server.tls_url(), Some(&tls.cert_pem), own_channel(), 8)
                .unwrap();
        assert!(roundtrip(&trusting).await, "no notification over TLS");

        // The built-in (Mozilla) roots do not include this CA: nothing is ever sent to the server.
        let default_roots = RedisFanout::new(&server.tls_url(), own_channel(), 8).unwrap();
        let mut connection = default_roots
            .client
            .get_multiplexed_async_connection()
            .await;
        assert!(connection.is_err(), "an unknown CA was trusted");
        // And plain text to the TLS port is no way round it.
        let plain = RedisFanout::new(
            &server.tls_url().replacen("rediss", "redis", 1),
            own_channel(),
            8,
        )
        .unwrap();
        connection = plain.client.get_multiplexed_async_connection().await;
        let refused = match connection {
            Err(_) => true,
            Ok(mut c) => redis::cmd("PING").exec_async(&mut c).await.is_err(),
        };
        assert!(refused, "the TLS port answered plain text");
    }

    #[tokio::test]
    async fn a_notification_published_on_one_instance_reaches_both() {
        let channel = own_channel();
        let a = RedisFanout::new(&redis_url(), channel.clone(), 64).unwrap();
        let b = RedisFanout::new(&redis_url(), channel, 64).unwrap();
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        let listeners = [a.spawn_listener(), b.spawn_listener()];
        wait_until_listening(&a, &mut [&mut on_a, &mut on_b]).await;

        let owner = Uuid::new_v4();
        let updated = event(owner, DocumentChange::Updated { version: 7 });
        let shared_with = Uuid::new_v4();
        let shared = event(
            owner,
            DocumentChange::Shared {
                user_id: shared_with,
                permission: SharePermission::Read,
            },
        );
        a.publish(updated.clone()).await;
        a.publish(shared.clone()).await;

        for receiver in [&mut on_a, &mut on_b] {
            let first = next_real(receiver, &[]).await;
            assert_eq!(first, Notification::of(&updated));
            assert_eq!(first.topic, Topic::Document(updated.document_id));
            assert_eq!(first.version, Some(7));
            let second = next_real(receiver, &[]).await;
            assert_eq!(second, Notification::of(&shared));
            assert_eq!(second.shared_with, Some(shared_with));
            assert_eq!(second.event, "document.shared");
        }
        for listener in listeners {
            listener.abort();
        }
    }

    #[tokio::test]
    async fn a_malformed_message_is_dropped_and_the_listener_goes_on() {
        let channel = own_channel();
        let fanout = RedisFanout::new(&redis_url(), channel.clone(), 64).unwrap();
        let mut receiver = fanout.subscribe();
        let listener = fanout.spawn_listener();
        wait_until_listening(&fanout, &mut [&mut receiver]).await;

        let client = redis::Client::open(redis_url()).unwrap();
        let mut plain = client.get_multiplexed_async_connection().await.unwrap();
        let malformed: [&[u8]; 5] = [
            b"not json",
            b"{}",
            br#"{"topic":"user:1","event":"document.updated","owner_id":"00000000-0000-0000-0000-000000000001","version":null}"#,
            br#"{"topic":"document:00000000-0000-0000-0000-000000000009","event":"rm -rf","owner_id":"00000000-0000-0000-0000-000000000001","version":null}"#,
            b"\xff\xfe not utf-8",
        ];
        for payload in malformed {
            let receivers: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async(&mut plain)
                .await
                .unwrap();
            assert_eq!(receivers, 1, "the listener is subscribed");
        }

        // Published after the malformed ones, so it arrives after them: if it is the first thing
        // heard, they were dropped — and the listener is still at work.
        let valid = event(Uuid::new_v4(), DocumentChange::Deleted);
        fanout.publish(valid.clone()).await;
        assert_eq!(
            next_real(&mut receiver, &[]).await,
            Notification::of(&valid)
        );
        listener.abort();
    }

    #[tokio::test]
    async fn publishing_survives_redis_going_down_and_the_listener_comes_back() {
        let port = free_port();
        let mut server = OwnRedis::start(port).await;
        let fanout = RedisFanout::new(&server.url(), own_channel(), 64).unwrap();
        let mut receiver = fanout.subscribe();
        let listener = fanout.spawn_listener();
        wait_until_listening(&fanout, &mut [&mut receiver]).await;

        server.stop();
        // Lost (best effort), but neither an error nor a hang for the caller: the first finds the
        // connection dead, the next ones wait on the reconnection.
        let lost_owner = Uuid::new_v4();
        for _ in 0..3 {
            timeout(
                Duration::from_secs(10),
                fanout.publish(event(lost_owner, DocumentChange::Deleted)),
            )
            .await
            .expect("publishing while Redis is down must return promptly");
        }

        let _restarted = OwnRedis::start(port).await;
        wait_until_listening(&fanout, &mut [&mut receiver]).await;
        let after = event(Uuid::new_v4(), DocumentChange::Updated { version: 2 });
        fanout.publish(after.clone()).await;
        assert_eq!(
            next_real(&mut receiver, &[lost_owner]).await,
            Notification::of(&after)
        );
        listener.abort();
    }
}
