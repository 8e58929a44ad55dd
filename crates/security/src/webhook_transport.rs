//! The HTTP transport of webhook deliveries, behind the domain's [`WebhookTransport`] port: the
//! only code in the service that sends a request to an address a client chose.
//!
//! That makes it the server-side request forgery (SSRF) boundary, and the policy of
//! [`bulwark_domain::webhook_target`] is only as good as the way it is applied here. The rules:
//!
//! - **The address checked is the address dialled.** The reqwest client resolves host names
//!   through [`GuardedResolver`] and nothing else: it looks the name up, runs
//!   [`check_resolved`] on the *complete* answer (one forbidden address refuses the name, because
//!   the connector may try any of them and an attacker controls the order), and hands the client
//!   only those checked addresses. A name that was public at registration and points at
//!   169.254.169.254 at delivery (DNS rebinding) is therefore refused at connect time, even if it
//!   flips between our own pre-check and the connection.
//! - **IP literals are checked before the request.** hyper-util's connector dials an IP literal
//!   directly without consulting any resolver (`hyper-util` 0.1.21,
//!   `src/client/legacy/connect/http.rs`, `call_async`: `SocketAddrs::try_parse` before
//!   `resolve`), so [`GuardedTransport::send`] checks literals itself.
//! - **No proxy, no redirects.** A proxy would resolve the name on its own side, out of our sight;
//!   a redirect is a new URL that skipped both checkpoints. A 3xx is reported as the receiver's
//!   answer and never followed.
//! - **Bounded everything.** A connect timeout, a total timeout that includes reading the body, and
//!   a cap on the response size: a receiver must not be able to hold a worker or fill its memory.
//! - **Our own words.** Failure reasons go into the delivery log that the webhook's owner reads,
//!   so they are short fixed phrases: never the URL (its path often holds a capability), never
//!   the receiver's body, never the secret, never what a name resolved to inside our network.
//!
//! The resolver is written by hand because it is glue, not security logic of its own: the policy
//! is the domain's, the lookup is the system's (`getaddrinfo` via tokio), and the connection is
//! reqwest's. The resolver only decides what reqwest is allowed to see.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bulwark_domain::user::FieldViolation;
use bulwark_domain::webhook::{OutboundDelivery, SendOutcome, WebhookTransport, headers};
use bulwark_domain::webhook_target::{WebhookUrl, check_resolved};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use secrecy::ExposeSecret;

use crate::webhook_signature::{SIGNATURE_HEADER, sign};

/// How the delivery client behaves: timeouts, the response cap, how it introduces itself, and
/// (in tests only) network adjustments.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// The longest a TCP (and TLS) connection may take to open; also bounds each DNS lookup.
    pub connect_timeout: Duration,
    /// The longest a whole attempt may take, from connecting to the last byte of the (capped)
    /// response body.
    pub total_timeout: Duration,
    /// The most response body bytes read; a receiver that sends more gets
    /// [`SendOutcome::Failed`]. The body itself is discarded.
    pub max_response_bytes: usize,
    /// The `User-Agent` of every delivery.
    pub user_agent: String,
    /// Test-only adjustments; `None` in production.
    pub test_network: Option<TestNetwork>,
}

impl Default for TransportSettings {
    /// Production settings: 5 s to connect, 10 s in all, 64 KiB of response, no test network.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            user_agent: "Bulwark-Webhooks/0.1".to_owned(),
            test_network: None,
        }
    }
}

/// Test-only network adjustments; never built from the environment (the test harness sets them
/// in code), so no configuration mistake can weaken the policy in production.
#[derive(Clone, Debug, Default)]
pub struct TestNetwork {
    /// Exempt loopback addresses (127.0.0.0/8, ::1) — and only them — from the SSRF check, so
    /// tests can run receivers on 127.0.0.1.
    pub allow_loopback: bool,
    /// Static DNS answers consulted before the system resolver (lower-case names). Shared and
    /// mutable so a test can change an answer between registration and delivery (DNS rebinding).
    pub hosts: StaticHosts,
}

/// A shared table of static DNS answers for tests: name → addresses. Clones share the table.
#[derive(Clone, Debug, Default)]
pub struct StaticHosts(Arc<RwLock<HashMap<String, Vec<IpAddr>>>>);

impl StaticHosts {
    /// Makes `name` (case-insensitive) resolve to `addresses`, replacing any earlier answer. An
    /// empty list makes the name resolve to nothing (like NXDOMAIN).
    pub fn set(&self, name: &str, addresses: Vec<IpAddr>) {
        // A panic elsewhere while holding the lock leaves a table that is still a valid map.
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_ascii_lowercase(), addresses);
    }

    /// The static answer for `name` (case-insensitive), if there is one.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name.to_ascii_lowercase())
            .cloned()
    }
}

/// The delivery client could not be built (the TLS backend or the platform verifier failed to
/// initialise). The source says why, for the log.
#[derive(Debug, thiserror::Error)]
#[error("the webhook delivery client could not be built")]
pub struct TransportBuildError(#[source] Box<dyn StdError + Send + Sync>);

/// The SSRF-safe webhook transport: one reqwest client with no proxy, no redirects, short
/// timeouts and [`GuardedResolver`] as its only way to turn names into addresses.
pub struct GuardedTransport {
    client: reqwest::Client,
    resolver: GuardedResolver,
    settings: TransportSettings,
}

impl fmt::Debug for GuardedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedTransport")
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("total_timeout", &self.settings.total_timeout)
            .field("max_response_bytes", &self.settings.max_response_bytes)
            .field("user_agent", &self.settings.user_agent)
            .field("test_network", &self.settings.test_network.is_some())
            .finish_non_exhaustive()
    }
}

impl GuardedTransport {
    /// Builds the client once; every delivery reuses it (and its connection pool).
    ///
    /// # Errors
    /// [`TransportBuildError`] when reqwest cannot build the client.
    pub fn new(settings: TransportSettings) -> Result<Self, TransportBuildError> {
        let resolver = GuardedResolver::new(&settings);
        let client = reqwest::Client::builder()
            // `no_proxy` also turns off the proxies reqwest would otherwise take from
            // `HTTP_PROXY`/`HTTPS_PROXY`: a proxy resolves the name itself, past our resolver.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .user_agent(settings.user_agent.clone())
            .referer(false)
            .http1_only()
            .dns_resolver(Arc::new(resolver.clone()))
            .build()
            .map_err(|error| TransportBuildError(Box::new(error)))?;
        Ok(Self {
            client,
            resolver,
            settings,
        })
    }

    /// The pre-check of a delivery: the literal checked, or the name resolved and checked.
    async fn pre_check(&self, url: &WebhookUrl) -> Result<(), SendOutcome> {
        if let Some(ip) = url.ip_literal() {
            // hyper-util dials literals without asking the resolver: this is their only check.
            return self.resolver.check(&[ip]).map_err(|_| refused());
        }
        let addresses = self
            .resolver
            .lookup(url.host_str())
            .await
            .map_err(|error| {
                tracing::debug!(%error, "the webhook host did not resolve");
                failed(if error.is_timeout() {
                    TIMED_OUT
                } else {
                    UNRESOLVABLE
                })
            })?;
        self.resolver.check(&addresses).map_err(|_| refused())
    }

    /// [`WebhookTransport::send`], in a span that names the delivery and the URL's origin only
    /// (`WebhookUrl`'s `Debug` redacts the path).
    #[tracing::instrument(
        name = "webhook_send",
        skip_all,
        fields(delivery_id = %delivery.delivery_id, event = delivery.event.as_str(), webhook_url = ?delivery.url)
    )]
    async fn deliver(&self, delivery: OutboundDelivery<'_>) -> SendOutcome {
        if let Err(outcome) = self.pre_check(delivery.url).await {
            log_outcome(&outcome);
            return outcome;
        }
        let signature = sign(delivery.secret.expose_secret(), unix_now(), delivery.body);
        let request = self
            .client
            .post(delivery.url.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(headers::DELIVERY, delivery.delivery_id.to_string())
            .header(headers::EVENT, delivery.event.as_str())
            .body(delivery.body.to_vec());
        let outcome = match request.send().await {
            Ok(response) => self.read_capped(response).await,
            Err(error) => classify(error),
        };
        log_outcome(&outcome);
        outcome
    }

    /// The receiver's status once its body has been read (and discarded) within the cap.
    async fn read_capped(&self, mut response: reqwest::Response) -> SendOutcome {
        let status = response.status().as_u16();
        let cap = self.settings.max_response_bytes;
        let too_large = || failed(&format!("the response exceeded {cap} bytes"));
        // A declared length over the cap fails without reading a byte; a missing or lying one is
        // caught by counting below.
        if response
            .content_length()
            .is_some_and(|length| length > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return too_large();
        }
        let mut received: usize = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    received = received.saturating_add(chunk.len());
                    if received > cap {
                        return too_large();
                    }
                }
                Ok(None) => return SendOutcome::Answered { status },
                Err(error) => return classify(error),
            }
        }
    }
}

#[async_trait]
impl WebhookTransport for GuardedTransport {
    async fn vet(&self, url: &WebhookUrl) -> Result<(), FieldViolation> {
        if let Some(ip) = url.ip_literal() {
            return self.resolver.check(&[ip]);
        }
        match self.resolver.lookup(url.host_str()).await {
            Ok(addresses) => self.resolver.check(&addresses),
            Err(error) => {
                tracing::debug!(%error, webhook_url = ?url, "a webhook host did not resolve");
                // An empty answer is exactly what the policy calls `unresolvable`.
                check_resolved(&[])
            }
        }
    }

    async fn send(&self, delivery: OutboundDelivery<'_>) -> SendOutcome {
        self.deliver(delivery).await
    }
}

/// The only resolver the delivery client has: static test answers first, else the system's;
/// then the SSRF policy on the complete answer. It returns the checked addresses with port 0,
/// which hyper-util replaces with the URL's port (explicit, or the scheme's default).
#[derive(Clone, Debug)]
struct GuardedResolver {
    allow_loopback: bool,
    hosts: Option<StaticHosts>,
    lookup_timeout: Duration,
}

impl GuardedResolver {
    fn new(settings: &TransportSettings) -> Self {
        Self {
            allow_loopback: settings
                .test_network
                .as_ref()
                .is_some_and(|network| network.allow_loopback),
            hosts: settings
                .test_network
                .as_ref()
                .map(|network| network.hosts.clone()),
            lookup_timeout: settings.connect_timeout,
        }
    }

    /// Every address `name` resolves to; never an empty list.
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let addresses = match self.hosts.as_ref().and_then(|hosts| hosts.get(name)) {
            Some(answer) => answer,
            None => tokio::time::timeout(self.lookup_timeout, tokio::net::lookup_host((name, 0)))
                .await
                .map_err(|_| LookupError::TimedOut)?
                .map_err(LookupError::Failed)?
                .map(|address| address.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(LookupError::NoAddress);
        }
        Ok(addresses)
    }

    /// The SSRF policy on a complete answer; with the test exemption, loopback addresses are
    /// taken out first (and only they: `::ffff:127.0.0.1` is not `is_loopback`, so it stays in).
    fn check(&self, addresses: &[IpAddr]) -> Result<(), FieldViolation> {
        if !self.allow_loopback {
            return check_resolved(addresses);
        }
        let rest: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|ip| !ip.is_loopback())
            .collect();
        if rest.is_empty() && !addresses.is_empty() {
            return Ok(());
        }
        check_resolved(&rest)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolver.lookup(&name).await?;
            if resolver.check(&addresses).is_err() {
                // Recognised by `is_refusal` on the way out of reqwest, so a name that rebinds
                // between the pre-check and the connection is reported as refused, not failed.
                return Err(Box::new(ForbiddenAddress) as Box<dyn StdError + Send + Sync>);
            }
            // Port 0: hyper-util sets the URL's explicit port, or the scheme's default, on every
            // address whose port is 0 (`set_port` in `connect/http.rs`).
            let addresses: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addresses)
        })
    }
}

/// The resolver refused to hand reqwest an address because the SSRF policy forbids one of the
/// addresses the name resolved to. Names no address (it could end up in a log line the owner
/// sees).
#[derive(Debug, thiserror::Error)]
#[error("the SSRF policy forbids an address this host resolved to")]
struct ForbiddenAddress;

/// A name did not resolve.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    /// The lookup took longer than the connect timeout.
    #[error("the lookup timed out")]
    TimedOut,
    /// The lookup answered with no address.
    #[error("the name has no address")]
    NoAddress,
    /// The system resolver failed.
    #[error("the lookup failed")]
    Failed(#[source] io::Error),
}

impl LookupError {
    const fn is_timeout(&self) -> bool {
        matches!(self, Self::TimedOut)
    }
}

const TIMED_OUT: &str = "timed out";
const UNRESOLVABLE: &str = "the host did not resolve";

fn failed(reason: &str) -> SendOutcome {
    SendOutcome::Failed {
        reason: reason.to_owned(),
    }
}

fn refused() -> SendOutcome {
    SendOutcome::Refused {
        reason: "the host is or resolves to a forbidden address".to_owned(),
    }
}

/// What a reqwest error means for the delivery log: refused by the policy at connect time,
/// timed out, could not connect, or anything else.
fn classify(error: reqwest::Error) -> SendOutcome {
    // reqwest's `Display` names the URL, whose path may hold a capability.
    let error = error.without_url();
    tracing::debug!(error = %Chain(&error), "webhook request error");
    if is_refusal(&error) {
        refused()
    } else if error.is_timeout()
        || in_chain(&error, |e| {
            e.downcast_ref::<LookupError>()
                .is_some_and(LookupError::is_timeout)
        })
    {
        failed(TIMED_OUT)
    } else if error.is_connect() {
        failed("connection failed")
    } else {
        failed("request failed")
    }
}

/// Whether [`GuardedResolver`] refused the connection (a [`ForbiddenAddress`] anywhere in the
/// chain: reqwest and hyper-util wrap it in several layers).
fn is_refusal(error: &(dyn StdError + 'static)) -> bool {
    in_chain(error, |e| e.is::<ForbiddenAddress>())
}

fn in_chain(
    error: &(dyn StdError + 'static),
    matches: impl Fn(&(dyn StdError + 'static)) -> bool,
) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if matches(error) {
            return true;
        }
        current = error.source();
    }
    false
}

/// An error and its sources on one line, for the log.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

fn log_outcome(outcome: &SendOutcome) {
    match outcome {
        SendOutcome::Answered { status } => tracing::debug!(status, "webhook delivery answered"),
        SendOutcome::Refused { reason } => {
            tracing::warn!(reason, "webhook delivery refused by the SSRF policy");
        }
        SendOutcome::Failed { reason } => tracing::debug!(reason, "webhook delivery failed"),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it, which only a broken clock is).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use bulwark_domain::webhook::WebhookEvent;
    use secrecy::SecretSlice;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use uuid::Uuid;

    use super::*;
    use crate::webhook_signature::verify;

    const SECRET: &[u8] = b"whsec-test-secret-of-enough-length";
    const BODY: &[u8] =
        br#"{"event":"document.updated","document":{"id":"0b5e","title":"Caf\u00e9"}}"#;
    const CAP: usize = 1024;

    /// One request as a receiver saw it.
    #[derive(Debug, Clone)]
    struct Received {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// What a receiver does once it has read a request.
    enum Reply {
        /// Writes these bytes and closes the connection.
        Respond(Vec<u8>),
        /// Holds the connection open and never answers.
        Silent,
    }

    /// A tiny HTTP/1.1 receiver on 127.0.0.1 that records every connection and request.
    struct Receiver {
        port: u16,
        connections: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<Received>>>,
    }

    impl Receiver {
        async fn start(reply: Reply) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let connections = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let reply = Arc::new(reply);
            let (counter, log) = (connections.clone(), requests.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(stream, reply.clone(), log.clone()));
                }
            });
            Self {
                port,
                connections,
                requests,
            }
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        fn requests(&self) -> Vec<Received> {
            self.requests.lock().unwrap().clone()
        }
    }

    async fn serve(mut stream: TcpStream, reply: Arc<Reply>, log: Arc<Mutex<Vec<Received>>>) {
        let Some(received) = read_request(&mut stream).await else {
            return;
        };
        log.lock().unwrap().push(received);
        match &*reply {
            Reply::Respond(bytes) => {
                // The client may hang up early (the size cap): not the receiver's problem.
                let _ = stream.write_all(bytes).await;
                let _ = stream.shutdown().await;
            }
            // The runtime drops this task, and the socket, when the test ends.
            Reply::Silent => std::future::pending::<()>().await,
        }
    }

    async fn read_request(stream: &mut TcpStream) -> Option<Received> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buffer[head_end + 4..].to_vec();
        while body.len() < length {
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..read]);
        }
        Some(Received {
            request_line,
            headers,
            body,
        })
    }

    fn response(status_line: &str, extra_headers: &str, body: &[u8]) -> Reply {
        let mut bytes =
            format!("HTTP/1.1 {status_line}\r\n{extra_headers}Connection: close\r\n\r\n")
                .into_bytes();
        bytes.extend_from_slice(body);
        Reply::Respond(bytes)
    }

    fn ok() -> Reply {
        response("200 OK", "Content-Length: 2\r\n", b"ok")
    }

    fn v4(raw: &str) -> IpAddr {
        IpAddr::V4(raw.parse().unwrap())
    }

    fn v6(raw: &str) -> IpAddr {
        IpAddr::V6(raw.parse().unwrap())
    }

    fn network(allow_loopback: bool, answers: &[(&str, Vec<IpAddr>)]) -> TestNetwork {
        let hosts = StaticHosts::default();
        for (name, addresses) in answers {
            hosts.set(name, addresses.clone());
        }
        TestNetwork {
            allow_loopback,
            hosts,
        }
    }

    fn transport_with(network: TestNetwork, timeout: Duration) -> GuardedTransport {
        GuardedTransport::new(TransportSettings {
            connect_timeout: timeout,
            total_timeout: timeout,
            max_response_bytes: CAP,
            user_agent: "Bulwark-Webhooks/test".to_owned(),
            test_network: Some(network),
        })
        .unwrap()
    }

    fn transport(network: TestNetwork) -> GuardedTransport {
        transport_with(network, Duration::from_secs(5))
    }

    /// A transport whose static DNS says `receiver.test` is 127.0.0.1, with loopback exempt.
    fn loopback_transport() -> GuardedTransport {
        transport(network(true, &[("receiver.test", vec![v4("127.0.0.1")])]))
    }

    fn url(raw: &str) -> WebhookUrl {
        WebhookUrl::parse(raw, true).unwrap()
    }

    async fn deliver(transport: &GuardedTransport, url: &WebhookUrl, id: Uuid) -> SendOutcome {
        let secret = SecretSlice::from(SECRET.to_vec());
        transport
            .send(OutboundDelivery {
                delivery_id: id,
                event: WebhookEvent::DocumentUpdated,
                url,
                body: BODY,
                secret: &secret,
            })
            .await
    }

    fn failed_with(reason: &str) -> SendOutcome {
        SendOutcome::Failed {
            reason: reason.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_delivery_arrives_as_a_signed_post_of_the_exact_body_with_its_headers() {
        let receiver = Receiver::start(ok()).await;
        let transport = loopback_transport();
        let id = Uuid::new_v4();

        let outcome = deliver(
            &transport,
            &url(&format!("http://receiver.test:{}/hook", receiver.port)),
            id,
        )
        .await;

        assert_eq!(outcome, SendOutcome::Answered { status: 200 });
        let requests = receiver.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.request_line, "POST /hook HTTP/1.1");
        assert_eq!(request.body, BODY);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("bulwark-delivery"),
            Some(id.to_string().as_str())
        );
        assert_eq!(request.header("bulwark-event"), Some("document.updated"));
        assert_eq!(request.header("user-agent"), Some("Bulwark-Webhooks/test"));
        assert_eq!(
            request.header("host"),
            Some(format!("receiver.test:{}", receiver.port).as_str())
        );
        let signature = request.header(SIGNATURE_HEADER).unwrap();
        assert!(verify(SECRET, signature, &request.body, unix_now(), 60));
        assert!(!verify(
            b"another-secret",
            signature,
            &request.body,
            unix_now(),
            60
        ));
        // Nothing that leaks where the request came from.
        assert_eq!(request.header("referer"), None);
    }

    #[tokio::test]
    async fn a_redirect_is_reported_as_the_answer_and_never_followed() {
        let elsewhere = Receiver::start(ok()).await;
        let location = format!("Location: http://receiver.test:{}/\r\n", elsewhere.port);
        let redirecting = Receiver::start(response(
            "302 Found",
            &(location + "Content-Length: 0\r\n"),
            b"",
        ))
        .await;
        let transport = loopback_transport();

        let outcome = deliver(
            &transport,
            &url(&format!("http://receiver.test:{}/hook", redirecting.port)),
            Uuid::new_v4(),
        )
        .await;

        assert_eq!(outcome, SendOutcome::Answered { status: 302 });
        assert_eq!(redirecting.requests().len(), 1);
        assert_eq!(elsewhere.connections(), 0);
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_without_the_exemption_and_nothing_connects() {
        let receiver = Receiver::start(ok()).await;
        let transport = transport(network(false, &[("rebind.test", vec![v4("127.0.0.1")])]));
        let target = url(&format!("http://rebind.test:{}/hook", receiver.port));

        let vetted = transport.vet(&target).await;
        let outcome = deliver(&transport, &target, Uuid::new_v4()).await;

        assert_eq!(vetted.unwrap_err().code, "forbidden_address");
        assert!(
            matches!(outcome, SendOutcome::Refused { .. }),
            "{outcome:?}"
        );
        assert_eq!(receiver.connections(), 0);
    }

    #[tokio::test]
    async fn a_name_with_one_public_and_one_private_address_is_refused() {
        let transport = transport(network(
            false,
            &[("mixed.test", vec![v4("93.184.215.14"), v4("10.0.0.1")])],
        ));

        let violation = transport
            .vet(&url("https://mixed.test/hook"))
            .await
            .unwrap_err();

        assert_eq!(violation.field, "url");
        assert_eq!(violation.code, "forbidden_address");
        assert!(!violation.message.contains("10.0.0.1"));
    }

    #[tokio::test]
    async fn vet_accepts_a_public_answer_and_checks_ip_literals_without_resolving() {
        let transport = transport(network(
            false,
            &[(
                "public.test",
                vec![v4("93.184.215.14"), v6("2606:4700::1111")],
            )],
        ));

        assert_eq!(
            transport.vet(&url("https://public.test/hook")).await,
            Ok(())
        );
        assert_eq!(
            transport.vet(&url("https://93.184.215.14/hook")).await,
            Ok(())
        );
        assert_eq!(
            transport.vet(&url("https://[2606:4700::1111]/")).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_name_rebound_to_loopback_after_registration_is_refused_at_delivery() {
        let receiver = Receiver::start(ok()).await;
        let network = network(false, &[("rebind.test", vec![v4("93.184.215.14")])]);
        let hosts = network.hosts.clone();
        let transport = transport(network);
        let target = url(&format!("http://rebind.test:{}/hook", receiver.port));
        assert_eq!(transport.vet(&target).await, Ok(()));

        hosts.set("REBIND.test", vec![v4("127.0.0.1")]);
        let outcome = deliver(&transport, &target, Uuid::new_v4()).await;

        assert!(
            matches!(outcome, SendOutcome::Refused { .. }),
            "{outcome:?}"
        );
        assert_eq!(receiver.connections(), 0);
    }

    #[test]
    fn the_loopback_exemption_covers_loopback_and_nothing_else() {
        let exempting = GuardedResolver::new(&TransportSettings {
            test_network: Some(network(true, &[])),
            ..TransportSettings::default()
        });
        let strict = GuardedResolver::new(&TransportSettings::default());

        for loopback in [
            vec![v4("127.0.0.1")],
            vec![v4("127.1.2.3")],
            vec![v6("::1")],
        ] {
            assert_eq!(exempting.check(&loopback), Ok(()), "{loopback:?}");
            assert!(strict.check(&loopback).is_err(), "{loopback:?}");
        }
        for refused in [
            vec![v4("127.0.0.1"), v4("10.0.0.1")],
            vec![v4("169.254.169.254")],
            vec![v6("::ffff:127.0.0.1")],
            vec![v4("0.0.0.0")],
            vec![v6("::")],
        ] {
            assert_eq!(
                exempting.check(&refused).map_err(|v| v.code),
                Err("forbidden_address"),
                "{refused:?}"
            );
        }
        assert_eq!(
            exempting.check(&[]).map_err(|v| v.code),
            Err("unresolvable")
        );
    }

    #[tokio::test]
    async fn the_resolver_returns_only_checked_addresses_with_port_zero() {
        let resolver = GuardedResolver::new(&TransportSettings {
            test_network: Some(network(
                false,
                &[(
                    "public.test",
                    vec![v4("93.184.215.14"), v6("2606:4700::1111")],
                )],
            )),
            ..TransportSettings::default()
        });

        let addresses: Vec<SocketAddr> =
            Resolve::resolve(&resolver, "public.test".parse().unwrap())
                .await
                .unwrap()
                .collect();

        assert_eq!(
            addresses,
            vec![
                SocketAddr::new(v4("93.184.215.14"), 0),
                SocketAddr::new(v6("2606:4700::1111"), 0)
            ]
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_forbidden_answer_with_an_error_recognised_as_a_refusal() {
        let resolver = GuardedResolver::new(&TransportSettings {
            test_network: Some(network(
                false,
                &[(
                    "rebind.test",
                    vec![v4("93.184.215.14"), v4("169.254.169.254")],
                )],
            )),
            ..TransportSettings::default()
        });

        let Err(error) = Resolve::resolve(&resolver, "rebind.test".parse().unwrap()).await else {
            panic!("a forbidden answer was handed to the client");
        };

        assert!(is_refusal(&*error));
        assert!(!error.to_string().contains("169.254"));
    }

    #[tokio::test]
    async fn the_clients_own_resolver_refuses_at_connect_time_without_the_pre_check() {
        // What happens when a name rebinds between the pre-check and the connection: the request
        // goes straight to the transport's client, past `pre_check`.
        let receiver = Receiver::start(ok()).await;
        let transport = transport(network(false, &[("rebind.test", vec![v4("127.0.0.1")])]));

        let error = transport
            .client
            .post(format!("http://rebind.test:{}/hook", receiver.port))
            .send()
            .await
            .unwrap_err();

        assert!(is_refusal(&error), "{}", Chain(&error));
        assert!(matches!(classify(error), SendOutcome::Refused { .. }));
        assert_eq!(receiver.connections(), 0);
    }

    #[tokio::test]
    async fn a_response_over_the_cap_fails_whether_or_not_its_length_is_declared() {
        let big = vec![b'a'; CAP + 1];
        let declared = Receiver::start(response(
            "200 OK",
            &format!("Content-Length: {}\r\n", big.len()),
            &big,
        ))
        .await;
        // No Content-Length: the body runs until the receiver closes the connection.
        let undeclared = Receiver::start(response("200 OK", "", &big)).await;
        let at_cap = Receiver::start(response("200 OK", "", &big[..CAP])).await;
        let transport = loopback_transport();
        let to = |port: u16| url(&format!("http://receiver.test:{port}/hook"));

        let expected = failed_with(&format!("the response exceeded {CAP} bytes"));
        assert_eq!(
            deliver(&transport, &to(declared.port), Uuid::new_v4()).await,
            expected
        );
        assert_eq!(
            deliver(&transport, &to(undeclared.port), Uuid::new_v4()).await,
            expected
        );
        assert_eq!(
            deliver(&transport, &to(at_cap.port), Uuid::new_v4()).await,
            SendOutcome::Answered { status: 200 }
        );
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_times_out() {
        let receiver = Receiver::start(Reply::Silent).await;
        let transport = transport_with(
            network(true, &[("receiver.test", vec![v4("127.0.0.1")])]),
            Duration::from_millis(300),
        );
        let started = Instant::now();

        let outcome = deliver(
            &transport,
            &url(&format!("http://receiver.test:{}/hook", receiver.port)),
            Uuid::new_v4(),
        )
        .await;

        assert_eq!(outcome, failed_with("timed out"));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(receiver.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_closed_port_fails_to_connect_and_the_reason_never_echoes_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let transport = loopback_transport();

        let outcome = deliver(
            &transport,
            &url(&format!(
                "http://receiver.test:{port}/services/s3cr3t-capability"
            )),
            Uuid::new_v4(),
        )
        .await;

        assert_eq!(outcome, failed_with("connection failed"));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_unresolvable() {
        // `.invalid` never resolves (RFC 6761); an empty static answer stands for NXDOMAIN.
        let transport = transport_with(
            network(false, &[("gone.test", vec![])]),
            Duration::from_secs(2),
        );

        for target in ["https://nonexistent.invalid/hook", "https://gone.test/hook"] {
            let target = url(target);
            let violation = transport.vet(&target).await.unwrap_err();
            assert_eq!((violation.field, violation.code), ("url", "unresolvable"));
            let outcome = deliver(&transport, &target, Uuid::new_v4()).await;
            assert!(matches!(outcome, SendOutcome::Failed { .. }), "{outcome:?}");
        }
    }

    #[test]
    fn debug_output_reveals_neither_the_secret_nor_the_url_path() {
        let transport = loopback_transport();
        let secret = SecretSlice::from(SECRET.to_vec());
        let target = url("https://hooks.example.com/services/s3cr3t-capability");
        let delivery = OutboundDelivery {
            delivery_id: Uuid::new_v4(),
            event: WebhookEvent::DocumentShared,
            url: &target,
            body: BODY,
            secret: &secret,
        };

        let printed = format!("{transport:?} {delivery:?}");

        let secret_text = String::from_utf8(SECRET.to_vec()).unwrap();
        assert!(!printed.contains(&secret_text), "{printed}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("GuardedTransport"), "{printed}");
    }

    #[test]
    fn static_hosts_are_case_insensitive_and_shared_between_clones() {
        let hosts = StaticHosts::default();
        let clone = hosts.clone();

        hosts.set("Receiver.TEST", vec![v4("127.0.0.1")]);

        assert_eq!(clone.get("receiver.test"), Some(vec![v4("127.0.0.1")]));
        assert_eq!(clone.get("other.test"), None);
    }
}
