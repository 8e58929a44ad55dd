//! The protocol driven through in-memory channels, with tokio's clock paused: a test that waits
//! "ten seconds" waits for nothing, and the instants it observes are exact.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bulwark_domain::context::Credential;
use bulwark_domain::user::Role;
use bulwark_web::connections::ConnectionCounter;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::*;

/// The one token the fake gate accepts.
const GOOD_TOKEN: &str = "good";

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

/// The GraphQL errors the fake operations answer a `"query": "refuse"` with.
fn refused() -> Value {
    json!([{ "message": "refused", "extensions": { "code": "BAD_USER_INPUT" } }])
}

/// When the tokens the fake gate accepts expire, as of the moment it accepts one.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// This long after authentication.
    In(Duration),
    /// This long before authentication: already expired.
    Ago(Duration),
}

/// A gatekeeper whose answers the test sets, and which counts the questions it is asked. Its
/// permits come from a real [`ConnectionCounter`].
#[derive(Debug)]
struct FakeGate {
    live: AtomicBool,
    tokens_seen: Mutex<Vec<String>>,
    expiry: Mutex<Expiry>,
    connections: ConnectionCounter,
    still_live_calls: AtomicUsize,
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
            tokens_seen: Mutex::new(Vec::new()),
            // Longer than any test runs, so that only the tests about expiry see one.
            expiry: Mutex::new(Expiry::In(Duration::from_secs(3600))),
            connections: ConnectionCounter::new(max_per_user),
            still_live_calls: AtomicUsize::new(0),
            quota_left: AtomicUsize::new(usize::MAX),
            admit_calls: AtomicUsize::new(0),
        })
    }

    fn expire(&self, expiry: Expiry) {
        *self.expiry.lock().unwrap() = expiry;
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

    fn admit_calls(&self) -> usize {
        self.admit_calls.load(Ordering::SeqCst)
    }

    /// The sockets `the_actor()` holds a permit for now.
    fn open_connections(&self) -> usize {
        self.connections.open_for(the_actor().user_id)
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
}

/// Operations the test runs by hand: `"query": "refuse"` is refused before it runs; any other
/// query runs until the test drops its feed (see [`FakeOperations::feed`]), and yields what the
/// test pushes into that feed.
#[derive(Debug, Default)]
struct FakeOperations {
    payloads: Mutex<Vec<Value>>,
    feeds: Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>,
}

impl FakeOperations {
    fn start_calls(&self) -> usize {
        self.payloads.lock().unwrap().len()
    }

    fn payloads(&self) -> Vec<Value> {
        self.payloads.lock().unwrap().clone()
    }

    /// The feed of the operation last started with `query`, taken: what is sent into it is a
    /// result, and dropping it completes the operation.
    fn feed(&self, query: &str) -> mpsc::UnboundedSender<Value> {
        self.feeds
            .lock()
            .unwrap()
            .remove(query)
            .unwrap_or_else(|| panic!("no operation started with {query:?}"))
    }
}

impl Operations for FakeOperations {
    fn start(&self, actor: &Actor, payload: Value) -> Result<BoxStream<'static, Value>, Value> {
        assert_eq!(*actor, the_actor());
        self.payloads.lock().unwrap().push(payload.clone());
        let query = payload["query"].as_str().unwrap_or_default().to_owned();
        if query == "refuse" {
            return Err(refused());
        }
        let (feed, results) = mpsc::unbounded_channel::<Value>();
        self.feeds.lock().unwrap().insert(query, feed);
        Ok(
            futures_util::stream::unfold(results, |mut results| async move {
                results.recv().await.map(|result| (result, results))
            })
            .boxed(),
        )
    }
}

/// Lets the server task run until it waits for something (no clock moves meanwhile).
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Whether the operation behind `feed` was dropped, at the latest once the server has nothing
/// left to do (the paused clock then moves a millisecond and the answer is no).
async fn dropped(feed: &mpsc::UnboundedSender<Value>) -> bool {
    tokio::time::timeout(Duration::from_millis(1), feed.closed())
        .await
        .is_ok()
}

/// `elapsed` is `expected`, or at most a little less. The gate reads the wall clock to set the
/// expiry and `serve` reads it again to turn it into a timer; the paused tokio clock does not move
/// in between but the wall clock does, by microseconds, so the timer may fire that much early —
/// never late.
fn assert_about(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed <= expected && expected - elapsed < Duration::from_millis(10),
        "{elapsed:?} is not {expected:?}"
    );
}

fn init_with(authorization: &str) -> Value {
    json!({ "type": "connection_init", "payload": { "authorization": authorization } })
}

fn next(id: &str, payload: &Value) -> Value {
    json!({ "id": id, "type": "next", "payload": payload })
}

fn completed(id: &str) -> Value {
    json!({ "id": id, "type": "complete" })
}

/// The client end of a connection whose server end runs [`serve`] in a task.
struct Client {
    to_server: mpsc::UnboundedSender<Inbound>,
    from_server: mpsc::UnboundedReceiver<Outbound>,
    gate: Arc<FakeGate>,
    operations: Arc<FakeOperations>,
    server: JoinHandle<Option<Actor>>,
}

impl Client {
    fn connect() -> Self {
        Self::connect_with(Settings::default())
    }

    fn connect_with(settings: Settings) -> Self {
        Self::connect_to(FakeGate::new(), settings)
    }

    /// A connection through a gate shared with others (to count their sockets together).
    fn connect_to(gate: Arc<FakeGate>, settings: Settings) -> Self {
        let (to_server, inbound) = mpsc::unbounded_channel::<Inbound>();
        let (outbound, from_server) = mpsc::unbounded_channel::<Outbound>();
        let inbound = Box::pin(futures_util::stream::unfold(inbound, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        }));
        let outbound = Box::pin(futures_util::sink::unfold(
            outbound,
            |tx, frame: Outbound| async move { tx.send(frame).map(|()| tx) },
        ));
        let operations = Arc::new(FakeOperations::default());
        let (server_gate, server_operations) = (Arc::clone(&gate), Arc::clone(&operations));
        let server = tokio::spawn(async move {
            serve(
                inbound,
                outbound,
                &*server_gate,
                &*server_operations,
                &settings,
            )
            .await
        });
        Self {
            to_server,
            from_server,
            gate,
            operations,
            server,
        }
    }

    async fn acknowledged() -> Self {
        Self::acknowledged_with(Settings::default()).await
    }

    async fn acknowledged_with(settings: Settings) -> Self {
        let mut client = Self::connect_with(settings);
        client.init().await;
        client
    }

    /// Acknowledged through a gate shared with other connections.
    async fn acknowledged_through(gate: Arc<FakeGate>) -> Self {
        let mut client = Self::connect_to(gate, Settings::default());
        client.init().await;
        client
    }

    /// `connection_init` with the good token, answered with `connection_ack`.
    async fn init(&mut self) {
        self.send_json(&init_with(&format!("Bearer {GOOD_TOKEN}")));
        assert_eq!(self.next_json().await, json!({ "type": "connection_ack" }));
    }

    fn send(&self, frame: Inbound) {
        self.to_server.send(frame).unwrap();
    }

    fn send_json(&self, message: &Value) {
        self.send(Inbound::Text(message.to_string()));
    }

    fn subscribe(&self, id: &str, query: &str) {
        self.send_json(&json!({ "id": id, "type": "subscribe", "payload": { "query": query } }));
    }

    fn complete(&self, id: &str) {
        self.send_json(&json!({ "id": id, "type": "complete" }));
    }

    /// Subscribes, waits until the server has handled it, and returns the operation's feed.
    async fn start(&mut self, id: &str, query: &str) -> mpsc::UnboundedSender<Value> {
        let calls = self.operations.start_calls();
        self.subscribe(id, query);
        self.assert_still_open().await;
        assert_eq!(
            self.operations.start_calls(),
            calls + 1,
            "{id} was not started"
        );
        self.operations.feed(query)
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

    /// Asserts that the connection is still open and has nothing queued: a ping sent now is the
    /// very next thing answered (inbound frames are handled in order, so everything sent before
    /// it was handled too).
    async fn assert_still_open(&mut self) {
        self.send(Inbound::Ping(b"still there?".to_vec()));
        assert_eq!(self.next().await, Outbound::Pong(b"still there?".to_vec()));
    }

    /// Asserts that the server has sent nothing (and not ended) by the time it waits.
    async fn assert_nothing_sent(&mut self) {
        settle().await;
        assert_eq!(self.from_server.try_recv(), Err(TryRecvError::Empty));
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

// --- The conversation ----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_acknowledged_subscription_delivers_its_results_then_its_completion() {
    let mut client = Client::connect();
    client.send_json(&json!({
        "type": "connection_init",
        "payload": { "authorization": "Bearer good" },
    }));
    assert_eq!(
        client.next_json().await,
        json!({ "type": "connection_ack" })
    );
    assert_eq!(client.gate.tokens_seen(), [GOOD_TOKEN]);

    let subscription = json!({
        "query": "subscription { documentChanged(id: \"d\") { kind version } }",
        "variables": { "id": "d" },
    });
    client.send_json(&json!({ "id": "1", "type": "subscribe", "payload": subscription }));
    client.assert_still_open().await;
    assert_eq!(
        client.operations.payloads(),
        std::slice::from_ref(&subscription)
    );
    let feed = client
        .operations
        .feed("subscription { documentChanged(id: \"d\") { kind version } }");

    let first = json!({ "data": { "documentChanged": { "kind": "UPDATED", "version": 2 } } });
    let second = json!({ "data": null, "errors": [{ "message": "gone" }] });
    feed.send(first.clone()).unwrap();
    feed.send(second.clone()).unwrap();
    assert_eq!(
        client.next_json().await,
        json!({ "id": "1", "type": "next", "payload": first })
    );
    assert_eq!(client.next_json().await, next("1", &second));

    drop(feed);
    assert_eq!(
        client.next_json().await,
        json!({ "id": "1", "type": "complete" })
    );

    client.assert_still_open().await;
    client.send(Inbound::Close);
    assert_eq!(client.expect_end().await, Some(the_actor()));
}

#[tokio::test(start_paused = true)]
async fn a_json_ping_after_the_ack_is_answered_with_a_json_pong_and_a_pong_with_nothing() {
    let mut client = Client::acknowledged().await;

    client.send_json(&json!({ "type": "pong" }));
    client.send_json(&json!({ "type": "pong", "payload": { "x": 1 } }));
    client.send_json(&json!({ "type": "ping", "payload": { "x": 1 } }));

    assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    client.assert_still_open().await;
}

// --- Initialisation -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn no_connection_init_within_ten_seconds_closes_with_4408_not_a_millisecond_sooner() {
    let start = Instant::now();
    let mut client = Client::connect();
    settle().await;

    tokio::time::advance(Duration::from_millis(9_999)).await;
    client.assert_nothing_sent().await;
    assert!(!client.server.is_finished());

    tokio::time::advance(Duration::from_millis(1)).await;
    let who = client
        .expect_close(close::INIT_TIMEOUT, "Connection initialisation timeout")
        .await;

    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(who, None);
}

#[tokio::test(start_paused = true)]
async fn pings_before_init_are_answered_but_the_init_timer_runs_from_the_start() {
    let start = Instant::now();
    let mut client = Client::connect();

    tokio::time::sleep(Duration::from_secs(5)).await;
    client.send_json(&json!({ "type": "ping" }));
    assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    client.send_json(&json!({ "type": "ping", "payload": { "at": 5 } }));
    assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.send_json(&json!({ "type": "pong" }));
    client.send(Inbound::Pong(b"p".to_vec()));
    client.send(Inbound::Ping(b"p".to_vec()));
    assert_eq!(client.next().await, Outbound::Pong(b"p".to_vec()));

    let who = client
        .expect_close(close::INIT_TIMEOUT, "Connection initialisation timeout")
        .await;

    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(who, None);
}

#[tokio::test(start_paused = true)]
async fn a_token_the_gate_refuses_closes_with_4403() {
    let client = Client::connect();
    let gate = Arc::clone(&client.gate);
    client.send_json(&init_with("Bearer forged"));

    let who = client.expect_close(close::FORBIDDEN, "Forbidden").await;

    assert_eq!(who, None);
    assert_eq!(gate.tokens_seen(), ["forged"]);
    assert_eq!(gate.admit_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_malformed_credential_closes_with_4403_without_asking_the_gate() {
    let inits = [
        json!({ "type": "connection_init" }),
        json!({ "type": "connection_init", "payload": null }),
        json!({ "type": "connection_init", "payload": {} }),
        json!({ "type": "connection_init", "payload": { "authorization": null } }),
        json!({ "type": "connection_init", "payload": { "token": GOOD_TOKEN } }),
        init_with("Basic x"),
        init_with("Bearer "),
        init_with("Bearer    "),
        init_with("Bearer"),
        init_with(GOOD_TOKEN),
        init_with(""),
    ];
    for init in inits {
        let client = Client::connect();
        let gate = Arc::clone(&client.gate);
        client.send_json(&init);

        let who = client.expect_close(close::FORBIDDEN, "Forbidden").await;

        assert_eq!(who, None, "{init}");
        assert!(gate.tokens_seen().is_empty(), "{init}");
        assert_eq!(gate.admit_calls(), 0, "{init}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_bearer_scheme_is_case_insensitive_and_the_token_trimmed() {
    for authorization in ["bearer good", "BEARER good", "Bearer  good ", "bEaReR good"] {
        let mut client = Client::connect();
        client.send_json(&init_with(authorization));

        assert_eq!(
            client.next_json().await,
            json!({ "type": "connection_ack" }),
            "{authorization}"
        );
        assert_eq!(client.gate.tokens_seen(), [GOOD_TOKEN], "{authorization}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_already_expired_closes_with_4403_before_the_ack_and_takes_no_place() {
    let start = Instant::now();
    let gate = FakeGate::new();
    gate.expire(Expiry::Ago(Duration::from_secs(1)));
    let client = Client::connect_to(Arc::clone(&gate), Settings::default());
    client.send_json(&init_with("Bearer good"));

    // The close frame is the very next frame: no `connection_ack` before it.
    let who = client.expect_close(close::FORBIDDEN, "Session ended").await;

    assert_eq!(who, Some(the_actor()));
    assert_eq!(gate.tokens_seen(), [GOOD_TOKEN]);
    assert_eq!(gate.admit_calls(), 0);
    assert_eq!(gate.open_connections(), 0);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_second_connection_init_closes_with_4429_and_its_token_is_never_looked_at() {
    let client = Client::acknowledged().await;
    let gate = Arc::clone(&client.gate);

    client.send_json(&init_with("Bearer someone-elses"));

    let who = client
        .expect_close(close::TOO_MANY, "Too many initialisation requests")
        .await;
    assert_eq!(who, Some(the_actor()));
    assert_eq!(gate.tokens_seen(), [GOOD_TOKEN]);
    assert_eq!(gate.open_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn subscribe_or_complete_before_the_ack_closes_with_4401_and_starts_nothing() {
    let messages = [
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "q" } }),
        json!({ "id": "1", "type": "complete" }),
    ];
    for message in messages {
        let client = Client::connect();
        let (gate, operations) = (Arc::clone(&client.gate), Arc::clone(&client.operations));
        client.send_json(&message);
        // Too late: the connection is over before this is read.
        let _ = client.to_server.send(Inbound::Text(
            init_with(&format!("Bearer {GOOD_TOKEN}")).to_string(),
        ));

        let who = client
            .expect_close(close::UNAUTHORIZED, "Unauthorized")
            .await;

        assert_eq!(who, None, "{message}");
        assert_eq!(operations.start_calls(), 0, "{message}");
        assert!(gate.tokens_seen().is_empty(), "{message}");
    }
}

// --- Operations -----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_subscribe_reusing_the_id_of_a_running_operation_closes_with_4409() {
    let mut client = Client::acknowledged().await;
    let _feed = client.start("1", "q1").await;

    client.subscribe("1", "q2");

    let operations = Arc::clone(&client.operations);
    client
        .expect_close(close::DUPLICATE_ID, "Subscriber for 1 already exists")
        .await;
    assert_eq!(operations.start_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_id_may_be_reused_once_its_operation_completed_either_way() {
    let mut client = Client::acknowledged().await;

    // Completed by the server.
    let feed = client.start("1", "q1").await;
    drop(feed);
    assert_eq!(client.next_json().await, completed("1"));

    // Completed by the client.
    let feed = client.start("1", "q2").await;
    feed.send(json!(2)).unwrap();
    assert_eq!(client.next_json().await, next("1", &json!(2)));
    client.complete("1");
    client.assert_still_open().await;

    let reused = client.start("1", "q3").await;
    assert!(
        dropped(&feed).await,
        "the operation the client completed is gone"
    );
    // The end of the completed "1" neither completes nor unregisters the new "1".
    reused.send(json!(3)).unwrap();
    assert_eq!(client.next_json().await, next("1", &json!(3)));
    assert_eq!(client.operations.start_calls(), 3);

    client.subscribe("1", "q4");
    client
        .expect_close(close::DUPLICATE_ID, "Subscriber for 1 already exists")
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_end_of_an_operation_the_client_completed_does_not_end_its_successor() {
    let mut client = Client::acknowledged().await;
    let mut previous = client.start("1", "q0").await;

    // `complete` and the `subscribe` reusing its id arrive together, so the server often starts
    // the new "1" before it sees the end of the old one; that end must not touch the new one.
    // (Which comes first is the `select!`'s random pick: ten rounds make a miss unlikely.)
    for n in 1..=10 {
        tokio::time::advance(Duration::from_secs(1)).await;
        let query = format!("q{n}");
        client.complete("1");
        client.subscribe("1", &query);
        // A `complete` for "1" would come before the pong.
        client.assert_still_open().await;
        let current = client.operations.feed(&query);
        assert!(dropped(&previous).await, "round {n}");
        current.send(json!(n)).unwrap();
        assert_eq!(client.next_json().await, next("1", &json!(n)), "round {n}");
        previous = current;
    }
    assert_eq!(client.operations.start_calls(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_client_complete_stops_the_operation_and_owes_no_complete() {
    let mut client = Client::acknowledged().await;
    let stopped = client.start("1", "q1").await;
    let kept = client.start("2", "q2").await;
    stopped.send(json!("before")).unwrap();
    assert_eq!(client.next_json().await, next("1", &json!("before")));

    client.complete("1");

    assert!(dropped(&stopped).await, "the operation's stream is dropped");
    assert!(stopped.send(json!("after")).is_err(), "nothing can follow");
    // Had a `next` or a `complete` for "1" been sent, it would come before this.
    kept.send(json!("other")).unwrap();
    assert_eq!(client.next_json().await, next("2", &json!("other")));
    client.assert_still_open().await;

    // Completing it again, or an id never used, is nothing.
    client.complete("1");
    client.complete("never");
    client.assert_still_open().await;
    assert!(!kept.is_closed());
}

#[tokio::test(start_paused = true)]
async fn the_operation_cap_refuses_one_more_with_rate_limited_and_frees_up_as_they_end() {
    let settings = Settings {
        max_subscriptions: 2,
        ..Settings::default()
    };
    let mut client = Client::acknowledged_with(settings).await;
    let first = client.start("1", "q1").await;
    let second = client.start("2", "q2").await;

    client.subscribe("3", "q3");
    assert_eq!(
        client.next_json().await,
        json!({
            "id": "3",
            "type": "error",
            "payload": [{
                "message": "At most 2 operations run at once on one connection.",
                "extensions": { "code": "RATE_LIMITED" },
            }],
        })
    );
    assert_eq!(client.operations.start_calls(), 2, "q3 cost nothing");

    // The client completing one makes room, and the refused id is free.
    client.complete("1");
    let third = client.start("3", "q3").await;
    assert!(dropped(&first).await);
    third.send(json!(3)).unwrap();
    assert_eq!(client.next_json().await, next("3", &json!(3)));

    // Full again; the server completing one makes room too.
    client.subscribe("4", "q4");
    assert_eq!(client.next_json().await["type"], "error");
    drop(second);
    assert_eq!(client.next_json().await, completed("2"));
    let _fourth = client.start("4", "q4").await;
    assert_eq!(client.operations.start_calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_refused_operation_gets_an_error_and_the_connection_stays_usable() {
    let mut client = Client::acknowledged().await;

    client.subscribe("x", "refuse");

    assert_eq!(
        client.next_json().await,
        json!({
            "id": "x",
            "type": "error",
            "payload": [{ "message": "refused", "extensions": { "code": "BAD_USER_INPUT" } }],
        })
    );
    assert_eq!(client.operations.payloads(), [json!({ "query": "refuse" })]);
    // The refused operation holds neither its id nor a place.
    let feed = client.start("x", "q1").await;
    feed.send(json!({ "data": 1 })).unwrap();
    assert_eq!(client.next_json().await, next("x", &json!({ "data": 1 })));
}

#[tokio::test(start_paused = true)]
async fn over_the_daily_quota_an_operation_gets_quota_exceeded_and_never_starts() {
    let mut client = Client::acknowledged().await;
    client.gate.quota_left.store(1, Ordering::SeqCst);
    let feed = client.start("a", "q1").await;

    client.subscribe("b", "q2");

    assert_eq!(
        client.next_json().await,
        json!({
            "id": "b",
            "type": "error",
            "payload": [{
                "message": "Your plan's requests for today are used up; they renew at midnight UTC.",
                "extensions": { "code": "QUOTA_EXCEEDED", "retryAfter": 3600 },
            }],
        })
    );
    assert_eq!(
        client.operations.payloads(),
        [json!({ "query": "q1" })],
        "the refused operation was never started"
    );
    // The running one is untouched, and the connection stays.
    feed.send(json!({ "data": 1 })).unwrap();
    assert_eq!(client.next_json().await, next("a", &json!({ "data": 1 })));
}

#[tokio::test(start_paused = true)]
async fn an_id_of_64_bytes_is_accepted() {
    let mut client = Client::acknowledged().await;
    let id = "i".repeat(64);

    let feed = client.start(&id, "q1").await;
    feed.send(json!(1)).unwrap();

    assert_eq!(client.next_json().await, next(&id, &json!(1)));
}

// --- Messages and frames --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_message_not_of_the_protocol_after_the_ack_closes_with_4400() {
    let subscribe =
        |id: Value| json!({ "id": id, "type": "subscribe", "payload": { "query": "q" } });
    let frames = [
        Inbound::Text("not json".to_owned()),
        Inbound::Text(String::new()),
        Inbound::Text(json!(["subscribe"]).to_string()),
        Inbound::Text(json!({ "type": "shout" }).to_string()),
        Inbound::Text(json!({ "type": "connection_ack" }).to_string()),
        Inbound::Text(json!({ "id": "1", "type": "next", "payload": {} }).to_string()),
        Inbound::Text(json!({ "id": "1", "payload": { "query": "q" } }).to_string()),
        Inbound::Text(json!({ "type": "ping", "extra": 1 }).to_string()),
        Inbound::Text(json!({ "id": "1", "type": "complete", "extra": 1 }).to_string()),
        Inbound::Text(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": "q" }, "extra": 1 })
                .to_string(),
        ),
        Inbound::Text(json!({ "type": "subscribe", "payload": { "query": "q" } }).to_string()),
        Inbound::Text(json!({ "id": "1", "type": "subscribe" }).to_string()),
        Inbound::Text(json!({ "type": "complete" }).to_string()),
        Inbound::Text(subscribe(json!(1)).to_string()),
        Inbound::Text(subscribe(json!("")).to_string()),
        Inbound::Text(subscribe(json!("i".repeat(65))).to_string()),
        Inbound::Binary(subscribe(json!("1")).to_string().into_bytes()),
        Inbound::Binary(Vec::new()),
    ];
    for frame in frames {
        let client = Client::acknowledged().await;
        let operations = Arc::clone(&client.operations);
        client.send(frame.clone());

        let who = client
            .expect_close(close::BAD_MESSAGE, "Invalid message received")
            .await;

        assert_eq!(who, Some(the_actor()), "{frame:?}");
        assert_eq!(operations.start_calls(), 0, "{frame:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_not_of_the_protocol_before_the_ack_closes_with_4400() {
    let init = init_with("Bearer good");
    let frames = [
        Inbound::Text("not json".to_owned()),
        Inbound::Text(json!({ "type": "shout" }).to_string()),
        Inbound::Text(json!({ "payload": init["payload"] }).to_string()),
        Inbound::Text(
            json!({ "type": "connection_init", "payload": init["payload"], "extra": 1 })
                .to_string(),
        ),
        Inbound::Text(json!({ "type": "connection_init", "payload": "Bearer good" }).to_string()),
        Inbound::Text(json!({ "type": "ping", "extra": 1 }).to_string()),
        Inbound::Binary(init.to_string().into_bytes()),
    ];
    for frame in frames {
        let client = Client::connect();
        let gate = Arc::clone(&client.gate);
        client.send(frame.clone());

        let who = client
            .expect_close(close::BAD_MESSAGE, "Invalid message received")
            .await;

        assert_eq!(who, None, "{frame:?}");
        assert!(gate.tokens_seen().is_empty(), "{frame:?}");
    }
}

/// A JSON ping of exactly `len` bytes.
fn ping_of(len: usize) -> String {
    let empty = json!({ "type": "ping", "payload": "" }).to_string();
    let ping = json!({ "type": "ping", "payload": "x".repeat(len - empty.len()) }).to_string();
    assert_eq!(ping.len(), len);
    ping
}

#[tokio::test(start_paused = true)]
async fn a_frame_over_the_size_limit_closes_with_1009_and_one_at_it_does_not() {
    let mut client = Client::acknowledged().await;
    client.send(Inbound::Text(ping_of(64 * 1024)));
    assert_eq!(client.next_json().await, json!({ "type": "pong" }));

    client.send(Inbound::Text(ping_of(64 * 1024 + 1)));

    client.expect_close(close::TOO_BIG, "frame too large").await;
}

#[tokio::test(start_paused = true)]
async fn the_size_limit_is_the_setting_and_holds_before_the_ack_unread() {
    let settings = Settings {
        max_frame_bytes: 100,
        ..Settings::default()
    };
    let mut client = Client::connect_with(settings.clone());
    client.send(Inbound::Text(ping_of(100)));
    assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    let gate = Arc::clone(&client.gate);
    client.send_json(&init_with(&format!("Bearer {}", "x".repeat(100))));

    client.expect_close(close::TOO_BIG, "frame too large").await;
    assert!(gate.tokens_seen().is_empty());

    let mut client = Client::acknowledged_with(settings).await;
    client.send(Inbound::Text(ping_of(100)));
    assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    client.send(Inbound::Text(ping_of(101)));
    client.expect_close(close::TOO_BIG, "frame too large").await;
}

#[tokio::test(start_paused = true)]
async fn a_frame_the_transport_found_too_large_closes_with_1009_in_both_phases() {
    let client = Client::connect();
    client.send(Inbound::TooLarge);
    assert_eq!(
        client.expect_close(close::TOO_BIG, "frame too large").await,
        None
    );

    let client = Client::acknowledged().await;
    client.send(Inbound::TooLarge);
    assert_eq!(
        client.expect_close(close::TOO_BIG, "frame too large").await,
        Some(the_actor())
    );
}

#[tokio::test(start_paused = true)]
async fn a_websocket_ping_is_answered_with_a_pong_of_its_payload_in_both_phases() {
    let mut client = Client::connect();
    client.send(Inbound::Ping(b"x".to_vec()));
    assert_eq!(client.next().await, Outbound::Pong(b"x".to_vec()));

    client.init().await;
    client.send(Inbound::Ping(b"x".to_vec()));
    assert_eq!(client.next().await, Outbound::Pong(b"x".to_vec()));
    client.send(Inbound::Ping(Vec::new()));
    assert_eq!(client.next().await, Outbound::Pong(Vec::new()));
}

// --- The message rate -----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn twenty_frames_in_a_second_are_fine() {
    let mut client = Client::acknowledged().await;
    // A second later the init message no longer counts.
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
    let mut client = Client::acknowledged().await;
    tokio::time::advance(Duration::from_secs(1)).await;

    for n in 0..20_u8 {
        client.send(Inbound::Ping(vec![n]));
    }
    client.send_json(&json!({ "type": "pong" }));

    for n in 0..20_u8 {
        assert_eq!(client.next().await, Outbound::Pong(vec![n]));
    }
    client.expect_close(close::POLICY, "rate").await;
}

#[tokio::test(start_paused = true)]
async fn the_message_rate_counts_before_the_ack_too() {
    // Nineteen pings and the init: twenty.
    let mut client = Client::connect();
    for _ in 0..19 {
        client.send_json(&json!({ "type": "ping" }));
    }
    for _ in 0..19 {
        assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    }
    client.init().await;

    // Twenty pings and the init: one too many, and the token is never looked at.
    let mut client = Client::connect();
    for _ in 0..20 {
        client.send_json(&json!({ "type": "ping" }));
    }
    client.send_json(&init_with("Bearer good"));
    for _ in 0..20 {
        assert_eq!(client.next_json().await, json!({ "type": "pong" }));
    }
    let gate = Arc::clone(&client.gate);
    assert_eq!(client.expect_close(close::POLICY, "rate").await, None);
    assert!(gate.tokens_seen().is_empty());
}

// --- The session, the heartbeat, idleness ---------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_server_pings_every_25_seconds_and_rechecks_the_session() {
    let start = Instant::now();
    let mut client = Client::acknowledged().await;
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
async fn a_revoked_session_gets_no_further_result_and_closes_with_4403() {
    let mut client = Client::acknowledged().await;
    let feed = client.start("1", "q1").await;
    feed.send(json!(1)).unwrap();
    assert_eq!(client.next_json().await, next("1", &json!(1)));
    let live_calls = client.gate.still_live_calls();

    client.gate.end_session();
    feed.send(json!(2)).unwrap();

    let gate = Arc::clone(&client.gate);
    // The close frame is the very next frame: the result was not delivered.
    let who = client.expect_close(close::FORBIDDEN, "Session ended").await;
    assert_eq!(who, Some(the_actor()));
    assert_eq!(gate.still_live_calls(), live_calls + 1);
    assert!(feed.is_closed());
    assert_eq!(gate.open_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_session_closes_with_4403_at_the_next_heartbeat_when_nothing_happens() {
    let start = Instant::now();
    let mut client = Client::acknowledged().await;
    let feed = client.start("1", "q1").await;

    client.gate.end_session();

    let who = client.expect_close(close::FORBIDDEN, "Session ended").await;
    assert_eq!(start.elapsed(), Duration::from_secs(25));
    assert_eq!(who, Some(the_actor()));
    assert!(feed.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_token_expiring_in_30_seconds_closes_with_4403_at_30_seconds_however_busy() {
    let start = Instant::now();
    let gate = FakeGate::new();
    gate.expire(Expiry::In(Duration::from_secs(30)));
    let mut client = Client::acknowledged_through(Arc::clone(&gate)).await;
    let feed = client.start("1", "q1").await;

    // Something every half second until 29.5 s, both ways — pings in, results out — and the
    // heartbeat answered: none of it moves the expiry.
    let mut heartbeats = 0;
    for n in 1..=59_u8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let answer = if n % 2 == 0 {
            client.send(Inbound::Ping(vec![n]));
            Outbound::Pong(vec![n])
        } else {
            feed.send(json!(n)).unwrap();
            Outbound::Text(next("1", &json!(n)).to_string())
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
    assert_eq!(start.elapsed(), Duration::from_millis(29_500));
    assert_eq!(heartbeats, 1, "at 25 s");
    tokio::time::sleep(Duration::from_millis(490)).await;
    client.assert_still_open().await;

    // At 30 s a result and a ping are ready together with the expiry: neither is answered. (Both
    // are sent before the clock moves, so the server finds them ready when it next runs.)
    feed.send(json!("too late")).unwrap();
    client.send(Inbound::Ping(b"too late".to_vec()));
    tokio::time::advance(Duration::from_millis(10)).await;
    let who = client.expect_close(close::FORBIDDEN, "Session ended").await;

    assert_about(start.elapsed(), Duration::from_secs(30));
    assert_eq!(who, Some(the_actor()));
    assert_eq!(gate.open_connections(), 0, "the place is given back");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_as_idle_after_60_seconds_whatever_the_server_sends() {
    let start = Instant::now();
    let mut client = Client::acknowledged().await;
    let feed = client.start("1", "q1").await;

    assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
    // Results going out are not the client's doing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    feed.send(json!(1)).unwrap();
    assert_eq!(client.next_json().await, next("1", &json!(1)));
    assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
    client.expect_close(close::NORMAL, "idle").await;

    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_answers_pings_is_never_idle() {
    let start = Instant::now();
    let mut client = Client::acknowledged().await;

    for _ in 0..8 {
        assert_eq!(client.next().await, Outbound::Ping(Vec::new()));
        client.send(Inbound::Pong(Vec::new()));
    }

    assert_eq!(start.elapsed(), Duration::from_secs(200));
    client.assert_still_open().await;
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_is_the_setting_and_any_inbound_frame_resets_it() {
    let settings = Settings {
        idle_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let start = Instant::now();
    let mut client = Client::acknowledged_with(settings).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    client.send_json(&json!({ "type": "pong" }));
    settle().await;
    tokio::time::sleep(Duration::from_millis(4_999)).await;
    client.assert_nothing_sent().await;

    client.expect_close(close::NORMAL, "idle").await;

    assert_eq!(start.elapsed(), Duration::from_secs(9));
}

// --- The per-user connection cap ------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_user_over_the_connection_cap_is_closed_with_4429_until_a_place_is_given_back() {
    let gate = FakeGate::with_cap(1);
    let mut first = Client::acknowledged_through(Arc::clone(&gate)).await;
    assert_eq!(gate.open_connections(), 1);

    let second = Client::connect_to(Arc::clone(&gate), Settings::default());
    second.send_json(&init_with("Bearer good"));
    // The close frame is the very next frame: no `connection_ack` before it.
    let who = second
        .expect_close(close::TOO_MANY, "Too many connections")
        .await;

    assert_eq!(who, Some(the_actor()));
    assert_eq!(gate.admit_calls(), 2);
    assert_eq!(gate.open_connections(), 1, "a refusal takes no place");
    first.assert_still_open().await;

    first.send(Inbound::Close);
    assert_eq!(first.expect_end().await, Some(the_actor()));
    assert_eq!(gate.open_connections(), 0);

    let mut third = Client::acknowledged_through(Arc::clone(&gate)).await;
    assert_eq!(gate.open_connections(), 1);
    third.assert_still_open().await;
}

// --- The end of a connection ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_client_close_ends_the_connection_silently_and_drops_its_operations() {
    let mut client = Client::acknowledged().await;
    let gate = Arc::clone(&client.gate);
    let feeds = [client.start("1", "q1").await, client.start("2", "q2").await];
    assert!(feeds.iter().all(|feed| !feed.is_closed()));

    client.send(Inbound::Close);

    // Not even a close frame.
    assert_eq!(client.expect_end().await, Some(the_actor()));
    assert!(feeds.iter().all(mpsc::UnboundedSender::is_closed));
    assert_eq!(gate.open_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_server_close_drops_the_running_operations_too() {
    let mut client = Client::acknowledged().await;
    let feed = client.start("1", "q1").await;

    client.send(Inbound::Binary(Vec::new()));

    client
        .expect_close(close::BAD_MESSAGE, "Invalid message received")
        .await;
    assert!(feed.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_failing_sink_ends_the_connection_at_once() {
    let gate = FakeGate::new();
    let operations = FakeOperations::default();
    let inbound = futures_util::stream::iter([Inbound::Text(init_with("Bearer good").to_string())])
        .chain(futures_util::stream::pending());
    let outbound = Box::pin(futures_util::sink::unfold(
        (),
        |(), _frame: Outbound| async { Err::<(), _>("the peer is gone") },
    ));
    let start = Instant::now();

    let who = serve(inbound, outbound, &*gate, &operations, &Settings::default()).await;

    assert_eq!(who, Some(the_actor()));
    assert_eq!(start.elapsed(), Duration::ZERO, "it waited for no timer");
    assert_eq!(gate.open_connections(), 0);
}

// --- Small parts ----------------------------------------------------------------------------

#[test]
fn the_default_settings_are_the_documented_ones() {
    let settings = Settings::default();
    assert_eq!(settings.init_timeout, Duration::from_secs(10));
    assert_eq!(settings.heartbeat, Duration::from_secs(25));
    assert_eq!(settings.idle_timeout, Duration::from_secs(60));
    assert_eq!(settings.max_frame_bytes, 65_536);
    assert_eq!(settings.max_messages_per_second, 20);
    assert_eq!(settings.max_subscriptions, 10);
}

#[test]
fn the_longest_duplicate_id_close_reason_fits_in_a_close_frame() {
    let reason = format!("Subscriber for {} already exists", "i".repeat(MAX_ID_LEN));
    assert!(reason.len() <= 123, "{}", reason.len());
}
